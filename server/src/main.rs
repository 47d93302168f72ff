use std::process::ExitCode;

use clap::Parser;
use lookout_server::cli::{self, Cli};

fn main() -> ExitCode {
    cli::run(Cli::parse())
}
