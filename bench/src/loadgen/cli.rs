//! The command line of `lookout-loadgen`, and the small parsers behind it (durations, counts,
//! dataset names).

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};

/// Example command lines, shown by `--help` and in the binary's docs.
pub const EXAMPLES: &str = "\
Examples:
  # Load the docs model (10,000 documents) into a running server, then 100,000 checks from
  # 32 workers over 4 HTTP/2 connections:
  lookout-loadgen --call check --dataset docs:10000 --setup -n 100000 -c 32

  # Streamed lookups for 30 seconds at a steady 200 requests/s, JSON report:
  lookout-loadgen --call lookup-entity-stream --dataset docs:10000 -z 30s --rps 200 --output json

  # Bulk checks of 100 random pairs each on Permify's load-test model, 10 seconds:
  lookout-loadgen --call bulk-check --bulk-size 100 --dataset social:100000 --setup -z 10s -c 8

  # Writes of one tuple each, for 10 seconds as fast as possible:
  lookout-loadgen --call write -z 10s -c 8

  # Baseline: gRPC health checks, which do no authorization work:
  lookout-loadgen --call health -n 100000 -c 32

  # Your own requests, one JSON body per line (Permify's JSON shape), sent round-robin:
  lookout-loadgen --call check --data checks.jsonl -n 50000 -c 16

  # The generated requests as JSON lines, e.g. to replay with ghz (`jq -s .` makes an array):
  lookout-loadgen --call check --dataset docs:10000 --dump 1000 > checks.jsonl";

/// A gRPC load generator for Lookout (and any server speaking Permify's base.v1 API).
///
/// Runs `--concurrency` workers, each with one request in flight, spread over `--connections`
/// HTTP/2 connections, until `--total` requests are done or `--duration` has passed (whichever
/// comes first; the default is 1,000 requests). Latency statistics cover successful calls;
/// failures are counted by gRPC status code. For `lookup-entity-stream` the latency is the time
/// to the last message; the time to the first message and the number of IDs received are
/// reported as well.
#[derive(Debug, Clone, Parser)]
#[command(name = "lookout-loadgen", version, after_help = EXAMPLES)]
pub struct Args {
    /// The call to make.
    #[arg(long, value_enum)]
    pub call: Call,

    /// Server address, `HOST:PORT` (or an `http://` URI).
    #[arg(long, default_value = "127.0.0.1:3478", value_name = "HOST:PORT")]
    pub target: String,

    /// Tenant of generated requests, and of `--data` lines that name none.
    #[arg(long, default_value = "t1")]
    pub tenant: String,

    /// Number of workers; each keeps one request in flight.
    #[arg(short = 'c', long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..))]
    pub concurrency: u32,

    /// HTTP/2 connections the workers share [default: min(concurrency, 4)].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub connections: Option<u32>,

    /// Number of requests to make [default: 1000 unless --duration is given]. Accepts `k`/`m`
    /// suffixes (`100k`).
    #[arg(short = 'n', long, value_parser = parse_count)]
    pub total: Option<u64>,

    /// How long to send requests, e.g. `30s`, `500ms`, `2m`; requests in flight at the end are
    /// waited for and counted.
    #[arg(short = 'z', long, value_parser = parse_duration)]
    pub duration: Option<Duration>,

    /// Target rate in requests per second over all workers, paced evenly; 0 = as fast as
    /// the workers go.
    #[arg(short = 'r', long, default_value_t = 0.0, value_parser = parse_rate)]
    pub rps: f64,

    /// Client-side timeout of each request (a whole stream for lookup-entity-stream).
    #[arg(short = 't', long, default_value = "20s", value_parser = parse_duration)]
    pub timeout: Duration,

    /// Request bodies, one JSON object per line in Permify's JSON shape (`tenant_id`,
    /// `entity`, `subject`, ...), for the message of --call; sent round-robin. Blank lines are
    /// skipped.
    #[arg(long, value_name = "FILE")]
    pub data: Option<PathBuf>,

    /// The data set that generated requests draw from and --setup loads: `docs:N` is the
    /// document model of `lookout_bench::docs` with N documents (`docs:10k` works too);
    /// `social:N` is Permify's load-test model (`lookout_bench::social`) with N users, contents
    /// and interactions, where checks ask `content.view` or `interaction.view`.
    #[arg(long, default_value = "docs:10000", value_parser = parse_dataset)]
    pub dataset: Dataset,

