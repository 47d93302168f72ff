//! `lookout export` and `lookout import` straight out of and into PostgreSQL
//! (`--database-uri`): a round trip restores the same answers in a fresh database, a running
//! server sees an import through its tailer and Watch reports it once, an import stopped
//! before COMMIT wrote nothing and runs again to exactly the data once, an import that breaks
//! the schema names the line and writes nothing, and a failed or interrupted export leaves no
//! `FILE.tmp`.

use std::fs;
use std::path::{Path, PathBuf};

use crate::scratch::Scratch;
use std::time::Duration;

use lookout_proto::v1;
use lookout_server::data_file::{ConnectArgs, DatabaseArgs, Format};
use lookout_server::export_cmd::{self, ExportArgs};
use lookout_server::import_cmd::{self, ImportArgs, ImportError};
use lookout_server::progress::Progress;
use lookout_server::service::Service;
use lookout_server::storage::postgres::migrate::{self, MigrateAction};
use sqlx::Connection;

use super::cluster::Cluster;
use super::support::*;

const ALL_TYPES: &str = "entity user {}

entity team {
    relation member @user
}

entity doc {
    relation owner @user
    relation viewer @user @team#member
    attribute public boolean
    attribute title string
    attribute level integer
    attribute score double
    attribute flags boolean[]
    attribute tags string[]
    attribute sizes integer[]
    attribute weights double[]
    permission view = owner or viewer or public
}
";

fn scratch(test: &str) -> Scratch {
    crate::scratch::scratch(&format!("bulk-{test}"))
}

fn connect() -> ConnectArgs {
    ConnectArgs {
        target: "127.0.0.1:1".into(),
        tenant: "t1".into(),
        token: None,
    }
}

fn database(uri: &str) -> DatabaseArgs {
    DatabaseArgs {
        database_uri: Some(uri.to_owned()),
        config: None,
    }
}

fn export_args(uri: &str, file: &Path) -> ExportArgs {
    ExportArgs {
        file: Some(file.to_path_buf()),
        connect: connect(),
        database: database(uri),
        format: Format::Json,
        output: None,
        snap_token: None,
        page_size: 100,
        quiet: true,
        progress: false,
    }
}

fn import_args(uri: &str, file: &Path) -> ImportArgs {
    ImportArgs {
        file: file.to_path_buf(),
        connect: connect(),
        database: database(uri),
        format: None,
        batch_size: 500,
        restart: false,
        quiet: true,
        stop_after_batches: None,
        progress: false,
        create_tenant: false,
        revision_size: 100_000,
        stop_before_commit: false,
    }
}

fn quiet() -> Progress {
    Progress::new("test", false, true)
}

/// A fresh, migrated database.
async fn fresh() -> String {
    let uri = Cluster::get().database().await;
    migrate::execute(&uri, MigrateAction::Up).await.unwrap();
    uri
}

async fn write_all_types(s: &Service) -> String {
    s.schema_write(v1::SchemaWriteRequest {
        tenant_id: "t1".into(),
        schema: ALL_TYPES.into(),
    })
    .await
    .unwrap();
    let mut tuples: Vec<String> = Vec::new();
    for i in 0..200 {
        tuples.push(format!("doc:{i}#owner@user:u{}", i % 17));
        tuples.push(format!("doc:{i}#viewer@team:t{}#member", i % 5));
        tuples.push(format!("team:t{}#member@user:m{i}", i % 5));
    }
    let tuples: Vec<&str> = tuples.iter().map(String::as_str).collect();
    write(s, &tuples, &[]).await.unwrap();
    write(
        s,
        &[],
        &[
            "doc:1$public|boolean:true",
            "doc:2$public|boolean:false",
            "doc:1$title|string:Quarterly report",
            "doc:1$level|integer:-42",
            "doc:1$score|double:0.125",
            "doc:1$flags|boolean[]:true,false",
            "doc:1$tags|string[]:a,b c",
            "doc:1$sizes|integer[]:1,2,3",
            "doc:1$weights|double[]:1.5,-2.25",
            "doc:3$sizes|integer[]:0",
        ],
    )
    .await
    .unwrap()
}

