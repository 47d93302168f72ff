//! Production hardening, end to end over both transports: preshared keys and OIDC tokens,
//! open health checks and metrics, load shedding, the stream limit, deadlines (the server's
//! and the client's `grpc-timeout`), the batch limit's message, Prometheus metrics and
//! request IDs.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hyper::StatusCode;
use lookout_proto::v1;
use lookout_proto::v1::permission_client::PermissionClient;
use lookout_proto::v1::watch_client::WatchClient;
use lookout_server::auth::{AuthnMethod, OidcSettings};
use lookout_server::config::Config;
use serde_json::{Value, json};
use tonic::Code;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus};

use crate::harness::{
    Client, Failure, Http, Server, Transport, channel, config, grpc_failure, http_failure, msg,
    start_with,
};

fn tenant_request(id: &str) -> v1::TenantCreateRequest {
    v1::TenantCreateRequest {
        id: id.to_owned(),
        name: id.to_owned(),
    }
}

/// Creates a tenant named after `tag` and the transport: Ok, or the failure.
async fn create_tenant(client: &Client, tag: &str) -> Result<(), Failure> {
    let id = format!("{tag}-{}", client.transport().to_string().to_lowercase());
    client.create_tenant(tenant_request(&id)).await.map(|_| ())
}

fn preshared(keys: &[&str]) -> Config {
    let mut config = config();
    config.authn.method = AuthnMethod::Preshared;
    config.authn.preshared_keys = keys.iter().map(|k| (*k).to_owned()).collect();
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preshared_keys_guard_both_transports() {
    let server = start_with(preshared(&["first-key", "second-key"])).await;
    for transport in Transport::ALL {
        let missing = Client::connect_as(transport, &server, None).await;
        let e = create_tenant(&missing, "missing").await.unwrap_err();
        e.assert(Code::Unauthenticated, &["missing credentials", "Bearer"]);

        let wrong = Client::connect_as(transport, &server, Some("second-kez")).await;
        let e = create_tenant(&wrong, "wrong").await.unwrap_err();
        e.assert(Code::Unauthenticated, &["preshared key is not valid"]);
        assert!(!e.message.contains("second-kez"), "no key in errors: {e}");

        for key in ["first-key", "second-key"] {
            let right = Client::connect_as(transport, &server, Some(key)).await;
            create_tenant(&right, key)
                .await
                .expect("the right key is accepted");
        }
    }
    // A 401 says how to authenticate, in Permify's error body.
    let http = Http::new(server.http_addr);
    let response = http.send("POST", "/v1/tenants/t1/schemas/list", "{}").await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        response.headers().get("www-authenticate").unwrap(),
        "Bearer"
    );
    let (status, body) = http.post("/v1/tenants/t1/schemas/list", &json!({})).await;
    http_failure(status.as_u16(), &body).assert(Code::Unauthenticated, &["missing"]);
    server.shutdown().await.expect("a clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_reflection_and_metrics_stay_open() {
    let server = start_with(preshared(&["k"])).await;
    let mut health = HealthClient::new(channel(server.grpc_addr).await);
    for service in ["", "base.v1.Permission"] {
        let answer = health
            .check(HealthCheckRequest {
                service: service.to_owned(),
            })
            .await
            .expect("health needs no credential")
            .into_inner();
        assert_eq!(answer.status, ServingStatus::Serving as i32);
    }
    // Reflection lists the services without a credential (v1 and v1alpha).
    let request = tonic_reflection::pb::v1::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(
            tonic_reflection::pb::v1::server_reflection_request::MessageRequest::ListServices(
                String::new(),
            ),
        ),
    };
    let mut reflection =
        tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient::new(
            channel(server.grpc_addr).await,
        );
    let mut answers = reflection
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .expect("reflection needs no credential")
        .into_inner();
    let answer = answers.message().await.unwrap().unwrap();
    assert!(
        format!("{answer:?}").contains("base.v1.Permission"),
        "{answer:?}"
    );
    let request = tonic_reflection::pb::v1alpha::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(
            tonic_reflection::pb::v1alpha::server_reflection_request::MessageRequest::ListServices(
                String::new(),
            ),
        ),
    };
    let mut reflection =
        tonic_reflection::pb::v1alpha::server_reflection_client::ServerReflectionClient::new(
            channel(server.grpc_addr).await,
        );
    let mut answers = reflection
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .expect("v1alpha reflection needs no credential")
        .into_inner();
    assert!(answers.message().await.unwrap().is_some());
    let http = Http::new(server.http_addr);
    let (status, _) = http.raw("GET", "/healthz", "").await;
    assert_eq!(status, StatusCode::OK);
    let (status, text) = http.raw("GET", "/metrics", "").await;
    assert_eq!(status, StatusCode::OK, "{text}");
    assert!(text.contains("lookout_requests_in_flight"), "{text}");
    server.shutdown().await.expect("a clean shutdown");
}

