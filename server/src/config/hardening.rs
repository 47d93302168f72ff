//! The settings of authentication, traffic and connection limits, TLS and CORS, and telemetry:
//! their flags (flattened into [`super::ServeArgs`]), their config-file keys, and their
//! resolution.
//!
//! In the config file these keys can be written flat, as the flags are named
//! (`authn-preshared-keys: [k1]`), or nested as Permify writes them
//! (`authn: {method: preshared, preshared: {keys: [k1]}}`): nested mappings are flattened by
//! joining their keys with `-`. Lists (keys, algorithms) are YAML lists or comma-separated text.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use jsonwebtoken::Algorithm;

use super::layer::settings;
use super::{ConfigError, parse_duration, set};
use crate::auth::oidc::parse_algorithm;
use crate::auth::{AuthnMethod, AuthnSettings, OidcSettings};
use crate::connections::ConnectionLimits;
use crate::http::CorsSettings;
use crate::limits::TrafficLimits;
use crate::telemetry::TelemetrySettings;
use crate::tls::{CertPaths, Port, TlsSettings};

settings! {
    /// The flags of authentication, limits, TLS, CORS and telemetry.
    #[derive(Clone, Default, Args)]
    pub struct HardeningArgs, file HardeningFile {
        before {}
        after {}
        file_only {
            /// Permify's `authn.enabled`: false turns authentication off whatever the method says.
            authn_enabled: bool = "true or false",
        }
        /// How API calls authenticate: `none`, `preshared` (`authorization: Bearer KEY`) or `oidc`
        /// (`authorization: Bearer JWT`) [default: none, or preshared when keys are given, or oidc
        /// when an issuer is given]. Health, reflection and /metrics stay open.
        #[arg(long, value_enum, value_name = "METHOD", env = "LOOKOUT_AUTHN_METHOD")]
        pub authn_method: Option<AuthnMethod>,

        /// Accepted preshared keys, comma-separated (the environment variable hides them from
        /// `ps`; prefer it or the config file).
        #[arg(
            long,
            value_name = "KEYS",
            env = "LOOKOUT_AUTHN_PRESHARED_KEYS",
            value_delimiter = ',',
            hide_env_values = true
        )]
        pub authn_preshared_keys: Option<Vec<String>>,

        /// OIDC issuer URL, exactly as tokens name it in `iss`; its
        /// `/.well-known/openid-configuration` names the signing keys (https, or http on loopback).
        #[arg(long, value_name = "URL", env = "LOOKOUT_AUTHN_OIDC_ISSUER")]
        pub authn_oidc_issuer: Option<String>,

        /// The audience OIDC tokens must name in `aud` (required with oidc).
        #[arg(long, value_name = "AUDIENCE", env = "LOOKOUT_AUTHN_OIDC_AUDIENCE")]
        pub authn_oidc_audience: Option<String>,

        /// Accepted OIDC signature algorithms, comma-separated (asymmetric only)
        /// [default: RS256,ES256].
        #[file(alias = "authn-oidc-valid-methods")]
        #[arg(
            long,
            value_name = "ALGS",
            env = "LOOKOUT_AUTHN_OIDC_ALGORITHMS",
            value_delimiter = ',',
            value_parser = parse_algorithm
        )]
        pub authn_oidc_algorithms: Option<Vec<Algorithm>>,

        /// How often the issuer's signing keys are fetched again [default: 15m].
        #[arg(long, value_name = "DURATION", env = "LOOKOUT_AUTHN_OIDC_REFRESH_INTERVAL", value_parser = parse_duration)]
        pub authn_oidc_refresh_interval: Option<Duration>,

        /// Least time between two fetches of the signing keys caused by tokens naming an unknown
        /// key (a rotation) [default: 10s].
        #[arg(long, value_name = "DURATION", env = "LOOKOUT_AUTHN_OIDC_MIN_REFRESH_INTERVAL", value_parser = parse_duration)]
        pub authn_oidc_min_refresh_interval: Option<Duration>,

        /// Clock skew allowed when checking a token's `exp` and `nbf` [default: 10s].
        #[arg(long, value_name = "DURATION", env = "LOOKOUT_AUTHN_OIDC_LEEWAY", value_parser = parse_duration)]
        pub authn_oidc_leeway: Option<Duration>,

        /// Most calls handled at once; one more is refused at once with RESOURCE_EXHAUSTED (HTTP
        /// 429) instead of queueing [default: 1000].
        #[arg(long, value_name = "N", env = "LOOKOUT_MAX_INFLIGHT")]
        pub max_inflight: Option<usize>,

        /// Most server streams (LookupEntityStream, Watch) open at once over both transports; one
        /// more is RESOURCE_EXHAUSTED (HTTP 429) [default: 1000].
        #[arg(long, value_name = "N", env = "LOOKOUT_MAX_CONCURRENT_STREAMS")]
        pub max_concurrent_streams: Option<usize>,

        /// Longest a call may take to produce its response (for a stream, its result set); then
        /// DEADLINE_EXCEEDED (HTTP 504) and its evaluation is cancelled. A client's shorter
        /// `grpc-timeout` wins; `0` means no limit [default: 60s].
        #[arg(long, value_name = "DURATION", env = "LOOKOUT_REQUEST_TIMEOUT", value_parser = parse_duration)]
        pub request_timeout: Option<Duration>,

        /// Most connections open at once over both ports; one more is closed as soon as it is
        /// accepted (and logged), while open ones keep working [default: 10000, or three quarters
        /// of the open-file limit (`ulimit -n`) if that is lower].
        #[arg(long, value_name = "N", env = "LOOKOUT_MAX_CONNECTIONS")]
        pub max_connections: Option<usize>,

        /// A connection with no call in progress for this long is closed (HTTP/2 pings do not
        /// keep it open); `0` means never [default: 5m].
        #[arg(long, value_name = "DURATION", env = "LOOKOUT_IDLE_TIMEOUT", value_parser = parse_duration)]
        pub idle_timeout: Option<Duration>,

        /// Longest a request's headers may take to arrive — from the connection's opening for its
        /// first request (over HTTP/2, its preface), from a request's first byte on an idle HTTP/1
        /// connection — before the connection is closed; `0` means no limit [default: 10s].
        #[arg(long, value_name = "DURATION", env = "LOOKOUT_HEADER_READ_TIMEOUT", value_parser = parse_duration)]
        pub header_read_timeout: Option<Duration>,

        /// PEM certificate chain (the server's certificate first) for TLS on the gRPC port;
        /// with `--grpc-tls-key`, the port speaks TLS only. Reloaded on SIGHUP and when the file
        /// changes [default: none, plaintext].
        #[arg(long, value_name = "FILE", env = "LOOKOUT_GRPC_TLS_CERT")]
        pub grpc_tls_cert: Option<PathBuf>,

        /// PEM private key (PKCS#8, PKCS#1 or SEC1) of `--grpc-tls-cert`.
        #[arg(long, value_name = "FILE", env = "LOOKOUT_GRPC_TLS_KEY")]
        pub grpc_tls_key: Option<PathBuf>,

        /// PEM certificate chain for TLS on the HTTP port; with `--http-tls-key`, the port speaks
        /// HTTPS only. Reloaded on SIGHUP and when the file changes [default: none, plaintext].
        #[arg(long, value_name = "FILE", env = "LOOKOUT_HTTP_TLS_CERT")]
        pub http_tls_cert: Option<PathBuf>,

        /// PEM private key (PKCS#8, PKCS#1 or SEC1) of `--http-tls-cert`.
        #[arg(long, value_name = "FILE", env = "LOOKOUT_HTTP_TLS_KEY")]
        pub http_tls_key: Option<PathBuf>,

        /// Origins whose pages may call the HTTP API from a browser (CORS), comma-separated, such
        /// as `https://app.example.com`; `*` allows any [default: none, no CORS headers].
        #[arg(
            long,
            value_name = "ORIGINS",
            env = "LOOKOUT_CORS_ALLOWED_ORIGINS",
            value_delimiter = ','
        )]
        pub cors_allowed_origins: Option<Vec<String>>,

        /// Request headers those pages may send, comma-separated; `*` allows any they ask for
        /// [default: accept, authorization, content-type, x-request-id].
        #[arg(
            long,
            value_name = "HEADERS",
            env = "LOOKOUT_CORS_ALLOWED_HEADERS",
            value_delimiter = ','
        )]
        pub cors_allowed_headers: Option<Vec<String>>,

        /// OpenTelemetry OTLP/gRPC endpoint to export traces to, e.g. `http://localhost:4317`
        /// (needs a build with the `otel` feature) [default: no export].
        #[arg(long, value_name = "URL", env = "LOOKOUT_OTEL_ENDPOINT")]
        pub otel_endpoint: Option<String>,

        /// Service name of exported traces [default: lookout].
        #[arg(long, value_name = "NAME", env = "LOOKOUT_OTEL_SERVICE_NAME")]
        pub otel_service_name: Option<String>,
    }
}

