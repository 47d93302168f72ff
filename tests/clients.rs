//! Permify's official clients against the server, as a Permify user's code calls it:
//! - the Node client (`@permify/permify-node`, tests/node) over gRPC: schema, data, checks,
//!   lookups with paging and resumed streams, subject permission, tenancy and Watch; and over
//!   TLS, trusting a test CA (`newClient({ cert, insecure: false })`);
//! - the Python client (`permify` on PyPI, tests/python) over HTTP/JSON: the same calls plus
//!   bulk check, expand, reads, bundles, deletes and error statuses, every answer parsed into
//!   the client's strict models.
//!
//! They need `node` and `npm`, and `python3` with `venv` (CI installs them, see .ci/run).
//! Without them a test says so and passes, except under CI (`CI` set), where their absence is
//! a failure.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::process::Command;

use crate::certs::TestCa;
use crate::harness::{config, start, start_with};

const INSTALL_TIMEOUT: Duration = Duration::from_secs(300);
const CLIENT_TEST_TIMEOUT: Duration = Duration::from_secs(120);

/// A directory of tests/.
fn client_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(name)
}

/// Whether the test can run: `missing` names what is not installed. Outside CI a test without
/// its tools is skipped with a note; under CI it fails.
fn runnable(test: &str, missing: &[&str], install: &str) -> bool {
    if missing.is_empty() {
        return true;
    }
    let missing = missing.join(" and ");
    assert!(
        std::env::var_os("CI").is_none(),
        "{test} needs {missing}, which CI must have (.ci/run installs them)"
    );
    eprintln!("SKIPPED {test}: {missing} not installed ({install})");
    false
}

/// Whether `program args...` runs and succeeds.
async fn installed(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await
        .is_ok_and(|status| status.success())
}

/// Runs a command to completion within `limit`; its exit success and combined output.
async fn run(mut command: Command, what: &str, limit: Duration) -> (bool, String) {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let child = command
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
    let output = tokio::time::timeout(limit, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("{what} did not finish within {limit:?}"))
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    let text = format!(
        "--- stdout ---\n{}\n--- stderr ---\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

/// tests/node with Permify's Node client installed; None (the test skipped) without node and
/// npm.
async fn node_client(test: &str) -> Option<PathBuf> {
    let mut missing = Vec::new();
    for program in ["node", "npm"] {
        if !installed(program, &["--version"]).await {
            missing.push(program);
        }
    }
    if !runnable(test, &missing, "apt-get install nodejs npm") {
        return None;
    }
    let dir = client_dir("node");
    // Installed once; an install that stopped halfway is redone.
    if !dir
        .join("node_modules/@permify/permify-node/package.json")
        .exists()
    {
        let mut npm = Command::new("npm");
        npm.args(["install", "--no-audit", "--no-fund"])
            .current_dir(&dir);
        let (ok, output) = run(npm, "npm install", INSTALL_TIMEOUT).await;
        assert!(ok, "npm install failed in {}:\n{output}", dir.display());
    }
    Some(dir)
}

/// Runs `node --test file` in `dir` with `env`; fails unless every node test passed.
async fn node_test(dir: &Path, file: &str, env: &[(&str, String)]) {
    let mut node = Command::new("node");
    node.args(["--test", file]).current_dir(dir);
    for (name, value) in env {
        node.env(name, value);
    }
    let what = format!("node --test {file}");
    let (ok, output) = run(node, &what, CLIENT_TEST_TIMEOUT).await;
    assert!(ok, "Permify's Node client test {file} failed:\n{output}");
    assert!(output.contains("# fail 0"), "{output}");
    assert!(!output.contains("# pass 0"), "no node test ran:\n{output}");
    println!("{output}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permify_node_client() {
    let Some(dir) = node_client("permify_node_client").await else {
        return;
    };
    let server = start().await;
    node_test(
        &dir,
        "compat.test.mjs",
        &[("LOOKOUT_GRPC", server.grpc_addr.to_string())],
    )
    .await;
    server.shutdown().await.expect("a clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permify_node_client_over_tls() {
    let Some(dir) = node_client("permify_node_client_over_tls").await else {
        return;
    };
    let certs = crate::certs::temp_dir("node");
    let ca = TestCa::new();
    let leaf = ca.issue();
    let ca_file = certs.join("ca.pem");
    let paths = lookout_server::tls::CertPaths {
        cert: certs.join("cert.pem"),
        key: certs.join("key.pem"),
    };
    std::fs::write(&ca_file, ca.pem()).unwrap();
    std::fs::write(&paths.cert, &leaf.cert_pem).unwrap();
    std::fs::write(&paths.key, &leaf.key_pem).unwrap();
    let mut config = config();
    config.tls.grpc = Some(paths);
    let server = start_with(config).await;
    node_test(
        &dir,
        "tls.test.mjs",
        &[
            ("LOOKOUT_GRPC_TLS", server.grpc_addr.to_string()),
            ("LOOKOUT_GRPC_CA", ca_file.display().to_string()),
        ],
    )
    .await;
    server.shutdown().await.expect("a clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permify_python_client() {
    // Debian's python3 has `venv` but not `ensurepip` (which creating one needs) without the
    // python3-venv package.
    let python_ready = installed("python3", &["-c", "import ensurepip, venv"]).await;
    let missing: &[&str] = if python_ready {
        &[]
    } else {
        &["python3 with venv"]
    };
    if !runnable(
        "permify_python_client",
        missing,
        "apt-get install python3 python3-venv",
    ) {
        return;
    }

    let dir = client_dir("python");
    let venv = dir.join(".venv");
    let python = venv.join("bin/python");
    // Created and installed once; a venv whose install stopped halfway is installed again.
    if !installed(&python.to_string_lossy(), &["-c", "import permify"]).await {
        let mut create = Command::new("python3");
        create.args(["-m", "venv"]).arg(&venv);
        let (ok, output) = run(create, "python3 -m venv", INSTALL_TIMEOUT).await;
        assert!(ok, "cannot create {}:\n{output}", venv.display());
        let mut pip = Command::new(&python);
        pip.args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "-r",
            "requirements.txt",
        ])
        .current_dir(&dir);
        let (ok, output) = run(pip, "pip install", INSTALL_TIMEOUT).await;
        assert!(ok, "pip install failed in {}:\n{output}", dir.display());
    }

    let server = start().await;
    let mut test = Command::new(&python);
    test.args(["-m", "unittest", "-v", "compat_test"])
        .current_dir(&dir)
        .env("LOOKOUT_HTTP", format!("http://{}", server.http_addr));
    let (ok, output) = run(test, "python -m unittest compat_test", CLIENT_TEST_TIMEOUT).await;
    assert!(ok, "Permify's Python client test failed:\n{output}");
    assert!(output.contains("\nOK"), "{output}");
    assert!(
        !output.contains("Ran 0 tests"),
        "no python test ran:\n{output}"
    );
    println!("{output}");
    server.shutdown().await.expect("a clean shutdown");
}
