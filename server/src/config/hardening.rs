//! The settings of authentication, traffic and connection limits, and telemetry: their flags (flattened into
//! [`super::ServeArgs`]), their config-file keys, and their resolution.
//!
//! In the config file these keys can be written flat, as the flags are named
//! (`authn-preshared-keys: [k1]`), or nested as Permify writes them
//! (`authn: {method: preshared, preshared: {keys: [k1]}}`): nested mappings are flattened by
//! joining their keys with `-`. Lists (keys, algorithms) are YAML lists or comma-separated text.

use std::fmt;
use std::time::Duration;

use clap::Args;
use jsonwebtoken::Algorithm;
use serde::Deserialize;

use super::{ConfigError, DurationText, parse_duration};
use crate::auth::oidc::parse_algorithm;
use crate::auth::{AuthnMethod, AuthnSettings, OidcSettings};
use crate::connections::ConnectionLimits;
use crate::limits::TrafficLimits;
use crate::telemetry::TelemetrySettings;

/// The flags of authentication, limits and telemetry.
#[derive(Clone, Default, Args)]
pub struct HardeningArgs {
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

    /// OpenTelemetry OTLP/gRPC endpoint to export traces to, e.g. `http://localhost:4317`
    /// (needs a build with the `otel` feature) [default: no export].
    #[arg(long, value_name = "URL", env = "LOOKOUT_OTEL_ENDPOINT")]
    pub otel_endpoint: Option<String>,

    /// Service name of exported traces [default: lookout].
    #[arg(long, value_name = "NAME", env = "LOOKOUT_OTEL_SERVICE_NAME")]
    pub otel_service_name: Option<String>,
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
            .finish_non_exhaustive()
    }
}

/// A list in the config file: a YAML list or comma-separated text.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(untagged)]
enum List {
    Items(Vec<String>),
    Text(String),
    #[default]
    Empty,
}

impl List {
    fn items(&self) -> Vec<String> {
        match self {
            List::Items(items) => items.clone(),
            List::Text(text) => text
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
            List::Empty => Vec::new(),
        }
    }
}

impl fmt::Debug for HardeningFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the keys.
        f.write_str("HardeningFile { .. }")
    }
}

/// The config file's keys of these settings.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct HardeningFile {
    /// Permify's `authn.enabled`: false turns authentication off whatever the method says.
    authn_enabled: Option<bool>,
    authn_method: Option<AuthnMethod>,
    authn_preshared_keys: Option<List>,
    authn_oidc_issuer: Option<String>,
    authn_oidc_audience: Option<String>,
    #[serde(alias = "authn-oidc-valid-methods")]
    authn_oidc_algorithms: Option<List>,
    authn_oidc_refresh_interval: Option<DurationText>,
    authn_oidc_min_refresh_interval: Option<DurationText>,
    authn_oidc_leeway: Option<DurationText>,
    max_inflight: Option<usize>,
    max_concurrent_streams: Option<usize>,
    request_timeout: Option<DurationText>,
    max_connections: Option<usize>,
    idle_timeout: Option<DurationText>,
    header_read_timeout: Option<DurationText>,
    otel_endpoint: Option<String>,
    otel_service_name: Option<String>,
}

/// The names of [`HardeningFile`]'s keys.
const FILE_KEYS: &[&str] = &[
    "authn-enabled",
    "authn-method",
    "authn-preshared-keys",
    "authn-oidc-issuer",
    "authn-oidc-audience",
    "authn-oidc-algorithms",
    "authn-oidc-valid-methods",
    "authn-oidc-refresh-interval",
    "authn-oidc-min-refresh-interval",
    "authn-oidc-leeway",
    "max-inflight",
    "max-concurrent-streams",
    "request-timeout",
    "max-connections",
    "idle-timeout",
    "header-read-timeout",
    "otel-endpoint",
    "otel-service-name",
];

/// Flattens nested mappings of the file (`authn: {method: x}` is `authn-method: x`), then
/// moves this module's keys out of `mapping` into a [`HardeningFile`].
pub(super) fn take_file_keys(mapping: &mut serde_norway::Mapping) -> Result<HardeningFile, String> {
    let entries = std::mem::take(mapping);
    let mut flat = Vec::new();
    flatten(String::new(), entries, &mut flat);
    let mut mine = serde_norway::Mapping::new();
    for (key, value) in flat {
        let ours =
            matches!(&key, serde_norway::Value::String(k) if FILE_KEYS.contains(&k.as_str()));
        if ours {
            mine.insert(key, value);
        } else {
            mapping.insert(key, value);
        }
    }
    if mine.is_empty() {
        return Ok(HardeningFile::default());
    }
    serde_norway::from_value(serde_norway::Value::Mapping(mine)).map_err(|e| e.to_string())
}

fn flatten(
    prefix: String,
    entries: serde_norway::Mapping,
    out: &mut Vec<(serde_norway::Value, serde_norway::Value)>,
) {
    for (key, value) in entries {
        let serde_norway::Value::String(name) = key else {
            out.push((key, value));
            continue;
        };
        let name = name.replace('_', "-");
        let name = if prefix.is_empty() {
            name
        } else {
            format!("{prefix}-{name}")
        };
        match value {
            serde_norway::Value::Mapping(inner) => flatten(name, inner, out),
            other => out.push((serde_norway::Value::String(name), other)),
        }
    }
}

