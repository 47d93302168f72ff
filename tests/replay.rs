//! Every validation file of `fixtures/features` and, when `../shared` is beside the repository,
//! of the Permify-shaped conformance files in `../shared/conformance/permify-shapes`, replayed through the API over each transport and judged with the engine's own
//! [`Expectation::judge`], so the server must give the answers `lookout validate` gives.
//!
//! Per file: a fresh tenant (Tenancy.Create), its schema (Schema.Write), its relationships and
//! attributes in one Data.Write, then every assertion at the write's snap token:
//! - a check is one Permission.Check with the file's context (tuples, attributes, data as a
//!   `Struct`) and depth;
//! - an entity filter is asked twice: LookupEntity in pages of [`PAGE_SIZE`] followed through
//!   their continuous tokens (no ID may come twice), and LookupEntityStream, which is also
//!   resumed from the token of a message halfway and must then yield exactly the rest;
//! - a subject filter is LookupSubject in pages of [`PAGE_SIZE`].

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use lookout_engine::model::{Attribute, Tuple};
use lookout_engine::validation::{Answer, Expectation, Question, expectations, parse};
use lookout_proto::v1;

use crate::harness::{Client, Failure, Transport, msg, start};

/// Small, so that most lookups of the files take several pages.
const PAGE_SIZE: u32 = 3;
/// More pages than any file has: a server that keeps answering continuation tokens is a bug.
const MAX_PAGES: usize = 10_000;

include!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../fixtures/shared.rs"
));

/// The validation files to replay: the feature fixtures, and the Permify-shaped conformance files
/// when `../shared` is there (`test` names the caller; see `fixtures/shared.rs`).
fn files(test: &str) -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut dirs = vec![root.join("../fixtures/features")];
    dirs.extend(shared_path(test, "conformance/permify-shapes"));
    let mut files = Vec::new();
    for dir in dirs {
        let entries = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()));
        let mut found: Vec<PathBuf> = entries
            .map(|entry| entry.expect("a directory entry").path())
            .filter(|p| p.extension().is_some_and(|ext| ext == "yaml"))
            .collect();
        assert!(
            !found.is_empty(),
            "no validation files in {}",
            dir.display()
        );
        found.sort();
        files.extend(found);
    }
    files
}

/// A tenant ID for a file: its name in Permify's tenant alphabet.
fn tenant_for(path: &Path, transport: Transport) -> String {
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let clean: String = stem
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .take(40)
        .collect();
    format!("file-{clean}-{}", transport.to_string().to_lowercase())
}

/// What one replay found.
#[derive(Default)]
struct Tally {
    files: usize,
    assertions: usize,
    failures: Vec<String>,
}

async fn replay_all(test: &str, transport: Transport) {
    let server = start().await;
    let client = Client::connect(transport, &server).await;
    let mut tally = Tally::default();
    for path in files(test) {
        let name = path
            .strip_prefix(Path::new(env!("CARGO_MANIFEST_DIR")).join(".."))
            .unwrap_or(&path)
            .display()
            .to_string();
        tally.files += 1;
        replay_file(&client, &path, &name, &mut tally).await;
    }
    println!(
        "{transport}: replayed {} validation files, {} assertions, {} failures",
        tally.files,
        tally.assertions,
        tally.failures.len()
    );
    assert!(tally.assertions > 100, "too few assertions were asked");
    assert!(
        tally.failures.is_empty(),
        "{} failures over {transport}:\n{}",
        tally.failures.len(),
        tally.failures.join("\n")
    );
    server.shutdown().await.expect("a clean shutdown");
}

async fn replay_file(client: &Client, path: &Path, name: &str, tally: &mut Tally) {
    let transport = client.transport();
    match std::fs::read_to_string(path) {
        Ok(source) => {
            replay_source(client, &source, name, &tenant_for(path, transport), tally).await
        }
        Err(e) => tally
            .failures
            .push(format!("{name} [{transport}]: cannot read: {e}")),
    }
}

