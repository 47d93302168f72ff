//! `lookout import --database-uri URI FILE`: the file straight into the PostgreSQL store, in
//! one transaction ([`bulk`] has what it writes and why running servers see it).
//!
//! The file is read and parsed first, without holding anything; then the tenant's write lock
//! is taken, the schema read (or the file's written, if the tenant has none), every item
//! validated against it, and everything written and committed. A line that does not parse or
//! does not fit the schema stops the import naming the file and line, and nothing is written.
//! An interrupted import wrote nothing either: run it again. Running it again after it
//! completed writes nothing (everything is stored already) and no revision.

use std::fs::File;
use std::io::BufReader;

use lookout_engine::index::{validate_attribute, validate_tuple};
use lookout_engine::model::{Attribute, Tuple};
use lookout_engine::tokens::SnapToken;

use super::{ImportArgs, ImportError, next_line};
use crate::data_file::{self, Item};
use crate::progress::Progress;
use crate::storage::postgres::bulk::{self, ImportOptions, ImportSummary};
use crate::tenants::Tenant;

/// What a direct import did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DirectSummary {
    /// Tuple lines read (repeats included).
    pub tuple_lines: u64,
    /// Attribute lines read.
    pub attribute_lines: u64,
    /// What was written.
    pub written: ImportSummary,
    /// The schema version the data was validated against.
    pub schema_version: String,
    /// Whether the file's schema was written (the tenant had none).
    pub schema_written: bool,
    /// Whether the tenant was created.
    pub tenant_created: bool,
    /// The snap token of the last revision written, or of the tenant's revision if nothing
    /// changed.
    pub snap_token: String,
}

/// The items of a file with the line of each.
#[derive(Default)]
struct Items {
    tuples: Vec<Tuple>,
    tuple_lines: Vec<u64>,
    attributes: Vec<Attribute>,
    attribute_lines: Vec<u64>,
}

/// Imports `args.file` into the database at `uri`.
pub async fn import(
    args: &ImportArgs,
    uri: &str,
    progress: &mut Progress,
) -> Result<DirectSummary, ImportError> {
    let name = args.file.display().to_string();
    let file_schema = data_file::read_schema(&args.file)?;
    let compiled = match &file_schema {
        Some(schema) => {
            Some(
                Tenant::compile_schema(&schema.source).map_err(|e| ImportError::Schema {
                    name: name.clone(),
                    line: schema.first_line + u64::from(e.span.line.max(1)) - 1,
                    column: e.span.column,
                    message: e.message.clone(),
                })?,
            )
        }
        None => None,
    };
    let items = read(args, &name, progress)?;

    progress.step("locking the tenant");
    let options = ImportOptions {
        create_tenant: args.create_tenant,
        revision_size: args.revision_size as usize,
        stop_before_commit: args.stop_before_commit,
    };
    let import = bulk::import(uri, &args.connect.tenant, compiled, options).await?;
    progress.step("validating");
    let schema = &import.model.schema;
    for (t, line) in items.tuples.iter().zip(&items.tuple_lines) {
        validate_tuple(schema, t, "line", *line as usize).map_err(|e| ImportError::Invalid {
            name: name.clone(),
            line: *line,
            schema_version: import.schema_version.clone(),
            reason: e.to_string(),
        })?;
    }
    for (a, line) in items.attributes.iter().zip(&items.attribute_lines) {
        validate_attribute(schema, a, "line", *line as usize).map_err(|e| {
            ImportError::Invalid {
                name: name.clone(),
                line: *line,
                schema_version: import.schema_version.clone(),
                reason: e.to_string(),
            }
        })?;
    }
    let mut summary = DirectSummary {
        tuple_lines: items.tuples.len() as u64,
        attribute_lines: items.attributes.len() as u64,
        schema_version: import.schema_version.clone(),
        schema_written: import.schema_written,
        tenant_created: import.tenant_created,
        ..DirectSummary::default()
    };
    let before = import.revision();
    let written = import
        .write(items.tuples, items.attributes, &mut |step| {
            progress.step(step)
        })
        .await?;
    let revision = written.revisions.map_or(before, |(_, last)| last);
    summary.snap_token = SnapToken { revision }.encode(&args.connect.tenant);
    summary.written = written;
    Ok(summary)
}

/// Reads and parses every line of the file.
fn read(args: &ImportArgs, name: &str, progress: &mut Progress) -> Result<Items, ImportError> {
    let file = File::open(&args.file).map_err(|source| ImportError::Open {
        name: name.to_owned(),
        source,
    })?;
    let total = file.metadata().map(|m| m.len()).unwrap_or(0);
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let mut items = Items::default();
    let mut line = String::new();
    let mut line_no = 0u64;
    let mut bytes = 0u64;
    while let Some(n) = next_line(&mut reader, &mut line, name, line_no)? {
        line_no += 1;
        bytes += n as u64;
        if data_file::is_skipped(&line) {
            continue;
        }
        match data_file::parse_line(&line, args.format) {
            Ok(Item::Tuple(t)) => {
                items.tuples.push(t);
                items.tuple_lines.push(line_no);
            }
            Ok(Item::Attribute(a)) => {
                items.attributes.push(a);
                items.attribute_lines.push(line_no);
            }
            Err(reason) => {
                return Err(ImportError::BadLine {
                    name: name.to_owned(),
                    line: line_no,
                    reason,
                });
            }
        }
        if line_no.is_multiple_of(4096) {
            progress.items("lines", line_no, Some((bytes, total)));
        }
    }
    Ok(items)
}