/// The resolved settings of this module.
pub(super) struct Resolved {
    pub authn: AuthnSettings,
    pub traffic: TrafficLimits,
    pub connections: ConnectionLimits,
    pub telemetry: TelemetrySettings,
}

/// Flags over file over defaults.
pub(super) fn merge(args: &HardeningArgs, file: &HardeningFile) -> Result<Resolved, ConfigError> {
    let d_oidc = OidcSettings::default();
    let d_traffic = TrafficLimits::default();
    let d_telemetry = TelemetrySettings::default();
    let preshared_keys = args
        .authn_preshared_keys
        .clone()
        .or_else(|| file.authn_preshared_keys.as_ref().map(List::items))
        .unwrap_or_default()
        .into_iter()
        .map(|k| k.trim().to_owned())
        .filter(|k| !k.is_empty())
        .collect::<Vec<_>>();
    let issuer = args
        .authn_oidc_issuer
        .clone()
        .or_else(|| file.authn_oidc_issuer.clone())
        .filter(|s| !s.is_empty());
    let algorithms = match (&args.authn_oidc_algorithms, &file.authn_oidc_algorithms) {
        (Some(algs), _) => algs.clone(),
        (None, Some(list)) => list
            .items()
            .iter()
            .map(|a| parse_algorithm(a))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| ConfigError(format!("authn-oidc-algorithms: {e}")))?,
        (None, None) => d_oidc.algorithms.clone(),
    };
    let method = match (args.authn_method.or(file.authn_method), file.authn_enabled) {
        (_, Some(false)) if args.authn_method.is_none() => AuthnMethod::None,
        (Some(method), _) => method,
        (None, _) if !preshared_keys.is_empty() => AuthnMethod::Preshared,
        (None, _) if issuer.is_some() => AuthnMethod::Oidc,
        (None, _) => AuthnMethod::None,
    };
    let duration = |flag: Option<Duration>, key: &Option<DurationText>, default: Duration| {
        flag.or(key.map(|t| t.0)).unwrap_or(default)
    };
    let authn = AuthnSettings {
        method,
        preshared_keys,
        oidc: OidcSettings {
            issuer,
            audience: args
                .authn_oidc_audience
                .clone()
                .or_else(|| file.authn_oidc_audience.clone()),
            algorithms,
            refresh_interval: duration(
                args.authn_oidc_refresh_interval,
                &file.authn_oidc_refresh_interval,
                d_oidc.refresh_interval,
            ),
            min_refresh_interval: duration(
                args.authn_oidc_min_refresh_interval,
                &file.authn_oidc_min_refresh_interval,
                d_oidc.min_refresh_interval,
            ),
            leeway: duration(
                args.authn_oidc_leeway,
                &file.authn_oidc_leeway,
                d_oidc.leeway,
            ),
        },
    };
    let timeout = duration(
        args.request_timeout,
        &file.request_timeout,
        d_traffic.request_timeout.unwrap_or_default(),
    );
    let traffic = TrafficLimits {
        max_inflight: args
            .max_inflight
            .or(file.max_inflight)
            .unwrap_or(d_traffic.max_inflight),
        max_concurrent_streams: args
            .max_concurrent_streams
            .or(file.max_concurrent_streams)
            .unwrap_or(d_traffic.max_concurrent_streams),
        request_timeout: (!timeout.is_zero()).then_some(timeout),
    };
    let d_connections = ConnectionLimits::default();
    // `0` turns a timeout off.
    let optional = |flag: Option<Duration>,
                    key: &Option<DurationText>,
                    default: Option<Duration>| match flag.or(key.map(|t| t.0)) {
        Some(d) => (!d.is_zero()).then_some(d),
        None => default,
    };
    let connections = ConnectionLimits {
        max_connections: args
            .max_connections
            .or(file.max_connections)
            .or(d_connections.max_connections),
        idle_timeout: optional(
            args.idle_timeout,
            &file.idle_timeout,
            d_connections.idle_timeout,
        ),
        header_read_timeout: optional(
            args.header_read_timeout,
            &file.header_read_timeout,
            d_connections.header_read_timeout,
        ),
    };
    let telemetry = TelemetrySettings {
        otel_endpoint: args
            .otel_endpoint
            .clone()
            .or_else(|| file.otel_endpoint.clone())
            .filter(|s| !s.is_empty()),
        service_name: args
            .otel_service_name
            .clone()
            .or_else(|| file.otel_service_name.clone())
            .unwrap_or(d_telemetry.service_name),
    };
    Ok(Resolved {
        authn,
        traffic,
        connections,
        telemetry,
    })
}

/// Checks the resolved settings of this module.
pub(super) fn check(
    authn: &AuthnSettings,
    traffic: &TrafficLimits,
    connections: &ConnectionLimits,
    telemetry: &TelemetrySettings,
) -> Result<(), ConfigError> {
    authn.check().map_err(ConfigError)?;
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
