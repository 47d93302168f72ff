//! Traffic limits: load shedding, open streams, deadlines, and cancelling evaluations whose
//! caller has gone.
//!
//! - **Load shedding**: at most `max_inflight` calls are being handled at once (from admission
//!   until the response starts); one more is refused at once with RESOURCE_EXHAUSTED (HTTP 429)
//!   instead of waiting in a queue that grows without bound.
//! - **Streams**: at most `max_concurrent_streams` server streams (LookupEntityStream, Watch,
//!   over both transports) are open at once; one more is RESOURCE_EXHAUSTED / 429.
//! - **Deadlines**: a call must produce its response (for a stream: its first message's
//!   evaluation) within `request_timeout`, or within the client's `grpc-timeout` if that is
//!   sooner; otherwise DEADLINE_EXCEEDED (HTTP 504) and its work is cancelled.
//! - **Cancellation**: when the future waiting for an evaluation is dropped (the client went
//!   away, or the deadline passed), [`crate::service::CancelOnDrop`] sets the evaluation's flag and the engine
//!   stops at its next poll (see `lookout_engine::eval::cancel`).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::error::{ApiError, ErrorCode};

/// Limits on the traffic a server accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrafficLimits {
    /// Most calls handled at once; more are refused at once.
    pub max_inflight: usize,
    /// Most server streams open at once.
    pub max_concurrent_streams: usize,
    /// Longest a call may take to produce its response; None for no limit.
    pub request_timeout: Option<Duration>,
}

impl Default for TrafficLimits {
    fn default() -> Self {
        TrafficLimits {
            max_inflight: 1000,
            max_concurrent_streams: 1000,
            request_timeout: Some(Duration::from_secs(60)),
        }
    }
}

/// Counts calls in flight and open streams against their limits.
#[derive(Debug)]
pub struct Admission {
    limits: TrafficLimits,
    inflight: Arc<AtomicUsize>,
    streams: Arc<AtomicUsize>,
}

/// A place among the calls in flight or the open streams; given back on drop.
#[derive(Debug)]
pub struct Permit {
    counter: Arc<AtomicUsize>,
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.counter.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A place in `counter` if it is below `max` (the counter of calls, streams or connections).
pub(crate) fn acquire(counter: &Arc<AtomicUsize>, max: usize) -> Option<Permit> {
    counter
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
            (n < max).then_some(n + 1)
        })
        .ok()
        .map(|_| Permit {
            counter: counter.clone(),
        })
}

impl Admission {
    pub fn new(limits: TrafficLimits) -> Admission {
        Admission {
            limits,
            inflight: Arc::new(AtomicUsize::new(0)),
            streams: Arc::new(AtomicUsize::new(0)),
        }
    }

    pub fn limits(&self) -> &TrafficLimits {
        &self.limits
    }

    /// A place among the calls in flight, or RESOURCE_EXHAUSTED.
    pub fn call(&self) -> Result<Permit, ApiError> {
        acquire(&self.inflight, self.limits.max_inflight).ok_or_else(|| {
            ApiError::new(
                ErrorCode::ResourceExhausted,
                format!(
                    "the server is overloaded: {} calls are in flight (--max-inflight); retry later",
                    self.limits.max_inflight
                ),
            )
        })
    }

    /// A place among the open streams, or RESOURCE_EXHAUSTED.
    pub fn stream(&self) -> Result<Permit, ApiError> {
        acquire(&self.streams, self.limits.max_concurrent_streams).ok_or_else(|| {
            ApiError::new(
                ErrorCode::ResourceExhausted,
                format!(
                    "too many open streams: at most {} at once (--max-concurrent-streams); retry later",
                    self.limits.max_concurrent_streams
                ),
            )
        })
    }

    /// Calls in flight now.
    pub fn inflight(&self) -> usize {
        self.inflight.load(Ordering::Acquire)
    }

    /// Streams open now.
    pub fn open_streams(&self) -> usize {
        self.streams.load(Ordering::Acquire)
    }

    /// The deadline of a call: the server's timeout, or the client's `grpc-timeout` if sooner.
    pub fn deadline(&self, grpc_timeout: Option<&[u8]>) -> Option<Duration> {
        let client = grpc_timeout.and_then(parse_grpc_timeout);
        match (self.limits.request_timeout, client) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

/// The error of a call that ran out of time.
pub fn deadline_exceeded(deadline: Duration) -> ApiError {
    ApiError::new(
        ErrorCode::DeadlineExceeded,
        format!(
            "deadline exceeded: the call did not finish within {deadline:?}; its work was cancelled"
        ),
    )
}

/// Parses a gRPC `grpc-timeout` value: up to 8 digits and a unit (`H`, `M`, `S`, `m`, `u`, `n`).
pub fn parse_grpc_timeout(value: &[u8]) -> Option<Duration> {
    let text = std::str::from_utf8(value).ok()?.trim();
    if text.len() < 2 || text.len() > 9 {
        return None;
    }
    let (digits, unit) = text.split_at(text.len() - 1);
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n.saturating_mul(3600)),
        "M" => Duration::from_secs(n.saturating_mul(60)),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic, reason = "tests fail by panicking")]
mod tests {
    use super::*;

    #[test]
    fn grpc_timeouts_parse() {
        assert_eq!(
            parse_grpc_timeout(b"100m"),
            Some(Duration::from_millis(100))
        );
        assert_eq!(parse_grpc_timeout(b"2S"), Some(Duration::from_secs(2)));
        assert_eq!(parse_grpc_timeout(b"1H"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_grpc_timeout(b"5u"), Some(Duration::from_micros(5)));
        for bad in [&b""[..], b"m", b"10", b"10x", b"123456789S", b"-1S"] {
            assert_eq!(parse_grpc_timeout(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn permits_count_and_shed() {
        let admission = Admission::new(TrafficLimits {
            max_inflight: 2,
            max_concurrent_streams: 1,
            request_timeout: Some(Duration::from_secs(5)),
        });
        let a = admission.call().unwrap();
        let _b = admission.call().unwrap();
        let e = admission.call().unwrap_err();
        assert_eq!(e.code, ErrorCode::ResourceExhausted);
        assert!(e.message.contains("--max-inflight"), "{e}");
        drop(a);
        let _c = admission.call().unwrap();
        assert_eq!(admission.inflight(), 2);
        let s = admission.stream().unwrap();
        assert!(
            admission
                .stream()
                .unwrap_err()
                .message
                .contains("--max-concurrent-streams")
        );
        drop(s);
        assert_eq!(admission.open_streams(), 0);
        assert_eq!(
            admission.deadline(Some(b"100m")),
            Some(Duration::from_millis(100))
        );
        assert_eq!(
            admission.deadline(Some(b"1H")),
            Some(Duration::from_secs(5))
        );
        assert_eq!(admission.deadline(None), Some(Duration::from_secs(5)));
    }

    #[test]
    fn dropping_the_waiter_cancels() {
        use std::sync::atomic::AtomicBool;

        use crate::service::CancelOnDrop;
        let flag = Arc::new(AtomicBool::new(false));
        drop(CancelOnDrop(flag.clone()));
        assert!(flag.load(Ordering::Relaxed));
    }
}
