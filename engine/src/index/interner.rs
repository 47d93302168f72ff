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
//!
//! Reads never add to a tenant's interner. A request that needs numbers for IDs no stored
//! data mentions (its contextual tuples, the subject set it looks up) gets an **overlay**
//! ([`Interner::overlay`]): a private interner over the tenant's that resolves stored IDs
//! through it and numbers new ones itself from [`OVERLAY_BASE`] up, a range neither the
//! database nor the tenant's interner assigns. The overlay goes with the request.
//!
//! INVARIANT: a tenant's interner grows only by writes; numbers at or above
//! [`OVERLAY_BASE`] belong to one request's overlay and mean nothing outside it (a result
//! holding one is never cached). Guarded by `reads_never_grow_the_shared_interner`
//! (`engine/tests/deep.rs`) and `overlays_resolve_their_own_ids_and_the_base_ones` (here).

use std::hash::BuildHasher;
use std::sync::{Arc, RwLock};

use hashbrown::{DefaultHashBuilder, HashTable};

/// The first number a durable interner assigns locally. Databases assign numbers below it.
pub const LOCAL_BASE: u32 = 1 << 31;

/// The first number a request's overlay assigns (see the module docs). Local numbers of a
/// durable interner stay below it.
pub const OVERLAY_BASE: u32 = LOCAL_BASE | (1 << 30);

/// An overlay's tables number IDs as a durable interner's local ones (from [`LOCAL_BASE`]);
/// the overlay shows them shifted by this much, from [`OVERLAY_BASE`].
const OVERLAY_SHIFT: u32 = OVERLAY_BASE - LOCAL_BASE;

/// Where one ID's text lies in its table's arena; `start == ABSENT` marks a gap.
#[derive(Debug, Clone, Copy)]
struct Span {
    start: u32,
    len: u32,
}

const ABSENT: u32 = u32::MAX;

/// The IDs of one entity type, stored compactly: their text back to back in one arena, a
/// span per number, and a hash table of numbers keyed by the text they point at (about 20
/// bytes per ID plus its text, where an `Arc<str>` per ID in a map and a vector took ~80).
#[derive(Default)]
struct TypeTable {
    arena: String,
    /// Dense numbers: assigned here (local interner) or by the database (durable interner,
    /// where a gap is possible until the number is applied).
    names: Vec<Span>,
    /// Request-local numbers of a durable interner, from `LOCAL_BASE`.
    local: Vec<Span>,
    /// Every ID's number, hashed by its text.
    numbers: HashTable<u32>,
    hasher: DefaultHashBuilder,
}

impl std::fmt::Debug for TypeTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TypeTable")
            .field("ids", &self.numbers.len())
            .field("arena_bytes", &self.arena.len())
            .finish()
    }
}

/// The text of number `n` in a table's parts (borrowed apart, so the hash table can be
/// changed while its hashes are computed).
fn text_at<'a>(arena: &'a str, names: &[Span], local: &[Span], n: u32) -> Option<&'a str> {
    let span = if n >= LOCAL_BASE {
        local.get((n - LOCAL_BASE) as usize)
    } else {
        names.get(n as usize)
    }?;
    if span.start == ABSENT {
        return None;
    }
    let start = span.start as usize;
    arena.get(start..start + span.len as usize)
}

impl TypeTable {
    fn name(&self, n: u32) -> Option<&str> {
        text_at(&self.arena, &self.names, &self.local, n)
    }

    fn hash(&self, id: &str) -> u64 {
        self.hasher.hash_one(id)
    }

    /// The number the table holds for `id`.
    fn get(&self, id: &str) -> Option<u32> {
        let hash = self.hash(id);
        self.numbers
            .find(hash, |n| self.name(*n) == Some(id))
            .copied()
    }

    /// Appends `id` to the arena.
    fn store(&mut self, ty: &str, id: &str) -> Result<Span, InternerFull> {
        let start = u32::try_from(self.arena.len())
            .ok()
            .filter(|s| *s != ABSENT);
        let len = u32::try_from(id.len()).ok();
        let (Some(start), Some(len)) = (start, len) else {
            return Err(InternerFull(ty.to_string()));
        };
        if start.checked_add(len).is_none() {
            return Err(InternerFull(ty.to_string()));
        }
        self.arena.push_str(id);
        Ok(Span { start, len })
    }

    /// Records `id → n` in the hash table, replacing the number `id` had.
    fn index(&mut self, id: &str, n: u32) {
        let hash = self.hash(id);
        let Self {
            numbers,
            names,
            local,
            arena,
            hasher,
        } = self;
        if let Some(held) = numbers.find_mut(hash, |m| text_at(arena, names, local, *m) == Some(id))
        {
            *held = n;
            return;
        }
        numbers.insert_unique(hash, n, |m| {
            hasher.hash_one(text_at(arena, names, local, *m).unwrap_or(""))
        });
    }

