//! Validating and applying a batch of tuple and attribute changes to a snapshot.
//!
//! A batch is validated completely before anything is applied, so a rejected batch changes
//! nothing. Validation follows the schema: the entity type and relation (or attribute) must
//! exist, the subject must be of a type (and subject relation) the relation allows, an
//! attribute value must have the declared type.

use std::collections::HashMap;
use std::sync::Arc;

use super::{AttrColumn, AttrKey, FastMap, Interner, RelKey, RelStore, Snapshot};
use crate::model::{self, AttrValue, Attribute, EntityRef, ModelError, Tuple};
use crate::schema::Schema;

/// One batch of changes, applied atomically in this order: tuple deletes, tuple writes,
/// attribute deletes, attribute writes.
#[derive(Debug, Clone, Default)]
pub struct WriteBatch {
    pub tuple_writes: Vec<Tuple>,
    pub tuple_deletes: Vec<Tuple>,
    pub attribute_writes: Vec<Attribute>,
    /// `(entity, attribute name)`.
    pub attribute_deletes: Vec<(EntityRef, String)>,
}

impl WriteBatch {
    /// The batch that replays effective changes (listed as [`Snapshot::plan`] lists them):
    /// applied to the snapshot they were planned on, it makes exactly those changes.
    pub fn of_changes(changes: &[Change]) -> WriteBatch {
        let mut batch = WriteBatch::default();
        for change in changes {
            match change {
                Change::Tuple(ChangeOp::Create, t) => batch.tuple_writes.push(t.clone()),
                Change::Tuple(ChangeOp::Delete, t) => batch.tuple_deletes.push(t.clone()),
                Change::Attribute(ChangeOp::Create, a) => batch.attribute_writes.push(a.clone()),
                Change::Attribute(ChangeOp::Delete, a) => batch
                    .attribute_deletes
                    .push((a.entity.clone(), a.name.clone())),
            }
        }
        batch
    }

    pub fn is_empty(&self) -> bool {
        self.tuple_writes.is_empty()
            && self.tuple_deletes.is_empty()
            && self.attribute_writes.is_empty()
            && self.attribute_deletes.is_empty()
    }

    /// Number of changes in the batch.
    pub fn len(&self) -> usize {
        self.tuple_writes.len()
            + self.tuple_deletes.len()
            + self.attribute_writes.len()
            + self.attribute_deletes.len()
    }
}

/// Whether a change created or deleted something.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeOp {
    Create,
    Delete,
}

/// One effective change of a committed batch, as Watch reports it.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    Tuple(ChangeOp, Tuple),
    Attribute(ChangeOp, Attribute),
}

/// The result of a committed write.
#[derive(Debug, Clone)]
pub struct WriteOutcome {
    pub snapshot: Arc<Snapshot>,
    /// What actually changed: writing an existing tuple or deleting a missing one is not listed.
    pub changes: ChangeList,
}

/// The effective changes of one committed batch, in the order they were applied.
///
/// A tuple change the store applied itself is kept as the numbers its interner gave the two
/// IDs (12 bytes, instead of the five or six strings of a [`Tuple`]) and turned back into a
/// tuple when read; IDs are never removed from an interner, so the numbers stay resolvable
/// for as long as the list lives. Changes listed by someone else (a database's change log)
/// and attribute changes are kept as they are.
#[derive(Debug, Clone, Default)]
pub struct ChangeList {
    /// Resolves the numbers of `numbered`; `None` only when `numbered` is empty.
    interner: Option<Arc<Interner>>,
    /// The relations of `numbered`, each once.
    keys: Vec<RelKey>,
    /// Come before every change of `listed`.
    numbered: Vec<NumberedTuple>,
    listed: Vec<Change>,
}

/// A tuple change by numbers: `key` indexes [`ChangeList::keys`], its top bit set for a delete.
#[derive(Debug, Clone, Copy)]
struct NumberedTuple {
    key: u32,
    entity: u32,
    subject: u32,
}

const DELETE_BIT: u32 = 1 << 31;

impl ChangeList {
    fn numbered(interner: Arc<Interner>) -> ChangeList {
        ChangeList {
            interner: Some(interner),
            ..ChangeList::default()
        }
    }

    pub fn len(&self) -> usize {
        self.numbered.len() + self.listed.len()
    }

    pub fn is_empty(&self) -> bool {
        self.numbered.is_empty() && self.listed.is_empty()
    }

    /// The position of `key` in `keys`, adding it if new (a batch touches few relations).
    fn key_index(&mut self, key: &RelKey) -> u32 {
        match self.keys.iter().position(|k| k == key) {
            Some(i) => i as u32,
            None => {
                self.keys.push(key.clone());
                (self.keys.len() - 1) as u32
            }
        }
    }

