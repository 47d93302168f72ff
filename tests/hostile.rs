//! Hostile shapes through the running server: each reproduction of a request that once
//! aborted the whole process (a thread's stack exhausted by a deep schema or deep data) or
//! answered a partial tree. Every call here must answer in full or fail with a clear error,
//! and the server must still serve afterwards.

use serde_json::{Value, json};
use tonic::Code;

use crate::harness::{Http, Server, start};

const DEEP: usize = 10_000;

async fn tenant(http: &Http, id: &str) {
    http.unary("/v1/tenants/create", &json!({"id": id, "name": id}))
        .await
        .expect("the tenant is created");
}

async fn schema(http: &Http, tenant: &str, text: &str) -> Result<Value, crate::harness::Failure> {
    http.unary(
        &format!("/v1/tenants/{tenant}/schemas/write"),
        &json!({"schema": text}),
    )
    .await
}

async fn tuples(http: &Http, tenant: &str, lines: &[String]) {
    for chunk in lines.chunks(5_000) {
        let tuples: Vec<Value> = chunk
            .iter()
            .map(|line| {
                let t = crate::harness::msg::tuple_text(line);
                crate::harness::tuple_json(&t)
            })
            .collect();
        http.unary(
            &format!("/v1/tenants/{tenant}/data/write"),
            &json!({"metadata": {"schema_version": ""}, "tuples": tuples}),
        )
        .await
        .expect("the tuples are written");
    }
}

fn entity(ty: &str, id: &str) -> Value {
    json!({"type": ty, "id": id})
}

fn alice() -> Value {
    json!({"type": "user", "id": "alice"})
}

/// Every read of `permission` on `ty:id` for `user:alice` with `depth`: their answers, or
/// the failures.
async fn every_read(
    http: &Http,
    tenant: &str,
    ty: &str,
    id: &str,
    permission: &str,
    depth: u32,
) -> Vec<(&'static str, Result<Value, crate::harness::Failure>)> {
    let base = format!("/v1/tenants/{tenant}/permissions");
    let meta = json!({"snap_token": "", "schema_version": "", "depth": depth});
    let mut out = Vec::new();
    out.push((
        "check",
        http.unary(
            &format!("{base}/check"),
            &json!({"metadata": meta, "entity": entity(ty, id), "permission": permission, "subject": alice()}),
        )
        .await,
    ));
    out.push((
        "bulk-check",
        http.unary(
            &format!("{base}/bulk-check"),
            &json!({"metadata": meta, "items": [{"entity": entity(ty, id), "permission": permission, "subject": alice()}]}),
        )
        .await,
    ));
    out.push((
        "lookup-entity",
        http.unary(
            &format!("{base}/lookup-entity"),
            &json!({"metadata": meta, "entity_type": ty, "permission": permission, "subject": alice(), "page_size": 100}),
        )
        .await,
    ));
    out.push((
        "lookup-entity-stream",
        http.stream(
            &format!("{base}/lookup-entity-stream"),
            &json!({"metadata": meta, "entity_type": ty, "permission": permission, "subject": alice()}),
        )
        .await
        .map(|lines| json!(lines.len())),
    ));
    out.push((
        "lookup-subject",
        http.unary(
            &format!("{base}/lookup-subject"),
            &json!({"metadata": meta, "entity": entity(ty, id), "permission": permission, "subject_reference": {"type": "user"}}),
        )
        .await,
    ));
    out.push((
        "subject-permission",
        http.unary(
            &format!("{base}/subject-permission"),
            &json!({"metadata": meta, "entity": entity(ty, id), "subject": alice()}),
        )
        .await,
    ));
    out.push((
        "expand",
        http.unary(
            &format!("{base}/expand"),
            &json!({"metadata": {"snap_token": "", "schema_version": ""}, "entity": entity(ty, id), "permission": permission}),
        )
        .await,
    ));
    out
}

