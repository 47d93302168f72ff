//! A test's own directory for files, under the system's temporary directory and named after
//! the test and the process, removed when the test ends (also when it fails).

#![allow(clippy::unwrap_used, reason = "tests fail by panicking")]

use std::fs;
use std::ops::Deref;
use std::path::{Path, PathBuf};

pub struct Scratch(PathBuf);

impl Deref for Scratch {
    type Target = Path;

    fn deref(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// A fresh, empty directory `lookout-NAME-PID`.
pub fn scratch(name: &str) -> Scratch {
    let dir = std::env::temp_dir().join(format!("lookout-{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    Scratch(dir)
}