impl fmt::Debug for HardeningArgs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the keys.
        f.debug_struct("HardeningArgs")
            .field("authn_method", &self.authn_method)
            .field(
                "authn_preshared_keys",
                &self.authn_preshared_keys.as_ref().map(|k| k.len()),
            )
            .field("authn_oidc_issuer", &self.authn_oidc_issuer)
            .field("authn_oidc_audience", &self.authn_oidc_audience)
            .field("max_inflight", &self.max_inflight)
            .field("max_concurrent_streams", &self.max_concurrent_streams)
            .field("request_timeout", &self.request_timeout)
            .field("max_connections", &self.max_connections)
            .field("idle_timeout", &self.idle_timeout)
            .field("header_read_timeout", &self.header_read_timeout)
            .field("grpc_tls_cert", &self.grpc_tls_cert)
            .field("http_tls_cert", &self.http_tls_cert)
            .field("cors_allowed_origins", &self.cors_allowed_origins)
            .finish_non_exhaustive()
    }
}

/// The resolved settings of this module.
pub(super) struct Resolved {
    pub authn: AuthnSettings,
    pub traffic: TrafficLimits,
    pub connections: ConnectionLimits,
    pub tls: TlsSettings,
    pub cors: CorsSettings,
    pub telemetry: TelemetrySettings,
}

