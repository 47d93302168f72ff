//! The run itself: HTTP/2 connections, workers with one request in flight each, even pacing,
//! and recording into a few lock-sharded tallies.
//!
//! The timed section of a request is just the call: its message is taken from the pool (the
//! prebuilt bytes of a unary request, a clone of a prebuilt stream request, or generated)
//! before the clock starts, and the outcome is recorded after it stops. Recording touches a
//! histogram under an uncontended mutex (workers are spread over up to 16 shards) and three
//! atomic counters that the progress bar reads.

use std::future::Future;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use lookout_proto::v1::permission_client::PermissionClient;
use lookout_proto::v1::{
    CheckResult, DataWriteResponse, PermissionBulkCheckResponse, PermissionCheckResponse,
    PermissionLookupEntityRequest,
};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tonic::client::Grpc;
use tonic::codec::{Codec, EncodeBuf, Encoder};
use tonic::codegen::http::uri::PathAndQuery;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status};
use tonic_health::pb::HealthCheckResponse;
use tonic_prost::ProstDecoder;

use super::LoadgenError;
use super::cli::Call;
use super::histogram::Latencies;
use super::requests::Pool;

/// Shards of the tally, at most.
const MAX_SHARDS: usize = 16;
/// gRPC status codes 0 (OK) to 16 (UNAUTHENTICATED).
pub const CODES: usize = 17;

/// What one call came to.
#[derive(Debug, Default)]
pub struct Outcome {
    /// When the first stream message arrived.
    pub first_message: Option<Instant>,
    /// Stream messages received.
    pub items: u64,
    /// Checks answered ALLOWED (a bulk check answers several).
    pub allowed: u64,
    /// Checks answered DENIED.
    pub denied: u64,
    /// Why the call failed.
    pub error: Option<Status>,
}

impl Outcome {
    fn failed(status: Status) -> Outcome {
        Outcome {
            error: Some(status),
            ..Outcome::default()
        }
    }
}

/// One kind of call, made on a cloned client.
pub trait Caller: Clone + Send + 'static {
    type Req: Clone + Send + Sync + 'static;
    /// Whether the call is server streaming (time to first message is recorded).
    const STREAMING: bool = false;
    fn call(&mut self, req: Self::Req) -> impl Future<Output = Outcome> + Send;
}

/// A unary call whose request was protobuf-encoded before the run ([`Pool::encoded`]): the
/// same bytes a generated client sends, on the same tonic client stack, without a message
/// clone and encode per call. `read` takes what the report needs from the response: the
/// (allowed, denied) counts of the checks it answers.
pub struct Unary<Resp> {
    grpc: Grpc<Channel>,
    path: PathAndQuery,
    read: fn(&Resp) -> (u64, u64),
}

impl<Resp> Clone for Unary<Resp> {
    fn clone(&self) -> Self {
        Unary {
            grpc: self.grpc.clone(),
            path: self.path.clone(),
            read: self.read,
        }
    }
}

impl<Resp> Unary<Resp> {
    /// Calls `call`'s method on `channel`.
    pub fn new(channel: Channel, call: Call, read: fn(&Resp) -> (u64, u64)) -> Self {
        Unary {
            grpc: Grpc::new(channel),
            path: PathAndQuery::from_static(call.path()),
            read,
        }
    }
}

/// Permission.Check, its answer recorded.
pub fn check(channel: Channel) -> Unary<PermissionCheckResponse> {
    Unary::new(channel, Call::Check, |r| answers(std::slice::from_ref(r)))
}

/// Permission.BulkCheck, its answers recorded.
pub fn bulk_check(channel: Channel) -> Unary<PermissionBulkCheckResponse> {
    Unary::new(channel, Call::BulkCheck, |r| answers(&r.results))
}

/// The (allowed, denied) counts of check answers.
fn answers(results: &[PermissionCheckResponse]) -> (u64, u64) {
    let allowed = results
        .iter()
        .filter(|r| r.can == CheckResult::Allowed as i32)
        .count() as u64;
    (allowed, results.len() as u64 - allowed)
}

/// Data.Write.
pub fn write(channel: Channel) -> Unary<DataWriteResponse> {
    Unary::new(channel, Call::Write, |_| (0, 0))
}