    /// The number of `id`, assigning the next one if it is new (see [`Interner::intern`]).
    fn assign(&mut self, ty: &str, id: &str, durable: bool) -> Result<u32, InternerFull> {
        if let Some(n) = self.get(id) {
            return Ok(n);
        }
        let n = if durable {
            u32::try_from(self.local.len())
                .ok()
                .and_then(|i| LOCAL_BASE.checked_add(i))
                .filter(|n| *n < OVERLAY_BASE)
                .ok_or_else(|| InternerFull(ty.to_string()))?
        } else {
            u32::try_from(self.names.len())
                .ok()
                .filter(|n| *n < LOCAL_BASE)
                .ok_or_else(|| InternerFull(ty.to_string()))?
        };
        let span = self.store(ty, id)?;
        if durable {
            self.local.push(span);
        } else {
            self.names.push(span);
        }
        self.index(id, n);
        Ok(n)
    }
}

#[derive(Debug, Default)]
pub struct Interner {
    types: RwLock<super::FastMap<String, TypeTable>>,
    /// Whether stored IDs are numbered by a database (see the module docs).
    durable: bool,
    /// For a request's overlay, the tenant's interner it reads through.
    base: Option<Arc<Interner>>,
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
            base: None,
        }
    }

    /// A request's private interner over `base` (see the module docs): it resolves every ID
    /// and number of `base`, and numbers IDs `base` does not know from [`OVERLAY_BASE`] up,
    /// without adding anything to `base`. An overlay of an overlay reads through to the same
    /// tenant interner.
    pub fn overlay(base: Arc<Interner>) -> Interner {
        let base = match &base.base {
            Some(root) => root.clone(),
            None => base,
        };
        Interner {
            types: RwLock::default(),
            durable: base.durable,
            base: Some(base),
        }
    }

    /// Whether this is a request's overlay.
    pub fn is_overlay(&self) -> bool {
        self.base.is_some()
    }

    /// The tenant's interner: the base of an overlay, or `self`.
    pub fn root(self: &Arc<Self>) -> &Arc<Interner> {
        self.base.as_ref().unwrap_or(self)
    }

    /// Whether stored IDs are numbered by a database.
    pub fn is_durable(&self) -> bool {
        self.durable
    }

    /// The number an overlay's own table holds for `id`, shifted into the overlay's range.
    fn own(&self, ty: &str, id: &str) -> Option<u32> {
        let types = self.types.read().unwrap_or_else(|e| e.into_inner());
        types.get(ty)?.get(id).map(|n| n + OVERLAY_SHIFT)
    }

    /// The number of `id` of type `ty`, if it was interned.
    pub fn get(&self, ty: &str, id: &str) -> Option<u32> {
        if let Some(base) = &self.base {
            // Ours first: an ID this request numbered keeps its number even if a concurrent
            // write stores it in the base meanwhile (this request's snapshot predates that).
            return self.own(ty, id).or_else(|| base.get(ty, id));
        }
        let types = self.types.read().unwrap_or_else(|e| e.into_inner());
        types.get(ty)?.get(id)
    }

    /// The durable number of `id` (one not assigned locally by a durable interner).
    pub fn get_stored(&self, ty: &str, id: &str) -> Option<u32> {
        if let Some(base) = &self.base {
            return base.get_stored(ty, id);
        }
        self.get(ty, id)
            .filter(|n| !self.durable || *n < LOCAL_BASE)
    }

    /// The number of `id` of type `ty`, interning it if new: the next dense number of a local
    /// interner, the next request-local number of a durable one, or the next number of an
    /// overlay.
    pub fn intern(&self, ty: &str, id: &str) -> Result<u32, InternerFull> {
        if let Some(n) = self.get(ty, id) {
            return Ok(n);
        }
        let mut types = self.types.write().unwrap_or_else(|e| e.into_inner());
        let table = types.entry(ty.to_string()).or_default();
        if self.base.is_some() {
            return table.assign(ty, id, true).map(|n| n + OVERLAY_SHIFT);
        }
        table.assign(ty, id, self.durable)
    }

    /// Interns many `(type, id)` pairs under one write lock (a bulk write's IDs), returning
    /// their numbers in order.
    pub fn intern_many<'i>(
        &self,
        ids: impl IntoIterator<Item = (&'i str, &'i str)>,
    ) -> Result<Vec<u32>, InternerFull> {
        if self.base.is_some() {
            return ids
                .into_iter()
                .map(|(ty, id)| self.intern(ty, id))
                .collect();
        }
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
        if let Some(base) = &self.base {
            return base.intern_as(ty, id, number);
        }
        if number >= LOCAL_BASE {
            return Err(InternConflict::OutOfRange {
                ty: ty.to_string(),
                number,
            });
        }
        let mut types = self.types.write().unwrap_or_else(|e| e.into_inner());
        let table = types.entry(ty.to_string()).or_default();
        if let Some(held) = table.get(id)
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
        if let Some(held) = table.name(number) {
            return Err(InternConflict::NumberTaken {
                ty: ty.to_string(),
                number,
                held: held.to_string(),
                id: id.to_string(),
            });
        }
        let span = table
            .store(ty, id)
            .map_err(|_| InternConflict::OutOfRange {
                ty: ty.to_string(),
                number,
            })?;
        if table.names.len() <= index {
            table.names.resize(
                index + 1,
                Span {
                    start: ABSENT,
                    len: 0,
                },
            );
        }
        table.names[index] = span;
        table.index(id, number);
        Ok(())
    }

    /// The ID numbered `n` of type `ty`.
    pub fn name(&self, ty: &str, n: u32) -> Option<String> {
        if let Some(base) = &self.base {
            if n < OVERLAY_BASE {
                return base.name(ty, n);
            }
            let types = self.types.read().unwrap_or_else(|e| e.into_inner());
            return types.get(ty)?.name(n - OVERLAY_SHIFT).map(str::to_owned);
        }
        let types = self.types.read().unwrap_or_else(|e| e.into_inner());
        types.get(ty)?.name(n).map(str::to_owned)
    }

    /// Resolves many numbers of one type under one lock; unknown numbers are skipped.
    pub fn names(&self, ty: &str, numbers: impl IntoIterator<Item = u32>) -> Vec<String> {
        if self.base.is_some() {
            let mut out = Vec::new();
            self.for_each_name(ty, numbers, |_, name| out.push(name.to_owned()));
            return out;
        }
        let types = self.types.read().unwrap_or_else(|e| e.into_inner());
        let Some(table) = types.get(ty) else {
            return Vec::new();
        };
        numbers
            .into_iter()
            .filter_map(|n| table.name(n).map(str::to_owned))
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
        if let Some(base) = &self.base {
            // In order: the base's numbers (all below OVERLAY_BASE), then ours.
            let (ours, theirs): (Vec<u32>, Vec<u32>) =
                numbers.into_iter().partition(|&n| n >= OVERLAY_BASE);
            {
                let types = base.types.read().unwrap_or_else(|e| e.into_inner());
                if let Some(table) = types.get(ty) {
                    for n in theirs {
                        if let Some(name) = table.name(n) {
                            each(n, name);
                        }
                    }
                }
            }
            let types = self.types.read().unwrap_or_else(|e| e.into_inner());
            if let Some(own) = types.get(ty) {
                for n in ours {
                    if let Some(name) = own.name(n - OVERLAY_SHIFT) {
                        each(n, name);
                    }
                }
            }
            return;
        }
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

    /// How many IDs of type `ty` are interned (an overlay counts its base's too).
    pub fn len(&self, ty: &str) -> usize {
        let types = self.types.read().unwrap_or_else(|e| e.into_inner());
        let own = types.get(ty).map_or(0, |t| t.numbers.len());
        own + self.base.as_ref().map_or(0, |b| b.len(ty))
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
    fn overlays_resolve_their_own_ids_and_the_base_ones() {
        for base in [Interner::default(), Interner::durable()] {
            let base = Arc::new(base);
            base.intern_many([("user", "a"), ("user", "b")]).unwrap();
            if base.is_durable() {
                base.intern_as("user", "a", 0).unwrap();
                base.intern_as("user", "b", 1).unwrap();
            }
            let (a, b) = (
                base.get("user", "a").unwrap(),
                base.get("user", "b").unwrap(),
            );
            let overlay = Interner::overlay(base.clone());
            assert_eq!(overlay.intern("user", "a").unwrap(), a);
            let fresh = overlay.intern("user", "fresh").unwrap();
            assert_eq!(fresh, OVERLAY_BASE);
            assert_eq!(overlay.intern("user", "fresh").unwrap(), fresh);
            assert_eq!(
                overlay.intern_many([("user", "b"), ("doc", "x")]).unwrap(),
                vec![b, OVERLAY_BASE]
            );
            assert_eq!(overlay.name("user", fresh).as_deref(), Some("fresh"));
            assert_eq!(
                overlay.names("user", [a, b, fresh]),
                vec!["a", "b", "fresh"]
            );
            assert_eq!(overlay.get_stored("user", "fresh"), None);
            assert_eq!(overlay.len("user"), 3);
            // Nothing reached the base.
            assert_eq!(base.get("user", "fresh"), None);
            assert_eq!(base.get("doc", "x"), None);
            assert_eq!(base.len("user"), 2);
            assert_eq!(base.name("user", fresh), None);
            // An overlay of an overlay reads through to the base, not to the first overlay.
            let again = Interner::overlay(Arc::new(overlay));
            assert_eq!(again.get("user", "fresh"), None);
            assert_eq!(again.get("user", "a"), Some(a));
        }
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
        assert_eq!(i.names("user", [0, 1, 2, local]), vec!["a", "c", "b"]);
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
