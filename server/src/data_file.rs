//! What `lookout import` and `lookout export` share: the two line formats of tuples and
//! attributes, the schema section, the gRPC connection to a running server, and the
//! database settings of the direct (`--database-uri`) mode.
//!
//! **Text** lines are those of validation files: `doc:1#viewer@user:2` (a tuple) and
//! `doc:1$public|boolean:true` (an attribute; arrays are comma-separated). **JSON** lines are
//! Permify's `base.v1.Tuple` and `base.v1.Attribute` messages, one object per line, as the HTTP
//! API spells them (an attribute has an `attribute` key and an `Any` value such as
//! `{"@type": "type.googleapis.com/base.v1.BooleanValue", "data": true}`). Text cannot carry
//! every value (a string with a comma or surrounding spaces, an entity ID with `@`); JSON can.
//! Blank lines and lines starting with `//` are skipped in both.
//!
//! **The schema section.** A file may carry its tenant's schema source before its first tuple
//! or attribute, as comment lines, so that importers that do not know it skip it:
//!
//! ```text
//! // lookout-schema-begin
//! //| entity user {}
//! //|
//! //| entity doc {
//! //|     relation owner @user
//! //| }
//! // lookout-schema-end
//! ```
//!
//! Each source line is `//|`, a space and the line (an empty line is `//|` alone), so the
//! source reads back exactly. A file without the section is read as before.

use std::fmt;
use std::fs::File;
use std::io::{self, BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use clap::{Args, ValueEnum};
use lookout_engine::{Attribute, Tuple};
use lookout_proto::json;
use lookout_proto::v1;
use lookout_proto::v1::data_client::DataClient;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;
use tonic::transport::{Channel, Endpoint};

use crate::config::{Config, ConfigError, ServeArgs};
use crate::service::convert;

/// A line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Validation-file lines: `doc:1#viewer@user:2`, `doc:1$public|boolean:true`.
    Text,
    /// One `base.v1.Tuple` or `base.v1.Attribute` JSON object per line.
    Json,
}

/// One line's content.
#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    Tuple(Tuple),
    Attribute(Attribute),
}

/// The single-threaded runtime a client command runs on; failing to start one is said on
/// stderr and is the command's exit status.
pub fn cli_runtime() -> Result<tokio::runtime::Runtime, std::process::ExitCode> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            eprintln!("error: cannot start the runtime: {e}");
            std::process::ExitCode::FAILURE
        })
}

/// Whether a line carries nothing: blank, or a `//` comment.
pub fn is_skipped(line: &str) -> bool {
    let line = line.trim();
    line.is_empty() || line.starts_with("//")
}

/// The format of a line when none is given: JSON if it starts with `{`, text otherwise.
pub fn detect(line: &str) -> Format {
    if line.trim_start().starts_with('{') {
        Format::Json
    } else {
        Format::Text
    }
}

/// Parses one non-skipped line in `format` (`None`: detect it).
pub fn parse_line(line: &str, format: Option<Format>) -> Result<Item, String> {
    match format.unwrap_or_else(|| detect(line)) {
        Format::Text => parse_text(line),
        Format::Json => parse_json(line),
    }
}

fn parse_text(line: &str) -> Result<Item, String> {
    let line = line.trim();
    // An attribute's `$` comes before any `#` or `@`; neither may appear in an entity ID
    // before it, and `$` may not appear in IDs at all.
    let dollar = line.find('$');
    let hash = line.find(['#', '@']);
    match (dollar, hash) {
        (Some(d), Some(h)) if d > h => Tuple::parse(line)
            .map(Item::Tuple)
            .map_err(|e| e.to_string()),
        (Some(_), _) => Attribute::parse(line)
            .map(Item::Attribute)
            .map_err(|e| e.to_string()),
        (None, _) => Tuple::parse(line)
            .map(Item::Tuple)
            .map_err(|e| e.to_string()),
    }
}

