//! What `lookout import` and `lookout export` share: the two line formats of tuples and
//! attributes, and the gRPC connection to a running server.
//!
//! **Text** lines are those of validation files: `doc:1#viewer@user:2` (a tuple) and
//! `doc:1$public|boolean:true` (an attribute; arrays are comma-separated). **JSON** lines are
//! Permify's `base.v1.Tuple` and `base.v1.Attribute` messages, one object per line, as the HTTP
//! API spells them (an attribute has an `attribute` key and an `Any` value such as
//! `{"@type": "type.googleapis.com/base.v1.BooleanValue", "data": true}`). Text cannot carry
//! every value (a string with a comma or surrounding spaces, an entity ID with `@`); JSON can.
//! Blank lines and lines starting with `//` are skipped in both.

use std::fmt;
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
    fn secrets_do_not_print() {
        assert_eq!(format!("{:?}", Secret("k".into())), "Secret(..)");
    }
}
