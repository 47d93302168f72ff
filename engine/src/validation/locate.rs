//! Finding where things parsed out of a validation file were written in it, for error messages.
//!
//! The YAML parser gives values, not positions, so this works on the text: the schema's
//! position is found for a literal block (`schema: |`) or a one-line plain value, and a list
//! item's line by its text. Every answer is checked against the parsed value; anything that does
//! not line up gives `None` rather than a wrong position.

use crate::schema::Span;

/// Where a top-level `key:` is written: its 0-based line index.
fn top_level_key(lines: &[&str], key: &str) -> Option<usize> {
    lines.iter().position(|line| {
        line.strip_prefix(key)
            .is_some_and(|rest| rest.trim_start().starts_with(':'))
    })
}

fn leading_spaces(line: &str) -> usize {
    line.len() - line.trim_start_matches(' ').len()
}

/// Maps a position in the schema text to the same position in the file, 1-based.
pub(crate) fn schema_position(source: &str, schema: &str, span: Span) -> Option<Span> {
    let lines: Vec<&str> = source.lines().collect();
    let key = top_level_key(&lines, "schema")?;
    let after_colon = lines[key].split_once(':')?.1;
    let header = match after_colon.find(" #") {
        Some(comment) => &after_colon[..comment],
        None => after_colon,
    }
    .trim();
    let line_index = usize::try_from(span.line).ok()?.checked_sub(1)?;
    let schema_line = schema.lines().nth(line_index).unwrap_or("");
    if let Some(indicators) = header.strip_prefix('|') {
        // A literal block: schema line n is file line key + n, indented.
        let explicit = indicators.chars().find_map(|c| c.to_digit(10));
        let indent = match explicit {
            Some(n) => usize::try_from(n).ok()?,
            None => leading_spaces(
                lines[key + 1..]
                    .iter()
                    .find(|l| !l.trim().is_empty())
                    .copied()?,
            ),
        };
        let file_line = lines.get(key + 1 + line_index).copied().unwrap_or("");
        let matches = if file_line.trim().is_empty() {
            schema_line.trim().is_empty()
        } else {
            leading_spaces(file_line) >= indent && file_line.get(indent..) == Some(schema_line)
        };
        if !matches {
            return None;
        }
        return Some(Span {
            line: u32::try_from(key + 2 + line_index).ok()?,
            column: span.column + u32::try_from(indent).ok()?,
        });
    }
    // A plain value on the key's line.
    if line_index != 0 || header.is_empty() || header != schema.trim() {
        return None;
    }
    let offset = lines[key].find(header)?;
    Some(Span {
        line: u32::try_from(key + 1).ok()?,
        column: span.column + u32::try_from(offset).ok()?,
    })
}

/// The 1-based line of the list item `text` under the top-level key `section`, if it is written
/// as a block list item (`- text`, optionally quoted).
pub(crate) fn item_line(source: &str, section: &str, text: &str) -> Option<usize> {
    let lines: Vec<&str> = source.lines().collect();
    let key = top_level_key(&lines, section)?;
    let wanted = text.trim();
    for (i, line) in lines.iter().enumerate().skip(key + 1) {
        let starts_top_level = line
            .chars()
            .next()
            .is_some_and(|c| !c.is_whitespace() && c != '-' && c != '#');
        if starts_top_level {
            return None;
        }
        let Some(item) = line.trim_start().strip_prefix('-') else {
            continue;
        };
        let item = item.trim();
        let unquoted = ['"', '\'']
            .iter()
            .find_map(|q| item.strip_prefix(*q).and_then(|s| s.strip_suffix(*q)))
            .unwrap_or(item);
        if unquoted.trim() == wanted {
            return Some(i + 1);
        }
    }
    None
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic, reason = "tests fail by panicking")]
mod tests {
    use super::*;

    fn span(line: u32, column: u32) -> Span {
        Span { line, column }
    }

    #[test]
    fn literal_block_positions_shift_by_key_line_and_indent() {
        let source = "# comment\nschema: |-\n    entity user {}\n\n    entity doc {\n      relation x @nope\n    }\nrelationships:\n";
        let schema = "entity user {}\n\nentity doc {\n  relation x @nope\n}";
        assert_eq!(
            schema_position(source, schema, span(4, 14)),
            Some(span(6, 18))
        );
        assert_eq!(
            schema_position(source, schema, span(1, 1)),
            Some(span(3, 5))
        );
        // A blank line.
        assert_eq!(
            schema_position(source, schema, span(2, 1)),
            Some(span(4, 5))
        );
    }

    #[test]
    fn mismatched_text_gives_no_position() {
        let source = "schema: >\n  entity user {}\n  entity doc {}\n";
        let schema = "entity user {} entity doc {}\n";
        assert_eq!(schema_position(source, schema, span(1, 16)), None);
    }

    #[test]
    fn one_line_plain_schema() {
        let source = "schema: entity user { x }\n";
        assert_eq!(
            schema_position(source, "entity user { x }", span(1, 15)),
            Some(span(1, 23))
        );
    }

    #[test]
    fn items_are_found_by_text() {
        let source = "schema: x\nrelationships:\n  - doc:1#a@user:1\n  - \"doc:1#b@user:1\"\nattributes:\n- doc:1$p|boolean:true\n";
        assert_eq!(
            item_line(source, "relationships", "doc:1#b@user:1"),
            Some(4)
        );
        assert_eq!(item_line(source, "relationships", "doc:9#b@user:1"), None);
        assert_eq!(
            item_line(source, "attributes", "doc:1$p|boolean:true"),
            Some(6)
        );
    }
}
