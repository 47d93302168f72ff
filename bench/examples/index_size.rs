//! Bulk load into the in-memory index, and what the index costs in memory: loads the document
//! model at `--documents N` in batches of `--batch B` straight into an engine store (no server)
//! and prints tuples/s and the resident-set growth per tuple (from /proc/self/statm, Linux).
//!
//! ```sh
//! cargo run --release -p lookout-bench --example index_size -- --documents 100000
//! ```

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use lookout_bench::docs;
use lookout_engine::eval::Model;
use lookout_engine::index::{Store, WriteBatch};

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(|v| {
            v.parse()
                .unwrap_or_else(|_| panic!("{name}: not a number: {v}"))
        })
        .unwrap_or(default)
}

fn main() {
    let documents = arg("--documents", 100_000);
    let batch = arg("--batch", 100_000) as usize;
    let model = Model::compile(docs::SCHEMA).unwrap();
    // Batches are generated as they are written and dropped after, so the growth is the
    // index plus whatever the allocator keeps, as a server would see it.
    let before = rss_bytes();
    let store = Store::new();
    let mut writing = Duration::ZERO;
    let mut tuples = 0usize;
    docs::generate(documents, 7, batch, |batch| {
        tuples += batch.len();
        let batch = WriteBatch {
            tuple_writes: batch,
            ..WriteBatch::default()
        };
        let started = Instant::now();
        store.write(&model.schema, &batch).unwrap();
        writing += started.elapsed();
    });
    let after = rss_bytes();
    let head = store.head();
    // What the load left behind answers as fast as a fresh store: user:0's lookup.
    let ctx = lookout_engine::eval::Context::default();
    let ev = lookout_engine::eval::Evaluator::new(&model, &head, &ctx).unwrap();
    let user0 = lookout_engine::model::SubjectRef::user("user", "0");
    let mut times: Vec<Duration> = (0..21)
        .map(|_| {
            let started = Instant::now();
            let seen = ev.lookup_entity("document", "view", &user0).unwrap();
            assert!(seen.numbers.len() >= documents * 9 / 10);
            started.elapsed()
        })
        .collect();
    times.sort();
    println!(
        "lookup of document.view for user:0: median {:.2?}, min {:.2?}",
        times[times.len() / 2],
        times[0]
    );
    let grown = after.saturating_sub(before);
    println!(
        "{documents} documents, {tuples} tuples in batches of {batch}: {:.2?} writing, {:.0} tuples/s",
        writing,
        tuples as f64 / writing.as_secs_f64()
    );
    println!(
        "RSS {:.1} MiB before, {:.1} MiB after: +{:.1} MiB, {:.1} bytes per tuple (revision {})",
        before as f64 / 1048576.0,
        after as f64 / 1048576.0,
        grown as f64 / 1048576.0,
        grown as f64 / tuples as f64,
        head.revision()
    );
}
