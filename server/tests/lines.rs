//! Newline-delimited JSON read from a streaming HTTP response (Watch, lookup streams), shared
//! by the server crate's transport tests and the workspace's end-to-end tests (which include
//! this file by path).

#![allow(clippy::expect_used, clippy::panic, reason = "tests fail by panicking")]

use std::time::Duration;

use http_body_util::BodyExt;
use hyper::Response;
use hyper::body::Incoming;
use serde_json::Value;

/// Reads newline-delimited JSON from a streaming response until `stop` says so or it ends.
pub struct Lines {
    body: Incoming,
    pending: Vec<u8>,
}

impl Lines {
    pub fn new(response: Response<Incoming>) -> Lines {
        Lines {
            body: response.into_body(),
            pending: Vec::new(),
        }
    }

    /// The next line as JSON, or None when the stream ends.
    pub async fn next(&mut self) -> Option<Value> {
        loop {
            if let Some(end) = self.pending.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.pending.drain(..=end).collect();
                return Some(serde_json::from_slice(&line[..end]).unwrap_or_else(|e| {
                    panic!("line is not JSON ({e}): {}", String::from_utf8_lossy(&line))
                }));
            }
            let frame = tokio::time::timeout(Duration::from_secs(10), self.body.frame())
                .await
                .expect("the stream makes progress");
            match frame {
                None => {
                    assert!(
                        self.pending.is_empty(),
                        "unterminated line: {}",
                        String::from_utf8_lossy(&self.pending)
                    );
                    return None;
                }
                Some(frame) => {
                    if let Ok(data) = frame.expect("body frame").into_data() {
                        self.pending.extend_from_slice(&data);
                    }
                }
            }
        }
    }

    pub async fn all(mut self) -> Vec<Value> {
        let mut lines = Vec::new();
        while let Some(line) = self.next().await {
            lines.push(line);
        }
        lines
    }
}
