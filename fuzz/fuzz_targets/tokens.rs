//! Snap and continuous token decoding: any string is a token or a `TokenError`, and encoding
//! then decoding gives back what was encoded.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lookout_engine::tokens::{ContinuousToken, SnapToken, fingerprint};

fuzz_target!(|data: &[u8]| {
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
