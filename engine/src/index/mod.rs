//! The in-memory index: immutable snapshots of one tenant's tuples and attributes.
//!
//! Every relation key (entity type, relation, subject type, subject relation) keeps roaring
//! bitmaps both ways: entity → subjects (`fwd`) and subject → entities (`rev`). Boolean
//! attributes are bitmaps of the entities where they are true; other attributes are columns.
//!
//! A [`Snapshot`] never changes. [`Store::write`] clones the head snapshot (cheap: chunks are
//! shared copy-on-write), applies a whole batch to the clone and publishes it, so readers are
//! never blocked by writers and never see half a batch. Writes are serialised by a mutex.

mod cow;
mod idset;
mod interner;
mod listing;
mod write;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, RwLock};

use roaring::RoaringBitmap;

use crate::model::{AttrValue, EntityRef, Tuple};

pub use cow::{CowVec, SparseVec};
pub use idset::{IdSet, SetIter, SetRef, union_all};
pub use interner::{InternConflict, Interner, InternerFull, LOCAL_BASE, OVERLAY_BASE};
pub use listing::{ListPosition, Page};
pub use write::{
    Change, ChangeList, ChangeOp, WriteBatch, WriteError, WriteOutcome, validate_attribute,
    validate_tuple,
};

/// A hash map with a fast hasher (foldhash, through hashbrown) for the lookups every
/// evaluation step makes: relation keys are four strings, which SipHash made visible in
/// profiles of Check.
pub type FastMap<K, V> = HashMap<K, V, hashbrown::DefaultHashBuilder>;

/// Identifies the bitmaps of one relation from one kind of subject.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RelKey {
    pub entity_type: Arc<str>,
    pub relation: Arc<str>,
    pub subject_type: Arc<str>,
    /// `Some` for subject sets (`@group#member`).
    pub subject_relation: Option<Arc<str>>,
}

impl RelKey {
    pub fn new(
        entity_type: &str,
        relation: &str,
        subject_type: &str,
        subject_relation: Option<&str>,
    ) -> Self {
        RelKey {
            entity_type: Arc::from(entity_type),
            relation: Arc::from(relation),
            subject_type: Arc::from(subject_type),
            subject_relation: subject_relation.map(Arc::from),
        }
    }
}

/// The tuples of one [`RelKey`], indexed both ways.
#[derive(Debug, Clone, Default)]
pub struct RelStore {
    /// entity number → subject numbers.
    fwd: SparseVec<IdSet>,
    /// subject number → entity numbers.
    rev: SparseVec<IdSet>,
    /// Entities with at least one subject.
    entities: RoaringBitmap,
    /// Subjects with at least one entity.
    subjects: RoaringBitmap,
    /// Number of tuples.
    len: u64,
}

impl RelStore {
    /// Subjects of `entity`.
    #[inline]
    pub fn subjects_of(&self, entity: u32) -> Option<SetRef<'_>> {
        self.fwd.get(entity).map(IdSet::view)
    }

    /// Entities that have `subject`.
    #[inline]
    pub fn entities_of(&self, subject: u32) -> Option<SetRef<'_>> {
        self.rev.get(subject).map(IdSet::view)
    }

    /// Entities with at least one subject.
    pub fn entities(&self) -> &RoaringBitmap {
        &self.entities
    }

    /// Subjects with at least one entity.
    pub fn subjects(&self) -> &RoaringBitmap {
        &self.subjects
    }

    /// Number of tuples stored.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn contains(&self, entity: u32, subject: u32) -> bool {
        self.subjects_of(entity)
            .is_some_and(|b| b.contains(subject))
    }

    fn insert(&mut self, entity: u32, subject: u32) -> bool {
        if self.contains(entity, subject) {
            return false;
        }
        self.fwd.get_mut(entity).insert(subject);
        self.rev.get_mut(subject).insert(entity);
        self.entities.insert(entity);
        self.subjects.insert(subject);
        self.len += 1;
        true
    }

    fn remove(&mut self, entity: u32, subject: u32) -> bool {
        if !self.contains(entity, subject) {
            return false;
        }
        let fwd = self.fwd.get_mut(entity);
        fwd.remove(subject);
        if fwd.is_empty() {
            self.fwd.remove(entity);
            self.entities.remove(entity);
        }
        let rev = self.rev.get_mut(subject);
        rev.remove(entity);
        if rev.is_empty() {
            self.rev.remove(subject);
            self.subjects.remove(subject);
        }
        self.len -= 1;
        true
    }
}

