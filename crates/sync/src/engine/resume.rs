//! Picking up after an interrupted run: its open multipart uploads are
//! aborted, and (with `resume`) its checkpoint says where to continue.

use super::events::SyncEvent;
use super::options::Mode;
use super::run::Run;
use super::watermark::Watermark;
use crate::SyncError;

impl Run<'_> {
    /// Aborts the multipart uploads an interrupted run of this job left open.
    pub(super) async fn abort_leftovers(&mut self) -> Result<(), SyncError> {
        let Some(store) = self.store else { return Ok(()) };
        for up in store.open_uploads(&self.job)? {
            match self.dst.client.abort_multipart(&up.key, &up.upload_id).await {
                Ok(()) => {}
                // Already completed or aborted.
                Err(e) if e.status() == Some(404) => {}
                Err(e) => {
                    tracing::warn!(key = %up.key, error = %e, "could not abort a leftover multipart upload");
                    continue;
                }
            }
            store.forget_upload(&self.job, &up.upload_id)?;
            self.summary.aborted_uploads += 1;
            (self.report)(SyncEvent::AbortedUpload { key: &up.key });
        }
        Ok(())
    }

    /// With `resume`: the key after which to continue, and the counters so far.
    pub(super) fn resume_point(&mut self) -> Result<Option<String>, SyncError> {
        let Some(store) = self.store.filter(|_| self.opts.resume) else { return Ok(None) };
        let Some(cp) = store.load(&self.job)?.filter(|c| !c.complete) else { return Ok(None) };
        self.summary.copied = cp.copied;
        self.summary.skipped = cp.skipped;
        self.summary.bytes = cp.bytes;
        let Some(after) = cp.last_key else { return Ok(None) };
        (self.report)(SyncEvent::Resumed { after: &after });
        self.summary.resumed_after = Some(after.clone());
        self.mark = Watermark::after(after.clone());
        // A mirror lists everything again: deletes need the whole picture;
        // what was copied already compares equal and is skipped.
        Ok((self.opts.mode != Mode::Mirror).then_some(after))
    }
}
