//! A first end-to-end pass over the engine API on a small document model.

#![allow(clippy::unwrap_used, reason = "tests fail by panicking")]

use lookout_engine::eval::{Context, Evaluator, Model};
use lookout_engine::index::{Store, WriteBatch};
use lookout_engine::model::{Attribute, EntityRef, SubjectRef, Tuple};

const SCHEMA: &str = r#"
entity user {}
entity group {
    relation member @user @group#member
}
entity folder {
    relation parent @folder
    relation viewer @user @group#member
    permission view = viewer or parent.view
}
entity doc {
    relation folder @folder
    relation viewer @user @group#member
    relation banned @user
    attribute public boolean
    permission view = (viewer or folder.view or public) not banned
}
"#;

fn tuples(lines: &[&str]) -> Vec<Tuple> {
    lines.iter().map(|l| Tuple::parse(l).unwrap()).collect()
}

#[test]
fn documents_through_groups_and_folders() {
    let model = Model::compile(SCHEMA).unwrap();
    let store = Store::new();
    let batch = WriteBatch {
        tuple_writes: tuples(&[
            "group:a#member@user:alice",
            "group:b#member@group:a#member",
            "group:c#member@group:b#member",
            "folder:root#viewer@group:c#member",
            "folder:sub#parent@folder:root",
            "doc:1#folder@folder:sub",
            "doc:2#viewer@user:bob",
            "doc:3#folder@folder:root",
            "doc:3#banned@user:alice",
            "folder:deep1#parent@folder:sub",
            "folder:deep2#parent@folder:deep1",
            "doc:5#folder@folder:deep2",
        ]),
        attribute_writes: vec![Attribute::parse("doc:4$public|boolean:true").unwrap()],
        ..WriteBatch::default()
    };
    let outcome = store.write(&model.schema, &batch).unwrap();
    assert_eq!(outcome.snapshot.revision(), 1);
    let ctx = Context::default();
    let ev = Evaluator::new(&model, &outcome.snapshot, &ctx).unwrap();
    let alice = SubjectRef::user("user", "alice");
    let check = |doc: &str| {
        ev.check(&EntityRef::new("doc", doc), "view", &alice, 20)
            .unwrap()
            .allowed
    };
    assert!(check("1"));
    assert!(!check("2"));
    assert!(!check("3"));
    assert!(check("4"));
    let found = ev.lookup_entity("doc", "view", &alice).unwrap();
    let names: Vec<String> = ev
        .names("doc", &found.numbers)
        .iter()
        .map(|s| s.to_string())
        .collect();
    // Stream order is the order IDs were first written (doc:4 came with the attributes).
    assert_eq!(names, vec!["1", "5", "4"]);
    let subjects = ev
        .lookup_subject(&EntityRef::new("doc", "1"), "view", "user", None)
        .unwrap();
    let names: Vec<String> = ev
        .names("user", &subjects.numbers)
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(names, vec!["alice"]);
    // The probe finds the first visible documents by checks, in number order, and says how
    // far it decided.
    let probe = ev
        .lookup_entity_probe("doc", "view", &alice, 2, 64, 64)
        .unwrap();
    let first_two: Vec<u32> = found.numbers.iter().take(2).collect();
    assert_eq!(probe.numbers, first_two);
    assert!(probe.decided_below > first_two[1]);
    // Nested groups are resolved from the subject's side and cost no depth; every arrow hop
    // through the folder tree does. Two hops fit in depth 3, four do not.
    let doc = |id: &str| EntityRef::new("doc", id);
    assert!(ev.check(&doc("1"), "view", &alice, 3).unwrap().allowed);
    assert!(ev.check(&doc("5"), "view", &alice, 3).is_err());
    assert!(ev.check(&doc("5"), "view", &alice, 6).unwrap().allowed);
}

#[test]
fn rejected_batches_change_nothing() {
    let model = Model::compile(SCHEMA).unwrap();
    let store = Store::new();
    let batch = WriteBatch {
        tuple_writes: tuples(&["doc:1#viewer@user:alice", "doc:1#viewer@folder:x"]),
        ..WriteBatch::default()
    };
    let err = store.write(&model.schema, &batch).unwrap_err().to_string();
    assert!(err.contains("does not allow"), "{err}");
    assert_eq!(store.head().tuple_count(), 0);
    assert_eq!(store.head().revision(), 0);
}

