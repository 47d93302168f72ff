//! The set of numbers one entity (or subject) holds in one relation store, sized to fit.
//!
//! Most such sets are tiny (a document has two viewers and one folder), so a roaring bitmap
//! per set (an `Arc`, a container vector and an array: about 230 bytes for one number) would
//! dwarf the data. An [`IdSet`] is 16 bytes: up to three numbers inline, a shared sorted
//! vector up to [`SORTED_MAX`], and a shared roaring bitmap beyond.
//!
//! INVARIANT: inline and sorted numbers are strictly increasing; `Inline` holds at most 3,
//! `Sorted` more than 3 and at most `SORTED_MAX`, `Bitmap` more than `SORTED_MAX`.

use std::sync::Arc;

use roaring::{MultiOps, RoaringBitmap};

/// The most numbers kept in a sorted vector before a set becomes a bitmap.
pub const SORTED_MAX: usize = 512;
const INLINE_MAX: usize = 3;

#[derive(Debug, Clone)]
pub enum IdSet {
    Inline { len: u8, ids: [u32; INLINE_MAX] },
    Sorted(Arc<Vec<u32>>),
    Bitmap(Arc<RoaringBitmap>),
}

impl Default for IdSet {
    fn default() -> Self {
        IdSet::Inline {
            len: 0,
            ids: [0; INLINE_MAX],
        }
    }
}

impl IdSet {
    /// A read-only view.
    #[inline]
    pub fn view(&self) -> SetRef<'_> {
        match self {
            IdSet::Inline { len, ids } => SetRef::Slice(&ids[..usize::from(*len)]),
            IdSet::Sorted(v) => SetRef::Slice(v),
            IdSet::Bitmap(b) => SetRef::Bitmap(b),
        }
    }

    pub fn is_empty(&self) -> bool {
        matches!(self, IdSet::Inline { len: 0, .. })
    }

    /// Adds `x`; false if it was there.
    pub fn insert(&mut self, x: u32) -> bool {
        match self {
            IdSet::Inline { len, ids } => {
                let n = usize::from(*len);
                let Err(at) = ids[..n].binary_search(&x) else {
                    return false;
                };
                if n < INLINE_MAX {
                    ids.copy_within(at..n, at + 1);
                    ids[at] = x;
                    *len += 1;
                } else {
                    let mut v = Vec::with_capacity(INLINE_MAX + 1);
                    v.extend_from_slice(&ids[..at]);
                    v.push(x);
                    v.extend_from_slice(&ids[at..n]);
                    *self = IdSet::Sorted(Arc::new(v));
                }
                true
            }
            IdSet::Sorted(v) => {
                let Err(at) = v.binary_search(&x) else {
                    return false;
                };
                if v.len() < SORTED_MAX {
                    Arc::make_mut(v).insert(at, x);
                } else {
                    let mut b = RoaringBitmap::from_sorted_iter(v.iter().copied())
                        .unwrap_or_else(|_| v.iter().copied().collect());
                    b.insert(x);
                    *self = IdSet::Bitmap(Arc::new(b));
                }
                true
            }
            IdSet::Bitmap(b) => {
                if b.contains(x) {
                    return false;
                }
                Arc::make_mut(b).insert(x)
            }
        }
    }

    /// Removes `x`; false if it was not there.
    pub fn remove(&mut self, x: u32) -> bool {
        match self {
            IdSet::Inline { len, ids } => {
                let n = usize::from(*len);
                let Ok(at) = ids[..n].binary_search(&x) else {
                    return false;
                };
                ids.copy_within(at + 1..n, at);
                *len -= 1;
                true
            }
            IdSet::Sorted(v) => {
                let Ok(at) = v.binary_search(&x) else {
                    return false;
                };
                if v.len() - 1 <= INLINE_MAX {
                    let mut ids = [0; INLINE_MAX];
                    let mut len = 0u8;
                    for (i, y) in v.iter().enumerate() {
                        if i != at {
                            ids[usize::from(len)] = *y;
                            len += 1;
                        }
                    }
                    *self = IdSet::Inline { len, ids };
                } else {
                    Arc::make_mut(v).remove(at);
                }
                true
            }
            IdSet::Bitmap(b) => {
                if !b.contains(x) {
                    return false;
                }
                Arc::make_mut(b).remove(x);
                if b.len() <= SORTED_MAX as u64 {
                    let v: Vec<u32> = b.iter().collect();
                    *self = if v.len() <= INLINE_MAX {
                        let mut ids = [0; INLINE_MAX];
                        ids[..v.len()].copy_from_slice(&v);
                        IdSet::Inline {
                            len: v.len() as u8,
                            ids,
                        }
                    } else {
                        IdSet::Sorted(Arc::new(v))
                    };
                }
                true
            }
        }
    }
}

