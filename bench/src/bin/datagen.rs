//! `lookout-datagen`: writes the document-sharing data set of `lookout_bench::docs` to stdout,
//! one tuple per line, so that other tools (the SpiceDB comparison in `bench/compare/`) load
//! exactly the tuples that `lookout-loadgen --setup` and the criterion benches use.
//!
//! ```text
//! lookout-datagen --documents 100000 --seed 42 > docs-100k.tuples
//! lookout-datagen --documents 10000 --format json | head -3
//! lookout-datagen --schema          # the Permify schema of the data set
//! ```
//!
//! `text` lines are Permify's tuple notation, `entity:id#relation@subject:id[#relation]`
//! (`document:7#viewer@group:3#member`); `json` lines are Permify's JSON tuple shape
//! (`{"entity":{"type":..,"id":..},"relation":..,"subject":{"type":..,"id":..,"relation":..}}`).
//! Tuples come out in generation order, duplicates included (the generator may draw the same
//! viewer twice for a document; servers store it once). A summary goes to stderr.

use std::io::{self, BufWriter, Write};
use std::process::ExitCode;

use clap::{Parser, ValueEnum};
use lookout_bench::docs::{self, Shape};
use lookout_engine::model::Tuple;

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Format {
    /// `document:7#viewer@group:3#member`
    Text,
    /// Permify's JSON tuple, one object per line.
    Json,
}

/// Writes the `docs` data set (nested groups, folder tree, direct and group viewers, bans) as
/// tuple lines on stdout.
#[derive(Debug, Parser)]
#[command(name = "lookout-datagen", version)]
struct Args {
    /// Number of documents (about 3.35 tuples each).
    #[arg(short = 'n', long, default_value_t = 10_000)]
    documents: u64,

    /// Seed of the generator (lookout-loadgen's default is 42).
    #[arg(long, default_value_t = 42)]
    seed: u64,

    /// Line format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,

    /// Print the Permify schema of the data set instead of the tuples.
    #[arg(long)]
    schema: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let stdout = io::stdout();
    let mut out = BufWriter::with_capacity(1 << 16, stdout.lock());
    if args.schema {
        return finish(
            out.write_all(docs::SCHEMA.as_bytes())
                .and_then(|()| out.flush()),
        );
    }

    let mut written = 0u64;
    let mut result = Ok(());
    docs::generate(args.documents, args.seed, 10_000, |batch| {
        if result.is_err() {
            return;
        }
        for t in &batch {
            let line = match args.format {
                Format::Text => text(t),
                Format::Json => json(t),
            };
            if let Err(e) = writeln!(out, "{line}") {
                result = Err(e);
                return;
            }
            written += 1;
        }
    });
    let result = result.and_then(|()| out.flush());
    if result.is_ok() {
        let s = Shape::new(args.documents);
        eprintln!(
            "lookout-datagen: {written} tuples ({} documents, {} users, {} groups, {} folders, seed {})",
            s.documents, s.users, s.groups, s.folders, args.seed
        );
    }
    finish(result)
}

fn finish(result: io::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // A closed pipe (`| head`) is not an error worth reporting.
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("lookout-datagen: {e}");
            ExitCode::FAILURE
        }
    }
}

fn text(t: &Tuple) -> String {
    let subject = &t.subject;
    match &subject.relation {
        Some(rel) => format!(
            "{}:{}#{}@{}:{}#{}",
            t.entity.ty, t.entity.id, t.relation, subject.ty, subject.id, rel
        ),
        None => format!(
            "{}:{}#{}@{}:{}",
            t.entity.ty, t.entity.id, t.relation, subject.ty, subject.id
        ),
    }
}

fn json(t: &Tuple) -> String {
    serde_json::json!({
        "entity": { "type": t.entity.ty, "id": t.entity.id },
        "relation": t.relation,
        "subject": {
            "type": t.subject.ty,
            "id": t.subject.id,
            "relation": t.subject.relation.clone().unwrap_or_default(),
        },
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use lookout_engine::model::{EntityRef, SubjectRef};

    #[test]
    fn lines_use_permify_notation() {
        let nested = Tuple::new(
            EntityRef::new("document", "7"),
            "viewer",
            SubjectRef::new("group", "3", Some("member".to_string())),
        );
        assert_eq!(text(&nested), "document:7#viewer@group:3#member");
        let plain = Tuple::new(
            EntityRef::new("folder", "1"),
            "parent",
            SubjectRef::user("folder", "0"),
        );
        assert_eq!(text(&plain), "folder:1#parent@folder:0");
        let j: serde_json::Value = serde_json::from_str(&json(&nested)).unwrap_or_default();
        assert_eq!(j["subject"]["relation"], "member");
        assert_eq!(j["entity"]["id"], "7");
    }
}
