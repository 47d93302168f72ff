//! The assertions of a file as questions with expected answers, and the report of a run.
//!
//! [`expectations`] flattens a file's scenarios into one [`Expectation`] per assertion, each with
//! a typed [`Question`] and [`Context`]. Anything that answers questions (the engine here, the
//! server's API in its tests) turns an answer into an [`Outcome`] with [`Expectation::judge`], so
//! every way of running a file compares answers the same way.

use std::collections::BTreeSet;
use std::fmt;
use std::sync::Arc;

use super::file::{Assertions, FileContext, ValidationFile};
use crate::eval::Context;
use crate::model::{EntityRef, SubjectRef, normalize_subject_relation};

/// The depth of a check that does not give one.
pub const DEFAULT_DEPTH: u32 = 50;

/// Which list of a scenario an assertion comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AssertionKind {
    /// `checks`: a permission check.
    Check,
    /// `entity_filters`: a lookup of entities.
    EntityFilter,
    /// `subject_filters`: a lookup of subjects.
    SubjectFilter,
}

impl AssertionKind {
    /// The verb that starts an [`Expectation::asked`] text.
    pub fn verb(self) -> &'static str {
        match self {
            AssertionKind::Check => "check",
            AssertionKind::EntityFilter => "lookup-entity",
            AssertionKind::SubjectFilter => "lookup-subject",
        }
    }
}

/// One question to the engine.
#[derive(Debug, Clone, PartialEq)]
pub enum Question {
    Check {
        entity: EntityRef,
        permission: String,
        subject: SubjectRef,
        depth: u32,
    },
    LookupEntity {
        entity_type: String,
        permission: String,
        subject: SubjectRef,
    },
    LookupSubject {
        entity: EntityRef,
        permission: String,
        subject_type: String,
        subject_relation: Option<String>,
    },
}

/// A question with the context it is asked in.
#[derive(Debug, Clone)]
pub struct Request {
    pub question: Question,
    /// Shared by the assertions of one check or filter.
    pub context: Arc<Context>,
}

/// An expected or actual answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    Allowed(bool),
    /// Entity or subject IDs; compared as sets.
    Ids(Vec<String>),
    /// The question could not be answered.
    Error(String),
}

impl Answer {
    /// Whether `got` answers as `self` expects: the same boolean, or the same set of IDs.
    pub fn accepts(&self, got: &Answer) -> bool {
        match (self, got) {
            (Answer::Allowed(a), Answer::Allowed(b)) => a == b,
            (Answer::Ids(a), Answer::Ids(b)) => {
                a.iter().collect::<BTreeSet<_>>() == b.iter().collect::<BTreeSet<_>>()
            }
            _ => false,
        }
    }
}

impl fmt::Display for Answer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Answer::Allowed(b) => write!(f, "{b}"),
            Answer::Ids(ids) => write!(f, "[{}]", ids.join(", ")),
            Answer::Error(e) => write!(f, "error: {e}"),
        }
    }
}

/// One assertion of a file, ready to be asked.
#[derive(Debug, Clone)]
pub struct Expectation {
    pub scenario: String,
    pub kind: AssertionKind,
    /// What is asked, as text: `check document:1#view@user:1`,
    /// `lookup-entity document#view@user:1`, `lookup-subject document:1#view@group#member`,
    /// followed by the depth and the context when the file gives them
    /// (`check account:1#withdraw@user:1 with data {"amount":60}`).
    pub asked: String,
    /// The question, or why the file's text does not make one (a malformed entity, subject or
    /// context): such an assertion fails with that reason.
    pub request: Result<Request, String>,
    pub want: Answer,
}

impl Expectation {
    /// Compares an answer with the expected one.
    pub fn judge(&self, got: Answer) -> Outcome {
        Outcome {
            scenario: self.scenario.clone(),
            kind: self.kind,
            asked: self.asked.clone(),
            passed: self.want.accepts(&got),
            want: self.want.clone(),
            got,
        }
    }
}