/// grpc.health.v1.Health/Check.
pub fn health(channel: Channel) -> Unary<HealthCheckResponse> {
    Unary::new(channel, Call::Health, |_| (0, 0))
}

impl<Resp: prost::Message + Default + Send + Sync + 'static> Caller for Unary<Resp> {
    type Req = Bytes;
    async fn call(&mut self, req: Bytes) -> Outcome {
        if let Err(e) = self.grpc.ready().await {
            return Outcome::failed(Status::unavailable(format!("connection not ready: {e}")));
        }
        let codec = PreEncoded::<Resp>(PhantomData);
        match self
            .grpc
            .unary(tonic::Request::new(req), self.path.clone(), codec)
            .await
        {
            Ok(response) => {
                let (allowed, denied) = (self.read)(response.get_ref());
                Outcome {
                    allowed,
                    denied,
                    ..Outcome::default()
                }
            }
            Err(status) => Outcome::failed(status),
        }
    }
}

/// Sends protobuf bytes as they are; decodes the response with prost.
struct PreEncoded<Resp>(PhantomData<fn() -> Resp>);

impl<Resp: prost::Message + Default + Send + 'static> Codec for PreEncoded<Resp> {
    type Encode = Bytes;
    type Decode = Resp;
    type Encoder = BytesEncoder;
    type Decoder = ProstDecoder<Resp>;

    fn encoder(&mut self) -> BytesEncoder {
        BytesEncoder
    }

    fn decoder(&mut self) -> ProstDecoder<Resp> {
        ProstDecoder::default()
    }
}

struct BytesEncoder;

impl Encoder for BytesEncoder {
    type Item = Bytes;
    type Error = Status;

    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put(item);
        Ok(())
    }
}

/// Permission.LookupEntityStream, read to the end.
#[derive(Clone)]
pub struct LookupEntityStreamCaller(pub PermissionClient<Channel>);

impl Caller for LookupEntityStreamCaller {
    type Req = PermissionLookupEntityRequest;
    const STREAMING: bool = true;
    async fn call(&mut self, req: Self::Req) -> Outcome {
        let mut stream = match self.0.lookup_entity_stream(req).await {
            Ok(response) => response.into_inner(),
            Err(status) => return Outcome::failed(status),
        };
        let mut outcome = Outcome::default();
        loop {
            match stream.message().await {
                Ok(Some(_)) => {
                    if outcome.first_message.is_none() {
                        outcome.first_message = Some(Instant::now());
                    }
                    outcome.items += 1;
                }
                Ok(None) => return outcome,
                Err(status) => {
                    outcome.error = Some(status);
                    return outcome;
                }
            }
        }
    }
}

/// Opens `connections` HTTP/2 connections to `target` (`HOST:PORT` or a URI).
pub async fn connect(target: &str, connections: usize) -> Result<Vec<Channel>, LoadgenError> {
    let uri = if target.contains("://") {
        target.to_owned()
    } else {
        format!("http://{target}")
    };
    let endpoint = Endpoint::from_shared(uri)
        .map_err(|e| LoadgenError::Target {
            target: target.to_owned(),
            detail: error_chain(&e),
        })?
        .tcp_nodelay(true)
        .connect_timeout(Duration::from_secs(5))
        // Streams of many IDs should not wait on flow control.
        .initial_stream_window_size(1 << 20)
        .initial_connection_window_size(8 << 20);
    let mut channels = Vec::with_capacity(connections);
    for _ in 0..connections {
        let channel = endpoint
            .connect()
            .await
            .map_err(|e| LoadgenError::Connect {
                target: target.to_owned(),
                detail: error_chain(&e),
            })?;
        channels.push(channel);
    }
    Ok(channels)
}

/// An error with its sources, `a: b: c` (tonic's transport errors say little on their own).
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let more = s.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = s.source();
    }
    text
}

/// Everything recorded, per shard and then merged.
#[derive(Debug, Clone)]
pub struct Tally {
    /// Latency of successful calls (to the last message for streams).
    pub latency: Latencies,
    /// Time to the first message of successful streams that had one.
    pub first_message: Latencies,
    /// Calls by gRPC status code (index = code).
    pub codes: [u64; CODES],
    /// The first error message seen per code.
    pub samples: Vec<Option<String>>,
    /// Stream messages received.
    pub items: u64,
    /// Successful streams without a message.
    pub empty_streams: u64,
    pub allowed: u64,
    pub denied: u64,
}