/// Identifies the values of one attribute of one entity type.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AttrKey {
    pub entity_type: Arc<str>,
    pub name: Arc<str>,
}

impl AttrKey {
    pub fn new(entity_type: &str, name: &str) -> Self {
        AttrKey {
            entity_type: Arc::from(entity_type),
            name: Arc::from(name),
        }
    }
}

/// The values of one attribute of one entity type.
#[derive(Debug, Clone, Default)]
pub struct AttrColumn {
    /// Entities with a value.
    present: RoaringBitmap,
    /// Entities whose value is the boolean `true`.
    trues: RoaringBitmap,
    values: CowVec<Option<Arc<AttrValue>>>,
}

impl AttrColumn {
    /// The value stored for `entity`.
    #[inline]
    pub fn get(&self, entity: u32) -> Option<&AttrValue> {
        self.values.get(entity).and_then(|v| v.as_deref())
    }

    /// Entities whose value is boolean `true`.
    pub fn trues(&self) -> &RoaringBitmap {
        &self.trues
    }

    /// Entities with a value.
    pub fn present(&self) -> &RoaringBitmap {
        &self.present
    }

    fn set(&mut self, entity: u32, value: AttrValue) -> Option<Arc<AttrValue>> {
        if value == AttrValue::Boolean(true) {
            self.trues.insert(entity);
        } else {
            self.trues.remove(entity);
        }
        self.present.insert(entity);
        self.values.get_mut(entity).replace(Arc::new(value))
    }

    fn remove(&mut self, entity: u32) -> Option<Arc<AttrValue>> {
        self.trues.remove(entity);
        self.present.remove(entity);
        if self.values.get(entity).is_none_or(|v| v.is_none()) {
            return None;
        }
        self.values.get_mut(entity).take()
    }
}

/// One tenant's data at one revision. Immutable; cheap to clone.
#[derive(Debug, Clone)]
pub struct Snapshot {
    revision: u64,
    interner: Arc<Interner>,
    relations: Arc<FastMap<RelKey, Arc<RelStore>>>,
    attributes: Arc<FastMap<AttrKey, Arc<AttrColumn>>>,
    /// Whether this snapshot carries a request's contextual tuples or attributes.
    contextual: bool,
    /// The stores of one plan's keys, looked up once (see [`Snapshot::resolved`]).
    resolved: Arc<OnceLock<(u64, ResolvedStores)>>,
}

/// The stores of a list of relation keys in one snapshot, in the list's order (`None` where
/// the snapshot has no tuples of that key).
pub type ResolvedStores = Arc<[Option<Arc<RelStore>>]>;

impl Snapshot {
    /// An empty snapshot at revision 0.
    pub fn empty(interner: Arc<Interner>) -> Self {
        Snapshot {
            revision: 0,
            interner,
            relations: Arc::new(FastMap::default()),
            attributes: Arc::new(FastMap::default()),
            contextual: false,
            resolved: Arc::default(),
        }
    }

    /// The revision of the write that produced this snapshot.
    pub fn revision(&self) -> u64 {
        self.revision
    }

    /// This snapshot for one request: the same data, with an interner overlay (see
    /// [`Interner::overlay`]) that numbers IDs only the request knows without adding them to
    /// the tenant's interner. Already such a snapshot: a plain clone.
    pub fn with_request_ids(&self) -> Snapshot {
        if self.interner.is_overlay() {
            return self.clone();
        }
        Snapshot {
            interner: Arc::new(Interner::overlay(self.interner.clone())),
            ..self.clone()
        }
    }

    /// The stored data of this snapshot, without a request's overlay (what may be retained
    /// beyond the request). `None` for a snapshot with contextual data, which is the request's.
    pub fn stored(&self) -> Option<Snapshot> {
        if self.contextual {
            return None;
        }
        Some(Snapshot {
            interner: self.interner.root().clone(),
            ..self.clone()
        })
    }

    /// Whether this snapshot carries a request's contextual data.
    pub fn is_contextual(&self) -> bool {
        self.contextual
    }

    pub fn interner(&self) -> &Arc<Interner> {
        &self.interner
    }

    /// The tuples of one relation key.
    #[inline]
    pub fn relation(&self, key: &RelKey) -> Option<&RelStore> {
        self.relations.get(key).map(|s| s.as_ref())
    }

