//! The server's layers point down: every `crate::X` reference in `server/src` (outside comments)
//! names a module of the same layer or of a lower one, and the top-level modules have no import
//! cycle. The layers are the table below, lowest first; ARCHITECTURE.md ("The server's
//! layers") describes them. A module missing from the table fails the test, so a new module
//! has to be placed.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail by panicking"
)]

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// Each layer and its top-level modules of `server/src`, lowest first.
const LAYERS: &[(&str, &[&str])] = &[
    ("locks", &["sync"]),
    ("errors", &["error"]),
    ("units", &["units"]),
    ("result cache", &["cache"]),
    ("tenants", &["tenants"]),
    ("storage", &["storage"]),
    ("service", &["service"]),
    (
        "transport parts",
        &[
            "transport",
            "auth",
            "limits",
            "metrics",
            "tls",
            "connections",
        ],
    ),
    ("gate", &["gate"]),
    ("transports", &["grpc", "http"]),
    ("telemetry", &["telemetry"]),
    ("config", &["config"]),
    ("command parts", &["data_file", "progress"]),
    (
        "commands",
        &[
            "serve",
            "validate_cmd",
            "import_cmd",
            "export_cmd",
            "schema_cmd",
        ],
    ),
    ("cli", &["cli", "main", "lib"]),
];

/// Imports that point up or close a cycle, each with the reason it is still there. Each entry
/// is (importing module, imported module).
const EXCEPTIONS: &[(&str, &str)] = &[];

fn layer_of(module: &str) -> Option<(usize, &'static str)> {
    LAYERS
        .iter()
        .enumerate()
        .find(|(_, (_, modules))| modules.contains(&module))
        .map(|(i, (name, _))| (i, *name))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|e| e.expect("a directory entry").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a file of `server/src` belongs to (`storage/postgres/mod.rs` is
/// `storage`).
fn module_of(relative: &Path) -> String {
    let first = relative
        .components()
        .next()
        .expect("a path inside server/src")
        .as_os_str()
        .to_string_lossy()
        .into_owned();
    first.trim_end_matches(".rs").to_owned()
}

/// The modules `text` names after `crate::` on each line, outside comments: `crate::a::b` is
/// `a`, `crate::{a, b::c}` is `a` and `b`.
fn references(text: &str) -> Vec<(usize, String)> {
    // Full-line comments (doc links included) become empty, keeping line numbers.
    let code: String = text
        .lines()
        .map(|l| {
            if l.trim_start().starts_with("//") {
                ""
            } else {
                l
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    let line_at = |offset: usize| code[..offset].matches('\n').count() + 1;
    let mut found = Vec::new();
    let mut from = 0;
    while let Some(at) = code[from..].find("crate::") {
        let start = from + at;
        from = start + "crate::".len();
        // `lookout_crate::` or similar is not this crate.
        if code[..start]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_alphanumeric() || c == '_')
        {
            continue;
        }
        let rest = &code[from..];
        if let Some(group) = rest.strip_prefix('{') {
            // Split the group at its top-level commas; each item starts with a module name.
            let mut depth = 0;
            let mut items = vec![String::new()];
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => items.push(String::new()),
                    _ => {}
                }
                if let Some(item) = items.last_mut()
                    && !(c == ',' && depth == 0)
                {
                    item.push(c);
                }
            }
            for item in items {
                let name: String = item
                    .trim_start()
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if !name.is_empty() {
                    found.push((line_at(start), name));
                }
            }
        } else {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                found.push((line_at(start), name));
            }
        }
    }
    found
}

#[test]
fn modules_import_only_from_their_layer_or_below() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    assert!(files.len() > 20, "found only {} files", files.len());
    let mut problems = Vec::new();
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for path in &files {
        let relative = path.strip_prefix(&src).expect("a file under server/src");
        let module = module_of(relative);
        let Some((from_layer, from_name)) = layer_of(&module) else {
            problems.push(format!(
                "server/src/{}: module `{module}` is in no layer of the table in server/tests/layering.rs",
                relative.display()
            ));
            continue;
        };
        let text = fs::read_to_string(path).expect("a readable source file");
        for (line, target) in references(&text) {
            if target == module {
                continue;
            }
            graph
                .entry(module.clone())
                .or_default()
                .insert(target.clone());
            let Some((to_layer, to_name)) = layer_of(&target) else {
                problems.push(format!(
                    "server/src/{}:{line}: `crate::{target}` is in no layer of the table",
                    relative.display()
                ));
                continue;
            };
            if to_layer > from_layer && !EXCEPTIONS.contains(&(module.as_str(), target.as_str())) {
                problems.push(format!(
                    "server/src/{}:{line}: `{module}` ({from_name}) imports `crate::{target}` ({to_name}), a layer above it",
                    relative.display()
                ));
            }
        }
    }
    // Within a layer imports are allowed, but not in a circle.
    for start in graph.keys() {
        let mut path = vec![start.clone()];
        if let Some(cycle) = cycle_from(start, &graph, &mut path)
            && !cycle
                .windows(2)
                .any(|w| EXCEPTIONS.contains(&(w[0].as_str(), w[1].as_str())))
        {
            problems.push(format!("import cycle: {}", cycle.join(" -> ")));
        }
    }
    problems.sort();
    problems.dedup();
    assert!(
        problems.is_empty(),
        "the layering is broken:\n{}",
        problems.join("\n")
    );
}

/// A path of imports from `path`'s last module back to its first, if there is one.
fn cycle_from(
    start: &str,
    graph: &BTreeMap<String, BTreeSet<String>>,
    path: &mut Vec<String>,
) -> Option<Vec<String>> {
    let current = path.last().cloned().expect("a non-empty path");
    for next in graph.get(&current).into_iter().flatten() {
        if next == start {
            let mut cycle = path.clone();
            cycle.push(next.clone());
            return Some(cycle);
        }
        if path.contains(next) {
            continue;
        }
        path.push(next.clone());
        if let Some(found) = cycle_from(start, graph, path) {
            return Some(found);
        }
        path.pop();
    }
    None
}

#[test]
fn references_are_read_from_code_only() {
    let text = "use crate::a::B;\n/// see [`crate::z`]\nuse crate::{b, c::D,\n    d::{E, F}};\nlet x = lookout_crate::q;\n    crate::e::f();\n";
    let found: Vec<(usize, String)> = references(text);
    let names: Vec<&str> = found.iter().map(|(_, n)| n.as_str()).collect();
    assert_eq!(names, ["a", "b", "c", "d", "e"]);
    assert_eq!(found[0].0, 1);
    assert_eq!(found[4].0, 6);
}
