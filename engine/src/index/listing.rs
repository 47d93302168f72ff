//! Listings of stored tuples and attributes: one fixed order, read a page at a time.
//!
//! The order is the matching keys sorted (relation keys, or attribute keys), then entity
//! number, then (tuples) subject number. A [`ListPosition`] names the last item a page
//! returned in that order, and the next page starts right after it through the bitmaps'
//! ordered ranges: a page costs sorting the matching keys plus the page itself, never the
//! items before it, so paging through a tenant of a million tuples is linear, not quadratic.
//!
//! INVARIANT: a position means something only on the snapshot and filter that produced it
//! (the key ordinal counts the filter's matching keys in that snapshot). The service binds
//! both into the continuous token: the revision pins the snapshot and the query fingerprint
//! the filter.

use roaring::RoaringBitmap;

use super::{AttrColumn, AttrKey, AttributeFilter, RelKey, RelStore, Snapshot, TupleFilter};
use crate::model::{Attribute, EntityRef, SubjectRef, Tuple};

/// The last item of a page: the ordinal of its key among the listing's matching keys (in
/// sorted order), its entity number and (tuples only, else 0) its subject number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ListPosition {
    pub key: u32,
    pub entity: u32,
    pub subject: u32,
}

/// One page of a listing, and where the next one starts (`None` after the last page).
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next: Option<ListPosition>,
}

/// Collects at most `limit` items, and one more to learn whether another page follows.
struct Collector<T> {
    limit: usize,
    items: Vec<T>,
    /// The position of the `limit`-th item, once collected.
    at_limit: Option<ListPosition>,
}

impl<T> Collector<T> {
    fn new(limit: usize) -> Self {
        Collector {
            limit,
            items: Vec::new(),
            at_limit: None,
        }
    }

    /// How many more items are wanted (one beyond the page).
    fn wanted(&self) -> usize {
        self.limit
            .saturating_add(1)
            .saturating_sub(self.items.len())
    }

    fn push(&mut self, position: ListPosition, item: T) {
        self.items.push(item);
        if self.items.len() == self.limit {
            self.at_limit = Some(position);
        }
    }

    fn finish(mut self) -> Page<T> {
        if self.items.len() > self.limit {
            self.items.truncate(self.limit);
            return Page {
                items: self.items,
                next: self.at_limit,
            };
        }
        Page {
            items: self.items,
            next: None,
        }
    }
}

/// The first entity of a key to list and, for a resumed key, the entity whose subjects up to
/// and including the position's were already listed.
fn resume_at(after: Option<ListPosition>, key: u32) -> (u32, Option<ListPosition>) {
    match after {
        Some(p) if p.key == key => (p.entity, Some(p)),
        _ => (0, None),
    }
}

impl Snapshot {
    /// All tuples matching `filter`, in listing order.
    pub fn read_tuples(&self, filter: &TupleFilter) -> Vec<Tuple> {
        self.tuples_page(filter, None, usize::MAX).items
    }

    /// All attributes matching `filter`, in listing order.
    pub fn read_attributes(&self, filter: &AttributeFilter) -> Vec<Attribute> {
        self.attributes_page(filter, None, usize::MAX).items
    }

    /// The numbers of those of `ids` (of type `ty`) this snapshot knows, or `None` when
    /// `ids` is empty: a filter's empty list matches everything, as in Permify.
    fn numbers_of(&self, ty: &str, ids: &[String]) -> Option<RoaringBitmap> {
        (!ids.is_empty()).then(|| ids.iter().filter_map(|id| self.number(ty, id)).collect())
    }

    /// Up to `limit` tuples matching `filter` after `after` (from the start when `None`).
    pub fn tuples_page(
        &self,
        filter: &TupleFilter,
        after: Option<ListPosition>,
        limit: usize,
    ) -> Page<Tuple> {
        let mut keys: Vec<(&RelKey, &RelStore)> = self
            .relation_keys()
            .filter(|(k, _)| filter.matches_key(k))
            .collect();
        keys.sort_by(|a, b| a.0.cmp(b.0));
        let mut page = Collector::new(limit);
        let first = after.map_or(0, |p| p.key);
        for (key_number, (key, store)) in (0u32..).zip(keys).skip(first as usize) {
            if page.wanted() == 0 {
                break;
            }
            let (from, resumed) = resume_at(after, key_number);
            let chosen = self.numbers_of(&key.entity_type, &filter.entity_ids);
            let subject_filter = self.numbers_of(&key.subject_type, &filter.subject_ids);
            let entities = chosen.as_ref().unwrap_or(store.entities()).range(from..);
            for entity in entities {
                if page.wanted() == 0 {
                    break;
                }
                let Some(subjects) = store.subjects_of(entity) else {
                    continue;
                };
                let start = match resumed {
                    Some(p) if p.entity == entity => match p.subject.checked_add(1) {
                        Some(next) => next,
                        None => continue,
                    },
                    _ => 0,
                };
                let Some(entity_id) = self.interner.name(&key.entity_type, entity) else {
                    continue;
                };
                let numbers: Vec<u32> = subjects
                    .iter_from(start)
                    .filter(|s| subject_filter.as_ref().is_none_or(|f| f.contains(*s)))
                    .take(page.wanted())
                    .collect();
                let subject_relation = key.subject_relation.as_deref();
                self.interner
                    .for_each_name(&key.subject_type, numbers, |subject, subject_id| {
                        let tuple = Tuple {
                            entity: EntityRef::new(&*key.entity_type, &*entity_id),
                            relation: key.relation.to_string(),
                            subject: SubjectRef::new(
                                &*key.subject_type,
                                subject_id,
                                subject_relation.map(str::to_string),
                            ),
                        };
                        let position = ListPosition {
                            key: key_number,
                            entity,
                            subject,
                        };
                        page.push(position, tuple);
                    });
            }
        }
        page.finish()
    }