/// Replays one file's text on a fresh tenant; `name` labels its failures.
async fn replay_source(client: &Client, source: &str, name: &str, tenant: &str, tally: &mut Tally) {
    let transport = client.transport();
    let mut fail = |what: String| tally.failures.push(format!("{name} [{transport}]: {what}"));
    let parsed = match parse(source) {
        Ok(parsed) => parsed,
        Err(e) => return fail(format!("does not parse: {e}")),
    };
    let file = parsed.file;
    let tenant = tenant.to_owned();

    if let Err(e) = client
        .create_tenant(v1::TenantCreateRequest {
            id: tenant.clone(),
            // Tenant names are at most 64 bytes.
            name: name.rsplit('/').next().unwrap_or(name).to_owned(),
        })
        .await
    {
        return fail(format!("Tenancy.Create: {e}"));
    }
    let version = match client
        .write_schema(v1::SchemaWriteRequest {
            tenant_id: tenant.clone(),
            schema: file.schema.clone(),
        })
        .await
    {
        Ok(written) => written.schema_version,
        Err(e) => return fail(format!("Schema.Write: {e}")),
    };
    let mut tuples = Vec::new();
    for text in &file.relationships {
        match Tuple::parse(text) {
            Ok(t) => tuples.push(msg::tuple(&t)),
            Err(e) => return fail(format!("relationship `{text}`: {e}")),
        }
    }
    let mut attributes = Vec::new();
    for text in &file.attributes {
        match Attribute::parse(text) {
            Ok(a) => attributes.push(msg::attribute(&a)),
            Err(e) => return fail(format!("attribute `{text}`: {e}")),
        }
    }
    let snap_token = if tuples.is_empty() && attributes.is_empty() {
        String::new()
    } else {
        match client
            .write_data(v1::DataWriteRequest {
                tenant_id: tenant.clone(),
                metadata: Some(v1::DataWriteRequestMetadata {
                    schema_version: version.clone(),
                }),
                tuples,
                attributes,
            })
            .await
        {
            Ok(written) => written.snap_token,
            Err(e) => return fail(format!("Data.Write: {e}")),
        }
    };

    let asker = Asker {
        client,
        tenant: &tenant,
        snap_token: &snap_token,
        schema_version: &version,
    };
    let (expectations, _warnings) = expectations(&file);
    for expectation in &expectations {
        tally.assertions += 1;
        for problem in asker.judge(expectation).await {
            tally
                .failures
                .push(format!("{name} [{transport}]: {problem}"));
        }
    }
}

/// Asks the questions of one file's tenant.
struct Asker<'a> {
    client: &'a Client,
    tenant: &'a str,
    snap_token: &'a str,
    /// The version Schema.Write answered, named in every question.
    schema_version: &'a str,
}

