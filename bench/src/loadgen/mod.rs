//! `lookout-loadgen`: a gRPC load generator for Lookout in the spirit of ghz.
//!
//! [`run`] (or [`run_until`], which also stops on a signal) connects, optionally loads a data
//! set ([`setup`]), drives the calls ([`runner`]) and returns a [`Report`]. The binary
//! `src/bin/loadgen.rs` is a thin shell over it; the integration test calls it in process.
//!
//! Modules: [`cli`] (flags and their parsers), [`requests`] (generated or file requests),
//! [`runner`] (connections, workers, pacing, recording), [`histogram`] (latency statistics),
//! [`setup`] (schema and data loading), [`report`] (JSON and text output).

pub mod cli;
pub mod histogram;
pub mod report;
pub mod requests;
pub mod runner;
pub mod setup;

use std::io::{IsTerminal, Write};
use std::sync::Arc;

use lookout_proto::v1::permission_client::PermissionClient;
use tokio::sync::watch;
use tonic::transport::Channel;

pub use cli::{Args, Call, Dataset, OutputFormat};
pub use report::Report;

use requests::{Generator, PREBUILD, Pool};
use runner::{Caller, LookupEntityStreamCaller, Settings};

/// Requests made when neither `--total` nor `--duration` is given.
pub const DEFAULT_TOTAL: u64 = 1000;
/// Connections when `--connections` is not given: `min(concurrency, this)`.
pub const DEFAULT_MAX_CONNECTIONS: u32 = 4;

/// Why a run could not start or finish.
#[derive(Debug, thiserror::Error)]
pub enum LoadgenError {
    #[error("bad target `{target}`: {detail}")]
    Target { target: String, detail: String },
    #[error("cannot connect to {target}: {detail}")]
    Connect { target: String, detail: String },
    #[error("cannot read {path}: {source}")]
    ReadData {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}:{line}: {detail}")]
    DataLine {
        path: String,
        line: usize,
        detail: String,
    },
    #[error("setup failed: {0}")]
    Setup(String),
    #[error("{0}")]
    Histogram(#[from] histogram::HistogramError),
    #[error("a worker failed: {0}")]
    Worker(String),
    #[error("{0}")]
    Usage(String),
    #[error("cannot write the output: {0}")]
    Output(std::io::Error),
}

/// Runs the load described by `args` and reports it.
pub async fn run(args: &Args) -> Result<Report, LoadgenError> {
    let (_keep, stop) = watch::channel(false);
    run_until(args, stop).await
}

/// Like [`run`], but stops sending new requests once `stop` turns `true` (requests in flight
/// are waited for), and reports what was done.
pub async fn run_until(args: &Args, stop: watch::Receiver<bool>) -> Result<Report, LoadgenError> {
    let concurrency = args.concurrency.max(1);
    let connections = args
        .connections
        .unwrap_or_else(|| concurrency.min(DEFAULT_MAX_CONNECTIONS))
        .clamp(1, concurrency);
    let limit = match (args.total, args.duration) {
        (Some(n), _) => n,
        (None, Some(_)) => u64::MAX,
        (None, None) => DEFAULT_TOTAL,
    };
    let settings = Settings {
        concurrency: usize::try_from(concurrency).unwrap_or(1),
        limit,
        duration: args.duration,
        rate: (args.rps > 0.0).then_some(args.rps),
        timeout: (!args.timeout.is_zero()).then_some(args.timeout),
        progress: progress_enabled(args),
    };

    let channels = runner::connect(&args.target, usize::try_from(connections).unwrap_or(1)).await?;
    let setup = match (args.setup, channels.first()) {
        (true, Some(channel)) => Some(
            setup::load(
                channel.clone(),
                &args.tenant,
                args.dataset,
                args.seed,
                usize::try_from(args.setup_batch).unwrap_or(1),
                settings.progress,
            )
            .await?,
        ),
        _ => None,
    };

    let requests = match (&args.data, args.call) {
        (Some(path), _) => format!("file {}, round-robin", path.display()),
        (None, Call::Health) => "generated: the whole server (service \"\")".to_owned(),
        (None, Call::Write) => format!(
            "generated from {} (seed {}), {} tuple(s) per write",
            args.dataset, args.seed, args.write_tuples
        ),
        (None, Call::BulkCheck) => format!(
            "generated from {} (seed {}), {} checks per call",
            args.dataset, args.seed, args.bulk_size
        ),
        (None, _) => format!("generated from {} (seed {})", args.dataset, args.seed),
    };
    let info = report::RunInfo {
        call: args.call.name(),
        method: args.call.method(),
        target: args.target.clone(),
        concurrency,
        connections,
        rps_target: settings.rate,
        requests,
        streaming: args.call == Call::LookupEntityStream,
        checks: args.call.checks(),
    };
    let expected = if args.duration.is_some() {
        PREBUILD
    } else {
        limit
    };
    let generator = generator(args);
    let (elapsed, tally) = match args.call {
        Call::Check => {
            let pool = scoped_pool(args, generator, Generator::check, expected)?;
            let callers = clients(&channels, runner::check);
            go(callers, pool.encoded(), &settings, stop.clone()).await?
        }
        Call::BulkCheck => {
            let pool = scoped_pool(args, generator, Generator::bulk_check, expected)?;
            let callers = clients(&channels, runner::bulk_check);
            go(callers, pool.encoded(), &settings, stop.clone()).await?
        }
        Call::LookupEntityStream => {
            let pool = scoped_pool(args, generator, Generator::lookup_entity, expected)?;
            let callers = clients(&channels, |c| {
                LookupEntityStreamCaller(PermissionClient::new(c))
            });
            go(callers, pool, &settings, stop.clone()).await?
        }
        Call::Write => {
            let pool = scoped_pool(args, generator, Generator::write, expected)?;
            let callers = clients(&channels, runner::write);
            go(callers, pool.encoded(), &settings, stop.clone()).await?
        }
        Call::Health => {
            let pool = pool(
                args,
                generator,
                Generator::health,
                expected,
                requests::decode_health,
            )?;
            let callers = clients(&channels, runner::health);
            go(callers, pool.encoded(), &settings, stop.clone()).await?
        }
    };
    let interrupted = *stop.borrow();
    Ok(Report::new(info, setup, elapsed, &tally, interrupted))
}

/// Prints the first `args.dump` requests as JSON lines to `out`, sending nothing.
pub fn dump(args: &Args, out: &mut dyn Write) -> Result<(), LoadgenError> {
    let n = args.dump.unwrap_or(0);
    let generator = generator(args);
    match args.call {
        Call::Check => dump_scoped(args, generator, Generator::check, n, out),
        Call::BulkCheck => dump_scoped(args, generator, Generator::bulk_check, n, out),
        Call::LookupEntityStream => dump_scoped(args, generator, Generator::lookup_entity, n, out),
        Call::Write => dump_scoped(args, generator, Generator::write, n, out),
        Call::Health => {
            let pool = pool(
                args,
                generator,
                Generator::health,
                0,
                requests::decode_health,
            )?;
            write_lines(&pool, n, out, |r| {
                Ok::<_, std::convert::Infallible>(requests::health_json(r))
            })
        }
    }
}

/// Prints the first `n` requests of a tenant-scoped call as JSON lines.
fn dump_scoped<R: requests::Tenanted + Clone + 'static>(
    args: &Args,
    generator: Generator,
    make: fn(&Generator, u64) -> R,
    n: u64,
    out: &mut dyn Write,
) -> Result<(), LoadgenError> {
    let pool = scoped_pool(args, generator, make, 0)?;
    write_lines(&pool, n, out, lookout_proto::json::to_json_vec)
}

