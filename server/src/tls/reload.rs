//! Reloading the certificates while the server runs: every store on SIGHUP, and a store whose
//! files changed at the next check (every [`POLL_INTERVAL`]).

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::CertStore;

/// How often the certificate and key files are checked for changes.
pub const POLL_INTERVAL: Duration = Duration::from_secs(5);

/// Starts the reloader; it stops when `shutdown` is cancelled. SIGHUP is taken over before this
/// returns, so a SIGHUP sent once the server is serving reloads instead of ending the process.
pub(super) fn spawn(stores: Vec<Arc<CertStore>>, shutdown: CancellationToken) {
    let mut hangups = Hangups::listen();
    tokio::spawn(async move {
        let mut poll = tokio::time::interval(POLL_INTERVAL);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // The first tick is at once; the files were just read.
        poll.tick().await;
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = hangups.next() => {
                    for store in &stores {
                        reload(store, "SIGHUP");
                    }
                }
                _ = poll.tick() => {
                    for store in stores.iter().filter(|s| s.changed()) {
                        reload(store, "the files changed");
                    }
                }
            }
        }
    });
}

/// Reloads `store` and logs the outcome.
fn reload(store: &CertStore, why: &'static str) {
    let port = store.port().name();
    let cert = store.paths().cert.display();
    match store.reload() {
        Ok(()) => tracing::info!(port, %cert, reason = why, "reloaded the TLS certificate"),
        Err(e) => tracing::error!(
            port,
            reason = why,
            error = %e,
            "cannot reload the TLS certificate; the one in use stays"
        ),
    }
}

/// SIGHUP, where there is one.
struct Hangups {
    #[cfg(unix)]
    signal: Option<tokio::signal::unix::Signal>,
}

impl Hangups {
    fn listen() -> Hangups {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let signal = signal(SignalKind::hangup())
                .map_err(|e| tracing::warn!(error = %e, "cannot listen for SIGHUP"))
                .ok();
            Hangups { signal }
        }
        #[cfg(not(unix))]
        Hangups {}
    }

    /// The next SIGHUP; never, without them.
    async fn next(&mut self) {
        #[cfg(unix)]
        if let Some(signal) = &mut self.signal
            && signal.recv().await.is_some()
        {
            return;
        }
        std::future::pending::<()>().await;
    }
}
