//! `lookout validate FILE...`: reads each validation file, runs it with the engine and prints
//! the outcome.
//!
//! Results go to stdout: every failing assertion (every assertion with `--verbose`), a summary
//! line per file and a total. Problems go to stderr: files that cannot be read or run (with
//! line and column where the engine gives them) and warnings. The exit status is 1 if anything
//! failed or could not be run.

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
        let report = match validation::run(&source) {
            Ok(report) => report,
            Err(e) => {
                writeln!(err, "{name}: error: {e}")?;
                totals.invalid += 1;
                continue;
            }
        };
        for warning in &report.warnings {
            writeln!(err, "{name}: warning: {warning}")?;
        }
        for outcome in &report.outcomes {
            if !outcome.passed {
                writeln!(out, "{name}: {outcome}")?;
            } else if verbose {
                writeln!(out, "{name}: {}", passed(outcome))?;
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
                "{name}: scenario \"s\": check doc:1#viewer@user:2: want true, got false\n\
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
                "{name}: scenario \"s\": check doc:1#viewer@user:1: ok, got true\n"
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
}
