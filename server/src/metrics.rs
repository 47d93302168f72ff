//! Prometheus metrics, served as text at `GET /metrics` on the HTTP port.
//!
//! Per call (both transports; health checks, reflection and `/metrics` itself are not counted):
//! - `lookout_requests_total{transport, rpc, code}`: calls by outcome (`code` is the gRPC code
//!   name, also over HTTP; for a stream, the outcome of its start);
//! - `lookout_request_duration_seconds{transport, rpc, code}`: time to the response (for a
//!   stream, to its start);
//! - `lookout_requests_in_flight`, `lookout_open_streams{transport, rpc}`;
//! - `lookout_requests_rejected_total{transport, reason}`: refused before reaching a handler
//!   (the [`REJECT_REASONS`]).
//!
//! Every counter is present from the start: each RPC's `code="OK"` series, each transport and
//! reason of the rejections, each streaming RPC's open streams, all at 0, so that a dashboard's
//! `rate()` and absence alerts work before the first call.
//!
//! Of the process:
//! - `lookout_build_info{version, features}` = 1;
//! - on Linux, read from `/proc` at scrape time: `process_cpu_seconds_total`,
//!   `process_resident_memory_bytes`, `process_virtual_memory_bytes`, `process_open_fds`,
//!   `process_max_fds`, `process_start_time_seconds` (the names of Prometheus' process
//!   collector, which the `prometheus` crate ships only with a dependency tree we do not take).
//!
//! Read at scrape time from the service:
//! - `lookout_cache_hits_total`, `lookout_cache_misses_total`, `lookout_cache_hit_ratio`;
//! - per tenant: `lookout_tenant_tuples`, `lookout_tenant_revision` (its current revision),
//!   `lookout_watch_subscribers` and `lookout_watch_lag_commits` (commits the slowest
//!   subscriber has yet to receive).
//!
//! Every server has its own registry, so several servers in one process do not mix.

use std::fmt::Write as _;
use std::time::Duration;

use lookout_proto::routes::ROUTES;

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

use crate::service::Service;

/// Latency buckets, in seconds: from 50 µs, since a check usually answers within 100 µs.
const BUCKETS: &[f64] = &[
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    2.5, 5.0, 10.0, 30.0,
];

/// The transports, as the `transport` label spells them.
pub const TRANSPORTS: [&str; 2] = ["grpc", "http"];

/// Why a call is refused before its handler: the `reason` label of
/// `lookout_requests_rejected_total`.
pub const REJECT_REASONS: [&str; 5] = [
    "unauthenticated",
    "authentication-unavailable",
    "overloaded",
    "streams",
    "deadline",
];

/// The Cargo features this binary was built with, for `lookout_build_info`.
fn features() -> String {
    let mut on = Vec::new();
    if cfg!(feature = "otel") {
        on.push("otel");
    }
    if cfg!(feature = "mimalloc") {
        on.push("mimalloc");
    }
    on.join(",")
}

/// The metrics a server records per call.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    latency: HistogramVec,
    pub in_flight: IntGauge,
    pub open_streams: IntGaugeVec,
    rejected: IntCounterVec,
}

/// The metrics of calls with one set of labels (see [`Metrics::series`]).
#[derive(Debug, Clone)]
pub struct Series {
    requests: IntCounter,
    latency: Histogram,
}

impl Series {
    /// Records one call.
    pub fn observe(&self, elapsed: Duration) {
        self.requests.inc();
        self.latency.observe(elapsed.as_secs_f64());
    }
}

