//! Entity IDs interned to dense `u32` per entity type.
//!
//! One interner is shared by every snapshot of a tenant. It only grows: an ID keeps its number
//! for the life of the process, so bitmaps from different snapshots stay comparable and a
//! continuous token (which records a number) stays meaningful.
//!
//! Numbers come from one of two places:
//! - **Local** interners ([`Interner::default`], the memory store) number every new ID
//!   themselves, densely from 0.
//! - **Durable** interners ([`Interner::durable`], a replica of a database) take the numbers of
//!   stored IDs from the database through [`Interner::intern_as`], so that every replica and
//!   every restart agrees on them (and so on result order and continuous tokens). IDs that only
//!   a request knows (contextual tuples, the subject of a lookup) are numbered locally from
//!   [`LOCAL_BASE`] up, a range the database never assigns, so the two can never collide.
//!   A locally numbered ID that is later stored takes its durable number for new snapshots;
//!   its local number keeps resolving to it for snapshots that still hold it.
//!
//! INVARIANT: for every durable number `n`, `names[n]` is the ID numbered `n` and
//! `numbers[names[n]] == n`; for every local number `LOCAL_BASE + i`, `local[i]` is its ID.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

/// The first number a durable interner assigns locally. Databases assign numbers below it.
pub const LOCAL_BASE: u32 = 1 << 31;

#[derive(Debug, Default)]
struct TypeTable {
    /// Dense numbers: assigned here (local interner) or by the database (durable interner,
    /// where a gap is possible until the number is applied).
    names: Vec<Option<Arc<str>>>,
    /// Request-local numbers of a durable interner, from `LOCAL_BASE`.
    local: Vec<Arc<str>>,
    numbers: HashMap<Arc<str>, u32>,
}

impl TypeTable {
    /// The number of `id`, assigning the next one if it is new (see [`Interner::intern`]).
    fn assign(&mut self, ty: &str, id: &str, durable: bool) -> Result<u32, InternerFull> {
        if let Some(n) = self.numbers.get(id) {
            return Ok(*n);
        }
        let name: Arc<str> = Arc::from(id);
        let n = if durable {
            let n = u32::try_from(self.local.len())
                .ok()
                .and_then(|i| LOCAL_BASE.checked_add(i))
                .filter(|n| *n != u32::MAX)
                .ok_or_else(|| InternerFull(ty.to_string()))?;
            self.local.push(name.clone());
            n
        } else {
            let n = u32::try_from(self.names.len())
                .ok()
                .filter(|n| *n < LOCAL_BASE)
                .ok_or_else(|| InternerFull(ty.to_string()))?;
            self.names.push(Some(name.clone()));
            n
        };
        self.numbers.insert(name, n);
        Ok(n)
    }

    fn name(&self, n: u32) -> Option<&Arc<str>> {
        if n >= LOCAL_BASE {
            self.local.get((n - LOCAL_BASE) as usize)
        } else {
            self.names.get(n as usize).and_then(Option::as_ref)
        }
    }
}

#[derive(Debug, Default)]
pub struct Interner {
    types: RwLock<HashMap<String, TypeTable>>,
    /// Whether stored IDs are numbered by a database (see the module docs).
    durable: bool,
}

/// The interner could not take more IDs of one type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("too many distinct ids of type `{0}` (at most 4294967295)")]
pub struct InternerFull(pub String);

/// A database-assigned number that contradicts what the interner already holds.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InternConflict {
    #[error(
        "entity number {number} of type `{ty}` is outside the durable range (below {LOCAL_BASE})"
    )]
    OutOfRange { ty: String, number: u32 },
    #[error("entity number {number} of type `{ty}` is already `{held}`, cannot also be `{id}`")]
    NumberTaken {
        ty: String,
        number: u32,
        held: String,
        id: String,
    },
    #[error("entity `{ty}:{id}` already has number {held}, cannot also have {number}")]
    IdNumbered {
        ty: String,
        id: String,
        held: u32,
        number: u32,
    },
}

impl Interner {
    /// An interner whose stored IDs are numbered by a database through
    /// [`Interner::intern_as`]; [`Interner::intern`] numbers request-local IDs from
    /// [`LOCAL_BASE`].
    pub fn durable() -> Interner {
        Interner {
            types: RwLock::default(),
            durable: true,
        }
    }

    /// Whether stored IDs are numbered by a database.
    pub fn is_durable(&self) -> bool {
        self.durable
    }

    /// The number of `id` of type `ty`, if it was interned.
    pub fn get(&self, ty: &str, id: &str) -> Option<u32> {
        let types = self.types.read().unwrap_or_else(|e| e.into_inner());
        types.get(ty)?.numbers.get(id).copied()
    }

    /// The durable number of `id` (one not assigned locally by a durable interner).
    pub fn get_stored(&self, ty: &str, id: &str) -> Option<u32> {
        self.get(ty, id)
            .filter(|n| !self.durable || *n < LOCAL_BASE)
    }

    /// The number of `id` of type `ty`, interning it if new: the next dense number of a local
    /// interner, or the next request-local number of a durable one.
    pub fn intern(&self, ty: &str, id: &str) -> Result<u32, InternerFull> {
        if let Some(n) = self.get(ty, id) {
            return Ok(n);
        }
        let mut types = self.types.write().unwrap_or_else(|e| e.into_inner());
        let table = types.entry(ty.to_string()).or_default();
        table.assign(ty, id, self.durable)
    }