    /// The stores of `keys` in this snapshot, for the evaluation plan `plan` (an id unique to
    /// it): looked up once per snapshot, so that an evaluation indexes a slice instead of
    /// hashing and comparing keys of four strings. One plan per snapshot is remembered (the
    /// first to ask); `None` for any other, which then looks its keys up with
    /// [`Snapshot::relation`].
    pub fn resolved<'k>(
        &self,
        plan: u64,
        keys: impl IntoIterator<Item = &'k RelKey>,
    ) -> Option<ResolvedStores> {
        let (owner, stores) = self.resolved.get_or_init(|| {
            let stores = keys
                .into_iter()
                .map(|key| self.relations.get(key).cloned())
                .collect();
            (plan, stores)
        });
        (*owner == plan).then(|| stores.clone())
    }

    /// Every relation key with at least one tuple.
    pub fn relation_keys(&self) -> impl Iterator<Item = (&RelKey, &RelStore)> {
        self.relations
            .iter()
            .filter(|(_, s)| !s.is_empty())
            .map(|(k, s)| (k, s.as_ref()))
    }

    /// The values of one attribute.
    #[inline]
    pub fn attribute(&self, key: &AttrKey) -> Option<&AttrColumn> {
        self.attributes.get(key).map(|c| c.as_ref())
    }

    /// Every attribute key with a column.
    pub fn attribute_keys(&self) -> impl Iterator<Item = (&AttrKey, &AttrColumn)> {
        self.attributes.iter().map(|(k, c)| (k, c.as_ref()))
    }

    /// The number of `id` of type `ty`, if it was ever interned.
    pub fn number(&self, ty: &str, id: &str) -> Option<u32> {
        self.interner.get(ty, id)
    }

    /// Total number of tuples.
    pub fn tuple_count(&self) -> u64 {
        self.relations.values().map(|s| s.len()).sum()
    }

    /// Whether the exact tuple is stored.
    pub fn contains_tuple(&self, tuple: &Tuple) -> bool {
        let key = RelKey::new(
            &tuple.entity.ty,
            &tuple.relation,
            &tuple.subject.ty,
            tuple.subject.relation.as_deref(),
        );
        let (Some(store), Some(e), Some(s)) = (
            self.relation(&key),
            self.number(&tuple.entity.ty, &tuple.entity.id),
            self.number(&tuple.subject.ty, &tuple.subject.id),
        ) else {
            return false;
        };
        store.contains(e, s)
    }

    /// Every entity number of type `ty` that appears anywhere in this snapshot: as an entity or
    /// a subject of a tuple, or with an attribute. Scans; used only where a plan needs the
    /// universe of a type (a rule with no relation to narrow it).
    pub fn universe(&self, ty: &str) -> RoaringBitmap {
        let mut all = RoaringBitmap::new();
        for part in self.universe_parts(ty) {
            all |= part;
        }
        all
    }

    /// The `k` smallest numbers of [`Snapshot::universe`], ascending, without building it.
    pub fn universe_head(&self, ty: &str, k: usize) -> Vec<u32> {
        let mut head: Vec<u32> = Vec::new();
        for part in self.universe_parts(ty) {
            head.extend(part.iter().take(k));
            head.sort_unstable();
            head.dedup();
            head.truncate(k);
        }
        head
    }

    /// The bitmaps whose union is [`Snapshot::universe`].
    fn universe_parts<'s>(&'s self, ty: &'s str) -> impl Iterator<Item = &'s RoaringBitmap> + 's {
        let relations = self.relations.iter().flat_map(move |(key, store)| {
            let as_entity = (&*key.entity_type == ty).then(|| store.entities());
            let as_subject = (&*key.subject_type == ty).then(|| store.subjects());
            as_entity.into_iter().chain(as_subject)
        });
        let attributes = self
            .attributes
            .iter()
            .filter(move |(key, _)| &*key.entity_type == ty)
            .map(|(_, column)| column.present());
        relations.chain(attributes)
    }

    /// The stored value of one attribute of one entity.
    pub fn attribute_value(&self, entity: &EntityRef, name: &str) -> Option<&AttrValue> {
        let column = self.attribute(&AttrKey::new(&entity.ty, name))?;
        column.get(self.number(&entity.ty, &entity.id)?)
    }
}

/// A state being loaded into a [`Store`] (see [`Store::load`]).
///
/// INVARIANT: `next` is shared with no published snapshot once its first batch is applied or
/// tuple inserted (both take the maps and stores out of it, copying what the head still
/// shares), so later batches and tuples change its stores in place and the head never sees
/// them before [`Store::finish_load`].
#[derive(Debug)]
pub struct Load {
    next: Snapshot,
    /// The relation keys [`Load::insert_tuple`] has seen, with their stores taken out of
    /// `next` until [`Store::finish_load`] puts them back (a few keys: found by a scan that
    /// compares names, with no allocation per tuple).
    taken: Vec<(RelKey, RelStore)>,
}