#[test]
fn a_cancelled_evaluation_stops_with_cancelled() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    use lookout_engine::eval::{EvalError, cancel};

    let model = Model::compile(SCHEMA).unwrap();
    let store = Store::new();
    let batch = WriteBatch {
        tuple_writes: tuples(&["group:a#member@user:alice", "doc:1#viewer@group:a#member"]),
        ..WriteBatch::default()
    };
    let outcome = store.write(&model.schema, &batch).unwrap();
    let ctx = Context::default();
    let alice = SubjectRef::user("user", "alice");
    let flag = Arc::new(AtomicBool::new(false));
    let ev = Evaluator::new(&model, &outcome.snapshot, &ctx)
        .unwrap()
        .with_cancel(flag.clone());
    assert_eq!(
        ev.lookup_entity("doc", "view", &alice)
            .unwrap()
            .numbers
            .len(),
        1
    );
    flag.store(true, Ordering::Relaxed);
    assert_eq!(
        ev.lookup_entity("doc", "view", &alice).unwrap_err(),
        EvalError::Cancelled
    );
    let doc = EntityRef::new("doc", "1");
    assert_eq!(
        ev.lookup_subject(&doc, "view", "user", None).unwrap_err(),
        EvalError::Cancelled
    );
    // An evaluator built inside a scope takes the scope's flag; outside it, none.
    let scoped = cancel::scope(&flag, || {
        Evaluator::new(&model, &outcome.snapshot, &ctx)
            .unwrap()
            .lookup_entity("doc", "view", &alice)
    });
    assert_eq!(scoped.unwrap_err(), EvalError::Cancelled);
    let plain = Evaluator::new(&model, &outcome.snapshot, &ctx).unwrap();
    assert!(plain.lookup_entity("doc", "view", &alice).is_ok());
}

#[test]
fn a_progressive_lookup_offers_a_prefix_where_the_plan_allows() {
    let model = Model::compile(SCHEMA).unwrap();
    let store = Store::new();
    let mut lines: Vec<String> = (0..40)
        .map(|d| format!("doc:{d}#folder@folder:f{}", d % 4))
        .collect();
    lines.extend(["folder:f1#parent@folder:f0".to_string()]);
    lines.extend(["folder:f0#viewer@group:g#member".to_string()]);
    lines.extend([
        "group:g#member@user:u".to_string(),
        "doc:7#banned@user:u".to_string(),
    ]);
    lines.extend((0..40).step_by(3).map(|d| format!("doc:{d}#viewer@user:u")));
    let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
    let batch = WriteBatch {
        tuple_writes: tuples(&refs),
        ..WriteBatch::default()
    };
    store.write(&model.schema, &batch).unwrap();
    let snap = store.head();
    let ctx = Context::default();
    let ev = Evaluator::new(&model, &snap, &ctx).unwrap();
    let user = SubjectRef::user("user", "u");
    let full = ev.lookup_entity("doc", "view", &user).unwrap().numbers;
    assert!(full.len() > 20, "{full:?}");
    for below in [0, 1, 10, 25, 1000] {
        let mut prefix = None;
        let got = ev
            .lookup_entity_progressive("doc", "view", &user, below, |p| prefix = Some(p.clone()))
            .unwrap()
            .numbers;
        assert_eq!(got, full);
        let mut want = full.clone();
        want.remove_range(below..);
        // `doc.view` reaches folders only through an arrow: its prefix is offered.
        assert_eq!(prefix, Some(want), "below {below}");
    }
    // `folder.view` recurses through `parent.view` on folders: no prefix, same answer.
    let mut prefix = None;
    let folders = ev
        .lookup_entity_progressive("folder", "view", &user, 1, |p| prefix = Some(p.clone()))
        .unwrap();
    assert_eq!(prefix, None);
    assert_eq!(
        folders.numbers,
        ev.lookup_entity("folder", "view", &user).unwrap().numbers
    );
}

