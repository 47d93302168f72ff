//! What the gRPC and HTTP transports share: how a call's outcome is logged, and what they do
//! with a server stream of the service layer ([`until_shutdown`]): forward its messages until
//! it ends, until it yields an error (which is forwarded and ends it), or until the server
//! shuts down, which ends it with an `UNAVAILABLE` error so the client knows to resume
//! elsewhere from the last token it received.
//!
//! INVARIANT: a stream from [`until_shutdown`] yields at most one error, and nothing after it.
//! Dropping it drops the receiver, which tells the producing task to stop.

use std::time::Duration;

use futures_util::Stream;
use tokio_util::sync::CancellationToken;

use crate::error::{ApiError, ErrorCode};
use crate::service::stream::{ServerStream, TryNext};

/// Logs the outcome of one call: at debug level, except server bugs (internal errors), which
/// are logged as errors.
pub fn log_outcome(
    transport: &'static str,
    method: &str,
    elapsed: Duration,
    error: Option<&ApiError>,
) {
    let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
    match error {
        None => tracing::debug!(transport, method, micros, "ok"),
        Some(e) if e.code == ErrorCode::Internal => {
            tracing::error!(transport, method, micros, error = %e.message, "internal error")
        }
        Some(e) => {
            tracing::debug!(transport, method, micros, code = ?e.code, error = %e.message, "rejected")
        }
    }
}

/// The error an open stream ends with when the server shuts down.
pub fn shutting_down() -> ApiError {
    ApiError::new(
        ErrorCode::Unavailable,
        "the server is shutting down; resume from the last token received",
    )
}

/// Where a stream is with its one pause after the first batch (see [`until_shutdown`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pause {
    /// Nothing sent yet.
    Before,
    /// Pause when the first batch is drained.
    Due,
    Done,
}

/// Forwards `rx` until it ends, errs, or `shutdown` is cancelled (see the module docs).
pub fn until_shutdown<T: Send + 'static>(
    rx: ServerStream<T>,
    shutdown: CancellationToken,
) -> impl Stream<Item = Result<T, ApiError>> + Send + 'static {
    futures_util::stream::unfold(Some((rx, shutdown, Pause::Before)), |state| async move {
        let (mut rx, shutdown, mut pause) = state?;
        // Once the first batch is out, let the transport see the stream pause once: a
        // transport that coalesces ready messages until the stream pauses (tonic's encoder
        // does, up to 32 KiB) then sends the first messages now instead of after hundreds.
        if pause == Pause::Due && rx.batch_drained() {
            pause = Pause::Done;
            tokio::task::yield_now().await;
        }
        // Cheap checks first: an atomic load and a non-blocking receive, so a stream with
        // messages ready does not register a waiter per message.
        if shutdown.is_cancelled() {
            return Some((Err(shutting_down()), None));
        }
        let item = match rx.try_next() {
            TryNext::Item(item) => item,
            TryNext::Ended => return None,
            TryNext::Empty => {
                tokio::select! {
                    biased;
                    () = shutdown.cancelled() => return Some((Err(shutting_down()), None)),
                    item = rx.recv() => item?,
                }
            }
        };
        if pause == Pause::Before {
            pause = Pause::Due;
        }
        let next = if item.is_ok() {
            Some((rx, shutdown, pause))
        } else {
            None
        };
        Some((item, next))
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic, reason = "tests fail by panicking")]
mod tests {
    use super::*;
    use crate::service::stream::channel;
    use futures_util::StreamExt;

    #[tokio::test]
    async fn forwards_until_the_first_error() {
        let (tx, rx) = channel(8);
        tx.send_batch(vec![1]).await.unwrap();
        tx.fail(ApiError::invalid("bad")).await;
        tx.send(2).await.unwrap();
        let items: Vec<_> = until_shutdown(rx, CancellationToken::new()).collect().await;
        assert_eq!(items, vec![Ok(1), Err(ApiError::invalid("bad"))]);
    }

    #[tokio::test]
    async fn ends_when_the_sender_goes() {
        let (tx, rx) = channel::<u32>(8);
        tx.send(7).await.unwrap();
        drop(tx);
        let items: Vec<_> = until_shutdown(rx, CancellationToken::new()).collect().await;
        assert_eq!(items, vec![Ok(7)]);
    }

    #[tokio::test]
    async fn shutdown_ends_an_idle_stream_with_unavailable() {
        let (tx, rx) = channel::<u32>(8);
        let token = CancellationToken::new();
        let stream = until_shutdown(rx, token.clone());
        let cancel = token.clone();
        tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            cancel.cancel();
        });
        let items: Vec<_> = stream.collect().await;
        assert_eq!(items.len(), 1);
        assert_eq!(items[0].as_ref().unwrap_err().code, ErrorCode::Unavailable);
        assert!(tx.is_closed(), "the producer is told to stop");
    }
}
