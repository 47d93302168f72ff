//! Hostile shapes: chains 10,000 deep in the schema and in the data, through permissions,
//! arrows and subject sets, on every read. None may exhaust a thread's stack: each read either
//! answers in full or fails with a typed error (a schema limit when the schema is written, the
//! depth error or a size error when it is read), never with a partial answer.
//!
//! Every evaluation runs on a thread with a 512 KiB stack, a quarter of a server thread's, so
//! a recursion that the input's depth controls would overflow here first.

#![allow(clippy::unwrap_used, reason = "tests fail by panicking")]

use std::sync::Arc;

use lookout_engine::eval::{Context, EvalError, Evaluator, Model};
use lookout_engine::index::{Snapshot, Store, WriteBatch};
use lookout_engine::model::{EntityRef, SubjectRef, Tuple};
use lookout_engine::schema::{
    MAX_MEMBERS_PER_ENTITY, MAX_PERMISSION_CHAIN, MAX_SCHEMA_BYTES, SchemaErrorKind,
};

const DEEP: usize = 10_000;

fn on_small_stack<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::Builder::new()
        .stack_size(512 * 1024)
        .spawn(f)
        .unwrap()
        .join()
        .unwrap()
}

fn load(schema: &str, tuples: Vec<String>) -> (Model, Arc<Snapshot>) {
    let model = Model::compile(schema).unwrap();
    let store = Store::new();
    let batch = WriteBatch {
        tuple_writes: tuples.iter().map(|t| Tuple::parse(t).unwrap()).collect(),
        ..WriteBatch::default()
    };
    let outcome = store.write(&model.schema, &batch).unwrap();
    (model, outcome.snapshot)
}

fn user(id: &str) -> SubjectRef {
    SubjectRef::user("user", id)
}

/// The answers of every read of `permission` on `entity` for `user:alice`, with `depth` for
/// the reads that take one.
struct Reads {
    check: Result<bool, EvalError>,
    lookup_entity: Result<u64, EvalError>,
    lookup_subject: Result<u64, EvalError>,
    subject_permission: Result<bool, EvalError>,
    expand: Result<(), EvalError>,
}

fn every_read(
    schema: String,
    tuples: Vec<String>,
    entity: EntityRef,
    permission: &'static str,
    depth: u32,
) -> Reads {
    on_small_stack(move || {
        let (model, snapshot) = load(&schema, tuples);
        let ctx = Context::default();
        let ev = Evaluator::new(&model, &snapshot, &ctx).unwrap();
        let alice = user("alice");
        Reads {
            check: ev
                .check(&entity, permission, &alice, depth)
                .map(|r| r.allowed),
            lookup_entity: ev
                .lookup_entity(&entity.ty, permission, &alice)
                .map(|s| s.numbers.len()),
            lookup_subject: ev
                .lookup_subject(&entity, permission, "user", None)
                .map(|s| s.numbers.len()),
            subject_permission: ev
                .subject_permission(&entity, &alice, true, depth)
                .map(|all| {
                    all.iter()
                        .find(|(name, _)| name == permission)
                        .is_some_and(|(_, r)| r.allowed)
                }),
            expand: ev.expand(&entity, permission).map(|_| ()),
        }
    })
}

fn permission_chain(n: usize) -> String {
    let mut s =
        String::from("entity user {}\nentity doc {\n    relation r @user\n    permission p0 = r\n");
    for i in 1..n {
        s.push_str(&format!("    permission p{i} = p{}\n", i - 1));
    }
    s.push_str("}\n");
    s
}

#[test]
fn a_permission_chain_beyond_the_limit_is_refused_by_name() {
    // 10,000 links are more members than an entity may declare.
    let text = permission_chain(DEEP);
    let err = on_small_stack(move || Model::compile(&text).map(|_| ()).unwrap_err());
    assert_eq!(err.kind, SchemaErrorKind::TooLarge, "{err}");
    assert!(err.to_string().contains("members per entity"), "{err}");
    // One link more than the chain limit is refused by that limit.
    let text = permission_chain(MAX_PERMISSION_CHAIN + 1);
    let err = on_small_stack(move || Model::compile(&text).map(|_| ()).unwrap_err());
    assert_eq!(err.kind, SchemaErrorKind::TooLarge, "{err}");
    assert!(err.to_string().contains("permission chain length"), "{err}");
}