impl Metrics {
    pub fn new() -> Result<Metrics, prometheus::Error> {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "lookout_requests_total",
                "API calls by transport, RPC and outcome",
            ),
            &["transport", "rpc", "code"],
        )?;
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "lookout_request_duration_seconds",
                "Time from receiving a call to its response (for a stream, to its start)",
            )
            .buckets(BUCKETS.to_vec()),
            &["transport", "rpc", "code"],
        )?;
        let in_flight = IntGauge::new(
            "lookout_requests_in_flight",
            "Calls being handled now (see --max-inflight)",
        )?;
        let open_streams = IntGaugeVec::new(
            Opts::new(
                "lookout_open_streams",
                "Server streams open now (see --max-concurrent-streams)",
            ),
            &["transport", "rpc"],
        )?;
        let rejected = IntCounterVec::new(
            Opts::new(
                "lookout_requests_rejected_total",
                "Calls refused before reaching a handler, by reason",
            ),
            &["transport", "reason"],
        )?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(latency.clone()))?;
        registry.register(Box::new(in_flight.clone()))?;
        registry.register(Box::new(open_streams.clone()))?;
        let build_info = IntGaugeVec::new(
            Opts::new(
                "lookout_build_info",
                "Always 1; the labels name the build (version, Cargo features)",
            ),
            &["version", "features"],
        )?;
        registry.register(Box::new(rejected.clone()))?;
        registry.register(Box::new(build_info.clone()))?;
        build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION"), &features()])
            .set(1);
        for transport in TRANSPORTS {
            for reason in REJECT_REASONS {
                rejected.with_label_values(&[transport, reason]);
            }
            for route in ROUTES {
                let rpc = format!("{}/{}", route.service, route.rpc);
                requests.with_label_values(&[transport, &rpc, "OK"]);
                if route.server_streaming {
                    open_streams.with_label_values(&[transport, &rpc]);
                }
            }
        }
        Ok(Metrics {
            registry,
            requests,
            latency,
            in_flight,
            open_streams,
            rejected,
        })
    }

    /// Records one call's outcome.
    pub fn observe(&self, transport: &str, rpc: &str, code: &str, elapsed: Duration) {
        self.series(transport, rpc, code).observe(elapsed);
    }

    /// The counter and histogram of one label set, to record into without resolving the
    /// labels again.
    pub fn series(&self, transport: &str, rpc: &str, code: &str) -> Series {
        let labels = [transport, rpc, code];
        Series {
            requests: self.requests.with_label_values(&labels),
            latency: self.latency.with_label_values(&labels),
        }
    }

    /// Records a call refused before its handler.
    pub fn reject(&self, transport: &str, reason: &str) {
        self.rejected.with_label_values(&[transport, reason]).inc();
    }

    /// The text exposition of every metric, with the service's read at this moment.
    pub fn render(&self, service: &Service) -> String {
        let mut out = Vec::new();
        // Encoding into a Vec fails only on metrics that are invalid by construction.
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::error!(error = %e, "cannot encode the metrics");
        }
        let mut text = String::from_utf8_lossy(&out).into_owned();
        service_metrics(&mut text, service);
        process_metrics(&mut text);
        text
    }
}

/// Appends the `process_*` metrics, read from `/proc/self` now. Nothing elsewhere than Linux,
/// or if `/proc` cannot be read.
fn process_metrics(out: &mut String) {
    if let Some(p) = ProcessStats::read() {
        p.write(out);
    }
}

/// What `/proc` says of this process.
#[derive(Debug, Clone, PartialEq)]
struct ProcessStats {
    cpu_seconds: f64,
    resident_bytes: u64,
    virtual_bytes: u64,
    open_fds: Option<u64>,
    max_fds: Option<u64>,
    start_time_seconds: f64,
}

/// Clock ticks per second of `/proc/*/stat` times: the kernel's USER_HZ, 100 on every
/// architecture Lookout builds for.
const USER_HZ: f64 = 100.0;

impl ProcessStats {
    fn read() -> Option<ProcessStats> {
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        let status = std::fs::read_to_string("/proc/self/status").ok()?;
        let boot = std::fs::read_to_string("/proc/stat").ok()?;
        let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
        // Less the descriptor of the listing itself.
        let open_fds = std::fs::read_dir("/proc/self/fd")
            .ok()
            .map(|dir| (dir.count() as u64).saturating_sub(1));
        ProcessStats::parse(&stat, &status, &boot, &limits, open_fds)
    }

