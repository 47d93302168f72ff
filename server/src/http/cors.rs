//! CORS on the HTTP port, so that pages of other origins can call the API from a browser.
//!
//! Off unless origins are configured: then no response carries CORS headers, as before CORS was
//! configurable. With origins, a preflight (`OPTIONS` with `Access-Control-Request-Method`) is
//! answered here, before authentication (browsers send no credential with it); an allowed
//! origin gets `Access-Control-Allow-Origin`, the methods of Permify's routes and the allowed
//! request headers; another origin gets no `Access-Control-Allow-Origin`, which the browser
//! takes as a refusal. Every answer, errors included, carries the CORS headers, so a page can
//! read an error body.

use std::time::Duration;

use axum::Router;
use axum::http::uri::Authority;
use axum::http::{HeaderName, HeaderValue, Method};
use tower_http::cors::{AllowHeaders, AllowOrigin, CorsLayer};

/// How long a browser may keep a preflight's answer.
pub const PREFLIGHT_MAX_AGE: Duration = Duration::from_secs(600);

/// Request headers allowed when none are configured: what a client of the API sends.
pub const DEFAULT_ALLOWED_HEADERS: &[&str] =
    &["accept", "authorization", "content-type", "x-request-id"];

/// The CORS settings of the HTTP port.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CorsSettings {
    /// Origins allowed to call the API (`https://app.example.com`); `*` allows any; empty
    /// turns CORS off.
    pub allowed_origins: Vec<String>,
    /// Request headers a page may send; `*` allows whatever it asks for; empty is
    /// [`DEFAULT_ALLOWED_HEADERS`].
    pub allowed_headers: Vec<String>,
}

impl CorsSettings {
    /// Whether the HTTP port answers CORS requests.
    pub fn enabled(&self) -> bool {
        !self.allowed_origins.is_empty()
    }

    /// Checks the origins and headers; the error names the setting and the value.
    pub fn check(&self) -> Result<(), String> {
        self.layer().map(drop)
    }

    /// The CORS layer of these settings; `None` when CORS is off.
    pub fn layer(&self) -> Result<Option<CorsLayer>, String> {
        if !self.enabled() {
            return Ok(None);
        }
        let origins = if self.allowed_origins.iter().any(|o| o.trim() == "*") {
            AllowOrigin::any()
        } else {
            AllowOrigin::list(
                self.allowed_origins
                    .iter()
                    .map(|o| origin(o))
                    .collect::<Result<Vec<_>, _>>()?,
            )
        };
        let headers = if self.allowed_headers.iter().any(|h| h.trim() == "*") {
            AllowHeaders::mirror_request()
        } else if self.allowed_headers.is_empty() {
            AllowHeaders::list(
                DEFAULT_ALLOWED_HEADERS
                    .iter()
                    .map(|h| HeaderName::from_static(h)),
            )
        } else {
            AllowHeaders::list(
                self.allowed_headers
                    .iter()
                    .map(|h| header(h))
                    .collect::<Result<Vec<_>, _>>()?,
            )
        };
        Ok(Some(
            CorsLayer::new()
                .allow_origin(origins)
                .allow_headers(headers)
                .allow_methods([Method::GET, Method::POST, Method::PATCH, Method::DELETE])
                .expose_headers([HeaderName::from_static("x-request-id")])
                .max_age(PREFLIGHT_MAX_AGE),
        ))
    }
}

/// `router` with CORS per `settings` (unchanged when CORS is off). The layer goes outside
/// everything else, so that preflights are answered before authentication and every answer
/// carries the headers.
pub fn with_cors(router: Router, settings: &CorsSettings) -> Result<Router, String> {
    Ok(match settings.layer()? {
        Some(layer) => router.layer(layer),
        None => router,
    })
}

/// An origin as browsers send it: scheme, host and optional port, lowercase, no path.
fn origin(text: &str) -> Result<HeaderValue, String> {
    let text = text.trim().to_ascii_lowercase();
    let bad = || {
        format!(
            "cors-allowed-origins: `{text}` is not an origin such as `https://app.example.com` (scheme, host and optional port, no path), nor `*`"
        )
    };
    let (scheme, authority) = text.split_once("://").ok_or_else(bad)?;
    let scheme_ok = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    if !scheme_ok
        || authority.contains(['/', '?', '#', '@'])
        || authority.parse::<Authority>().is_err()
    {
        return Err(bad());
    }
    HeaderValue::from_str(&text).map_err(|_| bad())
}

fn header(text: &str) -> Result<HeaderName, String> {
    let text = text.trim();
    HeaderName::from_bytes(text.as_bytes())
        .map_err(|_| format!("cors-allowed-headers: `{text}` is not a header name"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests fail by panicking")]
mod tests {
    use super::*;

    fn settings(origins: &[&str], headers: &[&str]) -> CorsSettings {
        CorsSettings {
            allowed_origins: origins.iter().map(|s| (*s).to_owned()).collect(),
            allowed_headers: headers.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    #[test]
    fn off_without_origins() {
        assert!(settings(&[], &["x-custom"]).layer().unwrap().is_none());
    }

    #[test]
    fn origins_and_headers_are_checked() {
        for good in [
            &["*"][..],
            &["https://app.example.com"],
            &["http://localhost:3000", "HTTPS://App.Example.com"],
        ] {
            assert!(settings(good, &[]).check().is_ok(), "{good:?}");
        }
        for bad in [
            "app.example.com",
            "https://app.example.com/",
            "https://a.com/x",
            "",
        ] {
            let e = settings(&[bad], &[]).check().unwrap_err();
            assert!(e.starts_with("cors-allowed-origins: "), "{e}");
        }
        assert!(settings(&["*"], &["*"]).check().is_ok());
        assert!(
            settings(&["*"], &["Authorization", "x-custom"])
                .check()
                .is_ok()
        );
        let e = settings(&["*"], &["bad header"]).check().unwrap_err();
        assert!(
            e.contains("cors-allowed-headers") && e.contains("bad header"),
            "{e}"
        );
    }
}
