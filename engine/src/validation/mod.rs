//! Permify validation files: a schema, relationships, attributes and scenarios of assertions.
//!
//! [`parse`] reads a file into serde structs ([`ValidationFile`] down); [`run`] compiles the
//! schema, writes the data into a fresh store in one batch and asks every assertion of the file,
//! returning a [`Report`] of every outcome. A file that cannot be run (bad YAML, schema or data) is a
//! [`ValidationError`]; an assertion that cannot be answered (an unknown permission, a malformed
//! subject) is a failed outcome whose answer is the error. No I/O: callers read the files.

mod file;
mod locate;
mod report;

pub use file::{
    Assertions, Check, EntityFilter, FileContext, Parsed, Scenario, SubjectFilter, TOP_LEVEL_KEYS,
    ValidationFile, parse,
};
pub use report::{
    Answer, AssertionKind, DEFAULT_DEPTH, Expectation, Outcome, Question, Report, Request,
    expectations,
};

use crate::eval::{EntitySet, EvalError, Evaluator, Model};
use crate::index::{Snapshot, Store, WriteBatch, WriteError};
use crate::model::{Attribute, ModelError, Tuple};
use crate::schema::{SchemaError, Span};

/// Why a file could not be run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValidationError {
    #[error("invalid yaml: {message}")]
    Yaml {
        message: String,
        line: Option<usize>,
        column: Option<usize>,
    },
    #[error("the file is empty")]
    Empty,
    #[error(
        "the file must be a mapping with the keys `schema`, `relationships`, `attributes` and `scenarios`"
    )]
    NotAMapping,
    #[error(
        "unknown top-level {} {} (expected `schema`, `relationships`, `attributes` or `scenarios`)",
        if .0.len() == 1 { "key" } else { "keys" },
        .0.iter().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", ")
    )]
    UnknownKeys(Vec<String>),
    /// `position` is where the error is in the file, when it can be told; `error.span` is where
    /// it is in the schema text (which positions inside `error.message` also refer to).
    #[error("invalid schema at {}: {}", schema_at(.error, .position), .error.message)]
    Schema {
        error: SchemaError,
        position: Option<Span>,
    },
    /// A relationship or attribute that does not parse or does not fit the schema.
    #[error("invalid {what} `{text}` {}: {reason}", data_at(*.index, *.line))]
    Data {
        /// `relationship` or `attribute`.
        what: &'static str,
        /// 0-based position in its list.
        index: usize,
        /// 1-based line in the file, when it can be told.
        line: Option<usize>,
        text: String,
        reason: String,
    },
    #[error("cannot store the data: {0}")]
    Store(String),
}

/// `9:20 (schema 6:12)`: the file position first, for editors; the schema position too, since
/// the message may cite other schema positions.
fn schema_at(error: &SchemaError, position: &Option<Span>) -> String {
    match position {
        Some(p) => format!("{p} (schema {})", error.span),
        None => format!("schema {}", error.span),
    }
}

fn data_at(index: usize, line: Option<usize>) -> String {
    match line {
        Some(line) => format!("at line {line}"),
        None => format!("(item {})", index + 1),
    }
}

/// Runs a validation file: every assertion of every scenario, against the file's schema and data.
pub fn run(source: &str) -> Result<Report, ValidationError> {
    run_parsed(source, parse(source)?)
}

/// As [`run`], for a file already parsed from `source` (which a caller may have completed, such
/// as `lookout validate` reading a `schema:` that names a file). Positions are found in
/// `source`, and only where they line up with the parsed values.
pub fn run_parsed(source: &str, parsed: Parsed) -> Result<Report, ValidationError> {
    let file = &parsed.file;
    let model = Model::compile(&file.schema).map_err(|error| ValidationError::Schema {
        position: locate::schema_position(source, &file.schema, error.span),
        error,
    })?;
    let batch = data_batch(source, file)?;
    let store = Store::new();
    let written = store
        .write(&model.schema, &batch)
        .map_err(|e| write_error(source, file, e))?;
    let (expectations, mut warnings) = expectations(file);
    warnings.splice(0..0, parsed.warnings);
    let mut outcomes = Vec::with_capacity(expectations.len());
    for expectation in &expectations {
        let got = match &expectation.request {
            Ok(request) => match ask(&model, &written.snapshot, request) {
                Ok((answer, rule_errors)) => {
                    for error in rule_errors {
                        let warning = format!(
                            "scenario \"{}\": {}: a rule failed and denied: {error}",
                            expectation.scenario, expectation.asked
                        );
                        if !warnings.contains(&warning) {
                            warnings.push(warning);
                        }
                    }
                    answer
                }
                Err(e) => Answer::Error(e.to_string()),
            },
            Err(reason) => Answer::Error(reason.clone()),
        };
        outcomes.push(expectation.judge(got));
    }
    Ok(Report { outcomes, warnings })
}

