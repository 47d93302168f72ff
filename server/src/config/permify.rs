//! Permify's configuration, read as it is: every key of Permify's configuration file and every
//! `PERMIFY_*` environment variable, each with what Lookout does with it.
//!
//! Lookout is a drop-in for Permify, so an operator's existing `config.yaml` and environment
//! must configure it without edits. [`KEYS`] is the one table of Permify's settings; each is
//!
//! - applied to a Lookout setting ([`Treatment::Setting`]), read exactly as Lookout's own key;
//! - applied together with the other keys of its group: the tracer ([`Treatment::Tracer`]) and
//!   each port's TLS ([`Treatment::Tls`]);
//! - refused ([`Treatment::Refused`]): a value asking for something Lookout does not do (the
//!   profiler, a distributed cluster) is an error naming the key and the reason;
//! - or ignored ([`Treatment::Ignored`]): a tuning knob of Permify's internals with no
//!   counterpart here; Lookout starts, and a warning names the key and the reason.
//!
//! Refused and ignored keys are quiet at their inert value (`enabled: false`, an empty
//! path), which asks nothing of either server, and so are the keys of a section switched off
//! (`profiler.port` with `profiler.enabled: false`). A `PERMIFY_*` variable that is not in the table
//! is warned about too: never silently dropped.
//!
//! Precedence: Lookout's own names win over Permify's (flags, then `LOOKOUT_*` variables, then
//! Lookout's file keys); among Permify's names, a `PERMIFY_*` variable wins over the file, as in
//! Permify.

use crate::tls::Port;

/// What Lookout does with one of Permify's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Treatment {
    /// Sets the Lookout setting with this file key.
    Setting(&'static str),
    /// Part of Permify's tracer settings: applied together to `otel-endpoint`.
    Tracer(TracerField),
    /// Part of a port's TLS settings: with `enabled: true`, the certificate and key set the
    /// port's `*-tls-cert` and `*-tls-key`, and are required.
    Tls(Port, TlsField),
    /// An error unless its value is `quiet`; the reason says what Lookout lacks.
    Refused { quiet: Quiet, reason: &'static str },
    /// Has no effect; a warning names it unless its value is `quiet`.
    Ignored { quiet: Quiet, reason: &'static str },
}

/// Which of Permify's tracer settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TracerField {
    Enabled,
    Exporter,
    Endpoint,
    Insecure,
    Protocol,
}

/// Which of Permify's TLS settings of a port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsField {
    Enabled,
    Cert,
    Key,
}

/// Permify's key of `field` of `port`'s TLS (`server.grpc.tls.cert`).
pub const fn tls_key(port: Port, field: TlsField) -> &'static str {
    match (port, field) {
        (Port::Grpc, TlsField::Enabled) => "server.grpc.tls.enabled",
        (Port::Grpc, TlsField::Cert) => "server.grpc.tls.cert",
        (Port::Grpc, TlsField::Key) => "server.grpc.tls.key",
        (Port::Http, TlsField::Enabled) => "server.http.tls.enabled",
        (Port::Http, TlsField::Cert) => "server.http.tls.cert",
        (Port::Http, TlsField::Key) => "server.http.tls.key",
    }
}

/// The value of a refused or ignored key that asks for nothing (besides null and empty text or
/// lists, which always do).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quiet {
    /// `false`.
    False,
    /// `true`.
    True,
    /// Only null or empty.
    Empty,
}

/// One of Permify's settings.
#[derive(Debug, Clone, Copy)]
pub struct PermifyKey {
    /// Its key in Permify's file, dotted as Permify's reference writes it.
    pub key: &'static str,
    /// Its `PERMIFY_*` environment variable, if Permify has one.
    pub env: Option<&'static str>,
    pub treatment: Treatment,
}

const fn setting(key: &'static str, env: &'static str, to: &'static str) -> PermifyKey {
    PermifyKey {
        key,
        env: if env.is_empty() { None } else { Some(env) },
        treatment: Treatment::Setting(to),
    }
}

