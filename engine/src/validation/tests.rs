use super::*;
use crate::schema::SchemaErrorKind;

const FILE: &str = r#"
schema: |-
    entity user {}
    entity group {
        relation member @user @group#member
    }
    entity doc {
        relation viewer @user @group#member
        attribute public boolean
        permission view = viewer or public
    }

relationships:
  - group:a#member@user:1
  - doc:1#viewer@group:a#member
  - doc:2#viewer@user:2

attributes:
  - doc:3$public|boolean:true

scenarios:
  - name: views
    checks:
      - entity: doc:1
        subject: user:1
        assertions:
          view: true
          viewer: true
      - entity: doc:1
        subject: user:2
        context:
          tuples: [doc:1#viewer@user:2]
        depth: 5
        assertions:
          view: true
    entity_filters:
      - entity_type: doc
        subject: user:1
        assertions:
          view: [3, "1"]
    subject_filters:
      - subject_reference: group#member
        entity: doc:1
        assertions:
          view: [a]
      - subject_reference: user
        entity: doc:2
        context:
        assertions:
          view: ["2"]
"#;

#[test]
fn a_passing_file_reports_every_assertion() {
    let report = run(FILE).unwrap();
    assert!(report.success(), "{report:#?}");
    assert_eq!(report.passed(), 6);
    assert!(report.warnings.is_empty(), "{:?}", report.warnings);
    let asked: Vec<&str> = report.outcomes.iter().map(|o| o.asked.as_str()).collect();
    assert_eq!(
        asked,
        [
            "check doc:1#view@user:1",
            "check doc:1#viewer@user:1",
            "check doc:1#view@user:2 at depth 5 with tuples [doc:1#viewer@user:2]",
            "lookup-entity doc#view@user:1",
            "lookup-subject doc:1#view@group#member",
            "lookup-subject doc:2#view@user",
        ]
    );
    assert_eq!(report.outcomes[0].kind, AssertionKind::Check);
    assert_eq!(report.outcomes[3].kind, AssertionKind::EntityFilter);
    assert_eq!(report.outcomes[5].kind, AssertionKind::SubjectFilter);
}

#[test]
fn failures_say_what_was_wanted_and_got() {
    let flipped = FILE
        .replace("viewer: true", "viewer: false")
        .replace("view: [3, \"1\"]", "view: [3, 4]");
    let report = run(&flipped).unwrap();
    assert_eq!(report.failed(), 2);
    let lines: Vec<String> = report.failures().map(|o| o.to_string()).collect();
    assert_eq!(
        lines[0],
        "scenario \"views\": check doc:1#viewer@user:1: want false, got true"
    );
    assert_eq!(
        lines[1],
        "scenario \"views\": lookup-entity doc#view@user:1: want [3, 4], got [1, 3] (missing `4`, unexpected `1`)"
    );
}

#[test]
fn evaluation_errors_are_failed_assertions() {
    let file = FILE.replace("viewer: true", "nope: true").replace(
        "subject: user:2\n        context",
        "subject: user2\n        context",
    );
    let report = run(&file).unwrap();
    let failures: Vec<&Outcome> = report.failures().collect();
    assert_eq!(failures.len(), 2, "{failures:#?}");
    assert_eq!(failures[0].asked, "check doc:1#nope@user:1");
    assert!(
        matches!(&failures[0].got, Answer::Error(e) if e.contains("no permission, relation or attribute `nope`")),
        "{:?}",
        failures[0].got
    );
    assert!(
        matches!(&failures[1].got, Answer::Error(e) if e.contains("invalid subject `user2`")),
        "{:?}",
        failures[1].got
    );
}

#[test]
fn null_values_and_missing_keys_are_lenient() {
    let source = r#"
schema: |-
    entity user {}
    entity doc {
        relation viewer @user
    }
relationships:
attributes:
scenarios:
  - name: s
    checks:
      - entity: doc:1
        subject: user:1
        context: null
        assertions:
          viewer: false
          checks:
      - entity: doc:1
        subject: user:1
        assertions:
    entity_filters:
    subject_filters: []
"#;
    let report = run(source).unwrap();
    assert_eq!(report.passed(), 1);
    assert_eq!(report.failed(), 0);
    assert_eq!(report.warnings.len(), 2, "{:?}", report.warnings);
    assert!(report.warnings[0].contains("assertion `checks` has no expected value"));
    assert!(report.warnings[1].contains("has no assertions"));

    let report = run("schema: entity user {}\n").unwrap();
    assert!(report.outcomes.is_empty());
    assert!(report.warnings.is_empty());
    let report = run("relationships: []\n").unwrap();
    assert_eq!(report.warnings, ["the file has no `schema`"]);
}

#[test]
fn unknown_keys() {
    let err = run("schema: entity user {}\nrelations: []\nfoo: 1\n").unwrap_err();
    assert_eq!(
        err.to_string(),
        "unknown top-level keys `relations`, `foo` (expected `schema`, `relationships`, `attributes` or `scenarios`)"
    );
    let source = "schema: entity user {}\nscenarios:\n  - name: s\n    check: []\n    checks:\n      - entity: user:1\n        subject: user:1\n        assertion: {}\n";
    let parsed = parse(source).unwrap();
    assert_eq!(
        parsed.warnings,
        [
            "unknown key `check` in `scenarios[0]` is ignored",
            "unknown key `assertion` in `scenarios[0].checks[0]` is ignored"
        ]
    );
}

#[test]
fn unusable_files() {
    assert_eq!(run("").unwrap_err(), ValidationError::Empty);
    assert_eq!(run("# nothing\n").unwrap_err(), ValidationError::Empty);
    assert_eq!(run("- a\n").unwrap_err(), ValidationError::NotAMapping);
    let err = run("schema: [\n").unwrap_err();
    assert!(
        matches!(err, ValidationError::Yaml { line: Some(2), .. }),
        "{err:?}"
    );
    let err = run("schema: x\nscenarios:\n  - checks:\n      - entity: a:1\n        subject: b:1\n        assertions:\n          view: 3\n").unwrap_err();
    assert!(err.to_string().contains("line 7"), "{err}");
    let err = run("schema: x\nscenarios:\n  - checks:\n      - entity: a:1\n        subject: b:1\n        assertions:\n          view: true\n          view: false\n").unwrap_err();
    assert!(
        err.to_string()
            .contains("duplicate entry with key \"view\""),
        "{err}"
    );
}

#[test]
fn schema_errors_are_located_in_the_file() {
    let source = "# leading comment\nschema: |\n    entity user {}\n    entity doc {\n        relation viewer @usr\n    }\n";
    let err = run(source).unwrap_err();
    let ValidationError::Schema { error, position } = &err else {
        panic!("{err:?}");
    };
    assert_eq!(error.kind, SchemaErrorKind::UndefinedEntity);
    assert_eq!(error.span.line, 3);
    assert_eq!(position.map(|p| p.line), Some(5));
    assert_eq!(
        position.map(|p| p.column),
        Some(error.span.column + 4),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        "invalid schema at 5:26 (schema 3:22): undefined entity `usr`"
    );
}

#[test]
fn bad_data_names_the_line() {
    let source = "schema: |\n    entity user {}\n    entity doc {\n        relation viewer @user\n        attribute public boolean\n    }\nrelationships:\n  - doc:1#viewer@user:1\n  - doc:1#owner@user:1\nattributes:\n  - doc:1$public|integer:1\n";
    let err = run(source).unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid relationship `doc:1#owner@user:1` at line 9: entity type `doc` has no relation `owner`"
    );
    let source = source.replace("  - doc:1#owner@user:1\n", "");
    let err = run(&source).unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid attribute `doc:1$public|integer:1` at line 10: attribute `doc$public` is of type `boolean`, got `integer`"
    );
    let source = source.replace("doc:1$public|integer:1", "doc:1$public");
    let err = run(&source).unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid attribute `doc:1$public` at line 10: expected `|type:value` after the attribute name"
    );
}

#[test]
fn rule_failures_are_warnings() {
    let source = r#"
schema: |-
    entity user {}
    entity account {
        relation owner @user
        attribute balance integer
        permission withdraw = owner and enough(balance)
    }
    rule enough(balance integer) {
        balance >= context.data.amount
    }
relationships:
  - account:1#owner@user:1
attributes:
  - account:1$balance|integer:10
scenarios:
  - name: s
    checks:
      - entity: account:1
        subject: user:1
        context:
          data:
            amount: 5
        assertions:
          withdraw: true
      - entity: account:1
        subject: user:1
        assertions:
          withdraw: false
"#;
    let report = run(source).unwrap();
    assert!(report.success(), "{report:#?}");
    assert_eq!(report.warnings.len(), 1, "{:?}", report.warnings);
    assert!(report.warnings[0].contains("a rule failed"));
}

#[test]
fn files_round_trip_through_serde() {
    let parsed = parse(FILE).unwrap();
    let text = serde_norway::to_string(&parsed.file).unwrap();
    assert_eq!(parse(&text).unwrap().file, parsed.file);
}
