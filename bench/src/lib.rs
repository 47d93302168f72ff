//! Seeded dataset generators shared by the criterion benches, the load generator and tests.
//!
//! Every generator is deterministic for a given size and seed, so figures in PERF.md can be
//! reproduced exactly.

pub mod docs;
pub mod loadgen;
pub mod rng;
pub mod social;
