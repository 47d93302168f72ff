//! Latency recording: an [`hdrhistogram`] of nanoseconds (three significant digits, so every
//! percentile is within 0.1 % of the exact value), with the summary statistics and the
//! 1-2-5 bucket view that the reports print.

use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

/// Largest latency tracked exactly: one hour. Longer calls are recorded as one hour.
const MAX_TRACKABLE_NS: u64 = 3_600_000_000_000;
/// Significant decimal digits kept per value.
const SIGNIFICANT_DIGITS: u8 = 3;

/// A histogram could not be created or merged (only possible with inconsistent bounds).
#[derive(Debug, thiserror::Error)]
#[error("latency histogram: {0}")]
pub struct HistogramError(String);

/// Latencies of one kind (whole call, or time to first stream message).
#[derive(Debug, Clone)]
pub struct Latencies {
    hist: Histogram<u64>,
}

/// Summary statistics, in milliseconds. All zero when nothing was recorded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Summary {
    /// Number of values recorded.
    pub count: u64,
    pub min: f64,
    pub mean: f64,
    pub stdev: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    #[serde(rename = "p99.9")]
    pub p99_9: f64,
    pub max: f64,
}

/// One histogram bucket: the values in `(previous le, le]` (the first bucket starts at the
/// minimum).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Bucket {
    /// Upper bound of the bucket, in milliseconds.
    pub le_ms: f64,
    pub count: u64,
    /// `count` over all values recorded.
    pub fraction: f64,
}

impl Latencies {
    /// An empty histogram covering 1 ns to one hour.
    pub fn new() -> Result<Latencies, HistogramError> {
        Histogram::new_with_bounds(1, MAX_TRACKABLE_NS, SIGNIFICANT_DIGITS)
            .map(|hist| Latencies { hist })
            .map_err(|e| HistogramError(format!("{e:?}")))
    }

    /// Records one latency (clamped to the trackable range).
    pub fn record(&mut self, latency: Duration) {
        let ns = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX);
        self.hist.saturating_record(ns.max(1));
    }

    /// Adds every value of `other`.
    pub fn merge(&mut self, other: &Latencies) -> Result<(), HistogramError> {
        self.hist
            .add(&other.hist)
            .map_err(|e| HistogramError(format!("{e:?}")))
    }

    /// Number of values recorded.
    pub fn count(&self) -> u64 {
        self.hist.len()
    }

    /// The latency at quantile `q` (0.0 to 1.0).
    pub fn quantile(&self, q: f64) -> Duration {
        if self.hist.is_empty() {
            return Duration::ZERO;
        }
        Duration::from_nanos(self.hist.value_at_quantile(q))
    }

    /// Minimum, maximum, mean, standard deviation and the usual percentiles.
    pub fn summary(&self) -> Summary {
        if self.hist.is_empty() {
            return Summary::default();
        }
        let h = &self.hist;
        Summary {
            count: h.len(),
            min: ns_to_ms(h.min() as f64),
            mean: ns_to_ms(h.mean()),
            stdev: ns_to_ms(h.stdev()),
            p50: ns_to_ms(h.value_at_quantile(0.5) as f64),
            p90: ns_to_ms(h.value_at_quantile(0.9) as f64),
            p99: ns_to_ms(h.value_at_quantile(0.99) as f64),
            p99_9: ns_to_ms(h.value_at_quantile(0.999) as f64),
            max: ns_to_ms(h.max() as f64),
        }
    }

    /// Counts per bucket, with bucket bounds on a 1-2-5 series (…, 50 µs, 100 µs, 200 µs, …)
    /// from the first bound at or above the minimum to the first at or above the maximum.
    pub fn buckets(&self) -> Vec<Bucket> {
        if self.hist.is_empty() {
            return Vec::new();
        }
        let h = &self.hist;
        let edges = bucket_edges(h.min(), h.max());
        let mut counts = vec![0u64; edges.len()];
        for v in h.iter_recorded() {
            // Histogram values stand for a small range; file each under its lowest member so
            // that a value recorded exactly on a bound stays in the bucket it closes.
            let value = h.lowest_equivalent(v.value_iterated_to());
            let slot = edges.partition_point(|&edge| edge < value);
            if let Some(count) = counts.get_mut(slot.min(edges.len().saturating_sub(1))) {
                *count += v.count_at_value();
            }
        }
        let total = h.len() as f64;
        edges
            .iter()
            .zip(counts)
            .map(|(&edge, count)| Bucket {
                le_ms: ns_to_ms(edge as f64),
                count,
                fraction: count as f64 / total,
            })
            .collect()
    }
}

fn ns_to_ms(ns: f64) -> f64 {
    ns / 1e6
}