const fn refused(
    key: &'static str,
    env: &'static str,
    quiet: Quiet,
    reason: &'static str,
) -> PermifyKey {
    PermifyKey {
        key,
        env: if env.is_empty() { None } else { Some(env) },
        treatment: Treatment::Refused { quiet, reason },
    }
}

const fn ignored(
    key: &'static str,
    env: &'static str,
    quiet: Quiet,
    reason: &'static str,
) -> PermifyKey {
    PermifyKey {
        key,
        env: if env.is_empty() { None } else { Some(env) },
        treatment: Treatment::Ignored { quiet, reason },
    }
}

const fn tls(port: Port, field: TlsField, env: &'static str) -> PermifyKey {
    PermifyKey {
        key: tls_key(port, field),
        env: Some(env),
        treatment: Treatment::Tls(port, field),
    }
}

const fn tracer(key: &'static str, env: &'static str, field: TracerField) -> PermifyKey {
    PermifyKey {
        key,
        env: Some(env),
        treatment: Treatment::Tracer(field),
    }
}

const NO_PROFILER: &str = "there is no pprof profiler";
const NO_CLUSTER: &str =
    "Lookout has no distributed mode; replicas share the PostgreSQL database instead";
const NO_PUSHED_METRICS: &str =
    "Lookout does not push metrics; it serves Prometheus metrics at /metrics on the HTTP port";
const NO_LOG_EXPORT: &str = "Lookout writes logs to standard error only (log-format text or json)";
const OWN_CACHE: &str = "Lookout's result cache is sized by cache-capacity";
const OWN_SCHEMAS: &str = "Lookout keeps compiled schemas by schema-versions-retained";
const OWN_POOL: &str = "Lookout's connection pool is sized by database-max-connections alone";
const OWN_HISTORY: &str = "Lookout deletes revisions older than watch-retention itself; there is no separate garbage collector";
const ONE_DATABASE: &str =
    "separate writer and reader databases are not supported; set database.uri";
const NO_RATE: &str = "Lookout bounds calls in flight (max-inflight), not calls per second";

