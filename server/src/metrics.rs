//! Prometheus metrics, served as text at `GET /metrics` on the HTTP port.
//!
//! Per call (both transports; health checks, reflection and `/metrics` itself are not counted):
//! - `lookout_requests_total{transport, rpc, code}`: calls by outcome (`code` is the gRPC code
//!   name, also over HTTP; for a stream, the outcome of its start);
//! - `lookout_request_duration_seconds{transport, rpc, code}`: time to the response (for a
//!   stream, to its start);
//! - `lookout_requests_in_flight`, `lookout_open_streams{transport, rpc}`;
//! - `lookout_requests_rejected_total{transport, reason}`: refused before reaching a handler
//!   (`unauthenticated`, `overloaded`, `streams`, `deadline`).
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
        registry.register(Box::new(rejected.clone()))?;
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
        text
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
}
