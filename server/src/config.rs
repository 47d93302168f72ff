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
//! spellings (`grpc_port`) and nested mappings (`authn: {method: x}`) are accepted too. Unknown
//! keys are an error naming the key.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, ValueEnum};
use serde::Deserialize;

use self::layer::settings;
use crate::auth::AuthnSettings;
use crate::connections::ConnectionLimits;
use crate::limits::TrafficLimits;
use crate::service::Limits;
pub use crate::storage::postgres::PgSettings;
use crate::storage::postgres::{WatchRetention, parse_watch_retention};
pub use crate::telemetry::LogFormat;
use crate::telemetry::TelemetrySettings;
use crate::tenants::Retention;
pub use crate::units::parse_duration;

mod hardening;
mod layer;
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
            /// (`grpc-port: 3478`). Flags and environment variables override it.
            #[arg(long, value_name = "FILE", env = "LOOKOUT_CONFIG")]
            pub config: Option<PathBuf>,
        }
        after {
            /// Authentication, traffic limits and telemetry (see `config/hardening.rs`).
            #[command(flatten)]
            pub hardening: HardeningArgs,
        }
        file_only {}

        /// Address to listen on for both gRPC and HTTP [default: 0.0.0.0, every interface].
        #[arg(long, value_name = "IP", env = "LOOKOUT_HOST")]
        pub host: Option<IpAddr>,

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
    pub host: IpAddr,
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
    /// OpenTelemetry export.
    pub telemetry: TelemetrySettings,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            host: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
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
            telemetry: TelemetrySettings::default(),
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

/// The config file: the settings of [`ServeArgs`] and of [`HardeningArgs`], every one
/// optional.
#[derive(Debug, Default)]
struct FileConfig {
    serve: ServeFile,
    hardening: hardening::HardeningFile,
}

impl FileConfig {
    fn load(path: &Path) -> Result<FileConfig, ConfigError> {
        let name = path.display();
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError(format!("cannot read the config file `{name}`: {e}")))?;
        FileConfig::parse(&text).map_err(|e| ConfigError(format!("config file `{name}`: {e}")))
    }

    /// Reads the file's keys: nested mappings are flattened by joining their keys with `-`
    /// (`authn: {method: x}` is `authn-method: x`, as Permify writes its file), and `_` in a
    /// key is `-` (`grpc_port` is `grpc-port`). Unknown keys are an error naming the key.
    fn parse(text: &str) -> Result<FileConfig, String> {
        let value: serde_norway::Value = serde_norway::from_str(text).map_err(|e| e.to_string())?;
        let entries = match value {
            // An empty file is no settings.
            serde_norway::Value::Null => return Ok(FileConfig::default()),
            serde_norway::Value::Mapping(mapping) => mapping,
            _ => return Err("expected a mapping of settings (`grpc-port: 3478`)".to_owned()),
        };
        let mut flat = Vec::new();
        flatten(String::new(), entries, &mut flat);
        let mut serve = serde_norway::Mapping::new();
        let mut hardening = serde_norway::Mapping::new();
        for (key, value) in flat {
            let theirs = matches!(&key, serde_norway::Value::String(k)
                if layer::is_one_of(k, hardening::HardeningFile::KEYS));
            if theirs {
                hardening.insert(key, value);
            } else {
                serve.insert(key, value);
            }
        }
        Ok(FileConfig {
            serve: read(serve)?,
            hardening: if hardening.is_empty() {
                hardening::HardeningFile::default()
            } else {
                read(hardening)?
            },
        })
    }
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
        let file = match &args.config {
            Some(path) => FileConfig::load(path)?,
            None => FileConfig::default(),
        };
        Config::merge(args, file)
    }

    /// The flags over the file over the defaults: one line per setting, putting it where
    /// its subsystem's settings keep it.
    fn merge(args: &ServeArgs, file: FileConfig) -> Result<Config, ConfigError> {
        let hardened = hardening::merge(&args.hardening, file.hardening)?;
        let l = args.over(file.serve)?;
        let mut c = Config::default();
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
            return fail("database-engine postgres needs --database-uri".to_owned());
        }
        hardening::check(
            &self.authn,
            &self.traffic,
            &self.connections,
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
        assert_eq!(config.host, IpAddr::V4(Ipv4Addr::UNSPECIFIED));
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
}
