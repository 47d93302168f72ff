//! A copy-on-write vector in fixed-size chunks, so that a snapshot is cheap to clone and a
//! write copies only the chunks it touches.
//!
//! Slots from [`super::LOCAL_BASE`] up (the request-local entity numbers of a durable
//! interner, see [`super::Interner`]) live in a small sparse map instead of chunks, so that
//! such a number never allocates the two billion slots below it.
//!
//! INVARIANT: every chunk but the last holds exactly `CHUNK` slots; slots past the logical end
//! are `T::default()`; `sparse` holds only indices at or above `LOCAL_BASE`.

use std::collections::HashMap;
use std::sync::Arc;

use super::LOCAL_BASE;

const CHUNK: usize = 256;

#[derive(Debug, Clone)]
pub struct CowVec<T> {
    chunks: Vec<Arc<Vec<T>>>,
    sparse: Option<Arc<HashMap<u32, T>>>,
}

impl<T> Default for CowVec<T> {
    fn default() -> Self {
        CowVec {
            chunks: Vec::new(),
            sparse: None,
        }
    }
}

impl<T: Clone + Default> CowVec<T> {
    /// The slot at `index`, if it was ever allocated.
    #[inline]
    pub fn get(&self, index: u32) -> Option<&T> {
        if index >= LOCAL_BASE {
            return self.sparse.as_ref()?.get(&index);
        }
        let index = index as usize;
        self.chunks.get(index / CHUNK)?.get(index % CHUNK)
    }

    /// A mutable slot at `index`, allocating and copying chunks as needed.
    pub fn get_mut(&mut self, index: u32) -> &mut T {
        if index >= LOCAL_BASE {
            let sparse = self.sparse.get_or_insert_with(Default::default);
            return Arc::make_mut(sparse).entry(index).or_default();
        }
        let index = index as usize;
        let chunk = index / CHUNK;
        while self.chunks.len() <= chunk {
            self.chunks.push(Arc::new(vec![T::default(); CHUNK]));
        }
        let slots = Arc::make_mut(&mut self.chunks[chunk]);
        &mut slots[index % CHUNK]
    }

    /// Number of dense slots allocated (a multiple of the chunk size).
    pub fn capacity(&self) -> usize {
        self.chunks.len() * CHUNK
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clones_are_independent() {
        let mut a: CowVec<u32> = CowVec::default();
        *a.get_mut(3) = 7;
        *a.get_mut(1000) = 9;
        let b = a.clone();
        *a.get_mut(3) = 8;
        assert_eq!(a.get(3), Some(&8));
        assert_eq!(b.get(3), Some(&7));
        assert_eq!(b.get(1000), Some(&9));
        // Request-local numbers stay sparse.
        *a.get_mut(LOCAL_BASE + 5) = 1;
        assert_eq!(a.get(LOCAL_BASE + 5), Some(&1));
        assert_eq!(b.get(LOCAL_BASE + 5), None);
        assert!(a.capacity() < 2000);
        assert_eq!(b.get(5000), None);
    }
}

const SPAN: usize = 256;
const WORDS: usize = SPAN / 64;

/// The present slots of one span of [`SparseVec`]: a bit per slot, and the values of the set
/// bits in slot order.
#[derive(Debug, Clone, Default)]
struct Span<T> {
    mask: [u64; WORDS],
    items: Vec<T>,
}

impl<T> Span<T> {
    /// Whether slot `i` is present, and where its value is (or would go) in `items`.
    #[inline]
    fn locate(&self, i: usize) -> (bool, usize) {
        let (word, bit) = (i / 64, i % 64);
        let before: u32 = self.mask[..word].iter().map(|w| w.count_ones()).sum();
        let below = self.mask[word] & ((1u64 << bit) - 1);
        let present = self.mask[word] & (1u64 << bit) != 0;
        (present, (before + below.count_ones()) as usize)
    }
}

/// A copy-on-write map from dense numbers to values that stores only present slots: a value
/// costs its own size plus a share of a 32-byte mask per 256 numbers, so a relation that only
/// one entity in a hundred has does not pay a slot for the other ninety-nine.
///
/// INVARIANT: `items.len()` equals the number of set bits of `mask`; a span with no bits set
/// is `None`; `sparse` holds only indices at or above `LOCAL_BASE`.
#[derive(Debug, Clone)]
pub struct SparseVec<T> {
    spans: Vec<Option<Arc<Span<T>>>>,
    sparse: Option<Arc<HashMap<u32, T>>>,
}

impl<T> Default for SparseVec<T> {
    fn default() -> Self {
        SparseVec {
            spans: Vec::new(),
            sparse: None,
        }
    }
}

impl<T: Clone + Default> SparseVec<T> {
    #[inline]
    pub fn get(&self, index: u32) -> Option<&T> {
        if index >= LOCAL_BASE {
            return self.sparse.as_ref()?.get(&index);
        }
        let index = index as usize;
        let span = self.spans.get(index / SPAN)?.as_ref()?;
        match span.locate(index % SPAN) {
            (true, at) => span.items.get(at),
            (false, _) => None,
        }
    }