fn write_lines<R: Clone + 'static, E: std::fmt::Display>(
    pool: &Pool<R>,
    n: u64,
    out: &mut dyn Write,
    encode: impl Fn(&R) -> Result<Vec<u8>, E>,
) -> Result<(), LoadgenError> {
    for i in 0..n {
        let Some(request) = pool.get(i) else { break };
        let mut line = encode(&request)
            .map_err(|e| LoadgenError::Usage(format!("cannot encode request {i}: {e}")))?;
        line.push(b'\n');
        out.write_all(&line).map_err(LoadgenError::Output)?;
    }
    out.flush().map_err(LoadgenError::Output)
}

/// Whether progress bars are drawn: not with `--quiet`, and only on a terminal.
pub fn progress_enabled(args: &Args) -> bool {
    !args.quiet && std::io::stderr().is_terminal()
}

fn generator(args: &Args) -> Generator {
    Generator {
        dataset: args.dataset,
        seed: args.seed,
        tenant: args.tenant.clone(),
        permission: args.permission.clone(),
        depth: args.depth,
        write_tuples: args.write_tuples,
        bulk_size: args.bulk_size,
    }
}

/// The `--data` file's requests (an empty `tenant_id` becoming `--tenant`), or generated ones.
fn scoped_pool<R: requests::Tenanted + Clone + 'static>(
    args: &Args,
    generator: Generator,
    make: fn(&Generator, u64) -> R,
    expected: u64,
) -> Result<Pool<R>, LoadgenError> {
    let tenant = args.tenant.as_str();
    pool(args, generator, make, expected, |l| {
        requests::decode(l, tenant)
    })
}

/// The `--data` file's requests, or generated ones.
fn pool<R: Clone + 'static>(
    args: &Args,
    generator: Generator,
    make: fn(&Generator, u64) -> R,
    expected: u64,
    decode: impl Fn(&[u8]) -> Result<R, String>,
) -> Result<Pool<R>, LoadgenError> {
    match &args.data {
        Some(path) => Pool::cycled(requests::read_lines(path, decode)?),
        None => Ok(Pool::generated(generator, make, expected)),
    }
}

fn clients<C>(channels: &[Channel], make: impl Fn(Channel) -> C) -> Vec<C> {
    channels.iter().cloned().map(make).collect()
}

async fn go<C: Caller>(
    callers: Vec<C>,
    pool: Pool<C::Req>,
    settings: &Settings,
    stop: watch::Receiver<bool>,
) -> Result<(std::time::Duration, runner::Tally), LoadgenError> {
    runner::drive(callers, Arc::new(pool), settings, stop).await
}