impl Asker<'_> {
    /// Asks one assertion every way it can be asked; the failures, described.
    async fn judge(&self, expectation: &Expectation) -> Vec<String> {
        let request = match &expectation.request {
            Ok(request) => request,
            Err(reason) => {
                return vec![expectation.judge(Answer::Error(reason.clone())).to_string()];
            }
        };
        let context = &request.context;
        let mut problems = Vec::new();
        let mut judged = |how: &str, answer: Answer| {
            let outcome = expectation.judge(answer);
            if !outcome.passed {
                problems.push(format!("{outcome} ({how})"));
            }
        };
        match &request.question {
            Question::Check {
                entity,
                permission,
                subject,
                depth,
            } => {
                let answer = self
                    .client
                    .check(v1::PermissionCheckRequest {
                        tenant_id: self.tenant.to_owned(),
                        metadata: Some(v1::PermissionCheckRequestMetadata {
                            schema_version: self.schema_version.to_owned(),
                            snap_token: self.snap_token.to_owned(),
                            depth: i32::try_from(*depth).expect("a small depth"),
                        }),
                        entity: Some(msg::entity(entity)),
                        permission: permission.clone(),
                        subject: Some(msg::subject(subject)),
                        context: msg::context(context),
                        arguments: Vec::new(),
                    })
                    .await
                    .map(|r| Answer::Allowed(r.can == v1::CheckResult::Allowed as i32));
                judged("Permission.Check", answer_of(answer));
            }
            Question::LookupEntity {
                entity_type,
                permission,
                subject,
            } => {
                let request = v1::PermissionLookupEntityRequest {
                    tenant_id: self.tenant.to_owned(),
                    metadata: Some(v1::PermissionLookupEntityRequestMetadata {
                        schema_version: self.schema_version.to_owned(),
                        snap_token: self.snap_token.to_owned(),
                        depth: 0,
                    }),
                    entity_type: entity_type.clone(),
                    permission: permission.clone(),
                    subject: Some(msg::subject(subject)),
                    context: msg::context(context),
                    scope: Default::default(),
                    page_size: PAGE_SIZE,
                    continuous_token: String::new(),
                };
                let paged = self.lookup_entity_pages(request.clone()).await;
                judged(
                    &format!("Permission.LookupEntity in pages of {PAGE_SIZE}"),
                    paged,
                );
                let streamed = self.lookup_entity_stream(request).await;
                judged("Permission.LookupEntityStream", streamed.0);
                if let Some(problem) = streamed.1 {
                    problems.push(format!(
                        "scenario \"{}\": {}: {problem}",
                        expectation.scenario, expectation.asked
                    ));
                }
            }
            Question::LookupSubject {
                entity,
                permission,
                subject_type,
                subject_relation,
            } => {
                let answer = self
                    .lookup_subject_pages(v1::PermissionLookupSubjectRequest {
                        tenant_id: self.tenant.to_owned(),
                        metadata: Some(v1::PermissionLookupSubjectRequestMetadata {
                            schema_version: self.schema_version.to_owned(),
                            snap_token: self.snap_token.to_owned(),
                            depth: 0,
                        }),
                        entity: Some(msg::entity(entity)),
                        permission: permission.clone(),
                        subject_reference: Some(v1::RelationReference {
                            r#type: subject_type.clone(),
                            relation: subject_relation.clone().unwrap_or_default(),
                        }),
                        context: msg::context(context),
                        arguments: Vec::new(),
                        page_size: PAGE_SIZE,
                        continuous_token: String::new(),
                    })
                    .await;
                judged(
                    &format!("Permission.LookupSubject in pages of {PAGE_SIZE}"),
                    answer,
                );
            }
        }
        problems
    }

    async fn lookup_entity_pages(&self, mut request: v1::PermissionLookupEntityRequest) -> Answer {
        let mut ids = Vec::new();
        for _ in 0..MAX_PAGES {
            let page = match self.client.lookup_entity(request.clone()).await {
                Ok(page) => page,
                Err(e) => return Answer::Error(e.to_string()),
            };
            if page.entity_ids.len() > PAGE_SIZE as usize {
                return Answer::Error(format!(
                    "a page of {} IDs for a page size of {PAGE_SIZE}",
                    page.entity_ids.len()
                ));
            }
            ids.extend(page.entity_ids);
            if page.continuous_token.is_empty() {
                return distinct(ids);
            }
            request.continuous_token = page.continuous_token;
        }
        Answer::Error(format!("more than {MAX_PAGES} pages"))
    }

    async fn lookup_subject_pages(
        &self,
        mut request: v1::PermissionLookupSubjectRequest,
    ) -> Answer {
        let mut ids = Vec::new();
        for _ in 0..MAX_PAGES {
            let page = match self.client.lookup_subject(request.clone()).await {
                Ok(page) => page,
                Err(e) => return Answer::Error(e.to_string()),
            };
            if page.subject_ids.len() > PAGE_SIZE as usize {
                return Answer::Error(format!(
                    "a page of {} IDs for a page size of {PAGE_SIZE}",
                    page.subject_ids.len()
                ));
            }
            ids.extend(page.subject_ids);
            if page.continuous_token.is_empty() {
                return distinct(ids);
            }
            request.continuous_token = page.continuous_token;
        }
        Answer::Error(format!("more than {MAX_PAGES} pages"))
    }

    /// The streamed answer, and what went wrong resuming it halfway, if anything.
    async fn lookup_entity_stream(
        &self,
        mut request: v1::PermissionLookupEntityRequest,
    ) -> (Answer, Option<String>) {
        request.page_size = 0;
        let all = match self.client.lookup_entity_stream(request.clone()).await {
            Ok(all) => all,
            Err(e) => return (Answer::Error(e.to_string()), None),
        };
        let ids: Vec<String> = all.iter().map(|m| m.entity_id.clone()).collect();
        if all.len() < 2 {
            return (distinct(ids), None);
        }
        let k = all.len() / 2;
        request.continuous_token = all[k - 1].continuous_token.clone();
        let problem = match self.client.lookup_entity_stream(request).await {
            Ok(rest) => {
                let rest: Vec<&str> = rest.iter().map(|m| m.entity_id.as_str()).collect();
                let want: Vec<&str> = ids[k..].iter().map(String::as_str).collect();
                (rest != want).then(|| {
                    format!(
                        "LookupEntityStream resumed after message {k} of {} gave {rest:?}, want {want:?}",
                        all.len()
                    )
                })
            }
            Err(e) => Some(format!("LookupEntityStream resumed after message {k}: {e}")),
        };
        (distinct(ids), problem)
    }
}

