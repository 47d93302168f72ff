//! The result cache can never change an answer.
//!
//! A differential property: the same writes, deletes and questions go to a service that caches
//! everything it may (every check too, however cheap) and to one with the cache off, and every
//! answer must be the same. Cases are random schemas (relations with plain subjects and subject
//! sets, one-hop arrows, `and`/`or`/`not`, boolean and integer attributes, rules over
//! attributes, over the request's context and over both) and random interleavings of tuple
//! writes, exact and broad deletes, attribute overwrites and attribute deletes. After every
//! commit each question of the case is asked again (with no snap token, the latest one or an
//! older one): check, bulk check, lookup entity, lookup entity stream, lookup subject, subject
//! permission and expand, some with `context.data` or a contextual tuple.
//!
//! Every case is driven by byte strings read as small choices (a missing byte reads as 0, the
//! simplest option), so proptest shrinks a failure towards a small schema and a short script;
//! the failure message prints both.
//!
//! Also here: the reproduction of issue 13 (a lookup over a rule's universe kept its answer
//! after a write added an entity to that universe).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::sync::Arc;

use lookout_engine::eval::deps::has_negation_cycle;
use lookout_engine::model::{Attribute, Tuple};
use lookout_proto::v1;
use lookout_server::cache::{CheckCosts, ResultCache};
use lookout_server::service::{DEFAULT_CACHE_CAPACITY, Limits, Service, convert};
use lookout_server::tenants::{Retention, SchemaVersion, Tenant};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestError, TestRunner};

const TENANT: &str = "t1";

// ---------------------------------------------------------------------------------------------
// Choice sequences
// ---------------------------------------------------------------------------------------------

/// Reads choices from a byte string; past its end every choice is 0.
struct Choices<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Choices<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Choices { bytes, pos: 0 }
    }

    fn byte(&mut self) -> u8 {
        let b = self.bytes.get(self.pos).copied().unwrap_or(0);
        self.pos += 1;
        b
    }

    /// A number in `0..n` (0 when `n` is 0 or 1).
    fn below(&mut self, n: usize) -> usize {
        let b = usize::from(self.byte());
        if n <= 1 { 0 } else { b % n }
    }

    /// True with about `percent`% probability on random bytes; false on 0.
    fn chance(&mut self, percent: u32) -> bool {
        u32::from(255 - self.byte()) * 100 < percent * 256
    }

    fn pick<T: Clone>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())].clone()
    }
}

// ---------------------------------------------------------------------------------------------
// Schemas
// ---------------------------------------------------------------------------------------------

const TYPE_NAMES: [&str; 4] = ["user", "group", "folder", "doc"];
const REL_NAMES: [&str; 3] = ["owner", "parent", "member"];
const PERM_NAMES: [&str; 3] = ["view", "edit", "manage"];
/// IDs of every type are `0..IDS`.
const IDS: usize = 4;

/// Rules over an attribute, over an attribute and the request, and over the request alone.
const RULES: &str = "rule high(level integer) {\n    level > 1\n}\n\
rule wanted(level integer, want integer) {\n    level == want\n}\n\
rule open() {\n    context.data.open == true\n}\n";

/// A subject kind a relation allows: `(type index, subject relation)`.
type SubjectKind = (usize, Option<&'static str>);

#[derive(Debug, Clone)]
struct TypeSpec {
    name: &'static str,
    /// Each relation's name and subject kinds.
    relations: Vec<(&'static str, Vec<SubjectKind>)>,
    flag: bool,
    level: bool,
    /// Each permission's name and expression source.
    perms: Vec<(&'static str, String)>,
}

impl TypeSpec {
    fn relation_names(&self) -> Vec<&'static str> {
        self.relations.iter().map(|(n, _)| *n).collect()
    }

    fn perm_names(&self) -> Vec<&'static str> {
        self.perms.iter().map(|(n, _)| *n).collect()
    }

    /// Everything a check may name.
    fn checkable(&self) -> Vec<&'static str> {
        let mut names = self.relation_names();
        names.extend(self.perm_names());
        if self.flag {
            names.push("flag");
        }
        names
    }
}

/// `types[0]` is `user`, with no members.
#[derive(Debug, Clone)]
struct Spec {
    types: Vec<TypeSpec>,
}

