//! `lookout export --database-uri URI [FILE]`: a tenant straight from the PostgreSQL store, at
//! one revision (one repeatable-read snapshot, see [`bulk`]), without the API's page size:
//! a comment naming the tenant and revision, the schema section (the latest schema version's
//! source, if the tenant has a schema), every tuple, then every attribute.

use std::io::{self, BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use super::{ExportArgs, ExportError, Summary, write_file};
use crate::data_file::{self, Item};
use crate::progress::Progress;
use crate::storage::postgres::bulk;

/// What a direct export wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DirectSummary {
    pub items: Summary,
    /// The revision the export is of.
    pub revision: u64,
    /// The schema version whose source the file carries, if the tenant has one.
    pub schema_version: Option<String>,
}

/// Runs the direct mode (`--database-uri` or `--config`).
pub fn run(args: &ExportArgs, runtime: &tokio::runtime::Runtime) -> ExitCode {
    let uri = match args.database.uri(&data_file::environment()) {
        Ok((uri, warnings)) => {
            for warning in warnings {
                eprintln!("lookout export: warning: {warning}");
            }
            uri
        }
        Err(e) => {
            eprintln!("lookout export: {e}");
            return ExitCode::from(2);
        }
    };
    let mut progress = Progress::new("export", args.progress, args.quiet);
    let result = runtime.block_on(export_to(args, &uri, &mut progress));
    progress.finish();
    match result {
        Ok(summary) => {
            if !args.quiet {
                eprintln!(
                    "exported {} tuples and {} attributes of tenant `{}` at revision {}, {}, in {:.2} s",
                    summary.items.tuples,
                    summary.items.attributes,
                    args.connect.tenant,
                    summary.revision,
                    match &summary.schema_version {
                        Some(v) => format!("with schema version {v}"),
                        None => "without a schema (the tenant has none)".to_owned(),
                    },
                    progress.elapsed().as_secs_f64()
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

/// Exports to the file `args` names (through `FILE.tmp`), or to stdout.
pub async fn export_to(
    args: &ExportArgs,
    uri: &str,
    progress: &mut Progress,
) -> Result<DirectSummary, ExportError> {
    match args.path() {
        Some(path) => {
            write_file(path, async |out: &mut BufWriter<std::fs::File>| {
                export(args, uri, out, progress).await
            })
            .await
        }
        None => {
            let stdout = || PathBuf::from("stdout");
            let mut out = BufWriter::with_capacity(1 << 20, io::stdout().lock());
            let summary = tokio::select! {
                summary = export(args, uri, &mut out, progress) => summary?,
                _ = tokio::signal::ctrl_c() => return Err(ExportError::Interrupted(stdout())),
            };
            out.flush().map_err(|source| ExportError::Output {
                path: stdout(),
                source,
            })?;
            Ok(summary)
        }
    }
}

/// Exports `args.connect.tenant` from the database at `uri` to `out`.
pub async fn export(
    args: &ExportArgs,
    uri: &str,
    out: &mut dyn Write,
    progress: &mut Progress,
) -> Result<DirectSummary, ExportError> {
    let tenant = &args.connect.tenant;
    let mut snapshot = bulk::export(uri, tenant).await?;
    let mut summary = DirectSummary {
        revision: snapshot.revision,
        schema_version: snapshot.schema.as_ref().map(|s| s.version.clone()),
        ..DirectSummary::default()
    };
    let mut header = format!(
        "// lookout export of tenant `{tenant}` at revision {}",
        snapshot.revision
    );
    match &snapshot.schema {
        Some(schema) => {
            header.push_str(&format!(", schema version {}\n", schema.version));
            header.push_str(&data_file::schema_section(&schema.source));
        }
        None => header.push_str(" (the tenant has no schema)\n"),
    }
    out.write_all(header.as_bytes())
        .map_err(ExportError::Write)?;
    let mut count = 0u64;
    let mut write = |item: Item, out: &mut dyn Write| -> Result<(), ExportError> {
        let line = data_file::format_line(&item, args.format).map_err(ExportError::Format)?;
        out.write_all(line.as_bytes())
            .and_then(|()| out.write_all(b"\n"))
            .map_err(ExportError::Write)?;
        count += 1;
        if count.is_multiple_of(4096) {
            progress.items("items", count, None);
        }
        Ok(())
    };
    summary.items.tuples = snapshot.tuples(|t| write(Item::Tuple(t), out)).await?;
    summary.items.attributes = snapshot
        .attributes(|a| write(Item::Attribute(a), out))
        .await?;
    snapshot.finish().await?;
    Ok(summary)
}
