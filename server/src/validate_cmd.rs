//! `lookout validate FILE...`: reads each validation file, runs it with the engine and prints
//! the outcome.
//!
//! Results go to stdout: every failing assertion (every assertion with `--verbose`), each as
//! `FILE:LINE: ...` with the line of its `permission: value` entry when it can be told, a
//! summary line per file and a total. Problems go to stderr: files that cannot be read or run
//! (with line and column where the engine gives them) and warnings. The exit status is 1 if
//! anything failed or could not be run.
//!
//! Stricter than the engine (and Permify) so that a mistake cannot pass silently: a key the
//! format does not know makes the file invalid (a misspelt `assertion:` would otherwise assert
//! nothing), and so does a file with no assertion at all. As in Permify, `schema:` may name a
//! schema file instead of holding the schema: a one-line value that names an existing file,
//! relative to the validation file's directory, is read from there.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;
use lookout_engine::validation::{self, Outcome};

/// The arguments of `lookout validate`.
#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Validation files (YAML: schema, relationships, attributes, scenarios).
    #[arg(value_name = "FILE", required = true)]
    pub files: Vec<PathBuf>,

    /// Also list the assertions that pass.
    #[arg(short, long)]
    pub verbose: bool,
}

/// Runs the command, printing to the process's stdout and stderr.
pub fn run(args: &ValidateArgs) -> ExitCode {
    let mut out = io::stdout().lock();
    let mut err = io::stderr().lock();
    match validate(&args.files, args.verbose, &mut out, &mut err) {
        Ok(totals) if totals.success() => ExitCode::SUCCESS,
        // Failures, or stdout went away (a closed pipe): nothing more to say.
        Ok(_) | Err(_) => ExitCode::FAILURE,
    }
}

/// What a run of several files came to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    pub passed: usize,
    pub failed: usize,
    /// Files that could not be read or run.
    pub invalid: usize,
}

impl Totals {
    pub fn success(&self) -> bool {
        self.failed == 0 && self.invalid == 0
    }
}