    fn push_numbered(&mut self, op: ChangeOp, key: u32, entity: u32, subject: u32) {
        let key = match op {
            ChangeOp::Create => key,
            ChangeOp::Delete => key | DELETE_BIT,
        };
        self.numbered.push(NumberedTuple {
            key,
            entity,
            subject,
        });
    }

    /// Every change, in order, as tuples and attributes with their names.
    pub fn iter(&self) -> impl Iterator<Item = Change> + '_ {
        let numbered = self.numbered.iter().filter_map(|n| {
            let interner = self.interner.as_deref()?;
            let key = self.keys.get((n.key & !DELETE_BIT) as usize)?;
            let op = if n.key & DELETE_BIT == 0 {
                ChangeOp::Create
            } else {
                ChangeOp::Delete
            };
            let tuple = Tuple {
                entity: EntityRef {
                    ty: key.entity_type.to_string(),
                    id: interner.name(&key.entity_type, n.entity)?,
                },
                relation: key.relation.to_string(),
                subject: model::SubjectRef {
                    ty: key.subject_type.to_string(),
                    id: interner.name(&key.subject_type, n.subject)?,
                    relation: key.subject_relation.as_deref().map(str::to_string),
                },
            };
            Some(Change::Tuple(op, tuple))
        });
        numbered.chain(self.listed.iter().cloned())
    }

    /// Every change, in order (see [`ChangeList::iter`]).
    pub fn to_vec(&self) -> Vec<Change> {
        self.iter().collect()
    }

    /// The (entity type, relation or attribute name) of every change: each relation of a
    /// numbered change once, then one pair per listed change.
    pub fn touched(&self) -> impl Iterator<Item = (&str, &str)> + '_ {
        let keys = self.keys.iter().map(|k| (&*k.entity_type, &*k.relation));
        let listed = self.listed.iter().map(|c| match c {
            Change::Tuple(_, t) => (t.entity.ty.as_str(), t.relation.as_str()),
            Change::Attribute(_, a) => (a.entity.ty.as_str(), a.name.as_str()),
        });
        keys.chain(listed)
    }

    /// Every entity type a change names, as the entity or the subject of a tuple or as the
    /// entity of an attribute: the types whose [`Snapshot::universe`](super::Snapshot::universe)
    /// the batch may have changed. Each type of a numbered change's relation once, then two
    /// (a tuple) or one (an attribute) per listed change.
    pub fn types(&self) -> impl Iterator<Item = &str> + '_ {
        let keys = self
            .keys
            .iter()
            .flat_map(|k| [&*k.entity_type, &*k.subject_type]);
        let listed = self.listed.iter().flat_map(|c| match c {
            Change::Tuple(_, t) => [t.entity.ty.as_str(), t.subject.ty.as_str()],
            Change::Attribute(_, a) => [a.entity.ty.as_str(), a.entity.ty.as_str()],
        });
        keys.chain(listed)
    }
}

impl From<Vec<Change>> for ChangeList {
    fn from(listed: Vec<Change>) -> ChangeList {
        ChangeList {
            listed,
            ..ChangeList::default()
        }
    }
}

/// Why a batch was rejected. `index` is the position of the offending item in its list.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WriteError {
    #[error("{what} {index}: {source}")]
    Model {
        what: &'static str,
        index: usize,
        source: ModelError,
    },
    #[error("{what} {index} (`{item}`): entity type `{entity_type}` is not defined in the schema")]
    UnknownEntityType {
        what: &'static str,
        index: usize,
        item: String,
        entity_type: String,
    },
    #[error("{what} {index} (`{item}`): entity type `{entity_type}` has no relation `{relation}`")]
    UnknownRelation {
        what: &'static str,
        index: usize,
        item: String,
        entity_type: String,
        relation: String,
    },
    #[error(
        "{what} {index} (`{item}`): relation `{entity_type}#{relation}` does not allow subjects of type `{subject}` (allowed: {allowed})"
    )]
    SubjectNotAllowed {
        what: &'static str,
        index: usize,
        item: String,
        entity_type: String,
        relation: String,
        subject: String,
        allowed: String,
    },
    #[error("{what} {index} (`{item}`): entity type `{entity_type}` has no attribute `{name}`")]
    UnknownAttribute {
        what: &'static str,
        index: usize,
        item: String,
        entity_type: String,
        name: String,
    },
    #[error(
        "{what} {index} (`{item}`): attribute `{entity_type}${name}` is of type `{expected}`, got `{got}`"
    )]
    AttributeType {
        what: &'static str,
        index: usize,
        item: String,
        entity_type: String,
        name: String,
        expected: String,
        got: String,
    },
    #[error("{0}")]
    Capacity(String),
    /// A replica was asked to apply committed changes out of order.
    #[error("{0}")]
    Replica(String),
}

