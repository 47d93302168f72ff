//! Data bundles (Permify's `DataBundle`): named sets of write and delete templates such as
//! `organization:{{.organizationID}}#admin@user:{{.creatorID}}`, checked when stored and
//! rendered with a run's arguments into one [`WriteBatch`].
//!
//! Templates use the one action of Go's template syntax that bundles need: `{{.name}}` (spaces
//! inside the braces allowed) is replaced by the argument `name`. Any other action is an error,
//! and so is an argument a run does not supply.

use std::collections::HashMap;

use lookout_engine::index::WriteBatch;
use lookout_engine::model::{self, Attribute, EntityRef, Tuple};
use lookout_proto::v1;

use crate::error::ApiError;

/// Values tried for every placeholder when a template is checked at write time: a template
/// is accepted if one of them makes it parse (an ID, a number, a boolean).
const PROBES: [&str; 3] = ["x", "1", "true"];

/// Replaces every `{{.name}}` of `template` with `value(name)`.
fn render<'v>(
    template: &str,
    mut value: impl FnMut(&str) -> Result<&'v str, String>,
) -> Result<String, String> {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(open) = rest.find("{{") {
        out.push_str(&rest[..open]);
        let after = &rest[open + 2..];
        let close = after
            .find("}}")
            .ok_or_else(|| "unclosed `{{`: expected `{{.name}}`".to_string())?;
        out.push_str(value(placeholder_name(&after[..close])?)?);
        rest = &after[close + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

/// `template` with every placeholder replaced by its argument in `arguments`.
fn render_with(template: &str, arguments: &HashMap<String, String>) -> Result<String, String> {
    render(template, |name| {
        arguments
            .get(name)
            .map(String::as_str)
            .ok_or_else(|| format!("argument `{name}` is missing"))
    })
}

/// The argument named by the inside of `{{ ... }}`.
fn placeholder_name(action: &str) -> Result<&str, String> {
    let shown: String = action.chars().take(64).collect();
    let unsupported =
        || format!("unsupported template action `{{{{{shown}}}}}`: expected `{{{{.name}}}}`");
    let name = action.trim().strip_prefix('.').ok_or_else(unsupported)?;
    let mut chars = name.chars();
    let valid = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if valid { Ok(name) } else { Err(unsupported()) }
}

/// Every argument name a template refers to.
fn placeholders(template: &str) -> Result<Vec<String>, String> {
    let mut names = Vec::new();
    render(template, |name| {
        names.push(name.to_string());
        Ok("")
    })?;
    Ok(names)
}

/// `type:id$name`, the text form of an attribute delete.
fn parse_attribute_ref(text: &str) -> Result<(EntityRef, String), String> {
    let (entity, name) = text
        .trim()
        .split_once('$')
        .ok_or_else(|| format!("invalid attribute `{text}`: expected `entity$name`"))?;
    let entity = EntityRef::parse(entity).map_err(|e| e.to_string())?;
    model::check_name("attribute", name).map_err(|e| e.to_string())?;
    Ok((entity, name.to_string()))
}

/// The four template lists of an operation, with their field names and text parsers.
#[derive(Clone, Copy)]
enum List {
    RelationshipsWrite,
    RelationshipsDelete,
    AttributesWrite,
    AttributesDelete,
}

impl List {
    const ALL: [List; 4] = [
        List::RelationshipsWrite,
        List::RelationshipsDelete,
        List::AttributesWrite,
        List::AttributesDelete,
    ];

    fn field(self) -> &'static str {
        match self {
            List::RelationshipsWrite => "relationships_write",
            List::RelationshipsDelete => "relationships_delete",
            List::AttributesWrite => "attributes_write",
            List::AttributesDelete => "attributes_delete",
        }
    }

    fn of(self, op: &v1::Operation) -> &[String] {
        match self {
            List::RelationshipsWrite => &op.relationships_write,
            List::RelationshipsDelete => &op.relationships_delete,
            List::AttributesWrite => &op.attributes_write,
            List::AttributesDelete => &op.attributes_delete,
        }
    }

    /// Parses rendered text and adds it to `batch`.
    fn add(self, text: &str, batch: &mut WriteBatch) -> Result<(), String> {
        match self {
            List::RelationshipsWrite => {
                batch
                    .tuple_writes
                    .push(Tuple::parse(text).map_err(|e| e.to_string())?);
            }
            List::RelationshipsDelete => {
                batch
                    .tuple_deletes
                    .push(Tuple::parse(text).map_err(|e| e.to_string())?);
            }
            List::AttributesWrite => {
                batch
                    .attribute_writes
                    .push(Attribute::parse(text).map_err(|e| e.to_string())?);
            }
            List::AttributesDelete => batch.attribute_deletes.push(parse_attribute_ref(text)?),
        }
        Ok(())
    }
}

/// Checks a bundle before it is stored: a name, and templates that refer only to declared
/// arguments (when the bundle declares any) and parse for some argument values.
pub fn check(bundle: &v1::DataBundle, field: &str) -> Result<(), ApiError> {
    if bundle.name.trim().is_empty() {
        return Err(ApiError::invalid(format!("{field}.name is required")));
    }
    for (i, op) in bundle.operations.iter().enumerate() {
        for list in List::ALL {
            for (j, template) in list.of(op).iter().enumerate() {
                let at = format!("{field}.operations[{i}].{}[{j}]", list.field());
                let invalid = |e: String| ApiError::invalid(format!("{at}: {e}"));
                let names = placeholders(template).map_err(invalid)?;
                if !bundle.arguments.is_empty()
                    && let Some(name) = names.iter().find(|n| !bundle.arguments.contains(n))
                {
                    return Err(invalid(format!(
                        "argument `{name}` is not declared in the bundle's arguments"
                    )));
                }
                let mut first_error = None;
                let parses = PROBES.iter().any(|probe| {
                    let result = render(template, |_| Ok(probe))
                        .and_then(|text| list.add(&text, &mut WriteBatch::default()));
                    match result {
                        Ok(()) => true,
                        Err(e) => {
                            first_error.get_or_insert(e);
                            false
                        }
                    }
                });
                if !parses {
                    return Err(invalid(first_error.unwrap_or_default()));
                }
            }
        }
    }
    Ok(())
}

/// The number of templates in a bundle: the size of the batch a run builds.
pub fn size(bundle: &v1::DataBundle) -> usize {
    bundle
        .operations
        .iter()
        .map(|op| List::ALL.iter().map(|l| l.of(op).len()).sum::<usize>())
        .sum()
}

/// The field name of every item of a rendered batch, per batch list, to name the template
/// the store rejects.
#[derive(Debug, Default)]
pub struct Labels {
    tuple_writes: Vec<String>,
    tuple_deletes: Vec<String>,
    attribute_writes: Vec<String>,
    attribute_deletes: Vec<String>,
}

impl Labels {
    /// The field name of item `index` of the store's list `what` (see `WriteError`).
    pub fn get(&self, what: &str, index: usize) -> Option<String> {
        let list = match what {
            "tuple" => &self.tuple_writes,
            "tuple delete" => &self.tuple_deletes,
            "attribute" => &self.attribute_writes,
            "attribute delete" => &self.attribute_deletes,
            _ => return None,
        };
        list.get(index).cloned()
    }

    fn list(&mut self, list: List) -> &mut Vec<String> {
        match list {
            List::RelationshipsWrite => &mut self.tuple_writes,
            List::RelationshipsDelete => &mut self.tuple_deletes,
            List::AttributesWrite => &mut self.attribute_writes,
            List::AttributesDelete => &mut self.attribute_deletes,
        }
    }
}

/// Renders every template of `bundle` with `arguments` into one batch.
pub fn render_all(
    bundle: &v1::DataBundle,
    arguments: &HashMap<String, String>,
) -> Result<(WriteBatch, Labels), ApiError> {
    let mut batch = WriteBatch::default();
    let mut labels = Labels::default();
    for (i, op) in bundle.operations.iter().enumerate() {
        for list in List::ALL {
            for (j, template) in list.of(op).iter().enumerate() {
                let at = format!(
                    "bundle `{}` operations[{i}].{}[{j}]",
                    bundle.name,
                    list.field()
                );
                render_with(template, arguments)
                    .and_then(|text| list.add(&text, &mut batch))
                    .map_err(|e| ApiError::invalid(format!("{at}: {e}")))?;
                labels.list(list).push(at);
            }
        }
    }
    Ok((batch, labels))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn renders_placeholders() {
        let args = HashMap::from([("org".to_string(), "7".to_string())]);
        let render = |t: &str| render_with(t, &args);
        assert_eq!(
            render("organization:{{.org}}#admin@user:{{ .org }}").unwrap(),
            "organization:7#admin@user:7"
        );
        assert_eq!(render("no placeholders").unwrap(), "no placeholders");
        let missing = render("x:{{.missing}}").unwrap_err();
        assert!(missing.contains("`missing` is missing"), "{missing}");
        assert!(render("x:{{.org").unwrap_err().contains("unclosed"));
        assert!(render("x:{{org}}").unwrap_err().contains("unsupported"));
        assert!(render("x:{{.a b}}").unwrap_err().contains("unsupported"));
        assert_eq!(placeholders("a:{{.x}}#r@b:{{ .y }}").unwrap(), ["x", "y"]);
    }

    #[test]
    fn checks_templates_when_stored() {
        let bundle = |op: v1::Operation, arguments: &[&str]| v1::DataBundle {
            name: "b".to_string(),
            arguments: arguments.iter().map(|s| s.to_string()).collect(),
            operations: vec![op],
        };
        let ok = v1::Operation {
            relationships_write: vec!["doc:{{.id}}#owner@user:{{.user}}".to_string()],
            attributes_write: vec!["doc:{{.id}}$level|integer:{{.level}}".to_string()],
            attributes_delete: vec!["doc:{{.id}}$public".to_string()],
            ..Default::default()
        };
        check(&bundle(ok.clone(), &["id", "user", "level"]), "bundles[0]").unwrap();
        check(&bundle(ok.clone(), &[]), "bundles[0]").unwrap();
        let e = check(&bundle(ok, &["id", "user"]), "bundles[0]").unwrap_err();
        assert!(
            e.message
                .starts_with("bundles[0].operations[0].attributes_write[0]: argument `level`"),
            "{e}"
        );
        let bad = v1::Operation {
            relationships_delete: vec!["doc:{{.id}}@user:1".to_string()],
            ..Default::default()
        };
        let e = check(&bundle(bad, &[]), "bundles[0]").unwrap_err();
        assert!(
            e.message
                .starts_with("bundles[0].operations[0].relationships_delete[0]: invalid tuple"),
            "{e}"
        );
    }
}
