//! OIDC bearer tokens: issuer discovery, the issuer's signing keys (JWKS) and JWT checks.
//!
//! At start the verifier reads `ISSUER/.well-known/openid-configuration`, checks that it names
//! the configured issuer, and fetches the key set at its `jwks_uri`. The keys are fetched again
//! every `refresh_interval`, and also when a token names a key (`kid`) the verifier does not
//! know — a key rotation — but at most once per `min_refresh_interval`, so tokens with made-up
//! key IDs cannot make the server hammer the issuer.
//!
//! A token is accepted when its header's algorithm is in the allow-list (asymmetric algorithms
//! only), its key is one of the issuer's and of that algorithm's family, its signature holds,
//! `iss` is the issuer, `aud` contains the audience, and `exp` (required) and `nbf` (when
//! present) hold within `leeway`. If the keys could never be fetched, calls fail with
//! UNAVAILABLE rather than UNAUTHENTICATED: the credential may be fine.
//!
//! The issuer must be `https://`, except on a loopback host (a local test issuer).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Bytes;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use tokio::sync::{Mutex, RwLock};
use tokio_util::sync::CancellationToken;

use super::unauthenticated;
use crate::error::{ApiError, ErrorCode, Reason};

/// The largest discovery document or key set read, in bytes.
const MAX_DOCUMENT_BYTES: usize = 1024 * 1024;
/// How long one fetch from the issuer may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

/// OIDC settings.
#[derive(Debug, Clone, PartialEq)]
pub struct OidcSettings {
    /// The issuer URL, exactly as tokens name it in `iss`.
    pub issuer: Option<String>,
    /// The audience tokens must name in `aud`.
    pub audience: Option<String>,
    /// The signature algorithms accepted.
    pub algorithms: Vec<Algorithm>,
    /// How often the signing keys are fetched again.
    pub refresh_interval: Duration,
    /// The least time between two fetches of the keys caused by unknown key IDs.
    pub min_refresh_interval: Duration,
    /// Clock skew allowed for `exp` and `nbf`.
    pub leeway: Duration,
}

impl Default for OidcSettings {
    fn default() -> Self {
        OidcSettings {
            issuer: None,
            audience: None,
            algorithms: vec![Algorithm::RS256, Algorithm::ES256],
            refresh_interval: Duration::from_secs(15 * 60),
            min_refresh_interval: Duration::from_secs(10),
            leeway: Duration::from_secs(10),
        }
    }
}

/// Why the issuer's keys could not be fetched, or a URL of the OIDC settings is not one this
/// server fetches from.
#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    #[error("{what} `{url}` is not a URL: {source}")]
    NotAUrl {
        what: &'static str,
        url: String,
        source: hyper::http::uri::InvalidUri,
    },
    #[error("{what} `{url}` must be an https:// URL (http:// only on a loopback host)")]
    Insecure { what: &'static str, url: String },
    #[error("cannot set up TLS for the OIDC issuer: {0}")]
    Tls(String),
    #[error("the discovery document names issuer `{named}`, not `{issuer}`")]
    IssuerMismatch { named: String, issuer: String },
    #[error("{url} has no `jwks_uri`")]
    NoJwksUri { url: String },
    #[error("{url} has no `keys` array")]
    NoKeys { url: String },
    #[error("{url} has no usable signing key")]
    NoUsableKey { url: String },
    #[error("`{url}` is not a URL: {source}")]
    BadUrl {
        url: String,
        source: hyper::http::uri::InvalidUri,
    },
    #[error("GET {url}: no answer within {within:?}")]
    NoAnswer { url: String, within: Duration },
    #[error("GET {url}: the body did not arrive within {within:?}")]
    SlowBody { url: String, within: Duration },
    /// The request could not be made or its body read; `reason` is the HTTP client's error.
    #[error("GET {url}: {reason}")]
    Get { url: String, reason: String },
    #[error("GET {url}: HTTP {status}")]
    Status {
        url: String,
        status: hyper::StatusCode,
    },
    #[error("GET {url}: not JSON: {source}")]
    NotJson {
        url: String,
        source: serde_json::Error,
    },
}

