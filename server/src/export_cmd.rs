//! `lookout export`: writes every tuple and then every attribute of a tenant, one per line (text
//! or JSON, see [`crate::data_file`]), to stdout or `--output FILE`, reading them page by page
//! with `Data.ReadRelationships` and `Data.ReadAttributes`.
//!
//! All pages of the tuples come from one revision, and all pages of the attributes from one
//! revision: the first page of each is read at `--snap-token` (or the latest revision) and the
//! continuous tokens of the next pages pin it. The API cannot pin a fresh query to an exact
//! earlier revision, so the attributes' revision is the tuples' one only if nothing was written
//! between the two first pages (stop writers for an exact point-in-time copy). A file written
//! with `--output` (or as `FILE`) is written to `FILE.tmp` and renamed when complete, so an
//! interrupted export never leaves a partial file under the final name.
//!
//! **The schema.** The API returns a tenant's schema compiled (`Schema.Read` answers Permify's
//! `SchemaDefinition`, without the source text or the bodies of rules), so an export through a
//! server carries no schema section. The direct mode ([`direct`], `--database-uri`) reads the
//! source the database keeps and writes it at the top of the file (see [`crate::data_file`]).

use std::fs::{self, File};
use std::io::{self, BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use lookout_proto::v1;

use crate::data_file::{self, ConnectArgs, DatabaseArgs, Format, Item};
use crate::service::convert;
use crate::storage::postgres::bulk::BulkError;

pub mod direct;

#[derive(Debug, Clone, Args)]
pub struct ExportArgs {
    /// Write to this file (through `FILE.tmp`) instead of stdout; the same as `--output`.
    #[arg(value_name = "FILE", conflicts_with = "output")]
    pub file: Option<PathBuf>,

    #[command(flatten)]
    pub connect: ConnectArgs,

    #[command(flatten)]
    pub database: DatabaseArgs,

    /// Line format: text lines as in validation files, or JSON lines (exact for every value).
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,

    /// Write to this file instead of stdout.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,

    /// Read at least as fresh as this snap token (by default, the latest revision).
    #[arg(long, value_name = "TOKEN")]
    pub snap_token: Option<String>,

    /// Items per read request (at most the server's --max-page-size).
    #[arg(long, value_name = "N", default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..))]
    pub page_size: u32,

    /// No progress display and no summary (errors are still printed).
    #[arg(short, long)]
    pub quiet: bool,

    /// Direct mode: show the progress line on stderr even when it is not a terminal (then one
    /// line a second).
    #[arg(long)]
    pub progress: bool,
}

impl ExportArgs {
    /// The file to write, if not stdout.
    pub fn path(&self) -> Option<&Path> {
        self.file.as_deref().or(self.output.as_deref())
    }
}

/// What an export wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    pub tuples: u64,
    pub attributes: u64,
}