/// 10,000 entity types, each relation naming the next type's permission as a subject set: a
/// chain through the schema that no single entity holds, walked by the lookups type by type.
#[test]
fn a_chain_of_10000_entity_types_answers_every_read() {
    let mut schema = String::from("entity user {}\n");
    for i in 0..DEEP {
        if i + 1 < DEEP {
            schema.push_str(&format!(
                "entity t{i} {{\n    relation r @user @t{}#p\n    permission p = r\n}}\n",
                i + 1
            ));
        } else {
            schema.push_str(&format!(
                "entity t{i} {{\n    relation r @user\n    permission p = r\n}}\n"
            ));
        }
    }
    let mut tuples = vec![format!("t{}:x#r@user:alice", DEEP - 1)];
    tuples.extend((0..DEEP - 1).map(|i| format!("t{i}:x#r@t{}:x#p", i + 1)));
    let reads = every_read(schema, tuples, EntityRef::new("t0", "x"), "p", 100_000);
    assert_eq!(reads.check, Ok(true));
    assert_eq!(reads.lookup_entity, Ok(1));
    assert_eq!(reads.lookup_subject, Ok(1));
    assert_eq!(reads.subject_permission, Ok(true));
    assert_eq!(reads.expand, Ok(()));
}

#[test]
fn the_longest_accepted_permission_chain_answers_every_read() {
    let top = format!("p{}", MAX_PERMISSION_CHAIN - 1);
    let top: &'static str = Box::leak(top.into_boxed_str());
    let reads = every_read(
        permission_chain(MAX_PERMISSION_CHAIN),
        vec!["doc:1#r@user:alice".into()],
        EntityRef::new("doc", "1"),
        top,
        20,
    );
    assert_eq!(reads.check, Ok(true));
    assert_eq!(reads.lookup_entity, Ok(1));
    assert_eq!(reads.lookup_subject, Ok(1));
    assert_eq!(reads.subject_permission, Ok(true));
    // The tree of 256 nested permissions is deeper than expand answers: an error, not a
    // truncated tree.
    assert!(
        matches!(reads.expand, Err(EvalError::DepthExhausted(_))),
        "{:?}",
        reads.expand
    );
}

#[test]
fn too_many_members_and_too_many_bytes_are_refused_by_name() {
    let mut s = String::from("entity user {}\nentity doc {\n");
    for i in 0..=MAX_MEMBERS_PER_ENTITY {
        s.push_str(&format!("    relation r{i} @user\n"));
    }
    s.push_str("}\n");
    let err = Model::compile(&s).unwrap_err();
    assert_eq!(err.kind, SchemaErrorKind::TooLarge);
    assert!(err.to_string().contains("members per entity"), "{err}");

    let big = format!("entity user {{}}\n// {}\n", "x".repeat(MAX_SCHEMA_BYTES));
    let err = Model::compile(&big).unwrap_err();
    assert_eq!(err.kind, SchemaErrorKind::TooLarge);
    assert!(err.to_string().contains("schema bytes"), "{err}");
}

/// `folder:f{i}#parent@folder:f{i-1}`, alice a viewer of the first: every folder views.
#[test]
fn a_folder_chain_10000_deep_answers_through_arrows() {
    let schema = "entity user {}\nentity folder {\n    relation parent @folder\n    relation viewer @user\n    permission view = viewer or parent.view\n}\n";
    let mut tuples = vec!["folder:f0#viewer@user:alice".to_string()];
    tuples.extend((1..DEEP).map(|i| format!("folder:f{i}#parent@folder:f{}", i - 1)));
    let last = EntityRef::new("folder", format!("f{}", DEEP - 1));
    let reads = every_read(schema.into(), tuples.clone(), last.clone(), "view", 100_000);
    assert_eq!(reads.check, Ok(true));
    assert_eq!(reads.lookup_entity, Ok(DEEP as u64));
    assert_eq!(reads.lookup_subject, Ok(1));
    assert_eq!(reads.subject_permission, Ok(true));
    assert!(
        matches!(reads.expand, Err(EvalError::DepthExhausted(_))),
        "{:?}",
        reads.expand
    );

    // A depth too small for the chain is the depth error, never a denial.
    let shallow = every_read(schema.into(), tuples, last, "view", 50);
    assert!(
        matches!(shallow.check, Err(EvalError::DepthExhausted(50))),
        "{:?}",
        shallow.check
    );
    assert!(matches!(
        shallow.subject_permission,
        Err(EvalError::DepthExhausted(50))
    ));
}