/// Checks the names and IDs of one tuple, without a schema.
pub fn validate_tuple_shape(
    tuple: &Tuple,
    what: &'static str,
    index: usize,
) -> Result<(), WriteError> {
    let model_err = |source| WriteError::Model {
        what,
        index,
        source,
    };
    model::check_entity_type(&tuple.entity.ty).map_err(model_err)?;
    model::check_id(&tuple.entity.id).map_err(model_err)?;
    model::check_name("relation", &tuple.relation).map_err(model_err)?;
    model::check_entity_type(&tuple.subject.ty).map_err(model_err)?;
    model::check_id(&tuple.subject.id).map_err(model_err)?;
    if let Some(rel) = &tuple.subject.relation {
        model::check_name("subject relation", rel).map_err(model_err)?;
    }
    Ok(())
}

/// Checks one tuple against the schema. `what` names the list for the error ("tuple", ...).
pub fn validate_tuple(
    schema: &Schema,
    tuple: &Tuple,
    what: &'static str,
    index: usize,
) -> Result<(), WriteError> {
    validate_tuple_shape(tuple, what, index)?;
    let item = || tuple.to_string();
    let Some((_, entity)) = schema.entity(&tuple.entity.ty) else {
        return Err(WriteError::UnknownEntityType {
            what,
            index,
            item: item(),
            entity_type: tuple.entity.ty.clone(),
        });
    };
    let Some((_, relation)) = entity.relation(&tuple.relation) else {
        return Err(WriteError::UnknownRelation {
            what,
            index,
            item: item(),
            entity_type: tuple.entity.ty.clone(),
            relation: tuple.relation.clone(),
        });
    };
    let allowed = relation.allowed.iter().any(|a| {
        schema.entity_at(a.entity).name == tuple.subject.ty
            && a.relation.as_deref() == tuple.subject.relation.as_deref()
    });
    if !allowed {
        let subject = match &tuple.subject.relation {
            Some(r) => format!("{}#{}", tuple.subject.ty, r),
            None => tuple.subject.ty.clone(),
        };
        let allowed = relation
            .allowed
            .iter()
            .map(|a| {
                let ty = &schema.entity_at(a.entity).name;
                match &a.relation {
                    Some(r) => format!("`@{ty}#{r}`"),
                    None => format!("`@{ty}`"),
                }
            })
            .collect::<Vec<_>>()
            .join(", ");
        return Err(WriteError::SubjectNotAllowed {
            what,
            index,
            item: item(),
            entity_type: tuple.entity.ty.clone(),
            relation: tuple.relation.clone(),
            subject,
            allowed,
        });
    }
    Ok(())
}

/// Checks one attribute against the schema.
pub fn validate_attribute(
    schema: &Schema,
    attribute: &Attribute,
    what: &'static str,
    index: usize,
) -> Result<(), WriteError> {
    validate_attribute_name(schema, &attribute.entity, &attribute.name, what, index)?;
    let expected = schema
        .entity(&attribute.entity.ty)
        .and_then(|(_, e)| e.attribute(&attribute.name))
        .map(|(_, a)| a.ty);
    if let Some(expected) = expected
        && expected != attribute.value.ty()
    {
        return Err(WriteError::AttributeType {
            what,
            index,
            item: attribute.to_string(),
            entity_type: attribute.entity.ty.clone(),
            name: attribute.name.clone(),
            expected: expected.to_string(),
            got: attribute.value.ty().to_string(),
        });
    }
    if let AttrValue::Double(v) = attribute.value
        && !v.is_finite()
    {
        return Err(WriteError::Model {
            what,
            index,
            source: ModelError::Attribute {
                text: attribute.to_string(),
                reason: "a double must be finite".to_string(),
            },
        });
    }
    Ok(())
}