/// Why an export stopped.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(transparent)]
    Connect(#[from] data_file::ConnectError),
    /// A read the server refused; `what` is `tuples` or `attributes`, `status` the status as
    /// [`data_file::status_text`] writes it.
    #[error("reading {what}: {status}")]
    Read { what: &'static str, status: String },
    /// A tuple or attribute the server sent that does not convert; `what` is `tuple` or
    /// `attribute`.
    #[error("the server sent an unreadable {what}: {message}")]
    Unreadable { what: &'static str, message: String },
    /// An item [`data_file::format_line`] cannot write in the format asked for.
    #[error("{0}")]
    Format(String),
    #[error("cannot write: {0}")]
    Write(io::Error),
    #[error(transparent)]
    Database(#[from] BulkError),
    /// Creating, syncing or renaming the output file, or flushing stdout.
    #[error("{}: {source}", .path.display())]
    Output { path: PathBuf, source: io::Error },
    /// Ctrl-C (SIGINT) before the export was complete.
    #[error("interrupted; nothing was written to {}", .0.display())]
    Interrupted(PathBuf),
}

/// The partial file of an export in progress: removed when dropped before [`Partial::keep`],
/// so a failed or interrupted export leaves no `FILE.tmp` behind.
struct Partial {
    path: Option<PathBuf>,
}

impl Partial {
    /// The file is complete and renamed: nothing to remove.
    fn keep(mut self) {
        self.path = None;
    }
}

impl Drop for Partial {
    fn drop(&mut self) {
        if let Some(path) = self.path.take() {
            // Best effort: the error that ended the export is the one worth reporting.
            let _ = fs::remove_file(path);
        }
    }
}

/// Runs the command.
pub fn run(args: &ExportArgs) -> ExitCode {
    let runtime = match data_file::cli_runtime() {
        Ok(r) => r,
        Err(code) => return code,
    };
    if args.database.direct() {
        return direct::run(args, &runtime);
    }
    let show = !args.quiet && io::stderr().is_terminal();
    let result = match args.path() {
        Some(path) => runtime.block_on(export_to_file(args, path, show)),
        None => {
            let mut out = BufWriter::new(io::stdout().lock());
            runtime
                .block_on(export(args, &mut out, show))
                .and_then(|s| {
                    out.flush()
                        .map(|()| s)
                        .map_err(|source| ExportError::Output {
                            path: PathBuf::from("stdout"),
                            source,
                        })
                })
        }
    };
    match result {
        Ok(summary) => {
            if !args.quiet {
                eprintln!(
                    "exported {} tuples and {} attributes",
                    summary.tuples, summary.attributes
                );
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Exports into `path` (through `path.tmp`, renamed when complete). An export that fails or
/// is interrupted with Ctrl-C removes its `path.tmp`; only a killed process can leave one.
pub async fn export_to_file(
    args: &ExportArgs,
    path: &Path,
    progress: bool,
) -> Result<Summary, ExportError> {
    write_file(path, async |out: &mut BufWriter<File>| {
        export(args, out, progress).await
    })
    .await
}

/// Runs `write` on `path.tmp` and renames it to `path` when `write` succeeded. A `write` that
/// fails or is interrupted with Ctrl-C removes `path.tmp`; only a killed process can leave one.
pub async fn write_file<T>(
    path: &Path,
    write: impl AsyncFnOnce(&mut BufWriter<File>) -> Result<T, ExportError>,
) -> Result<T, ExportError> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let file = File::create(&tmp).map_err(|source| ExportError::Output {
        path: tmp.clone(),
        source,
    })?;
    let partial = Partial {
        path: Some(tmp.clone()),
    };
    let mut out = BufWriter::with_capacity(1 << 20, file);
    let summary = tokio::select! {
        summary = write(&mut out) => summary?,
        _ = tokio::signal::ctrl_c() => return Err(ExportError::Interrupted(path.to_owned())),
    };
    out.flush()
        .and_then(|()| out.get_ref().sync_all())
        .and_then(|()| fs::rename(&tmp, path))
        .map_err(|source| ExportError::Output {
            path: path.to_owned(),
            source,
        })?;
    partial.keep();
    Ok(summary)
}

/// Exports to `out`, drawing a spinner on stderr if `progress`.
pub async fn export(
    args: &ExportArgs,
    out: &mut dyn Write,
    progress: bool,
) -> Result<Summary, ExportError> {
    let mut client = data_file::connect(&args.connect).await?;
    let bar = if progress {
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template("{spinner} [{elapsed_precise}] {pos} items {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar
    } else {
        ProgressBar::hidden()
    };
    let tenant = args.connect.tenant.clone();
    let snap = args.snap_token.clone().unwrap_or_default();
    let mut summary = Summary::default();
    let write = |item: Item, out: &mut dyn Write| -> Result<(), ExportError> {
        let line = data_file::format_line(&item, args.format).map_err(ExportError::Format)?;
        writeln!(out, "{line}").map_err(ExportError::Write)?;
        bar.inc(1);
        Ok(())
    };

    let mut token = String::new();
    loop {
        let response = client
            .read_relationships(v1::RelationshipReadRequest {
                tenant_id: tenant.clone(),
                metadata: Some(v1::RelationshipReadRequestMetadata {
                    snap_token: snap.clone(),
                }),
                filter: Some(v1::TupleFilter::default()),
                page_size: args.page_size,
                continuous_token: token.clone(),
            })
            .await
            .map_err(|s| ExportError::Read {
                what: "tuples",
                status: data_file::status_text(&s),
            })?
            .into_inner();
        for (i, t) in response.tuples.iter().enumerate() {
            let tuple = convert::tuple(t, &format!("tuples[{i}]")).map_err(|e| {
                ExportError::Unreadable {
                    what: "tuple",
                    message: e.message,
                }
            })?;
            write(Item::Tuple(tuple), out)?;
            summary.tuples += 1;
        }
        if response.continuous_token.is_empty() {
            break;
        }
        token = response.continuous_token;
    }

    let mut token = String::new();
    loop {
        let response = client
            .read_attributes(v1::AttributeReadRequest {
                tenant_id: tenant.clone(),
                metadata: Some(v1::AttributeReadRequestMetadata {
                    snap_token: snap.clone(),
                }),
                filter: Some(v1::AttributeFilter::default()),
                page_size: args.page_size,
                continuous_token: token.clone(),
            })
            .await
            .map_err(|s| ExportError::Read {
                what: "attributes",
                status: data_file::status_text(&s),
            })?
            .into_inner();
        for (i, a) in response.attributes.iter().enumerate() {
            let attribute = convert::attribute(a, &format!("attributes[{i}]")).map_err(|e| {
                ExportError::Unreadable {
                    what: "attribute",
                    message: e.message,
                }
            })?;
            write(Item::Attribute(attribute), out)?;
            summary.attributes += 1;
        }
        if response.continuous_token.is_empty() {
            break;
        }
        token = response.continuous_token;
    }
    bar.finish_and_clear();
    Ok(summary)
}
