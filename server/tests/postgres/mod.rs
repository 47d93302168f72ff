//! The PostgreSQL store: the store conformance suite (also run against the memory store), and
//! the durability, Watch and replica tests, each against a throwaway PostgreSQL cluster the
//! tests start themselves (see `cluster.rs`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod bulk;
mod cache;
mod cluster;
mod conformance;
mod durable;
mod support;
