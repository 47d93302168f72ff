//! The HTTP/JSON transport.

use hyper::StatusCode;
use serde_json::{Value, json};

use super::common::{
    Http, Lines, MAX_REQUEST_BYTES, SCHEMA, error_message, start, start_with, test_config, tuple,
};

/// Writes the test schema and tuples to `t1` and returns the write's snap token.
async fn seed(http: &Http, tuples: Vec<Value>) -> String {
    let written = http
        .ok("/v1/tenants/t1/schemas/write", &json!({ "schema": SCHEMA }))
        .await;
    assert!(
        written["schema_version"]
            .as_str()
            .is_some_and(|v| !v.is_empty()),
        "{written}"
    );
    let written = http
        .ok(
            "/v1/tenants/t1/data/write",
            &json!({ "metadata": { "schema_version": "" }, "tuples": tuples }),
        )
        .await;
    let token = written["snap_token"].as_str().unwrap().to_owned();
    assert!(!token.is_empty(), "{written}");
    token
}

fn check_body(token: &str, document: &str, user: &str) -> Value {
    json!({
        "metadata": { "snap_token": token, "schema_version": "", "depth": 20 },
        "entity": { "type": "document", "id": document },
        "permission": "view",
        "subject": { "type": "user", "id": user },
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_answers_serving() {
    let server = start().await;
    let http = Http::new(server.http_addr);
    let (status, body) = http.call("GET", "/healthz", &json!(null)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({ "status": "SERVING" }));
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schema_tuples_and_check() {
    let server = start().await;
    let http = Http::new(server.http_addr);
    let token = seed(&http, vec![tuple("document:d1", "owner", "user:alice")]).await;

    let allowed = http
        .ok(
            "/v1/tenants/t1/permissions/check",
            &check_body(&token, "d1", "alice"),
        )
        .await;
    assert_eq!(allowed["can"], json!("CHECK_RESULT_ALLOWED"), "{allowed}");
    let denied = http
        .ok(
            "/v1/tenants/t1/permissions/check",
            &check_body(&token, "d1", "bob"),
        )
        .await;
    assert_eq!(denied["can"], json!("CHECK_RESULT_DENIED"), "{denied}");

    // Unknown fields are ignored, as Permify's gateway does; camelCase names are accepted.
    let mut body = check_body(&token, "d1", "alice");
    body["no_such_field"] = json!({ "x": 1 });
    body["metadata"]["snapToken"] = body["metadata"]["snap_token"].take();
    let lenient = http.ok("/v1/tenants/t1/permissions/check", &body).await;
    assert_eq!(lenient["can"], json!("CHECK_RESULT_ALLOWED"), "{lenient}");

    // The path's tenant wins over the body's.
    let mut body = check_body(&token, "d1", "alice");
    body["tenant_id"] = json!("elsewhere");
    http.ok("/v1/tenants/t1/permissions/check", &body).await;
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_bodies_are_400_with_a_clear_message() {
    let server = start().await;
    let http = Http::new(server.http_addr);
    let path = "/v1/tenants/t1/permissions/check";

    let (status, text) = http.raw("POST", path, "{\"entity\": ").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{text}");
    let body: Value = serde_json::from_str(&text).unwrap();
    let message = error_message(&body, 3);
    assert!(message.contains("not valid JSON"), "{message}");

    let (status, body) = http
        .post(path, &json!({ "metadata": { "depth": "deep" } }))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let message = error_message(&body, 3);
    assert!(message.contains("metadata.depth"), "{message}");

    let (status, body) = http.post(path, &json!({ "entity": 5 })).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    error_message(&body, 3);

    let (status, body) = http.post(path, &json!([1, 2])).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    error_message(&body, 3);
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_tenant_is_404() {
    let server = start().await;
    let http = Http::new(server.http_addr);
    let (status, body) = http
        .post(
            "/v1/tenants/nope/permissions/check",
            &check_body("", "d1", "alice"),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let message = error_message(&body, 5);
    assert!(message.contains("nope"), "{message}");
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_bodies_are_413() {
    let server = start().await;
    let http = Http::new(server.http_addr);
    let padding = "x".repeat(MAX_REQUEST_BYTES + 1);
    let body = serde_json::to_vec(&json!({ "schema": padding })).unwrap();
    let (status, text) = http.raw("POST", "/v1/tenants/t1/schemas/write", body).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{text}");
    let body: Value = serde_json::from_str(&text).unwrap();
    let message = error_message(&body, 8);
    assert!(
        message.contains(&MAX_REQUEST_BYTES.to_string()),
        "{message}"
    );
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_routes_and_methods_answer_json() {
    let server = start().await;
    let http = Http::new(server.http_addr);
    let (status, body) = http.post("/v1/tenants/t1/nothing-here", &json!({})).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let message = error_message(&body, 5);
    assert!(message.contains("/v1/tenants/t1/nothing-here"), "{message}");

    let (status, body) = http
        .call("GET", "/v1/tenants/t1/permissions/check", &json!({}))
        .await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{body}");
    error_message(&body, 12);
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenants_are_created_and_deleted_by_path_id() {
    let server = start().await;
    let http = Http::new(server.http_addr);
    let created = http
        .ok(
            "/v1/tenants/create",
            &json!({ "id": "acme", "name": "Acme" }),
        )
        .await;
    assert_eq!(created["tenant"]["id"], json!("acme"), "{created}");
    let (status, body) = http.call("DELETE", "/v1/tenants/acme", &json!(null)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = http.call("DELETE", "/v1/tenants/acme", &json!(null)).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    error_message(&body, 5);
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lookup_entity_stream_is_ndjson() {
    let server = start().await;
    let http = Http::new(server.http_addr);
    let token = seed(
        &http,
        vec![
            tuple("document:d1", "owner", "user:alice"),
            tuple("document:d2", "viewer", "user:alice"),
            tuple("document:d3", "viewer", "user:bob"),
            tuple("document:d4", "owner", "user:alice"),
        ],
    )
    .await;
    let request = json!({
        "metadata": { "snap_token": token, "depth": 20 },
        "entity_type": "document",
        "permission": "view",
        "subject": { "type": "user", "id": "alice" },
    });
    let response = http
        .send(
            "POST",
            "/v1/tenants/t1/permissions/lookup-entity-stream",
            serde_json::to_vec(&request).unwrap(),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "application/json");
    let lines = Lines::new(response).all().await;
    let mut ids: Vec<&str> = lines
        .iter()
        .map(|line| {
            assert_eq!(line.as_object().unwrap().len(), 1, "{line}");
            let result = &line["result"];
            assert!(
                result["continuous_token"]
                    .as_str()
                    .is_some_and(|t| !t.is_empty()),
                "{line}"
            );
            result["entity_id"].as_str().unwrap()
        })
        .collect();
    ids.sort_unstable();
    assert_eq!(ids, ["d1", "d2", "d4"]);

    // A stream that fails before it starts: the error's status and one `{"error": ...}` line.
    let response = http
        .send(
            "POST",
            "/v1/tenants/nope/permissions/lookup-entity-stream",
            serde_json::to_vec(&request).unwrap(),
        )
        .await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let lines = Lines::new(response).all().await;
    assert_eq!(lines.len(), 1, "{lines:?}");
    error_message(&lines[0]["error"], 5);
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_streams_changes_and_ends_cleanly_on_shutdown() {
    let server = start().await;
    let http = Http::new(server.http_addr);
    http.ok("/v1/tenants/t1/schemas/write", &json!({ "schema": SCHEMA }))
        .await;
    let response = http.send("POST", "/v1/tenants/t1/watch", "{}").await;
    assert_eq!(response.status(), StatusCode::OK);
    let mut lines = Lines::new(response);

    let written = http
        .ok(
            "/v1/tenants/t1/data/write",
            &json!({ "tuples": [tuple("document:d1", "owner", "user:alice")] }),
        )
        .await;
    let line = lines.next().await.expect("a change");
    let changes = &line["result"]["changes"];
    assert_eq!(changes["snap_token"], written["snap_token"], "{line}");
    assert_eq!(
        changes["data_changes"].as_array().map(Vec::len),
        Some(1),
        "{line}"
    );

    let shutdown = tokio::spawn(server.shutdown());
    let last = lines.next().await.expect("a closing error line");
    let message = error_message(&last["error"], 14);
    assert!(message.contains("shutting down"), "{message}");
    assert!(lines.next().await.is_none());
    shutdown.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_can_be_disabled() {
    let server = start_with(lookout_server::config::Config {
        watch: false,
        ..test_config()
    })
    .await;
    let http = Http::new(server.http_addr);
    let (status, body) = http.post("/v1/tenants/t1/watch", &json!({})).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let message = error_message(&body, 5);
    assert!(message.contains("--watch=false"), "{message}");
    server.shutdown().await.unwrap();
}
