//! Runs the validation files: Lookout's own fixtures (`fixtures/features`, `fixtures/errors`) and,
//! when `../shared` is beside the repository, the Permify-shaped conformance files in
//! `../shared/conformance/permify-shapes` (see `fixtures/shared.rs`: skipped without `../shared`,
//! a failure under CI).
//!
//! - every feature and conformance file passes;
//! - every error file fails with the error its `# expect-error:` line names (see
//!   `fixtures/README.md`);
//! - flipping any single assertion of a passing file makes exactly that assertion fail, so
//!   every assertion is one the engine has to get right.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail by panicking"
)]

use std::fs;
use std::path::{Path, PathBuf};

use lookout_engine::validation::{self, Answer, ValidationError, ValidationFile};

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn features_dir() -> PathBuf {
    manifest_dir().join("../fixtures/features")
}

fn errors_dir() -> PathBuf {
    manifest_dir().join("../fixtures/errors")
}

include!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../fixtures/shared.rs"
));

/// The conformance files' directory, when `../shared` is there (`test` names the caller).
fn conformance_dir(test: &str) -> Option<PathBuf> {
    shared_path(test, "conformance/permify-shapes")
}

/// The `.yaml` files of a directory, sorted; fails if there are none.
fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let entries = fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .collect();
    files.sort();
    assert!(
        !files.is_empty(),
        "no validation files in {}",
        dir.display()
    );
    files
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The feature files, and the conformance files when `../shared` is there.
fn passing_files(test: &str) -> Vec<PathBuf> {
    let mut files = yaml_files(&features_dir());
    if let Some(dir) = conformance_dir(test) {
        files.extend(yaml_files(&dir));
    }
    files
}

#[test]
fn feature_and_conformance_files_pass() {
    let mut problems = Vec::new();
    for path in passing_files("feature_and_conformance_files_pass") {
        let name = path.display();
        match validation::run(&read(&path)) {
            Ok(report) => {
                for failure in report.failures() {
                    problems.push(format!("{name}: {failure}"));
                }
                if path.starts_with(features_dir()) {
                    if report.outcomes.is_empty() {
                        problems.push(format!("{name}: asserts nothing"));
                    }
                    for warning in &report.warnings {
                        problems.push(format!("{name}: warning: {warning}"));
                    }
                }
            }
            Err(e) => problems.push(format!("{name}: {e}")),
        }
    }
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}

#[test]
fn feature_files_assert_both_ways() {
    for path in yaml_files(&features_dir()) {
        let report = validation::run(&read(&path)).unwrap();
        let wants: Vec<String> = report.outcomes.iter().map(|o| o.want.to_string()).collect();
        let checks_true = wants.iter().any(|w| w == "true");
        let checks_false = wants.iter().any(|w| w == "false");
        let lists = wants.iter().any(|w| w.starts_with('['));
        assert!(
            (checks_true && checks_false) || lists,
            "{}: needs both true and false expectations",
            path.display()
        );
    }
}

/// `# expect-error: KIND [LINE[:COL]] [TEXT]`, parsed.
struct Expected {
    kind: String,
    line: Option<usize>,
    column: Option<usize>,
    text: String,
}

fn expected_error(path: &Path, source: &str) -> Expected {
    let line = source
        .lines()
        .find_map(|l| l.strip_prefix("# expect-error:"))
        .unwrap_or_else(|| panic!("{}: no `# expect-error:` line", path.display()));
    let mut words = line.split_whitespace();
    let kind = words.next().expect("a kind").to_string();
    let mut rest: Vec<&str> = words.collect();
    let (mut line, mut column) = (None, None);
    if let Some(first) = rest.first() {
        let mut parts = first.splitn(2, ':');
        if let Some(Ok(l)) = parts.next().map(str::parse::<usize>) {
            line = Some(l);
            column = parts.next().map(|c| c.parse::<usize>().expect("a column"));
            rest.remove(0);
        }
    }
    Expected {
        kind,
        line,
        column,
        text: rest.join(" "),
    }
}

