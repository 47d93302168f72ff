//! `lookout import FILE`: writes the tuples and attributes of a file (text or JSON lines, see
//! [`crate::data_file`]) to a running server over gRPC, in batches of `--batch-size` lines per
//! `Data.Write`.
//!
//! **Resumption.** After every batch the server acknowledges, the number of the last line it
//! carried, the snap token of the write and a SHA-256 of the file up to that line go to
//! `FILE.lookout-import-state` (written to a temporary file and renamed, so it is never half
//! written). Run again after an interruption, the import checks that the file still starts with
//! what was committed, skips those lines and goes on from the next one; `--restart` ignores the
//! state. The state file is removed when the import completes. Writes are idempotent anyway (a
//! tuple written twice is stored once; an attribute written twice keeps the last value), so a
//! batch repeated because the process died between the write and the state update does no harm.
//!
//! **Bad lines.** A line that does not parse stops the import with `FILE:LINE: reason`, after
//! committing the good lines before it, so that fixing the line and running again goes on from
//! exactly that line. A batch the server refuses (say, a relation the schema lacks) stops it with
//! the batch's line range and the line the server names.
//!
//! **The schema.** A file that carries a schema section (see [`crate::data_file`]) and goes to
//! a tenant without a schema has its schema written first, so a backup restores on its own.
//! A tenant that has a schema keeps it, and the data must fit it.
//!
//! **Directly into PostgreSQL.** With `--database-uri` (or `--config`) the file goes straight
//! into the database in one transaction instead, with `COPY`: see [`direct`].

use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use lookout_proto::v1;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::data_file::{self, ConnectArgs, DatabaseArgs, Format, Item, SchemaSectionError};
use crate::progress::Progress;
use crate::service::convert;
use crate::storage::postgres::bulk::BulkError;

pub mod direct;

#[derive(Debug, Clone, Args)]
pub struct ImportArgs {
    /// Tuples and attributes, one per line: text (`doc:1#viewer@user:2`,
    /// `doc:1$public|boolean:true`) or JSON (`base.v1.Tuple` / `base.v1.Attribute`).
    #[arg(value_name = "FILE")]
    pub file: PathBuf,

    #[command(flatten)]
    pub connect: ConnectArgs,

    #[command(flatten)]
    pub database: DatabaseArgs,

    /// Line format; by default each line's own (JSON if it starts with `{`, text otherwise).
    #[arg(long, value_enum)]
    pub format: Option<Format>,

    /// Lines per write request (at most the server's --max-batch-size).
    #[arg(long, value_name = "N", default_value_t = 500, value_parser = clap::value_parser!(u64).range(1..))]
    pub batch_size: u64,

    /// Ignore the state of an earlier, interrupted import and start from the first line.
    #[arg(long)]
    pub restart: bool,

    /// No progress bar and no summary (errors are still printed).
    #[arg(short, long)]
    pub quiet: bool,

    /// Direct mode: show the progress line on stderr even when it is not a terminal (then one
    /// line a second).
    #[arg(long)]
    pub progress: bool,

    /// Direct mode: create the tenant if the database does not have it.
    #[arg(long)]
    pub create_tenant: bool,

    /// Direct mode: most changes per revision; the file's changes become consecutive
    /// revisions of at most this many each, committed together.
    #[arg(long, value_name = "N", default_value_t = 100_000, value_parser = clap::value_parser!(u32).range(1..))]
    pub revision_size: u32,

    /// Stop after this many batches, as if interrupted (for tests).
    #[arg(long, hide = true)]
    pub stop_after_batches: Option<u64>,

    /// Direct mode: write everything but roll back instead of committing (for tests).
    #[arg(long, hide = true)]
    pub stop_before_commit: bool,
}

/// What an import did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    pub tuples: u64,
    pub attributes: u64,
    pub batches: u64,
    /// Lines skipped because an earlier run committed them.
    pub resumed_after_line: u64,
    /// The snap token of the last write (empty if nothing was written).
    pub snap_token: String,
    /// Whether `--stop-after-batches` stopped it before the end.
    pub stopped: bool,
}

/// The progress of an import, as recorded after every acknowledged batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    pub version: u32,
    pub tenant: String,
    /// The last committed line (1-based); every line up to it is on the server.
    pub line: u64,
    /// Bytes of the file up to the end of that line.
    pub bytes: u64,
    /// SHA-256 (hex) of those bytes, to notice a file changed between runs.
    pub sha256: String,
    pub snap_token: String,
}