/// The outcome of one assertion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub scenario: String,
    pub kind: AssertionKind,
    pub asked: String,
    pub want: Answer,
    pub got: Answer,
    pub passed: bool,
}

/// `scenario "NAME": check document:1#view@user:1: want true, got false`, and for lists the
/// IDs missing and unexpected.
impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "scenario \"{}\": {}: want {}, got {}",
            self.scenario, self.asked, self.want, self.got
        )?;
        if let (Answer::Ids(want), Answer::Ids(got)) = (&self.want, &self.got)
            && !self.passed
        {
            let want: BTreeSet<&String> = want.iter().collect();
            let got: BTreeSet<&String> = got.iter().collect();
            let list = |ids: Vec<&&String>| {
                ids.iter()
                    .map(|id| format!("`{id}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let missing: Vec<_> = want.difference(&got).collect();
            let unexpected: Vec<_> = got.difference(&want).collect();
            let mut parts = Vec::new();
            if !missing.is_empty() {
                parts.push(format!("missing {}", list(missing)));
            }
            if !unexpected.is_empty() {
                parts.push(format!("unexpected {}", list(unexpected)));
            }
            if !parts.is_empty() {
                write!(f, " ({})", parts.join(", "))?;
            }
        }
        Ok(())
    }
}

/// Every assertion outcome of a file, in file order, and the warnings of the run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    pub outcomes: Vec<Outcome>,
    pub warnings: Vec<String>,
}

impl Report {
    pub fn passed(&self) -> usize {
        self.outcomes.iter().filter(|o| o.passed).count()
    }

    pub fn failed(&self) -> usize {
        self.outcomes.len() - self.passed()
    }

    /// Whether every assertion passed.
    pub fn success(&self) -> bool {
        self.outcomes.iter().all(|o| o.passed)
    }

    pub fn failures(&self) -> impl Iterator<Item = &Outcome> {
        self.outcomes.iter().filter(|o| !o.passed)
    }
}

/// Flattens a file's scenarios into assertions, in file order, with warnings for assertions
/// that are skipped (no value) and checks or filters that assert nothing.
pub fn expectations(file: &ValidationFile) -> (Vec<Expectation>, Vec<String>) {
    let mut out = Vec::new();
    let mut warnings = Vec::new();
    for (index, scenario) in file.scenarios.iter().enumerate() {
        let name = if scenario.name.is_empty() {
            format!("#{}", index + 1)
        } else {
            scenario.name.clone()
        };
        let mut items = Items {
            scenario: &name,
            out: &mut out,
            warnings: &mut warnings,
        };
        for check in &scenario.checks {
            let asked = describe(
                AssertionKind::Check,
                &check.entity,
                &check.subject,
                check.depth,
                &check.context,
            );
            let base = EntityRef::parse(&check.entity)
                .and_then(|e| Ok((e, SubjectRef::parse(&check.subject)?)))
                .map_err(|e| e.to_string());
            let depth = check.depth.unwrap_or(DEFAULT_DEPTH);
            items.add(
                AssertionKind::Check,
                &check.context,
                &check.assertions,
                asked,
                |permission| {
                    let (entity, subject) = base.clone()?;
                    Ok(Question::Check {
                        entity,
                        permission: permission.to_string(),
                        subject,
                        depth,
                    })
                },
                |want| Answer::Allowed(*want),
            );
        }
        for filter in &scenario.entity_filters {
            let asked = describe(
                AssertionKind::EntityFilter,
                &filter.entity_type,
                &filter.subject,
                None,
                &filter.context,
            );
            let subject = SubjectRef::parse(&filter.subject).map_err(|e| e.to_string());
            items.add(
                AssertionKind::EntityFilter,
                &filter.context,
                &filter.assertions,
                asked,
                |permission| {
                    Ok(Question::LookupEntity {
                        entity_type: filter.entity_type.trim().to_string(),
                        permission: permission.to_string(),
                        subject: subject.clone()?,
                    })
                },
                |want| Answer::Ids(want.clone()),
            );
        }
        for filter in &scenario.subject_filters {
            let asked = describe(
                AssertionKind::SubjectFilter,
                &filter.entity,
                &filter.subject_reference,
                None,
                &filter.context,
            );
            let entity = EntityRef::parse(&filter.entity).map_err(|e| e.to_string());
            let (subject_type, subject_relation) = match filter.subject_reference.split_once('#') {
                Some((ty, rel)) => (ty.trim(), normalize_subject_relation(rel)),
                None => (filter.subject_reference.trim(), None),
            };
            items.add(
                AssertionKind::SubjectFilter,
                &filter.context,
                &filter.assertions,
                asked,
                |permission| {
                    Ok(Question::LookupSubject {
                        entity: entity.clone()?,
                        permission: permission.to_string(),
                        subject_type: subject_type.to_string(),
                        subject_relation: subject_relation.clone(),
                    })
                },
                |want| Answer::Ids(want.clone()),
            );
        }
    }
    (out, warnings)
}