fn parse_json(line: &str) -> Result<Item, String> {
    let value: serde_json::Value =
        serde_json::from_str(line).map_err(|e| format!("invalid JSON: {e}"))?;
    let is_attribute = value
        .as_object()
        .ok_or("expected a JSON object (a base.v1.Tuple or base.v1.Attribute)")?
        .contains_key("attribute");
    if is_attribute {
        let message: v1::Attribute = json::from_json(line.as_bytes()).map_err(|e| e.to_string())?;
        convert::attribute(&message, "attribute")
            .map(Item::Attribute)
            .map_err(|e| e.message)
    } else {
        let message: v1::Tuple = json::from_json(line.as_bytes()).map_err(|e| e.to_string())?;
        convert::tuple(&message, "tuple")
            .map(Item::Tuple)
            .map_err(|e| e.message)
    }
}

/// The line of an item in `format`, without its newline. Text fails for the few values it
/// cannot carry (it would read back differently).
pub fn format_line(item: &Item, format: Format) -> Result<String, String> {
    match format {
        Format::Text => {
            let (line, same) = match item {
                Item::Tuple(t) => {
                    let line = t.to_string();
                    let same = Tuple::parse(&line).ok().as_ref() == Some(t);
                    (line, same)
                }
                Item::Attribute(a) => {
                    let line = a.to_string();
                    let same = Attribute::parse(&line).ok().as_ref() == Some(a);
                    (line, same)
                }
            };
            if same {
                Ok(line)
            } else {
                Err(format!(
                    "`{line}` has no exact text form (it would read back differently); export with --format json"
                ))
            }
        }
        Format::Json => {
            let bytes = match item {
                Item::Tuple(t) => json::to_json_vec(&convert::tuple_out(t)),
                Item::Attribute(a) => json::to_json_vec(&convert::attribute_out(a)),
            }
            .map_err(|e| e.to_string())?;
            String::from_utf8(bytes).map_err(|e| e.to_string())
        }
    }
}

/// The first line of a file's schema section.
pub const SCHEMA_BEGIN: &str = "// lookout-schema-begin";
/// The last line of a file's schema section.
pub const SCHEMA_END: &str = "// lookout-schema-end";
/// How each line of schema source starts inside the section.
const SCHEMA_LINE: &str = "//|";

/// The schema section carrying `source`, ending with a newline.
pub fn schema_section(source: &str) -> String {
    let mut out = String::with_capacity(source.len() + 64);
    out.push_str(SCHEMA_BEGIN);
    out.push('\n');
    for line in source.split('\n') {
        out.push_str(SCHEMA_LINE);
        if !line.is_empty() {
            out.push(' ');
            out.push_str(line);
        }
        out.push('\n');
    }
    out.push_str(SCHEMA_END);
    out.push('\n');
    out
}

/// The schema source a file carries, and the file line of its first source line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileSchema {
    pub source: String,
    pub first_line: u64,
}

/// Why a file's schema section could not be read. Each names the file and line.
#[derive(Debug, thiserror::Error)]
pub enum SchemaSectionError {
    #[error("{name}: {source}")]
    Open { name: String, source: io::Error },
    #[error("{name}:{line}: {source}")]
    Read {
        name: String,
        line: u64,
        source: io::Error,
    },
    #[error("{name}:{line}: the schema section begun here has no `{SCHEMA_END}` line")]
    Unterminated { name: String, line: u64 },
    #[error(
        "{name}:{line}: inside the schema section (begun on line {begun}) every line starts with `{SCHEMA_LINE}`"
    )]
    BadLine { name: String, line: u64, begun: u64 },
}

/// Reads the schema section of the file at `path`, if it has one before its first tuple or
/// attribute. (A section after the data is a comment like any other.)
pub fn read_schema(path: &Path) -> Result<Option<FileSchema>, SchemaSectionError> {
    let name = path.display().to_string();
    let file = File::open(path).map_err(|source| SchemaSectionError::Open {
        name: name.clone(),
        source,
    })?;
    let mut reader = BufReader::new(file);
    let mut line = String::new();
    let mut line_no = 0u64;
    let mut begun: Option<u64> = None;
    let mut source = String::new();
    loop {
        line.clear();
        let n = reader
            .read_line(&mut line)
            .map_err(|source| SchemaSectionError::Read {
                name: name.clone(),
                line: line_no + 1,
                source,
            })?;
        if n == 0 {
            return match begun {
                Some(begun) => Err(SchemaSectionError::Unterminated { name, line: begun }),
                None => Ok(None),
            };
        }
        line_no += 1;
        let text = line.strip_suffix('\n').unwrap_or(&line);
        match begun {
            None if text.trim_end() == SCHEMA_BEGIN => begun = Some(line_no),
            None if is_skipped(text) => {}
            None => return Ok(None),
            Some(_) if text.trim_end() == SCHEMA_END => {
                // The last `\n` joined nothing after it.
                source.pop();
                return Ok(Some(FileSchema {
                    source,
                    first_line: begun.map_or(0, |b| b + 1),
                }));
            }
            Some(begun) => {
                let Some(rest) = text.strip_prefix(SCHEMA_LINE) else {
                    return Err(SchemaSectionError::BadLine {
                        name,
                        line: line_no,
                        begun,
                    });
                };
                source.push_str(rest.strip_prefix(' ').unwrap_or(rest));
                source.push('\n');
            }
        }
    }
}

