//! The memory a large JSON body takes to decode: at most four times the body, measured as
//! the growth of this process's peak resident set (`VmHWM`, reset first through
//! `/proc/self/clear_refs` where the kernel allows it) while a ~4 MB `DataWriteRequest` of
//! tuples decodes. The whole-body decoder this replaced took about 40 times the body.
//!
//! Linux only (it reads `/proc`). It is the only test of this binary, so nothing else
//! allocates meanwhile.
#![cfg(target_os = "linux")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use lookout_proto::json::from_json_lenient;
use lookout_proto::v1::DataWriteRequest;

/// A field of `/proc/self/status` in bytes (`VmRSS`, `VmHWM`).
fn status_bytes(key: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status
        .lines()
        .find_map(|line| line.strip_prefix(key)?.strip_prefix(':'))
        .unwrap_or_else(|| panic!("no {key} in /proc/self/status"));
    let kb: u64 = line.trim().trim_end_matches("kB").trim().parse().unwrap();
    kb * 1024
}

/// A write of tuples as JSON, about `bytes` long; and how many tuples it holds.
fn write_body(bytes: usize) -> (Vec<u8>, usize) {
    let mut body = String::with_capacity(bytes + 256);
    body.push_str(r#"{"tenant_id": "t1", "metadata": {"schema_version": ""}, "tuples": ["#);
    let mut n = 0;
    while body.len() < bytes {
        if n > 0 {
            body.push(',');
        }
        body.push_str(&format!(
            r#"{{"entity": {{"type": "document", "id": "doc-{n}"}}, "relation": "viewer", "subject": {{"type": "user", "id": "user-{n}", "relation": ""}}}}"#
        ));
        n += 1;
    }
    body.push_str("]}");
    (body.into_bytes(), n)
}

#[test]
fn a_large_json_write_decodes_within_four_times_its_size() {
    let (body, tuples) = write_body(4_000_000);
    // Decode something small first: the descriptor pool is built once, outside the figure.
    let _: DataWriteRequest = from_json_lenient(br#"{"tenant_id": "t1"}"#).unwrap();
    let reset = std::fs::write("/proc/self/clear_refs", "5").is_ok();
    let before = status_bytes("VmRSS");

    let request: DataWriteRequest = from_json_lenient(&body).unwrap();

    let peak = status_bytes("VmHWM").saturating_sub(before);
    assert_eq!(request.tuples.len(), tuples);
    assert_eq!(
        request.tuples[tuples - 1]
            .subject
            .as_ref()
            .map(|s| s.id.as_str()),
        Some(format!("user-{}", tuples - 1).as_str())
    );
    let ratio = peak as f64 / body.len() as f64;
    eprintln!(
        "body {} B, {tuples} tuples: peak grew {peak} B ({ratio:.2}x the body; peak reset: {reset})",
        body.len()
    );
    assert!(
        peak <= 4 * body.len() as u64,
        "decoding a {} B body raised the peak by {peak} B ({ratio:.2}x), more than 4x",
        body.len()
    );
}
