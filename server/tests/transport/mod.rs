//! End-to-end tests of `lookout serve`'s transports: an in-process server on free loopback
//! ports driven over gRPC and HTTP, and the real binary for signals and start-up errors.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail by panicking"
)]

mod binary;
mod cancel;
pub mod common;
mod grpc;
mod http;