/// A tuple [`Load::insert_tuple`] refused: it names an ID the interner has not numbered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{ty}:{id}` has no entity number")]
pub struct Unnumbered {
    pub ty: String,
    pub id: String,
}

impl Load {
    /// Inserts one stored tuple, given by its parts, whose entity and subject IDs were
    /// numbered first ([`Interner::intern_as`]); allocates nothing per tuple but the stores'
    /// own growth. Returns whether the tuple was new.
    pub fn insert_tuple(
        &mut self,
        entity: (&str, &str),
        relation: &str,
        subject: (&str, &str),
        subject_relation: Option<&str>,
    ) -> Result<bool, Unnumbered> {
        let number = |(ty, id): (&str, &str)| {
            self.next.interner.get(ty, id).ok_or_else(|| Unnumbered {
                ty: ty.to_string(),
                id: id.to_string(),
            })
        };
        let (e, s) = (number(entity)?, number(subject)?);
        let same = |k: &RelKey| {
            &*k.entity_type == entity.0
                && &*k.relation == relation
                && &*k.subject_type == subject.0
                && k.subject_relation.as_deref() == subject_relation
        };
        let slot = match self.taken.iter().position(|(k, _)| same(k)) {
            Some(slot) => slot,
            None => {
                let key = RelKey::new(entity.0, relation, subject.0, subject_relation);
                let relations = Arc::make_mut(&mut self.next.relations);
                let store = relations
                    .remove(&key)
                    .map(Arc::unwrap_or_clone)
                    .unwrap_or_default();
                self.taken.push((key, store));
                self.taken.len() - 1
            }
        };
        Ok(self.taken[slot].1.insert(e, s))
    }

    /// Applies a batch another process already validated and committed; the IDs of new
    /// entities must have been numbered first ([`Interner::intern_as`]). A failed batch leaves
    /// the load unusable (an empty state): give it up.
    pub fn apply(&mut self, batch: &WriteBatch) -> Result<(), WriteError> {
        self.put_back();
        let empty = Snapshot::empty(self.next.interner.clone());
        let base = std::mem::replace(&mut self.next, empty);
        let (next, _) = write::apply_unchecked(base, batch)?;
        self.next = next;
        Ok(())
    }

    /// Tuples loaded so far.
    pub fn tuple_count(&self) -> u64 {
        self.next.tuple_count() + self.taken.iter().map(|(_, s)| s.len()).sum::<u64>()
    }

    /// Returns the stores [`Load::insert_tuple`] took out to `next`.
    fn put_back(&mut self) {
        if self.taken.is_empty() {
            return;
        }
        let relations = Arc::make_mut(&mut self.next.relations);
        for (key, store) in self.taken.drain(..) {
            relations.insert(key, Arc::new(store));
        }
    }
}

/// Selects tuples, as Permify's `TupleFilter`: empty lists and `None` match everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TupleFilter {
    pub entity_type: Option<String>,
    pub entity_ids: Vec<String>,
    pub relation: Option<String>,
    pub subject_type: Option<String>,
    pub subject_ids: Vec<String>,
    /// `Some("")` selects plain subjects only; `None` any.
    pub subject_relation: Option<String>,
}

impl TupleFilter {
    fn matches_key(&self, key: &RelKey) -> bool {
        self.entity_type
            .as_deref()
            .is_none_or(|t| t == &*key.entity_type)
            && self.relation.as_deref().is_none_or(|r| r == &*key.relation)
            && self
                .subject_type
                .as_deref()
                .is_none_or(|t| t == &*key.subject_type)
            && match self.subject_relation.as_deref() {
                None => true,
                Some("") | Some("...") => key.subject_relation.is_none(),
                Some(r) => key.subject_relation.as_deref() == Some(r),
            }
    }

    /// Whether a tuple matches this filter.
    pub fn matches(&self, tuple: &Tuple) -> bool {
        let key = RelKey::new(
            &tuple.entity.ty,
            &tuple.relation,
            &tuple.subject.ty,
            tuple.subject.relation.as_deref(),
        );
        self.matches_key(&key)
            && (self.entity_ids.is_empty() || self.entity_ids.contains(&tuple.entity.id))
            && (self.subject_ids.is_empty() || self.subject_ids.contains(&tuple.subject.id))
    }
}

/// Selects attributes, as Permify's `AttributeFilter`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AttributeFilter {
    pub entity_type: Option<String>,
    pub entity_ids: Vec<String>,
    pub names: Vec<String>,
}