/// Validates `files` in order, writing results to `out` and problems to `err`.
pub fn validate<P: AsRef<Path>>(
    files: &[P],
    verbose: bool,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> io::Result<Totals> {
    let mut totals = Totals::default();
    for path in files {
        let path = path.as_ref();
        let name = path.display();
        let source = match fs::read_to_string(path) {
            Ok(source) => source,
            Err(e) => {
                writeln!(
                    err,
                    "{name}: error: cannot read the file: {}",
                    io_reason(&e)
                )?;
                totals.invalid += 1;
                continue;
            }
        };
        let report = match run_file(path, &source) {
            Ok(report) => report,
            Err(problems) => {
                for problem in problems {
                    writeln!(err, "{name}: error: {problem}")?;
                }
                totals.invalid += 1;
                continue;
            }
        };
        for warning in &report.warnings {
            writeln!(err, "{name}: warning: {warning}")?;
        }
        let lines = assertion_lines(&source, &report.outcomes);
        for (i, outcome) in report.outcomes.iter().enumerate() {
            let at = match lines.as_ref().and_then(|l| l.get(i)) {
                Some(line) => format!("{name}:{line}"),
                None => name.to_string(),
            };
            if !outcome.passed {
                writeln!(out, "{at}: {outcome}")?;
            } else if verbose {
                writeln!(out, "{at}: {}", passed(outcome))?;
            }
        }
        let (passed, failed) = (report.passed(), report.failed());
        writeln!(out, "{name}: {passed} passed, {failed} failed")?;
        totals.passed += passed;
        totals.failed += failed;
    }
    let invalid = match totals.invalid {
        0 => String::new(),
        1 => ", 1 file invalid".to_string(),
        n => format!(", {n} files invalid"),
    };
    writeln!(
        out,
        "total: {} passed, {} failed{invalid}",
        totals.passed, totals.failed
    )?;
    Ok(totals)
}

/// Parses and runs one file: its report, or every reason it cannot be run.
fn run_file(path: &Path, source: &str) -> Result<validation::Report, Vec<String>> {
    let mut parsed = validation::parse(source).map_err(|e| vec![e.to_string()])?;
    if !parsed.unknown_keys.is_empty() {
        return Err(parsed
            .unknown_keys
            .iter()
            .map(|(key, at)| {
                format!("unknown key `{key}` in `{at}` (see the format in the README, \"Validating schemas and data\")")
            })
            .collect());
    }
    if let Some(schema_file) = schema_file(path, &parsed.file.schema) {
        parsed.file.schema = fs::read_to_string(&schema_file).map_err(|e| {
            vec![format!(
                "cannot read the schema file {}: {}",
                schema_file.display(),
                io_reason(&e)
            )]
        })?;
        // The engine's warning about a missing schema does not apply any more.
        parsed.warnings.retain(|w| !w.contains("no `schema`"));
    }
    let report = validation::run_parsed(source, parsed).map_err(|e| vec![e.to_string()])?;
    if report.outcomes.is_empty() {
        return Err(vec![
            "the file asserts nothing: no scenario has a check, entity filter or subject filter with an assertion".to_owned(),
        ]);
    }
    Ok(report)
}

/// The file a `schema:` value names: a one-line value naming an existing file, relative to the
/// validation file's directory.
fn schema_file(path: &Path, schema: &str) -> Option<std::path::PathBuf> {
    let value = schema.trim();
    if value.is_empty() || value.contains('\n') || value.contains('{') {
        return None;
    }
    let candidate = path.parent().unwrap_or(Path::new(".")).join(value);
    candidate.is_file().then_some(candidate)
}

/// The 1-based line of each outcome's `permission: value` entry, in the order of `outcomes`;
/// `None` unless every outcome is matched to an entry of the same permission (an assertion
/// block written in flow style, say, is not located).
fn assertion_lines(source: &str, outcomes: &[validation::Outcome]) -> Option<Vec<usize>> {
    let entries = assertion_entries(source)?;
    if entries.len() != outcomes.len() {
        return None;
    }
    entries
        .iter()
        .zip(outcomes)
        .map(|((key, line), outcome)| {
            let permission = outcome
                .asked
                .split_once('#')
                .and_then(|(_, rest)| rest.split_once('@'))
                .map(|(permission, _)| permission)?;
            (permission == key).then_some(*line)
        })
        .collect()
}

/// Every entry with a value of every `assertions:` block, in file order: (key, 1-based line).
fn assertion_entries(source: &str) -> Option<Vec<(String, usize)>> {
    let lines: Vec<&str> = source.lines().collect();
    let content = |line: &str| -> Option<(usize, String)> {
        let text = match line.find(" #") {
            Some(comment) => &line[..comment],
            None => line,
        };
        let trimmed = text.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            return None;
        }
        Some((text.len() - trimmed.len(), trimmed.trim_end().to_owned()))
    };
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let Some((mut indent, mut text)) = content(lines[i]) else {
            i += 1;
            continue;
        };
        if let Some(rest) = text.strip_prefix("- ") {
            indent += 2 + (rest.len() - rest.trim_start().len());
            text = rest.trim_start().to_owned();
        }
        let Some(after) = text.strip_prefix("assertions:") else {
            i += 1;
            continue;
        };
        if !after.trim().is_empty() {
            // A flow mapping or a null: not located.
            if after.trim() == "~" || after.trim() == "null" || after.trim() == "{}" {
                i += 1;
                continue;
            }
            return None;
        }
        let mut child: Option<usize> = None;
        let mut j = i + 1;
        while j < lines.len() {
            let Some((entry_indent, entry)) = content(lines[j]) else {
                j += 1;
                continue;
            };
            if entry_indent <= indent {
                break;
            }
            let child_indent = *child.get_or_insert(entry_indent);
            if entry_indent == child_indent && !entry.starts_with("- ") {
                let (key, value) = entry.split_once(':')?;
                let key = key.trim().trim_matches(|c| c == '"' || c == '\'');
                let value = value.trim();
                let has_value = if value.is_empty() {
                    // A block value follows: more indented, or a list at the key's indent.
                    lines[j + 1..]
                        .iter()
                        .find_map(|l| content(l))
                        .is_some_and(|(n, t)| {
                            n > child_indent || (n == child_indent && t.starts_with("- "))
                        })
                } else {
                    value != "~" && value != "null"
                };
                if has_value {
                    out.push((key.to_owned(), j + 1));
                }
            }
            j += 1;
        }
        i = j;
    }
    Some(out)
}

/// `scenario "NAME": check document:1#view@user:1: ok, got true`.
fn passed(outcome: &Outcome) -> String {
    format!(
        "scenario \"{}\": {}: ok, got {}",
        outcome.scenario, outcome.asked, outcome.got
    )
}