fn gen_schema(c: &mut Choices) -> Spec {
    let n_other = 2 + c.below(2);
    let mut types = vec![TypeSpec {
        name: TYPE_NAMES[0],
        relations: Vec::new(),
        flag: false,
        level: false,
        perms: Vec::new(),
    }];
    for name in &TYPE_NAMES[1..=n_other] {
        let n_rel = 1 + c.below(3);
        let n_perm = c.below(4);
        types.push(TypeSpec {
            name,
            relations: REL_NAMES[..n_rel]
                .iter()
                .map(|&r| (r, Vec::new()))
                .collect(),
            flag: c.chance(50),
            level: c.chance(60),
            perms: PERM_NAMES[..n_perm]
                .iter()
                .map(|&p| (p, String::new()))
                .collect(),
        });
    }
    // Subject kinds. A subject set may name a permission: a check then asks the lookup plan
    // for the permission's holders.
    for t in 1..types.len() {
        for r in 0..types[t].relations.len() {
            let mut allowed = Vec::new();
            for _ in 0..1 + c.below(2) {
                let kind = match c.below(6) {
                    0 | 1 => (0, None),
                    2 | 3 => (1 + c.below(n_other), None),
                    4 => (t, Some(types[t].relations[r].0)),
                    _ => {
                        let u = 1 + c.below(n_other);
                        let mut names = types[u].relation_names();
                        names.extend(types[u].perm_names());
                        (u, Some(c.pick(&names)))
                    }
                };
                if !allowed.contains(&kind) {
                    allowed.push(kind);
                }
            }
            types[t].relations[r].1 = allowed;
        }
    }
    for t in 1..types.len() {
        for k in 0..types[t].perms.len() {
            let expr = gen_chain(c, &types, t, k, 1);
            types[t].perms[k].1 = expr;
        }
    }
    Spec { types }
}

/// `operand (op operand)*`; the right side of a `not` never names a permission directly.
fn gen_chain(c: &mut Choices, types: &[TypeSpec], t: usize, k: usize, depth: usize) -> String {
    let mut s = gen_operand(c, types, t, k, depth, false);
    for _ in 0..c.below(3) {
        let (op, excluded) = match c.below(4) {
            0 | 1 => ("or", false),
            2 => ("and", false),
            _ => ("not", true),
        };
        let operand = gen_operand(c, types, t, k, depth, excluded);
        let _ = write!(s, " {op} {operand}");
    }
    s
}

fn gen_operand(
    c: &mut Choices,
    types: &[TypeSpec],
    t: usize,
    k: usize,
    depth: usize,
    excluded: bool,
) -> String {
    let spec = &types[t];
    if depth > 0 && !excluded && c.chance(10) {
        return format!("({})", gen_chain(c, types, t, k, depth - 1));
    }
    let mut options: Vec<String> = spec
        .relation_names()
        .iter()
        .map(|r| r.to_string())
        .collect();
    if !excluded {
        options.extend(spec.perms[..k].iter().map(|(p, _)| p.to_string()));
    }
    if spec.flag {
        options.push("flag".into());
    }
    if spec.level {
        options.push("high(level)".into());
        options.push("wanted(level, request.want)".into());
    }
    options.push("open()".into());
    // One-hop arrows: `rel.x` compiles when some subject type of `rel` has `x`.
    for (rel, allowed) in &spec.relations {
        let mut targets: BTreeSet<&'static str> = BTreeSet::new();
        for &(u, _) in allowed {
            targets.extend(types[u].relation_names());
            if !excluded {
                targets.extend(types[u].perm_names());
            }
        }
        options.extend(targets.into_iter().map(|x| format!("{rel}.{x}")));
    }
    // Rules and arrows are what this test is about: pick them more often.
    let rich: Vec<String> = options
        .iter()
        .filter(|o| o.contains('(') || o.contains('.'))
        .cloned()
        .collect();
    if !rich.is_empty() && c.chance(50) {
        c.pick(&rich)
    } else {
        c.pick(&options)
    }
}

