//! Entity IDs interned to dense `u32` per entity type.
//!
//! One interner is shared by every snapshot of a tenant. It only grows: an ID keeps its number
//! for the life of the process, so bitmaps from different snapshots stay comparable and a
//! continuous token (which records a number) stays meaningful.
//! INVARIANT: `names[n]` is the ID whose number is `n`, and `numbers[names[n]] == n`.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

#[derive(Debug, Default)]
struct TypeTable {
    names: Vec<Arc<str>>,
    numbers: HashMap<Arc<str>, u32>,
}

#[derive(Debug, Default)]
pub struct Interner {
    types: RwLock<HashMap<String, TypeTable>>,
}

/// The interner could not take more IDs of one type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("too many distinct ids of type `{0}` (at most 4294967295)")]
pub struct InternerFull(pub String);

impl Interner {
    /// The number of `id` of type `ty`, if it was interned.
    pub fn get(&self, ty: &str, id: &str) -> Option<u32> {
        let types = self.types.read().unwrap_or_else(|e| e.into_inner());
        types.get(ty)?.numbers.get(id).copied()
    }

    /// The number of `id` of type `ty`, interning it if new.
    pub fn intern(&self, ty: &str, id: &str) -> Result<u32, InternerFull> {
        if let Some(n) = self.get(ty, id) {
            return Ok(n);
        }
        let mut types = self.types.write().unwrap_or_else(|e| e.into_inner());
        let table = types.entry(ty.to_string()).or_default();
        if let Some(n) = table.numbers.get(id) {
            return Ok(*n);
        }
        let n = u32::try_from(table.names.len())
            .ok()
            .filter(|n| *n != u32::MAX)
            .ok_or_else(|| InternerFull(ty.to_string()))?;
        let name: Arc<str> = Arc::from(id);
        table.names.push(name.clone());
        table.numbers.insert(name, n);
        Ok(n)
    }

    /// The ID numbered `n` of type `ty`.
    pub fn name(&self, ty: &str, n: u32) -> Option<Arc<str>> {
        let types = self.types.read().unwrap_or_else(|e| e.into_inner());
        types.get(ty)?.names.get(n as usize).cloned()
    }

    /// Resolves many numbers of one type under one lock; unknown numbers are skipped.
    pub fn names(&self, ty: &str, numbers: impl IntoIterator<Item = u32>) -> Vec<Arc<str>> {
        let types = self.types.read().unwrap_or_else(|e| e.into_inner());
        let Some(table) = types.get(ty) else {
            return Vec::new();
        };
        numbers
            .into_iter()
            .filter_map(|n| table.names.get(n as usize).cloned())
            .collect()
    }

    /// How many IDs of type `ty` are interned.
    pub fn len(&self, ty: &str) -> usize {
        let types = self.types.read().unwrap_or_else(|e| e.into_inner());
        types.get(ty).map_or(0, |t| t.names.len())
    }
}