/// Flags over file over defaults.
pub(super) fn merge(args: &HardeningArgs, file: HardeningFile) -> Result<Resolved, ConfigError> {
    let enabled = file.authn_enabled;
    let l = args.over(file)?;
    let preshared_keys = l
        .authn_preshared_keys
        .unwrap_or_default()
        .into_iter()
        .map(|k| k.trim().to_owned())
        .filter(|k| !k.is_empty())
        .collect::<Vec<_>>();
    let issuer = l.authn_oidc_issuer.filter(|s| !s.is_empty());
    // `authn.enabled: false` in the file turns authentication off unless a flag names a method.
    let method = match (l.authn_method, enabled) {
        (_, Some(false)) if args.authn_method.is_none() => AuthnMethod::None,
        (Some(method), _) => method,
        (None, _) if !preshared_keys.is_empty() => AuthnMethod::Preshared,
        (None, _) if issuer.is_some() => AuthnMethod::Oidc,
        (None, _) => AuthnMethod::None,
    };
    let mut oidc = OidcSettings {
        issuer,
        audience: l.authn_oidc_audience,
        ..OidcSettings::default()
    };
    set(&mut oidc.algorithms, l.authn_oidc_algorithms);
    set(&mut oidc.refresh_interval, l.authn_oidc_refresh_interval);
    set(
        &mut oidc.min_refresh_interval,
        l.authn_oidc_min_refresh_interval,
    );
    set(&mut oidc.leeway, l.authn_oidc_leeway);
    let authn = AuthnSettings {
        method,
        preshared_keys,
        oidc,
    };
    // `0` turns a limit or timeout off.
    let optional = |value: Option<Duration>, default: Option<Duration>| match value {
        Some(d) => (!d.is_zero()).then_some(d),
        None => default,
    };
    let mut traffic = TrafficLimits::default();
    set(&mut traffic.max_inflight, l.max_inflight);
    set(
        &mut traffic.max_concurrent_streams,
        l.max_concurrent_streams,
    );
    traffic.request_timeout = optional(l.request_timeout, traffic.request_timeout);
    let mut connections = ConnectionLimits::default();
    connections.max_connections = l.max_connections.or(connections.max_connections);
    connections.idle_timeout = optional(l.idle_timeout, connections.idle_timeout);
    connections.header_read_timeout =
        optional(l.header_read_timeout, connections.header_read_timeout);
    let tls = TlsSettings {
        grpc: cert_paths(Port::Grpc, l.grpc_tls_cert, l.grpc_tls_key)?,
        http: cert_paths(Port::Http, l.http_tls_cert, l.http_tls_key)?,
    };
    let list = |items: Option<Vec<String>>| {
        items
            .unwrap_or_default()
            .into_iter()
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
    };
    let cors = CorsSettings {
        allowed_origins: list(l.cors_allowed_origins),
        allowed_headers: list(l.cors_allowed_headers),
    };
    let mut telemetry = TelemetrySettings {
        otel_endpoint: l.otel_endpoint.filter(|s| !s.is_empty()),
        ..TelemetrySettings::default()
    };
    set(&mut telemetry.service_name, l.otel_service_name);
    Ok(Resolved {
        authn,
        traffic,
        connections,
        tls,
        cors,
        telemetry,
    })
}

/// The TLS files of `port`: both or neither (an empty path is none).
fn cert_paths(
    port: Port,
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
) -> Result<Option<CertPaths>, ConfigError> {
    let given = |p: Option<PathBuf>| p.filter(|p| !p.as_os_str().is_empty());
    let (cert_setting, key_setting) = (port.cert_setting(), port.key_setting());
    match (given(cert), given(key)) {
        (Some(cert), Some(key)) => Ok(Some(CertPaths { cert, key })),
        (None, None) => Ok(None),
        (Some(_), None) => Err(ConfigError(format!(
            "{cert_setting} is set but {key_setting} is not: TLS on the {port} port needs both the certificate and its key"
        ))),
        (None, Some(_)) => Err(ConfigError(format!(
            "{key_setting} is set but {cert_setting} is not: TLS on the {port} port needs both the certificate and its key"
        ))),
    }
}