    /// Seed of the generated data set and of the per-request random IDs.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,

    /// Before the run, write the data set's schema and load its tuples with Data.Write.
    #[arg(long)]
    pub setup: bool,

    /// Tuples per Data.Write during --setup.
    #[arg(long, default_value_t = 5000, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub setup_batch: u32,

    /// Permission asked by check and lookup-entity-stream.
    #[arg(long, default_value = "view")]
    pub permission: String,

    /// `metadata.depth` of generated check and lookup requests (0 = the server's default).
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(i32).range(0..))]
    pub depth: i32,

    /// Checks per generated bulk-check request (Permify's server takes at most 100; so does
    /// Lookout's by default, see `lookout serve --max-bulk-check`).
    #[arg(long, default_value_t = 100, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub bulk_size: u32,

    /// Tuples per generated Data.Write request.
    #[arg(long, default_value_t = 1, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub write_tuples: u32,

    /// Report format, printed to stdout.
    #[arg(long, short = 'o', value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,

    /// No progress bars (they are also off when stderr is not a terminal).
    #[arg(long, short = 'q')]
    pub quiet: bool,

    /// Runtime worker threads of the load generator [default: the number of CPUs].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub threads: Option<u32>,

    /// Print the first N generated (or --data) requests as JSON lines and exit, sending
    /// nothing.
    #[arg(long, value_name = "N", value_parser = parse_count)]
    pub dump: Option<u64>,
}

/// The gRPC methods the generator can drive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Call {
    /// base.v1.Permission/Check.
    Check,
    /// base.v1.Permission/BulkCheck, --bulk-size checks per call.
    BulkCheck,
    /// base.v1.Permission/LookupEntityStream (server streaming).
    LookupEntityStream,
    /// base.v1.Data/Write.
    Write,
    /// grpc.health.v1.Health/Check: a no-op baseline.
    Health,
}

impl Call {
    /// Whether the call answers checks (its report counts ALLOWED and DENIED answers).
    pub fn checks(self) -> bool {
        matches!(self, Call::Check | Call::BulkCheck)
    }

    /// The name given on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Call::Check => "check",
            Call::BulkCheck => "bulk-check",
            Call::LookupEntityStream => "lookup-entity-stream",
            Call::Write => "write",
            Call::Health => "health",
        }
    }

    /// The gRPC method, `package.Service/Method`.
    pub fn method(self) -> &'static str {
        self.path().trim_start_matches('/')
    }

    /// The HTTP/2 path of the method, `/package.Service/Method`.
    pub fn path(self) -> &'static str {
        match self {
            Call::Check => "/base.v1.Permission/Check",
            Call::BulkCheck => "/base.v1.Permission/BulkCheck",
            Call::LookupEntityStream => "/base.v1.Permission/LookupEntityStream",
            Call::Write => "/base.v1.Data/Write",
            Call::Health => "/grpc.health.v1.Health/Check",
        }
    }
}

/// How the report is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// A human-readable summary.
    Text,
    /// One JSON object.
    Json,
}

/// A generated data set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dataset {
    /// [`crate::docs`] with this many documents.
    Docs(u64),
    /// [`crate::social`] with this many users, contents and interactions.
    Social(u64),
}

impl std::fmt::Display for Dataset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Dataset::Docs(n) => write!(f, "docs:{n}"),
            Dataset::Social(n) => write!(f, "social:{n}"),
        }
    }
}

/// `docs:N` or `social:N`.
pub fn parse_dataset(s: &str) -> Result<Dataset, String> {
    let (model, size) = s
        .split_once(':')
        .ok_or_else(|| format!("`{s}`: expected MODEL:SIZE, e.g. docs:10000"))?;
    match model {
        "docs" => {
            let n = parse_count(size)?;
            if n == 0 {
                return Err("the docs data set needs at least one document".to_owned());
            }
            Ok(Dataset::Docs(n))
        }
        "social" => {
            let n = parse_count(size)?;
            if n == 0 {
                return Err("the social data set needs at least one user".to_owned());
            }
            Ok(Dataset::Social(n))
        }
        other => Err(format!(
            "unknown data set model `{other}` (known: docs, social)"
        )),
    }
}

