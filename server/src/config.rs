//! Configuration of `lookout serve`: the command-line flags (each also a `LOOKOUT_*` environment
//! variable), the optional YAML file named by `--config`, and their resolution into one
//! [`Config`].
//!
//! Precedence, highest first: flag, environment variable, config file, built-in default. Each
//! setting is declared once, in the `settings!` list of [`ServeArgs`] (or of
//! [`HardeningArgs`]), which makes its flag, its environment variable and its file key (see
//! `config/layer.rs`). The defaults are the subsystems' own (`Limits::default()`,
//! `Retention::default()`, [`PgSettings::default()`], ...), assembled by [`Config::default`] and
//! quoted in each flag's help; `Config::merge` lays the flags over the file over them, one
//! line per setting.
//!
//! Config sits above every layer it configures: each subsystem owns its settings type, and
//! this module only assembles them.
//!
//! The file's keys are the flag names without the leading dashes (`grpc-port: 3478`); snake_case
//! spellings (`grpc_port`) and nested mappings (`authn: {method: x}`) are accepted too. Permify's
//! keys and `PERMIFY_*` variables are read as well, below Lookout's own names (see
//! `config/permify.rs`), so that a Permify deployment's configuration works unchanged. Unknown
//! keys are an error naming the key and listing every valid one; a value that does not fit names
//! its key and what it accepts.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, ValueEnum};
use serde::Deserialize;

use self::layer::settings;
use self::permify::{TlsField, TracerField, Treatment};
use crate::auth::AuthnSettings;
use crate::connections::ConnectionLimits;
pub use crate::http::CorsSettings;
use crate::limits::TrafficLimits;
use crate::service::Limits;
pub use crate::storage::postgres::PgSettings;
use crate::storage::postgres::{WatchRetention, parse_watch_retention};
pub use crate::telemetry::LogFormat;
use crate::telemetry::TelemetrySettings;
use crate::tenants::Retention;
use crate::tls::Port;
pub use crate::tls::TlsSettings;
pub use crate::units::parse_duration;

mod hardening;
mod layer;
pub mod permify;
pub mod reference;
pub use hardening::HardeningArgs;

/// Where the data lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DatabaseEngine {
    /// In process memory; nothing survives a restart.
    Memory,
    /// A PostgreSQL database named by `--database-uri`.
    Postgres,
}

settings! {
    /// The flags of `lookout serve`.
    #[derive(Debug, Clone, Default, Args)]
    pub struct ServeArgs, file ServeFile {
        before {
            /// YAML file with any of the settings below; keys are the flag names
            /// (`grpc-port: 3478`), or Permify's keys (see "Permify configuration"). Flags and
            /// environment variables override it.
            #[arg(short = 'c', long, value_name = "FILE", env = "LOOKOUT_CONFIG")]
            pub config: Option<PathBuf>,
        }
        after {
            /// Authentication, traffic limits and telemetry (see `config/hardening.rs`).
            #[command(flatten)]
            pub hardening: HardeningArgs,
        }
        file_only {}

        /// Address to listen on for both gRPC and HTTP: an IP address, or a host name such as
        /// `localhost` resolved when the server binds [default: 0.0.0.0, every interface].
        #[arg(long, value_name = "HOST", env = "LOOKOUT_HOST")]
        pub host: Option<Host>,

        /// gRPC port; 0 picks a free port [default: 3478].
        #[arg(long, value_name = "PORT", env = "LOOKOUT_GRPC_PORT")]
        pub grpc_port: Option<u16>,

        /// HTTP/JSON port; 0 picks a free port [default: 3476].
        #[arg(long, value_name = "PORT", env = "LOOKOUT_HTTP_PORT")]
        pub http_port: Option<u16>,

        /// Storage backend [default: memory].
        #[arg(
            long,
            value_enum,
            value_name = "ENGINE",
            env = "LOOKOUT_DATABASE_ENGINE"
        )]
        pub database_engine: Option<DatabaseEngine>,

        /// Database connection URI (for `postgres`).
        #[arg(long, value_name = "URI", env = "LOOKOUT_DATABASE_URI")]
        pub database_uri: Option<String>,

        /// Apply pending PostgreSQL migrations at start [default: true]; `--auto-migrate=false`
        /// requires `lookout migrate up` first.
        #[arg(
            long,
            value_name = "BOOL",
            env = "LOOKOUT_AUTO_MIGRATE",
            num_args = 0..=1,
            require_equals = true,
            default_missing_value = "true",
            value_parser = clap::builder::BoolishValueParser::new(),
        )]
        pub auto_migrate: Option<bool>,

        /// Most PostgreSQL connections per server [default: 20].
        #[arg(long, value_name = "N", env = "LOOKOUT_DATABASE_MAX_CONNECTIONS")]
        pub database_max_connections: Option<u32>,

        /// How long a read carrying a snap token waits for this server to reach its revision
        /// (PostgreSQL; replicas follow the database within milliseconds) before it fails with
        /// UNAVAILABLE [default: 5s].
        #[arg(long, value_name = "DURATION", env = "LOOKOUT_SNAP_TOKEN_WAIT", value_parser = parse_duration)]
        pub snap_token_wait: Option<Duration>,

        /// How far back Watch can resume from a snap token (PostgreSQL): an age such as `24h`, or a
        /// count such as `100000 revisions`; older revisions are deleted [default: 24h].
        #[arg(long, value_name = "WINDOW", env = "LOOKOUT_WATCH_RETENTION", value_parser = parse_watch_retention)]
        pub watch_retention: Option<WatchRetention>,

        /// Serve the Watch API [default: true]; `--watch=false` turns it off.
        #[arg(
            long,
            value_name = "BOOL",
            env = "LOOKOUT_WATCH",
            num_args = 0..=1,
            require_equals = true,
            default_missing_value = "true",
            value_parser = clap::builder::BoolishValueParser::new(),
        )]
        pub watch: Option<bool>,

        /// Log filter: a level (`error`, `warn`, `info`, `debug`, `trace`) or tracing directives
        /// such as `info,lookout_server=debug` [default: info].
        #[arg(long, value_name = "FILTER", env = "LOOKOUT_LOG_LEVEL")]
        pub log_level: Option<String>,

        /// Log line format [default: text].
        #[arg(long, value_enum, value_name = "FORMAT", env = "LOOKOUT_LOG_FORMAT")]
        pub log_format: Option<LogFormat>,

        /// Largest request accepted: HTTP body or gRPC message, in bytes [default: 4194304].
        #[arg(long, value_name = "BYTES", env = "LOOKOUT_MAX_REQUEST_BYTES")]
        pub max_request_bytes: Option<usize>,

        /// Depth used when a request's `metadata.depth` is 0 [default: 50].
        #[arg(long, value_name = "N", env = "LOOKOUT_DEFAULT_DEPTH")]
        pub default_depth: Option<u32>,

        /// Page size of reads when a request's `page_size` is 0 [default: 100].
        #[arg(long, value_name = "N", env = "LOOKOUT_DEFAULT_PAGE_SIZE")]
        pub default_page_size: Option<u32>,

        /// Largest `page_size` accepted [default: 100].
        #[arg(long, value_name = "N", env = "LOOKOUT_MAX_PAGE_SIZE")]
        pub max_page_size: Option<u32>,

        /// Most tuples plus attributes in one write, delete or bundle run [default: 100000].
        #[arg(long, value_name = "N", env = "LOOKOUT_MAX_BATCH_SIZE")]
        pub max_batch_size: Option<usize>,

        /// Most items in one bulk check [default: 100].
        #[arg(long, value_name = "N", env = "LOOKOUT_MAX_BULK_CHECK")]
        pub max_bulk_check: Option<usize>,

        /// Messages buffered per open stream before the producer waits [default: 1024].
        #[arg(long, value_name = "N", env = "LOOKOUT_STREAM_BUFFER")]
        pub stream_buffer: Option<usize>,

        /// Weight of the result cache: a check answer counts 1, a lookup result its bytes / 64,
        /// each 1 more per 64 bytes of its request; 0 turns the cache off [default: 1000000].
        #[arg(long, value_name = "N", env = "LOOKOUT_CACHE_CAPACITY")]
        pub cache_capacity: Option<u64>,

        /// Cache the answers of a permission's checks once they visit this many members on average
        /// (a moving average per permission and schema version); cheaper checks are evaluated
        /// every time, which costs less than caching them. 0 caches every check [default: 64].
        #[arg(long, value_name = "N", env = "LOOKOUT_CACHE_CHECK_MIN_VISITS")]
        pub cache_check_min_visits: Option<u32>,

        /// Snapshots kept per tenant for continuous tokens: with the memory store, the newest of
        /// those a token was issued for; a PostgreSQL replica keeps the latest ones [default: 1024].
        #[arg(long, value_name = "N", env = "LOOKOUT_RETAINED_SNAPSHOTS")]
        pub retained_snapshots: Option<usize>,

        /// Committed writes kept per tenant for Watch to replay from a snap token [default: 100000].
        #[arg(long, value_name = "N", env = "LOOKOUT_RETAINED_CHANGES")]
        pub retained_changes: Option<usize>,

        /// Changed tuples and attributes kept per tenant for Watch replay, over all retained writes:
        /// the oldest writes go first when their changes exceed it (the newest write is always
        /// kept) [default: 1000000].
        #[arg(long, value_name = "N", env = "LOOKOUT_RETAINED_CHANGE_ITEMS")]
        pub retained_change_items: Option<usize>,

        /// Schema versions kept compiled per tenant, the newest ones; older versions keep only
        /// their source and are compiled again when a request names them [default: 4].
        #[arg(long, value_name = "N", env = "LOOKOUT_SCHEMA_VERSIONS_RETAINED")]
        pub schema_versions_retained: Option<usize>,

        /// Most tenants this server holds, the default tenant included; creating one more is
        /// RESOURCE_EXHAUSTED (with PostgreSQL, counted over the tenants this replica knows)
        /// [default: 10000].
        #[arg(long, value_name = "N", env = "LOOKOUT_MAX_TENANTS")]
        pub max_tenants: Option<usize>,

        /// How long a shutdown waits for requests in flight, e.g. `10s`, `500ms`, `2m`, or seconds
        /// [default: 10s].
        #[arg(long, value_name = "DURATION", env = "LOOKOUT_SHUTDOWN_TIMEOUT", value_parser = parse_duration)]
        pub shutdown_timeout: Option<Duration>,
    }
}