fn validate_attribute_name(
    schema: &Schema,
    entity: &EntityRef,
    name: &str,
    what: &'static str,
    index: usize,
) -> Result<(), WriteError> {
    let model_err = |source| WriteError::Model {
        what,
        index,
        source,
    };
    model::check_entity_type(&entity.ty).map_err(model_err)?;
    model::check_id(&entity.id).map_err(model_err)?;
    model::check_name("attribute", name).map_err(model_err)?;
    let item = || format!("{entity}${name}");
    let Some((_, def)) = schema.entity(&entity.ty) else {
        return Err(WriteError::UnknownEntityType {
            what,
            index,
            item: item(),
            entity_type: entity.ty.clone(),
        });
    };
    if def.attribute(name).is_none() {
        return Err(WriteError::UnknownAttribute {
            what,
            index,
            item: item(),
            entity_type: entity.ty.clone(),
            name: name.to_string(),
        });
    }
    Ok(())
}

/// Validates the whole batch, then applies it to a copy of `base`. Returns the new snapshot
/// (revision not yet set) and the effective changes.
pub(super) fn apply(
    schema: &Schema,
    base: &Snapshot,
    batch: &WriteBatch,
) -> Result<(Snapshot, ChangeList), WriteError> {
    validate(schema, batch)?;
    apply_unchecked(base.clone(), batch)
}

/// Validates a whole batch against `schema`, as [`apply`] does before applying anything.
fn validate(schema: &Schema, batch: &WriteBatch) -> Result<(), WriteError> {
    // Deletes are checked for shape only: data written under an older schema version must
    // stay deletable after the schema dropped its relation or attribute.
    for (i, t) in batch.tuple_deletes.iter().enumerate() {
        validate_tuple_shape(t, "tuple delete", i)?;
    }
    for (i, t) in batch.tuple_writes.iter().enumerate() {
        validate_tuple(schema, t, "tuple", i)?;
    }
    for (i, (entity, name)) in batch.attribute_deletes.iter().enumerate() {
        let model_err = |source| WriteError::Model {
            what: "attribute delete",
            index: i,
            source,
        };
        model::check_entity_type(&entity.ty).map_err(model_err)?;
        model::check_id(&entity.id).map_err(model_err)?;
        model::check_name("attribute", name).map_err(model_err)?;
    }
    for (i, a) in batch.attribute_writes.iter().enumerate() {
        validate_attribute(schema, a, "attribute", i)?;
    }
    Ok(())
}

impl Snapshot {
    /// Validates `batch` against `schema` and lists the effective changes applying it to this
    /// snapshot would make, exactly as [`super::Store::write`] would report them, without
    /// interning anything or building a snapshot. A database store computes what to write
    /// with it while it holds the tenant's write lock.
    pub fn plan(&self, schema: &Schema, batch: &WriteBatch) -> Result<Vec<Change>, WriteError> {
        validate(schema, batch)?;
        // What the batch has done so far, over what this snapshot holds.
        let mut tuples: HashMap<&Tuple, bool> = HashMap::new();
        let mut values: HashMap<(&EntityRef, &str), Option<&AttrValue>> = HashMap::new();
        let mut changes = Vec::new();
        let stored_value = |entity: &EntityRef, name: &str| self.attribute_value(entity, name);
        for t in &batch.tuple_deletes {
            let present = *tuples.entry(t).or_insert_with(|| self.contains_tuple(t));
            if present {
                tuples.insert(t, false);
                changes.push(Change::Tuple(ChangeOp::Delete, t.clone()));
            }
        }
        for t in &batch.tuple_writes {
            let present = *tuples.entry(t).or_insert_with(|| self.contains_tuple(t));
            if !present {
                tuples.insert(t, true);
                changes.push(Change::Tuple(ChangeOp::Create, t.clone()));
            }
        }
        for (entity, name) in &batch.attribute_deletes {
            let current = *values
                .entry((entity, name.as_str()))
                .or_insert_with(|| stored_value(entity, name));
            if let Some(old) = current {
                values.insert((entity, name.as_str()), None);
                changes.push(Change::Attribute(
                    ChangeOp::Delete,
                    Attribute {
                        entity: entity.clone(),
                        name: name.clone(),
                        value: old.clone(),
                    },
                ));
            }
        }
        for a in &batch.attribute_writes {
            let current = *values
                .entry((&a.entity, a.name.as_str()))
                .or_insert_with(|| stored_value(&a.entity, &a.name));
            values.insert((&a.entity, a.name.as_str()), Some(&a.value));
            if current != Some(&a.value) {
                changes.push(Change::Attribute(ChangeOp::Create, a.clone()));
            }
        }
        Ok(changes)
    }
}