/// Where the database is, for the direct mode of `import` and `export` (the same settings as
/// `lookout migrate` reads).
#[derive(Debug, Clone, Default, Args)]
pub struct DatabaseArgs {
    /// Work on the PostgreSQL database directly instead of through a running server, e.g.
    /// `postgres://user:password@host:5432/lookout` (then `--target` and `--token` are not used).
    #[arg(
        long,
        value_name = "URI",
        env = "LOOKOUT_DATABASE_URI",
        hide_env_values = true,
        conflicts_with = "target"
    )]
    pub database_uri: Option<String>,

    /// YAML file of `serve`'s settings (Lookout's keys or Permify's): work on the database it
    /// names directly, as with `--database-uri`.
    #[arg(
        short = 'c',
        long,
        value_name = "FILE",
        env = "LOOKOUT_CONFIG",
        conflicts_with = "target"
    )]
    pub config: Option<PathBuf>,
}

impl DatabaseArgs {
    /// Whether the command works on the database directly.
    pub fn direct(&self) -> bool {
        self.database_uri.is_some() || self.config.is_some()
    }

    /// The database URI, resolved as `serve` resolves it (see [`database_uri`]).
    pub fn uri(&self, env: &[(String, String)]) -> Result<(String, Vec<String>), ConfigError> {
        database_uri(self.config.clone(), self.database_uri.clone(), env)
    }
}

/// The database URI from `--database-uri` or the `--config` file, resolved as `serve` resolves
/// it with `env` as the environment of Permify's variables (`PERMIFY_DATABASE_URI`), with the
/// warnings about ignored settings.
pub fn database_uri(
    config: Option<PathBuf>,
    database_uri: Option<String>,
    env: &[(String, String)],
) -> Result<(String, Vec<String>), ConfigError> {
    let args = ServeArgs {
        config,
        database_uri,
        ..ServeArgs::default()
    };
    let config = Config::resolve_with_env(&args, env)?;
    match config.database_uri.filter(|u| !u.is_empty()) {
        Some(uri) => Ok((uri, config.warnings)),
        None => Err(ConfigError(
            "a database URI is required: --database-uri, LOOKOUT_DATABASE_URI, `database-uri` (or Permify's `database.uri`) in --config, or PERMIFY_DATABASE_URI".to_owned(),
        )),
    }
}

/// The process environment as (name, value) pairs, for [`database_uri`].
pub fn environment() -> Vec<(String, String)> {
    std::env::vars_os()
        .filter_map(|(name, value)| Some((name.into_string().ok()?, value.into_string().ok()?)))
        .collect()
}

/// Where and as whom to connect.
#[derive(Debug, Clone, Args)]
pub struct ConnectArgs {
    /// The server's gRPC address: `host:port` or an `http://` URL.
    #[arg(
        long,
        value_name = "HOST:PORT",
        env = "LOOKOUT_TARGET",
        default_value = "127.0.0.1:3478"
    )]
    pub target: String,

    /// The tenant to read or write.
    #[arg(long, value_name = "ID", env = "LOOKOUT_TENANT", default_value = "t1")]
    pub tenant: String,

    /// A preshared key or token, sent as `authorization: Bearer TOKEN` (for servers with
    /// authentication).
    #[arg(
        long,
        value_name = "TOKEN",
        env = "LOOKOUT_TOKEN",
        hide_env_values = true
    )]
    pub token: Option<Secret>,
}

/// A credential; its `Debug` form hides it.
#[derive(Clone)]
pub struct Secret(pub String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(..)")
    }
}