/// Why a name is not an algorithm OIDC tokens may be signed with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AlgorithmError {
    #[error("`{0}` is not a JWS algorithm name")]
    Unknown(String),
    #[error(
        "`{0}` is a shared-secret algorithm; OIDC keys are public keys (use e.g. RS256 or ES256)"
    )]
    SharedSecret(String),
}

/// Parses an algorithm name of the allow-list: asymmetric JWS algorithms only.
pub fn parse_algorithm(name: &str) -> Result<Algorithm, AlgorithmError> {
    let alg: Algorithm = name
        .trim()
        .parse()
        .map_err(|_| AlgorithmError::Unknown(name.to_owned()))?;
    match alg {
        Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => {
            Err(AlgorithmError::SharedSecret(name.to_owned()))
        }
        other => Ok(other),
    }
}

/// Why the OIDC settings cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OidcSettingsError {
    #[error("authn-method oidc needs --authn-oidc-issuer")]
    NoIssuer,
    /// The issuer URL is not one this server fetches from (the reason, as [`OidcError`] says).
    #[error("{0}")]
    Issuer(String),
    #[error("authn-method oidc needs --authn-oidc-audience")]
    NoAudience,
    #[error("authn-oidc-algorithms must name at least one algorithm")]
    NoAlgorithms,
    #[error("authn-oidc-refresh-interval must be more than 0")]
    ZeroRefreshInterval,
}

impl OidcSettings {
    pub fn check(&self) -> Result<(), OidcSettingsError> {
        let Some(issuer) = &self.issuer else {
            return Err(OidcSettingsError::NoIssuer);
        };
        issuer_base(issuer).map_err(|e| OidcSettingsError::Issuer(e.to_string()))?;
        if self.audience.as_deref().is_none_or(str::is_empty) {
            return Err(OidcSettingsError::NoAudience);
        }
        if self.algorithms.is_empty() {
            return Err(OidcSettingsError::NoAlgorithms);
        }
        if self.refresh_interval.is_zero() {
            return Err(OidcSettingsError::ZeroRefreshInterval);
        }
        Ok(())
    }
}

/// The issuer URL without a trailing slash, after checking its scheme.
fn issuer_base(issuer: &str) -> Result<&str, OidcError> {
    check_scheme("authn-oidc-issuer", issuer)?;
    Ok(issuer.trim_end_matches('/'))
}

/// Checks that `url` is https, or http on a loopback host.
fn check_scheme(what: &'static str, url: &str) -> Result<(), OidcError> {
    let uri: hyper::Uri = url.parse().map_err(|source| OidcError::NotAUrl {
        what,
        url: url.to_owned(),
        source,
    })?;
    let host = uri.host().unwrap_or_default();
    let loopback = matches!(host, "localhost" | "127.0.0.1" | "[::1]" | "::1");
    match uri.scheme_str() {
        Some("https") => Ok(()),
        Some("http") if loopback => Ok(()),
        _ => Err(OidcError::Insecure {
            what,
            url: url.to_owned(),
        }),
    }
}

/// One signing key of the issuer.
struct Key {
    decoding: DecodingKey,
    /// The algorithm the key is for, when the key set says.
    alg: Option<Algorithm>,
}

#[derive(Default)]
struct KeySet {
    by_id: HashMap<String, Arc<Key>>,
    /// Keys without a `kid` (used only when the set has exactly one key).
    unnamed: Vec<Arc<Key>>,
    /// Why the last fetch failed, while no keys were ever fetched.
    error: Option<OidcError>,
}

impl KeySet {
    fn is_empty(&self) -> bool {
        self.by_id.is_empty() && self.unnamed.is_empty()
    }