/// Every key of Permify's configuration reference, with its environment variable.
pub const KEYS: &[PermifyKey] = &[
    ignored(
        "account_id",
        "PERMIFY_ACCOUNT_ID",
        Quiet::Empty,
        "Lookout has no account",
    ),
    ignored(
        "server.address",
        "",
        Quiet::Empty,
        "Lookout binds to host (--host)",
    ),
    ignored(
        "server.rate_limit",
        "PERMIFY_RATE_LIMIT",
        Quiet::Empty,
        NO_RATE,
    ),
    setting("server.grpc.port", "PERMIFY_GRPC_PORT", "grpc-port"),
    tls(Port::Grpc, TlsField::Enabled, "PERMIFY_GRPC_TLS_ENABLED"),
    tls(Port::Grpc, TlsField::Cert, "PERMIFY_GRPC_TLS_CERT_PATH"),
    tls(Port::Grpc, TlsField::Key, "PERMIFY_GRPC_TLS_KEY_PATH"),
    refused(
        "server.http.enabled",
        "PERMIFY_HTTP_ENABLED",
        Quiet::True,
        "the HTTP/JSON API is always served, on http-port",
    ),
    setting("server.http.port", "PERMIFY_HTTP_PORT", "http-port"),
    tls(Port::Http, TlsField::Enabled, "PERMIFY_HTTP_TLS_ENABLED"),
    tls(Port::Http, TlsField::Cert, "PERMIFY_HTTP_TLS_CERT_PATH"),
    tls(Port::Http, TlsField::Key, "PERMIFY_HTTP_TLS_KEY_PATH"),
    setting(
        "server.http.cors_allowed_origins",
        "PERMIFY_HTTP_CORS_ALLOWED_ORIGINS",
        "cors-allowed-origins",
    ),
    setting(
        "server.http.cors_allowed_headers",
        "PERMIFY_HTTP_CORS_ALLOWED_HEADERS",
        "cors-allowed-headers",
    ),
    refused(
        "profiler.enabled",
        "PERMIFY_PROFILER_ENABLED",
        Quiet::False,
        NO_PROFILER,
    ),
    ignored(
        "profiler.port",
        "PERMIFY_PROFILER_PORT",
        Quiet::Empty,
        NO_PROFILER,
    ),
    setting("logger.level", "PERMIFY_LOG_LEVEL", "log-level"),
    setting("logger.output", "PERMIFY_LOG_OUTPUT", "log-format"),
    refused(
        "logger.enabled",
        "PERMIFY_LOG_ENABLED",
        Quiet::False,
        NO_LOG_EXPORT,
    ),
    ignored(
        "logger.exporter",
        "PERMIFY_LOG_EXPORTER",
        Quiet::Empty,
        NO_LOG_EXPORT,
    ),
    ignored(
        "logger.endpoint",
        "PERMIFY_LOG_ENDPOINT",
        Quiet::Empty,
        NO_LOG_EXPORT,
    ),
    ignored(
        "logger.insecure",
        "PERMIFY_LOG_INSECURE",
        Quiet::Empty,
        NO_LOG_EXPORT,
    ),
    ignored(
        "logger.urlpath",
        "PERMIFY_LOG_URL_PATH",
        Quiet::Empty,
        NO_LOG_EXPORT,
    ),
    ignored(
        "logger.headers",
        "PERMIFY_LOG_HEADERS",
        Quiet::Empty,
        NO_LOG_EXPORT,
    ),
    ignored(
        "logger.protocol",
        "PERMIFY_LOG_PROTOCOL",
        Quiet::Empty,
        NO_LOG_EXPORT,
    ),
    setting("authn.enabled", "PERMIFY_AUTHN_ENABLED", "authn-enabled"),
    setting("authn.method", "PERMIFY_AUTHN_METHOD", "authn-method"),
    setting(
        "authn.preshared.keys",
        "PERMIFY_AUTHN_PRESHARED_KEYS",
        "authn-preshared-keys",
    ),
    setting(
        "authn.oidc.issuer",
        "PERMIFY_AUTHN_OIDC_ISSUER",
        "authn-oidc-issuer",
    ),
    setting(
        "authn.oidc.audience",
        "PERMIFY_AUTHN_OIDC_AUDIENCE",
        "authn-oidc-audience",
    ),
    setting("authn.oidc.client_id", "", "authn-oidc-audience"),
    setting(
        "authn.oidc.refresh_interval",
        "PERMIFY_AUTHN_OIDC_REFRESH_INTERVAL",
        "authn-oidc-refresh-interval",
    ),
    ignored(
        "authn.oidc.backoff_interval",
        "PERMIFY_AUTHN_OIDC_BACKOFF_INTERVAL",
        Quiet::Empty,
        "Lookout refetches keys at most every authn-oidc-min-refresh-interval",
    ),
    ignored(
        "authn.oidc.backoff_max_retries",
        "PERMIFY_AUTHN_OIDC_BACKOFF_RETRIES",
        Quiet::Empty,
        "Lookout refetches keys at most every authn-oidc-min-refresh-interval",
    ),
    setting(
        "authn.oidc.valid_methods",
        "PERMIFY_AUTHN_OIDC_VALID_METHODS",
        "authn-oidc-algorithms",
    ),
    tracer(
        "tracer.enabled",
        "PERMIFY_TRACER_ENABLED",
        TracerField::Enabled,
    ),
    tracer(
        "tracer.exporter",
        "PERMIFY_TRACER_EXPORTER",
        TracerField::Exporter,
    ),
    tracer(
        "tracer.endpoint",
        "PERMIFY_TRACER_ENDPOINT",
        TracerField::Endpoint,
    ),
    tracer(
        "tracer.insecure",
        "PERMIFY_TRACER_INSECURE",
        TracerField::Insecure,
    ),
    tracer(
        "tracer.protocol",
        "PERMIFY_TRACER_PROTOCOL",
        TracerField::Protocol,
    ),
    ignored(
        "tracer.urlpath",
        "PERMIFY_TRACER_URL_PATH",
        Quiet::Empty,
        "Lookout exports traces over OTLP/gRPC, which has no URL path",
    ),
    ignored(
        "tracer.headers",
        "PERMIFY_TRACER_HEADERS",
        Quiet::Empty,
        "Lookout sends no extra headers to the trace collector",
    ),
    ignored(
        "meter.enabled",
        "PERMIFY_METER_ENABLED",
        Quiet::False,
        NO_PUSHED_METRICS,
    ),
    ignored(
        "meter.exporter",
        "PERMIFY_METER_EXPORTER",
        Quiet::Empty,
        NO_PUSHED_METRICS,
    ),
    ignored(
        "meter.endpoint",
        "PERMIFY_METER_ENDPOINT",
        Quiet::Empty,
        NO_PUSHED_METRICS,
    ),
    ignored(
        "meter.insecure",
        "PERMIFY_METER_INSECURE",
        Quiet::Empty,
        NO_PUSHED_METRICS,
    ),
    ignored(
        "meter.urlpath",
        "PERMIFY_METER_URL_PATH",
        Quiet::Empty,
        NO_PUSHED_METRICS,
    ),
    ignored(
        "meter.headers",
        "PERMIFY_METER_HEADERS",
        Quiet::Empty,
        NO_PUSHED_METRICS,
    ),
    ignored(
        "meter.interval",
        "PERMIFY_METER_INTERVAL",
        Quiet::Empty,
        NO_PUSHED_METRICS,
    ),
    ignored(
        "meter.protocol",
        "PERMIFY_METER_PROTOCOL",
        Quiet::Empty,
        NO_PUSHED_METRICS,
    ),
    ignored(
        "service.circuit_breaker",
        "PERMIFY_SERVICE_CIRCUIT_BREAKER",
        Quiet::False,
        "Lookout sheds load by max-inflight and request-timeout instead of a circuit breaker",
    ),
    setting(
        "service.watch.enabled",
        "PERMIFY_SERVICE_WATCH_ENABLED",
        "watch",
    ),
    ignored(
        "service.schema.cache.number_of_counters",
        "PERMIFY_SERVICE_SCHEMA_CACHE_NUMBER_OF_COUNTERS",
        Quiet::Empty,
        OWN_SCHEMAS,
    ),
    ignored(
        "service.schema.cache.max_cost",
        "PERMIFY_SERVICE_SCHEMA_CACHE_MAX_COST",
        Quiet::Empty,
        OWN_SCHEMAS,
    ),
    setting(
        "service.permission.bulk_limit",
        "PERMIFY_SERVICE_PERMISSION_BULK_LIMIT",
        "max-bulk-check",
    ),
    ignored(
        "service.permission.concurrency_limit",
        "PERMIFY_SERVICE_PERMISSION_CONCURRENCY_LIMIT",
        Quiet::Empty,
        "Lookout evaluates a check's branches without a separate limit; max-inflight bounds calls",
    ),
    ignored(
        "service.permission.cache.number_of_counters",
        "PERMIFY_SERVICE_PERMISSION_CACHE_NUMBER_OF_COUNTERS",
        Quiet::Empty,
        OWN_CACHE,
    ),
    ignored(
        "service.permission.cache.max_cost",
        "PERMIFY_SERVICE_PERMISSION_CACHE_MAX_COST",
        Quiet::Empty,
        OWN_CACHE,
    ),
    setting(
        "database.engine",
        "PERMIFY_DATABASE_ENGINE",
        "database-engine",
    ),
    setting("database.uri", "PERMIFY_DATABASE_URI", "database-uri"),
    refused(
        "database.writer.uri",
        "PERMIFY_DATABASE_WRITER_URI",
        Quiet::Empty,
        ONE_DATABASE,
    ),
    refused(
        "database.reader.uri",
        "PERMIFY_DATABASE_READER_URI",
        Quiet::Empty,
        ONE_DATABASE,
    ),
    setting(
        "database.auto_migrate",
        "PERMIFY_DATABASE_AUTO_MIGRATE",
        "auto-migrate",
    ),
    setting(
        "database.max_open_connections",
        "PERMIFY_DATABASE_MAX_OPEN_CONNECTIONS",
        "database-max-connections",
    ),
    setting(
        "database.max_connections",
        "PERMIFY_DATABASE_MAX_CONNECTIONS",
        "database-max-connections",
    ),
    ignored(
        "database.max_idle_connections",
        "PERMIFY_DATABASE_MAX_IDLE_CONNECTIONS",
        Quiet::Empty,
        OWN_POOL,
    ),
    ignored(
        "database.min_connections",
        "PERMIFY_DATABASE_MIN_CONNECTIONS",
        Quiet::Empty,
        OWN_POOL,
    ),
    ignored(
        "database.min_idle_connections",
        "PERMIFY_DATABASE_MIN_IDLE_CONNECTIONS",
        Quiet::Empty,
        OWN_POOL,
    ),
    ignored(
        "database.max_connection_lifetime",
        "PERMIFY_DATABASE_MAX_CONNECTION_LIFETIME",
        Quiet::Empty,
        OWN_POOL,
    ),
    ignored(
        "database.max_connection_lifetime_jitter",
        "PERMIFY_DATABASE_MAX_CONNECTION_LIFETIME_JITTER",
        Quiet::Empty,
        OWN_POOL,
    ),
    ignored(
        "database.max_connection_idle_time",
        "PERMIFY_DATABASE_MAX_CONNECTION_IDLE_TIME",
        Quiet::Empty,
        OWN_POOL,
    ),
    ignored(
        "database.health_check_period",
        "PERMIFY_DATABASE_HEALTH_CHECK_PERIOD",
        Quiet::Empty,
        OWN_POOL,
    ),
    ignored(
        "database.max_data_per_write",
        "PERMIFY_DATABASE_MAX_DATA_PER_WRITE",
        Quiet::Empty,
        "Lookout bounds one write by max-batch-size",
    ),
    ignored(
        "database.max_retries",
        "PERMIFY_DATABASE_MAX_RETRIES",
        Quiet::Empty,
        "Lookout does not retry failed transactions itself",
    ),
    ignored(
        "database.watch_buffer_size",
        "PERMIFY_DATABASE_WATCH_BUFFER_SIZE",
        Quiet::Empty,
        "Lookout buffers stream messages by stream-buffer",
    ),
    ignored(
        "database.garbage_collection.enabled",
        "PERMIFY_DATABASE_GARBAGE_COLLECTION_ENABLED",
        Quiet::False,
        OWN_HISTORY,
    ),
    ignored(
        "database.garbage_collection.enable",
        "",
        Quiet::Empty,
        OWN_HISTORY,
    ),
    ignored(
        "database.garbage_collection.interval",
        "PERMIFY_DATABASE_GARBAGE_COLLECTION_INTERVAL",
        Quiet::Empty,
        OWN_HISTORY,
    ),
    ignored(
        "database.garbage_collection.timeout",
        "PERMIFY_DATABASE_GARBAGE_COLLECTION_TIMEOUT",
        Quiet::Empty,
        OWN_HISTORY,
    ),
    ignored(
        "database.garbage_collection.window",
        "PERMIFY_DATABASE_GARBAGE_COLLECTION_WINDOW",
        Quiet::Empty,
        OWN_HISTORY,
    ),
    ignored(
        "database.garbage_collection.number_of_threads",
        "",
        Quiet::Empty,
        OWN_HISTORY,
    ),
    refused(
        "distributed.enabled",
        "PERMIFY_DISTRIBUTED_ENABLED",
        Quiet::False,
        NO_CLUSTER,
    ),
    ignored(
        "distributed.address",
        "PERMIFY_DISTRIBUTED_ADDRESS",
        Quiet::Empty,
        NO_CLUSTER,
    ),
    ignored(
        "distributed.port",
        "PERMIFY_DISTRIBUTED_PORT",
        Quiet::Empty,
        NO_CLUSTER,
    ),
    ignored("distributed.seed_nodes", "", Quiet::Empty, NO_CLUSTER),
    ignored("distributed.advertise_port", "", Quiet::Empty, NO_CLUSTER),
];

