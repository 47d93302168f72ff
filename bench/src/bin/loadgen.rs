//! `lookout-loadgen`: a gRPC load generator for Lookout, in the spirit of ghz.
//!
//! It drives one of four calls against a server speaking Permify's `base.v1` API:
//!
//! | `--call`               | method                                  |
//! |------------------------|-----------------------------------------|
//! | `check`                | `base.v1.Permission/Check`              |
//! | `lookup-entity-stream` | `base.v1.Permission/LookupEntityStream` |
//! | `write`                | `base.v1.Data/Write`                    |
//! | `health`               | `grpc.health.v1.Health/Check` (baseline)|
//!
//! `--concurrency` workers each keep one request in flight, over `--connections` HTTP/2
//! connections (default `min(concurrency, 4)`), until `--total` requests are done or
//! `--duration` has passed, optionally paced to `--rps` requests per second overall.
//! Requests come from `--data FILE` (one JSON body per line, Permify's JSON shape, sent
//! round-robin) or are generated from `--dataset docs:N` (the `lookout_bench::docs` model) with
//! a random document and user per request, reproducible with `--seed`. `--setup` first writes
//! the data set's schema and loads its tuples. The report (`--output text|json`) gives the
//! count, duration, requests/s, a latency histogram, p50/p90/p99/p99.9/min/max/mean, errors by
//! gRPC status code, and for streams the time to the first message and IDs/s.
//!
//! ```text
//! # A server to load:
//! lookout serve --grpc-port 3478
//!
//! # Load 10,000 documents, then 100,000 checks from 32 workers over 4 connections:
//! lookout-loadgen --call check --dataset docs:10000 --setup -n 100000 -c 32
//!
//! # Streamed lookups for 30 s at 200 requests/s, JSON report:
//! lookout-loadgen --call lookup-entity-stream --dataset docs:10000 -z 30s --rps 200 --output json
//!
//! # One-tuple writes for 10 s; health checks as a baseline:
//! lookout-loadgen --call write -z 10s -c 8
//! lookout-loadgen --call health -n 100000 -c 32
//!
//! # Your own requests, or the generated ones written out (e.g. for ghz):
//! lookout-loadgen --call check --data checks.jsonl -n 50000 -c 16
//! lookout-loadgen --call check --dataset docs:10000 --dump 1000 > checks.jsonl
//! ```
//!
//! Progress bars go to stderr when it is a terminal (`--quiet` turns them off); the report goes
//! to stdout. Ctrl-C stops sending, waits for the calls in flight and prints the report of what
//! was done; a second Ctrl-C exits at once. Exit status: 0 after a run (whatever the calls
//! returned), 1 if the run could not start (connection, setup, data file), 2 for bad flags.

use std::process::ExitCode;

use clap::Parser;
use lookout_bench::loadgen::{self, Args, OutputFormat};
use tokio::sync::watch;

fn main() -> ExitCode {
    let args = Args::parse();

    if args.dump.is_some() {
        let stdout = std::io::stdout();
        return match loadgen::dump(&args, &mut stdout.lock()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => fail(&e),
        };
    }

    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    runtime.enable_all();
    if let Some(threads) = args.threads {
        runtime.worker_threads(usize::try_from(threads).unwrap_or(1));
    }
    let runtime = match runtime.build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("lookout-loadgen: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };

    let result = runtime.block_on(async {
        let (stop_tx, stop) = watch::channel(false);
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                eprintln!("lookout-loadgen: stopping; Ctrl-C again to exit at once");
                let _ = stop_tx.send(true);
                if tokio::signal::ctrl_c().await.is_ok() {
                    std::process::exit(130);
                }
            }
        });
        loadgen::run_until(&args, stop).await
    });

    match result {
        Ok(report) => {
            let text = match args.output {
                OutputFormat::Text => report.to_text(),
                OutputFormat::Json => report.to_json() + "\n",
            };
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => fail(&e),
    }
}

fn fail(e: &loadgen::LoadgenError) -> ExitCode {
    eprintln!("lookout-loadgen: {e}");
    ExitCode::FAILURE
}