    fn find(&self, kid: Option<&str>) -> Option<Arc<Key>> {
        match kid {
            Some(kid) => self.by_id.get(kid).cloned(),
            None if self.by_id.len() + self.unnamed.len() == 1 => self
                .unnamed
                .first()
                .or_else(|| self.by_id.values().next())
                .cloned(),
            None => None,
        }
    }
}

type HttpClient = Client<HttpsConnector<HttpConnector>, Empty<Bytes>>;

/// Verifies OIDC tokens of one issuer.
pub struct OidcVerifier {
    settings: OidcSettings,
    issuer: String,
    audience: String,
    client: HttpClient,
    keys: RwLock<KeySet>,
    /// When the keys were last fetched (or a fetch was tried); held while fetching.
    last_fetch: Mutex<Option<Instant>>,
}

impl std::fmt::Debug for OidcVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcVerifier")
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .finish_non_exhaustive()
    }
}

fn http_client() -> Result<HttpClient, OidcError> {
    let provider = || rustls::crypto::ring::default_provider();
    let builder = match hyper_rustls::HttpsConnectorBuilder::new()
        .with_provider_and_native_roots(provider())
    {
        Ok(builder) => builder,
        Err(e) => {
            tracing::warn!(error = %e, "no system CA certificates; using the bundled web PKI roots");
            hyper_rustls::HttpsConnectorBuilder::new()
                .with_provider_and_webpki_roots(provider())
                .map_err(|e| OidcError::Tls(e.to_string()))?
        }
    };
    let connector = builder.https_or_http().enable_http1().build();
    Ok(Client::builder(TokioExecutor::new()).build(connector))
}

