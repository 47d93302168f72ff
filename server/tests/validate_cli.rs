//! Runs the built `lookout` binary's `validate` subcommand on fixture files and files of its own.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail by panicking"
)]

use std::fs;
use std::path::PathBuf;
use std::process::{Command, Output};

fn lookout(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lookout"))
        .args(args)
        .output()
        .expect("the lookout binary runs")
}

fn repo_path(relative: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(relative);
    assert!(path.exists(), "{}", path.display());
    path.to_string_lossy().into_owned()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A validation file with one scenario of one check that passes.
const ONE_CHECK: &str = r#"schema: |-
    entity user {}

    entity organization {
        relation admin @user
        relation member @user
        permission view_files = admin or member
    }

relationships:
  - "organization:1#admin@user:1"

scenarios:
  - name: "scenario 1"
    checks:
      - entity: "organization:1"
        subject: "user:1"
        assertions:
          view_files: true
"#;

/// [`ONE_CHECK`], written to a file of this test's own (tests run in parallel); its path.
fn one_check_file(test: &str) -> String {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("validate-cli-{}", std::process::id()));
    fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{test}.yaml"));
    fs::write(&path, ONE_CHECK).unwrap();
    path.to_string_lossy().into_owned()
}

#[test]
fn passing_files_exit_zero() {
    let one_check = one_check_file("passing_files_exit_zero");
    let groups = repo_path("../fixtures/features/nested-groups.yaml");
    let output = lookout(&["validate", &one_check, &groups]);
    let stdout = text(&output.stdout);
    assert!(output.status.success(), "{stdout}{}", text(&output.stderr));
    assert!(
        stdout.contains(&format!("{one_check}: 1 passed, 0 failed\n")),
        "{stdout}"
    );
    assert!(
        stdout.ends_with(" failed\n") && stdout.contains("total: "),
        "{stdout}"
    );
    assert!(!stdout.contains("ok, got"), "{stdout}");

    let output = lookout(&["validate", "--verbose", &one_check]);
    assert!(output.status.success());
    assert!(
        text(&output.stdout).contains(
            "scenario \"scenario 1\": check organization:1#view_files@user:1: ok, got true"
        ),
        "{}",
        text(&output.stdout)
    );
}

#[test]
fn a_flipped_assertion_fails_and_is_named() {
    let flipped = ONE_CHECK.replace("view_files: true", "view_files: false");
    assert_ne!(flipped, ONE_CHECK);
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("validate-cli");
    fs::create_dir_all(&dir).unwrap();
    let path = dir.join("one-check-flipped.yaml");
    fs::write(&path, flipped).unwrap();
    let name = path.to_string_lossy();

    let output = lookout(&["validate", &name]);
    let stdout = text(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains(&format!(
            "{name}:19: scenario \"scenario 1\": check organization:1#view_files@user:1: want false, got true\n"
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("{name}: 0 passed, 1 failed\n")),
        "{stdout}"
    );
    assert!(stdout.ends_with("total: 0 passed, 1 failed\n"), "{stdout}");
}

#[test]
fn a_missing_file_is_reported_and_fails() {
    let one_check = one_check_file("a_missing_file_is_reported_and_fails");
    let output = lookout(&["validate", "no/such/file.yaml", &one_check]);
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("no/such/file.yaml: error: cannot read the file: no such file"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    // The other file still runs.
    let stdout = text(&output.stdout);
    assert!(
        stdout.contains(&format!("{one_check}: 1 passed, 0 failed")),
        "{stdout}"
    );
    assert!(
        stdout.ends_with("total: 1 passed, 0 failed, 1 file invalid\n"),
        "{stdout}"
    );
}

#[test]
fn a_schema_error_gives_its_position() {
    let path = repo_path("../fixtures/errors/undefined-member.yaml");
    let output = lookout(&["validate", &path]);
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "{path}: error: invalid schema at 7:36 (schema 5:32): undefined relation or permission `editor`"
        )),
        "{stderr}"
    );
}

#[test]
fn usage_errors_exit_two() {
    let output = lookout(&["validate"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        text(&output.stderr).contains("Usage"),
        "{}",
        text(&output.stderr)
    );
}

#[test]
fn strict_files_schema_paths_and_assertion_lines_through_the_binary() {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("validate-cli-strict-{}", std::process::id()));
    fs::create_dir_all(dir.join("schemas")).unwrap();
    let schema = ONE_CHECK
        .split_once("relationships:")
        .unwrap()
        .0
        .trim_start_matches("schema: |-\n")
        .lines()
        .map(str::trim_start)
        .collect::<Vec<_>>()
        .join("\n");
    fs::write(dir.join("schemas/org.perm"), schema).unwrap();
    let by_path = ONE_CHECK
        .replace("view_files: true", "view_files: false")
        .split_once("relationships:")
        .map(|(_, rest)| format!("schema: schemas/org.perm\n\nrelationships:{rest}"))
        .unwrap();
    let path = dir.join("by-path.yaml");
    fs::write(&path, &by_path).unwrap();
    let name = path.to_string_lossy();
    let output = lookout(&["validate", &name]);
    let stdout = text(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(1),
        "{stdout}{}",
        text(&output.stderr)
    );
    let line = by_path
        .lines()
        .position(|l| l.contains("view_files: false"))
        .unwrap()
        + 1;
    assert!(
        stdout.contains(&format!("{name}:{line}: scenario \"scenario 1\"")),
        "{stdout}"
    );

    let typo = dir.join("typo.yaml");
    fs::write(&typo, ONE_CHECK.replace("assertions:", "asertions:")).unwrap();
    let output = lookout(&["validate", &typo.to_string_lossy()]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("error: unknown key `asertions`"),
        "{stderr}"
    );

    let nothing = dir.join("nothing.yaml");
    fs::write(&nothing, ONE_CHECK.split_once("scenarios:").unwrap().0).unwrap();
    let output = lookout(&["validate", &nothing.to_string_lossy()]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("error: the file asserts nothing"),
        "{stderr}"
    );
}
