//! `lookout import` and `lookout export` against an in-process server: a generated file of a few
//! thousand lines goes in and comes back out the same, an interrupted import resumes without
//! repeating a batch, and a bad line stops the import with its line number after committing
//! everything before it.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail by panicking"
)]

use crate::transport::common;

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use lookout_proto::v1;
use lookout_server::auth::AuthnMethod;
use lookout_server::data_file::{self, ConnectArgs, DatabaseArgs, Format, Secret};
use lookout_server::export_cmd::{self, ExportArgs};
use lookout_server::import_cmd::{self, ImportArgs};
use lookout_server::serve::Handle;

const SCHEMA: &str = "entity user {}

entity group {
    relation member @user
}

entity doc {
    relation owner @user
    relation viewer @user @group#member
    attribute public boolean
    attribute tags string[]
    attribute level integer
}
";

/// A fresh directory for one test's files, removed when the test ends.
fn scratch(test: &str) -> crate::scratch::Scratch {
    crate::scratch::scratch(&format!("import-export-{test}"))
}

/// `n` lines mixing text and JSON tuples and attributes, with a comment and blank lines.
fn generate(n: usize) -> Vec<String> {
    let mut lines = vec![
        "// generated for the import tests".to_string(),
        String::new(),
    ];
    for i in 0..n {
        let line = match i % 6 {
            0 => format!("doc:{}#owner@user:{}", i, i % 97),
            1 => format!("doc:{}#viewer@group:{}#member", i / 7, i % 13),
            2 => format!("group:{}#member@user:{}", i % 13, i),
            3 => format!("doc:{}$public|boolean:{}", i, i % 2 == 0),
            4 => {
                let item =
                    data_file::parse_line(&format!("doc:{i}$tags|string[]:a{i},b"), None).unwrap();
                data_file::format_line(&item, Format::Json).unwrap()
            }
            _ => {
                let item = data_file::parse_line(&format!("doc:{}#viewer@user:{}", i, i + 1), None)
                    .unwrap();
                data_file::format_line(&item, Format::Json).unwrap()
            }
        };
        lines.push(line);
    }
    lines.push(format!("doc:{}$level|integer:{}", 1, 42));
    lines
}

fn write_lines(path: &Path, lines: &[String]) {
    fs::write(path, lines.join("\n") + "\n").unwrap();
}

/// The set of items of some lines, as canonical JSON lines.
fn items_of(lines: &[String]) -> BTreeSet<String> {
    lines
        .iter()
        .filter(|l| !data_file::is_skipped(l))
        .map(|l| {
            let item = data_file::parse_line(l, None).unwrap();
            data_file::format_line(&item, Format::Json).unwrap()
        })
        .collect()
}

async fn start() -> Handle {
    start_with(common::test_config()).await
}

async fn start_with(config: lookout_server::config::Config) -> Handle {
    let handle = common::start_with(config).await;
    handle
        .service
        .schema_write(v1::SchemaWriteRequest {
            tenant_id: "t1".into(),
            schema: SCHEMA.into(),
        })
        .await
        .unwrap();
    handle
}

fn connect_args(handle: &Handle) -> ConnectArgs {
    ConnectArgs {
        target: handle.grpc_addr.to_string(),
        tenant: "t1".into(),
        token: None,
    }
}

fn import_args(handle: &Handle, file: &Path, batch_size: u64) -> ImportArgs {
    ImportArgs {
        file: file.to_path_buf(),
        connect: connect_args(handle),
        format: None,
        batch_size,
        restart: false,
        quiet: true,
        stop_after_batches: None,
        database: DatabaseArgs::default(),
        progress: false,
        create_tenant: false,
        revision_size: 100_000,
        stop_before_commit: false,
    }
}