impl Tally {
    pub fn new() -> Result<Tally, LoadgenError> {
        Ok(Tally {
            latency: Latencies::new()?,
            first_message: Latencies::new()?,
            codes: [0; CODES],
            samples: vec![None; CODES],
            items: 0,
            empty_streams: 0,
            allowed: 0,
            denied: 0,
        })
    }

    fn add(&mut self, streaming: bool, sent: Instant, finished: Instant, outcome: Outcome) {
        self.items += outcome.items;
        match outcome.error {
            None => {
                self.codes[0] += 1;
                self.latency
                    .record(finished.saturating_duration_since(sent));
                if streaming {
                    match outcome.first_message {
                        Some(first) => self
                            .first_message
                            .record(first.saturating_duration_since(sent)),
                        None => self.empty_streams += 1,
                    }
                }
                self.allowed += outcome.allowed;
                self.denied += outcome.denied;
            }
            Some(status) => {
                let code = code_index(status.code());
                if let Some(count) = self.codes.get_mut(code) {
                    *count += 1;
                }
                if let Some(sample @ None) = self.samples.get_mut(code) {
                    *sample = Some(status.message().to_owned());
                }
            }
        }
    }

    pub fn merge(&mut self, other: &Tally) -> Result<(), LoadgenError> {
        self.latency.merge(&other.latency)?;
        self.first_message.merge(&other.first_message)?;
        for (mine, theirs) in self.codes.iter_mut().zip(other.codes) {
            *mine += theirs;
        }
        for (mine, theirs) in self.samples.iter_mut().zip(&other.samples) {
            if mine.is_none() {
                mine.clone_from(theirs);
            }
        }
        self.items += other.items;
        self.empty_streams += other.empty_streams;
        self.allowed += other.allowed;
        self.denied += other.denied;
        Ok(())
    }

    /// Calls made (successful or not).
    pub fn count(&self) -> u64 {
        self.codes.iter().sum()
    }

    /// Failed calls.
    pub fn errors(&self) -> u64 {
        self.count() - self.codes[0]
    }
}

fn code_index(code: Code) -> usize {
    (code as usize).min(CODES - 1)
}

/// The canonical name of a gRPC status code, as in `grpc-status` documentation.
pub fn code_name(index: usize) -> &'static str {
    const NAMES: [&str; CODES] = [
        "OK",
        "CANCELLED",
        "UNKNOWN",
        "INVALID_ARGUMENT",
        "DEADLINE_EXCEEDED",
        "NOT_FOUND",
        "ALREADY_EXISTS",
        "PERMISSION_DENIED",
        "RESOURCE_EXHAUSTED",
        "FAILED_PRECONDITION",
        "ABORTED",
        "OUT_OF_RANGE",
        "UNIMPLEMENTED",
        "INTERNAL",
        "UNAVAILABLE",
        "DATA_LOSS",
        "UNAUTHENTICATED",
    ];
    NAMES.get(index).copied().unwrap_or("UNKNOWN")
}

/// How a run is driven.
#[derive(Debug, Clone)]
pub struct Settings {
    pub concurrency: usize,
    /// Requests to make at most (`u64::MAX`: until the duration ends).
    pub limit: u64,
    pub duration: Option<Duration>,
    /// Requests per second over all workers.
    pub rate: Option<f64>,
    pub timeout: Option<Duration>,
    pub progress: bool,
}

struct Plan {
    start: Instant,
    limit: u64,
    deadline: Option<Instant>,
    rate: Option<f64>,
    timeout: Option<Duration>,
}

struct Shared {
    next: AtomicU64,
    done: AtomicU64,
    failed: AtomicU64,
    items: AtomicU64,
    shards: Vec<Mutex<Tally>>,
}

impl Shared {
    fn record(
        &self,
        shard: usize,
        streaming: bool,
        sent: Instant,
        finished: Instant,
        outcome: Outcome,
    ) {
        let failed = outcome.error.is_some();
        let items = outcome.items;
        if let Some(tally) = self.shards.get(shard) {
            tally
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .add(streaming, sent, finished, outcome);
        }
        if items > 0 {
            self.items.fetch_add(items, Relaxed);
        }
        if failed {
            self.failed.fetch_add(1, Relaxed);
        }
        self.done.fetch_add(1, Relaxed);
    }
}