fn answer_of(result: Result<Answer, Failure>) -> Answer {
    result.unwrap_or_else(|e| Answer::Error(e.to_string()))
}

/// The IDs as an answer, or an error naming one that came twice.
fn distinct(ids: Vec<String>) -> Answer {
    let mut seen = BTreeSet::new();
    for id in &ids {
        if !seen.insert(id) {
            return Answer::Error(format!("`{id}` was returned twice in {ids:?}"));
        }
    }
    Answer::Ids(ids)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validation_files_over_grpc() {
    replay_all("validation_files_over_grpc", Transport::Grpc).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validation_files_over_http() {
    replay_all("validation_files_over_http", Transport::Http).await;
}

/// The replay is not vacuous: wrong expectations in a file are reported, with the file, the
/// transport and the assertion, for checks, entity filters (paged and streamed) and subject
/// filters.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_expectations_are_reported() {
    const WRONG: &str = "
schema: |-
    entity user {}
    entity doc {
        relation viewer @user
        permission view = viewer
    }
relationships:
  - doc:1#viewer@user:1
  - doc:2#viewer@user:1
scenarios:
  - name: wrong on purpose
    checks:
      - entity: doc:1
        subject: user:1
        assertions:
          view: false
    entity_filters:
      - entity_type: doc
        subject: user:1
        assertions:
          view: [\"1\"]
    subject_filters:
      - subject_reference: user
        entity: doc:2
        assertions:
          view: [\"1\", \"2\"]
";
    let server = start().await;
    for transport in [Transport::Grpc, Transport::Http] {
        let client = Client::connect(transport, &server).await;
        let mut tally = Tally::default();
        let tenant = format!("wrong-{}", transport.to_string().to_lowercase());
        replay_source(&client, WRONG, "wrong.yaml", &tenant, &mut tally).await;
        assert_eq!(tally.assertions, 3);
        let report = tally.failures.join("\n");
        assert_eq!(tally.failures.len(), 4, "{report}");
        let prefix = format!("wrong.yaml [{transport}]: scenario \"wrong on purpose\": ");
        for (failure, asked) in tally.failures.iter().zip([
            "check doc:1#view@user:1: want false, got true",
            "lookup-entity doc#view@user:1: want [1], got [1, 2] (unexpected `2`) (Permission.LookupEntity in pages of 3)",
            "lookup-entity doc#view@user:1: want [1], got [1, 2] (unexpected `2`) (Permission.LookupEntityStream)",
            "lookup-subject doc:2#view@user: want [1, 2], got [1] (missing `2`)",
        ]) {
            assert!(failure.starts_with(&prefix), "{failure}");
            assert!(failure.contains(asked), "`{asked}` in {failure}");
        }
    }
    server.shutdown().await.expect("a clean shutdown");
}