/// Where the state of importing `file` is kept: `FILE.lookout-import-state`.
pub fn state_path(file: &Path) -> PathBuf {
    let mut name = file.as_os_str().to_owned();
    name.push(".lookout-import-state");
    PathBuf::from(name)
}

/// Why an import stopped. Each message names the file (and the line or lines, where there
/// are some), as `lookout import` prints it.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("{name}: {source}")]
    Open { name: String, source: io::Error },
    #[error("{name}:{line}: {source}")]
    Read {
        name: String,
        line: u64,
        source: io::Error,
    },
    #[error("{name}:{line}: {reason}")]
    BadLine {
        name: String,
        line: u64,
        reason: String,
    },
    #[error(transparent)]
    Connect(#[from] data_file::ConnectError),
    #[error(
        "{name}: lines {first}-{last}: the server refused the batch: {status}{at}{hint}; {done}"
    )]
    Refused {
        name: String,
        first: u64,
        last: u64,
        /// The server's status as [`data_file::status_text`] writes it.
        status: String,
        /// ` (the item the server names is line N)`, or empty.
        at: String,
        /// ` (a smaller --batch-size may help)`, or empty.
        hint: &'static str,
        /// What is committed so far.
        done: String,
    },
    #[error("{}: unreadable import state: {source}", .path.display())]
    StateUnreadable {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("{}: {source}", .path.display())]
    StateRead { path: PathBuf, source: io::Error },
    #[error("{}: cannot record the import state: {source}", .path.display())]
    StateWrite { path: PathBuf, source: io::Error },
    #[error("{}: cannot remove the import state: {source}", .path.display())]
    StateRemove { path: PathBuf, source: io::Error },
    #[error(
        "{}: an interrupted import into tenant `{tenant}` is recorded; use --tenant {tenant} to resume it or --restart to start over",
        .path.display()
    )]
    OtherTenant { path: PathBuf, tenant: String },
    #[error(
        "{name}: the file changed since lines 1-{line} were imported (see {}); use --restart to import it from the start",
        .path.display()
    )]
    FileChanged {
        name: String,
        line: u64,
        path: PathBuf,
    },
    #[error(transparent)]
    Section(#[from] SchemaSectionError),
    /// The file's schema does not compile; `line` and `column` are the file's.
    #[error("{name}:{line}:{column}: the file's schema: {message}")]
    Schema {
        name: String,
        line: u64,
        column: u32,
        message: String,
    },
    /// A line that does not fit the schema (direct mode; nothing was written).
    #[error("{name}:{line}: {reason} (schema version {schema_version}); nothing was written")]
    Invalid {
        name: String,
        line: u64,
        schema_version: String,
        reason: String,
    },
    #[error("{name}: writing the file's schema: {status}")]
    SchemaWrite { name: String, status: String },
    #[error(transparent)]
    Database(#[from] BulkError),
    /// Ctrl-C before the direct mode's COMMIT.
    #[error("{name}: interrupted; nothing was written (the transaction was not committed)")]
    Interrupted { name: String },
}

/// Reads the state file, if any.
pub fn read_state(file: &Path) -> Result<Option<State>, ImportError> {
    let path = state_path(file);
    match fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|source| ImportError::StateUnreadable { path, source }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(ImportError::StateRead { path, source }),
    }
}

fn write_state(file: &Path, state: &State) -> Result<(), ImportError> {
    let path = state_path(file);
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let write = || -> io::Result<()> {
        let bytes = serde_json::to_vec_pretty(state)?;
        let mut f = File::create(&tmp)?;
        f.write_all(&bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, &path)
    };
    write().map_err(|source| ImportError::StateWrite { path, source })
}