/// Asks one question of the engine: the answer, and the failures of rules that denied on the way.
fn ask(
    model: &Model,
    snapshot: &Snapshot,
    request: &Request,
) -> Result<(Answer, Vec<String>), EvalError> {
    let evaluator = Evaluator::new(model, snapshot, &request.context)?;
    let ids = |entity_type: &str, found: EntitySet| {
        let ids = evaluator.names(entity_type, &found.numbers);
        (Answer::Ids(ids), found.rule_errors)
    };
    Ok(match &request.question {
        Question::Check {
            entity,
            permission,
            subject,
            depth,
        } => {
            let result = evaluator.check(entity, permission, subject, *depth)?;
            (Answer::Allowed(result.allowed), result.rule_errors)
        }
        Question::LookupEntity {
            entity_type,
            permission,
            subject,
        } => ids(
            entity_type,
            evaluator.lookup_entity(entity_type, permission, subject)?,
        ),
        Question::LookupSubject {
            entity,
            permission,
            subject_type,
            subject_relation,
        } => ids(
            subject_type,
            evaluator.lookup_subject(
                entity,
                permission,
                subject_type,
                subject_relation.as_deref(),
            )?,
        ),
    })
}

/// Parses the file's relationships and attributes into one batch.
fn data_batch(source: &str, file: &ValidationFile) -> Result<WriteBatch, ValidationError> {
    let tuple_writes = file
        .relationships
        .iter()
        .enumerate()
        .map(|(i, text)| {
            Tuple::parse(text).map_err(|e| data_error(source, "relationship", i, text, reason(e)))
        })
        .collect::<Result<_, _>>()?;
    let attribute_writes = file
        .attributes
        .iter()
        .enumerate()
        .map(|(i, text)| {
            Attribute::parse(text).map_err(|e| data_error(source, "attribute", i, text, reason(e)))
        })
        .collect::<Result<_, _>>()?;
    Ok(WriteBatch {
        tuple_writes,
        attribute_writes,
        ..WriteBatch::default()
    })
}

fn data_error(
    source: &str,
    what: &'static str,
    index: usize,
    text: &str,
    reason: String,
) -> ValidationError {
    let section = match what {
        "relationship" => "relationships",
        _ => "attributes",
    };
    ValidationError::Data {
        what,
        index,
        line: locate::item_line(source, section, text),
        text: text.trim().to_string(),
        reason,
    }
}

/// The reason of a parse error, without the text it repeats.
fn reason(e: ModelError) -> String {
    match e {
        ModelError::Tuple { reason, .. }
        | ModelError::Attribute { reason, .. }
        | ModelError::Entity { reason, .. }
        | ModelError::Subject { reason, .. } => reason,
        name @ ModelError::Name { .. } => name.to_string(),
    }
}

/// Names the relationship or attribute a rejected batch stumbled on.
fn write_error(source: &str, file: &ValidationFile, e: WriteError) -> ValidationError {
    let (what, index) = match &e {
        WriteError::Model { what, index, .. }
        | WriteError::UnknownEntityType { what, index, .. }
        | WriteError::UnknownRelation { what, index, .. }
        | WriteError::SubjectNotAllowed { what, index, .. }
        | WriteError::UnknownAttribute { what, index, .. }
        | WriteError::AttributeType { what, index, .. } => (*what, *index),
        WriteError::Capacity(message) | WriteError::Replica(message) => {
            return ValidationError::Store(message.clone());
        }
    };
    let (what, list) = match what {
        "tuple" => ("relationship", &file.relationships),
        "attribute" => ("attribute", &file.attributes),
        _ => return ValidationError::Store(e.to_string()),
    };
    let Some(text) = list.get(index) else {
        return ValidationError::Store(e.to_string());
    };
    let reason = match e {
        WriteError::Model { source, .. } => source.to_string(),
        // The message starts with "tuple 3 (`...`): "; keep what follows.
        other => {
            let message = other.to_string();
            match message.split_once("`): ") {
                Some((_, rest)) => rest.to_string(),
                None => message,
            }
        }
    };
    data_error(source, what, index, text, reason)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic, reason = "tests fail by panicking")]
mod tests;