/// The settings of a running server, after resolving flags, environment and file.
#[derive(Debug, Clone)]
pub struct Config {
    pub host: Host,
    pub grpc_port: u16,
    pub http_port: u16,
    pub database_engine: DatabaseEngine,
    pub database_uri: Option<String>,
    pub watch: bool,
    pub log_level: String,
    pub log_format: LogFormat,
    pub max_request_bytes: usize,
    pub shutdown_timeout: Duration,
    pub limits: Limits,
    pub retention: Retention,
    /// Most tenants the server holds.
    pub max_tenants: usize,
    /// Weight capacity of the result cache; 0 turns it off.
    pub cache_capacity: u64,
    /// Checks are cached once their permission's checks visit this many members on average.
    pub cache_check_min_visits: u32,
    pub postgres: PgSettings,
    /// Authentication of API calls.
    pub authn: AuthnSettings,
    /// Load shedding, stream limit and deadlines.
    pub traffic: TrafficLimits,
    /// Connection limit and timeouts of both listeners.
    pub connections: ConnectionLimits,
    /// TLS of each port.
    pub tls: TlsSettings,
    /// CORS on the HTTP port.
    pub cors: CorsSettings,
    /// OpenTelemetry export.
    pub telemetry: TelemetrySettings,
    /// Settings that were read but have no effect (Permify's keys and `PERMIFY_*` variables
    /// Lookout ignores), one line each, for the server to log as warnings once logging is up.
    pub warnings: Vec<String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            host: Host::Ip(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
            grpc_port: 3478,
            http_port: 3476,
            database_engine: DatabaseEngine::Memory,
            database_uri: None,
            watch: true,
            log_level: "info".to_owned(),
            log_format: LogFormat::Text,
            max_request_bytes: 4 * 1024 * 1024,
            shutdown_timeout: Duration::from_secs(10),
            limits: Limits::default(),
            retention: Retention::default(),
            max_tenants: crate::tenants::DEFAULT_MAX_TENANTS,
            cache_capacity: crate::service::DEFAULT_CACHE_CAPACITY,
            cache_check_min_visits: crate::cache::DEFAULT_CHECK_MIN_VISITS,
            postgres: PgSettings::default(),
            authn: AuthnSettings::default(),
            traffic: TrafficLimits::default(),
            connections: ConnectionLimits::default(),
            tls: TlsSettings::default(),
            cors: CorsSettings::default(),
            telemetry: TelemetrySettings::default(),
            warnings: Vec::new(),
        }
    }
}

/// The address to listen on: an IP address, or a host name resolved when the server binds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    Ip(IpAddr),
    Name(String),
}

impl From<IpAddr> for Host {
    fn from(ip: IpAddr) -> Host {
        Host::Ip(ip)
    }
}

impl std::str::FromStr for Host {
    type Err = String;

    fn from_str(text: &str) -> Result<Host, String> {
        let text = text.trim();
        if let Ok(ip) = text.parse::<IpAddr>() {
            return Ok(Host::Ip(ip));
        }
        // `[::1]`, as written in URLs.
        if let Some(ip) = text
            .strip_prefix('[')
            .and_then(|t| t.strip_suffix(']'))
            .and_then(|t| t.parse::<IpAddr>().ok())
        {
            return Ok(Host::Ip(ip));
        }
        let valid_label = |label: &str| {
            !label.is_empty()
                && label.len() <= 63
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        };
        let name = text.strip_suffix('.').unwrap_or(text);
        if !name.is_empty() && name.len() <= 253 && name.split('.').all(valid_label) {
            Ok(Host::Name(name.to_owned()))
        } else {
            Err(format!("`{text}` is neither an IP address nor a host name"))
        }
    }
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Ip(ip) => ip.fmt(f),
            Host::Name(name) => f.write_str(name),
        }
    }
}

/// A setting that is missing, malformed or out of range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

/// The config file and the `PERMIFY_*` environment: the settings of [`ServeArgs`] and of
/// [`HardeningArgs`], every one optional, and the warnings about what was read but ignored.
#[derive(Debug, Default)]
struct FileConfig {
    serve: ServeFile,
    hardening: hardening::HardeningFile,
    warnings: Vec<String>,
}