/// Runs the command.
pub fn run(args: &ImportArgs) -> ExitCode {
    let runtime = match data_file::cli_runtime() {
        Ok(r) => r,
        Err(code) => return code,
    };
    if args.database.direct() {
        return run_direct(args, &runtime);
    }
    let show = !args.quiet && io::stderr().is_terminal();
    match runtime.block_on(import(args, show)) {
        Ok(summary) => {
            if summary.stopped {
                eprintln!(
                    "stopped after {} batches (--stop-after-batches); run again to resume",
                    summary.batches
                );
                return ExitCode::FAILURE;
            }
            if !args.quiet {
                eprintln!(
                    "imported {} tuples and {} attributes in {} batches{}",
                    summary.tuples,
                    summary.attributes,
                    summary.batches,
                    if summary.resumed_after_line > 0 {
                        format!(
                            ", resuming after line {} (committed by an earlier run)",
                            summary.resumed_after_line
                        )
                    } else {
                        String::new()
                    }
                );
            }
            if !summary.snap_token.is_empty() {
                println!("{}", summary.snap_token);
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Runs the direct mode (`--database-uri` or `--config`).
fn run_direct(args: &ImportArgs, runtime: &tokio::runtime::Runtime) -> ExitCode {
    let mut progress = Progress::new("import", args.progress, args.quiet);
    let result = match args.database.uri(&data_file::environment()) {
        Ok((uri, warnings)) => {
            for warning in warnings {
                eprintln!("lookout import: warning: {warning}");
            }
            runtime.block_on(async {
                tokio::select! {
                    result = direct::import(args, &uri, &mut progress) => result,
                    _ = tokio::signal::ctrl_c() => Err(ImportError::Interrupted {
                        name: args.file.display().to_string(),
                    }),
                }
            })
        }
        Err(e) => {
            eprintln!("lookout import: {e}");
            return ExitCode::from(2);
        }
    };
    progress.finish();
    match result {
        Ok(summary) => {
            if !args.quiet {
                let w = &summary.written;
                let mut said = format!(
                    "imported into tenant `{}`: {} tuples and {} attributes written",
                    args.connect.tenant, w.tuples, w.attributes
                );
                match w.revisions {
                    Some((first, last)) if first == last => {
                        said.push_str(&format!(" as revision {first}"))
                    }
                    Some((first, last)) => said.push_str(&format!(" as revisions {first}-{last}")),
                    None => {
                        said.push_str(" (everything in the file was stored already; no revision)")
                    }
                }
                let repeats = (summary.tuple_lines + summary.attribute_lines)
                    .saturating_sub(w.tuples + w.attributes);
                if repeats > 0 {
                    said.push_str(&format!(", {repeats} lines stored already or repeated"));
                }
                said.push_str(&format!(
                    ", {} new entity IDs, schema version {}{}{}, in {:.2} s",
                    w.entities,
                    summary.schema_version,
                    if summary.schema_written {
                        " (the file's, written first)"
                    } else {
                        ""
                    },
                    if summary.tenant_created {
                        ", tenant created"
                    } else {
                        ""
                    },
                    progress.elapsed().as_secs_f64()
                ));
                eprintln!("{said}");
            }
            println!("{}", summary.snap_token);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Writes the file's schema (if it has one) to a tenant that has none, through the API.
async fn write_schema_if_missing(
    args: &ImportArgs,
    channel: tonic::transport::Channel,
    bearer: data_file::Bearer,
) -> Result<(), ImportError> {
    let name = args.file.display().to_string();
    let Some(schema) = data_file::read_schema(&args.file)? else {
        return Ok(());
    };
    let mut client =
        lookout_proto::v1::schema_client::SchemaClient::with_interceptor(channel, bearer);
    let refused = |status: tonic::Status| ImportError::SchemaWrite {
        name: name.clone(),
        status: data_file::status_text(&status),
    };
    let head = client
        .list(v1::SchemaListRequest {
            tenant_id: args.connect.tenant.clone(),
            page_size: 1,
            continuous_token: String::new(),
        })
        .await
        .map_err(refused)?
        .into_inner()
        .head;
    if head.is_empty() {
        client
            .write(v1::SchemaWriteRequest {
                tenant_id: args.connect.tenant.clone(),
                schema: schema.source,
            })
            .await
            .map_err(refused)?;
    }
    Ok(())
}

/// A batch being filled: its items and the line each came from.
#[derive(Default)]
struct Batch {
    tuples: Vec<v1::Tuple>,
    tuple_lines: Vec<u64>,
    attributes: Vec<v1::Attribute>,
    attribute_lines: Vec<u64>,
    first_line: Option<u64>,
}

impl Batch {
    fn len(&self) -> u64 {
        (self.tuples.len() + self.attributes.len()) as u64
    }

    /// The file line of the item the server names in `message` (`tuples[3]...`).
    fn line_named_in(&self, message: &str) -> Option<u64> {
        let index = |key: &str| -> Option<usize> {
            let rest = &message[message.find(key)? + key.len()..];
            rest[..rest.find(']')?].parse().ok()
        };
        if let Some(i) = index("tuples[") {
            return self.tuple_lines.get(i).copied();
        }
        index("attributes[").and_then(|i| self.attribute_lines.get(i).copied())
    }
}

/// Imports `args.file`, drawing a progress bar on stderr if `progress`.
pub async fn import(args: &ImportArgs, progress: bool) -> Result<Summary, ImportError> {
    let name = args.file.display().to_string();
    let file = File::open(&args.file).map_err(|source| ImportError::Open {
        name: name.clone(),
        source,
    })?;
    let total_bytes = file.metadata().map(|m| m.len()).unwrap_or(0);
    let mut reader = BufReader::new(file);

    let resume = if args.restart {
        None
    } else {
        read_state(&args.file)?
    };
    if let Some(state) = &resume
        && state.tenant != args.connect.tenant
    {
        return Err(ImportError::OtherTenant {
            path: state_path(&args.file),
            tenant: state.tenant.clone(),
        });
    }

    let (channel, bearer) = data_file::channel(&args.connect).await?;
    write_schema_if_missing(args, channel.clone(), bearer.clone()).await?;
    let client = v1::data_client::DataClient::with_interceptor(channel, bearer);

    let bar = if progress {
        let bar = ProgressBar::with_draw_target(Some(total_bytes), ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar
    } else {
        ProgressBar::hidden()
    };

    let mut summary = Summary::default();
    let mut hasher = Sha256::new();
    let mut bytes_read: u64 = 0;
    let mut line_no: u64 = 0;
    let mut line = String::new();

    // Skip what an earlier run committed, checking the file has not changed.
    if let Some(state) = &resume {
        while line_no < state.line {
            let Some(n) = next_line(&mut reader, &mut line, &name, line_no)? else {
                break;
            };
            line_no += 1;
            bytes_read += n as u64;
            hasher.update(line.as_bytes());
        }
        let digest = format!("{:x}", hasher.clone().finalize());
        if line_no != state.line || bytes_read != state.bytes || digest != state.sha256 {
            return Err(ImportError::FileChanged {
                name,
                line: state.line,
                path: state_path(&args.file),
            });
        }
        summary.resumed_after_line = state.line;
        summary.snap_token = state.snap_token.clone();
        bar.set_position(bytes_read);
    }

    let mut importer = Importer {
        args,
        client,
        batch: Batch::default(),
        summary,
        committed: Committed::at(line_no, bytes_read, &hasher),
    };
    while let Some(n) = next_line(&mut reader, &mut line, &name, line_no)? {
        line_no += 1;
        if !data_file::is_skipped(&line) {
            match data_file::parse_line(&line, args.format) {
                Ok(item) => {
                    importer.batch.first_line.get_or_insert(line_no);
                    match item {
                        Item::Tuple(t) => {
                            importer.batch.tuples.push(convert::tuple_out(&t));
                            importer.batch.tuple_lines.push(line_no);
                        }
                        Item::Attribute(a) => {
                            importer.batch.attributes.push(convert::attribute_out(&a));
                            importer.batch.attribute_lines.push(line_no);
                        }
                    }
                }
                Err(reason) => {
                    // Commit the good lines before this one, so nothing before it is lost
                    // and a run after fixing it starts at this line.
                    importer
                        .flush(Committed::at(line_no - 1, bytes_read, &hasher))
                        .await?;
                    bar.finish_and_clear();
                    return Err(ImportError::BadLine {
                        name,
                        line: line_no,
                        reason,
                    });
                }
            }
        }
        bytes_read += n as u64;
        hasher.update(line.as_bytes());
        if importer.batch.len() >= args.batch_size {
            importer
                .flush(Committed::at(line_no, bytes_read, &hasher))
                .await?;
            bar.set_position(bytes_read);
            bar.set_message(format!("{line_no} lines committed"));
            if args
                .stop_after_batches
                .is_some_and(|n| importer.summary.batches >= n)
            {
                importer.summary.stopped = true;
                bar.finish_and_clear();
                return Ok(importer.summary);
            }
        }
    }
    importer
        .flush(Committed::at(line_no, bytes_read, &hasher))
        .await?;
    bar.finish_and_clear();
    match fs::remove_file(state_path(&args.file)) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(source) => {
            return Err(ImportError::StateRemove {
                path: state_path(&args.file),
                source,
            });
        }
    }
    Ok(importer.summary)
}

/// Reads the line after line `line_no` into `line`: its length in bytes, or `None` at the end.
pub(crate) fn next_line(
    reader: &mut impl BufRead,
    line: &mut String,
    name: &str,
    line_no: u64,
) -> Result<Option<usize>, ImportError> {
    line.clear();
    match reader.read_line(line) {
        Ok(0) => Ok(None),
        Ok(n) => Ok(Some(n)),
        Err(source) => Err(ImportError::Read {
            name: name.to_owned(),
            line: line_no + 1,
            source,
        }),
    }
}

/// A point in the file up to which everything is on the server.
struct Committed {
    line: u64,
    bytes: u64,
    hasher: Sha256,
}

impl Committed {
    /// The point after line `line`, `bytes` into the file, with the file's hash up to there.
    fn at(line: u64, bytes: u64, hasher: &Sha256) -> Self {
        Committed {
            line,
            bytes,
            hasher: hasher.clone(),
        }
    }
}

/// An import under way: the connection, the batch being filled, what is committed so far.
struct Importer<'a> {
    args: &'a ImportArgs,
    client: data_file::Client,
    batch: Batch,
    summary: Summary,
    committed: Committed,
}

impl Importer<'_> {
    /// Writes the batch (if it has anything) and records `upto` as committed.
    async fn flush(&mut self, upto: Committed) -> Result<(), ImportError> {
        let Importer {
            args,
            client,
            batch,
            summary,
            committed,
        } = self;
        let name = args.file.display();
        if batch.len() > 0 {
            let request = v1::DataWriteRequest {
                tenant_id: args.connect.tenant.clone(),
                metadata: Some(v1::DataWriteRequestMetadata::default()),
                tuples: std::mem::take(&mut batch.tuples),
                attributes: std::mem::take(&mut batch.attributes),
            };
            let first = batch.first_line.unwrap_or(upto.line);
            let mut attempt = 0u32;
            let response = loop {
                match client.write(request.clone()).await {
                    Ok(response) => break response.into_inner(),
                    Err(status) if retryable(status.code()) && attempt < MAX_RETRIES => {
                        attempt += 1;
                        tokio::time::sleep(Duration::from_millis(200 << attempt)).await;
                    }
                    Err(status) => {
                        let at = batch
                            .line_named_in(status.message())
                            .map(|l| format!(" (the item the server names is line {l})"))
                            .unwrap_or_default();
                        let hint = if status.code() == tonic::Code::OutOfRange
                            || status.message().contains("too large")
                        {
                            " (a smaller --batch-size may help)"
                        } else {
                            ""
                        };
                        let done = if committed.line == 0 {
                            "nothing is committed yet".to_string()
                        } else {
                            format!("lines 1-{} are committed", committed.line)
                        };
                        return Err(ImportError::Refused {
                            name: name.to_string(),
                            first,
                            last: upto.line,
                            status: data_file::status_text(&status),
                            at,
                            hint,
                            done,
                        });
                    }
                }
            };
            summary.tuples += request.tuples.len() as u64;
            summary.attributes += request.attributes.len() as u64;
            summary.batches += 1;
            summary.snap_token = response.snap_token;
        }
        *batch = Batch::default();
        if upto.line > committed.line {
            let state = State {
                version: 1,
                tenant: args.connect.tenant.clone(),
                line: upto.line,
                bytes: upto.bytes,
                sha256: format!("{:x}", upto.hasher.clone().finalize()),
                snap_token: summary.snap_token.clone(),
            };
            write_state(&args.file, &state)?;
            *committed = upto;
        }
        Ok(())
    }
}

/// Attempts after the first for a write the server could not take just then.
const MAX_RETRIES: u32 = 5;

fn retryable(code: tonic::Code) -> bool {
    matches!(
        code,
        tonic::Code::Unavailable | tonic::Code::ResourceExhausted | tonic::Code::Aborted
    )
}