/// Exports the tenant in `format` and returns the lines, checking there are no repeats.
async fn export(handle: &Handle, format: Format) -> Vec<String> {
    let args = ExportArgs {
        file: None,
        database: DatabaseArgs::default(),
        progress: false,
        connect: connect_args(handle),
        format,
        output: None,
        snap_token: None,
        page_size: 100,
        quiet: true,
    };
    let mut out = Vec::new();
    let summary = export_cmd::export(&args, &mut out, false).await.unwrap();
    let lines: Vec<String> = String::from_utf8(out)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(
        lines.len() as u64,
        summary.tuples + summary.attributes,
        "one line per item"
    );
    let unique: BTreeSet<&String> = lines.iter().collect();
    assert_eq!(unique.len(), lines.len(), "no item is exported twice");
    lines
}

#[tokio::test]
async fn an_imported_file_exports_back_as_the_same_set() {
    let dir = scratch("round-trip");
    let handle = start().await;
    let file = dir.join("data.txt");
    let lines = generate(3000);
    write_lines(&file, &lines);
    let expected = items_of(&lines);

    let summary = import_cmd::import(&import_args(&handle, &file, 250), false)
        .await
        .unwrap();
    assert!(!summary.stopped);
    assert_eq!(summary.tuples + summary.attributes, 3001);
    assert_eq!(summary.batches, 13);
    assert!(!summary.snap_token.is_empty());
    assert!(
        !import_cmd::state_path(&file).exists(),
        "a complete import leaves no state"
    );

    let text = export(&handle, Format::Text).await;
    assert_eq!(items_of(&text), expected);
    let json = export(&handle, Format::Json).await;
    assert!(json.iter().all(|l| l.starts_with('{')));
    assert_eq!(items_of(&json), expected);

    // An exported file imports again, and importing twice changes nothing (writes are
    // idempotent).
    let again = dir.join("exported.jsonl");
    write_lines(&again, &json);
    let mut args = import_args(&handle, &again, 1000);
    args.format = Some(Format::Json);
    // Too big a batch for the server's request limit: the error says what to do.
    let err = import_cmd::import(&args, false)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("smaller --batch-size"), "{err}");
    assert!(err.contains("nothing is committed yet"), "{err}");
    args.batch_size = 100;
    import_cmd::import(&args, false).await.unwrap();
    assert_eq!(items_of(&export(&handle, Format::Json).await), expected);

    // Export into a file.
    let out = dir.join("out.txt");
    let args = ExportArgs {
        file: None,
        database: DatabaseArgs::default(),
        progress: false,
        connect: connect_args(&handle),
        format: Format::Text,
        output: Some(out.clone()),
        snap_token: Some(summary.snap_token.clone()),
        page_size: 37,
        quiet: true,
    };
    let written = export_cmd::export_to_file(&args, &out, false)
        .await
        .unwrap();
    assert_eq!(written.tuples + written.attributes, expected.len() as u64);
    let from_file: Vec<String> = fs::read_to_string(&out)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(items_of(&from_file), expected);
    handle.shutdown().await.unwrap();
}

