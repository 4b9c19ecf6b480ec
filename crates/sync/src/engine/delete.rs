//! The delete phase of a mirror: the safety rules, then the deletes (or,
//! in a dry run, what would be deleted).

use tokio::task::JoinSet;

use super::events::SyncEvent;
use super::refusal::DeletePlan;
use super::run::Run;
use crate::SyncError;
use crate::retry::with_retries;

impl Run<'_> {
    /// Applies the safety rules, then deletes (or, dry run, reports).
    pub(super) async fn delete(&mut self, keys: Vec<String>, src_objects: u64, dst_objects: u64) {
        let plan = DeletePlan {
            would_delete: keys.len() as u64,
            failed: self.summary.failed,
            source_objects: src_objects,
            destination_objects: dst_objects,
        };
        if let Some(r) = plan.refusal(self.opts) {
            (self.report)(SyncEvent::Refused(&r));
            self.summary.refusal = Some(r);
            return;
        }
        if self.opts.dry_run {
            for k in &keys {
                (self.report)(SyncEvent::WouldDelete { key: k });
            }
            return;
        }
        let mut tasks = JoinSet::new();
        for rel in keys {
            let permit = self.copier.limiter.acquire().await;
            let (client, key, limiter, retry) = (
                self.dst.client.clone(),
                format!("{}{rel}", self.dst.location.prefix),
                self.copier.limiter.clone(),
                self.opts.retry,
            );
            tasks.spawn(async move {
                let _permit = permit;
                let r = with_retries(retry, &limiter, || async {
                    client
                        .delete_object(&key)
                        .await
                        .map(|_| ())
                        .map_err(|source| SyncError::Delete { key: key.clone(), source: Box::new(source) })
                })
                .await;
                (rel, r)
            });
        }
        while let Some(done) = tasks.join_next().await {
            match done.expect("delete task does not panic") {
                (_, Ok(())) => self.summary.deleted += 1,
                (rel, Err(e)) => {
                    self.summary.failed += 1;
                    (self.report)(SyncEvent::Failed { key: &rel, error: &e });
                }
            }
        }
    }
}
