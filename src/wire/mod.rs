//! PURE. The MCP wire: what every part that reads or writes MCP messages shares, so
//! that none keeps a copy of its own (the stdio bridge, the per-server gateway, the
//! endpoint). Nothing here does I/O.
//!
//! - [`jsonrpc`]: one message of a body, its kind, ids kept as sent, the named codes.
//! - [`era`]: the two protocol eras (2025 with `initialize`, 2026-07-28 without),
//!   classification, envelopes, routing headers, the translations between them, and
//!   the sealed `requestState`.
//! - [`sse`]: server-sent events read from a stream.
//! - [`trace`]: what tracing reads of a request and writes into its `_meta`.

pub mod era;
pub mod jsonrpc;
pub mod sse;
pub mod strict;
pub mod trace;