/// Runs `settings.concurrency` workers over `callers` (one per connection; worker `w` uses
/// connection `w % callers.len()`) until the limit, the duration or `stop`. Returns the wall
/// time from the first request to the last response, and the merged tally.
pub async fn drive<C: Caller>(
    callers: Vec<C>,
    pool: Arc<Pool<C::Req>>,
    settings: &Settings,
    stop: watch::Receiver<bool>,
) -> Result<(Duration, Tally), LoadgenError> {
    if callers.is_empty() {
        return Err(LoadgenError::Usage("no connections".to_owned()));
    }
    let shard_count = settings.concurrency.clamp(1, MAX_SHARDS);
    let shards = (0..shard_count)
        .map(|_| Tally::new().map(Mutex::new))
        .collect::<Result<Vec<_>, _>>()?;
    let shared = Arc::new(Shared {
        next: AtomicU64::new(0),
        done: AtomicU64::new(0),
        failed: AtomicU64::new(0),
        items: AtomicU64::new(0),
        shards,
    });
    let start = Instant::now();
    let plan = Arc::new(Plan {
        start,
        limit: settings.limit,
        deadline: settings.duration.map(|d| start + d),
        rate: settings.rate,
        timeout: settings.timeout,
    });
    let pacer = match plan.rate {
        Some(rate) => Some(Arc::new(Pacer::start(&plan, rate)?)),
        None => None,
    };
    let progress = settings
        .progress
        .then(|| Progress::start(settings, start, &shared));

    let mut workers = JoinSet::new();
    for (w, caller) in (0..settings.concurrency).zip(callers.iter().cycle()) {
        workers.spawn(worker(
            caller.clone(),
            Arc::clone(&pool),
            Arc::clone(&shared),
            Arc::clone(&plan),
            pacer.clone(),
            w % shard_count,
            stop.clone(),
        ));
    }
    let mut failure = None;
    while let Some(joined) = workers.join_next().await {
        if let Err(e) = joined {
            failure.get_or_insert_with(|| LoadgenError::Worker(e.to_string()));
        }
    }
    let elapsed = start.elapsed();
    drop(pacer);
    if let Some(progress) = progress {
        progress.finish();
    }
    if let Some(e) = failure {
        return Err(e);
    }

    let mut total = Tally::new()?;
    for shard in &shared.shards {
        total.merge(&shard.lock().unwrap_or_else(PoisonError::into_inner))?;
    }
    Ok((elapsed, total))
}

async fn worker<C: Caller>(
    mut caller: C,
    pool: Arc<Pool<C::Req>>,
    shared: Arc<Shared>,
    plan: Arc<Plan>,
    pacer: Option<Arc<Pacer>>,
    shard: usize,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        if *stop.borrow() {
            break;
        }
        if let Some(pacer) = &pacer {
            tokio::select! {
                biased;
                Ok(()) = stop.changed() => break,
                released = pacer.next() => if !released { break },
            }
        }
        let i = shared.next.fetch_add(1, Relaxed);
        if i >= plan.limit {
            break;
        }
        if plan
            .deadline
            .is_some_and(|deadline| Instant::now() >= deadline)
        {
            break;
        }
        let Some(req) = pool.get(i) else { break };

        let sent = Instant::now();
        let outcome = match plan.timeout {
            Some(limit) => match tokio::time::timeout(limit, caller.call(req)).await {
                Ok(outcome) => outcome,
                Err(_) => Outcome::failed(Status::deadline_exceeded(format!(
                    "client-side timeout after {limit:?}"
                ))),
            },
            None => caller.call(req).await,
        };
        let finished = Instant::now();

        shared.record(shard, C::STREAMING, sent, finished, outcome);
    }
}