/// A lowercase reason for a failed read.
fn io_reason(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::NotFound => "no such file".to_string(),
        io::ErrorKind::PermissionDenied => "permission denied".to_string(),
        io::ErrorKind::IsADirectory => "is a directory".to_string(),
        io::ErrorKind::InvalidData => "not valid utf-8".to_string(),
        _ => {
            let text = e.to_string();
            let mut chars = text.chars();
            match chars.next() {
                Some(first) => first.to_lowercase().chain(chars).collect(),
                None => text,
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic, reason = "tests fail by panicking")]
mod tests {
    use super::*;

    fn run_on(files: &[&Path], verbose: bool) -> (Totals, String, String) {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let totals = validate(files, verbose, &mut out, &mut err).unwrap();
        (
            totals,
            String::from_utf8(out).unwrap(),
            String::from_utf8(err).unwrap(),
        )
    }

    fn write_tmp(name: &str, text: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("lookout-validate-cmd-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        fs::write(&path, text).unwrap();
        path
    }

    const FILE: &str = "schema: |-\n    entity user {}\n    entity doc {\n        relation viewer @user\n    }\nrelationships:\n  - doc:1#viewer@user:1\nscenarios:\n  - name: s\n    checks:\n      - entity: doc:1\n        subject: user:1\n        assertions:\n          viewer: true\n          checks:\n      - entity: doc:1\n        subject: user:2\n        assertions:\n          viewer: true\n";

    #[test]
    fn failures_warnings_and_summaries() {
        let path = write_tmp("mixed.yaml", FILE);
        let (totals, out, err) = run_on(&[&path], false);
        let name = path.display();
        assert_eq!(
            totals,
            Totals {
                passed: 1,
                failed: 1,
                invalid: 0
            }
        );
        assert_eq!(
            out,
            format!(
                "{name}:19: scenario \"s\": check doc:1#viewer@user:2: want true, got false\n\
                 {name}: 1 passed, 1 failed\n\
                 total: 1 passed, 1 failed\n"
            )
        );
        assert!(
            err.starts_with(&format!("{name}: warning: scenario \"s\"")),
            "{err}"
        );

        let (_, out, _) = run_on(&[&path], true);
        assert!(
            out.starts_with(&format!(
                "{name}:14: scenario \"s\": check doc:1#viewer@user:1: ok, got true\n"
            )),
            "{out}"
        );
    }

    #[test]
    fn unreadable_and_invalid_files() {
        let bad = write_tmp("bad.yaml", "schema: entity doc { relation x @nope }\n");
        let missing = Path::new("/nonexistent/lookout.yaml");
        let (totals, out, err) = run_on(&[missing, bad.as_path()], false);
        assert_eq!(totals.invalid, 2);
        assert!(!totals.success());
        assert_eq!(out, "total: 0 passed, 0 failed, 2 files invalid\n");
        assert_eq!(
            err,
            format!(
                "/nonexistent/lookout.yaml: error: cannot read the file: no such file\n\
                 {}: error: invalid schema at 1:34 (schema 1:26): undefined entity `nope`\n",
                bad.display()
            )
        );
    }

    #[test]
    fn unknown_keys_and_files_that_assert_nothing_are_invalid() {
        let typo = FILE.replace(
            "        assertions:\n          viewer: true\n          checks:",
            "        assertion:\n          viewer: true",
        );
        let typo = write_tmp("typo.yaml", &typo);
        let (totals, _, err) = run_on(&[&typo], false);
        assert_eq!(totals.invalid, 1);
        assert!(
            err.contains("error: unknown key `assertion` in `scenarios[0].checks[0]`"),
            "{err}"
        );

        let empty = write_tmp(
            "nothing.yaml",
            "schema: entity user {}\nscenarios:\n  - name: s\n    checks:\n      - entity: user:1\n        subject: user:1\n",
        );
        let (totals, _, err) = run_on(&[&empty], false);
        assert_eq!(totals.invalid, 1);
        assert!(err.contains("error: the file asserts nothing"), "{err}");
    }

    #[test]
    fn a_schema_may_be_a_file_next_to_the_validation_file() {
        write_tmp(
            "doc.perm",
            "entity user {}\nentity doc {\n    relation viewer @user\n}\n",
        );
        let file = FILE.replace(
            "schema: |-\n    entity user {}\n    entity doc {\n        relation viewer @user\n    }\n",
            "schema: doc.perm\n",
        );
        let path = write_tmp("by-path.yaml", &file);
        let (totals, out, err) = run_on(&[&path], false);
        assert_eq!(totals.passed, 1, "{out}{err}");
        assert_eq!(totals.failed, 1, "{out}{err}");
        assert!(!err.contains("no `schema`"), "{err}");
        // Lines shift by the 4 schema lines removed.
        assert!(out.contains(":15: scenario \"s\""), "{out}");

        let missing = write_tmp("missing-schema.yaml", "schema: nope.perm\n");
        let (totals, _, err) = run_on(&[&missing], false);
        assert_eq!(totals.invalid, 1, "{err}");
    }

    #[test]
    fn filter_assertions_are_located_in_block_and_flow_lists() {
        let source = "scenarios:\n  - name: s\n    entity_filters:\n      - entity_type: doc\n        subject: user:1\n        assertions:\n          view:\n          - \"1\"\n          edit: [\"2\"]  # a comment\n          skipped: ~\n    checks:\n      - entity: doc:1\n        subject: user:1\n        assertions:\n          \"view\": false\n";
        assert_eq!(
            assertion_entries(source).unwrap(),
            [
                ("view".to_owned(), 7),
                ("edit".to_owned(), 9),
                ("view".to_owned(), 15)
            ]
        );
    }
}