impl OidcVerifier {
    /// Fetches the issuer's keys (a failure is logged and retried later) and starts the
    /// periodic refresh, which stops at `shutdown`.
    pub async fn start(
        settings: OidcSettings,
        shutdown: &CancellationToken,
    ) -> Result<Arc<OidcVerifier>, OidcError> {
        let verifier = Arc::new(OidcVerifier {
            issuer: settings.issuer.clone().unwrap_or_default(),
            audience: settings.audience.clone().unwrap_or_default(),
            settings,
            client: http_client()?,
            keys: RwLock::new(KeySet::default()),
            last_fetch: Mutex::new(None),
        });
        verifier.refresh(None).await;
        let weak = Arc::downgrade(&verifier);
        let interval = verifier.settings.refresh_interval;
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(interval) => {}
                }
                let Some(verifier) = weak.upgrade() else {
                    return;
                };
                verifier.refresh(None).await;
            }
        });
        Ok(verifier)
    }

    /// Fetches the keys again. With `at_most_every`, does nothing if the last fetch was more
    /// recent than that (and waits for a fetch in progress instead of starting another).
    async fn refresh(&self, at_most_every: Option<Duration>) {
        let mut last = self.last_fetch.lock().await;
        if let (Some(min), Some(at)) = (at_most_every, *last)
            && at.elapsed() < min
        {
            return;
        }
        *last = Some(Instant::now());
        match self.fetch().await {
            Ok(set) => {
                tracing::info!(
                    issuer = %self.issuer,
                    keys = set.by_id.len() + set.unnamed.len(),
                    "fetched the OIDC signing keys"
                );
                *self.keys.write().await = set;
            }
            Err(e) => {
                tracing::warn!(issuer = %self.issuer, error = %e, "cannot fetch the OIDC signing keys");
                let mut keys = self.keys.write().await;
                if keys.is_empty() {
                    keys.error = Some(e);
                }
            }
        }
    }

    async fn fetch(&self) -> Result<KeySet, OidcError> {
        let base = issuer_base(&self.issuer)?;
        let discovery_url = format!("{base}/.well-known/openid-configuration");
        let discovery = self.get_json(&discovery_url).await?;
        let named = discovery["issuer"].as_str().unwrap_or_default();
        if named.trim_end_matches('/') != base {
            return Err(OidcError::IssuerMismatch {
                named: named.to_owned(),
                issuer: self.issuer.clone(),
            });
        }
        let jwks_uri = discovery["jwks_uri"]
            .as_str()
            .ok_or_else(|| OidcError::NoJwksUri {
                url: discovery_url.clone(),
            })?;
        check_scheme("the discovery document's jwks_uri", jwks_uri)?;
        let jwks = self.get_json(jwks_uri).await?;
        let entries = jwks["keys"].as_array().ok_or_else(|| OidcError::NoKeys {
            url: jwks_uri.to_owned(),
        })?;
        let mut set = KeySet::default();
        for entry in entries {
            // Keys of a kind this server cannot use (or for encryption) are skipped.
            if entry["use"].as_str().is_some_and(|u| u != "sig") {
                continue;
            }
            let Ok(jwk) = serde_json::from_value::<Jwk>(entry.clone()) else {
                continue;
            };
            let Ok(decoding) = DecodingKey::from_jwk(&jwk) else {
                continue;
            };
            let alg = entry["alg"].as_str().and_then(|a| a.parse().ok());
            let key = Arc::new(Key { decoding, alg });
            match jwk.common.key_id {
                Some(kid) => {
                    set.by_id.insert(kid, key);
                }
                None => set.unnamed.push(key),
            }
        }
        if set.is_empty() {
            return Err(OidcError::NoUsableKey {
                url: jwks_uri.to_owned(),
            });
        }
        Ok(set)
    }

    async fn get_json(&self, url: &str) -> Result<serde_json::Value, OidcError> {
        let get = |reason: String| OidcError::Get {
            url: url.to_owned(),
            reason,
        };
        let uri: hyper::Uri = url.parse().map_err(|source| OidcError::BadUrl {
            url: url.to_owned(),
            source,
        })?;
        let request = hyper::Request::get(uri)
            .header(hyper::header::ACCEPT, "application/json")
            .body(Empty::new())
            .map_err(|e| get(e.to_string()))?;
        let response = tokio::time::timeout(FETCH_TIMEOUT, self.client.request(request))
            .await
            .map_err(|_| OidcError::NoAnswer {
                url: url.to_owned(),
                within: FETCH_TIMEOUT,
            })?
            .map_err(|e| get(e.to_string()))?;
        let status = response.status();
        if !status.is_success() {
            return Err(OidcError::Status {
                url: url.to_owned(),
                status,
            });
        }
        let body = tokio::time::timeout(
            FETCH_TIMEOUT,
            Limited::new(response.into_body(), MAX_DOCUMENT_BYTES).collect(),
        )
        .await
        .map_err(|_| OidcError::SlowBody {
            url: url.to_owned(),
            within: FETCH_TIMEOUT,
        })?
        .map_err(|e| get(e.to_string()))?
        .to_bytes();
        serde_json::from_slice(&body).map_err(|source| OidcError::NotJson {
            url: url.to_owned(),
            source,
        })
    }

    async fn key(&self, kid: Option<&str>) -> Result<Arc<Key>, ApiError> {
        if let Some(key) = self.keys.read().await.find(kid) {
            return Ok(key);
        }
        // Perhaps the issuer rotated its keys.
        self.refresh(Some(self.settings.min_refresh_interval)).await;
        let keys = self.keys.read().await;
        if let Some(key) = keys.find(kid) {
            return Ok(key);
        }
        if keys.is_empty() {
            let why = keys
                .error
                .as_ref()
                .map_or_else(|| "not fetched yet".to_owned(), ToString::to_string);
            return Err(ApiError::new(
                ErrorCode::Unavailable,
                format!(
                    "cannot verify tokens: the issuer's signing keys are not available ({why})"
                ),
            ));
        }
        Err(unauthenticated(if kid.is_some() {
            "the token is signed with a key the issuer does not publish"
        } else {
            "the token names no key (`kid`) and the issuer publishes several"
        }))
    }

    /// Accepts a valid token of the issuer for the audience.
    pub async fn verify(&self, token: &str) -> Result<(), ApiError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| {
            unauthenticated("the bearer token is not a well-formed JWT")
                .with_reason(Reason::InvalidBearerToken)
        })?;
        if !self.settings.algorithms.contains(&header.alg) {
            return Err(unauthenticated(&format!(
                "tokens signed with {:?} are not accepted (allowed: {})",
                header.alg,
                self.settings
                    .algorithms
                    .iter()
                    .map(|a| format!("{a:?}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        let key = self.key(header.kid.as_deref()).await?;
        if key.alg.is_some_and(|a| a != header.alg) {
            return Err(unauthenticated(
                "the token's algorithm is not the one its key is for",
            ));
        }
        let mut validation = Validation::new(header.alg);
        validation.leeway = self.settings.leeway.as_secs();
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&[&self.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        jsonwebtoken::decode::<serde_json::Value>(token, &key.decoding, &validation)
            .map(|_| ())
            .map_err(|e| unauthenticated(&reason(e.kind())).with_reason(token_reason(e.kind())))
    }
}

/// Permify's name for a refused token.
fn token_reason(kind: &jsonwebtoken::errors::ErrorKind) -> Reason {
    use jsonwebtoken::errors::ErrorKind as K;
    match kind {
        K::InvalidIssuer => Reason::InvalidIssuer,
        K::InvalidAudience => Reason::InvalidAudience,
        K::ExpiredSignature | K::ImmatureSignature | K::MissingRequiredClaim(_) => {
            Reason::InvalidClaims
        }
        _ => Reason::InvalidBearerToken,
    }
}

/// Why a token was refused, without quoting it.
fn reason(kind: &jsonwebtoken::errors::ErrorKind) -> String {
    use jsonwebtoken::errors::ErrorKind as K;
    match kind {
        K::ExpiredSignature => "the token has expired".to_owned(),
        K::ImmatureSignature => "the token is not valid yet (nbf)".to_owned(),
        K::InvalidIssuer => "the token is from another issuer (iss)".to_owned(),
        K::InvalidAudience => "the token is for another audience (aud)".to_owned(),
        K::InvalidSignature => "the token's signature is not valid".to_owned(),
        K::MissingRequiredClaim(claim) => format!("the token has no `{claim}` claim"),
        K::InvalidAlgorithm => "the token's algorithm does not fit its key".to_owned(),
        _ => "the bearer token is not a valid JWT".to_owned(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic, reason = "tests fail by panicking")]
mod tests {
    use super::*;

    #[test]
    fn issuers_must_be_https_except_on_loopback() {
        assert!(issuer_base("https://id.example.com/").is_ok());
        assert!(issuer_base("http://127.0.0.1:8080").is_ok());
        assert!(issuer_base("http://localhost:8080/realms/x").is_ok());
        assert!(issuer_base("http://id.example.com").is_err());
        assert!(issuer_base("ftp://id.example.com").is_err());
        assert!(check_scheme("jwks_uri", "http://id.example.com/keys").is_err());
        assert!(check_scheme("jwks_uri", "https://id.example.com/keys").is_ok());
        assert_eq!(
            issuer_base("https://id.example.com/").unwrap(),
            "https://id.example.com"
        );
    }

    #[test]
    fn only_asymmetric_algorithms_are_allowed() {
        assert_eq!(parse_algorithm("RS256"), Ok(Algorithm::RS256));
        assert_eq!(parse_algorithm("ES256"), Ok(Algorithm::ES256));
        assert!(
            parse_algorithm("HS256")
                .unwrap_err()
                .to_string()
                .contains("shared-secret")
        );
        assert!(parse_algorithm("none").is_err());
    }
}
