//! Authentication of API calls: none, preshared keys, or OIDC bearer tokens.
//!
//! Both transports send the credential the same way, `authorization: Bearer CREDENTIAL` (gRPC
//! metadata or HTTP header). Health checks (`grpc.health.v1`, `/healthz`), server reflection and
//! `/metrics` stay open; everything else needs a valid credential once a method is configured.
//! A missing or wrong credential is UNAUTHENTICATED (HTTP 401); the message says what is wrong
//! (missing, malformed, expired, wrong audience...) but never repeats the credential, and
//! nothing here logs one.
//!
//! - **Preshared keys** are compared in constant time: the SHA-256 digests of the offered key
//!   and of every configured key are compared with `subtle`, every key every time, so neither
//!   the length nor a common prefix of a key leaks through timing.
//! - **OIDC** (see [`oidc`]) verifies JWTs against the issuer's published keys.

pub mod oidc;

use std::fmt;
use std::sync::Arc;

use clap::ValueEnum;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tokio_util::sync::CancellationToken;

use crate::error::{ApiError, ErrorCode, Reason};
pub use oidc::OidcSettings;

/// How callers prove who they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthnMethod {
    /// No authentication: every call is accepted.
    #[default]
    None,
    /// `authorization: Bearer KEY` with one of the configured keys.
    Preshared,
    /// `authorization: Bearer JWT` signed by the configured OIDC issuer.
    Oidc,
}

/// The authentication settings of a server.
#[derive(Clone, Default, PartialEq)]
pub struct AuthnSettings {
    pub method: AuthnMethod,
    /// The accepted keys (for [`AuthnMethod::Preshared`]).
    pub preshared_keys: Vec<String>,
    pub oidc: OidcSettings,
}

impl fmt::Debug for AuthnSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the keys.
        f.debug_struct("AuthnSettings")
            .field("method", &self.method)
            .field(
                "preshared_keys",
                &format_args!("<{} keys>", self.preshared_keys.len()),
            )
            .field("oidc", &self.oidc)
            .finish()
    }
}

/// Why the authentication settings cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthnSettingsError {
    #[error("authn-method preshared needs at least one key in --authn-preshared-keys")]
    NoPresharedKeys,
    #[error("authn-preshared-keys: a key is empty")]
    EmptyPresharedKey,
    #[error(transparent)]
    Oidc(#[from] oidc::OidcSettingsError),
}

impl AuthnSettings {
    /// Checks that the chosen method has what it needs.
    pub fn check(&self) -> Result<(), AuthnSettingsError> {
        match self.method {
            AuthnMethod::None => Ok(()),
            AuthnMethod::Preshared => {
                if self.preshared_keys.is_empty() {
                    return Err(AuthnSettingsError::NoPresharedKeys);
                }
                if self.preshared_keys.iter().any(|k| k.trim().is_empty()) {
                    return Err(AuthnSettingsError::EmptyPresharedKey);
                }
                Ok(())
            }
            AuthnMethod::Oidc => Ok(self.oidc.check()?),
        }
    }
}

/// Checks the credential of each call.
#[derive(Debug, Clone)]
pub enum Authenticator {
    /// Every call is accepted.
    Open,
    Preshared(Arc<PresharedKeys>),
    Oidc(Arc<oidc::OidcVerifier>),
}

impl Authenticator {
    /// The authenticator for `settings`; an OIDC one fetches the issuer's keys now and then
    /// refreshes them in the background until `shutdown`.
    pub async fn start(
        settings: &AuthnSettings,
        shutdown: &CancellationToken,
    ) -> Result<Authenticator, oidc::OidcError> {
        Ok(match settings.method {
            AuthnMethod::None => Authenticator::Open,
            AuthnMethod::Preshared => {
                Authenticator::Preshared(Arc::new(PresharedKeys::new(&settings.preshared_keys)))
            }
            AuthnMethod::Oidc => Authenticator::Oidc(
                oidc::OidcVerifier::start(settings.oidc.clone(), shutdown).await?,
            ),
        })
    }

    /// Whether calls need a credential.
    pub fn enabled(&self) -> bool {
        !matches!(self, Authenticator::Open)
    }

