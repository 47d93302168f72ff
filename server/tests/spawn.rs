//! The real `lookout` binary as a child process, for the tests that need one: signals, start-up
//! errors, CPU measured for the server alone, crashes and restarts over PostgreSQL.
//!
//! [`lookout`] starts from a clean slate of `LOOKOUT_*` variables so the environment the tests
//! run in cannot change a server's settings; [`serve`] waits for the `lookout is serving` log
//! line and reads the addresses from it.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail by panicking"
)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

/// The `lookout` binary, without any `LOOKOUT_*` variable of the test's environment.
pub fn lookout() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_lookout"));
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("LOOKOUT_") {
            command.env_remove(key);
        }
    }
    command
}

/// `lookout serve` on 127.0.0.1 with ports the system picks, then `extra`.
pub fn serve_on_loopback(extra: &[&str]) -> Command {
    let mut command = lookout();
    command
        .args([
            "serve",
            "--host",
            "127.0.0.1",
            "--grpc-port",
            "0",
            "--http-port",
            "0",
        ])
        .args(extra);
    command
}

/// A `lookout serve` process and its log lines; killed and reaped on drop.
pub struct Served {
    pub child: Child,
    /// Its stderr, one line per message, read for as long as the `Served` lives.
    pub lines: mpsc::Receiver<String>,
    pub grpc: SocketAddr,
    pub http: SocketAddr,
    /// The `lookout is serving` log line.
    pub serving: Value,
}

impl Drop for Served {
    fn drop(&mut self) {
        // A test that failed must not leave a server running.
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// Starts `lookout serve` on loopback with JSON logs and `extra`, and waits (up to 30 s) until
/// it serves.
pub fn serve(extra: &[&str]) -> Served {
    serve_with_env(extra, &[])
}

/// [`serve`] with the environment variables `env` (such as `LOOKOUT_*` settings) set.
#[allow(
    clippy::zombie_processes,
    reason = "the child is killed and reaped when `Served` drops; only a failed start leaks it"
)]
pub fn serve_with_env(extra: &[&str], env: &[(&str, &str)]) -> Served {
    let mut child = serve_on_loopback(&["--log-format", "json"])
        .args(extra)
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("lookout starts");
    let stderr = child.stderr.take().expect("a piped stderr");
    let (tx, lines) = mpsc::channel();
    // The receiver lives as long as `Served`, so the server never blocks on a full pipe.
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let line = lines
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("the serving log line");
        let Ok(value) = serde_json::from_str::<Value>(&line) else {
            continue;
        };
        if value["message"] == "lookout is serving" {
            let addr = |key: &str| {
                value[key]
                    .as_str()
                    .expect("an address")
                    .parse()
                    .expect("a socket address")
            };
            return Served {
                grpc: addr("grpc"),
                http: addr("http"),
                child,
                lines,
                serving: value,
            };
        }
    }
}