async fn still_serves(server: &Server) {
    let http = Http::new(server.http_addr);
    let (status, body) = http.raw("GET", "/healthz", "").await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schema_permission_chain_is_refused_naming_the_limit() {
    let server = start().await;
    let http = Http::new(server.http_addr);
    tenant(&http, "chain").await;
    let chain = |links: usize| {
        let mut text = String::from(
            "entity user {}\nentity doc {\n    relation r @user\n    permission p0 = r\n",
        );
        for i in 1..links {
            text.push_str(&format!("    permission p{i} = p{}\n", i - 1));
        }
        text.push_str("}\n");
        text
    };
    // Past the chain limit, within the members limit.
    let e = schema(&http, "chain", &chain(300)).await.unwrap_err();
    e.assert(Code::InvalidArgument, &["permission chain length", "256"]);
    // The reported shape (p0 = r, p1 = p0, … p1499 = p1498) and 10,000 links: more members
    // than an entity may declare.
    for links in [1_500, DEEP] {
        let e = schema(&http, "chain", &chain(links)).await.unwrap_err();
        e.assert(Code::InvalidArgument, &["members per entity", "1024"]);
    }
    // The longest chain accepted answers.
    schema(&http, "chain", &chain(256)).await.unwrap();
    tuples(&http, "chain", &["doc:1#r@user:alice".to_string()]).await;
    let reads = every_read(&http, "chain", "doc", "1", "p255", 20).await;
    let (_, check) = &reads[0];
    assert_eq!(
        check.as_ref().unwrap()["can"],
        json!("CHECK_RESULT_ALLOWED")
    );
    still_serves(&server).await;
    server.shutdown().await.expect("a clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_folder_chain_10000_deep_answers_every_read() {
    let server = start().await;
    let http = Http::new(server.http_addr);
    tenant(&http, "folders").await;
    schema(
        &http,
        "folders",
        "entity user {}\nentity folder {\n    relation parent @folder\n    relation viewer @user\n    permission view = viewer or parent.view\n}\n",
    )
    .await
    .unwrap();
    let mut lines = vec!["folder:f0#viewer@user:alice".to_string()];
    lines.extend((1..DEEP).map(|i| format!("folder:f{i}#parent@folder:f{}", i - 1)));
    tuples(&http, "folders", &lines).await;
    let last = format!("f{}", DEEP - 1);
    let reads = every_read(&http, "folders", "folder", &last, "view", 100_000).await;
    for (read, answer) in &reads {
        match *read {
            "check" => assert_eq!(
                answer.as_ref().unwrap()["can"],
                json!("CHECK_RESULT_ALLOWED")
            ),
            "bulk-check" => assert_eq!(
                answer.as_ref().unwrap()["results"][0]["can"],
                json!("CHECK_RESULT_ALLOWED")
            ),
            "lookup-entity" => {
                assert_eq!(
                    answer.as_ref().unwrap()["entity_ids"]
                        .as_array()
                        .unwrap()
                        .len(),
                    100
                )
            }
            "lookup-entity-stream" => assert_eq!(answer.as_ref().unwrap(), &json!(DEEP)),
            "lookup-subject" => {
                assert_eq!(answer.as_ref().unwrap()["subject_ids"], json!(["alice"]))
            }
            "subject-permission" => assert_eq!(
                answer.as_ref().unwrap()["results"]["view"],
                json!("CHECK_RESULT_ALLOWED")
            ),
            // 10,000 levels are deeper than an expand tree may be: the depth error, not a
            // truncated tree.
            "expand" => answer
                .as_ref()
                .unwrap_err()
                .assert(Code::FailedPrecondition, &["depth"]),
            other => panic!("{other}"),
        }
    }
    // A depth smaller than the chain is the depth error, never a denial.
    let reads = every_read(&http, "folders", "folder", &last, "view", 50).await;
    let (_, check) = &reads[0];
    check
        .as_ref()
        .unwrap_err()
        .assert(Code::FailedPrecondition, &["depth"]);
    still_serves(&server).await;
    server.shutdown().await.expect("a clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nested_groups_10000_deep_answer_every_read() {
    let server = start().await;
    let http = Http::new(server.http_addr);
    tenant(&http, "groups").await;
    schema(
        &http,
        "groups",
        "entity user {}\nentity group {\n    relation member @user @group#member\n}\nentity doc {\n    relation viewer @group#member\n    permission view = viewer\n}\n",
    )
    .await
    .unwrap();
    let mut lines = vec!["group:g0#member@user:alice".to_string()];
    lines.extend((1..DEEP).map(|i| format!("group:g{i}#member@group:g{}#member", i - 1)));
    lines.push(format!("doc:1#viewer@group:g{}#member", DEEP - 1));
    tuples(&http, "groups", &lines).await;
    // The reported call: lookup subject on the document, depth 50.
    for depth in [50, 100_000] {
        let reads = every_read(&http, "groups", "doc", "1", "view", depth).await;
        for (read, answer) in &reads {
            let answer = answer
                .as_ref()
                .unwrap_or_else(|e| panic!("{read} at depth {depth}: {e:?}"));
            match *read {
                "check" | "bulk-check" | "subject-permission" if depth == 50 => {}
                "bulk-check" => {
                    assert_eq!(answer["results"][0]["can"], json!("CHECK_RESULT_ALLOWED"))
                }
                "check" => assert_eq!(answer["can"], json!("CHECK_RESULT_ALLOWED")),
                "lookup-entity" => assert_eq!(answer["entity_ids"], json!(["1"])),
                "lookup-entity-stream" => assert_eq!(answer, &json!(1)),
                "lookup-subject" => assert_eq!(answer["subject_ids"], json!(["alice"])),
                "subject-permission" => {
                    assert_eq!(answer["results"]["view"], json!("CHECK_RESULT_ALLOWED"))
                }
                "expand" => assert!(answer["tree"].is_object(), "{answer}"),
                other => panic!("{other}"),
            }
        }
    }
    still_serves(&server).await;
    server.shutdown().await.expect("a clean shutdown");
}