#[tokio::test]
async fn an_interrupted_import_resumes_after_the_last_committed_batch() {
    let dir = scratch("resume");
    let handle = start().await;
    let file = dir.join("data.txt");
    let lines = generate(2000);
    write_lines(&file, &lines);

    let mut args = import_args(&handle, &file, 300);
    args.stop_after_batches = Some(3);
    let first = import_cmd::import(&args, false).await.unwrap();
    assert!(first.stopped);
    assert_eq!(first.batches, 3);
    assert_eq!(first.tuples + first.attributes, 900);
    let state = import_cmd::read_state(&file)
        .unwrap()
        .expect("state recorded");
    // Two leading lines (a comment and a blank) carry nothing.
    assert_eq!(state.line, 902);
    assert_eq!(state.snap_token, first.snap_token);
    assert_eq!(
        items_of(&export(&handle, Format::Text).await),
        items_of(&lines[..902])
    );

    // The state names the tenant: another tenant does not silently resume it.
    let mut other = import_args(&handle, &file, 300);
    other.connect.tenant = "t2".into();
    let err = import_cmd::import(&other, false)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("tenant `t1`"), "{err}");

    // Resuming writes only the rest: no batch is sent twice.
    let rest = import_cmd::import(&import_args(&handle, &file, 300), false)
        .await
        .unwrap();
    assert_eq!(rest.resumed_after_line, 902);
    assert_eq!(rest.tuples + rest.attributes, 2001 - 900);
    assert_eq!(
        items_of(&export(&handle, Format::Json).await),
        items_of(&lines)
    );
    assert!(!import_cmd::state_path(&file).exists());

    // A file edited inside the committed part is refused rather than resumed wrongly.
    let mut args = import_args(&handle, &file, 300);
    args.stop_after_batches = Some(1);
    import_cmd::import(&args, false).await.unwrap();
    let mut edited = lines.clone();
    edited[5] = "doc:9999#owner@user:1".into();
    write_lines(&file, &edited);
    let err = import_cmd::import(&import_args(&handle, &file, 300), false)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("the file changed"), "{err}");
    let mut args = import_args(&handle, &file, 300);
    args.restart = true;
    import_cmd::import(&args, false).await.unwrap();
    handle.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_bad_line_is_named_and_everything_before_it_is_committed() {
    let dir = scratch("bad-line");
    let handle = start().await;
    let file = dir.join("data.txt");
    let mut lines = generate(1500);
    // Line numbers are 1-based: index 1233 is line 1234.
    let good = lines[1233].clone();
    lines[1233] = "doc:1#viewer user:2".into();
    write_lines(&file, &lines);

    let err = import_cmd::import(&import_args(&handle, &file, 100), false)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("data.txt:1234:"), "{err}");
    assert!(err.contains("doc:1#viewer user:2"), "{err}");
    assert_eq!(import_cmd::read_state(&file).unwrap().unwrap().line, 1233);
    assert_eq!(
        items_of(&export(&handle, Format::Text).await),
        items_of(&lines[..1233]),
        "every line before the bad one is on the server"
    );

    // Fixed, the import goes on from that line.
    lines[1233] = good;
    write_lines(&file, &lines);
    let rest = import_cmd::import(&import_args(&handle, &file, 100), false)
        .await
        .unwrap();
    assert_eq!(rest.resumed_after_line, 1233);
    assert_eq!(
        items_of(&export(&handle, Format::Text).await),
        items_of(&lines)
    );

    // A line the schema refuses: the server names the item, the error names its line.
    let refused = dir.join("refused.txt");
    write_lines(
        &refused,
        &[
            "doc:1#owner@user:1".to_string(),
            "doc:1#editor@user:1".to_string(),
        ],
    );
    let err = import_cmd::import(&import_args(&handle, &refused, 100), false)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("lines 1-2"), "{err}");
    assert!(err.contains("line 2)"), "{err}");
    handle.shutdown().await.unwrap();
}