/// The table entry whose file key, flattened as the file is (`server-grpc-port`), is `flat`.
pub fn by_flat_key(flat: &str) -> Option<&'static PermifyKey> {
    KEYS.iter().find(|k| flatten_key(k.key) == flat)
}

/// The table entry of Permify's key `key` (dotted, as the table writes it).
pub fn by_key(key: &str) -> Option<&'static PermifyKey> {
    KEYS.iter().find(|k| k.key == key)
}

/// The table entry of the environment variable `name`.
pub fn by_env(name: &str) -> Option<&'static PermifyKey> {
    KEYS.iter().find(|k| k.env == Some(name))
}

/// A dotted Permify key as the file reader flattens it: `.` and `_` become `-`.
pub fn flatten_key(key: &str) -> String {
    key.replace(['.', '_'], "-")
}

/// Whether `value` asks for nothing, for a key that is quiet at `quiet`.
pub fn is_quiet(value: &serde_norway::Value, quiet: Quiet) -> bool {
    use serde_norway::Value;
    match value {
        Value::Null => true,
        Value::String(s) if s.trim().is_empty() => true,
        Value::Sequence(items) if items.is_empty() => true,
        Value::Bool(b) => match quiet {
            Quiet::False => !b,
            Quiet::True => *b,
            Quiet::Empty => false,
        },
        Value::String(s) => match quiet {
            Quiet::False => s.eq_ignore_ascii_case("false"),
            Quiet::True => s.eq_ignore_ascii_case("true"),
            Quiet::Empty => false,
        },
        _ => false,
    }
}