    /// Interns many `(type, id)` pairs under one write lock (a bulk write's IDs), returning
    /// their numbers in order.
    pub fn intern_many<'i>(
        &self,
        ids: impl IntoIterator<Item = (&'i str, &'i str)>,
    ) -> Result<Vec<u32>, InternerFull> {
        let mut types = self.types.write().unwrap_or_else(|e| e.into_inner());
        let mut out = Vec::new();
        for (ty, id) in ids {
            if !types.contains_key(ty) {
                types.insert(ty.to_string(), TypeTable::default());
            }
            let table = types
                .get_mut(ty)
                .ok_or_else(|| InternerFull(ty.to_string()))?;
            out.push(table.assign(ty, id, self.durable)?);
        }
        Ok(out)
    }

    /// Records that the database numbered `id` of type `ty` as `number`. Idempotent; a number
    /// that contradicts an earlier one is an error (the database and the replica disagree).
    pub fn intern_as(&self, ty: &str, id: &str, number: u32) -> Result<(), InternConflict> {
        if number >= LOCAL_BASE {
            return Err(InternConflict::OutOfRange {
                ty: ty.to_string(),
                number,
            });
        }
        let mut types = self.types.write().unwrap_or_else(|e| e.into_inner());
        let table = types.entry(ty.to_string()).or_default();
        if let Some(held) = table.numbers.get(id).copied()
            && held < LOCAL_BASE
        {
            if held == number {
                return Ok(());
            }
            return Err(InternConflict::IdNumbered {
                ty: ty.to_string(),
                id: id.to_string(),
                held,
                number,
            });
        }
        let index = number as usize;
        if let Some(Some(held)) = table.names.get(index) {
            return Err(InternConflict::NumberTaken {
                ty: ty.to_string(),
                number,
                held: held.to_string(),
                id: id.to_string(),
            });
        }
        if table.names.len() <= index {
            table.names.resize(index + 1, None);
        }
        let name: Arc<str> = Arc::from(id);
        table.names[index] = Some(name.clone());
        table.numbers.insert(name, number);
        Ok(())
    }

    /// The ID numbered `n` of type `ty`.
    pub fn name(&self, ty: &str, n: u32) -> Option<Arc<str>> {
        let types = self.types.read().unwrap_or_else(|e| e.into_inner());
        types.get(ty)?.name(n).cloned()
    }

    /// Resolves many numbers of one type under one lock; unknown numbers are skipped.
    pub fn names(&self, ty: &str, numbers: impl IntoIterator<Item = u32>) -> Vec<Arc<str>> {
        let types = self.types.read().unwrap_or_else(|e| e.into_inner());
        let Some(table) = types.get(ty) else {
            return Vec::new();
        };
        numbers
            .into_iter()
            .filter_map(|n| table.name(n).cloned())
            .collect()
    }

    /// Calls `each` with every number of `numbers` and its ID, under one lock and without
    /// cloning the IDs; unknown numbers are skipped. Keep `each` short: it runs under the lock.
    pub fn for_each_name(
        &self,
        ty: &str,
        numbers: impl IntoIterator<Item = u32>,
        mut each: impl FnMut(u32, &str),
    ) {
        let types = self.types.read().unwrap_or_else(|e| e.into_inner());
        let Some(table) = types.get(ty) else {
            return;
        };
        for n in numbers {
            if let Some(name) = table.name(n) {
                each(n, name);
            }
        }
    }

    /// How many IDs of type `ty` are interned.
    pub fn len(&self, ty: &str) -> usize {
        let types = self.types.read().unwrap_or_else(|e| e.into_inner());
        types.get(ty).map_or(0, |t| t.numbers.len())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn local_interners_number_densely_from_zero() {
        let i = Interner::default();
        assert_eq!(i.intern("user", "a").unwrap(), 0);
        assert_eq!(i.intern("user", "b").unwrap(), 1);
        assert_eq!(i.intern("user", "a").unwrap(), 0);
        assert_eq!(i.intern("doc", "a").unwrap(), 0);
        assert_eq!(i.name("user", 1).as_deref(), Some("b"));
        assert_eq!(i.get_stored("user", "b"), Some(1));
    }

    #[test]
    fn durable_interners_keep_request_ids_apart_from_stored_ones() {
        let i = Interner::durable();
        i.intern_as("user", "a", 0).unwrap();
        i.intern_as("user", "c", 2).unwrap();
        assert_eq!(i.intern("user", "a").unwrap(), 0);
        let local = i.intern("user", "b").unwrap();
        assert_eq!(local, LOCAL_BASE);
        assert_eq!(i.get_stored("user", "b"), None);
        assert_eq!(i.name("user", local).as_deref(), Some("b"));
        assert_eq!(i.name("user", 1), None);
        assert_eq!(
            i.names("user", [0, 1, 2, local]),
            vec![Arc::from("a"), Arc::from("c"), Arc::from("b")]
        );
        // Stored later: the durable number wins, the local one still resolves.
        i.intern_as("user", "b", 1).unwrap();
        assert_eq!(i.get("user", "b"), Some(1));
        assert_eq!(i.name("user", local).as_deref(), Some("b"));
        // Idempotent, and contradictions are errors.
        i.intern_as("user", "b", 1).unwrap();
        assert!(matches!(
            i.intern_as("user", "b", 5),
            Err(InternConflict::IdNumbered { .. })
        ));
        assert!(matches!(
            i.intern_as("user", "z", 0),
            Err(InternConflict::NumberTaken { .. })
        ));
        assert!(matches!(
            i.intern_as("user", "z", LOCAL_BASE),
            Err(InternConflict::OutOfRange { .. })
        ));
    }
}