/// A value of the file or environment, with the name it was given under (for errors).
struct Sourced {
    /// `grpc-port`, `server.grpc.port (grpc-port)` or `PERMIFY_GRPC_PORT (grpc-port)`.
    origin: String,
    /// Whether it came from a `PERMIFY_*` variable, which wins over Permify's file keys.
    from_env: bool,
    value: serde_norway::Value,
}

/// What Permify's keys and variables said, gathered before it is laid under Lookout's own keys.
#[derive(Default)]
struct PermifyRead {
    /// Lookout's settings from Permify's names.
    theirs: Vec<(String, Sourced)>,
    tracer: Tracer,
    /// Permify's TLS settings of the gRPC and the HTTP port.
    grpc_tls: PermifyTls,
    http_tls: PermifyTls,
    /// Warnings about ignored keys, with the key each is about.
    ignored: Vec<(&'static str, String)>,
    /// The sections switched on or off (`meter` by `meter.enabled`), and whether by a variable.
    switches: Vec<(&'static str, bool, bool)>,
}

impl PermifyRead {
    /// Applies one of Permify's settings, given as `name` (its key or variable), per its
    /// treatment.
    fn apply(
        &mut self,
        entry: &'static permify::PermifyKey,
        name: &str,
        from_env: bool,
        value: serde_norway::Value,
    ) -> Result<(), String> {
        if let Some(section) = entry
            .key
            .strip_suffix(".enabled")
            .or_else(|| entry.key.strip_suffix(".enable"))
            && let Some(on) = bool_of(&value)
        {
            self.switches.push((section, on, from_env));
        }
        match entry.treatment {
            Treatment::Setting(to) => put(
                &mut self.theirs,
                to.to_owned(),
                Sourced {
                    origin: format!("{name} ({to})"),
                    from_env,
                    value,
                },
            ),
            Treatment::Tracer(field) => {
                self.tracer.set(
                    field,
                    Sourced {
                        origin: name.to_owned(),
                        from_env,
                        value,
                    },
                );
                Ok(())
            }
            Treatment::Tls(port, field) => {
                let tls = match port {
                    Port::Grpc => &mut self.grpc_tls,
                    Port::Http => &mut self.http_tls,
                };
                tls.set(
                    field,
                    Sourced {
                        origin: name.to_owned(),
                        from_env,
                        value,
                    },
                );
                Ok(())
            }
            Treatment::Refused { quiet, reason } => {
                if permify::is_quiet(&value, quiet) {
                    Ok(())
                } else {
                    Err(format!("{name}: not supported by Lookout: {reason}"))
                }
            }
            Treatment::Ignored { quiet, reason } => {
                if !permify::is_quiet(&value, quiet) {
                    self.ignored
                        .push((entry.key, format!("{name} is ignored: {reason}")));
                }
                Ok(())
            }
        }
    }

    /// Whether `key` is in a section switched off (`meter.endpoint` with `meter.enabled:
    /// false`): its value then asks for nothing, in Permify as here. A variable wins over the file.
    fn switched_off(&self, key: &str) -> bool {
        self.switches
            .iter()
            .filter(|(section, _, _)| {
                key.strip_prefix(section)
                    .is_some_and(|rest| rest.starts_with('.'))
            })
            .max_by_key(|(_, _, from_env)| *from_env)
            .is_some_and(|(_, on, _)| !on)
    }
}

/// Permify's tracer settings, applied together (see [`Tracer::resolve`]).
#[derive(Default)]
struct Tracer {
    enabled: Option<Sourced>,
    exporter: Option<Sourced>,
    endpoint: Option<Sourced>,
    insecure: Option<Sourced>,
    protocol: Option<Sourced>,
}

/// Sets `slot` to `value` unless it holds a variable's value and `value` is from the file (a
/// `PERMIFY_*` variable wins over the file).
fn keep_over_file(slot: &mut Option<Sourced>, value: Sourced) {
    if slot
        .as_ref()
        .is_none_or(|old| value.from_env || !old.from_env)
    {
        *slot = Some(value);
    }
}

impl Tracer {
    fn set(&mut self, field: TracerField, value: Sourced) {
        let slot = match field {
            TracerField::Enabled => &mut self.enabled,
            TracerField::Exporter => &mut self.exporter,
            TracerField::Endpoint => &mut self.endpoint,
            TracerField::Insecure => &mut self.insecure,
            TracerField::Protocol => &mut self.protocol,
        };
        keep_over_file(slot, value);
    }

    /// With `tracer.enabled`, the OTLP endpoint Lookout exports to (`otel-endpoint`); Permify's
    /// other exporters and OTLP over HTTP are refused.
    fn resolve(self, warnings: &mut Vec<String>) -> Result<Option<Sourced>, String> {
        let Some(enabled) = self.enabled else {
            return Ok(None);
        };
        if !bool_of(&enabled.value)
            .ok_or_else(|| format!("{}: expected true or false", enabled.origin))?
        {
            return Ok(None);
        }
        let text = |s: &Sourced| text_of(&s.value).unwrap_or_default();
        match &self.exporter {
            Some(e) if text(e) == "otlp" => {}
            Some(e) => {
                return Err(format!(
                    "{}: not supported by Lookout: the `{}` exporter; Lookout exports traces over OTLP/gRPC only (`otlp`)",
                    e.origin,
                    text(e)
                ));
            }
            None => {
                return Err(format!(
                    "{}: Lookout exports traces over OTLP/gRPC: set tracer.exporter to `otlp` and tracer.endpoint",
                    enabled.origin
                ));
            }
        }
        match &self.protocol {
            Some(p) if text(p) == "grpc" => {}
            Some(p) => {
                return Err(format!(
                    "{}: not supported by Lookout: OTLP over `{}`; Lookout exports traces over gRPC only",
                    p.origin,
                    text(p)
                ));
            }
            None => warnings.push(
                "tracer: Lookout exports OTLP over gRPC (not HTTP): point tracer.endpoint at the collector's gRPC port (usually 4317)"
                    .to_owned(),
            ),
        }
        let Some(endpoint) = self.endpoint.filter(|e| !text(e).is_empty()) else {
            return Err(format!("{}: tracer.endpoint is required", enabled.origin));
        };
        let url = text(&endpoint);
        let insecure = self
            .insecure
            .as_ref()
            .and_then(|i| bool_of(&i.value))
            .unwrap_or(false);
        let url = if url.contains("://") {
            url
        } else if insecure {
            format!("http://{url}")
        } else {
            format!("https://{url}")
        };
        Ok(Some(Sourced {
            origin: format!("{} (otel-endpoint)", endpoint.origin),
            from_env: endpoint.from_env,
            value: serde_norway::Value::String(url),
        }))
    }
}

/// Permify's TLS settings of one port, applied together (see [`PermifyTls::resolve`]).
#[derive(Default)]
struct PermifyTls {
    enabled: Option<Sourced>,
    cert: Option<Sourced>,
    key: Option<Sourced>,
}

impl PermifyTls {
    fn set(&mut self, field: TlsField, value: Sourced) {
        let slot = match field {
            TlsField::Enabled => &mut self.enabled,
            TlsField::Cert => &mut self.cert,
            TlsField::Key => &mut self.key,
        };
        keep_over_file(slot, value);
    }

    /// As in Permify: with `enabled: true`, the port's certificate and key (both required) set
    /// Lookout's `{port}-tls-cert` and `{port}-tls-key`; otherwise the port stays plaintext and
    /// a certificate or key given anyway is named in a warning.
    fn resolve(
        self,
        port: Port,
        theirs: &mut Vec<(String, Sourced)>,
        warnings: &mut Vec<String>,
    ) -> Result<(), String> {
        let path =
            |s: Option<Sourced>| s.filter(|s| !text_of(&s.value).unwrap_or_default().is_empty());
        let (cert, key) = (path(self.cert), path(self.key));
        let enabled = match self.enabled {
            Some(enabled) => match bool_of(&enabled.value) {
                Some(true) => enabled,
                Some(false) => {
                    ignore_paths(port, [cert, key], warnings);
                    return Ok(());
                }
                None => return Err(format!("{}: expected true or false", enabled.origin)),
            },
            None => {
                ignore_paths(port, [cert, key], warnings);
                return Ok(());
            }
        };
        let (Some(cert), Some(key)) = (cert, key) else {
            let named = |field: TlsField| {
                let key = permify::tls_key(port, field);
                match permify::by_key(key).and_then(|k| k.env) {
                    Some(env) => format!("{key} ({env})"),
                    None => key.to_owned(),
                }
            };
            return Err(format!(
                "{}: TLS on the {} port needs a certificate and a key: set {} and {}",
                enabled.origin,
                port.name(),
                named(TlsField::Cert),
                named(TlsField::Key),
            ));
        };
        for (setting, value) in [(port.cert_setting(), cert), (port.key_setting(), key)] {
            put(
                theirs,
                setting.to_owned(),
                Sourced {
                    origin: format!("{} ({setting})", value.origin),
                    ..value
                },
            )?;
        }
        Ok(())
    }
}

/// Warns about a TLS certificate or key of a port whose TLS is not enabled.
fn ignore_paths(port: Port, paths: [Option<Sourced>; 2], warnings: &mut Vec<String>) {
    for path in paths.into_iter().flatten() {
        warnings.push(format!(
            "{} is ignored: {} is not true, so the {} port serves plaintext (as in Permify)",
            path.origin,
            permify::tls_key(port, TlsField::Enabled),
            port.name(),
        ));
    }
}

fn bool_of(value: &serde_norway::Value) -> Option<bool> {
    match value {
        serde_norway::Value::Bool(b) => Some(*b),
        serde_norway::Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn text_of(value: &serde_norway::Value) -> Option<String> {
    match value {
        serde_norway::Value::String(s) => Some(s.trim().to_owned()),
        serde_norway::Value::Number(n) => Some(n.to_string()),
        serde_norway::Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// An environment variable's text as the file would hold it: a number, a boolean, or text
/// (lists are comma-separated text).
fn env_value(text: &str) -> serde_norway::Value {
    let trimmed = text.trim();
    if let Ok(n) = trimmed.parse::<u64>() {
        return serde_norway::Value::Number(n.into());
    }
    if let Ok(n) = trimmed.parse::<i64>() {
        return serde_norway::Value::Number(n.into());
    }
    match trimmed.to_ascii_lowercase().as_str() {
        "true" => serde_norway::Value::Bool(true),
        "false" => serde_norway::Value::Bool(false),
        _ => serde_norway::Value::String(text.to_owned()),
    }
}

/// A scalar in its other form: text that reads as a number or boolean as that, a number or
/// boolean as text, a list of scalars as a list of text; None for anything else.
fn other_form(value: &serde_norway::Value) -> Option<serde_norway::Value> {
    match value {
        serde_norway::Value::String(text) => {
            Some(env_value(text)).filter(|v| !matches!(v, serde_norway::Value::String(_)))
        }
        serde_norway::Value::Number(_) | serde_norway::Value::Bool(_) => {
            text_of(value).map(serde_norway::Value::String)
        }
        serde_norway::Value::Sequence(items) => items
            .iter()
            .map(|item| text_of(item).map(serde_norway::Value::String))
            .collect::<Option<Vec<_>>>()
            .map(serde_norway::Value::Sequence),
        _ => None,
    }
}

/// Whether `key` (flattened, dashed) is one of Lookout's own file keys.
fn is_lookout_key(key: &str) -> bool {
    layer::is_one_of(key, ServeFile::KEYS) || layer::is_one_of(key, hardening::HardeningFile::KEYS)
}

/// Every key the file accepts: Lookout's own, then Permify's.
pub fn valid_keys() -> Vec<String> {
    let mut keys: Vec<String> = ServeFile::KEYS
        .iter()
        .chain(hardening::HardeningFile::KEYS)
        .map(|k| k.replace('_', "-"))
        .collect();
    keys.extend(permify::KEYS.iter().map(|k| k.key.to_owned()));
    keys
}

impl FileConfig {
    fn load(path: &Path, env: &[(String, String)]) -> Result<FileConfig, ConfigError> {
        let name = path.display();
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError(format!("cannot read the config file `{name}`: {e}")))?;
        FileConfig::build(Some(&text), env)
            .map_err(|e| ConfigError(format!("config file `{name}`: {e}")))
    }

    /// The file alone, without environment.
    #[cfg(test)]
    fn parse(text: &str) -> Result<FileConfig, String> {
        FileConfig::build(Some(text), &[])
    }

    /// Reads the file's keys and the `PERMIFY_*` variables of `env`. Nested mappings are
    /// flattened by joining their keys with `-` (`authn: {method: x}` is `authn-method: x`, as
    /// Permify writes its file), and `_` in a key is `-` (`grpc_port` is `grpc-port`). A key is
    /// Lookout's own or Permify's (see `config/permify.rs`); anything else is an error naming
    /// the key and listing the valid ones. A value that does not fit fails naming its key and
    /// what it accepts.
    fn build(text: Option<&str>, env: &[(String, String)]) -> Result<FileConfig, String> {
        let mut flat = Vec::new();
        if let Some(text) = text {
            let value: serde_norway::Value =
                serde_norway::from_str(text).map_err(|e| e.to_string())?;
            match value {
                // An empty file is no settings.
                serde_norway::Value::Null => {}
                serde_norway::Value::Mapping(mapping) => flatten(String::new(), mapping, &mut flat),
                _ => return Err("expected a mapping of settings (`grpc-port: 3478`)".to_owned()),
            }
        }
        let mut own: Vec<(String, Sourced)> = Vec::new();
        let mut gathered = PermifyRead::default();
        let mut warnings = Vec::new();
        for (key, value) in flat {
            let key = match key {
                serde_norway::Value::String(key) => key,
                other => return Err(format!("a key must be text, got {other:?}")),
            };
            if is_lookout_key(&key) {
                let origin = key.clone();
                own.push((
                    key,
                    Sourced {
                        origin,
                        from_env: false,
                        value,
                    },
                ));
                continue;
            }
            let Some(entry) = permify::by_flat_key(&key) else {
                return Err(format!(
                    "unknown key `{key}`; the valid keys are: {}",
                    valid_keys().join(", ")
                ));
            };
            gathered.apply(entry, entry.key, false, value)?;
        }
        let mut env: Vec<&(String, String)> = env
            .iter()
            .filter(|(name, _)| name.starts_with("PERMIFY_"))
            .collect();
        env.sort();
        for (name, text) in env {
            match permify::by_env(name) {
                Some(entry) => gathered.apply(entry, name, true, env_value(text))?,
                None => warnings.push(format!(
                    "{name} is ignored: it is not one of Permify's settings that Lookout reads (see \"Permify configuration\" in the README)"
                )),
            }
        }
        for (key, warning) in std::mem::take(&mut gathered.ignored) {
            if !gathered.switched_off(key) {
                warnings.push(warning);
            }
        }
        let PermifyRead {
            mut theirs,
            tracer,
            grpc_tls,
            http_tls,
            ..
        } = gathered;
        if let Some(endpoint) = tracer.resolve(&mut warnings)? {
            put(&mut theirs, "otel-endpoint".to_owned(), endpoint)?;
        }
        grpc_tls.resolve(Port::Grpc, &mut theirs, &mut warnings)?;
        http_tls.resolve(Port::Http, &mut theirs, &mut warnings)?;
        // Lookout's own keys win over Permify's.
        let mut entries = own;
        for (key, value) in theirs {
            if !entries.iter().any(|(k, _)| layer::is_one_of(k, &[&key])) {
                entries.push((key, value));
            }
        }
        let mut serve = serde_norway::Mapping::new();
        let mut hardening = serde_norway::Mapping::new();
        for (key, sourced) in entries {
            let theirs = layer::is_one_of(&key, hardening::HardeningFile::KEYS);
            let fits = |value: &serde_norway::Value| {
                let mut single = serde_norway::Mapping::new();
                single.insert(serde_norway::Value::String(key.clone()), value.clone());
                if theirs {
                    read::<hardening::HardeningFile>(single).map(drop)
                } else {
                    read::<ServeFile>(single).map(drop)
                }
            };
            // Permify reads ports as text and a variable's text may be a number: a scalar is
            // also tried in its other form (`"3478"` as 3478, a numeric key as text).
            let value = match fits(&sourced.value) {
                Ok(()) => sourced.value,
                Err(e) => match other_form(&sourced.value).filter(|v| fits(v).is_ok()) {
                    Some(value) => value,
                    None => {
                        let accepts = ServeFile::accepts(&key)
                            .or_else(|| hardening::HardeningFile::accepts(&key))
                            .unwrap_or("another value");
                        let got = if key.contains("preshared") {
                            String::new()
                        } else {
                            match text_of(&sourced.value) {
                                Some(t) => format!(", got `{t}`"),
                                None => format!(" ({e})"),
                            }
                        };
                        return Err(format!("{}: expected {accepts}{got}", sourced.origin));
                    }
                },
            };
            let target = if theirs { &mut hardening } else { &mut serve };
            target.insert(serde_norway::Value::String(key), value);
        }
        Ok(FileConfig {
            serve: read(serve)?,
            hardening: if hardening.is_empty() {
                hardening::HardeningFile::default()
            } else {
                read(hardening)?
            },
            warnings,
        })
    }
}

/// Sets Lookout's `key` from one of Permify's names: a `PERMIFY_*` variable wins over the
/// file; two of Permify's file keys for one setting are an error.
fn put(theirs: &mut Vec<(String, Sourced)>, key: String, value: Sourced) -> Result<(), String> {
    match theirs.iter_mut().find(|(k, _)| *k == key) {
        None => theirs.push((key, value)),
        Some((_, old)) if value.from_env && !old.from_env => *old = value,
        Some((_, old)) if !value.from_env && old.from_env => {}
        Some((_, old)) => {
            return Err(format!(
                "{} and {} both set {key}; keep one",
                old.origin, value.origin
            ));
        }
    }
    Ok(())
}

/// A mapping of the file read as `T`.
fn read<T: serde::de::DeserializeOwned>(mapping: serde_norway::Mapping) -> Result<T, String> {
    serde_norway::from_value(serde_norway::Value::Mapping(mapping)).map_err(|e| e.to_string())
}

/// Appends the entries of `entries` to `out` with nested mappings flattened: their keys are
/// joined to `prefix` with `-`, and `_` in a key becomes `-`.
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

/// Sets `slot` to `value` when there is one.
fn set<T>(slot: &mut T, value: Option<T>) {
    if let Some(value) = value {
        *slot = value;
    }
}

impl Config {
    /// Resolves flags (and their environment variables, which clap has already applied) over
    /// the config file over the defaults, then checks the result.
    pub fn resolve(args: &ServeArgs) -> Result<Config, ConfigError> {
        let env: Vec<(String, String)> = std::env::vars_os()
            .filter_map(|(name, value)| {
                let name = name.into_string().ok()?;
                let value = value.into_string().unwrap_or_default();
                Some((name, value))
            })
            .collect();
        Config::resolve_with_env(args, &env)
    }

    /// [`Config::resolve`] with `env` as the environment for Permify's `PERMIFY_*` variables
    /// (Lookout's own `LOOKOUT_*` ones are clap's, already in `args`).
    pub fn resolve_with_env(
        args: &ServeArgs,
        env: &[(String, String)],
    ) -> Result<Config, ConfigError> {
        let file = match &args.config {
            Some(path) => FileConfig::load(path, env)?,
            None => FileConfig::build(None, env).map_err(ConfigError)?,
        };
        Config::merge(args, file)
    }

    /// The flags over the file over the defaults: one line per setting, putting it where
    /// its subsystem's settings keep it.
    fn merge(args: &ServeArgs, file: FileConfig) -> Result<Config, ConfigError> {
        let hardened = hardening::merge(&args.hardening, file.hardening)?;
        let l = args.over(file.serve)?;
        let mut c = Config {
            warnings: file.warnings,
            ..Config::default()
        };
        set(&mut c.host, l.host);
        set(&mut c.grpc_port, l.grpc_port);
        set(&mut c.http_port, l.http_port);
        set(&mut c.database_engine, l.database_engine);
        c.database_uri = l.database_uri.filter(|u| !u.is_empty());
        set(&mut c.postgres.auto_migrate, l.auto_migrate);
        set(&mut c.postgres.max_connections, l.database_max_connections);
        set(&mut c.postgres.snap_token_wait, l.snap_token_wait);
        set(&mut c.postgres.watch_retention, l.watch_retention);
        set(&mut c.watch, l.watch);
        set(&mut c.log_level, l.log_level);
        set(&mut c.log_format, l.log_format);
        set(&mut c.max_request_bytes, l.max_request_bytes);
        set(&mut c.limits.default_depth, l.default_depth);
        set(&mut c.limits.default_page_size, l.default_page_size);
        set(&mut c.limits.max_page_size, l.max_page_size);
        set(&mut c.limits.max_batch, l.max_batch_size);
        set(&mut c.limits.max_bulk_check, l.max_bulk_check);
        set(&mut c.limits.stream_buffer, l.stream_buffer);
        set(&mut c.cache_capacity, l.cache_capacity);
        set(&mut c.cache_check_min_visits, l.cache_check_min_visits);
        set(&mut c.retention.snapshots, l.retained_snapshots);
        set(&mut c.retention.changes, l.retained_changes);
        set(&mut c.retention.change_items, l.retained_change_items);
        set(&mut c.retention.schema_versions, l.schema_versions_retained);
        set(&mut c.max_tenants, l.max_tenants);
        set(&mut c.shutdown_timeout, l.shutdown_timeout);
        c.authn = hardened.authn;
        c.traffic = hardened.traffic;
        c.connections = hardened.connections;
        c.tls = hardened.tls;
        c.cors = hardened.cors;
        c.telemetry = hardened.telemetry;
        c.check()?;
        Ok(c)
    }

    /// Checks ranges and combinations that the types alone do not.
    pub fn check(&self) -> Result<(), ConfigError> {
        let min_depth = lookout_engine::eval::MIN_DEPTH;
        let fail = |m: String| Err(ConfigError(m));
        if self.limits.default_depth < min_depth {
            return fail(format!(
                "default-depth must be at least {min_depth}, got {}",
                self.limits.default_depth
            ));
        }
        if self.limits.max_page_size == 0 {
            return fail("max-page-size must be at least 1".to_owned());
        }
        if self.limits.default_page_size == 0
            || self.limits.default_page_size > self.limits.max_page_size
        {
            return fail(format!(
                "default-page-size must be between 1 and max-page-size ({}), got {}",
                self.limits.max_page_size, self.limits.default_page_size
            ));
        }
        for (name, value) in [
            ("max-request-bytes", self.max_request_bytes),
            ("max-batch-size", self.limits.max_batch),
            ("max-bulk-check", self.limits.max_bulk_check),
            ("stream-buffer", self.limits.stream_buffer),
            ("retained-snapshots", self.retention.snapshots),
            ("retained-changes", self.retention.changes),
            ("retained-change-items", self.retention.change_items),
            ("max-tenants", self.max_tenants),
            ("schema-versions-retained", self.retention.schema_versions),
            (
                "database-max-connections",
                self.postgres.max_connections as usize,
            ),
        ] {
            if value == 0 {
                return fail(format!("{name} must be at least 1"));
            }
        }
        if self.grpc_port != 0 && self.grpc_port == self.http_port {
            return fail(format!(
                "grpc-port and http-port must differ, both are {}",
                self.grpc_port
            ));
        }
        if self.database_engine == DatabaseEngine::Postgres && self.database_uri.is_none() {
            return fail(
                "database-engine postgres needs database-uri (--database-uri, LOOKOUT_DATABASE_URI, or Permify's database.uri or PERMIFY_DATABASE_URI)"
                    .to_owned(),
            );
        }
        hardening::check(
            &self.authn,
            &self.traffic,
            &self.connections,
            &self.cors,
            &self.telemetry,
        )?;
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic, reason = "tests fail by panicking")]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_contract() {
        let config = Config::merge(&ServeArgs::default(), FileConfig::default()).unwrap();
        assert_eq!(config.grpc_port, 3478);
        assert_eq!(config.http_port, 3476);
        assert_eq!(config.host, Host::Ip(IpAddr::V4(Ipv4Addr::UNSPECIFIED)));
        assert_eq!(config.database_engine, DatabaseEngine::Memory);
        assert!(config.watch);
        assert_eq!(config.max_request_bytes, 4 * 1024 * 1024);
        assert_eq!(config.max_tenants, crate::tenants::DEFAULT_MAX_TENANTS);
        let file = FileConfig::parse("max-tenants: 12\n").unwrap();
        assert_eq!(
            Config::merge(&ServeArgs::default(), file)
                .unwrap()
                .max_tenants,
            12
        );
    }

    #[test]
    fn postgres_settings_come_from_flags_and_the_file() {
        let file = FileConfig::parse(
            "database-engine: postgres\ndatabase-uri: postgres://db/x\nauto-migrate: false\nsnap-token-wait: 2s\nwatch-retention: 500 revisions\n",
        )
        .unwrap();
        let args = ServeArgs {
            database_max_connections: Some(7),
            ..ServeArgs::default()
        };
        let config = Config::merge(&args, file).unwrap();
        assert_eq!(
            config.postgres,
            PgSettings {
                auto_migrate: false,
                max_connections: 7,
                snap_token_wait: Duration::from_secs(2),
                watch_retention: WatchRetention::Revisions(500),
            }
        );
        let e = Config::merge(
            &ServeArgs::default(),
            FileConfig::parse("watch-retention: forever\n").unwrap(),
        )
        .unwrap_err();
        assert!(e.0.contains("watch-retention"), "{e}");
        assert_eq!(Config::default().postgres, PgSettings::default());
    }

    #[test]
    fn flags_override_the_file() {
        let file = FileConfig::parse(
            "grpc-port: 5000\nhttp_port: 5001\nwatch: false\nshutdown-timeout: 250ms\nlog-format: json\n",
        )
        .unwrap();
        let args = ServeArgs {
            grpc_port: Some(6000),
            ..ServeArgs::default()
        };
        let config = Config::merge(&args, file).unwrap();
        assert_eq!(config.grpc_port, 6000);
        assert_eq!(config.http_port, 5001);
        assert!(!config.watch);
        assert_eq!(config.shutdown_timeout, Duration::from_millis(250));
        assert_eq!(config.log_format, LogFormat::Json);
    }

    #[test]
    fn bad_files_name_the_problem() {
        let e = FileConfig::parse("grpc-prot: 1\n").unwrap_err();
        assert!(e.contains("grpc-prot"), "{e}");
        let e = FileConfig::parse("grpc-port: seventy\n").unwrap_err();
        assert!(e.contains("grpc-port") || e.contains("invalid"), "{e}");
        let e = FileConfig::parse("- 1\n").unwrap_err();
        assert!(e.contains("mapping"), "{e}");
        assert!(FileConfig::parse("").is_ok());
        assert!(FileConfig::parse("shutdown-timeout: 3\n").is_ok());
    }

    #[test]
    fn ranges_are_checked() {
        let args = ServeArgs {
            default_depth: Some(2),
            ..ServeArgs::default()
        };
        let e = Config::merge(&args, FileConfig::default()).unwrap_err();
        assert!(e.0.contains("default-depth"), "{e}");
        let args = ServeArgs {
            grpc_port: Some(4000),
            http_port: Some(4000),
            ..ServeArgs::default()
        };
        assert!(Config::merge(&args, FileConfig::default()).is_err());
        let args = ServeArgs {
            database_engine: Some(DatabaseEngine::Postgres),
            ..ServeArgs::default()
        };
        let e = Config::merge(&args, FileConfig::default()).unwrap_err();
        assert!(e.0.contains("database-uri"), "{e}");
    }

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn resolve(file: &str, vars: &[(&str, &str)]) -> Result<Config, String> {
        let file = FileConfig::build(Some(file), &env(vars))?;
        Config::merge(&ServeArgs::default(), file).map_err(|e| e.0)
    }

    #[test]
    fn permifys_file_configures_lookout() {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../fixtures/permify-config.yaml"
        ))
        .unwrap();
        let text = text
            .replace("port: 3476", "port: 4476")
            .replace("port: 3478", "port: 4478")
            .replace("level: info", "level: debug")
            .replace("bulk_limit: 100", "bulk_limit: 7")
            .replace("max_open_connections: 20", "max_open_connections: 9")
            .replace("auto_migrate: true", "auto_migrate: false")
            .replace("enabled: true\n  schema", "enabled: false\n  schema");
        let config = resolve(&text, &[]).unwrap();
        assert_eq!(config.grpc_port, 4478);
        assert_eq!(config.http_port, 4476);
        assert_eq!(config.log_level, "debug");
        assert_eq!(config.limits.max_bulk_check, 7);
        assert_eq!(config.postgres.max_connections, 9);
        assert!(!config.postgres.auto_migrate);
        assert!(!config.watch);
        assert_eq!(config.database_engine, DatabaseEngine::Memory);
        // Permify's tuning knobs are named in warnings.
        let warnings = config.warnings.join("\n");
        assert!(
            warnings.contains("database.max_idle_connections"),
            "{warnings}"
        );
        assert!(
            warnings.contains("service.permission.cache.max_cost"),
            "{warnings}"
        );
        // Keys of sections switched off ask for nothing.
        assert!(!warnings.contains("profiler"), "{warnings}");
        assert!(!warnings.contains("meter"), "{warnings}");
        let config = resolve(
            "meter:\n  endpoint: x\n",
            &[("PERMIFY_METER_ENABLED", "false")],
        )
        .unwrap();
        assert!(config.warnings.is_empty(), "{:?}", config.warnings);
        let config = resolve("meter:\n  enabled: false\n  endpoint: x\n", &[]).unwrap();
        assert!(config.warnings.is_empty(), "{:?}", config.warnings);
        let config = resolve("meter:\n  endpoint: x\n", &[]).unwrap();
        assert!(
            config.warnings[0].starts_with("meter.endpoint"),
            "{:?}",
            config.warnings
        );
    }

    #[test]
    fn permify_variables_select_postgres() {
        let config = resolve(
            "",
            &[
                ("PERMIFY_DATABASE_ENGINE", "postgres"),
                ("PERMIFY_DATABASE_URI", "postgres://u:p@db:5432/permify"),
                ("PERMIFY_GRPC_PORT", "5478"),
                ("PERMIFY_SERVICE_WATCH_ENABLED", "false"),
                ("PERMIFY_AUTHN_ENABLED", "true"),
                ("PERMIFY_AUTHN_METHOD", "preshared"),
                ("PERMIFY_AUTHN_PRESHARED_KEYS", "k1,k2"),
                ("HOME", "/root"),
            ],
        )
        .unwrap();
        assert_eq!(config.database_engine, DatabaseEngine::Postgres);
        assert_eq!(
            config.database_uri.as_deref(),
            Some("postgres://u:p@db:5432/permify")
        );
        assert_eq!(config.grpc_port, 5478);
        assert!(!config.watch);
        assert_eq!(config.authn.method, crate::auth::AuthnMethod::Preshared);
        assert!(config.warnings.is_empty(), "{:?}", config.warnings);
    }

    #[test]
    fn lookouts_names_win_over_permifys_and_variables_over_permifys_file() {
        let config = resolve(
            "grpc-port: 7000\nserver:\n  grpc:\n    port: 7001\n  http:\n    port: 7002\n",
            &[("PERMIFY_GRPC_PORT", "7003"), ("PERMIFY_HTTP_PORT", "7004")],
        )
        .unwrap();
        assert_eq!(config.grpc_port, 7000);
        assert_eq!(config.http_port, 7004);
        let file = FileConfig::build(Some("server:\n  grpc:\n    port: 7001\n"), &[]).unwrap();
        let args = ServeArgs {
            grpc_port: Some(7100),
            ..ServeArgs::default()
        };
        assert_eq!(Config::merge(&args, file).unwrap().grpc_port, 7100);
        // `database.max_connections` flattens to Lookout's own `database-max-connections`.
        let config = resolve(
            "database:\n  max_open_connections: 3\n  max_connections: 4\n",
            &[],
        )
        .unwrap();
        assert_eq!(config.postgres.max_connections, 4);
        let e = resolve(
            "",
            &[
                ("PERMIFY_DATABASE_MAX_OPEN_CONNECTIONS", "3"),
                ("PERMIFY_DATABASE_MAX_CONNECTIONS", "4"),
            ],
        )
        .unwrap_err();
        assert!(e.contains("PERMIFY_DATABASE_MAX_OPEN_CONNECTIONS"), "{e}");
    }

    #[test]
    fn refused_keys_fail_by_name_with_the_reason() {
        for (file, vars, name) in [
            (
                "distributed:\n  enabled: true\n",
                &[][..],
                "distributed.enabled",
            ),
            ("profiler:\n  enabled: true\n", &[][..], "profiler.enabled"),
            (
                "server:\n  http:\n    enabled: false\n",
                &[][..],
                "server.http.enabled",
            ),
            (
                "",
                &[("PERMIFY_DISTRIBUTED_ENABLED", "true")][..],
                "PERMIFY_DISTRIBUTED_ENABLED",
            ),
        ] {
            let e = resolve(file, vars).unwrap_err();
            assert!(e.starts_with(name), "{name}: {e}");
            assert!(e.contains("not supported by Lookout: "), "{e}");
        }
        let e = resolve(
            "tracer:\n  enabled: true\n  exporter: zipkin\n  endpoint: x\n",
            &[],
        )
        .unwrap_err();
        assert!(e.contains("tracer.exporter") && e.contains("zipkin"), "{e}");
    }

    #[test]
    fn permifys_tls_keys_turn_tls_on_together() {
        use crate::tls::CertPaths;
        let paths = |cert: &str, key: &str| {
            Some(CertPaths {
                cert: PathBuf::from(cert),
                key: PathBuf::from(key),
            })
        };
        let config = resolve(
            "server:\n  grpc:\n    tls:\n      enabled: true\n      cert: /g/cert.pem\n      key: /g/key.pem\n  http:\n    tls:\n      enabled: true\n      cert: /h/cert.pem\n      key: /h/key.pem\n",
            &[],
        )
        .unwrap();
        assert_eq!(config.tls.grpc, paths("/g/cert.pem", "/g/key.pem"));
        assert_eq!(config.tls.http, paths("/h/cert.pem", "/h/key.pem"));
        assert!(config.warnings.is_empty(), "{:?}", config.warnings);

        // Variables win over the file, as in Permify.
        let config = resolve(
            "server:\n  http:\n    tls:\n      enabled: false\n      cert: /h/cert.pem\n      key: /h/key.pem\n",
            &[
                ("PERMIFY_HTTP_TLS_ENABLED", "true"),
                ("PERMIFY_HTTP_TLS_CERT_PATH", "/env/cert.pem"),
            ],
        )
        .unwrap();
        assert_eq!(config.tls.http, paths("/env/cert.pem", "/h/key.pem"));
        assert_eq!(config.tls.grpc, None);

        // Enabled without both files names the keys it needs.
        for (file, vars, name) in [
            (
                "server:\n  grpc:\n    tls:\n      enabled: true\n",
                &[][..],
                "server.grpc.tls.enabled",
            ),
            (
                "server:\n  http:\n    tls:\n      enabled: true\n      cert: /h/cert.pem\n",
                &[][..],
                "server.http.tls.enabled",
            ),
            (
                "",
                &[
                    ("PERMIFY_GRPC_TLS_ENABLED", "true"),
                    ("PERMIFY_GRPC_TLS_KEY_PATH", "/k.pem"),
                ][..],
                "PERMIFY_GRPC_TLS_ENABLED",
            ),
        ] {
            let e = resolve(file, vars).unwrap_err();
            assert!(e.starts_with(name), "{name}: {e}");
            let port = if name.contains("GRPC") || name.contains("grpc") {
                "grpc"
            } else {
                "http"
            };
            let upper = port.to_ascii_uppercase();
            for key in [
                format!("server.{port}.tls.cert"),
                format!("server.{port}.tls.key"),
                format!("PERMIFY_{upper}_TLS_CERT_PATH"),
                format!("PERMIFY_{upper}_TLS_KEY_PATH"),
            ] {
                assert!(e.contains(&key), "{key} missing from: {e}");
            }
        }

        // Files without `enabled: true` leave the port plaintext, with a warning; `false`
        // alone asks for nothing.
        let config = resolve("server:\n  grpc:\n    tls:\n      cert: /g/cert.pem\n", &[]).unwrap();
        assert_eq!(config.tls.grpc, None);
        assert!(
            config.warnings[0].starts_with("server.grpc.tls.cert is ignored"),
            "{:?}",
            config.warnings
        );
        let config = resolve("server:\n  grpc:\n    tls:\n      enabled: false\n", &[]).unwrap();
        assert!(config.warnings.is_empty(), "{:?}", config.warnings);
        let e = resolve("server:\n  grpc:\n    tls:\n      enabled: maybe\n", &[]).unwrap_err();
        assert!(e.starts_with("server.grpc.tls.enabled"), "{e}");

        // Lookout's own names: both files or neither.
        let config = resolve("grpc-tls-cert: /c.pem\ngrpc-tls-key: /k.pem\n", &[]).unwrap();
        assert_eq!(config.tls.grpc, paths("/c.pem", "/k.pem"));
        let e = resolve("http-tls-cert: /c.pem\n", &[]).unwrap_err();
        assert!(
            e.contains("http-tls-cert is set but http-tls-key is not"),
            "{e}"
        );
        let e = resolve("grpc-tls-key: /k.pem\n", &[]).unwrap_err();
        assert!(
            e.contains("grpc-tls-key is set but grpc-tls-cert is not"),
            "{e}"
        );
    }

    #[test]
    fn cors_comes_from_lookouts_and_permifys_keys() {
        let config = resolve(
            "server:\n  http:\n    cors_allowed_origins: [\"https://app.example.com\"]\n    cors_allowed_headers: [x-custom]\n",
            &[],
        )
        .unwrap();
        assert_eq!(
            config.cors.allowed_origins,
            vec!["https://app.example.com".to_owned()]
        );
        assert_eq!(config.cors.allowed_headers, vec!["x-custom".to_owned()]);
        let config = resolve(
            "",
            &[(
                "PERMIFY_HTTP_CORS_ALLOWED_ORIGINS",
                "https://a.example.com,https://b.example.com",
            )],
        )
        .unwrap();
        assert_eq!(config.cors.allowed_origins.len(), 2);
        let config = resolve("cors-allowed-origins: \"*\"\n", &[]).unwrap();
        assert!(config.cors.enabled());
        assert!(!Config::default().cors.enabled());
        let e = resolve("cors-allowed-origins: [app.example.com]\n", &[]).unwrap_err();
        assert!(e.contains("cors-allowed-origins"), "{e}");
    }

    #[test]
    fn permifys_otlp_tracer_sets_the_endpoint() {
        let resolved = resolve(
            "tracer:\n  enabled: true\n  exporter: otlp\n  endpoint: collector:4317\n  insecure: true\n  protocol: grpc\n",
            &[],
        );
        #[cfg(feature = "otel")]
        assert_eq!(
            resolved.unwrap().telemetry.otel_endpoint.as_deref(),
            Some("http://collector:4317")
        );
        // Without the feature, the endpoint reaches Lookout's otel-endpoint, which says so.
        #[cfg(not(feature = "otel"))]
        assert!(resolved.unwrap_err().contains("otel-endpoint"));
    }

    #[test]
    fn scalars_are_read_in_either_form() {
        let config = resolve(
            "server:\n  grpc:\n    port: \"4478\"\nauthn:\n  method: preshared\n  preshared:\n    keys: [12345]\n",
            &[("PERMIFY_SERVICE_WATCH_ENABLED", "false")],
        )
        .unwrap();
        assert_eq!(config.grpc_port, 4478);
        assert!(!config.watch);
        assert_eq!(config.authn.preshared_keys, vec!["12345".to_owned()]);
        let config = resolve("", &[("PERMIFY_AUTHN_PRESHARED_KEYS", "12345")]).unwrap();
        assert_eq!(config.authn.preshared_keys, vec!["12345".to_owned()]);
        let config = resolve("", &[("PERMIFY_LOG_LEVEL", "true")]);
        assert!(config.is_ok());
    }

    #[test]
    fn unknown_permify_variables_warn() {
        let config = resolve("", &[("PERMIFY_NO_SUCH_THING", "1")]).unwrap();
        assert!(
            config
                .warnings
                .iter()
                .any(|w| w.contains("PERMIFY_NO_SUCH_THING")),
            "{:?}",
            config.warnings
        );
        let config = resolve("", &[("PERMIFY_METER_ENABLED", "true")]).unwrap();
        assert!(config.warnings[0].starts_with("PERMIFY_METER_ENABLED is ignored"));
    }

    #[test]
    fn errors_name_the_key_and_what_it_accepts() {
        let e = FileConfig::parse("grpc-port: abc\n").unwrap_err();
        assert!(e.starts_with("grpc-port: "), "{e}");
        assert!(e.contains("a port number 0-65535"), "{e}");
        let e = resolve("server:\n  grpc:\n    port: 99999\n", &[]).unwrap_err();
        assert!(e.contains("server.grpc.port (grpc-port)"), "{e}");
        assert!(e.contains("a port number 0-65535"), "{e}");
        let e = resolve("", &[("PERMIFY_DATABASE_ENGINE", "mysql")]).unwrap_err();
        assert!(
            e.starts_with("PERMIFY_DATABASE_ENGINE (database-engine)"),
            "{e}"
        );
        assert!(e.contains("`memory` or `postgres`"), "{e}");
        let e = FileConfig::parse("watch: maybe\n").unwrap_err();
        assert!(e.contains("true or false"), "{e}");
        // The list after an unknown key is every key: Lookout's, hardening's and Permify's.
        let e = FileConfig::parse("grpc-prot: 1\n").unwrap_err();
        for key in valid_keys() {
            assert!(e.contains(&key), "{key} missing from: {e}");
        }
        assert!(
            e.contains("max-inflight") && e.contains("database.uri"),
            "{e}"
        );
    }

    #[test]
    fn hosts_are_addresses_or_names() {
        assert_eq!(
            "127.0.0.1".parse::<Host>().unwrap(),
            Host::Ip(IpAddr::V4(Ipv4Addr::LOCALHOST))
        );
        assert_eq!(
            "localhost".parse::<Host>().unwrap(),
            Host::Name("localhost".to_owned())
        );
        assert_eq!(
            "[::1]".parse::<Host>().unwrap(),
            Host::Ip("::1".parse().unwrap())
        );
        assert!("db-1.internal.example".parse::<Host>().is_ok());
        assert!("not a host".parse::<Host>().is_err());
        assert!("-x".parse::<Host>().is_err());
        let config = resolve("host: localhost\n", &[]).unwrap();
        assert_eq!(config.host, Host::Name("localhost".to_owned()));
    }
}