// ---------------------------------------------------------------------------------------------
// OIDC
// ---------------------------------------------------------------------------------------------

mod issuer {
    //! A tiny OIDC issuer: discovery and a key set that the test can change, counting fetches.

    use super::*;

    pub fn jwk(name: &str) -> Value {
        let path = format!("{}/keys/{name}.jwk.json", env!("CARGO_MANIFEST_DIR"));
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    pub fn pem(name: &str) -> Vec<u8> {
        std::fs::read(format!("{}/keys/{name}.pem", env!("CARGO_MANIFEST_DIR"))).unwrap()
    }

    #[derive(Clone, Default)]
    pub struct Issuer {
        pub url: String,
        pub keys: Arc<Mutex<Vec<Value>>>,
        pub fetches: Arc<Mutex<usize>>,
    }

    impl Issuer {
        pub async fn start(keys: Vec<Value>) -> Issuer {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr: SocketAddr = listener.local_addr().unwrap();
            let issuer = Issuer {
                url: format!("http://{addr}"),
                keys: Arc::new(Mutex::new(keys)),
                fetches: Arc::default(),
            };
            let discovery = json!({
                "issuer": issuer.url,
                "jwks_uri": format!("{}/jwks", issuer.url),
            });
            let state = issuer.clone();
            let app = axum::Router::new()
                .route(
                    "/.well-known/openid-configuration",
                    axum::routing::get(move || async move { axum::Json(discovery) }),
                )
                .route(
                    "/jwks",
                    axum::routing::get(move || async move {
                        *state.fetches.lock().unwrap() += 1;
                        let keys = state.keys.lock().unwrap().clone();
                        axum::Json(json!({ "keys": keys }))
                    }),
                );
            tokio::spawn(async move { axum::serve(listener, app).await });
            issuer
        }

        pub fn fetches(&self) -> usize {
            *self.fetches.lock().unwrap()
        }
    }

    /// A token signed with the key `key` (`rsa1`, `rsa2`, `ec1`), naming it as `kid`.
    pub fn token(key: &str, claims: &Value) -> String {
        use jsonwebtoken::{Algorithm, EncodingKey, Header};
        let (alg, encoding) = if key.starts_with("ec") {
            (
                Algorithm::ES256,
                EncodingKey::from_ec_pem(&pem(key)).unwrap(),
            )
        } else {
            (
                Algorithm::RS256,
                EncodingKey::from_rsa_pem(&pem(key)).unwrap(),
            )
        };
        let mut header = Header::new(alg);
        header.kid = Some(key.to_owned());
        jsonwebtoken::encode(&header, claims, &encoding).unwrap()
    }

    pub fn now() -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs()
    }
}