/// A count: digits with optional `_` separators and an optional `k` (thousand) or `m`
/// (million) suffix.
pub fn parse_count(s: &str) -> Result<u64, String> {
    let t = s.trim().to_ascii_lowercase().replace('_', "");
    let (digits, scale) = if let Some(d) = t.strip_suffix('k') {
        (d, 1_000)
    } else if let Some(d) = t.strip_suffix('m') {
        (d, 1_000_000)
    } else {
        (t.as_str(), 1)
    };
    digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(scale))
        .ok_or_else(|| format!("`{s}` is not a count (e.g. 1000, 10k, 1m)"))
}

/// A duration: a number with a unit `ns`, `us`, `ms`, `s`, `m` or `h` (fractions allowed,
/// `1.5s`); a bare number is seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("`{s}` is not a duration (e.g. 30s, 500ms, 2m)"))?;
    let seconds_per_unit = match unit.trim() {
        "ns" => 1e-9,
        "us" | "µs" => 1e-6,
        "ms" => 1e-3,
        "" | "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        other => {
            return Err(format!(
                "`{s}`: unknown unit `{other}` (ns, us, ms, s, m, h)"
            ));
        }
    };
    Duration::try_from_secs_f64(value * seconds_per_unit)
        .map_err(|_| format!("`{s}` is out of range"))
}

/// A non-negative, finite rate.
pub fn parse_rate(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(r) if r.is_finite() && r >= 0.0 => Ok(r),
        _ => Err(format!(
            "`{s}` is not a rate (requests per second, 0 = unlimited)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts() {
        assert_eq!(parse_count("1000"), Ok(1000));
        assert_eq!(parse_count("10k"), Ok(10_000));
        assert_eq!(parse_count("1M"), Ok(1_000_000));
        assert_eq!(parse_count("1_000"), Ok(1000));
        assert!(parse_count("ten").is_err());
        assert!(parse_count("-1").is_err());
        assert!(parse_count("99999999999999999999k").is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("10"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("250us"), Ok(Duration::from_micros(250)));
        assert!(parse_duration("s").is_err());
        assert!(parse_duration("3 weeks").is_err());
    }

    #[test]
    fn datasets() {
        assert_eq!(parse_dataset("docs:200"), Ok(Dataset::Docs(200)));
        assert_eq!(parse_dataset("docs:1m"), Ok(Dataset::Docs(1_000_000)));
        assert!(parse_dataset("docs:0").is_err());
        assert!(parse_dataset("docs").is_err());
        assert!(parse_dataset("github:10").is_err());
        assert_eq!(Dataset::Docs(5).to_string(), "docs:5");
        assert_eq!(parse_dataset("social:100k"), Ok(Dataset::Social(100_000)));
        assert_eq!(Dataset::Social(7).to_string(), "social:7");
        assert!(parse_dataset("social:0").is_err());
    }

    #[test]
    fn rates() {
        assert_eq!(parse_rate("0"), Ok(0.0));
        assert_eq!(parse_rate("250.5"), Ok(250.5));
        assert!(parse_rate("-1").is_err());
        assert!(parse_rate("inf").is_err());
    }

    #[test]
    fn defaults_and_short_flags() {
        let args = Args::try_parse_from(["lookout-loadgen", "--call", "check"]).unwrap();
        assert_eq!(args.target, "127.0.0.1:3478");
        assert_eq!(args.tenant, "t1");
        assert_eq!(args.concurrency, 8);
        assert_eq!(args.connections, None);
        assert_eq!(args.total, None);
        assert_eq!(args.dataset, Dataset::Docs(10_000));
        assert_eq!(args.output, OutputFormat::Text);
        let args = Args::try_parse_from([
            "lookout-loadgen",
            "--call",
            "lookup-entity-stream",
            "-c",
            "16",
            "-n",
            "10k",
            "-z",
            "5s",
            "-r",
            "100",
            "-o",
            "json",
        ])
        .unwrap();
        assert_eq!(args.call, Call::LookupEntityStream);
        assert_eq!(args.concurrency, 16);
        assert_eq!(args.total, Some(10_000));
        assert_eq!(args.duration, Some(Duration::from_secs(5)));
        assert_eq!(args.rps, 100.0);
        assert_eq!(args.output, OutputFormat::Json);
        assert!(Args::try_parse_from(["lookout-loadgen", "--call", "check", "-c", "0"]).is_err());
        assert!(Args::try_parse_from(["lookout-loadgen", "--call", "nope"]).is_err());
    }
}
