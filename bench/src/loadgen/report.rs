//! The report of a run: a serializable summary (`--output json`) and its text rendering.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use serde::Serialize;

use super::histogram::{Bucket, Summary};
use super::runner::{CODES, Tally, code_name};
use super::setup::SetupReport;

/// Everything measured by one run.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The `--call` name, e.g. `check`.
    pub call: &'static str,
    /// The gRPC method, e.g. `base.v1.Permission/Check`.
    pub method: &'static str,
    pub target: String,
    pub concurrency: u32,
    pub connections: u32,
    /// The `--rps` asked for; `null` when unlimited.
    pub rps_target: Option<f64>,
    /// Where requests came from: `docs:N (seed S)` or the `--data` file.
    pub requests: String,
    /// What `--setup` did, when given.
    pub setup: Option<SetupReport>,
    /// Calls made, successful or not.
    pub count: u64,
    pub ok: u64,
    pub errors: u64,
    /// Wall time from the first request to the last response.
    pub duration_secs: f64,
    /// `count / duration_secs`.
    pub rps: f64,
    /// Latency of successful calls (to the last message for streams), in milliseconds.
    pub latency_ms: Summary,
    /// Latency histogram of successful calls, 1-2-5 buckets.
    pub histogram: Vec<Bucket>,
    /// Failed calls by gRPC status code name (`UNAVAILABLE`, ...).
    pub errors_by_code: BTreeMap<&'static str, u64>,
    /// The first error message seen for each code.
    pub error_samples: BTreeMap<&'static str, String>,
    /// Answers of Permission.Check.
    pub check: Option<CheckReport>,
    /// Stream figures for lookup-entity-stream.
    pub stream: Option<StreamReport>,
    /// The run was stopped early (Ctrl-C).
    pub interrupted: bool,
}

/// Answers of successful checks (a bulk check answers several per call).
#[derive(Debug, Clone, Copy, Serialize)]
pub struct CheckReport {
    pub allowed: u64,
    pub denied: u64,
    /// `(allowed + denied) / duration_secs`.
    pub checks_per_sec: f64,
}

/// Server-streaming figures.
#[derive(Debug, Clone, Serialize)]
pub struct StreamReport {
    /// Successful streams.
    pub streams: u64,
    /// Messages (entity IDs) received, including those of streams that failed midway.
    pub items: u64,
    /// `items / duration_secs`.
    pub items_per_sec: f64,
    /// Mean messages per successful stream.
    pub items_per_stream: f64,
    /// Successful streams that sent nothing.
    pub empty_streams: u64,
    /// Time to the first message, in milliseconds.
    pub first_message_ms: Summary,
    /// Time to the last message (the end of the stream), in milliseconds: `latency_ms` again.
    pub last_message_ms: Summary,
}

/// The run's settings as reported.
#[derive(Debug, Clone)]
pub struct RunInfo {
    pub call: &'static str,
    pub method: &'static str,
    pub target: String,
    pub concurrency: u32,
    pub connections: u32,
    pub rps_target: Option<f64>,
    pub requests: String,
    pub streaming: bool,
    pub checks: bool,
}

impl Report {
    /// Builds the report from the merged tally.
    pub fn new(
        info: RunInfo,
        setup: Option<SetupReport>,
        elapsed: Duration,
        tally: &Tally,
        interrupted: bool,
    ) -> Report {
        let secs = elapsed.as_secs_f64();
        let per_sec = |n: u64| if secs > 0.0 { n as f64 / secs } else { 0.0 };
        let count = tally.count();
        let ok = tally.codes[0];
        let mut errors_by_code = BTreeMap::new();
        let mut error_samples = BTreeMap::new();
        for code in 1..CODES {
            let n = tally.codes[code];
            if n > 0 {
                errors_by_code.insert(code_name(code), n);
                if let Some(Some(sample)) = tally.samples.get(code) {
                    error_samples.insert(code_name(code), sample.clone());
                }
            }
        }
        let latency_ms = tally.latency.summary();
        let stream = info.streaming.then(|| StreamReport {
            streams: ok,
            items: tally.items,
            items_per_sec: per_sec(tally.items),
            items_per_stream: if ok > 0 {
                tally.items as f64 / ok as f64
            } else {
                0.0
            },
            empty_streams: tally.empty_streams,
            first_message_ms: tally.first_message.summary(),
            last_message_ms: latency_ms,
        });
        Report {
            call: info.call,
            method: info.method,
            target: info.target,
            concurrency: info.concurrency,
            connections: info.connections,
            rps_target: info.rps_target,
            requests: info.requests,
            setup,
            count,
            ok,
            errors: tally.errors(),
            duration_secs: secs,
            rps: per_sec(count),
            latency_ms,
            histogram: tally.latency.buckets(),
            errors_by_code,
            error_samples,
            check: info.checks.then_some(CheckReport {
                allowed: tally.allowed,
                denied: tally.denied,
                checks_per_sec: per_sec(tally.allowed + tally.denied),
            }),
            stream,
            interrupted,
        }
    }

