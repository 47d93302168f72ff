//! Permify's official Node client (`@permify/permify-node`, tests/node) against the server:
//! schema, data, checks, lookups with paging and resumed streams, subject permission,
//! tenancy and Watch, all over gRPC as a Permify user's code makes them.
//!
//! Needs `node` and `npm` (CI installs them, see .ci/run). Without them the test says so and
//! passes, except under CI (`CI` set), where their absence is a failure.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::process::Command;

use crate::harness::start;

const NPM_INSTALL_TIMEOUT: Duration = Duration::from_secs(300);
const NODE_TEST_TIMEOUT: Duration = Duration::from_secs(120);

fn node_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("node")
}

/// Whether `program --version` runs.
async fn installed(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permify_node_client() {
    let mut missing = Vec::new();
    for program in ["node", "npm"] {
        if !installed(program).await {
            missing.push(program);
        }
    }
    if !missing.is_empty() {
        let missing = missing.join(" and ");
        assert!(
            std::env::var_os("CI").is_none(),
            "permify_node_client needs {missing}, which CI must have (.ci/run installs them)"
        );
        eprintln!(
            "SKIPPED permify_node_client: {missing} not installed (apt-get install nodejs npm)"
        );
        return;
    }

    let dir = node_dir();
    // Installed once; an install that stopped halfway is redone.
    if !dir
        .join("node_modules/@permify/permify-node/package.json")
        .exists()
    {
        let mut npm = Command::new("npm");
        npm.args(["install", "--no-audit", "--no-fund"])
            .current_dir(&dir);
        let (ok, output) = run(npm, "npm install", NPM_INSTALL_TIMEOUT).await;
        assert!(ok, "npm install failed in {}:\n{output}", dir.display());
    }

    let server = start().await;
    let mut node = Command::new("node");
    node.args(["--test", "compat.test.mjs"])
        .current_dir(&dir)
        .env("LOOKOUT_GRPC", server.grpc_addr.to_string());
    let (ok, output) = run(node, "node --test compat.test.mjs", NODE_TEST_TIMEOUT).await;
    assert!(ok, "Permify's Node client test failed:\n{output}");
    assert!(output.contains("# fail 0"), "{output}");
    assert!(!output.contains("# pass 0"), "no node test ran:\n{output}");
    println!("{output}");
    server.shutdown().await.expect("a clean shutdown");
}
