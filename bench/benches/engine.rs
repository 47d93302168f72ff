//! Engine benches on the generated document model (about 1M tuples at 300k documents):
//! check, lookup entity and listing pages, straight on a snapshot (no server, no cache).
//!
//! Run: `cargo bench -p lookout-bench --bench engine` (`LOOKOUT_BENCH_DOCS=N` to resize).

// A bench harness fails by panicking, as a test does (clippy.toml allows it in tests only).
#![allow(clippy::panic)]

use std::hint::black_box;
use std::time::Instant;

use criterion::{Criterion, criterion_group, criterion_main};
use lookout_bench::{docs, social};
use lookout_engine::eval::{Context, Evaluator, Model};
use lookout_engine::index::{Store, TupleFilter, WriteBatch};
use lookout_engine::model::{EntityRef, SubjectRef};

fn documents() -> u64 {
    std::env::var("LOOKOUT_BENCH_DOCS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300_000)
}

fn load(model: &Model, documents: u64) -> Store {
    let store = Store::new();
    let started = Instant::now();
    let mut count = 0usize;
    docs::generate(documents, 7, 100_000, |tuples| {
        count += tuples.len();
        let batch = WriteBatch {
            tuple_writes: tuples,
            ..WriteBatch::default()
        };
        if let Err(e) = store.write(&model.schema, &batch) {
            panic!("dataset write failed: {e}");
        }
    });
    eprintln!(
        "loaded {count} tuples for {documents} documents in {:.2?}",
        started.elapsed()
    );
    store
}

fn benches(c: &mut Criterion) {
    let model = Model::compile(docs::SCHEMA).unwrap_or_else(|e| panic!("schema: {e}"));
    let n = documents();
    let store = load(&model, n);
    let snapshot = store.head();
    let ctx = Context::default();
    let ev = Evaluator::new(&model, &snapshot, &ctx).unwrap_or_else(|e| panic!("{e}"));
    let everyone = SubjectRef::user("user", "0");
    let someone = SubjectRef::user("user", (n / 20).to_string());

    let seen = ev
        .lookup_entity("document", "view", &everyone)
        .unwrap_or_else(|e| panic!("{e}"))
        .numbers
        .len();
    eprintln!("user:0 sees {seen} of {n} documents");

    let mut group = c.benchmark_group("check");
    let mut d = 0u64;
    group.bench_function("document.view via nested groups and folders", |b| {
        b.iter(|| {
            d = (d + 7919) % n;
            let doc = EntityRef::new("document", d.to_string());
            black_box(ev.check(&doc, "view", &everyone, 50).map(|r| r.allowed))
        })
    });
    group.bench_function("document.view for a user with few grants", |b| {
        b.iter(|| {
            d = (d + 7919) % n;
            let doc = EntityRef::new("document", d.to_string());
            black_box(ev.check(&doc, "view", &someone, 50).map(|r| r.allowed))
        })
    });
    group.finish();

    let mut group = c.benchmark_group("lookup_entity");
    group.sample_size(20);
    group.bench_function("document.view, user who sees almost all", |b| {
        b.iter(|| {
            black_box(
                ev.lookup_entity("document", "view", &everyone)
                    .map(|s| s.numbers.len()),
            )
        })
    });
    group.bench_function("document.view, user with few grants", |b| {
        b.iter(|| {
            black_box(
                ev.lookup_entity("document", "view", &someone)
                    .map(|s| s.numbers.len()),
            )
        })
    });
    group.bench_function("ids of all visible documents, resolved to strings", |b| {
        b.iter(|| {
            let set = ev.lookup_entity("document", "view", &everyone);
            black_box(set.map(|s| ev.names("document", &s.numbers).len()))
        })
    });
    group.finish();
}

/// Permify's load-test model at 100k users, contents and interactions: checks on contents and
/// interactions for pseudo-random (user, object) pairs, as Permify's own load test asks.
fn social(c: &mut Criterion) {
    let model = Model::compile(social::SCHEMA).unwrap_or_else(|e| panic!("schema: {e}"));
    let n: u64 = std::env::var("LOOKOUT_BENCH_SOCIAL")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let store = Store::new();
    let started = Instant::now();
    let mut count = 0usize;
    social::generate(n, 100_000, |tuples, attributes| {
        count += tuples.len() + attributes.len();
        let batch = WriteBatch {
            tuple_writes: tuples,
            attribute_writes: attributes,
            ..WriteBatch::default()
        };
        if let Err(e) = store.write(&model.schema, &batch) {
            panic!("dataset write failed: {e}");
        }
    });
    eprintln!(
        "social model: {count} tuples and attributes for {n} users in {:.2?}",
        started.elapsed()
    );
    let snapshot = store.head();
    let ctx = Context::default();
    let ev = Evaluator::new(&model, &snapshot, &ctx).unwrap_or_else(|e| panic!("{e}"));
    let mut group = c.benchmark_group("social");
    let mut rng = lookout_bench::rng::Rng::new(11);
    group.bench_function("check content.view, random user and content", |b| {
        b.iter(|| {
            let content = EntityRef::new("content", rng.below(n).to_string());
            let user = SubjectRef::user("user", rng.below(n).to_string());
            black_box(ev.check(&content, "view", &user, 50).map(|r| r.allowed))
        })
    });
    group.bench_function("check interaction.view, random user and interaction", |b| {
        b.iter(|| {
            let interaction = EntityRef::new("interaction", rng.below(n).to_string());
            let user = SubjectRef::user("user", rng.below(n).to_string());
            black_box(ev.check(&interaction, "view", &user, 50).map(|r| r.allowed))
        })
    });
    group.finish();
}

/// Bulk writes: 100k document-model tuples into an empty store, one batch (validation,
/// interning, both bitmap directions, a new snapshot).
fn bulk_write(c: &mut Criterion) {
    let model = Model::compile(docs::SCHEMA).unwrap_or_else(|e| panic!("schema: {e}"));
    let mut tuples = Vec::new();
    docs::generate(30_000, 7, 1_000_000, |batch| tuples.extend(batch));
    tuples.truncate(100_000);
    let mut group = c.benchmark_group("write");
    group.sample_size(10);
    group.throughput(criterion::Throughput::Elements(tuples.len() as u64));
    group.bench_function("100k tuples, one batch, empty store", |b| {
        b.iter_batched(
            || {
                (
                    Store::new(),
                    WriteBatch {
                        tuple_writes: tuples.clone(),
                        ..WriteBatch::default()
                    },
                )
            },
            |(store, batch)| black_box(store.write(&model.schema, &batch).map(|o| o.changes.len())),
            criterion::BatchSize::LargeInput,
        )
    });
    group.finish();
}

/// ReadRelationships' pages: 100 tuples from the start, from the middle and from near the end
/// of the whole listing (about 1M tuples at 300k documents). A page costs its own size
/// wherever it starts.
fn listing(c: &mut Criterion) {
    let model = Model::compile(docs::SCHEMA).unwrap_or_else(|e| panic!("schema: {e}"));
    let store = load(&model, documents());
    let snapshot = store.head();
    let all = TupleFilter::default();
    let total = snapshot.tuple_count() as usize;
    let mut group = c.benchmark_group("listing");
    for (name, skip) in [("start", 0), ("middle", total / 2), ("end", total - 200)] {
        let after = (skip > 0)
            .then(|| snapshot.tuples_page(&all, None, skip).next)
            .flatten();
        group.bench_function(format!("100 tuples from the {name} of {total}"), |b| {
            b.iter(|| black_box(snapshot.tuples_page(&all, after, 100).items.len()))
        });
    }
    group.finish();
}

criterion_group!(engine, benches, social, bulk_write, listing);
criterion_main!(engine);
