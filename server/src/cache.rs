//! The result cache: check answers and lookup result sets, keyed by the question and valid
//! across writes that cannot change them.
//!
//! Every entry records the revision it was computed at and the stored data its permission can
//! depend on (from the schema, see `lookout_engine::eval::deps`): relations, attributes, and
//! the universes of the types whose rules a lookup runs on every entity the data mentions.
//! Each tenant records, per (entity type, relation or attribute) and per type's universe, the
//! last revision that changed it, and does so before a new snapshot becomes visible. An entry
//! computed at revision `R` answers a read at snapshot `S` only if none of its dependencies
//! changed after `min(R, S)`: a newer snap token never gets a stale answer, and a write to
//! unrelated relations keeps entries warm.
//!
//! The key is the whole question, `context.data` included, so a rule reading the request's
//! context is answered for that context only. Requests with contextual tuples or attributes
//! bypass the cache: their answers are private. Only checks (and bulk-check items) and lookup
//! entity (and its stream) are cached; a cached lookup subject would also depend on the
//! universe of the subject type (`deps::subject_dependencies`).
//!
//! A check is cached only when checks of its permission have lately cost enough to be worth it
//! ([`CheckCosts`]): building the key, looking it up and inserting the answer cost about as
//! much as evaluating a check that visits a few dozen members, so caching every cheap check
//! would make the common case slower for a hit that random questions rarely get.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use lookout_engine::eval::Model;
use lookout_engine::eval::deps::DataKey;
use lookout_engine::schema::{Member, TypeId};
use roaring::RoaringBitmap;

/// The default of `--cache-check-min-visits`: checks of a permission are cached once its
/// checks visit this many members on average.
pub const DEFAULT_CHECK_MIN_VISITS: u32 = 64;

/// What checks of each checkable member of one schema version have cost lately: a moving
/// average (over about the last eight evaluations) of the members each visited.
#[derive(Debug)]
pub struct CheckCosts {
    visits: HashMap<(TypeId, Member), AtomicU32>,
}

impl CheckCosts {
    /// A table for every member of `model`'s schema, all at zero (not worth caching until an
    /// evaluation shows otherwise).
    pub fn new(model: &Model) -> CheckCosts {
        let schema = &model.schema;
        let visits = schema
            .entity_index
            .values()
            .flat_map(|&ty| {
                schema
                    .entity_at(ty)
                    .members
                    .values()
                    .map(move |&member| ((ty, member), AtomicU32::new(0)))
            })
            .collect();
        CheckCosts { visits }
    }

    /// The recent average of members visited by checks of `member` on `ty`.
    pub fn average(&self, ty: TypeId, member: Member) -> u32 {
        self.visits
            .get(&(ty, member))
            .map_or(0, |v| v.load(Ordering::Relaxed) / COST_SCALE)
    }

    /// Adds one evaluation's visits to the average (racing updates may lose one; the average
    /// only steers the cache).
    pub fn record(&self, ty: TypeId, member: Member, visits: u64) {
        if let Some(average) = self.visits.get(&(ty, member)) {
            let old = i64::from(average.load(Ordering::Relaxed));
            let most = u64::from(u32::MAX / COST_SCALE);
            let sample = i64::try_from(visits.min(most)).unwrap_or(0) * i64::from(COST_SCALE);
            let new = old + (sample - old) / 8;
            average.store(u32::try_from(new).unwrap_or(u32::MAX), Ordering::Relaxed);
        }
    }
}

/// The averages are kept in sixteenths, so that small visit counts still move them.
const COST_SCALE: u32 = 16;

/// What a cache entry holds.
#[derive(Debug, Clone)]
pub enum Cached {
    Check(bool),
    Set(Arc<RoaringBitmap>),
}

#[derive(Debug)]
struct Entry {
    revision: u64,
    deps: Arc<[DataKey]>,
    value: Cached,
}

/// Identifies one question: the tenant incarnation, and the schema version followed by the
/// request's protobuf encoding (without tokens or paging; see [`CacheKey::new`]). The key holds
/// the question itself rather than a hash of it, so two questions never share an answer.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CacheKey {
    pub tenant: u64,
    pub question: Box<[u8]>,
}