    /// Up to `limit` attributes matching `filter` after `after` (from the start when `None`).
    pub fn attributes_page(
        &self,
        filter: &AttributeFilter,
        after: Option<ListPosition>,
        limit: usize,
    ) -> Page<Attribute> {
        let mut keys: Vec<(&AttrKey, &AttrColumn)> = self
            .attribute_keys()
            .filter(|(k, _)| {
                filter
                    .entity_type
                    .as_deref()
                    .is_none_or(|t| t == &*k.entity_type)
                    && (filter.names.is_empty() || filter.names.iter().any(|n| n == &*k.name))
            })
            .collect();
        keys.sort_by(|a, b| a.0.cmp(b.0));
        let mut page = Collector::new(limit);
        let first = after.map_or(0, |p| p.key);
        for (key_number, (key, column)) in (0u32..).zip(keys).skip(first as usize) {
            let (from, resumed) = resume_at(after, key_number);
            // An attribute's position is its entity: a resumed key starts after it.
            let from = match resumed {
                Some(_) => match from.checked_add(1) {
                    Some(next) => next,
                    None => continue,
                },
                None => from,
            };
            let chosen = self.numbers_of(&key.entity_type, &filter.entity_ids);
            for entity in chosen.as_ref().unwrap_or(column.present()).range(from..) {
                if page.wanted() == 0 {
                    return page.finish();
                }
                let (Some(value), Some(id)) = (
                    column.get(entity),
                    self.interner.name(&key.entity_type, entity),
                ) else {
                    continue;
                };
                let attribute = Attribute {
                    entity: EntityRef::new(&*key.entity_type, &*id),
                    name: key.name.to_string(),
                    value: value.clone(),
                };
                let position = ListPosition {
                    key: key_number,
                    entity,
                    subject: 0,
                };
                page.push(position, attribute);
            }
        }
        page.finish()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests fail by panicking")]

    use super::*;
    use crate::index::{Store, WriteBatch};

    const SCHEMA: &str = "entity user {}\nentity doc {\n relation owner @user\n relation viewer @user\n attribute level integer\n}\n";

    /// Writes `tuples` (and a `level` of each document) and returns the head.
    fn snapshot(tuples: &[String], levels: usize) -> std::sync::Arc<Snapshot> {
        let schema = crate::schema::compile(SCHEMA).unwrap();
        let store = Store::new();
        let batch = WriteBatch {
            tuple_writes: tuples.iter().map(|t| Tuple::parse(t).unwrap()).collect(),
            attribute_writes: (0..levels)
                .map(|d| Attribute::parse(&format!("doc:{d}$level|integer:{d}")).unwrap())
                .collect(),
            ..WriteBatch::default()
        };
        store.write(&schema, &batch).unwrap();
        store.head()
    }

    /// Reads every page of size `n` and joins them.
    fn all_pages<T>(n: usize, page: impl Fn(Option<ListPosition>, usize) -> Page<T>) -> Vec<T> {
        let mut out = Vec::new();
        let mut after = None;
        loop {
            let p = page(after, n);
            assert!(p.items.len() <= n);
            out.extend(p.items);
            match p.next {
                Some(next) => after = Some(next),
                None => return out,
            }
        }
    }

    #[test]
    fn pages_of_every_size_join_to_the_whole_listing() {
        let mut tuples = Vec::new();
        for d in 0..7 {
            for u in 0..(d % 4 + 1) {
                tuples.push(format!("doc:{d}#viewer@user:{u}"));
            }
            tuples.push(format!("doc:{d}#owner@user:9"));
        }
        let snapshot = snapshot(&tuples, 7);
        let ids = |ids: &[&str]| ids.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let filters = [
            TupleFilter::default(),
            TupleFilter {
                relation: Some("viewer".into()),
                ..TupleFilter::default()
            },
            TupleFilter {
                subject_ids: ids(&["1", "9"]),
                ..TupleFilter::default()
            },
            TupleFilter {
                entity_ids: ids(&["3", "5"]),
                ..TupleFilter::default()
            },
        ];
        for filter in &filters {
            let whole = snapshot.read_tuples(filter);
            assert!(!whole.is_empty());
            for n in 1..=whole.len() + 1 {
                let joined = all_pages(n, |after, n| snapshot.tuples_page(filter, after, n));
                assert_eq!(joined, whole, "page size {n}, filter {filter:?}");
            }
        }
        assert_eq!(
            snapshot.read_tuples(&TupleFilter::default()).len(),
            tuples.len()
        );
        let whole = snapshot.read_attributes(&AttributeFilter::default());
        assert_eq!(whole.len(), 7);
        for n in 1..=8 {
            let joined = all_pages(n, |after, n| {
                snapshot.attributes_page(&AttributeFilter::default(), after, n)
            });
            assert_eq!(joined, whole, "page size {n}");
        }
    }

    #[test]
    fn the_last_full_page_says_nothing_follows() {
        let snapshot = snapshot(
            &["doc:1#viewer@user:1".into(), "doc:1#viewer@user:2".into()],
            0,
        );
        let page = snapshot.tuples_page(&TupleFilter::default(), None, 2);
        assert_eq!(page.items.len(), 2);
        assert_eq!(page.next, None);
        let page = snapshot.tuples_page(&TupleFilter::default(), None, 1);
        assert!(page.next.is_some());
    }
}