/// Everything a reader can see of `t1`: tuples, attributes, and `doc.view` for a few pairs.
async fn state(s: &Service, snap: &str) -> (Vec<String>, Vec<String>, Vec<bool>) {
    let tuples = read_all(s, snap).await;
    let attributes = read_attributes(s).await;
    let mut checks = Vec::new();
    for (doc, user) in [
        ("doc:1", "user:u1"),
        ("doc:1", "user:m1"),
        ("doc:3", "user:m3"),
        ("doc:3", "user:u1"),
        ("doc:2", "user:nobody"),
        ("doc:1", "user:nobody"),
    ] {
        checks.push(check(s, doc, user, snap).await);
    }
    (tuples, attributes, checks)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_export_imported_into_a_fresh_database_answers_the_same() {
    let dir = scratch("round-trip");
    let uri = Cluster::get().database().await;
    let source = postgres_at(pg_options(&uri)).await;
    let snap = write_all_types(&source.service).await;
    let before = state(&source.service, &snap).await;
    assert_eq!(before.0.len(), 600);
    assert_eq!(before.1.len(), 10);
    assert!(before.2[0] && before.2[1] && !before.2[4] && before.2[5]);

    let file = dir.join("backup.jsonl");
    let exported = export_cmd::direct::export_to(&export_args(&uri, &file), &uri, &mut quiet())
        .await
        .unwrap();
    assert_eq!(exported.items.tuples, 600);
    assert_eq!(exported.items.attributes, 10);
    assert!(exported.schema_version.is_some());
    assert!(!dir.join("backup.jsonl.tmp").exists());
    let text = fs::read_to_string(&file).unwrap();
    assert!(
        text.contains("// lookout-schema-begin\n//| entity user {}\n//|\n"),
        "{text}"
    );

    // A fresh database: tenant t1 without a schema; the file's is written first.
    let target = fresh().await;
    let summary = import_cmd::direct::import(&import_args(&target, &file), &target, &mut quiet())
        .await
        .unwrap();
    assert!(summary.schema_written);
    assert_eq!(summary.written.tuples, 600);
    assert_eq!(summary.written.attributes, 10);
    assert_eq!(summary.written.revisions, Some((1, 1)));
    let restored = postgres_at(pg_options(&target)).await;
    let after = state(&restored.service, &summary.snap_token).await;
    assert_eq!(after, before);

    // The restored database exports the same lines (in any order) and the same schema.
    let again = dir.join("again.jsonl");
    export_cmd::direct::export_to(&export_args(&target, &again), &target, &mut quiet())
        .await
        .unwrap();
    let lines = |p: &Path| {
        let mut l: Vec<String> = fs::read_to_string(p)
            .unwrap()
            .lines()
            .filter(|l| !l.starts_with("// lookout export"))
            .map(str::to_owned)
            .collect();
        l.sort();
        l
    };
    assert_eq!(lines(&file), lines(&again));
}

/// The file line of the first line after the schema section of `docs_file`.
fn first_data_line() -> u64 {
    lookout_server::data_file::schema_section(ALL_TYPES)
        .lines()
        .count() as u64
        + 1
}

/// A file of `n` docs with an owner each, under the ALL_TYPES schema section.
fn docs_file(dir: &Path, n: usize, extra: &[&str]) -> PathBuf {
    let mut text = lookout_server::data_file::schema_section(ALL_TYPES);
    for i in 0..n {
        text.push_str(&format!("doc:d{i}#owner@user:o{i}\n"));
    }
    text.push_str("doc:d0$level|integer:7\n");
    for line in extra {
        text.push_str(line);
        text.push('\n');
    }
    let file = dir.join("docs.txt");
    fs::write(&file, text).unwrap();
    file
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_server_sees_an_import_and_watch_reports_it_once() {
    let dir = scratch("tailer");
    let uri = fresh().await;
    let server = postgres_at(pg_options(&uri)).await;
    let other = postgres_at(pg_options(&uri)).await;
    let mut rx = watch(&server.service, "").await.unwrap();
    let file = docs_file(&dir, 10, &[]);
    let mut args = import_args(&uri, &file);
    args.revision_size = 4;
    let summary = import_cmd::direct::import(&args, &uri, &mut quiet())
        .await
        .unwrap();
    // 10 tuples and 1 attribute: revisions of 4, 4 and 3 changes.
    assert_eq!(summary.written.revisions, Some((1, 3)));
    let messages = next_messages(&mut rx, 3).await;
    let mut seen: Vec<String> = messages.iter().flat_map(|(l, _)| l.clone()).collect();
    seen.sort();
    let mut expected: Vec<String> = (0..10)
        .map(|i| format!("+doc:d{i}#owner@user:o{i}"))
        .collect();
    expected.push("+doc:d0$level|integer:7".to_owned());
    expected.sort();
    assert_eq!(seen, expected);
    assert_eq!(messages[2].1, summary.snap_token);
    for s in [&server.service, &other.service] {
        assert_eq!(read_all(s, &summary.snap_token).await.len(), 10);
        assert!(check(s, "doc:d3", "user:o3", &summary.snap_token).await);
    }

    // The same file again changes nothing and writes no revision; the next write is 4.
    let again = import_cmd::direct::import(&args, &uri, &mut quiet())
        .await
        .unwrap();
    assert_eq!(again.written, Default::default());
    assert_eq!(again.snap_token, summary.snap_token);
    let token = write(&server.service, &["doc:d0#viewer@user:x"], &[])
        .await
        .unwrap();
    let next = next_messages(&mut rx, 1).await;
    assert_eq!(next[0].0, ["+doc:d0#viewer@user:x"]);
    assert_eq!(next[0].1, token);

    // A file overlapping the tenant writes only what is new, and changed values.
    let file = docs_file(
        &dir,
        12,
        &["doc:d0$level|integer:8", "doc:d1$public|boolean:true"],
    );
    let third = import_cmd::direct::import(&import_args(&uri, &file), &uri, &mut quiet())
        .await
        .unwrap();
    assert_eq!((third.written.tuples, third.written.attributes), (2, 2));
    let next = next_messages(&mut rx, 1).await;
    assert_eq!(
        next[0].0,
        [
            "+doc:d10#owner@user:o10",
            "+doc:d11#owner@user:o11",
            "+doc:d0$level|integer:8",
            "+doc:d1$public|boolean:true"
        ]
    );
    assert_eq!(read_all(&other.service, &third.snap_token).await.len(), 13);
    assert_eq!(read_attributes(&other.service).await.len(), 2);

    // Deleting the tenant deletes its rows (no foreign key cascades them since migration
    // 0002), so the tenant created again under the same ID starts empty.
    drop(rx);
    server
        .service
        .tenant_delete(v1::TenantDeleteRequest { id: "t1".into() })
        .await
        .unwrap();
    let mut db = sqlx::PgConnection::connect(&uri).await.unwrap();
    for table in [
        "lookout_tuples",
        "lookout_attributes",
        "lookout_entities",
        "lookout_changes",
        "lookout_revisions",
    ] {
        let left: i64 = sqlx::query_scalar(&format!(
            "SELECT count(*) FROM {table} WHERE tenant_id = 't1'"
        ))
        .fetch_one(&mut db)
        .await
        .unwrap();
        assert_eq!(left, 0, "{table}");
    }
    server
        .service
        .tenant_create(v1::TenantCreateRequest {
            id: "t1".into(),
            name: "again".into(),
        })
        .await
        .unwrap();
    let file = docs_file(&dir, 3, &[]);
    let fresh = import_cmd::direct::import(&import_args(&uri, &file), &uri, &mut quiet())
        .await
        .unwrap();
    assert_eq!(fresh.written.revisions, Some((1, 1)));
    assert!(fresh.schema_written);
    assert_eq!(read_all(&server.service, &fresh.snap_token).await.len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_stopped_before_commit_wrote_nothing_and_runs_again_once() {
    let dir = scratch("resume");
    let uri = fresh().await;
    let file = docs_file(&dir, 50, &[]);
    let mut args = import_args(&uri, &file);
    args.stop_before_commit = true;
    args.revision_size = 20;
    let e = import_cmd::direct::import(&args, &uri, &mut quiet())
        .await
        .unwrap_err();
    assert!(e.to_string().contains("nothing was written"), "{e}");
    let server = postgres_at(pg_options(&uri)).await;
    assert!(read_all(&server.service, "").await.is_empty());
    assert!(
        server
            .service
            .schema_list(v1::SchemaListRequest {
                tenant_id: "t1".into(),
                ..Default::default()
            })
            .await
            .unwrap()
            .head
            .is_empty()
    );

    args.stop_before_commit = false;
    let done = import_cmd::direct::import(&args, &uri, &mut quiet())
        .await
        .unwrap();
    assert_eq!(done.written.revisions, Some((1, 3)));
    let again = import_cmd::direct::import(&args, &uri, &mut quiet())
        .await
        .unwrap();
    assert_eq!(again.written.revisions, None);
    // Watch from the start: every change exactly once.
    let start = lookout_engine::tokens::SnapToken { revision: 0 }.encode("t1");
    let mut rx = watch(&server.service, &start).await.unwrap();
    let messages = next_messages(&mut rx, 3).await;
    let mut seen: Vec<String> = messages.into_iter().flat_map(|(l, _)| l).collect();
    let total = seen.len();
    seen.sort();
    seen.dedup();
    assert_eq!((total, seen.len()), (51, 51));
    assert_eq!(read_all(&server.service, &done.snap_token).await.len(), 50);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_that_breaks_the_schema_names_the_line_and_writes_nothing() {
    let dir = scratch("invalid");
    let uri = fresh().await;
    // The schema section, 5 docs and the level; the line after them is wrong.
    let wrong = first_data_line() + 6;
    let file = docs_file(&dir, 5, &["doc:d1#editor@user:x", "doc:d2#owner@user:y"]);
    let e = import_cmd::direct::import(&import_args(&uri, &file), &uri, &mut quiet())
        .await
        .unwrap_err();
    let message = e.to_string();
    assert!(
        matches!(e, ImportError::Invalid { line, .. } if line == wrong),
        "{message}"
    );
    assert!(message.contains(&format!("docs.txt:{wrong}:")), "{message}");
    assert!(message.contains("no relation `editor`"), "{message}");
    assert!(message.contains("nothing was written"), "{message}");
    let wrong = first_data_line() + 3;
    let file = docs_file(&dir, 2, &["doc:d1$level|string:high"]);
    let e = import_cmd::direct::import(&import_args(&uri, &file), &uri, &mut quiet())
        .await
        .unwrap_err();
    assert!(e.to_string().contains(&format!("docs.txt:{wrong}:")), "{e}");
    // Neither the data nor the file's schema was written.
    let server = postgres_at(pg_options(&uri)).await;
    assert!(read_all(&server.service, "").await.is_empty());
    let e = server
        .service
        .schema_read(v1::SchemaReadRequest {
            tenant_id: "t1".into(),
            metadata: None,
        })
        .await;
    assert!(e.is_err());

    // A line that does not parse, and a schema that does not compile, name their lines too.
    let file = docs_file(&dir, 2, &["doc:d1#owner"]);
    let e = import_cmd::direct::import(&import_args(&uri, &file), &uri, &mut quiet())
        .await
        .unwrap_err();
    assert!(e.to_string().contains(&format!("docs.txt:{wrong}:")), "{e}");
    let bad = dir.join("bad-schema.txt");
    fs::write(
        &bad,
        "// lookout-schema-begin\n//| entity user {}\n//| entity doc { relation owner @nobody }\n// lookout-schema-end\n",
    )
    .unwrap();
    let e = import_cmd::direct::import(&import_args(&uri, &bad), &uri, &mut quiet())
        .await
        .unwrap_err();
    assert!(e.to_string().contains("bad-schema.txt:3:"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_or_interrupted_export_leaves_no_partial_file() {
    let dir = scratch("export-fails");
    let uri = fresh().await;
    let file = dir.join("out.txt");
    let mut args = export_args(&uri, &file);
    args.connect.tenant = "nobody".into();
    let e = export_cmd::direct::export_to(&args, &uri, &mut quiet())
        .await
        .unwrap_err();
    assert!(
        e.to_string().contains("tenant `nobody` does not exist"),
        "{e}"
    );
    assert!(!file.exists());
    assert!(!dir.join("out.txt.tmp").exists());

    // SIGINT in the middle of an export: the attributes' table is locked, so the export writes
    // the tuples (more than its 1 MiB buffer) to FILE.tmp and then waits.
    let mut text = lookout_server::data_file::schema_section(ALL_TYPES);
    for i in 0..100_000 {
        text.push_str(&format!("doc:{i}#owner@user:{}\n", i % 1000));
    }
    let big = dir.join("big.txt");
    fs::write(&big, text).unwrap();
    import_cmd::direct::import(&import_args(&uri, &big), &uri, &mut quiet())
        .await
        .unwrap();
    let mut locker = sqlx::PgConnection::connect(&uri).await.unwrap();
    sqlx::query("BEGIN").execute(&mut locker).await.unwrap();
    sqlx::query("LOCK TABLE lookout_attributes IN ACCESS EXCLUSIVE MODE")
        .execute(&mut locker)
        .await
        .unwrap();
    let child = crate::spawn::lookout()
        .args(["export", "--format", "text", "--database-uri", &uri])
        .arg(&file)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let tmp = dir.join("out.txt.tmp");
    let mut waited = 0;
    while fs::metadata(&tmp).map(|m| m.len()).unwrap_or(0) == 0 && waited < 600 {
        tokio::time::sleep(Duration::from_millis(10)).await;
        waited += 1;
    }
    assert!(tmp.exists(), "the export writes FILE.tmp");
    std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(
        stderr.contains("interrupted; nothing was written"),
        "{stderr}"
    );
    assert!(!tmp.exists());
    assert!(!file.exists());
    sqlx::query("ROLLBACK").execute(&mut locker).await.unwrap();

    // Uninterrupted, the command writes the file and says what it wrote.
    let output = crate::spawn::lookout()
        .args(["export", "--database-uri", &uri, "--tenant", "t1"])
        .arg(&file)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(
        stderr.contains("exported 100000 tuples and 0 attributes"),
        "{stderr}"
    );
    assert!(!tmp.exists());
    let lines = fs::read_to_string(&file).unwrap().lines().count();
    assert_eq!(lines as u64, 100_000 + first_data_line());
}