#[test]
fn error_files_fail_as_expected() {
    let mut problems = Vec::new();
    for path in yaml_files(&errors_dir()) {
        let source = read(&path);
        let want = expected_error(&path, &source);
        let name = path.display();
        let err = match validation::run(&source) {
            Ok(report) => {
                problems.push(format!(
                    "{name}: ran ({} assertions)",
                    report.outcomes.len()
                ));
                continue;
            }
            Err(e) => e,
        };
        let (kind, line, column) = match &err {
            ValidationError::Schema { error, position } => (
                format!("{:?}", error.kind),
                position.map(|p| p.line as usize),
                position.map(|p| p.column as usize),
            ),
            ValidationError::Yaml { line, column, .. } => ("Yaml".to_string(), *line, *column),
            ValidationError::Data { what, line, .. } => (format!("Data:{what}"), *line, None),
            ValidationError::UnknownKeys(_) => ("UnknownKeys".to_string(), None, None),
            other => (format!("{other:?}"), None, None),
        };
        let message = err.to_string();
        if kind != want.kind
            || line != want.line
            || column != want.column
            || !message.contains(&want.text)
        {
            problems.push(format!(
                "{name}: want {} {:?}:{:?} containing `{}`, got {kind} {line:?}:{column:?}: {message}",
                want.kind, want.line, want.column, want.text
            ));
        }
    }
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}

/// Flips the `k`-th assertion with a value (in report order): a boolean is negated, a list loses
/// its last ID (or gains one when empty). Returns false when there are fewer assertions.
fn flip(file: &mut ValidationFile, k: usize) -> bool {
    let mut seen = 0;
    let mut hit = |present: bool| {
        if !present {
            return false;
        }
        seen += 1;
        seen == k + 1
    };
    let flip_ids = |ids: &mut Vec<String>| {
        if ids.pop().is_none() {
            ids.push("flipped".to_string());
        }
    };
    for scenario in &mut file.scenarios {
        for check in &mut scenario.checks {
            for (_, value) in &mut check.assertions.0 {
                if hit(value.is_some()) {
                    *value = value.map(|b| !b);
                    return true;
                }
            }
        }
        for filter in &mut scenario.entity_filters {
            for (_, value) in &mut filter.assertions.0 {
                if hit(value.is_some()) {
                    if let Some(ids) = value {
                        flip_ids(ids);
                    }
                    return true;
                }
            }
        }
        for filter in &mut scenario.subject_filters {
            for (_, value) in &mut filter.assertions.0 {
                if hit(value.is_some()) {
                    if let Some(ids) = value {
                        flip_ids(ids);
                    }
                    return true;
                }
            }
        }
    }
    false
}

#[test]
fn flipping_any_assertion_fails_exactly_that_assertion() {
    // One directory per process: two runs of the suite at once must not share files.
    let tmp =
        PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("flipped-{}", std::process::id()));
    fs::create_dir_all(&tmp).unwrap();
    let mut problems = Vec::new();
    let mut flipped_files = 0;
    for path in passing_files("flipping_any_assertion_fails_exactly_that_assertion") {
        let original = validation::parse(&read(&path)).unwrap().file;
        let stem = path.file_stem().unwrap().to_string_lossy().to_string();
        for k in 0.. {
            let mut file = original.clone();
            if !flip(&mut file, k) {
                break;
            }
            let copy = tmp.join(format!("{stem}.flip{k}.yaml"));
            fs::write(&copy, serde_norway::to_string(&file).unwrap()).unwrap();
            let report = match validation::run(&read(&copy)) {
                Ok(report) => report,
                Err(e) => {
                    problems.push(format!("{}: {e}", copy.display()));
                    continue;
                }
            };
            let failed: Vec<usize> = report
                .outcomes
                .iter()
                .enumerate()
                .filter(|(_, o)| !o.passed)
                .map(|(i, _)| i)
                .collect();
            if failed != [k] {
                problems.push(format!(
                    "{}: flipping assertion {k} failed {failed:?}",
                    copy.display()
                ));
            }
            flipped_files += 1;
        }
    }
    let _ = fs::remove_dir_all(&tmp);
    assert!(flipped_files > 0);
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}

#[test]
fn too_small_a_depth_fails_deep_checks() {
    let mut file = validation::parse(&read(&features_dir().join("depth.yaml")))
        .unwrap()
        .file;
    for check in file.scenarios.iter_mut().flat_map(|s| s.checks.iter_mut()) {
        check.depth = Some(3);
    }
    let report = validation::run(&serde_norway::to_string(&file).unwrap()).unwrap();
    for outcome in &report.outcomes {
        let deep = outcome.asked.starts_with("check folder:8#view@user:root")
            || outcome
                .asked
                .starts_with("check folder:8#view@user:stranger");
        let exhausted = matches!(&outcome.got, Answer::Error(e) if e.contains("depth"));
        assert_eq!(deep, exhausted, "{outcome}");
        assert_eq!(outcome.passed, !deep, "{outcome}");
    }
}
