//! Replays the `proto_json` fuzzing corpus under `fuzz/corpus/` (see docs/fuzzing.md) through
//! the HTTP API's JSON decoding, as the cargo-fuzz target does, so the ordinary test suite
//! catches a regression on any input the fuzzer once found interesting, crashes included.

#![allow(clippy::unwrap_used, clippy::panic, reason = "tests fail by panicking")]

use std::fs;
use std::path::PathBuf;

use lookout_proto::json::{from_json, from_json_lenient, to_json_vec};
use lookout_proto::v1;

fn round<M: prost::Message + prost::Name + Default>(data: &[u8]) {
    if let Ok(msg) = from_json_lenient::<M>(data) {
        let _ = to_json_vec(&msg);
    }
    let _ = from_json::<M>(data);
}

/// The same dispatch as `fuzz/fuzz_targets/proto_json.rs`: the first byte picks the type.
fn check(data: &[u8]) {
    let Some((&pick, body)) = data.split_first() else {
        return;
    };
    match pick % 8 {
        0 => round::<v1::PermissionCheckRequest>(body),
        1 => round::<v1::DataWriteRequest>(body),
        2 => round::<v1::SchemaWriteRequest>(body),
        3 => round::<v1::RelationshipReadRequest>(body),
        4 => round::<v1::AttributeReadRequest>(body),
        5 => round::<v1::PermissionLookupEntityRequest>(body),
        6 => round::<v1::Tuple>(body),
        _ => round::<v1::Attribute>(body),
    }
}

#[test]
fn the_json_corpus_decodes_or_fails_cleanly() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/proto_json");
    let mut count = 0;
    for entry in fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        let data = fs::read(&path).unwrap();
        if std::panic::catch_unwind(|| check(&data)).is_err() {
            panic!("{} panics", path.display());
        }
        count += 1;
    }
    assert!(count > 0, "{} is empty", dir.display());
}
