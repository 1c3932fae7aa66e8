//! The one integration test binary: each module is one area, all run the real
//! `mcpctl` binary against real files in temp folders.
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

mod architecture;
mod autoscale;
mod backup;
mod bad_input;
mod common;
mod connect;
mod daemon;
mod discovery;
mod edit;
mod endpoint;
mod examples;
mod first_hour;
mod fmt;
mod gateway;
mod gateway_cmd;
mod gateway_endpoint;
mod idp;
mod import;
mod init;
mod issue27;
mod issue28;
mod issue28_daemon;
mod issue28b;
mod k8s;
mod lifecycle;
mod link;
mod modern;
mod oidc;
mod operations;
mod outdated;
mod output;
mod plan;
mod profile;
mod readme;
mod registry;
mod schema;
mod sdk;
mod secrets;
mod soak;
mod supervise;
mod tls;
mod tokens;
mod usage;
mod workflow;
