//! The server's integration tests, in one binary: the transports end to end (in-process servers
//! and the real binary), import and export, `lookout validate`, the README's examples, and the
//! PostgreSQL store against throwaway clusters.

mod cache;
mod certs;
mod client_cli;
mod cors;
mod import_export;
mod layering;
mod lines;
mod permify_config;
mod postgres;
mod readme;
mod scratch;
mod spawn;
mod tls;
mod transport;
mod validate_cli;
