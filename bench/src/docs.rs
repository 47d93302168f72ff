//! The document-sharing model: nested groups, a folder tree with `parent` arrows, direct and
//! group viewers on folders and documents, and `not banned` on documents.
//!
//! Shape for `n` documents (about 3.3 tuples per document):
//! - `n / 10` users, `n / 100 + 2` groups; user 0 is alone in group 0; every other user is in
//!   one of groups `1..`, which form a tree of fan-out 4 under group 1 (group `g >= 2` is nested
//!   in group `1 + (g - 2) / 4`: `group:parent#member@group:g#member`);
//! - `n / 10 + 1` folders in a tree of fan-out 8 under folder 0; every tenth folder has a user
//!   viewer, every fiftieth a group viewer;
//! - document `d` is in folder `d % folders`, has two user viewers, a group viewer one time in
//!   three, and bans one user one time in a hundred.
//!
//! `user:0` is in group 0, which views folder 0, so it sees every document not banning it:
//! the "user who sees almost everything" of the lookup benchmarks. Every other user sees what
//! its direct grants, its groups' grants and the folders below them give: a few hundred
//! documents at 100k.

use lookout_engine::model::{EntityRef, SubjectRef, Tuple};

use crate::rng::Rng;

pub const SCHEMA: &str = r#"
entity user {}

entity group {
    relation member @user @group#member
}

entity folder {
    relation parent @folder
    relation viewer @user @group#member
    permission view = viewer or parent.view
}

entity document {
    relation folder @folder
    relation viewer @user @group#member
    relation banned @user
    permission view = (viewer or folder.view) not banned
}
"#;

/// Sizes derived from the document count.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    pub documents: u64,
    pub users: u64,
    pub groups: u64,
    pub folders: u64,
}

impl Shape {
    pub fn new(documents: u64) -> Shape {
        Shape {
            documents,
            users: (documents / 10).max(2),
            groups: documents / 100 + 2,
            folders: documents / 10 + 1,
        }
    }
}

fn plain(ty: &str, id: u64) -> SubjectRef {
    SubjectRef::user(ty, id.to_string())
}

fn members(group: u64) -> SubjectRef {
    SubjectRef::new("group", group.to_string(), Some("member".to_string()))
}

fn tuple(ty: &str, id: u64, relation: &str, subject: SubjectRef) -> Tuple {
    Tuple::new(EntityRef::new(ty, id.to_string()), relation, subject)
}

/// Generates the tuples for `documents` documents, deterministically for `seed`, in batches of
/// at most `batch` tuples handed to `sink` (so a 1M-document set never sits in memory twice).
pub fn generate(documents: u64, seed: u64, batch: usize, mut sink: impl FnMut(Vec<Tuple>)) {
    let shape = Shape::new(documents);
    let mut rng = Rng::new(seed);
    let mut out = Vec::with_capacity(batch);
    let mut push = |t: Tuple, out: &mut Vec<Tuple>| {
        out.push(t);
        if out.len() >= batch {
            sink(std::mem::take(out));
        }
    };
    for u in 0..shape.users {
        let group = if u == 0 {
            0
        } else {
            1 + rng.below(shape.groups - 1)
        };
        push(tuple("group", group, "member", plain("user", u)), &mut out);
    }
    for g in 2..shape.groups {
        push(
            tuple("group", 1 + (g - 2) / 4, "member", members(g)),
            &mut out,
        );
    }
    push(tuple("folder", 0, "viewer", members(0)), &mut out);
    for f in 1..shape.folders {
        push(
            tuple("folder", f, "parent", plain("folder", (f - 1) / 8)),
            &mut out,
        );
        if f % 10 == 0 {
            let user = rng.below(shape.users);
            push(tuple("folder", f, "viewer", plain("user", user)), &mut out);
        }
        if f % 50 == 0 {
            let group = 1 + rng.below(shape.groups - 1);
            push(tuple("folder", f, "viewer", members(group)), &mut out);
        }
    }
    for d in 0..documents {
        push(
            tuple("document", d, "folder", plain("folder", d % shape.folders)),
            &mut out,
        );
        for _ in 0..2 {
            let user = rng.below(shape.users);
            push(
                tuple("document", d, "viewer", plain("user", user)),
                &mut out,
            );
        }
        if rng.one_in(3) {
            let group = 1 + rng.below(shape.groups - 1);
            push(tuple("document", d, "viewer", members(group)), &mut out);
        }
        if rng.one_in(100) {
            let user = rng.below(shape.users);
            push(
                tuple("document", d, "banned", plain("user", user)),
                &mut out,
            );
        }
    }
    if !out.is_empty() {
        sink(out);
    }
}