/// A borrowed set of numbers: a sorted slice or a bitmap.
#[derive(Debug, Clone, Copy)]
pub enum SetRef<'a> {
    Slice(&'a [u32]),
    Bitmap(&'a RoaringBitmap),
}

impl<'a> SetRef<'a> {
    #[inline]
    pub fn contains(&self, x: u32) -> bool {
        match self {
            SetRef::Slice(s) => s.binary_search(&x).is_ok(),
            SetRef::Bitmap(b) => b.contains(x),
        }
    }

    pub fn len(&self) -> u64 {
        match self {
            SetRef::Slice(s) => s.len() as u64,
            SetRef::Bitmap(b) => b.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The numbers in increasing order.
    pub fn iter(&self) -> SetIter<'a> {
        match *self {
            SetRef::Slice(s) => SetIter::Slice(s.iter()),
            SetRef::Bitmap(b) => SetIter::Bitmap(b.iter()),
        }
    }

    /// The numbers from `start` on, in increasing order: a binary search into a slice, a
    /// range of a bitmap, so resuming costs nothing for the numbers before `start`.
    pub fn iter_from(&self, start: u32) -> SetIter<'a> {
        match *self {
            SetRef::Slice(s) => SetIter::Slice(s[s.partition_point(|x| *x < start)..].iter()),
            SetRef::Bitmap(b) => SetIter::Bitmap(b.range(start..)),
        }
    }

    pub fn to_bitmap(&self) -> RoaringBitmap {
        match self {
            SetRef::Slice(s) => RoaringBitmap::from_sorted_iter(s.iter().copied())
                .unwrap_or_else(|_| s.iter().copied().collect()),
            SetRef::Bitmap(b) => (*b).clone(),
        }
    }

    /// The numbers below `end`, when that is cheap: a slice is cut (a binary search), a
    /// bitmap is returned whole (callers cut the union once instead).
    pub fn below(self, end: u32) -> SetRef<'a> {
        match self {
            SetRef::Slice(s) if end != u32::MAX => {
                SetRef::Slice(&s[..s.partition_point(|x| *x < end)])
            }
            other => other,
        }
    }

    /// Whether no number is in both.
    pub fn is_disjoint(&self, other: &RoaringBitmap) -> bool {
        match self {
            SetRef::Slice(s) => !s.iter().any(|x| other.contains(*x)),
            SetRef::Bitmap(b) => b.is_disjoint(other),
        }
    }

    /// `into |= self`.
    pub fn union_into(&self, into: &mut RoaringBitmap) {
        match self {
            SetRef::Slice(s) => {
                for x in s.iter() {
                    into.insert(*x);
                }
            }
            SetRef::Bitmap(b) => *into |= *b,
        }
    }
}

