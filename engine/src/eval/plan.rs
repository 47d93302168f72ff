//! The index keys of a schema, resolved once per schema version so that evaluation never
//! builds a key on the hot path.
//!
//! INVARIANT: `slots[t][r]` lists one [`Slot`] per allowed subject of relation `r` of entity
//! type `t`, in declaration order; `attrs[t][a]` is the key of attribute `a` of type `t`; the
//! slots' `index`es number them 0.. in that order (types, then relations, then subjects), and
//! `id` is unique among the plans of this process.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::index::{AttrKey, RelKey};
use crate::schema::{Member, RelId, Schema, TypeId};

/// One allowed subject kind of a relation, with the key of its bitmaps.
#[derive(Debug, Clone)]
pub struct Slot {
    pub subject_type: TypeId,
    /// For subject sets `@group#member`: the member `member` of the subject type.
    pub subject_member: Option<Member>,
    pub key: RelKey,
    /// The slot's position among all slots of its plan (see [`Plan::keys`]).
    pub index: usize,
}

#[derive(Debug)]
pub struct Plan {
    id: u64,
    slots: Vec<Vec<Vec<Slot>>>,
    attrs: Vec<Vec<AttrKey>>,
}

/// The id of the next plan made.
static NEXT_PLAN: AtomicU64 = AtomicU64::new(1);

impl Plan {
    pub fn new(schema: &Schema) -> Plan {
        let mut index = 0;
        let slots = schema
            .entities
            .iter()
            .map(|entity| {
                entity
                    .relations
                    .iter()
                    .map(|relation| {
                        relation
                            .allowed
                            .iter()
                            .map(|allowed| {
                                let subject = schema.entity_at(allowed.entity);
                                index += 1;
                                Slot {
                                    index: index - 1,
                                    subject_type: allowed.entity,
                                    subject_member: allowed
                                        .relation
                                        .as_deref()
                                        .and_then(|r| subject.member(r)),
                                    key: RelKey::new(
                                        &entity.name,
                                        &relation.name,
                                        &subject.name,
                                        allowed.relation.as_deref(),
                                    ),
                                }
                            })
                            .collect()
                    })
                    .collect()
            })
            .collect();
        let attrs = schema
            .entities
            .iter()
            .map(|entity| {
                entity
                    .attributes
                    .iter()
                    .map(|a| AttrKey::new(&entity.name, &a.name))
                    .collect()
            })
            .collect();
        Plan {
            id: NEXT_PLAN.fetch_add(1, Ordering::Relaxed),
            slots,
            attrs,
        }
    }

    /// Unique among the plans of this process: names the plan in a snapshot's cache of its
    /// resolved stores ([`crate::index::Snapshot::resolved`]).
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The keys of all slots, in `index` order.
    pub fn keys(&self) -> impl Iterator<Item = &RelKey> {
        self.slots.iter().flatten().flatten().map(|slot| &slot.key)
    }

    /// The allowed subject kinds of relation `rel` of type `ty`.
    #[inline]
    pub fn slots(&self, ty: TypeId, rel: RelId) -> &[Slot] {
        self.slots
            .get(ty)
            .and_then(|r| r.get(rel))
            .map_or(&[], |s| s.as_slice())
    }

    /// The key of attribute `attr` of type `ty`.
    #[inline]
    pub fn attr_key(&self, ty: TypeId, attr: usize) -> Option<&AttrKey> {
        self.attrs.get(ty)?.get(attr)
    }
}
