//! Lookout's server and command line. The `lookout` binary is a thin `main` over [`cli`].

pub mod auth;
pub mod cache;
pub mod cli;
pub mod config;
pub mod connections;
pub mod data_file;
pub mod error;
pub mod export_cmd;
pub mod gate;
pub mod grpc;
pub mod http;
pub mod import_cmd;
pub mod limits;
pub mod metrics;
pub mod progress;
pub mod schema_cmd;
pub mod serve;
pub mod service;
pub mod storage;
pub mod sync;
pub mod telemetry;
pub mod tenants;
pub mod tls;
pub mod transport;
pub mod units;
pub mod validate_cmd;
