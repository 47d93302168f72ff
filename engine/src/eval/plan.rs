//! The index keys of a schema, resolved once per schema version so that evaluation never
//! builds a key on the hot path.
//!
//! INVARIANT: `slots[t][r]` lists one [`Slot`] per allowed subject of relation `r` of entity
//! type `t`, in declaration order; `attrs[t][a]` is the key of attribute `a` of type `t`.

use crate::index::{AttrKey, RelKey};
use crate::schema::{Member, RelId, Schema, TypeId};

/// One allowed subject kind of a relation, with the key of its bitmaps.
#[derive(Debug, Clone)]
pub struct Slot {
    pub subject_type: TypeId,
    /// For subject sets `@group#member`: the member `member` of the subject type.
    pub subject_member: Option<Member>,
    pub key: RelKey,
}

#[derive(Debug)]
pub struct Plan {
    slots: Vec<Vec<Vec<Slot>>>,
    attrs: Vec<Vec<AttrKey>>,
}

impl Plan {
    pub fn new(schema: &Schema) -> Plan {
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
                                Slot {
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
        Plan { slots, attrs }
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