/// The text of an assertion, given its permission: `check doc:1#view@user:1`, with
/// ` at depth N` when the file gives a depth and ` with tuples [...], attributes [...],
/// data {...}` for a context, so that assertions differing only in those can be told apart.
fn describe(
    kind: AssertionKind,
    left: &str,
    right: &str,
    depth: Option<u32>,
    context: &FileContext,
) -> impl Fn(&str) -> String {
    let mut suffix = String::new();
    if let Some(depth) = depth {
        suffix.push_str(&format!(" at depth {depth}"));
    }
    let list = |items: &[String]| {
        items
            .iter()
            .map(|i| i.trim())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut parts = Vec::new();
    if !context.tuples.is_empty() {
        parts.push(format!("tuples [{}]", list(&context.tuples)));
    }
    if !context.attributes.is_empty() {
        parts.push(format!("attributes [{}]", list(&context.attributes)));
    }
    if !context.data.is_empty() {
        let data = serde_json::Value::Object(context.data.clone());
        parts.push(format!("data {data}"));
    }
    if !parts.is_empty() {
        suffix.push_str(" with ");
        suffix.push_str(&parts.join(", "));
    }
    let (verb, left, right) = (
        kind.verb(),
        left.trim().to_string(),
        right.trim().to_string(),
    );
    move |permission| format!("{verb} {left}#{permission}@{right}{suffix}")
}

/// Collects the assertions of one scenario.
struct Items<'a> {
    scenario: &'a str,
    out: &'a mut Vec<Expectation>,
    warnings: &'a mut Vec<String>,
}

impl Items<'_> {
    /// Adds the assertions of one check or filter.
    fn add<T>(
        &mut self,
        kind: AssertionKind,
        context: &FileContext,
        assertions: &Assertions<T>,
        asked: impl Fn(&str) -> String,
        question: impl Fn(&str) -> Result<Question, String>,
        want: impl Fn(&T) -> Answer,
    ) {
        if assertions.is_empty() {
            self.warnings.push(format!(
                "scenario \"{}\": {} has no assertions",
                self.scenario,
                asked("*")
            ));
            return;
        }
        let context = context.to_context().map(Arc::new);
        for (permission, expected) in assertions.iter() {
            let asked = asked(permission);
            let Some(expected) = expected else {
                self.warnings.push(format!(
                    "scenario \"{}\": {asked}: assertion `{permission}` has no expected value, skipped",
                    self.scenario
                ));
                continue;
            };
            let request = context.clone().and_then(|context| {
                Ok(Request {
                    question: question(permission)?,
                    context,
                })
            });
            self.out.push(Expectation {
                scenario: self.scenario.to_string(),
                kind,
                asked,
                request,
                want: want(expected),
            });
        }
    }
}
