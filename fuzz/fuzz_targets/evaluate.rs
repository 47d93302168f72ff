//! Evaluation of random schemas over random data with deep structures: the input's bytes
//! choose a schema (entity types whose relations name users, other types and their subject
//! sets; permissions built of `or`, `and`, `not`, references and arrows) and data that includes
//! a chain up to 10,200 links long along one relation. Every read runs on the result: check
//! and subject permission at a depth the input picks, lookup entity (whole and progressive),
//! lookup subject, expand. No input may panic or exhaust the stack; each read answers or
//! returns an `EvalError`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lookout_engine::eval::{Context, Evaluator, Model};
use lookout_engine::index::{Store, WriteBatch};
use lookout_engine::model::{EntityRef, SubjectRef, Tuple};

struct Input<'a> {
    data: &'a [u8],
    at: usize,
}

impl Input<'_> {
    fn byte(&mut self) -> u8 {
        let b = self.data.get(self.at).copied().unwrap_or(0);
        self.at += 1;
        b
    }

    fn below(&mut self, n: usize) -> usize {
        if n == 0 { 0 } else { usize::from(self.byte()) % n }
    }
}

const TYPES: usize = 3;
const RELATIONS: usize = 3;
const PERMISSIONS: usize = 3;

/// The subject types of relation `r` of a type: always `@user`, then what the input picks.
fn subjects(input: &mut Input<'_>) -> Vec<String> {
    let mut out = vec!["@user".to_string()];
    for _ in 0..input.below(3) {
        let t = input.below(TYPES);
        out.push(match input.below(3) {
            0 => format!("@t{t}"),
            1 => format!("@t{t}#r{}", input.below(RELATIONS)),
            _ => format!("@t{t}#p{}", input.below(PERMISSIONS)),
        });
    }
    out
}

/// An expression for permission `p` of a type, at most `budget` operators deep.
fn expr(input: &mut Input<'_>, p: usize, budget: u32) -> String {
    let leaf = |input: &mut Input<'_>| -> String {
        match input.below(4) {
            0 | 1 => format!("r{}", input.below(RELATIONS)),
            // Only earlier permissions: no self-reference without an arrow.
            2 if p > 0 => format!("p{}", input.below(p)),
            _ => format!("r{}.p{}", input.below(RELATIONS), input.below(PERMISSIONS)),
        }
    };
    if budget == 0 {
        return leaf(input);
    }
    match input.below(5) {
        0 => format!("({} or {})", expr(input, p, budget - 1), expr(input, p, budget - 1)),
        1 => format!("({} and {})", expr(input, p, budget - 1), expr(input, p, budget - 1)),
        2 => format!("({} not {})", expr(input, p, budget - 1), expr(input, p, budget - 1)),
        _ => leaf(input),
    }
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input { data, at: 0 };
    let mut schema = String::from("entity user {}\n");
    for t in 0..TYPES {
        schema.push_str(&format!("entity t{t} {{\n"));
        for r in 0..RELATIONS {
            schema.push_str(&format!("    relation r{r} {}\n", subjects(&mut input).join(" ")));
        }
        for p in 0..PERMISSIONS {
            schema.push_str(&format!("    permission p{p} = {}\n", expr(&mut input, p, 3)));
        }
        schema.push_str("}\n");
    }
    let Ok(model) = Model::compile(&schema) else {
        return;
    };

    // A chain along one relation: t:n{i}#r@t:n{i-1} (or its subject set), then a few tuples.
    let mut tuples = Vec::new();
    let chain_type = input.below(TYPES);
    let chain_relation = input.below(RELATIONS);
    let links = usize::from(input.byte()) * 40;
    let subject_set = match input.below(3) {
        0 => String::new(),
        1 => format!("#r{}", input.below(RELATIONS)),
        _ => format!("#p{}", input.below(PERMISSIONS)),
    };
    tuples.push(format!("t{chain_type}:n0#r{chain_relation}@user:alice"));
    for i in 1..links {
        tuples.push(format!(
            "t{chain_type}:n{i}#r{chain_relation}@t{chain_type}:n{}{subject_set}",
            i - 1
        ));
    }
    for _ in 0..input.below(16) {
        let (t, r, e) = (input.below(TYPES), input.below(RELATIONS), input.below(8));
        let subject = match input.below(3) {
            0 => format!("user:u{}", input.below(3)),
            1 => format!("t{}:n{}", input.below(TYPES), input.below(8)),
            _ => format!("t{}:n{}#r{}", input.below(TYPES), input.below(8), input.below(RELATIONS)),
        };
        tuples.push(format!("t{t}:n{e}#r{r}@{subject}"));
    }
    let tuple_writes: Vec<Tuple> = tuples.iter().filter_map(|t| Tuple::parse(t).ok()).collect();
    let store = Store::new();
    let batch = WriteBatch {
        tuple_writes,
        ..WriteBatch::default()
    };
    // Tuples the schema does not allow are refused as a whole batch: then there is no data.
    let snapshot = match store.write(&model.schema, &batch) {
        Ok(outcome) => outcome.snapshot,
        Err(_) => store.head(),
    };
    let ctx = Context::default();
    let Ok(ev) = Evaluator::new(&model, &snapshot, &ctx) else {
        return;
    };
    let depth = 3 + u32::from(input.byte()) * 400;
    // EVALUATE_TRACE=1 prints the schema, the chain and each read's time (for triage of slow
    // or failing inputs).
    let trace = std::env::var_os("EVALUATE_TRACE").is_some();
    if trace {
        eprintln!("{schema}chain: {links} links of t{chain_type}#r{chain_relation}{subject_set}, depth {depth}");
    }
    let timed = |what: &str, f: &mut dyn FnMut()| {
        let started = std::time::Instant::now();
        f();
        if trace {
            eprintln!("{what}: {:?}", started.elapsed());
        }
    };
    let last = format!("n{}", links.saturating_sub(1));
    let alice = SubjectRef::user("user", "alice");
    for t in 0..TYPES {
        let ty = format!("t{t}");
        let entity = EntityRef::new(ty.clone(), last.clone());
        for p in 0..PERMISSIONS {
            let permission = format!("p{p}");
            timed(&format!("check {ty}.{permission}"), &mut || {
                let _ = ev.check(&entity, &permission, &alice, depth);
            });
            timed(&format!("lookup entity {ty}.{permission}"), &mut || {
                let _ = ev.lookup_entity(&ty, &permission, &alice);
            });
            timed(&format!("progressive lookup {ty}.{permission}"), &mut || {
                let _ = ev.lookup_entity_progressive(&ty, &permission, &alice, 64, |_| {});
            });
            timed(&format!("lookup subject {ty}.{permission}"), &mut || {
                let _ = ev.lookup_subject(&entity, &permission, "user", None);
            });
            timed(&format!("expand {ty}.{permission}"), &mut || {
                let _ = ev.expand(&entity, &permission);
            });
        }
        timed(&format!("subject permission {ty}"), &mut || {
            let _ = ev.subject_permission(&entity, &alice, false, depth);
        });
    }
});