/// The 1-2-5 series bounds covering `min..=max` (nanoseconds): the first bound is the smallest
/// series value `>= min`, the last the smallest `>= max`.
pub fn bucket_edges(min: u64, max: u64) -> Vec<u64> {
    let max = max.max(min);
    let mut edges = Vec::new();
    let mut decade: u64 = 1;
    'outer: loop {
        for step in [1u64, 2, 5] {
            let Some(edge) = decade.checked_mul(step) else {
                edges.push(u64::MAX);
                break 'outer;
            };
            if edge >= min {
                edges.push(edge);
            }
            if edge >= max {
                break 'outer;
            }
        }
        let Some(next) = decade.checked_mul(10) else {
            edges.push(u64::MAX);
            break;
        };
        decade = next;
    }
    edges
}

#[cfg(test)]
mod tests {
    use super::*;

    fn us(n: u64) -> Duration {
        Duration::from_micros(n)
    }

    fn close(actual: f64, expected: f64) -> bool {
        (actual - expected).abs() <= expected.abs() * 0.001 + 1e-9
    }

    #[test]
    fn percentiles_of_a_uniform_run() {
        let mut h = Latencies::new().unwrap();
        for i in 1..=1000 {
            h.record(us(i));
        }
        let s = h.summary();
        assert_eq!(s.count, 1000);
        assert!(close(s.min, 0.001), "{s:?}");
        assert!(close(s.max, 1.0), "{s:?}");
        assert!(close(s.mean, 0.5005), "{s:?}");
        assert!(close(s.p50, 0.5), "{s:?}");
        assert!(close(s.p90, 0.9), "{s:?}");
        assert!(close(s.p99, 0.99), "{s:?}");
        assert!(close(s.p99_9, 0.999), "{s:?}");
        assert!(s.min <= s.p50 && s.p50 <= s.p90 && s.p90 <= s.p99 && s.p99 <= s.max);
        assert!(close(h.quantile(0.5).as_secs_f64() * 1e3, 0.5));
    }

    #[test]
    fn a_single_slow_call_is_the_tail() {
        let mut h = Latencies::new().unwrap();
        for _ in 0..999 {
            h.record(us(100));
        }
        h.record(Duration::from_millis(250));
        let s = h.summary();
        assert!(close(s.p50, 0.1) && close(s.p99, 0.1), "{s:?}");
        assert!(close(s.max, 250.0), "{s:?}");
        // p99.9 is the 999th value of 1000: still the fast one.
        assert!(close(s.p99_9, 0.1), "{s:?}");
    }

    #[test]
    fn merging_equals_recording_into_one() {
        let mut all = Latencies::new().unwrap();
        let mut a = Latencies::new().unwrap();
        let mut b = Latencies::new().unwrap();
        for i in 0..500u64 {
            let d = us(i * 7 % 300 + 1);
            all.record(d);
            if i % 2 == 0 { &mut a } else { &mut b }.record(d);
        }
        a.merge(&b).unwrap();
        assert_eq!(a.summary(), all.summary());
        assert_eq!(a.buckets(), all.buckets());
    }

    #[test]
    fn empty_histograms_report_zeros() {
        let h = Latencies::new().unwrap();
        assert_eq!(h.summary(), Summary::default());
        assert!(h.buckets().is_empty());
        assert_eq!(h.quantile(0.99), Duration::ZERO);
    }

    #[test]
    fn out_of_range_values_are_clamped() {
        let mut h = Latencies::new().unwrap();
        h.record(Duration::ZERO);
        h.record(Duration::from_secs(7200));
        let s = h.summary();
        assert_eq!(s.count, 2);
        assert!(s.min > 0.0);
        assert!(close(s.max, 3_600_000.0), "{s:?}");
    }

    #[test]
    fn bucket_edges_follow_the_1_2_5_series() {
        assert_eq!(
            bucket_edges(55_000, 4_200_000),
            vec![100_000, 200_000, 500_000, 1_000_000, 2_000_000, 5_000_000]
        );
        assert_eq!(bucket_edges(1, 1), vec![1]);
        assert_eq!(bucket_edges(100, 100), vec![100]);
        assert_eq!(bucket_edges(101, 150), vec![200]);
        assert_eq!(bucket_edges(3, 20), vec![5, 10, 20]);
        // max below min is treated as max == min.
        assert_eq!(bucket_edges(300, 10), vec![500]);
        let huge = bucket_edges(u64::MAX - 1, u64::MAX);
        assert_eq!(huge.last(), Some(&u64::MAX));
    }

    #[test]
    fn buckets_count_every_value_once() {
        let mut h = Latencies::new().unwrap();
        // 100 µs exactly sits on a bound and belongs to the bucket it closes.
        for _ in 0..10 {
            h.record(us(100));
        }
        for _ in 0..5 {
            h.record(us(150));
        }
        h.record(us(900));
        let b = h.buckets();
        let bounds: Vec<f64> = b.iter().map(|b| b.le_ms).collect();
        assert_eq!(bounds, vec![0.1, 0.2, 0.5, 1.0]);
        let counts: Vec<u64> = b.iter().map(|b| b.count).collect();
        assert_eq!(counts, vec![10, 5, 0, 1]);
        let fractions: f64 = b.iter().map(|b| b.fraction).sum();
        assert!(close(fractions, 1.0));
    }
}
