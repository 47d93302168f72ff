//! Snap tokens and continuous tokens: opaque, versioned and checked.
//!
//! A **snap token** names a revision of one tenant and means *at least as fresh as*. A
//! **continuous token** pins a revision and a position in one query's result stream, so the
//! pages of one lookup come from one snapshot and resuming after message k yields exactly
//! messages k+1..n.
//!
//! Both are URL-safe base64 (no padding) of: a kind byte, a format version byte, the fields,
//! and a 32-bit check over everything before it. The check is not a secret: it catches
//! truncated, edited and mistyped tokens, and the tenant and query fingerprints catch tokens
//! used on the wrong tenant or the wrong query. Decoding never panics; every failure is a
//! [`TokenError`] naming what is wrong.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::index::ListPosition;

const VERSION: u8 = 1;
const KIND_SNAP: u8 = b'S';
const KIND_CONTINUOUS: u8 = b'C';
const KIND_LISTING: u8 = b'L';
/// Longest encoded token accepted, so decoding garbage is cheap.
const MAX_TOKEN_LEN: usize = 256;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("invalid {kind} token: {reason}")]
    Malformed { kind: &'static str, reason: String },
    #[error("{kind} token belongs to another tenant")]
    ForeignTenant { kind: &'static str },
    #[error("continuous token belongs to another query")]
    ForeignQuery,
}

/// A decoded snap token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapToken {
    pub revision: u64,
}

/// A decoded continuous token: resume after entity number `after` at `revision`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContinuousToken {
    pub revision: u64,
    /// The number of the last item already returned; the next page starts after it.
    pub after: u64,
}

/// A decoded listing token: resume a listing of stored tuples or attributes after `after`
/// at `revision` (see [`crate::index::ListPosition`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListingToken {
    pub revision: u64,
    pub after: ListPosition,
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

/// FNV-1a, 64 bit, over raw bytes.
fn fnv1a(bytes: impl IntoIterator<Item = u8>) -> u64 {
    fnv1a_from(FNV_OFFSET, bytes)
}

