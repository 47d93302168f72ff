//! Server streams of the service layer. A producing task sends messages in batches, so a
//! stream of 100,000 IDs costs a few hundred channel operations and wake-ups, not 100,000; the
//! receiving side hands them out one at a time. An error ends the stream. Dropping the
//! [`ServerStream`] closes the channel, which tells the producer to stop.

use std::collections::VecDeque;

use tokio::sync::mpsc::{self, error::TryRecvError};

use crate::error::ApiError;

/// What travels through the channel: a batch of messages, or the error that ends the stream.
pub type Batch<T> = Result<Vec<T>, ApiError>;

/// The producing end of a [`ServerStream`].
#[derive(Debug)]
pub struct StreamSender<T> {
    tx: mpsc::Sender<Batch<T>>,
}

impl<T> Clone for StreamSender<T> {
    fn clone(&self) -> Self {
        StreamSender {
            tx: self.tx.clone(),
        }
    }
}

/// The stream was dropped by its receiver: stop producing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Closed;

impl<T> StreamSender<T> {
    /// Sends a batch (nothing when it is empty); waits while the channel is full.
    pub async fn send_batch(&self, batch: Vec<T>) -> Result<(), Closed> {
        if batch.is_empty() {
            return if self.tx.is_closed() {
                Err(Closed)
            } else {
                Ok(())
            };
        }
        self.tx.send(Ok(batch)).await.map_err(|_| Closed)
    }

    /// Sends one message.
    pub async fn send(&self, message: T) -> Result<(), Closed> {
        self.tx.send(Ok(vec![message])).await.map_err(|_| Closed)
    }

    /// Ends the stream with an error.
    pub async fn fail(&self, error: ApiError) {
        let _ = self.tx.send(Err(error)).await;
    }

    /// Resolves when the receiver is dropped.
    pub async fn closed(&self) {
        self.tx.closed().await;
    }

    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }
}

/// The receiving end: messages one at a time, in the order sent.
#[derive(Debug)]
pub struct ServerStream<T> {
    rx: mpsc::Receiver<Batch<T>>,
    ready: VecDeque<T>,
}

/// A stream whose channel holds at most `batches` batches before the producer waits.
pub fn channel<T>(batches: usize) -> (StreamSender<T>, ServerStream<T>) {
    let (tx, rx) = mpsc::channel(batches.max(1));
    (
        StreamSender { tx },
        ServerStream {
            rx,
            ready: VecDeque::new(),
        },
    )
}

/// Whether the next message is at hand without waiting.
#[derive(Debug)]
pub enum TryNext<T> {
    Item(Result<T, ApiError>),
    Empty,
    Ended,
}

impl<T> ServerStream<T> {
    /// The next message, or `None` when the producer has finished.
    pub async fn recv(&mut self) -> Option<Result<T, ApiError>> {
        if let Some(item) = self.ready.pop_front() {
            return Some(Ok(item));
        }
        let batch = self.rx.recv().await?;
        Some(self.take(batch))
    }

    /// Whether the messages of the batch received last have all been handed out.
    pub fn batch_drained(&self) -> bool {
        self.ready.is_empty()
    }

    /// The next message if one is ready.
    pub fn try_next(&mut self) -> TryNext<T> {
        if let Some(item) = self.ready.pop_front() {
            return TryNext::Item(Ok(item));
        }
        match self.rx.try_recv() {
            Ok(batch) => TryNext::Item(self.take(batch)),
            Err(TryRecvError::Empty) => TryNext::Empty,
            Err(TryRecvError::Disconnected) => TryNext::Ended,
        }
    }

    fn take(&mut self, batch: Batch<T>) -> Result<T, ApiError> {
        // A producer never sends an empty batch (see `send_batch`); if one came, the next
        // receive continues with the batch after it.
        let mut items = VecDeque::from(batch?);
        match items.pop_front() {
            Some(first) => {
                self.ready = items;
                Ok(first)
            }
            None => Err(ApiError::internal("empty batch in a server stream")),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic, reason = "tests fail by panicking")]
mod tests {
    use super::*;

    #[tokio::test]
    async fn batches_come_out_one_message_at_a_time_in_order() {
        let (tx, mut rx) = channel(2);
        tokio::spawn(async move {
            tx.send_batch(vec![1, 2, 3]).await.unwrap();
            tx.send_batch(Vec::new()).await.unwrap();
            tx.send(4).await.unwrap();
            tx.fail(ApiError::invalid("bad")).await;
        });
        let mut got = Vec::new();
        while let Some(item) = rx.recv().await {
            got.push(item);
        }
        assert_eq!(
            got,
            vec![Ok(1), Ok(2), Ok(3), Ok(4), Err(ApiError::invalid("bad"))]
        );
    }

    #[tokio::test]
    async fn dropping_the_receiver_stops_the_sender() {
        let (tx, rx) = channel::<u32>(1);
        drop(rx);
        assert_eq!(tx.send_batch(vec![1]).await, Err(Closed));
        assert!(tx.is_closed());
    }
}
