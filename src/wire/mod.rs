//! PURE. The MCP wire: what every part that reads or writes MCP messages shares, so
//! that none keeps a copy of its own (the stdio bridge, the per-server gateway, the
//! endpoint). Nothing here does I/O.
//!
//! - [`sse`]: server-sent events read from a stream.

pub mod sse;