impl CacheKey {
    /// The key of `request` under `schema_version` of tenant incarnation `tenant`.
    pub fn new(tenant: u64, schema_version: &str, request: &impl prost::Message) -> CacheKey {
        let version = schema_version.as_bytes();
        let mut question = Vec::with_capacity(4 + version.len() + request.encoded_len());
        // The version's length first: no version and request pair reads as another.
        question.extend_from_slice(
            &u32::try_from(version.len())
                .unwrap_or(u32::MAX)
                .to_le_bytes(),
        );
        question.extend_from_slice(version);
        request.encode_raw(&mut question);
        CacheKey {
            tenant,
            question: question.into_boxed_slice(),
        }
    }
}

/// Cheap to clone: clones share the entries and the counters.
#[derive(Debug, Clone)]
pub struct ResultCache {
    /// `None` when the cache is turned off (capacity 0).
    entries: Option<moka::sync::Cache<CacheKey, Arc<Entry>>>,
    hits: Arc<AtomicU64>,
    misses: Arc<AtomicU64>,
    /// Checks of a member are cached once its [`CheckCosts`] average reaches this.
    check_min_visits: u32,
}

/// Hit and miss counts since start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheStats {
    pub hits: u64,
    pub misses: u64,
}

impl CacheStats {
    pub fn hit_ratio(&self) -> f64 {
        let total = self.hits + self.misses;
        if total == 0 {
            0.0
        } else {
            self.hits as f64 / total as f64
        }
    }
}

/// How a tenant answers "when did this data last change?".
pub trait ChangeClock {
    fn last_changed(&self, key: &DataKey) -> u64;
}

impl ResultCache {
    /// A cache holding at most `capacity` weight units (a check answer counts 1, a set its
    /// bytes / 64, and either 1 more per 64 bytes of its question, so large requests cannot
    /// fill memory under a small weight); with capacity 0 it holds nothing and every lookup is
    /// a miss.
    pub fn new(capacity: u64) -> ResultCache {
        let entries = (capacity > 0).then(|| {
            moka::sync::Cache::builder()
                .max_capacity(capacity)
                .weigher(|k: &CacheKey, e: &Arc<Entry>| -> u32 {
                    let answer = match &e.value {
                        Cached::Check(_) => 1,
                        Cached::Set(set) => set.serialized_size() / 64 + 1,
                    };
                    u32::try_from(answer + k.question.len() / 64).unwrap_or(u32::MAX)
                })
                .build()
        });
        ResultCache {
            entries,
            hits: Arc::new(AtomicU64::new(0)),
            misses: Arc::new(AtomicU64::new(0)),
            check_min_visits: DEFAULT_CHECK_MIN_VISITS,
        }
    }

    /// The same cache, caching checks of a member once they visit `visits` members on average
    /// (0: every check).
    pub fn with_check_min_visits(self, visits: u32) -> ResultCache {
        ResultCache {
            check_min_visits: visits,
            ..self
        }
    }

    /// Whether the cache holds anything at all (capacity above 0).
    pub fn enabled(&self) -> bool {
        self.entries.is_some()
    }

    /// Whether answers of checks of `member` on `ty` are worth caching, by what they have cost.
    pub fn check_worth_caching(&self, costs: &CheckCosts, ty: TypeId, member: Member) -> bool {
        self.enabled() && costs.average(ty, member) >= self.check_min_visits
    }

    /// The cached answer for `key` if it is valid at snapshot revision `at`.
    pub fn get(&self, key: &CacheKey, at: u64, clock: &dyn ChangeClock) -> Option<Cached> {
        let entries = self.entries.as_ref()?;
        let found = entries.get(key).and_then(|entry| {
            let floor = entry.revision.min(at);
            let fresh = entry.deps.iter().all(|d| clock.last_changed(d) <= floor);
            if fresh {
                Some(entry.value.clone())
            } else {
                entries.invalidate(key);
                None
            }
        });
        match found {
            Some(_) => self.hits.fetch_add(1, Ordering::Relaxed),
            None => self.misses.fetch_add(1, Ordering::Relaxed),
        };
        found
    }

    /// Stores an answer computed at snapshot revision `revision`.
    pub fn insert(&self, key: CacheKey, revision: u64, deps: Arc<[DataKey]>, value: Cached) {
        let Some(entries) = &self.entries else {
            return;
        };
        entries.insert(
            key,
            Arc::new(Entry {
                revision,
                deps,
                value,
            }),
        );
    }

