use std::process::ExitCode;

use clap::Parser;
use lookout_server::cli::{self, Cli};

/// With the `mimalloc` feature, mimalloc instead of the system allocator: measured faster
/// checks for more memory per tuple (README, "Allocator"; docs/perf-history.md, "Tried and not
/// adopted").
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    cli::run(Cli::parse())
}
