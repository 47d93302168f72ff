//! End-to-end tests: a real Lookout server, in process on free loopback ports, driven over
//! gRPC and HTTP/JSON exactly as clients drive it.
//!
//! - [`replay`]: every validation file, replayed through the API over both transports;
//! - [`bad_input`]: malformed and out-of-range requests get clear errors and change nothing;
//! - [`clients`]: Permify's official Node (gRPC) and Python (HTTP) clients against the server;
//! - [`connections`]: the connection limit, and the idle and header read timeouts;
//! - [`hardening`]: authentication (preshared keys, OIDC), limits, deadlines, metrics and
//!   request IDs;
//! - [`hostile`]: chains 10,000 deep in schema and data through every read, none of which may
//!   stop the process or answer in part.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail by panicking"
)]

mod bad_input;
#[path = "../server/tests/certs.rs"]
#[allow(
    dead_code,
    reason = "the client tests need the authority and its certificates only"
)]
mod certs;
mod clients;
mod connections;
mod error_codes;
mod hardening;
mod harness;
mod hostile;
#[path = "../server/tests/lines.rs"]
#[allow(dead_code, reason = "these tests read streams line by line, not whole")]
mod lines;
mod replay;
#[path = "../server/tests/scratch.rs"]
mod scratch;