/// FNV-1a continued from the state `hash` (the hash of the bytes before).
fn fnv1a_from(mut hash: u64, bytes: impl IntoIterator<Item = u8>) -> u64 {
    for byte in bytes {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

/// A stable fingerprint of tenant names and queries (not a secret). Parts are separated so
/// that `["ab", "c"]` and `["a", "bc"]` differ.
pub fn fingerprint(parts: &[&str]) -> u64 {
    fnv1a(
        parts
            .iter()
            .flat_map(|p| p.bytes().chain(std::iter::once(0xff))),
    )
}

/// A stable fingerprint of raw bytes, such as an encoded request (not a secret).
pub fn fingerprint_bytes(bytes: &[u8]) -> u64 {
    fnv1a(bytes.iter().copied())
}

fn check32(bytes: &[u8]) -> u32 {
    fold(fnv1a(bytes.iter().copied()))
}

/// Folding keeps every input bit's influence in the 32 bits kept.
fn fold(h: u64) -> u32 {
    (h ^ (h >> 32)) as u32
}

fn encode(kind: u8, fields: &[u64]) -> String {
    let mut bytes = Vec::with_capacity(2 + fields.len() * 8 + 4);
    bytes.push(kind);
    bytes.push(VERSION);
    for f in fields {
        bytes.extend_from_slice(&f.to_be_bytes());
    }
    let check = check32(&bytes);
    bytes.extend_from_slice(&check.to_be_bytes());
    URL_SAFE_NO_PAD.encode(bytes)
}

fn decode<const N: usize>(
    token: &str,
    kind: u8,
    kind_name: &'static str,
) -> Result<[u64; N], TokenError> {
    let malformed = |reason: &str| TokenError::Malformed {
        kind: kind_name,
        reason: reason.to_string(),
    };
    if token.len() > MAX_TOKEN_LEN {
        return Err(malformed("too long"));
    }
    let bytes = URL_SAFE_NO_PAD
        .decode(token.trim())
        .map_err(|_| malformed("not base64url"))?;
    if bytes.len() != 2 + N * 8 + 4 {
        return Err(malformed("wrong length"));
    }
    let (body, check) = bytes.split_at(bytes.len() - 4);
    let mut check_bytes = [0u8; 4];
    check_bytes.copy_from_slice(check);
    if check32(body) != u32::from_be_bytes(check_bytes) {
        return Err(malformed("checksum mismatch"));
    }
    if body.first() != Some(&kind) {
        return Err(malformed("not this kind of token"));
    }
    if body.get(1) != Some(&VERSION) {
        return Err(malformed("unsupported version"));
    }
    let mut out = [0u64; N];
    for (i, slot) in out.iter_mut().enumerate() {
        let start = 2 + i * 8;
        let mut field = [0u8; 8];
        field.copy_from_slice(&body[start..start + 8]);
        *slot = u64::from_be_bytes(field);
    }
    Ok(out)
}

impl SnapToken {
    pub fn encode(&self, tenant: &str) -> String {
        encode(KIND_SNAP, &[fingerprint(&[tenant]), self.revision])
    }

    /// Decodes a snap token issued for `tenant`.
    pub fn decode(token: &str, tenant: &str) -> Result<SnapToken, TokenError> {
        let [tenant_fp, revision] = decode::<2>(token, KIND_SNAP, "snap")?;
        if tenant_fp != fingerprint(&[tenant]) {
            return Err(TokenError::ForeignTenant { kind: "snap" });
        }
        Ok(SnapToken { revision })
    }
}

impl ContinuousToken {
    /// `query` fingerprints the request (see [`fingerprint`]) so a token cannot resume another.
    pub fn encode(&self, tenant: &str, query: u64) -> String {
        encode(
            KIND_CONTINUOUS,
            &[fingerprint(&[tenant]), query, self.revision, self.after],
        )
    }

    /// An encoder of the tokens of one stream (same tenant, query and revision), which does
    /// the shared part of the work once: `encoder(..).encode(after)` equals
    /// `ContinuousToken { revision, after }.encode(tenant, query)`.
    pub fn encoder(tenant: &str, query: u64, revision: u64) -> ContinuousEncoder {
        let mut head = [0u8; 24];
        head[0] = KIND_CONTINUOUS;
        head[1] = VERSION;
        head[2..10].copy_from_slice(&fingerprint(&[tenant]).to_be_bytes());
        head[10..18].copy_from_slice(&query.to_be_bytes());
        let revision = revision.to_be_bytes();
        head[18..24].copy_from_slice(&revision[..6]);
        let mut tail_head = [0u8; 2];
        tail_head.copy_from_slice(&revision[6..]);
        ContinuousEncoder {
            // 24 bytes are 32 base64 characters with no carry into the rest.
            head: URL_SAFE_NO_PAD.encode(head),
            hash: fnv1a_from(fnv1a(head), tail_head),
            tail_head,
        }
    }

    /// Decodes a continuous token issued for `tenant` and the query fingerprinted `query`.
    pub fn decode(token: &str, tenant: &str, query: u64) -> Result<ContinuousToken, TokenError> {
        let [tenant_fp, query_fp, revision, after] =
            decode::<4>(token, KIND_CONTINUOUS, "continuous")?;
        check_scope((tenant_fp, query_fp), tenant, query)?;
        Ok(ContinuousToken { revision, after })
    }
}

/// Refuses a continuous token of another tenant or another query.
fn check_scope(
    (tenant_fp, query_fp): (u64, u64),
    tenant: &str,
    query: u64,
) -> Result<(), TokenError> {
    if tenant_fp != fingerprint(&[tenant]) {
        return Err(TokenError::ForeignTenant { kind: "continuous" });
    }
    if query_fp != query {
        return Err(TokenError::ForeignQuery);
    }
    Ok(())
}

impl ListingToken {
    /// `query` fingerprints the listing's filter, so a token cannot resume another listing.
    pub fn encode(&self, tenant: &str, query: u64) -> String {
        let ListPosition {
            key,
            entity,
            subject,
        } = self.after;
        let place = (u64::from(key) << 32) | u64::from(entity);
        encode(
            KIND_LISTING,
            &[
                fingerprint(&[tenant]),
                query,
                self.revision,
                place,
                u64::from(subject),
            ],
        )
    }

    /// Decodes a listing token issued for `tenant` and the listing fingerprinted `query`.
    pub fn decode(token: &str, tenant: &str, query: u64) -> Result<ListingToken, TokenError> {
        let [tenant_fp, query_fp, revision, place, subject] =
            decode::<5>(token, KIND_LISTING, "continuous")?;
        check_scope((tenant_fp, query_fp), tenant, query)?;
        let subject = u32::try_from(subject).map_err(|_| TokenError::Malformed {
            kind: "continuous",
            reason: "position out of range".to_string(),
        })?;
        let after = ListPosition {
            key: (place >> 32) as u32,
            entity: place as u32,
            subject,
        };
        Ok(ListingToken { revision, after })
    }
}

/// Encodes the continuous tokens of one stream (see [`ContinuousToken::encoder`]).
#[derive(Debug, Clone)]
pub struct ContinuousEncoder {
    /// The base64 of the first 24 bytes (kind, version, fingerprints, 6 revision bytes).
    head: String,
    /// The last 2 revision bytes.
    tail_head: [u8; 2],
    /// FNV-1a state after the 26 bytes before the position.
    hash: u64,
}

impl ContinuousEncoder {
    /// The token that resumes after position `after`.
    pub fn encode(&self, after: u64) -> String {
        let after = after.to_be_bytes();
        let check = fold(fnv1a_from(self.hash, after)).to_be_bytes();
        let mut tail = [0u8; 14];
        tail[..2].copy_from_slice(&self.tail_head);
        tail[2..10].copy_from_slice(&after);
        tail[10..].copy_from_slice(&check);
        let mut out = String::with_capacity(self.head.len() + 19);
        out.push_str(&self.head);
        URL_SAFE_NO_PAD.encode_string(tail, &mut out);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snap_round_trip_and_tenant_check() {
        let t = SnapToken { revision: 42 }.encode("t1");
        assert_eq!(SnapToken::decode(&t, "t1"), Ok(SnapToken { revision: 42 }));
        assert_eq!(
            SnapToken::decode(&t, "t2"),
            Err(TokenError::ForeignTenant { kind: "snap" })
        );
    }

    #[test]
    fn continuous_round_trip_and_query_check() {
        let q = fingerprint(&["doc", "view", "user:1"]);
        let token = ContinuousToken {
            revision: 7,
            after: 99,
        };
        let t = token.encode("t1", q);
        assert_eq!(ContinuousToken::decode(&t, "t1", q), Ok(token));
        let other = fingerprint(&["doc", "edit", "user:1"]);
        assert_eq!(
            ContinuousToken::decode(&t, "t1", other),
            Err(TokenError::ForeignQuery)
        );
        assert!(SnapToken::decode(&t, "t1").is_err());
    }

    #[test]
    fn listing_round_trip_and_scope_checks() {
        let q = fingerprint(&["doc", "viewer"]);
        let token = ListingToken {
            revision: 9,
            after: ListPosition {
                key: u32::MAX,
                entity: 7,
                subject: u32::MAX - 1,
            },
        };
        let t = token.encode("t1", q);
        assert_eq!(ListingToken::decode(&t, "t1", q), Ok(token));
        assert_eq!(
            ListingToken::decode(&t, "t1", q + 1),
            Err(TokenError::ForeignQuery)
        );
        assert!(ListingToken::decode(&t, "t2", q).is_err());
        let other = ContinuousToken {
            revision: 9,
            after: 7,
        }
        .encode("t1", q);
        assert!(ListingToken::decode(&other, "t1", q).is_err());
        assert!(ContinuousToken::decode(&t, "t1", q).is_err());
    }

    #[test]
    fn the_stream_encoder_writes_the_same_tokens() {
        for (tenant, query, revision) in [("t1", 0, 0), ("tenant-x", u64::MAX, 1 << 50), ("", 7, 3)]
        {
            let encoder = ContinuousToken::encoder(tenant, query, revision);
            for after in [0, 1, 255, 65_536, u64::from(u32::MAX), u64::MAX] {
                let token = ContinuousToken { revision, after };
                assert_eq!(encoder.encode(after), token.encode(tenant, query));
            }
        }
    }

    #[test]
    fn forged_tokens_are_rejected_without_panicking() {
        let t = SnapToken { revision: 42 }.encode("t1");
        let mut chars: Vec<char> = t.chars().collect();
        for i in 0..chars.len() {
            let original = chars[i];
            chars[i] = if original == 'A' { 'B' } else { 'A' };
            let forged: String = chars.iter().collect();
            assert!(SnapToken::decode(&forged, "t1").is_err(), "{forged}");
            chars[i] = original;
        }
        for garbage in ["", "!!!", "AAAA", &"A".repeat(10_000), "é"] {
            assert!(SnapToken::decode(garbage, "t1").is_err());
            assert!(ContinuousToken::decode(garbage, "t1", 0).is_err());
        }
    }
}