/// An export the server refuses part-way (here, from the first page: the tenant does not
/// exist) leaves neither the output file nor its `FILE.tmp` behind.
#[tokio::test]
async fn a_file_with_a_schema_writes_it_into_a_tenant_without_one() {
    let dir = scratch("schema-section");
    // No schema written.
    let handle = common::start_with(common::test_config()).await;
    let file = dir.join("backup.txt");
    let mut text = data_file::schema_section(SCHEMA);
    text.push_str("doc:1#owner@user:1\ndoc:1$level|integer:3\n");
    fs::write(&file, &text).unwrap();
    let summary = import_cmd::import(&import_args(&handle, &file, 10), false)
        .await
        .unwrap();
    assert_eq!((summary.tuples, summary.attributes), (1, 1));
    let listed = handle
        .service
        .schema_list(v1::SchemaListRequest {
            tenant_id: "t1".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(listed.schemas.len(), 1);

    // A tenant with a schema keeps it: importing again writes no new version.
    import_cmd::import(&import_args(&handle, &file, 10), false)
        .await
        .unwrap();
    let listed = handle
        .service
        .schema_list(v1::SchemaListRequest {
            tenant_id: "t1".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(listed.schemas.len(), 1);
}

#[tokio::test]
async fn a_failed_export_leaves_no_partial_file() {
    let dir = scratch("failed-export");
    let handle = start().await;
    let output = dir.join("backup.txt");
    let args = ExportArgs {
        file: None,
        database: DatabaseArgs::default(),
        progress: false,
        connect: ConnectArgs {
            tenant: "no-such-tenant".into(),
            ..connect_args(&handle)
        },
        format: Format::Text,
        output: Some(output.clone()),
        snap_token: None,
        page_size: 100,
        quiet: true,
    };
    let e = export_cmd::export_to_file(&args, &output, false)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("no-such-tenant"), "{e}");
    let mut tmp = output.as_os_str().to_owned();
    tmp.push(".tmp");
    assert!(!output.exists(), "no output file");
    assert!(!PathBuf::from(tmp).exists(), "no FILE.tmp left behind");
    handle.shutdown().await.unwrap();
}

#[tokio::test]
async fn import_and_export_send_the_bearer_key() {
    let dir = scratch("auth");
    let mut config = common::test_config();
    config.authn.method = AuthnMethod::Preshared;
    config.authn.preshared_keys = vec!["sekret".into()];
    let handle = common::start_with(config).await;
    let mut schema = lookout_proto::v1::schema_client::SchemaClient::new(
        common::channel(handle.grpc_addr).await,
    );
    let mut request = tonic::Request::new(v1::SchemaWriteRequest {
        tenant_id: "t1".into(),
        schema: SCHEMA.into(),
    });
    request
        .metadata_mut()
        .insert("authorization", "Bearer sekret".parse().unwrap());
    schema.write(request).await.unwrap();

    let file = dir.join("data.txt");
    write_lines(&file, &generate(50));
    let err = import_cmd::import(&import_args(&handle, &file, 100), false)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("unauthenticated"), "{err}");

    let mut args = import_args(&handle, &file, 100);
    args.connect.token = Some(Secret("sekret".into()));
    import_cmd::import(&args, false).await.unwrap();
    let export_args = ExportArgs {
        file: None,
        database: DatabaseArgs::default(),
        progress: false,
        connect: args.connect.clone(),
        format: Format::Json,
        output: None,
        snap_token: None,
        page_size: 100,
        quiet: true,
    };
    let mut out = Vec::new();
    let summary = export_cmd::export(&export_args, &mut out, false)
        .await
        .unwrap();
    assert_eq!(summary.tuples + summary.attributes, 51);
    handle.shutdown().await.unwrap();
}

#[test]
fn the_binary_imports_and_exports() {
    let dir = scratch("binary");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let handle = runtime.block_on(start());
    let target = handle.grpc_addr.to_string();
    let file = dir.join("data.txt");
    let lines = generate(600);
    write_lines(&file, &lines);
    let lookout = env!("CARGO_BIN_EXE_lookout");

    let stopped = std::process::Command::new(lookout)
        .args(["import", "--target", &target, "--batch-size", "100"])
        .args(["--stop-after-batches", "2"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(!stopped.status.success());
    let stderr = String::from_utf8_lossy(&stopped.stderr);
    assert!(stderr.contains("run again to resume"), "{stderr}");

    let done = std::process::Command::new(lookout)
        .args(["import", "--target", &target, "--batch-size", "100"])
        .arg(&file)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&done.stderr);
    assert!(done.status.success(), "{stderr}");
    assert!(stderr.contains("resuming after line 202"), "{stderr}");
    assert!(
        !String::from_utf8_lossy(&done.stdout).trim().is_empty(),
        "a snap token"
    );

    let exported = std::process::Command::new(lookout)
        .args(["export", "--quiet", "--format", "json", "--target", &target])
        .output()
        .unwrap();
    assert!(exported.status.success());
    let out: Vec<String> = String::from_utf8(exported.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(items_of(&out), items_of(&lines));
    runtime.block_on(handle.shutdown()).unwrap();
}
