//! The Watch service: every committed tuple and attribute change of one tenant, grouped per
//! write with that write's snap token, in commit order, resumable from a snap token.

use lookout_engine::tokens::SnapToken;
use lookout_proto::v1;
use tokio::sync::broadcast;

use super::stream::{self, ServerStream};
use super::{Service, convert};
use crate::error::{ApiError, ErrorCode};
use crate::tenants::Commit;

/// Why Watch is refused on a server started with `--watch=false` (UNIMPLEMENTED over gRPC, 404
/// over HTTP): one message for both transports.
pub const WATCH_DISABLED: &str =
    "the Watch API is disabled on this server (--watch=false or LOOKOUT_WATCH=false)";

fn message(tenant: &str, commit: &Commit) -> v1::WatchResponse {
    v1::WatchResponse {
        changes: Some(v1::DataChanges {
            snap_token: SnapToken {
                revision: commit.revision,
            }
            .encode(tenant),
            data_changes: commit
                .changes
                .iter()
                .map(|c| convert::change_out(&c))
                .collect(),
        }),
    }
}

impl Service {
    /// Subscribes to a tenant's changes after the request's snap token (or from now on).
    /// Writes that changed nothing are not sent. The stream ends with an error if the
    /// subscriber falls so far behind that changes it has not received are no longer retained.
    pub async fn watch(
        &self,
        req: v1::WatchRequest,
    ) -> Result<ServerStream<v1::WatchResponse>, ApiError> {
        let tenant = self.tenant(&req.tenant_id).await?;
        let after = if req.snap_token.is_empty() {
            tenant.head().revision()
        } else {
            SnapToken::decode(&req.snap_token, &tenant.id)
                .map_err(|e| ApiError::invalid(format!("snap_token: {e}")))?
                .revision
        };
        let (mut replay, mut live) = tenant.subscribe_after(after).await?;
        let (tx, rx) = stream::channel(self.limits.stream_buffer);
        let tenant_id = tenant.id.clone();
        tokio::spawn(async move {
            let mut last = after;
            loop {
                let commits = match tenant.replay_next(&mut replay).await {
                    Ok(commits) if commits.is_empty() => break,
                    Ok(commits) => commits,
                    Err(e) => {
                        tx.fail(e).await;
                        return;
                    }
                };
                let mut batch = Vec::with_capacity(commits.len());
                for commit in commits {
                    if !commit.changes.is_empty() {
                        batch.push(message(&tenant_id, &commit));
                    }
                    last = commit.revision;
                }
                if tx.send_batch(batch).await.is_err() {
                    return;
                }
            }
            // The live feed ends when the tenant is deleted (its last holder goes): do not
            // hold it beyond the replay.
            drop(tenant);
            loop {
                tokio::select! {
                    _ = tx.closed() => return,
                    received = live.recv() => match received {
                        Ok(commit) => {
                            if commit.revision <= last {
                                continue;
                            }
                            last = commit.revision;
                            if commit.changes.is_empty() {
                                continue;
                            }
                            if tx.send(message(&tenant_id, &commit)).await.is_err() {
                                return;
                            }
                        }
                        Err(broadcast::error::RecvError::Lagged(missed)) => {
                            tx.fail(ApiError::new(
                                    ErrorCode::ResourceExhausted,
                                    format!(
                                        "watch fell {missed} commits behind; resume with the last snap token received"
                                    ),
                                ))
                                .await;
                            return;
                        }
                        Err(broadcast::error::RecvError::Closed) => return,
                    },
                }
            }
        });
        Ok(rx)
    }
}
