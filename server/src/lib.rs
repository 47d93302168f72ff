//! Lookout's server and command line. The `lookout` binary is a thin `main` over [`cli`].

pub mod cache;
pub mod cli;
pub mod error;
pub mod service;
pub mod tenants;
pub mod validate_cmd;