impl Spec {
    fn source(&self) -> String {
        let mut out = String::new();
        for t in &self.types {
            let _ = writeln!(out, "entity {} {{", t.name);
            for (name, allowed) in &t.relations {
                let kinds: Vec<String> = allowed
                    .iter()
                    .map(|(u, rel)| match rel {
                        Some(rel) => format!("@{}#{rel}", self.types[*u].name),
                        None => format!("@{}", self.types[*u].name),
                    })
                    .collect();
                let _ = writeln!(out, "    relation {name} {}", kinds.join(" "));
            }
            if t.flag {
                out.push_str("    attribute flag boolean\n");
            }
            if t.level {
                out.push_str("    attribute level integer\n");
            }
            for (name, expr) in &t.perms {
                let _ = writeln!(out, "    permission {name} = {expr}");
            }
            out.push_str("}\n");
        }
        out.push_str(RULES);
        out
    }

    /// A non-user type index.
    fn entity_type(&self, c: &mut Choices) -> usize {
        1 + c.below(self.types.len() - 1)
    }

    fn entity(&self, c: &mut Choices, t: usize) -> String {
        format!("{}:{}", self.types[t].name, c.below(IDS))
    }

    fn tuple(&self, c: &mut Choices) -> String {
        let t = self.entity_type(c);
        let (rel, allowed) = c.pick(&self.types[t].relations);
        let (u, subject_rel) = c.pick(&allowed);
        let subject = format!("{}:{}", self.types[u].name, c.below(IDS));
        let entity = self.entity(c, t);
        match subject_rel {
            Some(r) => format!("{entity}#{rel}@{subject}#{r}"),
            None => format!("{entity}#{rel}@{subject}"),
        }
    }

    /// An attribute write, if some type has attributes.
    fn attribute(&self, c: &mut Choices) -> Option<String> {
        let mut names = Vec::new();
        for (t, spec) in self.types.iter().enumerate() {
            if spec.flag {
                names.push((t, "flag"));
            }
            if spec.level {
                names.push((t, "level"));
            }
        }
        if names.is_empty() {
            return None;
        }
        let (t, name) = c.pick(&names);
        let entity = self.entity(c, t);
        Some(match name {
            "flag" => format!("{entity}${name}|boolean:{}", c.chance(50)),
            _ => format!("{entity}${name}|integer:{}", c.below(4)),
        })
    }