    /// Reads the figures out of the texts of `/proc/self/stat`, `/proc/self/status`,
    /// `/proc/stat` and `/proc/self/limits`.
    fn parse(
        stat: &str,
        status: &str,
        boot: &str,
        limits: &str,
        open_fds: Option<u64>,
    ) -> Option<ProcessStats> {
        // The command name, field 2, is in parentheses and may hold spaces: count after it.
        let after_name = &stat[stat.rfind(')')? + 1..];
        let fields: Vec<&str> = after_name.split_whitespace().collect();
        // Fields 14 (utime), 15 (stime) and 22 (starttime), from field 3 at index 0.
        let ticks = |field: usize| fields.get(field - 3)?.parse::<u64>().ok();
        let cpu_seconds = (ticks(14)? + ticks(15)?) as f64 / USER_HZ;
        let kib = |key: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(key))?
                .split_whitespace()
                .next()?
                .parse::<u64>()
                .ok()
                .map(|k| k * 1024)
        };
        let boot_time = boot
            .lines()
            .find_map(|l| l.strip_prefix("btime"))?
            .trim()
            .parse::<u64>()
            .ok()?;
        let max_fds = crate::connections::max_open_files(limits);
        Some(ProcessStats {
            cpu_seconds,
            resident_bytes: kib("VmRSS:").unwrap_or(0),
            virtual_bytes: kib("VmSize:").unwrap_or(0),
            open_fds,
            max_fds,
            start_time_seconds: boot_time as f64 + ticks(22)? as f64 / USER_HZ,
        })
    }

    fn write(&self, out: &mut String) {
        let mut metric = |name: &str, kind: &str, help: &str, value: String| {
            family(out, name, kind, help);
            let _ = writeln!(out, "{name} {value}");
        };
        metric(
            "process_cpu_seconds_total",
            "counter",
            "Total user and system CPU time spent in seconds",
            self.cpu_seconds.to_string(),
        );
        metric(
            "process_resident_memory_bytes",
            "gauge",
            "Resident memory size in bytes",
            self.resident_bytes.to_string(),
        );
        metric(
            "process_virtual_memory_bytes",
            "gauge",
            "Virtual memory size in bytes",
            self.virtual_bytes.to_string(),
        );
        if let Some(fds) = self.open_fds {
            metric(
                "process_open_fds",
                "gauge",
                "Number of open file descriptors",
                fds.to_string(),
            );
        }
        if let Some(fds) = self.max_fds {
            metric(
                "process_max_fds",
                "gauge",
                "Maximum number of open file descriptors",
                fds.to_string(),
            );
        }
        metric(
            "process_start_time_seconds",
            "gauge",
            "Start time of the process since the Unix epoch in seconds",
            self.start_time_seconds.to_string(),
        );
    }
}