/// Checks the resolved settings of this module.
pub(super) fn check(
    authn: &AuthnSettings,
    traffic: &TrafficLimits,
    connections: &ConnectionLimits,
    cors: &CorsSettings,
    telemetry: &TelemetrySettings,
) -> Result<(), ConfigError> {
    authn.check().map_err(|e| ConfigError(e.to_string()))?;
    cors.check().map_err(ConfigError)?;
    if traffic.max_inflight == 0 {
        return Err(ConfigError("max-inflight must be at least 1".to_owned()));
    }
    if traffic.max_concurrent_streams == 0 {
        return Err(ConfigError(
            "max-concurrent-streams must be at least 1".to_owned(),
        ));
    }
    if connections.max_connections == Some(0) {
        return Err(ConfigError("max-connections must be at least 1".to_owned()));
    }
    telemetry.check().map_err(ConfigError)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic, reason = "tests fail by panicking")]
mod tests {
    use super::super::{Config, FileConfig, ServeArgs};
    use super::*;

    #[test]
    fn nested_and_flat_file_keys_resolve() {
        let file = FileConfig::parse(
            "grpc-port: 5000\nauthn:\n  enabled: true\n  method: preshared\n  preshared:\n    keys: [k1, k2]\nmax-inflight: 7\nrequest_timeout: 250ms\n",
        )
        .unwrap();
        let config = Config::merge(&ServeArgs::default(), file).unwrap();
        assert_eq!(config.grpc_port, 5000);
        assert_eq!(config.authn.method, AuthnMethod::Preshared);
        assert_eq!(config.authn.preshared_keys, vec!["k1", "k2"]);
        assert_eq!(config.traffic.max_inflight, 7);
        assert_eq!(
            config.traffic.request_timeout,
            Some(Duration::from_millis(250))
        );

        let file = FileConfig::parse(
            "authn-oidc-issuer: https://id.example.com\nauthn-oidc-audience: lookout\nauthn-oidc-valid-methods: RS256\nrequest-timeout: 0\n",
        )
        .unwrap();
        let config = Config::merge(&ServeArgs::default(), file).unwrap();
        assert_eq!(config.authn.method, AuthnMethod::Oidc);
        assert_eq!(config.authn.oidc.algorithms, vec![Algorithm::RS256]);
        assert_eq!(config.traffic.request_timeout, None);
        assert_eq!(config.connections, ConnectionLimits::default());

        let file =
            FileConfig::parse("max-connections: 50\nidle_timeout: 0\nheader-read-timeout: 2s\n")
                .unwrap();
        let config = Config::merge(&ServeArgs::default(), file).unwrap();
        assert_eq!(
            config.connections,
            ConnectionLimits {
                max_connections: Some(50),
                idle_timeout: None,
                header_read_timeout: Some(Duration::from_secs(2)),
            }
        );
        let e = Config::merge(
            &ServeArgs::default(),
            FileConfig::parse("max-connections: 0\n").unwrap(),
        )
        .unwrap_err();
        assert!(e.0.contains("max-connections"), "{e}");

        let file =
            FileConfig::parse("authn:\n  enabled: false\n  preshared:\n    keys: k1\n").unwrap();
        let config = Config::merge(&ServeArgs::default(), file).unwrap();
        assert_eq!(config.authn.method, AuthnMethod::None);
    }

    #[test]
    fn bad_settings_are_named() {
        let e = FileConfig::parse("authn:\n  methd: x\n").unwrap_err();
        assert!(e.contains("authn-methd"), "{e}");
        let e = FileConfig::parse("authn-oidc-algorithms: HS256\n")
            .map(|f| Config::merge(&ServeArgs::default(), f))
            .unwrap()
            .unwrap_err();
        assert!(e.0.contains("shared-secret"), "{e}");
        let args = ServeArgs {
            hardening: HardeningArgs {
                authn_method: Some(AuthnMethod::Preshared),
                ..HardeningArgs::default()
            },
            ..ServeArgs::default()
        };
        let e = Config::merge(&args, FileConfig::default()).unwrap_err();
        assert!(e.0.contains("preshared"), "{e}");
        let args = ServeArgs {
            hardening: HardeningArgs {
                max_inflight: Some(0),
                ..HardeningArgs::default()
            },
            ..ServeArgs::default()
        };
        assert!(Config::merge(&args, FileConfig::default()).is_err());
    }
}