    pub fn stats(&self) -> CacheStats {
        CacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    struct Clock(HashMap<DataKey, u64>);
    impl ChangeClock for Clock {
        fn last_changed(&self, key: &DataKey) -> u64 {
            self.0.get(key).copied().unwrap_or(0)
        }
    }

    fn key(name: &str) -> DataKey {
        DataKey::member("doc", name)
    }

    #[test]
    fn entries_survive_unrelated_writes_and_die_on_related_ones() {
        let cache = ResultCache::new(1000);
        let k = CacheKey::new(1, "v1", &lookout_proto::v1::Tuple::default());
        let deps: Arc<[DataKey]> = Arc::from(vec![key("viewer")]);
        cache.insert(k.clone(), 5, deps, Cached::Check(true));
        let mut clock = Clock(HashMap::from([(key("viewer"), 3), (key("owner"), 9)]));
        assert!(matches!(
            cache.get(&k, 9, &clock),
            Some(Cached::Check(true))
        ));
        // An older snapshot than the entry, with no change in between: still valid.
        assert!(cache.get(&k, 4, &clock).is_some());
        // A related write after the entry: invalid for every reader.
        clock.0.insert(key("viewer"), 7);
        assert!(cache.get(&k, 9, &clock).is_none());
        assert!(cache.get(&k, 9, &clock).is_none());
        let stats = cache.stats();
        assert_eq!((stats.hits, stats.misses), (2, 2));
    }

    #[test]
    fn check_costs_follow_recent_evaluations() {
        let model = Model::compile(
            "entity user {}\nentity doc {\n    relation viewer @user\n    permission view = viewer\n}\n",
        )
        .unwrap();
        let costs = CheckCosts::new(&model);
        let (ty, view) = model.resolve("doc", "view").unwrap();
        let (_, viewer) = model.resolve("doc", "viewer").unwrap();
        assert_eq!(costs.average(ty, view), 0);
        // One expensive evaluation moves the average an eighth of the way; a run of them
        // brings it close; cheap ones bring it back down.
        costs.record(ty, view, 800);
        assert_eq!(costs.average(ty, view), 100);
        for _ in 0..40 {
            costs.record(ty, view, 800);
        }
        assert!(costs.average(ty, view) > 780, "{}", costs.average(ty, view));
        for _ in 0..40 {
            costs.record(ty, view, 2);
        }
        assert!(costs.average(ty, view) < 20, "{}", costs.average(ty, view));
        // Small counts still register; members are kept apart; huge counts saturate rather
        // than wrap.
        assert_eq!(costs.average(ty, viewer), 0);
        for _ in 0..40 {
            costs.record(ty, viewer, 2);
        }
        assert_eq!(costs.average(ty, viewer), 1);
        costs.record(ty, viewer, u64::MAX);
        assert!(
            costs.average(ty, viewer) > 1 << 20,
            "{}",
            costs.average(ty, viewer)
        );

        // The cache follows the threshold, and a disabled cache never caches.
        let cache = ResultCache::new(10).with_check_min_visits(64);
        assert!(cache.check_worth_caching(&costs, ty, viewer));
        assert!(!cache.check_worth_caching(&costs, ty, view));
        assert!(
            ResultCache::new(10)
                .with_check_min_visits(0)
                .check_worth_caching(&costs, ty, view)
        );
        assert!(
            !ResultCache::new(0)
                .with_check_min_visits(0)
                .check_worth_caching(&costs, ty, view)
        );
    }

    #[test]
    fn large_questions_weigh_by_their_size() {
        let cache = ResultCache::new(10);
        let small = CacheKey::new(1, "v1", &lookout_proto::v1::Tuple::default());
        let big = CacheKey::new(
            1,
            "v1",
            &lookout_proto::v1::Tuple {
                relation: "r".repeat(64 * 20),
                ..Default::default()
            },
        );
        let deps: Arc<[DataKey]> = Arc::from(vec![key("viewer")]);
        cache.insert(big.clone(), 1, deps.clone(), Cached::Check(true));
        cache.insert(small.clone(), 1, deps, Cached::Check(true));
        let entries = cache.entries.as_ref().unwrap();
        entries.run_pending_tasks();
        // The big question weighs 21 units: more than the whole cache.
        assert!(entries.get(&big).is_none());
        assert!(entries.get(&small).is_some());
        assert!(entries.weighted_size() <= 10);
    }

    #[test]
    fn capacity_zero_holds_nothing() {
        let cache = ResultCache::new(0);
        let k = CacheKey::new(1, "v1", &lookout_proto::v1::Tuple::default());
        cache.insert(
            k.clone(),
            5,
            Arc::from(vec![key("viewer")]),
            Cached::Check(true),
        );
        assert!(cache.get(&k, 5, &Clock(HashMap::new())).is_none());
    }
}