impl FromStr for Secret {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Secret(s.to_string()))
    }
}

/// Adds the bearer credential, if any, to every request.
#[derive(Clone)]
pub struct Bearer(Option<MetadataValue<Ascii>>);

impl Interceptor for Bearer {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(value) = &self.0 {
            request
                .metadata_mut()
                .insert("authorization", value.clone());
        }
        Ok(request)
    }
}

/// A Data service client with the credential attached.
pub type Client = DataClient<tonic::service::interceptor::InterceptedService<Channel, Bearer>>;

/// Why a client could not connect, as a person would say it.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("invalid --target `{target}`: {source}")]
    InvalidTarget {
        target: String,
        source: tonic::transport::Error,
    },
    #[error("connection refused — is the server running at {target}?")]
    Refused { target: String },
    #[error("cannot connect to {target}: timed out")]
    TimedOut { target: String },
    /// Any other failure; `reason` is the innermost I/O error, or the transport's error.
    #[error("cannot connect to {target}: {reason}")]
    Unreachable { target: String, reason: String },
    #[error("--token: must be printable ASCII")]
    Token,
}

/// Connects to `args.target`.
pub async fn connect(args: &ConnectArgs) -> Result<Client, ConnectError> {
    let (channel, bearer) = channel(args).await?;
    Ok(DataClient::with_interceptor(channel, bearer))
}

/// A channel to `args.target` and the credential to send on it. A refused connection says
/// which address was tried and asks whether the server runs there.
pub async fn channel(args: &ConnectArgs) -> Result<(Channel, Bearer), ConnectError> {
    let url = if args.target.contains("://") {
        args.target.clone()
    } else {
        format!("http://{}", args.target)
    };
    let endpoint = Endpoint::from_shared(url)
        .map_err(|source| ConnectError::InvalidTarget {
            target: args.target.clone(),
            source,
        })?
        .connect_timeout(Duration::from_secs(10));
    let channel = endpoint
        .connect()
        .await
        .map_err(|e| connect_error(&e, &args.target))?;
    let bearer = match &args.token {
        Some(Secret(token)) => Some(
            format!("Bearer {token}")
                .parse::<MetadataValue<Ascii>>()
                .map_err(|_| ConnectError::Token)?,
        ),
        None => None,
    };
    Ok((channel, Bearer(bearer)))
}

/// Why a connection to `target` failed, as a person would say it.
fn connect_error(e: &(dyn std::error::Error + 'static), target: &str) -> ConnectError {
    let target = target.to_owned();
    let mut source = Some(e);
    while let Some(cause) = source {
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            return match io.kind() {
                std::io::ErrorKind::ConnectionRefused => ConnectError::Refused { target },
                std::io::ErrorKind::TimedOut => ConnectError::TimedOut { target },
                _ => ConnectError::Unreachable {
                    target,
                    reason: io.to_string(),
                },
            };
        }
        source = cause.source();
    }
    ConnectError::Unreachable {
        target,
        reason: e.to_string(),
    }
}

/// A status as one line: `code: message`, the code in words (`invalid argument`), without
/// repeating a code the message already starts with. A server that does not speak gRPC (the
/// HTTP port, say) makes tonic report a protocol error; that is said plainly instead.
pub fn status_text(status: &tonic::Status) -> String {
    let message = status.message();
    if !speaks_grpc(status) {
        return "the server does not answer gRPC — is this the gRPC port? (Lookout serves gRPC on 3478 and HTTP/JSON on 3476 by default)".to_owned();
    }
    let code = code_words(status.code());
    let message = message
        .strip_prefix(&code)
        .and_then(|rest| rest.strip_prefix(':'))
        .map_or(message, str::trim_start);
    format!("{code}: {message}")
}

/// Whether the peer answered as a gRPC server: tonic reports an HTTP answer without gRPC
/// framing (a JSON or HTML body, a 404 without `grpc-status`) as one of these.
fn speaks_grpc(status: &tonic::Status) -> bool {
    let message = status.message();
    !(message.contains("compression flag")
        || message.contains("invalid content-type")
        || message.contains("missing content-type")
        || (message.starts_with("HTTP status") && status.metadata().get("grpc-status").is_none()))
}

