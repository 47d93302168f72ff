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
