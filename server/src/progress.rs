//! The progress line of `lookout import` and `lookout export` in the direct (`--database-uri`)
//! mode, on stderr: redrawn in place on a terminal, or one line a second otherwise (with
//! `--progress`, for logs).

use std::io::{self, IsTerminal, Write};
use std::time::{Duration, Instant};

/// A progress line; does nothing unless enabled.
#[derive(Debug)]
pub struct Progress {
    enabled: bool,
    terminal: bool,
    command: &'static str,
    started: Instant,
    drawn: Option<Instant>,
    /// Whether a line is on screen that the next draw or [`Progress::finish`] replaces.
    open: bool,
}

impl Progress {
    /// A progress line for `command`: shown if `forced`, or if stderr is a terminal and not
    /// `quiet`.
    pub fn new(command: &'static str, forced: bool, quiet: bool) -> Progress {
        let terminal = io::stderr().is_terminal();
        Progress {
            enabled: forced || (terminal && !quiet),
            terminal,
            command,
            started: Instant::now(),
            drawn: None,
            open: false,
        }
    }

    /// Time since the start.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Reports `items` of `what` done, and `done` of `total` bytes if known; drawn at most
    /// every 200 ms on a terminal, every second otherwise.
    pub fn items(&mut self, what: &str, items: u64, bytes: Option<(u64, u64)>) {
        if !self.due() {
            return;
        }
        let seconds = self.started.elapsed().as_secs_f64().max(1e-3);
        let rate = items as f64 / seconds;
        let percent = match bytes {
            Some((done, total)) if total > 0 => {
                format!("{:>3}%, ", (done.saturating_mul(100) / total).min(100))
            }
            _ => String::new(),
        };
        self.draw(&format!("{percent}{items} {what}, {rate:.0} {what}/s"));
    }

    /// Reports a step without a count (`writing tuples`).
    pub fn step(&mut self, text: &str) {
        if self.enabled {
            self.drawn = None;
            let text = format!("{text} ({:.1} s)", self.started.elapsed().as_secs_f64());
            self.draw(&text);
        }
    }

    /// Clears the line on a terminal.
    pub fn finish(&mut self) {
        if self.enabled && self.terminal && self.open {
            let mut err = io::stderr().lock();
            let _ = write!(err, "\r\x1b[2K");
            let _ = err.flush();
            self.open = false;
        }
    }

    fn due(&mut self) -> bool {
        if !self.enabled {
            return false;
        }
        let every = if self.terminal {
            Duration::from_millis(200)
        } else {
            Duration::from_secs(1)
        };
        !matches!(self.drawn, Some(at) if at.elapsed() < every)
    }

    fn draw(&mut self, text: &str) {
        self.drawn = Some(Instant::now());
        let mut err = io::stderr().lock();
        // Progress is best effort: a stderr that cannot be written is not worth failing for.
        let _ = if self.terminal {
            write!(err, "\r\x1b[2K{}: {text}", self.command)
        } else {
            writeln!(err, "{}: {text}", self.command)
        };
        let _ = err.flush();
        self.open = self.terminal;
    }
}