/// A gRPC code as words: `InvalidArgument` is `invalid argument`.
pub fn code_words(code: tonic::Code) -> String {
    let mut words = String::new();
    for (i, c) in format!("{code:?}").chars().enumerate() {
        if c.is_uppercase() && i > 0 {
            words.push(' ');
        }
        words.extend(c.to_lowercase());
    }
    words
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests fail by panicking")]
mod tests {
    use super::*;

    #[test]
    fn lines_parse_in_both_formats_and_print_back() {
        for line in [
            "doc:1#viewer@user:2",
            "doc:1#viewer@group:g#member",
            "doc:1$public|boolean:true",
            "doc:1$tags|string[]:a,b",
            "doc:1$n|integer:5",
        ] {
            let item = parse_line(line, None).unwrap();
            assert_eq!(format_line(&item, Format::Text).unwrap(), line);
            let json = format_line(&item, Format::Json).unwrap();
            assert_eq!(detect(&json), Format::Json);
            assert_eq!(parse_line(&json, None).unwrap(), item, "{json}");
        }
    }

    #[test]
    fn statuses_read_as_words_without_a_doubled_code() {
        assert_eq!(code_words(tonic::Code::InvalidArgument), "invalid argument");
        assert_eq!(code_words(tonic::Code::Ok), "ok");
        let status = tonic::Status::unauthenticated("unauthenticated: the key is not valid");
        assert_eq!(
            status_text(&status),
            "unauthenticated: the key is not valid"
        );
        let status = tonic::Status::invalid_argument("tenant_id is required");
        assert_eq!(
            status_text(&status),
            "invalid argument: tenant_id is required"
        );
        let status = tonic::Status::internal(
            "protocol error: received message with invalid compression flag: 123 (valid flags are 0 and 1) while receiving response with status: 404 Not Found",
        );
        assert!(
            status_text(&status).contains("is this the gRPC port?"),
            "{}",
            status_text(&status)
        );
    }

    #[test]
    fn bad_lines_say_why() {
        assert!(parse_line("doc:1#viewer", None).is_err());
        assert!(parse_line("{\"entity\": 1}", None).is_err());
        assert!(parse_line("[1]", Some(Format::Json)).is_err());
        assert!(is_skipped("  // note"));
        assert!(is_skipped("   "));
    }

    #[test]
    fn text_refuses_what_it_cannot_carry() {
        let item = parse_line("doc:1$name|string: padded ", None).unwrap();
        assert!(format_line(&item, Format::Text).is_ok());
        let odd = Item::Attribute(Attribute {
            entity: lookout_engine::EntityRef::new("doc", "1"),
            name: "tags".into(),
            value: lookout_engine::AttrValue::StringArray(vec!["a,b".into()]),
        });
        assert!(format_line(&odd, Format::Text).is_err());
        assert!(format_line(&odd, Format::Json).is_ok());
    }

    #[test]
    fn schema_sections_read_back_exactly() {
        let dir =
            std::env::temp_dir().join(format!("lookout-schema-section-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("f.txt");
        for source in [
            "entity user {}\n\nentity doc {\n    relation owner @user\n}\n",
            "entity user {}",
            "  // a comment with trailing spaces   \n\n\n",
        ] {
            let text = format!(
                "// header\n\n{}doc:1#owner@user:1\n",
                schema_section(source)
            );
            std::fs::write(&path, text).unwrap();
            let read = read_schema(&path).unwrap().unwrap();
            assert_eq!(read.source, source);
            assert_eq!(read.first_line, 4);
        }
        std::fs::write(&path, "doc:1#owner@user:1\n// lookout-schema-begin\n").unwrap();
        assert_eq!(read_schema(&path).unwrap(), None);
        std::fs::write(&path, "// lookout-schema-begin\n//| entity user {}\n").unwrap();
        let e = read_schema(&path).unwrap_err().to_string();
        assert!(
            e.ends_with(":1: the schema section begun here has no `// lookout-schema-end` line"),
            "{e}"
        );
        std::fs::write(&path, "// lookout-schema-begin\nentity user {}\n").unwrap();
        let e = read_schema(&path).unwrap_err().to_string();
        assert!(
            e.contains(":2: inside the schema section (begun on line 1)"),
            "{e}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn secrets_do_not_print() {
        assert_eq!(format!("{:?}", Secret("k".into())), "Secret(..)");
    }
}