    /// The report as pretty-printed JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
    }

    /// The report as text, in the spirit of ghz's summary.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail; the results are ignored.
        let w = &mut out;
        if let Some(setup) = &self.setup {
            let _ = writeln!(
                w,
                "Setup: {} into tenant {}: schema {}, {} tuples in {} writes, {:.2} s ({:.0} tuples/s)\n",
                setup.dataset,
                setup.tenant,
                setup.schema_version,
                setup.tuples,
                setup.writes,
                setup.duration_secs,
                setup.tuples as f64 / setup.duration_secs.max(1e-9),
            );
        }
        let rate = match self.rps_target {
            Some(r) => format!("{r} requests/s"),
            None => "unlimited".to_owned(),
        };
        let l = &self.latency_ms;
        let _ = writeln!(w, "Summary:");
        let _ = writeln!(w, "  Call:          {} ({})", self.call, self.method);
        let _ = writeln!(
            w,
            "  Target:        {} ({} connections, concurrency {}, rate {rate})",
            self.target, self.connections, self.concurrency
        );
        let _ = writeln!(w, "  Requests:      {}", self.requests);
        let _ = writeln!(
            w,
            "  Count:         {}{}",
            self.count,
            if self.interrupted {
                " (interrupted)"
            } else {
                ""
            }
        );
        let _ = writeln!(w, "  Total:         {:.2} s", self.duration_secs);
        let _ = writeln!(w, "  Slowest:       {}", fmt_ms(l.max));
        let _ = writeln!(w, "  Fastest:       {}", fmt_ms(l.min));
        let _ = writeln!(w, "  Average:       {}", fmt_ms(l.mean));
        let _ = writeln!(w, "  Requests/sec:  {:.2}", self.rps);

        if !self.histogram.is_empty() {
            let _ = writeln!(w, "\nResponse time histogram (successful calls):");
            let widest = self.histogram.iter().map(|b| b.count).max().unwrap_or(1);
            let labels: Vec<String> = self
                .histogram
                .iter()
                .map(|b| format!("<= {}", fmt_edge(b.le_ms)))
                .collect();
            let label_width = labels.iter().map(String::len).max().unwrap_or(0);
            let count_width = widest.to_string().len();
            for (bucket, label) in self.histogram.iter().zip(&labels) {
                let bar = "∎".repeat(bar_len(bucket.count, widest, 40));
                let _ = writeln!(
                    w,
                    "  {label:<label_width$} [{:>count_width$}] {:>5.1}% |{bar}",
                    bucket.count,
                    bucket.fraction * 100.0
                );
            }
            let _ = writeln!(w, "\nLatency distribution:");
            for (name, value) in [
                ("p50", l.p50),
                ("p90", l.p90),
                ("p99", l.p99),
                ("p99.9", l.p99_9),
            ] {
                let _ = writeln!(w, "  {name:<6} in {}", fmt_ms(value));
            }
        }

        if let Some(check) = &self.check {
            let _ = writeln!(
                w,
                "\nCheck results:\n  ALLOWED {}, DENIED {} ({:.0} checks/s)",
                check.allowed, check.denied, check.checks_per_sec
            );
        }

        if let Some(s) = &self.stream {
            let _ = writeln!(w, "\nStreams:");
            let _ = writeln!(
                w,
                "  {} streams, {} IDs ({:.0} IDs/s), {:.1} IDs per stream, {} empty",
                s.streams, s.items, s.items_per_sec, s.items_per_stream, s.empty_streams
            );
            for (name, m) in [
                ("First message", &s.first_message_ms),
                ("Last message", &s.last_message_ms),
            ] {
                let _ = writeln!(
                    w,
                    "  {name:<14} p50 {}, p90 {}, p99 {}, p99.9 {}, max {}",
                    fmt_ms(m.p50),
                    fmt_ms(m.p90),
                    fmt_ms(m.p99),
                    fmt_ms(m.p99_9),
                    fmt_ms(m.max)
                );
            }
        }

        let _ = writeln!(w, "\nStatus code distribution:");
        let _ = writeln!(w, "  [OK]  {} responses", self.ok);
        for (code, n) in &self.errors_by_code {
            let _ = write!(w, "  [{code}]  {n} responses");
            if let Some(sample) = self.error_samples.get(code) {
                let _ = write!(w, "  (first: {sample})");
            }
            let _ = writeln!(w);
        }
        out
    }
}