/// Applies an already validated batch to a copy of `base`.
///
/// `base` is taken by value: where nothing else shares its maps and stores (a snapshot being
/// loaded, see [`super::Load`]), they are changed in place instead of copied.
pub(super) fn apply_unchecked(
    base: Snapshot,
    batch: &WriteBatch,
) -> Result<(Snapshot, ChangeList), WriteError> {
    let interner = base.interner.clone();
    let capacity = |e: super::InternerFull| WriteError::Capacity(e.to_string());
    let mut relations: FastMap<RelKey, Arc<RelStore>> = Arc::unwrap_or_clone(base.relations);
    let mut attributes: FastMap<AttrKey, Arc<AttrColumn>> = Arc::unwrap_or_clone(base.attributes);
    let mut changes = ChangeList::numbered(interner.clone());

    let key_of = |t: &Tuple| {
        RelKey::new(
            &t.entity.ty,
            &t.relation,
            &t.subject.ty,
            t.subject.relation.as_deref(),
        )
    };
    for t in &batch.tuple_deletes {
        let (Some(e), Some(s)) = (
            interner.get(&t.entity.ty, &t.entity.id),
            interner.get(&t.subject.ty, &t.subject.id),
        ) else {
            continue;
        };
        let key = key_of(t);
        if let Some(store) = relations.get_mut(&key)
            && Arc::make_mut(store).remove(e, s)
        {
            let index = changes.key_index(&key);
            changes.push_numbered(ChangeOp::Delete, index, e, s);
        }
    }
    if !batch.tuple_writes.is_empty() {
        // One interner lock for the whole batch, and each relation store taken out of the map
        // once: per tuple, only a lookup by borrowed names (skipped when the key repeats).
        let numbers = interner
            .intern_many(batch.tuple_writes.iter().flat_map(|t| {
                [
                    (t.entity.ty.as_str(), t.entity.id.as_str()),
                    (t.subject.ty.as_str(), t.subject.id.as_str()),
                ]
            }))
            .map_err(capacity)?;
        type Names<'t> = (&'t str, &'t str, &'t str, Option<&'t str>);
        let mut slot_of: HashMap<Names<'_>, usize> = HashMap::new();
        // Per slot: the relation, its store, and its index in the change list once it has a
        // change.
        let mut taken: Vec<(RelKey, Arc<RelStore>, Option<u32>)> = Vec::new();
        let mut last: Option<(Names<'_>, usize)> = None;
        for (i, t) in batch.tuple_writes.iter().enumerate() {
            let names: Names<'_> = (
                &t.entity.ty,
                &t.relation,
                &t.subject.ty,
                t.subject.relation.as_deref(),
            );
            let slot = match last {
                Some((held, slot)) if held == names => slot,
                _ => *slot_of.entry(names).or_insert_with(|| {
                    let key = key_of(t);
                    let store = relations.remove(&key).unwrap_or_default();
                    taken.push((key, store, None));
                    taken.len() - 1
                }),
            };
            last = Some((names, slot));
            let (e, s) = (numbers[2 * i], numbers[2 * i + 1]);
            let (key, store, index) = &mut taken[slot];
            if Arc::make_mut(store).insert(e, s) {
                let index = *index.get_or_insert_with(|| changes.key_index(key));
                changes.push_numbered(ChangeOp::Create, index, e, s);
            }
        }
        relations.extend(taken.into_iter().map(|(key, store, _)| (key, store)));
    }
    for (entity, name) in &batch.attribute_deletes {
        let Some(e) = interner.get(&entity.ty, &entity.id) else {
            continue;
        };
        if let Some(column) = attributes.get_mut(&AttrKey::new(&entity.ty, name))
            && let Some(old) = Arc::make_mut(column).remove(e)
        {
            changes.listed.push(Change::Attribute(
                ChangeOp::Delete,
                Attribute {
                    entity: entity.clone(),
                    name: name.clone(),
                    value: (*old).clone(),
                },
            ));
        }
    }
    for a in &batch.attribute_writes {
        let e = interner
            .intern(&a.entity.ty, &a.entity.id)
            .map_err(capacity)?;
        let column = attributes
            .entry(AttrKey::new(&a.entity.ty, &a.name))
            .or_default();
        let old = Arc::make_mut(column).set(e, a.value.clone());
        if old.as_deref() != Some(&a.value) {
            changes
                .listed
                .push(Change::Attribute(ChangeOp::Create, a.clone()));
        }
    }
    changes.numbered.shrink_to_fit();
    Ok((
        Snapshot {
            revision: base.revision,
            interner,
            relations: Arc::new(relations),
            attributes: Arc::new(attributes),
            contextual: base.contextual,
            resolved: Arc::default(),
        },
        changes,
    ))
}