/// The OIDC test's `--authn-oidc-min-refresh-interval`: long enough that a loaded machine runs
/// the burst of unknown-key calls well within it.
const MIN_REFRESH: Duration = Duration::from_secs(3);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oidc_tokens_are_checked() {
    use issuer::{Issuer, jwk, now, token};
    let issuer = Issuer::start(vec![jwk("rsa1"), jwk("ec1")]).await;
    let mut config = config();
    config.authn.method = AuthnMethod::Oidc;
    config.authn.oidc = OidcSettings {
        issuer: Some(issuer.url.clone()),
        audience: Some("lookout".to_owned()),
        min_refresh_interval: MIN_REFRESH,
        ..OidcSettings::default()
    };
    let server = start_with(config).await;
    assert_eq!(issuer.fetches(), 1, "the keys are fetched at start");
    let claims = |iss: &str, aud: &str, exp: u64| json!({ "iss": iss, "aud": aud, "sub": "svc", "exp": exp, "iat": now() });
    let good = claims(&issuer.url, "lookout", now() + 300);
    let mut n = 0;
    let mut call = async |credential: &str| -> Vec<Result<(), Failure>> {
        let mut out = Vec::new();
        for transport in Transport::ALL {
            n += 1;
            let client = Client::connect_as(transport, &server, Some(credential)).await;
            out.push(create_tenant(&client, &format!("oidc{n}")).await);
        }
        out
    };
    for key in ["rsa1", "ec1"] {
        for result in call(&token(key, &good)).await {
            result.expect("a valid token is accepted");
        }
    }
    let refused = [
        (
            token("rsa1", &claims(&issuer.url, "lookout", now() - 120)),
            "expired",
        ),
        (
            token("rsa1", &claims(&issuer.url, "someone-else", now() + 300)),
            "audience",
        ),
        (
            token(
                "rsa1",
                &claims("http://127.0.0.1:1", "lookout", now() + 300),
            ),
            "issuer",
        ),
        (
            jsonwebtoken::encode(
                &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
                &good,
                &jsonwebtoken::EncodingKey::from_secret(b"secret"),
            )
            .unwrap(),
            "HS256",
        ),
        ("not-a-jwt".to_owned(), "not a well-formed JWT"),
    ];
    for (credential, why) in refused {
        for result in call(&credential).await {
            let e = result.unwrap_err();
            e.assert(Code::Unauthenticated, &[why]);
            assert!(!e.message.contains(&credential), "no token in errors: {e}");
        }
    }

    // A key the issuer does not publish: one fetch to look for it, then no more than one per
    // --authn-oidc-min-refresh-interval however many such tokens come.
    tokio::time::sleep(MIN_REFRESH + Duration::from_millis(100)).await;
    let rotated = token("rsa2", &good);
    for result in call(&rotated).await {
        result
            .unwrap_err()
            .assert(Code::Unauthenticated, &["does not publish"]);
    }
    assert_eq!(issuer.fetches(), 2);
    for _ in 0..3 {
        for result in call(&rotated).await {
            assert!(result.is_err());
        }
    }
    assert_eq!(issuer.fetches(), 2, "unknown keys do not hammer the issuer");

    // The issuer rotates to the new key: tokens naming it are accepted after the refresh.
    issuer.keys.lock().unwrap().push(jwk("rsa2"));
    tokio::time::sleep(MIN_REFRESH + Duration::from_millis(100)).await;
    for result in call(&rotated).await {
        result.expect("a rotated key is accepted after the refresh");
    }
    assert_eq!(issuer.fetches(), 3);
    server.shutdown().await.expect("a clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_issuer_is_unavailable_not_unauthenticated() {
    let mut config = config();
    config.authn.method = AuthnMethod::Oidc;
    config.authn.oidc = OidcSettings {
        // Nothing listens on port 1.
        issuer: Some("http://127.0.0.1:1".to_owned()),
        audience: Some("lookout".to_owned()),
        ..OidcSettings::default()
    };
    let server = start_with(config).await;
    let token = issuer::token(
        "rsa1",
        &json!({ "iss": "http://127.0.0.1:1", "aud": "lookout", "exp": issuer::now() + 60 }),
    );
    for transport in Transport::ALL {
        let client = Client::connect_as(transport, &server, Some(&token)).await;
        let e = create_tenant(&client, "down").await.unwrap_err();
        e.assert(Code::Unavailable, &["signing keys are not available"]);
    }
    server.shutdown().await.expect("a clean shutdown");
}

// ---------------------------------------------------------------------------------------------
// Limits
// ---------------------------------------------------------------------------------------------

/// A schema whose lookups cost a rule evaluation per document, each scanning the request's
/// `context.data.items`: slow on purpose.
const SLOW_SCHEMA: &str = "entity user {}

entity doc {
    attribute n integer
    permission view = scan(n)
}

rule scan(n integer) {
    context.data.items.exists(x, x == n)
}
";

/// Writes [`SLOW_SCHEMA`] and `docs` documents with an attribute to `tenant` (created).
async fn slow_tenant(client: &Client, tenant: &str, docs: usize) {
    client
        .create_tenant(tenant_request(tenant))
        .await
        .expect("Tenancy.Create");
    client
        .write_schema(v1::SchemaWriteRequest {
            tenant_id: tenant.to_owned(),
            schema: SLOW_SCHEMA.to_owned(),
        })
        .await
        .expect("Schema.Write");
    let attributes = (0..docs)
        .map(|i| v1::Attribute {
            entity: msg::entity_text(&format!("doc:{i}")),
            attribute: "n".to_owned(),
            value: Some(msg::value(&lookout_engine::model::AttrValue::Integer(
                i as i64,
            ))),
        })
        .collect();
    client
        .write_data(v1::DataWriteRequest {
            tenant_id: tenant.to_owned(),
            metadata: Some(v1::DataWriteRequestMetadata::default()),
            tuples: Vec::new(),
            attributes,
        })
        .await
        .expect("Data.Write");
}

/// A lookup on a [`slow_tenant`] that scans `items` numbers (none matching) per document.
fn slow_lookup(tenant: &str, items: usize) -> v1::PermissionLookupEntityRequest {
    let list: Vec<Value> = (0..items).map(|i| json!(-(i as f64) - 1.0)).collect();
    let mut data = serde_json::Map::new();
    data.insert("items".to_owned(), Value::Array(list));
    v1::PermissionLookupEntityRequest {
        tenant_id: tenant.to_owned(),
        entity_type: "doc".to_owned(),
        permission: "view".to_owned(),
        subject: msg::subject_text("user:u"),
        context: Some(v1::Context {
            tuples: Vec::new(),
            attributes: Vec::new(),
            data: Some(msg::json_struct(&data)),
        }),
        ..Default::default()
    }
}

/// The value of one sample line of the metrics text, if present.
fn sample(metrics: &str, line_start: &str) -> Option<f64> {
    metrics
        .lines()
        .find(|l| l.starts_with(line_start))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

async fn metrics(server: &Server) -> String {
    let (status, text) = Http::new(server.http_addr).raw("GET", "/metrics", "").await;
    assert_eq!(status, StatusCode::OK);
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_beyond_max_inflight_are_shed_at_once() {
    let mut config = config();
    config.traffic.max_inflight = 1;
    let server = start_with(config).await;
    let client = Client::connect(Transport::Grpc, &server).await;
    slow_tenant(&client, "shed", 2000).await;
    // One slow call holds the only place...
    let slow = tokio::spawn({
        let client = client.clone();
        async move { client.lookup_entity(slow_lookup("shed", 20_000)).await }
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while sample(&metrics(&server).await, "lookout_requests_in_flight ") != Some(1.0) {
        assert!(
            std::time::Instant::now() < deadline,
            "the slow call never started"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // ...so the next calls are refused at once, over both transports.
    for transport in Transport::ALL {
        let other = Client::connect(transport, &server).await;
        let started = std::time::Instant::now();
        let e = create_tenant(&other, "shed").await.unwrap_err();
        e.assert(Code::ResourceExhausted, &["--max-inflight", "retry later"]);
        assert!(started.elapsed() < Duration::from_secs(2), "shed at once");
    }
    let text = metrics(&server).await;
    assert!(
        sample(
            &text,
            "lookout_requests_rejected_total{reason=\"overloaded\",transport=\"grpc\"}"
        ) >= Some(1.0),
        "{text}"
    );
    slow.abort();
    // Once it is gone (the client dropped it; its evaluation is cancelled), calls pass again.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let other = Client::connect(Transport::Http, &server).await;
        match create_tenant(&other, "after").await {
            Ok(()) => break,
            Err(e) => e.assert(Code::ResourceExhausted, &["--max-inflight"]),
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the place was never freed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    server.shutdown().await.expect("a clean shutdown");
}

/// Under twice the load it admits, the server takes what it admits and refuses the rest at
/// once: nothing waits in a queue that grows with the load.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twice_the_admitted_load_is_half_shed() {
    const LIMIT: usize = 3;
    let mut config = config();
    config.traffic.max_inflight = LIMIT;
    let server = start_with(config).await;
    let client = Client::connect(Transport::Grpc, &server).await;
    slow_tenant(&client, "twice", 2000).await;
    let calls: Vec<_> = (0..2 * LIMIT)
        .map(|i| {
            let transport = Transport::ALL[i % 2];
            let server_grpc = server.grpc_addr;
            let server_http = server.http_addr;
            tokio::spawn(async move {
                let client = match transport {
                    Transport::Grpc => {
                        Client::Grpc(tonic::service::interceptor::InterceptedService::new(
                            channel(server_grpc).await,
                            crate::harness::Bearer::new(None),
                        ))
                    }
                    Transport::Http => Client::Http(Box::new(Http::new(server_http))),
                };
                client.lookup_entity(slow_lookup("twice", 20_000)).await
            })
        })
        .collect();
    // The refused half answers at once; the admitted half is still working.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let finished = calls.iter().filter(|c| c.is_finished()).count();
        if finished >= LIMIT {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{finished} refused");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (done, working): (Vec<_>, Vec<_>) = calls.into_iter().partition(|c| c.is_finished());
    assert_eq!(done.len(), LIMIT, "exactly the excess is refused");
    for call in done {
        call.await
            .unwrap()
            .unwrap_err()
            .assert(Code::ResourceExhausted, &["--max-inflight"]);
    }
    assert_eq!(
        sample(&metrics(&server).await, "lookout_requests_in_flight "),
        Some(LIMIT as f64)
    );
    for call in working {
        call.abort();
    }
    server.shutdown().await.expect("a clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_beyond_max_concurrent_streams_are_refused() {
    let mut config = config();
    config.traffic.max_concurrent_streams = 1;
    let server = start_with(config).await;
    let mut watch = WatchClient::new(channel(server.grpc_addr).await);
    let open = watch
        .watch(v1::WatchRequest {
            tenant_id: "t1".to_owned(),
            snap_token: String::new(),
        })
        .await
        .expect("the first stream opens")
        .into_inner();
    let http = Http::new(server.http_addr);
    let (status, body) = http
        .post("/v1/tenants/t1/watch", &json!({ "snap_token": "" }))
        .await;
    // A stream refused before it starts answers one `{"error": ...}` line, as handlers do.
    http_failure(status.as_u16(), &body["error"])
        .assert(Code::ResourceExhausted, &["--max-concurrent-streams"]);
    let e = watch
        .watch(v1::WatchRequest {
            tenant_id: "t1".to_owned(),
            snap_token: String::new(),
        })
        .await
        .unwrap_err();
    grpc_failure(&e).assert(Code::ResourceExhausted, &["--max-concurrent-streams"]);
    // Unary calls are not streams.
    let client = Client::connect(Transport::Http, &server).await;
    create_tenant(&client, "unary").await.unwrap();
    let text = metrics(&server).await;
    assert_eq!(
        sample(
            &text,
            "lookout_open_streams{rpc=\"Watch/Watch\",transport=\"grpc\"}"
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, "lookout_watch_subscribers{tenant=\"t1\"}"),
        Some(1.0),
        "{text}"
    );
    // Closing the stream frees its place.
    drop(open);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let result = watch
            .watch(v1::WatchRequest {
                tenant_id: "t1".to_owned(),
                snap_token: String::new(),
            })
            .await;
        if result.is_ok() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the place was never freed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    server.shutdown().await.expect("a clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_calls_end_at_their_deadline() {
    let mut config = config();
    config.traffic.request_timeout = Some(Duration::from_millis(300));
    let server = start_with(config).await;
    let client = Client::connect(Transport::Grpc, &server).await;
    slow_tenant(&client, "slow", 2000).await;
    for transport in Transport::ALL {
        let client = Client::connect(transport, &server).await;
        let started = std::time::Instant::now();
        let e = client
            .lookup_entity(slow_lookup("slow", 20_000))
            .await
            .unwrap_err();
        e.assert(Code::DeadlineExceeded, &["300ms"]);
        assert!(started.elapsed() < Duration::from_secs(5), "{e}");
        let e = client
            .lookup_entity_stream(slow_lookup("slow", 20_000))
            .await
            .unwrap_err();
        e.assert(Code::DeadlineExceeded, &["deadline exceeded"]);
    }
    server.shutdown().await.expect("a clean shutdown");

    // The client's grpc-timeout, shorter than the server's limit, is honoured too (the server
    // answers a little before it, so the answer is the server's, not the client's own timer).
    let server = start_with(crate::harness::config()).await;
    let client = Client::connect(Transport::Grpc, &server).await;
    slow_tenant(&client, "slow", 2000).await;
    let mut permission = PermissionClient::new(channel(server.grpc_addr).await);
    let mut request = tonic::Request::new(slow_lookup("slow", 20_000));
    request.set_timeout(Duration::from_millis(250));
    let started = std::time::Instant::now();
    let e = permission.lookup_entity(request).await.unwrap_err();
    grpc_failure(&e).assert(Code::DeadlineExceeded, &["deadline exceeded", "225ms"]);
    assert!(started.elapsed() < Duration::from_secs(5));
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let text = metrics(&server).await;
        let ended = sample(
            &text,
            "lookout_requests_total{code=\"DEADLINE_EXCEEDED\",rpc=\"Permission/LookupEntity\",transport=\"grpc\"}",
        );
        if ended == Some(1.0) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{text}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.shutdown().await.expect("a clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_batch_limit_error_names_the_limit_and_the_flag() {
    let mut config = config();
    config.limits.max_batch = 5;
    let server = start_with(config).await;
    for transport in Transport::ALL {
        let client = Client::connect(transport, &server).await;
        let e = client
            .write_data(v1::DataWriteRequest {
                tenant_id: "t1".to_owned(),
                metadata: Some(v1::DataWriteRequestMetadata::default()),
                tuples: (0..6)
                    .map(|i| msg::tuple_text(&format!("doc:{i}#owner@user:u")))
                    .collect(),
                attributes: Vec::new(),
            })
            .await
            .unwrap_err();
        assert_eq!(e.code, Code::ResourceExhausted, "{e}");
        if transport == Transport::Http {
            assert_eq!(e.http_status, Some(413), "{e}");
        }
        for part in ["6 items", "batch limit of 5", "--max-batch-size"] {
            assert!(e.message.contains(part), "{part}: {e}");
        }
    }
    server.shutdown().await.expect("a clean shutdown");
}

// ---------------------------------------------------------------------------------------------
// Observability
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_calls_cache_and_tenants() {
    // Every check cached, however cheap, so the repeated checks below hit.
    let server = start_with(Config {
        cache_check_min_visits: 0,
        ..config()
    })
    .await;
    for transport in Transport::ALL {
        let client = Client::connect(transport, &server).await;
        let tenant = format!("m-{}", transport.to_string().to_lowercase());
        client.create_tenant(tenant_request(&tenant)).await.unwrap();
        client
            .write_schema(v1::SchemaWriteRequest {
                tenant_id: tenant.clone(),
                schema: "entity user {}\nentity doc {\n    relation owner @user\n    permission view = owner\n}\n".to_owned(),
            })
            .await
            .unwrap();
        client
            .write_data(v1::DataWriteRequest {
                tenant_id: tenant.clone(),
                metadata: Some(v1::DataWriteRequestMetadata::default()),
                tuples: vec![
                    msg::tuple_text("doc:1#owner@user:a"),
                    msg::tuple_text("doc:2#owner@user:a"),
                ],
                attributes: Vec::new(),
            })
            .await
            .unwrap();
        for _ in 0..3 {
            let allowed = client
                .check(v1::PermissionCheckRequest {
                    tenant_id: tenant.clone(),
                    metadata: Some(v1::PermissionCheckRequestMetadata {
                        depth: 10,
                        ..Default::default()
                    }),
                    entity: msg::entity_text("doc:1"),
                    permission: "view".to_owned(),
                    subject: msg::subject_text("user:a"),
                    ..Default::default()
                })
                .await
                .unwrap();
            assert_eq!(allowed.can, v1::CheckResult::Allowed as i32);
        }
        create_tenant(&client, "m2").await.unwrap();
        let e = client
            .create_tenant(tenant_request(&tenant))
            .await
            .unwrap_err();
        e.assert(Code::AlreadyExists, &[]);
    }
    let text = metrics(&server).await;
    for (transport, _) in [("grpc", 0), ("http", 1)] {
        assert_eq!(
            sample(
                &text,
                &format!(
                    "lookout_requests_total{{code=\"OK\",rpc=\"Permission/Check\",transport=\"{transport}\"}}"
                )
            ),
            Some(3.0),
            "{text}"
        );
        assert_eq!(
            sample(
                &text,
                &format!(
                    "lookout_requests_total{{code=\"ALREADY_EXISTS\",rpc=\"Tenancy/Create\",transport=\"{transport}\"}}"
                )
            ),
            Some(1.0),
            "{text}"
        );
        assert_eq!(
            sample(
                &text,
                &format!(
                    "lookout_request_duration_seconds_count{{code=\"OK\",rpc=\"Permission/Check\",transport=\"{transport}\"}}"
                )
            ),
            Some(3.0),
            "{text}"
        );
    }
    assert_eq!(
        sample(&text, "lookout_cache_hits_total "),
        Some(4.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, "lookout_cache_misses_total "),
        Some(2.0),
        "{text}"
    );
    assert!(
        (sample(&text, "lookout_cache_hit_ratio ").unwrap() - 4.0 / 6.0).abs() < 1e-9,
        "{text}"
    );
    assert_eq!(
        sample(&text, "lookout_tenant_tuples{tenant=\"m-grpc\"}"),
        Some(2.0),
        "{text}"
    );
    assert!(
        sample(&text, "lookout_tenant_revision{tenant=\"m-http\"}") >= Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, "lookout_watch_lag_commits{tenant=\"t1\"}"),
        Some(0.0),
        "{text}"
    );
    server.shutdown().await.expect("a clean shutdown");
}

/// A Watch from a snap token whose changes are no longer retained fails with
/// FAILED_PRECONDITION: over HTTP with status 400 and code 9, as grpc-gateway answers it, and
/// counted under its own code (not the INVALID_ARGUMENT that 400 alone would suggest).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_past_retention_is_a_failed_precondition() {
    let mut settings = config();
    settings.retention.change_items = 1;
    let server = start_with(settings).await;
    let client = Client::connect(Transport::Grpc, &server).await;
    client
        .write_schema(v1::SchemaWriteRequest {
            tenant_id: "t1".to_owned(),
            schema: "entity user {}\nentity doc {\n    relation owner @user\n}\n".to_owned(),
        })
        .await
        .unwrap();
    let mut tokens = Vec::new();
    for doc in 1..=3 {
        let written = client
            .write_data(v1::DataWriteRequest {
                tenant_id: "t1".to_owned(),
                metadata: Some(v1::DataWriteRequestMetadata::default()),
                tuples: vec![msg::tuple_text(&format!("doc:{doc}#owner@user:a"))],
                attributes: Vec::new(),
            })
            .await
            .unwrap();
        tokens.push(written.snap_token);
    }
    let wanted = ["no longer retained", "start a new watch"];
    let status = WatchClient::new(channel(server.grpc_addr).await)
        .watch(v1::WatchRequest {
            tenant_id: "t1".to_owned(),
            snap_token: tokens[0].clone(),
        })
        .await
        .unwrap_err();
    grpc_failure(&status).assert(Code::FailedPrecondition, &wanted);
    let e = Http::new(server.http_addr)
        .stream("/v1/tenants/t1/watch", &json!({ "snap_token": tokens[0] }))
        .await
        .unwrap_err();
    e.assert(Code::FailedPrecondition, &wanted);
    assert_eq!(e.http_status, Some(400), "{e}");

    let text = metrics(&server).await;
    for transport in ["grpc", "http"] {
        let line = format!(
            "lookout_requests_total{{code=\"FAILED_PRECONDITION\",rpc=\"Watch/Watch\",transport=\"{transport}\"}}"
        );
        assert_eq!(sample(&text, &line), Some(1.0), "{line} in {text}");
    }
    server.shutdown().await.expect("a clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_ids_are_echoed_or_made() {
    let server = start_with(config()).await;
    let http = Http::new(server.http_addr);
    let response = http.send("POST", "/v1/tenants/t1/schemas/list", "{}").await;
    let made = response
        .headers()
        .get("x-request-id")
        .expect("an ID is made");
    assert_eq!(made.len(), 32);

    let mut permission = PermissionClient::new(channel(server.grpc_addr).await);
    let mut request = tonic::Request::new(v1::PermissionCheckRequest {
        tenant_id: "no-such-tenant".to_owned(),
        ..Default::default()
    });
    request
        .metadata_mut()
        .insert("x-request-id", "client-chosen-1".parse().unwrap());
    let status = permission.check(request).await.unwrap_err();
    assert_eq!(
        status.metadata().get("x-request-id").unwrap(),
        "client-chosen-1"
    );
    let mut request = tonic::Request::new(v1::PermissionCheckRequest::default());
    request
        .metadata_mut()
        .insert("x-request-id", "client-chosen-2".parse().unwrap());
    let status = permission.check(request).await.unwrap_err();
    assert_eq!(
        status.metadata().get("x-request-id").unwrap(),
        "client-chosen-2"
    );
    server.shutdown().await.expect("a clean shutdown");
}