fn bar_len(count: u64, widest: u64, width: u64) -> usize {
    if widest == 0 || count == 0 {
        return 0;
    }
    usize::try_from((count * width).div_ceil(widest)).unwrap_or(0)
}

/// A latency in milliseconds, in the unit that reads best: `48.1 µs`, `3.25 ms`, `1.20 s`.
pub fn fmt_ms(ms: f64) -> String {
    if ms < 1.0 {
        format!("{:.1} µs", ms * 1e3)
    } else if ms < 1e3 {
        format!("{ms:.2} ms")
    } else {
        format!("{:.2} s", ms / 1e3)
    }
}

/// A 1-2-5 bucket bound: `500 ns`, `50 µs`, `2 ms`, `1 s`.
fn fmt_edge(ms: f64) -> String {
    let ns = (ms * 1e6).round();
    if ns < 1e3 {
        format!("{ns} ns")
    } else if ns < 1e6 {
        format!("{} µs", ns / 1e3)
    } else if ns < 1e9 {
        format!("{} ms", ns / 1e6)
    } else {
        format!("{} s", ns / 1e9)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(streaming: bool) -> RunInfo {
        RunInfo {
            call: "check",
            method: "base.v1.Permission/Check",
            target: "127.0.0.1:3478".to_owned(),
            concurrency: 4,
            connections: 2,
            rps_target: None,
            requests: "docs:200 (seed 42)".to_owned(),
            streaming,
            checks: !streaming,
        }
    }

    #[test]
    fn formats() {
        assert_eq!(fmt_ms(0.0481), "48.1 µs");
        assert_eq!(fmt_ms(3.254), "3.25 ms");
        assert_eq!(fmt_ms(1200.0), "1.20 s");
        assert_eq!(fmt_edge(0.05), "50 µs");
        assert_eq!(fmt_edge(0.0005), "500 ns");
        assert_eq!(fmt_edge(2.0), "2 ms");
        assert_eq!(fmt_edge(5000.0), "5 s");
        assert_eq!(bar_len(5, 10, 40), 20);
        assert_eq!(bar_len(1, 1000, 40), 1);
        assert_eq!(bar_len(0, 10, 40), 0);
    }

    #[test]
    fn reports_from_a_tally() {
        let mut tally = Tally::new().unwrap();
        let mut lat = crate::loadgen::histogram::Latencies::new().unwrap();
        for i in 1..=100u64 {
            lat.record(Duration::from_micros(i * 10));
        }
        tally.latency = lat;
        tally.codes[0] = 100;
        tally.codes[14] = 2;
        tally.samples[14] = Some("connection refused".to_owned());
        tally.allowed = 60;
        tally.denied = 40;
        let r = Report::new(info(false), None, Duration::from_secs(2), &tally, false);
        assert_eq!(r.count, 102);
        assert_eq!(r.ok, 100);
        assert_eq!(r.errors, 2);
        assert!((r.rps - 51.0).abs() < 1e-9);
        assert_eq!(r.errors_by_code.get("UNAVAILABLE"), Some(&2));
        assert!(r.latency_ms.p50 <= r.latency_ms.p99);
        assert!(r.stream.is_none());
        let json: serde_json::Value = serde_json::from_str(&r.to_json()).unwrap();
        assert_eq!(json["count"], 102);
        assert_eq!(json["errors_by_code"]["UNAVAILABLE"], 2);
        assert_eq!(json["check"]["allowed"], 60);
        assert_eq!(json["check"]["checks_per_sec"], 50.0);
        assert!(json["latency_ms"]["p99.9"].as_f64().unwrap() > 0.0);
        assert!(json["histogram"].as_array().unwrap().len() >= 2);
        let text = r.to_text();
        assert!(text.contains("Requests/sec:  51.00"), "{text}");
        assert!(text.contains("[UNAVAILABLE]  2 responses  (first: connection refused)"));
        assert!(
            text.contains("ALLOWED 60, DENIED 40 (50 checks/s)"),
            "{text}"
        );
    }

    #[test]
    fn empty_runs_report_zeros_not_nan() {
        let tally = Tally::new().unwrap();
        let r = Report::new(info(true), None, Duration::ZERO, &tally, true);
        assert_eq!(r.rps, 0.0);
        let s = r.stream.as_ref().unwrap();
        assert_eq!(s.items_per_stream, 0.0);
        let json: serde_json::Value = serde_json::from_str(&r.to_json()).unwrap();
        assert_eq!(json["interrupted"], true);
        assert_eq!(json["stream"]["items_per_sec"], 0.0);
        assert!(r.to_text().contains("(interrupted)"));
    }
}