/// Iterator over a [`SetRef`].
pub enum SetIter<'a> {
    Slice(std::slice::Iter<'a, u32>),
    Bitmap(roaring::bitmap::Iter<'a>),
}

impl Iterator for SetIter<'_> {
    type Item = u32;

    #[inline]
    fn next(&mut self) -> Option<u32> {
        match self {
            SetIter::Slice(i) => i.next().copied(),
            SetIter::Bitmap(i) => i.next(),
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        match self {
            SetIter::Slice(i) => i.size_hint(),
            SetIter::Bitmap(i) => i.size_hint(),
        }
    }
}

/// The union of many sets at once: bitmaps by roaring's multi-way union, slices through a
/// dense bit array when they are many (no sorting, no per-number container search), else
/// sorted and merged.
pub fn union_all<'a>(parts: impl IntoIterator<Item = SetRef<'a>>) -> RoaringBitmap {
    let mut bitmaps: Vec<&RoaringBitmap> = Vec::new();
    let mut slices: Vec<&[u32]> = Vec::new();
    let mut count = 0usize;
    let (mut lo, mut hi) = (u32::MAX, 0u32);
    for part in parts {
        match part {
            SetRef::Bitmap(b) => bitmaps.push(b),
            SetRef::Slice(s) => {
                if let (Some(first), Some(last)) = (s.first(), s.last()) {
                    lo = lo.min(*first);
                    hi = hi.max(*last);
                    count += s.len();
                    slices.push(s);
                }
            }
        }
    }
    let mut out = match bitmaps.len() {
        0 => RoaringBitmap::new(),
        1 => bitmaps[0].clone(),
        _ => bitmaps.into_iter().union(),
    };
    if count == 0 {
        return out;
    }
    let span = u64::from(hi - lo) + 1;
    let from_slices = if count >= 64 && span <= (count as u64) * 64 {
        // Dense enough: one bit per number in [base, hi], base aligned to a byte.
        let base = lo & !7;
        let bits = (hi - base) as usize + 1;
        let mut bytes = vec![0u8; bits.div_ceil(8)];
        for s in slices {
            for x in s {
                let i = (x - base) as usize;
                bytes[i / 8] |= 1 << (i % 8);
            }
        }
        RoaringBitmap::from_lsb0_bytes(base, &bytes)
    } else {
        let mut all: Vec<u32> = Vec::with_capacity(count);
        for s in slices {
            all.extend_from_slice(s);
        }
        all.sort_unstable();
        all.dedup();
        RoaringBitmap::from_sorted_iter(all.iter().copied())
            .unwrap_or_else(|_| all.iter().copied().collect())
    };
    if out.is_empty() {
        from_slices
    } else {
        out |= from_slices;
        out
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::collections::BTreeSet;

    use super::*;

    #[test]
    fn an_id_set_is_sixteen_bytes() {
        assert_eq!(std::mem::size_of::<IdSet>(), 16);
    }

    #[test]
    fn inserts_and_removes_agree_with_a_btreeset_across_every_form() {
        let mut rng = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        for round in 0..40 {
            let range = [8u64, 40, 2_000, 100_000][round % 4];
            let mut set = IdSet::default();
            let mut model = BTreeSet::new();
            for _ in 0..3_000 {
                let x = (next() % range) as u32;
                let add = next() % 3 != 0;
                if add {
                    assert_eq!(set.insert(x), model.insert(x));
                } else {
                    assert_eq!(set.remove(x), model.remove(&x));
                }
                let view = set.view();
                assert_eq!(view.len(), model.len() as u64);
                assert_eq!(set.is_empty(), model.is_empty());
                assert!(view.contains(x) == model.contains(&x));
                match &set {
                    IdSet::Inline { len, .. } => assert!(usize::from(*len) <= INLINE_MAX),
                    IdSet::Sorted(v) => assert!(v.len() > INLINE_MAX && v.len() <= SORTED_MAX),
                    IdSet::Bitmap(b) => assert!(b.len() > SORTED_MAX as u64),
                }
            }
            assert!(set.view().iter().eq(model.iter().copied()));
        }
    }

    #[test]
    fn union_all_equals_the_plain_union() {
        let a = [1u32, 5, 9];
        let b: Vec<u32> = (0..300).map(|i| i * 3).collect();
        let c: RoaringBitmap = (1000..1200).collect();
        let d: Vec<u32> = vec![u32::MAX - 1, u32::MAX];
        let sparse: Vec<u32> = (0..100).map(|i| i * 1_000_003).collect();
        for parts in [
            vec![SetRef::Slice(&a)],
            vec![SetRef::Slice(&a), SetRef::Slice(&b), SetRef::Bitmap(&c)],
            vec![SetRef::Slice(&b), SetRef::Slice(&d)],
            vec![SetRef::Slice(&sparse), SetRef::Slice(&b)],
            vec![SetRef::Bitmap(&c), SetRef::Bitmap(&c)],
            vec![],
        ] {
            let mut want = RoaringBitmap::new();
            for p in &parts {
                p.union_into(&mut want);
            }
            assert_eq!(union_all(parts), want);
        }
    }
}
