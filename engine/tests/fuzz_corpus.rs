//! Replays the fuzzing corpora under `fuzz/corpus/` (see docs/fuzzing.md) through the same
//! functions and checks as the cargo-fuzz targets, so the ordinary test suite catches a
//! regression on any input the fuzzers once found interesting, crashes included, without
//! cargo-fuzz or a nightly toolchain.

#![allow(clippy::unwrap_used, clippy::panic, reason = "tests fail by panicking")]

use std::fs;
use std::path::PathBuf;

use lookout_engine::tokens::{ContinuousToken, SnapToken, fingerprint};
use lookout_engine::{Attribute, EntityRef, SubjectRef, Tuple, schema};

/// Every file of `fuzz/corpus/<target>`, with its name; panics if there are none.
fn corpus(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target);
    let mut files: Vec<(String, Vec<u8>)> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            (name, fs::read(&path).unwrap())
        })
        .collect();
    files.sort();
    assert!(!files.is_empty(), "{} is empty", dir.display());
    files
}

/// Runs `check` on every file, naming the file that panics.
fn replay(target: &str, check: impl Fn(&[u8]) + std::panic::RefUnwindSafe) {
    for (name, data) in corpus(target) {
        if std::panic::catch_unwind(|| check(&data)).is_err() {
            panic!("fuzz/corpus/{target}/{name} panics");
        }
    }
}

#[test]
fn the_schema_corpus_compiles_or_fails_cleanly() {
    replay("schema", |data| {
        if let Ok(source) = std::str::from_utf8(data)
            && let Ok(compiled) = schema::compile(source)
        {
            let _ = schema::compile(&schema::print(&compiled));
        }
    });
}

#[test]
fn the_text_format_corpus_parses_or_fails_cleanly_and_round_trips() {
    replay("text_formats", |data| {
        if let Ok(text) = std::str::from_utf8(data) {
            if let Ok(tuple) = Tuple::parse(text) {
                assert_eq!(Tuple::parse(&tuple.to_string()).ok(), Some(tuple));
            }
            if let Ok(attribute) = Attribute::parse(text) {
                assert_eq!(
                    Attribute::parse(&attribute.to_string()).ok(),
                    Some(attribute)
                );
            }
            let _ = EntityRef::parse(text);
            let _ = SubjectRef::parse(text);
        }
    });
}

#[test]
fn the_token_corpus_decodes_or_fails_cleanly_and_round_trips() {
    replay("tokens", |data| {
        if let Ok(token) = std::str::from_utf8(data) {
            let _ = SnapToken::decode(token, "t1");
            let _ = ContinuousToken::decode(token, "t1", fingerprint(&["q"]));
        }
        if data.len() >= 16 {
            let mut a = [0u8; 8];
            let mut b = [0u8; 8];
            a.copy_from_slice(&data[..8]);
            b.copy_from_slice(&data[8..16]);
            let (revision, after) = (u64::from_le_bytes(a), u64::from_le_bytes(b));
            let snap = SnapToken { revision };
            assert_eq!(SnapToken::decode(&snap.encode("t1"), "t1"), Ok(snap));
            let query = fingerprint(&["q"]);
            let cont = ContinuousToken { revision, after };
            assert_eq!(
                ContinuousToken::decode(&cont.encode("t1", query), "t1", query),
                Ok(cont)
            );
        }
    });
}