    /// The value at `index`, inserted as `T::default()` if absent; copies the span it is in
    /// if a snapshot shares it.
    pub fn get_mut(&mut self, index: u32) -> &mut T {
        if index >= LOCAL_BASE {
            let sparse = self.sparse.get_or_insert_with(Default::default);
            return Arc::make_mut(sparse).entry(index).or_default();
        }
        let index = index as usize;
        let s = index / SPAN;
        if self.spans.len() <= s {
            self.spans.resize(s + 1, None);
        }
        let span = Arc::make_mut(self.spans[s].get_or_insert_with(Default::default));
        let i = index % SPAN;
        let (present, at) = span.locate(i);
        if !present {
            span.mask[i / 64] |= 1u64 << (i % 64);
            span.items.insert(at, T::default());
        }
        &mut span.items[at]
    }

    /// Drops the value at `index`, if any.
    pub fn remove(&mut self, index: u32) {
        if index >= LOCAL_BASE {
            if let Some(sparse) = self.sparse.as_mut() {
                Arc::make_mut(sparse).remove(&index);
            }
            return;
        }
        let index = index as usize;
        let s = index / SPAN;
        let Some(Some(shared)) = self.spans.get(s) else {
            return;
        };
        let i = index % SPAN;
        let (present, _) = shared.locate(i);
        if !present {
            return;
        }
        let Some(slot) = self.spans.get_mut(s) else {
            return;
        };
        let empty = match slot.as_mut() {
            Some(arc) => {
                let span = Arc::make_mut(arc);
                let (_, at) = span.locate(i);
                span.mask[i / 64] &= !(1u64 << (i % 64));
                span.items.remove(at);
                span.items.is_empty()
            }
            None => false,
        };
        if empty {
            *slot = None;
        }
    }
}

#[cfg(test)]
mod sparse_tests {
    #![allow(clippy::unwrap_used)]

    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn behaves_as_a_map_and_clones_are_independent() {
        let mut v: SparseVec<u32> = SparseVec::default();
        let mut model = BTreeMap::new();
        let mut rng = 12345u64;
        let mut snapshots = Vec::new();
        for step in 0..20_000u32 {
            rng = rng
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let index = ((rng >> 33) % 3_000) as u32;
            if (rng >> 20).is_multiple_of(4) {
                v.remove(index);
                model.remove(&index);
            } else {
                *v.get_mut(index) = step;
                model.insert(index, step);
            }
            if step % 5_000 == 0 {
                snapshots.push((v.clone(), model.clone()));
            }
        }
        *v.get_mut(LOCAL_BASE + 3) = 7;
        model.insert(LOCAL_BASE + 3, 7);
        for (i, want) in &model {
            assert_eq!(v.get(*i), Some(want));
        }
        for i in 0..3_000 {
            assert_eq!(v.get(i), model.get(&i));
        }
        for (snap, model) in snapshots {
            for i in 0..3_000 {
                assert_eq!(snap.get(i), model.get(&i));
            }
        }
    }
}