/// One tenant's store: the head snapshot and the write path.
#[derive(Debug)]
pub struct Store {
    interner: Arc<Interner>,
    head: RwLock<Arc<Snapshot>>,
    writer: Mutex<()>,
}

impl Default for Store {
    fn default() -> Self {
        Store::new()
    }
}

impl Store {
    pub fn new() -> Self {
        Store::with_interner(Interner::default())
    }

    /// A store numbering IDs with `interner` (see [`Interner::durable`]).
    pub fn with_interner(interner: Interner) -> Self {
        let interner = Arc::new(interner);
        Store {
            head: RwLock::new(Arc::new(Snapshot::empty(interner.clone()))),
            interner,
            writer: Mutex::new(()),
        }
    }

    /// The latest snapshot.
    pub fn head(&self) -> Arc<Snapshot> {
        self.head.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn interner(&self) -> &Arc<Interner> {
        &self.interner
    }

    /// Applies a batch atomically against `schema` and publishes a new snapshot at the next
    /// revision. Nothing of a rejected batch is applied. A batch that changes nothing still gets
    /// a new revision, as every acknowledged write does.
    pub fn write(
        &self,
        schema: &crate::schema::Schema,
        batch: &WriteBatch,
    ) -> Result<WriteOutcome, WriteError> {
        self.write_then(schema, batch, |_, _| {})
    }

    /// As [`Store::write`], calling `before_publish(revision, changes)` after the batch is
    /// applied and before the new snapshot becomes visible to readers (for cache invalidation
    /// that must never lag behind the data).
    pub fn write_then(
        &self,
        schema: &crate::schema::Schema,
        batch: &WriteBatch,
        before_publish: impl FnOnce(u64, &ChangeList),
    ) -> Result<WriteOutcome, WriteError> {
        let _guard = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        let head = self.head();
        let (mut next, changes) = write::apply(schema, &head, batch)?;
        next.revision = head.revision + 1;
        next.contextual = false;
        before_publish(next.revision, &changes);
        let next = Arc::new(next);
        *self.head.write().unwrap_or_else(|e| e.into_inner()) = next.clone();
        Ok(WriteOutcome {
            snapshot: next,
            changes,
        })
    }

    /// Starts loading a large committed state (a replica's cold start) into this store: the
    /// batches go into a private snapshot, changed in place, and [`Store::finish_load`]
    /// publishes it once. Applying the same batches with [`Store::apply_at`] one by one would
    /// copy every store a batch touches, since the published head still shares it.
    pub fn load(&self) -> Load {
        Load {
            next: (*self.head()).clone(),
            taken: Vec::new(),
        }
    }

    /// Publishes a finished load at `revision`, which must not be below the head's.
    pub fn finish_load(&self, load: Load, revision: u64) -> Result<Arc<Snapshot>, WriteError> {
        let _guard = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        self.head_not_after(revision, "load")?;
        let mut load = load;
        load.put_back();
        let mut next = load.next;
        next.revision = revision;
        next.contextual = false;
        next.resolved = Arc::default();
        let next = Arc::new(next);
        *self.head.write().unwrap_or_else(|e| e.into_inner()) = next.clone();
        Ok(next)
    }

    /// The head, if it is not after `revision` (which a replica is about to `verb`); taken
    /// under the writer lock.
    fn head_not_after(&self, revision: u64, verb: &str) -> Result<Arc<Snapshot>, WriteError> {
        let head = self.head();
        if revision < head.revision {
            return Err(WriteError::Replica(format!(
                "cannot {verb} revision {revision}: the index is already at revision {}",
                head.revision
            )));
        }
        Ok(head)
    }

    /// Applies a batch another process already validated and committed (a replica following
    /// a database), publishing the result at exactly `revision`, which must not be below the
    /// head's.
    /// The IDs of new entities must have been numbered first ([`Interner::intern_as`]).
    /// `before_publish` runs as in [`Store::write_then`].
    pub fn apply_at(
        &self,
        revision: u64,
        batch: &WriteBatch,
        before_publish: impl FnOnce(u64, &ChangeList),
    ) -> Result<WriteOutcome, WriteError> {
        let _guard = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        let head = self.head_not_after(revision, "apply")?;
        let (mut next, changes) = write::apply_unchecked((*head).clone(), batch)?;
        next.revision = revision;
        next.contextual = false;
        before_publish(next.revision, &changes);
        let next = Arc::new(next);
        *self.head.write().unwrap_or_else(|e| e.into_inner()) = next.clone();
        Ok(WriteOutcome {
            snapshot: next,
            changes,
        })
    }
}