/// Appends the metrics read from the service: cache and per-tenant figures.
fn service_metrics(out: &mut String, service: &Service) {
    let stats = service.cache.stats();
    family(
        out,
        "lookout_cache_hits_total",
        "counter",
        "Result cache hits",
    );
    let _ = writeln!(out, "lookout_cache_hits_total {}", stats.hits);
    family(
        out,
        "lookout_cache_misses_total",
        "counter",
        "Result cache misses",
    );
    let _ = writeln!(out, "lookout_cache_misses_total {}", stats.misses);
    family(
        out,
        "lookout_cache_hit_ratio",
        "gauge",
        "Result cache hits over lookups since start",
    );
    let _ = writeln!(out, "lookout_cache_hit_ratio {}", stats.hit_ratio());

    let tenants = service.tenants.list_local();
    let rows: Vec<(String, crate::tenants::TenantGauges)> = tenants
        .iter()
        .map(|t| (escape(&t.id), t.gauges()))
        .collect();
    type Read = fn(&crate::tenants::TenantGauges) -> u64;
    let gauges: [(&str, &str, Read); 4] = [
        ("lookout_tenant_tuples", "Tuples stored per tenant", |g| {
            g.tuples
        }),
        (
            "lookout_tenant_revision",
            "The current revision per tenant",
            |g| g.revision,
        ),
        (
            "lookout_watch_subscribers",
            "Watch subscribers per tenant",
            |g| g.watch_subscribers,
        ),
        (
            "lookout_watch_lag_commits",
            "Commits the slowest Watch subscriber of a tenant has yet to receive",
            |g| g.watch_lag,
        ),
    ];
    for (name, help, value) in gauges {
        family(out, name, "gauge", help);
        for (tenant, g) in &rows {
            let _ = writeln!(out, "{name}{{tenant=\"{tenant}\"}} {}", value(g));
        }
    }
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// A label value as the text format needs it.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic, reason = "tests fail by panicking")]
mod tests {
    use super::*;
    use crate::service::Limits;
    use crate::tenants::Retention;

    #[test]
    fn renders_calls_cache_and_tenants() {
        let metrics = Metrics::new().unwrap();
        metrics.observe("grpc", "Permission/Check", "OK", Duration::from_millis(3));
        metrics.reject("http", "unauthenticated");
        let service = Service::new(Limits::default(), Retention::default());
        let text = metrics.render(&service);
        assert!(
            text.contains(
                "lookout_requests_total{code=\"OK\",rpc=\"Permission/Check\",transport=\"grpc\"} 1"
            ),
            "{text}"
        );
        assert!(
            text.contains("lookout_request_duration_seconds_bucket"),
            "{text}"
        );
        assert!(
            text.contains(
                "lookout_requests_rejected_total{reason=\"unauthenticated\",transport=\"http\"} 1"
            ),
            "{text}"
        );
        assert!(text.contains("lookout_cache_hit_ratio 0"), "{text}");
        assert!(
            text.contains("lookout_tenant_revision{tenant=\"t1\"}"),
            "{text}"
        );
        assert!(
            text.contains("lookout_watch_subscribers{tenant=\"t1\"} 0"),
            "{text}"
        );
        assert_eq!(escape("a\"b\\c"), "a\\\"b\\\\c");
    }

    #[test]
    fn every_counter_and_the_build_are_there_from_the_start() {
        let metrics = Metrics::new().unwrap();
        let service = Service::new(Limits::default(), Retention::default());
        let text = metrics.render(&service);
        for transport in TRANSPORTS {
            for reason in REJECT_REASONS {
                let line = format!(
                    "lookout_requests_rejected_total{{reason=\"{reason}\",transport=\"{transport}\"}} 0"
                );
                assert!(text.contains(&line), "{line} in {text}");
            }
            let line = format!(
                "lookout_requests_total{{code=\"OK\",rpc=\"Permission/Check\",transport=\"{transport}\"}} 0"
            );
            assert!(text.contains(&line), "{line}");
            let line =
                format!("lookout_open_streams{{rpc=\"Watch/Watch\",transport=\"{transport}\"}} 0");
            assert!(text.contains(&line), "{line}");
        }
        let build = format!(
            "lookout_build_info{{features=\"{}\",version=\"{}\"}} 1",
            features(),
            env!("CARGO_PKG_VERSION")
        );
        assert!(text.contains(&build), "{text}");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn process_metrics_come_from_proc() {
        let metrics = Metrics::new().unwrap();
        let service = Service::new(Limits::default(), Retention::default());
        let text = metrics.render(&service);
        let value = |name: &str| -> f64 {
            text.lines()
                .find_map(|l| l.strip_prefix(&format!("{name} ")))
                .unwrap_or_else(|| panic!("no {name} in {text}"))
                .parse()
                .unwrap()
        };
        assert!(value("process_resident_memory_bytes") > 1e6);
        assert!(value("process_virtual_memory_bytes") >= value("process_resident_memory_bytes"));
        assert!(value("process_open_fds") >= 3.0);
        assert!(value("process_max_fds") >= value("process_open_fds"));
        assert!(value("process_cpu_seconds_total") >= 0.0);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        let start = value("process_start_time_seconds");
        assert!(
            start <= now + 1.0 && start > now - 86_400.0,
            "{start} vs {now}"
        );
    }

    #[test]
    fn parses_proc_texts() {
        let stat = "4242 (a (b) c) S 1 2 3 4 5 6 7 8 9 10 250 150 0 0 20 0 8 0 12345 1000 10";
        let status = "Name:\tlookout\nVmSize:\t  20480 kB\nVmRSS:\t    1024 kB\n";
        let boot = "cpu  1 2 3\nbtime 1700000000\nprocesses 5\n";
        let limits = "Limit                     Soft Limit           Hard Limit           Units\n\
                      Max open files            1024                 4096                 files\n";
        let p = ProcessStats::parse(stat, status, boot, limits, Some(7)).unwrap();
        assert_eq!(
            p,
            ProcessStats {
                cpu_seconds: 4.0,
                resident_bytes: 1024 * 1024,
                virtual_bytes: 20480 * 1024,
                open_fds: Some(7),
                max_fds: Some(1024),
                start_time_seconds: 1_700_000_123.45,
            }
        );
        assert_eq!(
            ProcessStats::parse("garbage", status, boot, limits, None),
            None
        );
    }
}