/// Releases requests at the target rate from a thread of its own: request `i` may leave at
/// `start + i / rate`, whichever worker takes it, and a late worker sends at once (the
/// schedule catches up). Workers sleeping on tokio timers instead would leave in bursts, since
/// those tick once a millisecond (ten requests at a time at 10,000/s); a thread sleeps to
/// within tens of microseconds.
struct Pacer {
    permits: Arc<Semaphore>,
    /// Requests the run may send (the limit, or those due before the deadline).
    last: u64,
    /// Permits taken so far: past `last` they only tell a worker that the run is over.
    taken: AtomicU64,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Pacer {
    fn start(plan: &Plan, rate: f64) -> Result<Pacer, LoadgenError> {
        let permits = Arc::new(Semaphore::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (start, limit, deadline) = (plan.start, plan.limit, plan.deadline);
        // How many requests are due by `t` (at most `limit`, and none at or past the deadline).
        let due_by = move |t: Instant| -> u64 {
            let upto = |t: Instant| (t - start).as_secs_f64() * rate;
            let mut n = (upto(t).floor() + 1.0).min(limit as f64);
            if let Some(d) = deadline {
                n = n.min(upto(d).ceil());
            }
            n as u64
        };
        let (out, halt) = (Arc::clone(&permits), Arc::clone(&stop));
        let last = deadline.map_or(limit, due_by);
        let thread = std::thread::Builder::new()
            .name("lookout-loadgen-pacer".to_owned())
            .spawn(move || {
                let mut released = 0;
                while released < last && !halt.load(Relaxed) {
                    let now = Instant::now();
                    let due = due_by(now);
                    if due > released {
                        out.add_permits(usize::try_from(due - released).unwrap_or(usize::MAX >> 4));
                        released = due;
                        continue;
                    }
                    let next = start + Duration::from_secs_f64(released as f64 / rate);
                    std::thread::park_timeout(next.saturating_duration_since(now));
                }
                // Wake every waiting worker; `next` tells them apart from the real ones.
                out.add_permits(Semaphore::MAX_PERMITS / 2);
            })
            .map_err(|e| LoadgenError::Worker(format!("cannot start the pacing thread: {e}")))?;
        Ok(Pacer {
            permits,
            last,
            taken: AtomicU64::new(0),
            stop,
            thread: Some(thread),
        })
    }

    /// Waits for the next request's turn; `false` once no more will come.
    async fn next(&self) -> bool {
        match self.permits.acquire().await {
            Ok(permit) => {
                permit.forget();
                self.taken.fetch_add(1, Relaxed) < self.last
            }
            Err(_) => false,
        }
    }
}

impl Drop for Pacer {
    fn drop(&mut self) {
        self.stop.store(true, Relaxed);
        if let Some(thread) = self.thread.take() {
            thread.thread().unpark();
            let _ = thread.join();
        }
    }
}

/// The progress bar on stderr, redrawn ten times a second from the shared counters.
struct Progress {
    bar: ProgressBar,
    ticker: tokio::task::JoinHandle<()>,
}

impl Progress {
    fn start(settings: &Settings, start: Instant, shared: &Arc<Shared>) -> Progress {
        let by_time = settings.duration.is_some() || settings.limit == u64::MAX;
        let duration_ms = settings
            .duration
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        let (len, template) = if by_time {
            (
                duration_ms,
                "{spinner:.green} [{elapsed_precise}] [{wide_bar:.cyan/blue}] {msg}",
            )
        } else {
            (
                settings.limit,
                "{spinner:.green} [{elapsed_precise}] [{wide_bar:.cyan/blue}] {pos}/{len} {msg}",
            )
        };
        let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
        let style = ProgressStyle::with_template(template)
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
        bar.set_style(style);
        let shared = Arc::clone(shared);
        let ticking = bar.clone();
        let ticker = tokio::spawn(async move {
            let mut interval = tokio::time::interval(Duration::from_millis(100));
            loop {
                interval.tick().await;
                let done = shared.done.load(Relaxed);
                let failed = shared.failed.load(Relaxed);
                let items = shared.items.load(Relaxed);
                let secs = start.elapsed().as_secs_f64().max(1e-9);
                if by_time {
                    let elapsed_ms = u64::try_from(start.elapsed().as_millis()).unwrap_or(0);
                    ticking.set_position(elapsed_ms.min(duration_ms));
                } else {
                    ticking.set_position(done);
                }
                let rate = done as f64 / secs;
                let mut msg = if by_time {
                    format!("{done} calls, {rate:.0}/s, {failed} errors")
                } else {
                    format!("{rate:.0}/s, {failed} errors")
                };
                if items > 0 {
                    msg.push_str(&format!(", {items} items"));
                }
                ticking.set_message(msg);
            }
        });
        Progress { bar, ticker }
    }

    fn finish(self) {
        self.ticker.abort();
        self.bar.finish_and_clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(limit: u64, deadline: Option<Duration>, rate: f64) -> Plan {
        let start = Instant::now();
        Plan {
            start,
            limit,
            deadline: deadline.map(|d| start + d),
            rate: Some(rate),
            timeout: None,
        }
    }

    /// Request `k` is never released before `start + k / rate`, every request of the limit is
    /// released, and with a deadline exactly those due before it.
    #[test]
    fn the_pacer_releases_each_request_on_time_and_no_more() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let plan = plan(400, None, 20_000.0);
        let pacer = Pacer::start(&plan, 20_000.0).unwrap();
        let mut k = 0u32;
        while rt.block_on(pacer.next()) {
            let due = plan.start + Duration::from_secs_f64(f64::from(k) / 20_000.0);
            assert!(Instant::now() >= due, "request {k} released early");
            k += 1;
        }
        assert_eq!(k, 400);

        let plan = super::tests::plan(u64::MAX, Some(Duration::from_millis(30)), 1_000.0);
        let pacer = Pacer::start(&plan, 1_000.0).unwrap();
        let mut n = 0;
        while rt.block_on(pacer.next()) {
            n += 1;
        }
        assert_eq!(n, 30, "requests due at 0, 1, ..., 29 ms");
        assert!(plan.start.elapsed() >= Duration::from_millis(29));
    }

    #[test]
    fn tallies_count_by_code_and_merge() {
        let t0 = Instant::now();
        let t1 = t0 + Duration::from_micros(300);
        let mut a = Tally::new().unwrap();
        a.add(false, t0, t1, Outcome::default());
        a.add(
            false,
            t0,
            t1,
            Outcome {
                allowed: 1,
                ..Outcome::default()
            },
        );
        a.add(false, t0, t1, Outcome::failed(Status::unavailable("down")));
        a.add(
            false,
            t0,
            t1,
            Outcome::failed(Status::unavailable("still down")),
        );
        let mut b = Tally::new().unwrap();
        b.add(
            true,
            t0,
            t1,
            Outcome {
                first_message: Some(t0 + Duration::from_micros(100)),
                items: 5,
                ..Outcome::default()
            },
        );
        b.add(true, t0, t1, Outcome::default());
        b.add(
            false,
            t0,
            t1,
            Outcome {
                allowed: 2,
                denied: 98,
                ..Outcome::default()
            },
        );
        b.add(
            false,
            t0,
            t1,
            Outcome::failed(Status::not_found("no schema")),
        );
        a.merge(&b).unwrap();
        assert_eq!(a.count(), 8);
        assert_eq!(a.errors(), 3);
        assert_eq!(a.codes[0], 5);
        assert_eq!(a.codes[Code::Unavailable as usize], 2);
        assert_eq!(a.codes[Code::NotFound as usize], 1);
        assert_eq!(
            a.samples[Code::Unavailable as usize].as_deref(),
            Some("down")
        );
        assert_eq!(a.latency.count(), 5);
        assert_eq!(a.first_message.count(), 1);
        assert_eq!(a.empty_streams, 1);
        assert_eq!(a.items, 5);
        assert_eq!((a.allowed, a.denied), (3, 98));
    }

    #[test]
    fn check_answers_are_counted() {
        let answer = |can: CheckResult| PermissionCheckResponse {
            can: can as i32,
            ..Default::default()
        };
        assert_eq!(answers(&[answer(CheckResult::Allowed)]), (1, 0));
        assert_eq!(
            answers(&[
                answer(CheckResult::Denied),
                answer(CheckResult::Allowed),
                answer(CheckResult::Denied),
            ]),
            (1, 2)
        );
        assert_eq!(answers(&[]), (0, 0));
    }

    #[test]
    fn code_names() {
        assert_eq!(code_name(0), "OK");
        assert_eq!(
            code_name(Code::DeadlineExceeded as usize),
            "DEADLINE_EXCEEDED"
        );
        assert_eq!(code_name(16), "UNAUTHENTICATED");
        assert_eq!(code_name(99), "UNKNOWN");
    }

    #[test]
    fn error_chains_name_every_cause() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let outer = LoadgenError::ReadData {
            path: "x".to_owned(),
            source: io,
        };
        assert_eq!(error_chain(&outer), "cannot read x: refused");
    }
}