/// The text after "not supported by Lookout" or "has no effect in Lookout" for `treatment`.
pub fn reason(treatment: Treatment) -> Option<&'static str> {
    match treatment {
        Treatment::Refused { reason, .. } | Treatment::Ignored { reason, .. } => Some(reason),
        Treatment::Setting(_) | Treatment::Tracer(_) | Treatment::Tls(..) => None,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic, reason = "tests fail by panicking")]
mod tests {
    use super::*;

    #[test]
    fn every_setting_names_a_lookout_key_and_names_are_unique() {
        let keys = crate::config::valid_keys();
        for (i, entry) in KEYS.iter().enumerate() {
            let sets: &[&str] = match entry.treatment {
                Treatment::Setting(to) => &[to],
                Treatment::Tls(port, _) => &[port.cert_setting(), port.key_setting()],
                _ => &[],
            };
            for to in sets {
                assert!(
                    keys.iter().any(|k| k == to),
                    "{} sets unknown {to}",
                    entry.key
                );
            }
            for other in &KEYS[i + 1..] {
                assert_ne!(
                    flatten_key(entry.key),
                    flatten_key(other.key),
                    "{}",
                    entry.key
                );
                if entry.env.is_some() {
                    assert_ne!(entry.env, other.env, "{}", entry.key);
                }
            }
            if let Some(env) = entry.env {
                assert!(env.starts_with("PERMIFY_"), "{env}");
            }
        }
    }
}