    /// A subject: mostly a user, sometimes a subject set or an entity of another type.
    fn subject(&self, c: &mut Choices) -> v1::Subject {
        let (ty, relation) = match c.below(6) {
            0 => {
                let t = self.entity_type(c);
                (t, c.pick(&self.types[t].relation_names()).to_string())
            }
            1 => (self.entity_type(c), String::new()),
            _ => (0, String::new()),
        };
        v1::Subject {
            r#type: self.types[ty].name.into(),
            id: c.below(IDS).to_string(),
            relation,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Scripts: commits and questions
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
enum Commit {
    Write {
        tuples: Vec<String>,
        attributes: Vec<String>,
    },
    /// Deletes one exact tuple (written before or not).
    DeleteTuple(String),
    /// Deletes every tuple of one relation of one type.
    DeleteRelation {
        entity_type: &'static str,
        relation: &'static str,
    },
    /// Deletes one attribute of one entity.
    DeleteAttribute(String),
}

#[derive(Debug, Clone)]
enum Question {
    Check(v1::Entity, &'static str, v1::Subject),
    BulkCheck(Vec<(v1::Entity, &'static str, v1::Subject)>),
    LookupEntity(&'static str, &'static str, v1::Subject),
    LookupEntityStream(&'static str, &'static str, v1::Subject),
    LookupSubject(v1::Entity, &'static str, v1::RelationReference),
    SubjectPermission(v1::Entity, v1::Subject),
    Expand(v1::Entity, &'static str),
}

/// One question with the two request contexts it is asked in, in turn (the cache key must
/// tell them apart).
#[derive(Debug, Clone)]
struct Asked {
    question: Question,
    contexts: [Option<v1::Context>; 2],
}

#[derive(Debug, Clone)]
struct Script {
    commits: Vec<Commit>,
    questions: Vec<Asked>,
}

fn gen_script(c: &mut Choices, spec: &Spec) -> Script {
    let mut commits = Vec::new();
    let mut written: Vec<String> = Vec::new();
    // Some data to start from.
    let tuples: Vec<String> = (0..3 + c.below(6)).map(|_| spec.tuple(c)).collect();
    let attributes: Vec<String> = (0..c.below(3)).filter_map(|_| spec.attribute(c)).collect();
    written.extend(tuples.iter().cloned());
    commits.push(Commit::Write { tuples, attributes });
    for _ in 0..2 + c.below(4) {
        let commit = match c.below(10) {
            0..=3 => {
                let tuples: Vec<String> = (0..1 + c.below(3)).map(|_| spec.tuple(c)).collect();
                let attributes = (0..c.below(2)).filter_map(|_| spec.attribute(c)).collect();
                written.extend(tuples.iter().cloned());
                Commit::Write { tuples, attributes }
            }
            4 | 5 => {
                let tuple = if !written.is_empty() && c.chance(80) {
                    c.pick(&written)
                } else {
                    spec.tuple(c)
                };
                Commit::DeleteTuple(tuple)
            }
            6 => {
                let t = spec.entity_type(c);
                Commit::DeleteRelation {
                    entity_type: spec.types[t].name,
                    relation: c.pick(&spec.types[t].relation_names()),
                }
            }
            7 | 8 => match spec.attribute(c) {
                Some(a) => Commit::Write {
                    tuples: Vec::new(),
                    attributes: vec![a],
                },
                None => Commit::DeleteTuple(spec.tuple(c)),
            },
            _ => match spec.attribute(c) {
                Some(a) => Commit::DeleteAttribute(a),
                None => Commit::DeleteTuple(spec.tuple(c)),
            },
        };
        commits.push(commit);
    }
    let questions = (0..5 + c.below(5))
        .map(|_| Asked {
            question: gen_question(c, spec),
            contexts: [gen_context(c, spec), gen_context(c, spec)],
        })
        .collect();
    Script { commits, questions }
}

fn gen_question(c: &mut Choices, spec: &Spec) -> Question {
    let t = spec.entity_type(c);
    let ty = &spec.types[t];
    let entity_of = |c: &mut Choices| v1::Entity {
        r#type: ty.name.into(),
        id: c.below(IDS).to_string(),
    };
    let checkable = ty.checkable();
    let permission = c.pick(&checkable);
    match c.below(7) {
        0 => Question::Check(entity_of(c), permission, spec.subject(c)),
        1 => Question::BulkCheck(
            (0..1 + c.below(3))
                .map(|_| {
                    let permission = c.pick(&checkable);
                    (entity_of(c), permission, spec.subject(c))
                })
                .collect(),
        ),
        2 => Question::LookupEntity(ty.name, permission, spec.subject(c)),
        3 => Question::LookupEntityStream(ty.name, permission, spec.subject(c)),
        4 => {
            let subject = spec.subject(c);
            Question::LookupSubject(
                entity_of(c),
                permission,
                v1::RelationReference {
                    r#type: subject.r#type,
                    relation: subject.relation,
                },
            )
        }
        5 => Question::SubjectPermission(entity_of(c), spec.subject(c)),
        _ => Question::Expand(entity_of(c), permission),
    }
}

/// No context, `context.data` (three versions), or a contextual tuple (never cached).
fn gen_context(c: &mut Choices, spec: &Spec) -> Option<v1::Context> {
    let data = |open: bool, want: f64| {
        let fields = [
            ("open".to_string(), prost_types::Value::from(open)),
            ("want".to_string(), prost_types::Value::from(want)),
        ];
        Some(prost_types::Struct {
            fields: fields.into_iter().collect(),
        })
    };
    match c.below(6) {
        0 | 1 => None,
        2 => Some(v1::Context {
            data: data(true, 2.0),
            ..Default::default()
        }),
        3 => Some(v1::Context {
            data: data(false, 1.0),
            ..Default::default()
        }),
        4 => Some(v1::Context {
            tuples: vec![tuple(&spec.tuple(c))],
            data: data(true, 3.0),
            ..Default::default()
        }),
        _ => Some(v1::Context {
            data: data(true, 3.0),
            ..Default::default()
        }),
    }
}

fn tuple(text: &str) -> v1::Tuple {
    convert::tuple_out(&Tuple::parse(text).unwrap())
}

fn attribute(text: &str) -> v1::Attribute {
    convert::attribute_out(&Attribute::parse(text).unwrap())
}

// ---------------------------------------------------------------------------------------------
// Running a script against one service
// ---------------------------------------------------------------------------------------------

/// What a call answered, as comparable text: the answer, or the error's code and message.
type Answer = Result<String, String>;

/// The snap token of a commit, or its error's code and message.
fn token(result: Result<String, lookout_server::error::ApiError>) -> Answer {
    result.map_err(|e| format!("{:?}: {}", e.code, e.message))
}

fn answer<T, U: std::fmt::Debug>(
    result: Result<T, lookout_server::error::ApiError>,
    out: impl FnOnce(T) -> U,
) -> Answer {
    result
        .map(|r| format!("{:?}", out(r)))
        .map_err(|e| format!("{:?}: {}", e.code, e.message))
}

/// IDs in text order: the two services may number IDs differently (a cached answer skips the
/// evaluation that would have numbered a subject set), and results come in number order.
fn sorted(mut ids: Vec<String>) -> Vec<String> {
    ids.sort();
    ids
}

async fn commit(s: &Service, tenant: &str, commit: &Commit) -> Answer {
    match commit {
        Commit::Write { tuples, attributes } => token(
            s.data_write(v1::DataWriteRequest {
                tenant_id: tenant.into(),
                metadata: None,
                tuples: tuples.iter().map(|t| tuple(t)).collect(),
                attributes: attributes.iter().map(|a| attribute(a)).collect(),
            })
            .await
            .map(|r| r.snap_token),
        ),
        Commit::DeleteTuple(text) => {
            let t = Tuple::parse(text).unwrap();
            let filter = v1::TupleFilter {
                entity: Some(v1::EntityFilter {
                    r#type: t.entity.ty,
                    ids: vec![t.entity.id],
                }),
                relation: t.relation,
                subject: Some(v1::SubjectFilter {
                    r#type: t.subject.ty,
                    ids: vec![t.subject.id],
                    relation: t.subject.relation.unwrap_or_default(),
                }),
            };
            token(
                s.delete_relationships(v1::RelationshipDeleteRequest {
                    tenant_id: tenant.into(),
                    filter: Some(filter),
                })
                .await
                .map(|r| r.snap_token),
            )
        }
        Commit::DeleteRelation {
            entity_type,
            relation,
        } => token(
            s.delete_relationships(v1::RelationshipDeleteRequest {
                tenant_id: tenant.into(),
                filter: Some(v1::TupleFilter {
                    entity: Some(v1::EntityFilter {
                        r#type: entity_type.to_string(),
                        ids: Vec::new(),
                    }),
                    relation: relation.to_string(),
                    subject: None,
                }),
            })
            .await
            .map(|r| r.snap_token),
        ),
        Commit::DeleteAttribute(text) => {
            let a = Attribute::parse(text).unwrap();
            token(
                s.data_delete(v1::DataDeleteRequest {
                    tenant_id: tenant.into(),
                    tuple_filter: None,
                    attribute_filter: Some(v1::AttributeFilter {
                        entity: Some(v1::EntityFilter {
                            r#type: a.entity.ty,
                            ids: vec![a.entity.id],
                        }),
                        attributes: vec![a.name],
                    }),
                })
                .await
                .map(|r| r.snap_token),
            )
        }
    }
}

fn check_metadata(snap_token: &str) -> Option<v1::PermissionCheckRequestMetadata> {
    Some(v1::PermissionCheckRequestMetadata {
        snap_token: snap_token.into(),
        ..Default::default()
    })
}

fn lookup_metadata(snap_token: &str) -> Option<v1::PermissionLookupEntityRequestMetadata> {
    Some(v1::PermissionLookupEntityRequestMetadata {
        snap_token: snap_token.into(),
        ..Default::default()
    })
}

async fn ask(
    s: &Service,
    tenant: &str,
    question: &Question,
    context: &Option<v1::Context>,
    snap_token: &str,
) -> Answer {
    let context = context.clone();
    match question {
        Question::Check(entity, permission, subject) => answer(
            s.check(v1::PermissionCheckRequest {
                tenant_id: tenant.into(),
                metadata: check_metadata(snap_token),
                entity: Some(entity.clone()),
                permission: permission.to_string(),
                subject: Some(subject.clone()),
                context,
                arguments: Vec::new(),
            })
            .await,
            |r| r.can,
        ),
        Question::BulkCheck(items) => answer(
            s.bulk_check(v1::PermissionBulkCheckRequest {
                tenant_id: tenant.into(),
                metadata: check_metadata(snap_token),
                items: items
                    .iter()
                    .map(
                        |(entity, permission, subject)| v1::PermissionBulkCheckRequestItem {
                            entity: Some(entity.clone()),
                            permission: permission.to_string(),
                            subject: Some(subject.clone()),
                        },
                    )
                    .collect(),
                context,
                arguments: Vec::new(),
            })
            .await,
            |r| r.results.iter().map(|x| x.can).collect::<Vec<_>>(),
        ),
        Question::LookupEntity(entity_type, permission, subject) => answer(
            s.lookup_entity(v1::PermissionLookupEntityRequest {
                tenant_id: tenant.into(),
                metadata: lookup_metadata(snap_token),
                entity_type: entity_type.to_string(),
                permission: permission.to_string(),
                subject: Some(subject.clone()),
                context,
                ..Default::default()
            })
            .await,
            |r| sorted(r.entity_ids),
        ),
        Question::LookupEntityStream(entity_type, permission, subject) => {
            let stream = s
                .lookup_entity_stream(v1::PermissionLookupEntityRequest {
                    tenant_id: tenant.into(),
                    metadata: lookup_metadata(snap_token),
                    entity_type: entity_type.to_string(),
                    permission: permission.to_string(),
                    subject: Some(subject.clone()),
                    context,
                    ..Default::default()
                })
                .await;
            match stream {
                Err(e) => answer::<(), ()>(Err(e), |_| ()),
                Ok(mut stream) => {
                    let mut ids = Vec::new();
                    while let Some(message) = stream.recv().await {
                        match message {
                            Ok(m) => ids.push(m.entity_id),
                            Err(e) => return answer::<(), ()>(Err(e), |_| ()),
                        }
                    }
                    Ok(format!("{:?}", sorted(ids)))
                }
            }
        }
        Question::LookupSubject(entity, permission, reference) => answer(
            s.lookup_subject(v1::PermissionLookupSubjectRequest {
                tenant_id: tenant.into(),
                metadata: Some(v1::PermissionLookupSubjectRequestMetadata {
                    snap_token: snap_token.into(),
                    ..Default::default()
                }),
                entity: Some(entity.clone()),
                permission: permission.to_string(),
                subject_reference: Some(reference.clone()),
                context,
                ..Default::default()
            })
            .await,
            |r| sorted(r.subject_ids),
        ),
        Question::SubjectPermission(entity, subject) => answer(
            s.subject_permission(v1::PermissionSubjectPermissionRequest {
                tenant_id: tenant.into(),
                metadata: Some(v1::PermissionSubjectPermissionRequestMetadata {
                    snap_token: snap_token.into(),
                    ..Default::default()
                }),
                entity: Some(entity.clone()),
                subject: Some(subject.clone()),
                context,
            })
            .await,
            |r| r.results.into_iter().collect::<BTreeMap<_, _>>(),
        ),
        Question::Expand(entity, permission) => answer(
            s.expand(v1::PermissionExpandRequest {
                tenant_id: tenant.into(),
                metadata: Some(v1::PermissionExpandRequestMetadata {
                    snap_token: snap_token.into(),
                    ..Default::default()
                }),
                entity: Some(entity.clone()),
                permission: permission.to_string(),
                context,
                ..Default::default()
            })
            .await,
            |r| r.tree,
        ),
    }
}

/// The two services of a case and the tenant it runs in: the first service caches everything
/// it may, the second nothing.
pub struct Pair {
    pub cached: Arc<Service>,
    pub uncached: Arc<Service>,
    pub tenant: String,
    /// Whether the case creates its tenant (the memory store starts with `t1`).
    pub create_tenant: bool,
}

/// A fresh pair over the memory store.
pub fn memory_pair() -> Pair {
    Pair {
        cached: Service::with_cache(
            Limits::default(),
            Retention::default(),
            caching_everything(),
        ),
        uncached: Service::with_cache(Limits::default(), Retention::default(), ResultCache::new(0)),
        tenant: TENANT.into(),
        create_tenant: false,
    }
}

/// A cache that caches every answer it may, every check included.
pub fn caching_everything() -> ResultCache {
    ResultCache::new(DEFAULT_CACHE_CAPACITY).with_check_min_visits(0)
}

/// Writes a random schema to both services, then runs a random script on both: every commit,
/// then every question, each with no snap token, the latest one or the first one in turn. Any
/// answer that differs fails the case.
pub async fn differential_case(
    pair: &Pair,
    schema_bytes: &[u8],
    script_bytes: &[u8],
) -> Result<(), TestCaseError> {
    let spec = gen_schema(&mut Choices::new(schema_bytes));
    let source = spec.source();
    let script = gen_script(&mut Choices::new(script_bytes), &spec);
    let mut log = format!("--- schema\n{source}--- script\n");
    // Compiled once (CEL compilation dominates a small case in a debug build) and stored in
    // both tenants, each version with its own check costs.
    let compiled = Tenant::compile_schema(&source).map_err(|e| {
        TestCaseError::fail(format!(
            "the generated schema does not compile: {e}\n{source}"
        ))
    })?;
    // A dependency cycle through a `not` has no least fixpoint, and the walk and the lookup
    // plan may then answer differently: such schemas are left out.
    if has_negation_cycle(&compiled.model.schema) {
        return Err(TestCaseError::reject("a dependency cycle through `not`"));
    }
    let services = [&pair.cached, &pair.uncached];
    for s in services {
        if pair.create_tenant {
            s.tenant_create(v1::TenantCreateRequest {
                id: pair.tenant.clone(),
                name: pair.tenant.clone(),
            })
            .await
            .map_err(|e| TestCaseError::fail(format!("tenant: {e}")))?;
        }
        let tenant = s.tenants.get(&pair.tenant).await.map_err(fail)?;
        let version = SchemaVersion {
            version: compiled.version.clone(),
            source: source.clone(),
            model: compiled.model.clone(),
            check_costs: CheckCosts::new(&compiled.model),
            created_at: compiled.created_at,
            seq: 0,
        };
        tenant.add_schema(version).await.map_err(fail)?;
    }
    // Each service's snap tokens, oldest first.
    let mut tokens: [Vec<String>; 2] = [Vec::new(), Vec::new()];
    for (step, c) in script.commits.iter().enumerate() {
        let _ = writeln!(log, "commit {c:?}");
        let mut results = Vec::new();
        for (i, s) in services.iter().enumerate() {
            let result = commit(s, &pair.tenant, c).await;
            if let Ok(token) = &result {
                tokens[i].push(token.clone());
            }
            results.push(result.map(|_| ()));
        }
        prop_assert_eq!(&results[0], &results[1], "commits differ\n{}", log);
        for (q, asked) in script.questions.iter().enumerate() {
            let context = &asked.contexts[step % 2];
            let mut answers = Vec::new();
            for (i, s) in services.iter().enumerate() {
                let token = match (step + q) % 3 {
                    0 => "",
                    1 => tokens[i].last().map_or("", String::as_str),
                    _ => tokens[i].first().map_or("", String::as_str),
                };
                answers.push(ask(s, &pair.tenant, &asked.question, context, token).await);
            }
            let _ = writeln!(
                log,
                "ask {:?}\n  in {context:?}\n  at {}\n  -> {:?}",
                asked.question,
                ["no token", "the latest token", "the first token"][(step + q) % 3],
                answers[1]
            );
            prop_assert_eq!(
                &answers[0],
                &answers[1],
                "the cached service answered differently (left) from the uncached one\n{}",
                log
            );
        }
    }
    Ok(())
}

fn fail(e: lookout_server::error::ApiError) -> TestCaseError {
    TestCaseError::fail(format!("{:?}: {}", e.code, e.message))
}

fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..=max)
}

/// Runs `cases` differential cases on `runtime`, each on the pair `pair(case number)` gives.
pub fn run_differential<F, P>(runtime: &tokio::runtime::Runtime, cases: u32, pair: F)
where
    F: Fn(u64) -> P,
    P: std::future::Future<Output = Pair>,
{
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        max_shrink_iters: 400,
        ..Config::default()
    });
    let case = std::cell::Cell::new(0);
    let hits = std::cell::Cell::new(0);
    let lookups = std::cell::Cell::new(0);
    let result = runner.run(&(bytes(160), bytes(400)), |(schema, script)| {
        case.set(case.get() + 1);
        runtime.block_on(async {
            let pair = pair(case.get()).await;
            let before = pair.cached.cache.stats();
            differential_case(&pair, &schema, &script).await?;
            let after = pair.cached.cache.stats();
            hits.set(hits.get() + after.hits - before.hits);
            lookups.set(lookups.get() + after.hits + after.misses - before.hits - before.misses);
            Ok(())
        })
    });
    match result {
        Ok(()) => {
            // The property says nothing unless answers do come from the cache.
            let (hits, lookups) = (hits.get(), lookups.get());
            assert!(
                hits * 5 >= lookups,
                "only {hits} of {lookups} cache lookups hit"
            );
        }
        Err(TestError::Fail(reason, (schema, script))) => {
            panic!("{reason}\nschema bytes {schema:?}\nscript bytes {script:?}")
        }
        Err(e) => panic!("{e}"),
    }
}

/// A runtime for [`run_differential`].
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn the_cache_never_changes_an_answer() {
    run_differential(&runtime(), 2000, |_| async { memory_pair() });
}

// ---------------------------------------------------------------------------------------------
// Issue 13
// ---------------------------------------------------------------------------------------------

async fn lookup_items(s: &Service, permission: &str, snap_token: &str) -> Vec<String> {
    let mut ids = s
        .lookup_entity(v1::PermissionLookupEntityRequest {
            tenant_id: TENANT.into(),
            metadata: lookup_metadata(snap_token),
            entity_type: "item".into(),
            permission: permission.into(),
            subject: Some(v1::Subject {
                r#type: "user".into(),
                id: "1".into(),
                relation: String::new(),
            }),
            ..Default::default()
        })
        .await
        .unwrap()
        .entity_ids;
    ids.sort();
    ids
}

/// The reproduction: the missing-attributes fixture, a lookup over a rule (which runs
/// on every item the data mentions), then a write that mentions a new item.
#[tokio::test]
async fn a_write_that_adds_an_entity_to_a_rules_universe_refreshes_the_lookup() {
    let source = include_str!("../../fixtures/features/missing-attributes.yaml");
    let file = lookout_engine::validation::parse(source).unwrap().file;
    let s = Service::with_cache(
        Limits::default(),
        Retention::default(),
        caching_everything(),
    );
    s.schema_write(v1::SchemaWriteRequest {
        tenant_id: TENANT.into(),
        schema: file.schema.clone(),
    })
    .await
    .unwrap();
    s.data_write(v1::DataWriteRequest {
        tenant_id: TENANT.into(),
        metadata: None,
        tuples: file.relationships.iter().map(|t| tuple(t)).collect(),
        attributes: file.attributes.iter().map(|a| attribute(a)).collect(),
    })
    .await
    .unwrap();
    assert_eq!(lookup_items(&s, "out_of_stock", "").await, ["1", "3"]);
    // Asked twice: the second answer came from the cache.
    assert_eq!(lookup_items(&s, "out_of_stock", "").await, ["1", "3"]);
    let hits = s.cache.stats().hits;
    assert!(hits >= 1, "the repeated lookup was not cached");

    let token = s
        .data_write(v1::DataWriteRequest {
            tenant_id: TENANT.into(),
            metadata: None,
            tuples: vec![tuple("item:4#owner@user:1")],
            attributes: Vec::new(),
        })
        .await
        .unwrap()
        .snap_token;
    assert_eq!(lookup_items(&s, "out_of_stock", "").await, ["1", "3", "4"]);
    assert_eq!(
        lookup_items(&s, "out_of_stock", &token).await,
        ["1", "3", "4"]
    );
    let check = s
        .check(v1::PermissionCheckRequest {
            tenant_id: TENANT.into(),
            metadata: check_metadata(&token),
            entity: Some(v1::Entity {
                r#type: "item".into(),
                id: "4".into(),
            }),
            permission: "out_of_stock".into(),
            subject: Some(v1::Subject {
                r#type: "user".into(),
                id: "1".into(),
                relation: String::new(),
            }),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(check.can, convert::check_result(true));
}