    /// Accepts or rejects a call by its `authorization` header value.
    pub async fn authenticate(&self, authorization: Option<&[u8]>) -> Result<(), ApiError> {
        if let Authenticator::Open = self {
            return Ok(());
        }
        let credential = bearer(authorization)?;
        match self {
            Authenticator::Open => Ok(()),
            Authenticator::Preshared(keys) => {
                if keys.accepts(credential) {
                    Ok(())
                } else {
                    Err(unauthenticated("the preshared key is not valid"))
                }
            }
            Authenticator::Oidc(verifier) => verifier.verify(credential).await,
        }
    }
}

/// An UNAUTHENTICATED error.
pub fn unauthenticated(why: &str) -> ApiError {
    ApiError::new(
        ErrorCode::Unauthenticated,
        format!("unauthenticated: {why}"),
    )
}

/// The credential of `authorization: Bearer CREDENTIAL`.
fn bearer(authorization: Option<&[u8]>) -> Result<&str, ApiError> {
    let Some(value) = authorization else {
        return Err(unauthenticated(
            "missing credentials: send `authorization: Bearer <key or token>`",
        )
        .with_reason(Reason::MissingBearerToken));
    };
    let malformed = || {
        unauthenticated("the authorization header is not `Bearer <key or token>`")
            .with_reason(Reason::MissingBearerToken)
    };
    let value = std::str::from_utf8(value).map_err(|_| malformed())?.trim();
    let (scheme, credential) = value.split_once(' ').ok_or_else(malformed)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(malformed());
    }
    let credential = credential.trim();
    if credential.is_empty() {
        return Err(malformed());
    }
    Ok(credential)
}

/// The digests of the accepted preshared keys.
pub struct PresharedKeys {
    digests: Vec<[u8; 32]>,
}

impl fmt::Debug for PresharedKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PresharedKeys(<{} keys>)", self.digests.len())
    }
}

impl PresharedKeys {
    pub fn new(keys: &[String]) -> PresharedKeys {
        PresharedKeys {
            digests: keys.iter().map(|k| digest(k.trim())).collect(),
        }
    }

    /// Whether `offered` is one of the keys, in time independent of where they differ.
    pub fn accepts(&self, offered: &str) -> bool {
        let offered = digest(offered);
        let mut found = subtle::Choice::from(0u8);
        for key in &self.digests {
            found |= key.ct_eq(&offered);
        }
        found.into()
    }
}

fn digest(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic, reason = "tests fail by panicking")]
mod tests {
    use super::*;

    #[test]
    fn bearer_credentials_parse() {
        assert_eq!(bearer(Some(b"Bearer abc")).unwrap(), "abc");
        assert_eq!(bearer(Some(b"bearer  abc ")).unwrap(), "abc");
        for bad in [
            &b"Basic abc"[..],
            b"Bearer",
            b"Bearer  ",
            b"abc",
            b"\xff\xfe",
        ] {
            let e = bearer(Some(bad)).unwrap_err();
            assert_eq!(e.code, ErrorCode::Unauthenticated);
        }
        let e = bearer(None).unwrap_err();
        assert!(e.message.contains("missing"), "{e}");
    }

    #[tokio::test]
    async fn preshared_keys_accept_only_their_keys() {
        let settings = AuthnSettings {
            method: AuthnMethod::Preshared,
            preshared_keys: vec!["s3cret".to_owned(), "other-key".to_owned()],
            ..AuthnSettings::default()
        };
        settings.check().unwrap();
        let auth = Authenticator::start(&settings, &CancellationToken::new())
            .await
            .unwrap();
        auth.authenticate(Some(b"Bearer s3cret")).await.unwrap();
        auth.authenticate(Some(b"Bearer other-key")).await.unwrap();
        for bad in [&b"Bearer s3cre"[..], b"Bearer s3cret2", b"Bearer "] {
            let e = auth.authenticate(Some(bad)).await.unwrap_err();
            assert_eq!(e.code, ErrorCode::Unauthenticated);
            assert!(!e.message.contains("s3cre"), "no key in messages: {e}");
        }
        assert!(auth.authenticate(None).await.is_err());
        assert!(!format!("{settings:?}").contains("s3cret"));
    }

    #[test]
    fn methods_need_their_settings() {
        let settings = AuthnSettings {
            method: AuthnMethod::Preshared,
            ..AuthnSettings::default()
        };
        assert!(
            settings
                .check()
                .unwrap_err()
                .to_string()
                .contains("preshared")
        );
        let settings = AuthnSettings {
            method: AuthnMethod::Oidc,
            ..AuthnSettings::default()
        };
        assert!(settings.check().unwrap_err().to_string().contains("issuer"));
    }
}