/// Checks through nested groups agree with the lookup, whether the subject's groups are few
/// (the check's own upward walk), more than the walk collects (the bitmap lookup takes over),
/// or nested in a cycle.
#[test]
fn checks_through_nested_groups_agree_with_the_lookup() {
    let model = Model::compile(SCHEMA).unwrap();
    let store = Store::new();
    let mut lines: Vec<String> = vec![
        // A chain of 100 groups: alice is in g0, g(i) is inside g(i+1).
        "group:g0#member@user:alice".into(),
        // A cycle: x and y inside each other, bob in x.
        "group:x#member@user:bob".into(),
        "group:y#member@group:x#member".into(),
        "group:x#member@group:y#member".into(),
        "doc:cycle#viewer@group:y#member".into(),
        // Carol is directly in two groups, one of them inside g3.
        "group:c1#member@user:carol".into(),
        "group:c2#member@user:carol".into(),
        "group:g3#member@group:c2#member".into(),
        // Dave is in g95 only: six groups up the chain.
        "group:g95#member@user:dave".into(),
    ];
    for i in 0..100 {
        lines.push(format!("group:g{}#member@group:g{i}#member", i + 1));
        lines.push(format!("doc:{i}#viewer@group:g{i}#member"));
    }
    let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
    let batch = WriteBatch {
        tuple_writes: tuples(&refs),
        ..WriteBatch::default()
    };
    let snapshot = store.write(&model.schema, &batch).unwrap().snapshot;
    let ctx = Context::default();
    let ev = Evaluator::new(&model, &snapshot, &ctx).unwrap();
    let mut docs: Vec<String> = (0..100).map(|i| i.to_string()).collect();
    docs.push("cycle".into());
    for user in ["alice", "bob", "carol", "dave", "nobody"] {
        let subject = SubjectRef::user("user", user);
        let found = ev.lookup_entity("doc", "view", &subject).unwrap();
        let mut allowed = 0;
        for doc in &docs {
            let checked = ev
                .check(&EntityRef::new("doc", doc.clone()), "view", &subject, 50)
                .unwrap()
                .allowed;
            let number = snapshot.number("doc", doc).unwrap();
            assert_eq!(
                checked,
                found.numbers.contains(number),
                "{user} on doc:{doc}"
            );
            allowed += u32::from(checked);
        }
        let expected = match user {
            "alice" => 100,
            "bob" => 1,
            "carol" => 97,
            "dave" => 5,
            _ => 0,
        };
        assert_eq!(allowed, expected, "{user}");
    }
}

/// A snapshot remembers the relation stores of the first schema evaluated on it; another
/// schema version on the same snapshot, whose relations are numbered differently, must still
/// find its own.
#[test]
fn two_schema_versions_on_one_snapshot() {
    let narrow = Model::compile(
        "entity user {}\nentity doc {\n relation viewer @user\n permission view = viewer\n}",
    )
    .unwrap();
    let wide = Model::compile(
        "entity user {}\nentity doc {\n relation owner @user\n relation viewer @user\n \
         permission view = owner or viewer\n permission own = owner\n}",
    )
    .unwrap();
    let fresh = || {
        let batch = WriteBatch {
            tuple_writes: tuples(&["doc:1#viewer@user:1", "doc:2#owner@user:2"]),
            ..WriteBatch::default()
        };
        Store::new().write(&wide.schema, &batch).unwrap().snapshot
    };
    let ctx = Context::default();
    let user = |id: &str| SubjectRef::user("user", id);
    for order in [[&narrow, &wide], [&wide, &narrow]] {
        // A fresh snapshot per order: the first model evaluated on it claims its cache.
        let snapshot = fresh();
        for model in order {
            let ev = Evaluator::new(model, &snapshot, &ctx).unwrap();
            let check = |doc: &str, perm: &str, who: &str| {
                ev.check(&EntityRef::new("doc", doc), perm, &user(who), 20)
                    .unwrap()
                    .allowed
            };
            assert!(check("1", "view", "1"));
            if std::ptr::eq(model, &wide) {
                assert!(check("2", "view", "2"));
                assert!(check("2", "own", "2"));
                assert!(
                    !check("1", "own", "1"),
                    "owner must not read the viewer store"
                );
            } else {
                assert!(!check("2", "view", "2"), "the narrow schema has no owner");
            }
        }
    }
}

/// A check reports what it cost: more members visited through a longer folder chain.
#[test]
fn checks_report_their_cost_in_visits() {
    let model = Model::compile(SCHEMA).unwrap();
    let store = Store::new();
    let mut lines = vec!["doc:near#viewer@user:alice".to_owned()];
    // doc:far sits 200 folders below the folder alice views.
    lines.push("folder:f0#viewer@user:alice".to_owned());
    for i in 1..=200 {
        lines.push(format!("folder:f{i}#parent@folder:f{}", i - 1));
    }
    lines.push("doc:far#folder@folder:f200".to_owned());
    let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
    let batch = WriteBatch {
        tuple_writes: tuples(&lines),
        ..WriteBatch::default()
    };
    let snapshot = store.write(&model.schema, &batch).unwrap().snapshot;
    let ctx = Context::default();
    let ev = Evaluator::new(&model, &snapshot, &ctx).unwrap();
    let alice = SubjectRef::user("user", "alice");
    let near = ev
        .check(&EntityRef::new("doc", "near"), "view", &alice, 500)
        .unwrap();
    let far = ev
        .check(&EntityRef::new("doc", "far"), "view", &alice, 500)
        .unwrap();
    assert!(near.allowed && far.allowed);
    assert!(near.visits >= 1 && near.visits < 16, "{near:?}");
    assert!(far.visits > 200, "{far:?}");
    // Within a budget the walk cannot finish in, the bounded walk gives up.
    let bounded = ev
        .check_within(&EntityRef::new("doc", "far"), "view", &alice, 500, 50)
        .unwrap();
    assert!(bounded.is_none(), "{bounded:?}");
}
