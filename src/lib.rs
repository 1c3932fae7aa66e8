//! mcpctl: declarative management of MCP servers.
//!
//! # Theory of operation
//!
//! `mcpctl.toml` is the only source of truth. [`config`] finds, reads, edits and
//! atomically writes it; [`model`] turns its text into one validated effective spec
//! per server (pure); [`plan`] diffs those desired specs against what runs (pure)
//! and [`render`] shows the resulting [`plan::Plan`] as text or JSON. The [`cli`]
//! wires these together; the daemon that executes plans comes later and will consume
//! the same `Plan` value.
//!
//! [`backup`] is a server's backup document and the checks a restore makes (pure);
//! [`bridge`] is `mcpctl connect`: a stdio MCP server forwarding to a server's
//! endpoint on the daemon.
//! [`clients`] is what `client link` writes into a client's file, and how (pure).
//! [`import`] reads other clients' MCP configs and decides what the file gets (pure).
//! [`git`] asks git which commit the file is at, and for the file at a revision.
//! [`registry`] is the MCP registry as a catalogue: its `server.json` entries, the
//! strict checks they pass and their translation into server blocks (pure), and the
//! one bounded client that asks a registry (`registry::fetch`).
//!
//! Dependency direction: `model`, `diag`, `plan`, `render` do no I/O; `config` uses
//! `model` and `diag`; `cli` uses everything.

pub mod api;
pub mod backup;
pub mod bridge;
pub mod cgroup;
pub mod cli;
pub mod client;
pub mod clients;
pub mod config;
pub mod daemon;
pub mod diag;
pub mod echo;
pub mod exit;
/// The bodies of the fuzz targets (`fuzz/`), shared with the corpus replay test.
#[doc(hidden)]
pub mod fuzzing;
pub mod gateway;
pub mod git;
pub mod import;
pub mod logs;
pub mod model;
pub mod out;
pub mod plan;
pub mod policy;
pub mod registry;
pub mod render;
pub mod runtime_dir;
pub mod schema;
pub mod secrets;
pub mod shim;
pub mod sys;
pub mod ui;
pub mod watch;
pub mod wire;