/// `group:g{i}#member@group:g{i-1}#member`, alice in the first, the document viewed by the
/// outermost group.
#[test]
fn nested_groups_10000_deep_answer_through_subject_sets() {
    let schema = "entity user {}\nentity group {\n    relation member @user @group#member\n}\nentity doc {\n    relation viewer @group#member\n    permission view = viewer\n}\n";
    let mut tuples = vec!["group:g0#member@user:alice".to_string()];
    tuples.extend((1..DEEP).map(|i| format!("group:g{i}#member@group:g{}#member", i - 1)));
    tuples.push(format!("doc:1#viewer@group:g{}#member", DEEP - 1));
    let reads = every_read(
        schema.into(),
        tuples,
        EntityRef::new("doc", "1"),
        "view",
        100_000,
    );
    assert_eq!(reads.check, Ok(true));
    assert_eq!(reads.lookup_entity, Ok(1));
    assert_eq!(reads.lookup_subject, Ok(1));
    assert_eq!(reads.subject_permission, Ok(true));
    // Expand shows subject sets unexpanded: one level, whole.
    assert_eq!(reads.expand, Ok(()));
}

/// A chain of subject sets through a permission: `e:n{i}#r@e:n{i-1}#p` where `p = r`.
#[test]
fn a_chain_10000_deep_through_permission_subject_sets_answers() {
    let schema = "entity user {}\nentity e {\n    relation r @user @e#p\n    permission p = r\n}\n";
    let mut tuples = vec!["e:n0#r@user:alice".to_string()];
    tuples.extend((1..DEEP).map(|i| format!("e:n{i}#r@e:n{}#p", i - 1)));
    let last = EntityRef::new("e", format!("n{}", DEEP - 1));
    let reads = every_read(schema.into(), tuples, last, "p", 100_000);
    assert_eq!(reads.check, Ok(true));
    assert_eq!(reads.lookup_entity, Ok(DEEP as u64));
    assert_eq!(reads.lookup_subject, Ok(1));
    assert_eq!(reads.subject_permission, Ok(true));
    assert_eq!(reads.expand, Ok(()));
}

/// Reads with IDs no stored data mentions — lookups whose subject is a fresh subject set,
/// contextual tuples naming fresh entities — answer with those IDs but leave the tenant's
/// interner as it was: 10,000 such reads add nothing to it.
#[test]
fn reads_never_grow_the_shared_interner() {
    let schema = "entity user {}\nentity doc {\n    relation owner @user @doc#owner\n    relation viewer @user\n    permission view = owner or viewer\n}\n";
    let (model, snapshot) = load(schema, vec!["doc:1#owner@user:alice".into()]);
    let interner = snapshot.interner().clone();
    let before = (interner.len("doc"), interner.len("user"));
    for i in 0..10_000 {
        // A subject set nobody stored: it is its own member, so the lookup finds its entity.
        let ctx = Context::default();
        let ev = Evaluator::new(&model, &snapshot, &ctx).unwrap();
        let subject = SubjectRef::new("doc", format!("fresh{i}"), Some("owner".to_string()));
        let found = ev.lookup_entity("doc", "view", &subject).unwrap();
        assert_eq!(ev.names("doc", &found.numbers), [format!("fresh{i}")]);
        let subjects = ev
            .lookup_subject(
                &EntityRef::new("doc", format!("fresh{i}")),
                "view",
                "doc",
                Some("owner"),
            )
            .unwrap();
        assert_eq!(ev.names("doc", &subjects.numbers), [format!("fresh{i}")]);
        // Contextual tuples with fresh IDs on both sides.
        let ctx = Context {
            tuples: vec![Tuple::parse(&format!("doc:new{i}#viewer@user:u{i}")).unwrap()],
            ..Context::default()
        };
        let ev = Evaluator::new(&model, &snapshot, &ctx).unwrap();
        let user = SubjectRef::user("user", format!("u{i}"));
        let found = ev.lookup_entity("doc", "view", &user).unwrap();
        assert_eq!(ev.names("doc", &found.numbers), [format!("new{i}")]);
        assert!(
            ev.check(&EntityRef::new("doc", format!("new{i}")), "view", &user, 20)
                .unwrap()
                .allowed
        );
    }
    assert_eq!((interner.len("doc"), interner.len("user")), before);
}
