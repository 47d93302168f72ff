//! Stack headroom for recursion whose depth the data decides.
//!
//! The evaluators walk the schema and the data by recursion: a check follows a folder chain
//! one frame per folder, a lookup subject one frame per nested group. The schema's own
//! recursion is bounded at compile time (expression nesting, permission chains, members per
//! entity: see [`crate::schema`]), but the data's is not: 10,000 nested folders are ordinary
//! data. Rather than cap what may be stored, every recursive step of an evaluator goes
//! through [`grow`], which continues on a fresh heap-allocated stack segment when the
//! current one runs low. A deep walk then costs heap (bounded by the data it walks and, for
//! checks, by `metadata.depth` and the visit budget), never the process.
//!
//! INVARIANT: every evaluator function that calls itself (directly or through another) runs
//! its body inside [`grow`]; `engine/tests/deep.rs` runs 10,000-deep chains on threads with
//! 512 KiB stacks through every read.

/// Below this much stack left, the next step continues on a new segment. Generous: debug
/// builds use several KiB per frame and a step may run a few frames before its next check.
const RED_ZONE: usize = 256 * 1024;

/// The size of each new segment.
const SEGMENT: usize = 4 * 1024 * 1024;

/// Runs `f`, on a new stack segment if the current one has less than [`RED_ZONE`] left.
#[inline]
pub(crate) fn grow<R>(f: impl FnOnce() -> R) -> R {
    stacker::maybe_grow(RED_ZONE, SEGMENT, f)
}
