//! Lookout's server and command line. The `lookout` binary is a thin `main` over [`cli`].

pub mod cli;
pub mod validate_cmd;
pub mod error;
pub mod service;
pub mod tenants;