impl Snapshot {
    /// This snapshot with an already validated batch applied, private to the caller: IDs it
    /// has not numbered go into an overlay (see [`Snapshot::with_request_ids`]), never into
    /// the tenant's interner, and nothing is published. A database store that commits several
    /// writes in one transaction plans each of them with [`Snapshot::plan`] against the
    /// snapshot the writes before it make.
    pub fn staged(&self, batch: &WriteBatch) -> Result<Snapshot, WriteError> {
        let (snap, _) = apply_unchecked(self.with_request_ids(), batch)?;
        Ok(snap)
    }

    /// This snapshot with a request's contextual tuples and attributes added, validated against
    /// `schema`. The result is private to the request: nothing is published.
    pub fn with_context(
        &self,
        schema: &Schema,
        tuples: &[Tuple],
        attributes: &[Attribute],
    ) -> Result<Snapshot, WriteError> {
        if tuples.is_empty() && attributes.is_empty() {
            return Ok(self.clone());
        }
        for (i, t) in tuples.iter().enumerate() {
            validate_tuple(schema, t, "contextual tuple", i)?;
        }
        for (i, a) in attributes.iter().enumerate() {
            validate_attribute(schema, a, "contextual attribute", i)?;
        }
        let batch = WriteBatch {
            tuple_writes: tuples.to_vec(),
            attribute_writes: attributes.to_vec(),
            ..WriteBatch::default()
        };
        // The request's own IDs go into its overlay, never into the tenant's interner.
        let (mut snap, _) = apply_unchecked(self.with_request_ids(), &batch)?;
        snap.contextual = true;
        Ok(snap)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::index::{Interner, Store};

    const SCHEMA: &str =
        "entity user {}\nentity doc {\n relation owner @user\n attribute level integer\n}\n";

    fn batch(
        writes: &[&str],
        deletes: &[&str],
        attrs: &[&str],
        attr_deletes: &[&str],
    ) -> WriteBatch {
        WriteBatch {
            tuple_writes: writes.iter().map(|t| Tuple::parse(t).unwrap()).collect(),
            tuple_deletes: deletes.iter().map(|t| Tuple::parse(t).unwrap()).collect(),
            attribute_writes: attrs.iter().map(|a| Attribute::parse(a).unwrap()).collect(),
            attribute_deletes: attr_deletes
                .iter()
                .map(|a| {
                    let (e, n) = a.split_once('$').unwrap();
                    (EntityRef::parse(e).unwrap(), n.to_string())
                })
                .collect(),
        }
    }

    /// `plan` reports exactly the changes a write makes, duplicates and overrides included.
    #[test]
    fn plan_agrees_with_write() {
        let schema = crate::schema::compile(SCHEMA).unwrap();
        let store = Store::new();
        store
            .write(
                &schema,
                &batch(
                    &["doc:1#owner@user:a"],
                    &[],
                    &["doc:1$level|integer:1"],
                    &[],
                ),
            )
            .unwrap();
        let cases = [
            batch(
                &[
                    "doc:1#owner@user:a",
                    "doc:2#owner@user:a",
                    "doc:2#owner@user:a",
                ],
                &[],
                &[],
                &[],
            ),
            batch(
                &["doc:1#owner@user:a"],
                &["doc:1#owner@user:a", "doc:9#owner@user:z"],
                &[],
                &[],
            ),
            batch(
                &[],
                &[],
                &[
                    "doc:1$level|integer:1",
                    "doc:1$level|integer:2",
                    "doc:3$level|integer:2",
                ],
                &[],
            ),
            batch(
                &[],
                &[],
                &["doc:1$level|integer:1"],
                &["doc:1$level", "doc:1$level", "doc:7$level"],
            ),
        ];
        for case in cases {
            let planned = store.head().plan(&schema, &case).unwrap();
            let written = Store::new();
            written
                .write(
                    &schema,
                    &batch(
                        &["doc:1#owner@user:a"],
                        &[],
                        &["doc:1$level|integer:1"],
                        &[],
                    ),
                )
                .unwrap();
            let outcome = written.write(&schema, &case).unwrap();
            assert_eq!(planned, outcome.changes.to_vec(), "{case:?}");
        }
        let bad = batch(&["doc:1#viewer@user:a"], &[], &[], &[]);
        assert!(store.head().plan(&schema, &bad).is_err());
    }

    /// Planning each batch against the staged snapshot of the batches before it reports
    /// exactly what writing them one after another reports, and staging numbers no ID in the
    /// store's interner.
    #[test]
    fn staged_snapshots_plan_as_sequential_writes() {
        let schema = crate::schema::compile(SCHEMA).unwrap();
        let store = Store::new();
        store
            .write(&schema, &batch(&["doc:1#owner@user:a"], &[], &[], &[]))
            .unwrap();
        let sequence = [
            batch(&["doc:2#owner@user:b"], &["doc:1#owner@user:a"], &[], &[]),
            batch(&["doc:1#owner@user:a", "doc:2#owner@user:b"], &[], &[], &[]),
            batch(
                &[],
                &["doc:2#owner@user:b"],
                &["doc:5$level|integer:3"],
                &[],
            ),
            batch(&[], &[], &["doc:5$level|integer:3"], &["doc:5$level"]),
            batch(&["doc:2#owner@user:b"], &[], &[], &["doc:5$level"]),
        ];
        let counts = |store: &Store| (store.interner().len("doc"), store.interner().len("user"));
        let known = counts(&store);
        let mut staged = (*store.head()).clone();
        let mut planned = Vec::new();
        for case in &sequence {
            let changes = staged.plan(&schema, case).unwrap();
            staged = staged.staged(&WriteBatch::of_changes(&changes)).unwrap();
            planned.push(changes);
        }
        assert_eq!(counts(&store), known);
        for (case, planned) in sequence.iter().zip(planned) {
            let outcome = store.write(&schema, case).unwrap();
            assert_eq!(planned, outcome.changes.to_vec(), "{case:?}");
        }
    }

    /// The numbered change list reads back as the tuples written and deleted, in order, over
    /// several relations (subject sets included), followed by the attribute changes; each
    /// changed relation is touched once.
    #[test]
    fn change_list_reads_back_every_change() {
        let schema = crate::schema::compile(
            "entity user {}\nentity group {\n relation member @user @group#member\n}\n\
             entity doc {\n relation owner @user\n relation viewer @user @group#member\n \
             attribute level integer\n}\n",
        )
        .unwrap();
        let store = Store::new();
        store
            .write(
                &schema,
                &batch(
                    &["doc:1#owner@user:a", "doc:2#viewer@user:b"],
                    &[],
                    &[],
                    &[],
                ),
            )
            .unwrap();
        let case = batch(
            &[
                "doc:3#viewer@group:g#member",
                "group:g#member@user:c",
                "doc:1#owner@user:a",
                "doc:4#owner@user:a",
                "doc:3#viewer@group:g#member",
            ],
            &["doc:2#viewer@user:b", "doc:1#owner@user:zz"],
            &["doc:4$level|integer:7"],
            &[],
        );
        let outcome = store.write(&schema, &case).unwrap();
        let expected: Vec<Change> = [
            ("-", "doc:2#viewer@user:b"),
            ("+", "doc:3#viewer@group:g#member"),
            ("+", "group:g#member@user:c"),
            ("+", "doc:4#owner@user:a"),
        ]
        .iter()
        .map(|(op, t)| {
            let op = if *op == "+" {
                ChangeOp::Create
            } else {
                ChangeOp::Delete
            };
            Change::Tuple(op, Tuple::parse(t).unwrap())
        })
        .chain([Change::Attribute(
            ChangeOp::Create,
            Attribute::parse("doc:4$level|integer:7").unwrap(),
        )])
        .collect();
        assert_eq!(outcome.changes.to_vec(), expected);
        assert_eq!(outcome.changes.len(), 5);
        let touched: Vec<_> = outcome.changes.touched().collect();
        assert_eq!(
            touched,
            [
                ("doc", "viewer"),
                ("doc", "viewer"),
                ("group", "member"),
                ("doc", "owner"),
                ("doc", "level")
            ]
        );
        // Every type named as entity or subject: those whose universe may have changed.
        let types: std::collections::BTreeSet<&str> = outcome.changes.types().collect();
        assert_eq!(types, ["doc", "group", "user"].into());
        let listed = ChangeList::from(vec![Change::Tuple(
            ChangeOp::Delete,
            Tuple::parse("doc:2#viewer@group:g#member").unwrap(),
        )]);
        assert_eq!(listed.types().collect::<Vec<_>>(), ["doc", "group"]);
        // A list taken as the database lists it reads back unchanged.
        assert_eq!(ChangeList::from(expected.clone()).to_vec(), expected);
        // A write that changes nothing lists nothing.
        let again = store
            .write(&schema, &batch(&["doc:4#owner@user:a"], &[], &[], &[]))
            .unwrap();
        assert!(again.changes.is_empty());
        assert_eq!(again.changes.touched().count(), 0);
        assert_eq!(again.changes.types().count(), 0);
    }

    /// A replica applies committed batches at the revisions the database gave them.
    #[test]
    fn apply_at_publishes_the_given_revision() {
        let store = Store::with_interner(Interner::durable());
        store.interner().intern_as("doc", "1", 0).unwrap();
        store.interner().intern_as("user", "a", 3).unwrap();
        let outcome = store
            .apply_at(5, &batch(&["doc:1#owner@user:a"], &[], &[], &[]), |_, _| {})
            .unwrap();
        assert_eq!(outcome.snapshot.revision(), 5);
        assert_eq!(store.head().number("user", "a"), Some(3));
        assert!(
            store
                .head()
                .contains_tuple(&Tuple::parse("doc:1#owner@user:a").unwrap())
        );
        assert!(matches!(
            store.apply_at(4, &WriteBatch::default(), |_, _| {}),
            Err(WriteError::Replica(_))
        ));
    }

    /// A load applied batch by batch in place ends where the same batches written one by one
    /// end, and nobody sees any of it before it is published.
    #[test]
    fn a_load_ends_where_the_writes_end_and_is_published_once() {
        let schema = crate::schema::compile(SCHEMA).unwrap();
        let batches: Vec<WriteBatch> = (0..20)
            .map(|b| {
                let tuples: Vec<String> = (0..50)
                    .map(|i| format!("doc:{}#owner@user:u{}", (i * 7 + b) % 40, (i + b) % 13))
                    .collect();
                let refs: Vec<&str> = tuples.iter().map(String::as_str).collect();
                let attribute = format!("doc:{b}$level|integer:{b}");
                batch(&refs, &[], &[attribute.as_str()], &[])
            })
            .collect();
        let written = Store::new();
        for b in &batches {
            written.write(&schema, b).unwrap();
        }
        let loaded = Store::new();
        let mut load = loaded.load();
        for b in &batches {
            load.apply(b).unwrap();
        }
        assert_eq!(
            loaded.head().tuple_count(),
            0,
            "published before finish_load"
        );
        assert_eq!(load.tuple_count(), written.head().tuple_count());
        let head = loaded.finish_load(load, 7).unwrap();
        assert_eq!(head.revision(), 7);
        let all = crate::index::TupleFilter::default();
        assert_eq!(head.read_tuples(&all), written.head().read_tuples(&all));
        let attrs = crate::index::AttributeFilter::default();
        assert_eq!(
            head.read_attributes(&attrs),
            written.head().read_attributes(&attrs)
        );
        assert!(matches!(
            loaded.finish_load(loaded.load(), 6),
            Err(WriteError::Replica(_))
        ));
    }

    /// Tuples a load inserts by their parts end as the same tuples written in a batch, mixed
    /// with batches applied to the same load; an ID without a number is refused.
    #[test]
    fn tuples_inserted_by_their_parts_load_as_a_write_would() {
        let schema = crate::schema::compile(SCHEMA).unwrap();
        let tuples = [
            "doc:1#owner@user:a",
            "doc:2#owner@user:a",
            "doc:1#owner@user:b",
            "doc:1#owner@user:a",
        ];
        let written = Store::new();
        written
            .write(
                &schema,
                &batch(&tuples, &[], &["doc:1$level|integer:1"], &[]),
            )
            .unwrap();
        let loaded = Store::with_interner(Interner::durable());
        for (ty, id, n) in [
            ("doc", "1", 0),
            ("user", "a", 0),
            ("doc", "2", 1),
            ("user", "b", 1),
        ] {
            loaded.interner().intern_as(ty, id, n).unwrap();
        }
        let mut load = loaded.load();
        let mut new = Vec::new();
        for t in tuples {
            let t = Tuple::parse(t).unwrap();
            let entity = (t.entity.ty.as_str(), t.entity.id.as_str());
            let subject = (t.subject.ty.as_str(), t.subject.id.as_str());
            let relation = t.subject.relation.as_deref();
            new.push(
                load.insert_tuple(entity, &t.relation, subject, relation)
                    .unwrap(),
            );
        }
        assert_eq!(new, [true, true, true, false]);
        assert!(
            load.insert_tuple(("doc", "9"), "owner", ("user", "a"), None)
                .is_err()
        );
        load.apply(&batch(&[], &[], &["doc:1$level|integer:1"], &[]))
            .unwrap();
        assert_eq!(load.tuple_count(), 3);
        let head = loaded.finish_load(load, 3).unwrap();
        let all = crate::index::TupleFilter::default();
        assert_eq!(head.read_tuples(&all), written.head().read_tuples(&all));
        let attrs = crate::index::AttributeFilter::default();
        assert_eq!(
            head.read_attributes(&attrs),
            written.head().read_attributes(&attrs)
        );
    }
}
