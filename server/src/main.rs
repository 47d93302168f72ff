use std::process::ExitCode;

use clap::Parser;
use lookout_server::cli::{self, Cli};

/// With the `mimalloc` feature, mimalloc instead of the system allocator: measured faster
/// checks for more memory per tuple (README, "Allocator"; PERF.md, "Session 4").
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    cli::run(Cli::parse())
}
