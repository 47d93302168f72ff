//! Permify's published load-test model: users, contents and interactions.
//!
//! Shape for `n` (Permify seeds 100,000 of each):
//! - user `i` has `self` = itself, follows user `i + 1` (`user:{i+1}#follower@user:{i}`) and
//!   blocks user `i + 2` (`user:{i}#blocked@user:{i+2}`); one user in four is public;
//! - content `i` is owned by user `i`; one content in four is public;
//! - interaction `i` is created by user `i` on content `(i + 1) % n`.
//!
//! About 6 tuples and 0.5 attributes per index.

use lookout_engine::model::{AttrValue, Attribute, EntityRef, SubjectRef, Tuple};

pub const SCHEMA: &str = r#"
entity user {
    relation self @user
    relation follower @user
    relation blocked @user
    attribute is_public boolean
    permission view = self or (is_public or follower) not blocked
}

entity content {
    relation owner @user
    attribute is_public boolean
    permission view = owner.self or (is_public or owner.follower) not owner.blocked
}

entity interaction {
    relation creator @user
    relation parent @content
    permission view = creator.self or (creator.view and parent.view)
}
"#;

fn user(i: u64) -> SubjectRef {
    SubjectRef::user("user", i.to_string())
}

fn tuple(ty: &str, id: u64, relation: &str, subject: SubjectRef) -> Tuple {
    Tuple::new(EntityRef::new(ty, id.to_string()), relation, subject)
}

fn public(ty: &str, id: u64) -> Attribute {
    Attribute {
        entity: EntityRef::new(ty, id.to_string()),
        name: "is_public".to_string(),
        value: AttrValue::Boolean(true),
    }
}

/// Generates the model for `n` users, contents and interactions, handing batches of at most
/// `batch` items to `sink` as (tuples, attributes).
pub fn generate(n: u64, batch: usize, mut sink: impl FnMut(Vec<Tuple>, Vec<Attribute>)) {
    let mut tuples = Vec::with_capacity(batch);
    let mut attributes = Vec::new();
    let mut flush = |tuples: &mut Vec<Tuple>, attributes: &mut Vec<Attribute>, force: bool| {
        if force || tuples.len() + attributes.len() >= batch {
            sink(std::mem::take(tuples), std::mem::take(attributes));
        }
    };
    for i in 0..n {
        tuples.push(tuple("user", i, "self", user(i)));
        if i + 1 < n {
            tuples.push(tuple("user", i + 1, "follower", user(i)));
        }
        if i + 2 < n {
            tuples.push(tuple("user", i, "blocked", user(i + 2)));
        }
        if i % 4 == 0 {
            attributes.push(public("user", i));
            attributes.push(public("content", i));
        }
        tuples.push(tuple("content", i, "owner", user(i)));
        tuples.push(tuple("interaction", i, "creator", user(i)));
        tuples.push(Tuple::new(
            EntityRef::new("interaction", i.to_string()),
            "parent",
            SubjectRef::user("content", ((i + 1) % n.max(1)).to_string()),
        ));
        flush(&mut tuples, &mut attributes, false);
    }
    if !tuples.is_empty() || !attributes.is_empty() {
        flush(&mut tuples, &mut attributes, true);
    }
}
