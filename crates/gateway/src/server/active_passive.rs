//! Active-passive (and every request one backend takes): send, answer, and
//! record what failback and the journal need.

use std::sync::Arc;

use bytes::Bytes;
use cutover_core::config::{Ack, BucketMode};
use http::{Response, StatusCode};

use super::forward::{param, send_failed, succeeded};
use super::{Ctx, Inner};
use crate::body::Body;
use crate::error::GatewayError;
use crate::route::S3Op;
use crate::s3xml;
use crate::state::Op;
use crate::upstream::Upstream;

impl Inner {
    /// One backend takes the request (active-passive, reads, multipart).
    pub(super) async fn single(
        &self,
        ctx: &Ctx,
        up: &Upstream,
        other: Option<Arc<Upstream>>,
        body: Body,
        len: Option<u64>,
    ) -> Response<Body> {
        let req = match self.up_request(ctx, up, body, len) {
            Ok(r) => r,
            Err(resp) => return resp,
        };
        let resp = match up.send(req, self.opts.deadlines).await {
            Ok(r) => r,
            Err(e) => return send_failed(&self.metrics, ctx, up, &e),
        };
        let (resp, small) = self.answer(ctx, up, resp).await;
        if !succeeded(resp.status(), small.as_ref()) {
            return resp;
        }
        if let Err(e) = self.after_write(ctx, up, other, small.as_ref()).await {
            return unrecorded(&e, &ctx.resource);
        }
        resp
    }

    /// Bookkeeping after a successful write on `up`: multipart owners,
    /// failback records, dual-write replication of completed uploads.
    pub(super) async fn after_write(
        &self,
        ctx: &Ctx,
        up: &Upstream,
        other: Option<Arc<Upstream>>,
        small: Option<&Bytes>,
    ) -> Result<(), GatewayError> {
        let key = ctx.key.as_deref().unwrap_or_default();
        match ctx.op {
            S3Op::CreateMultipartUpload => {
                if let Some(id) = small.and_then(|b| upload_id(b)) {
                    self.state.remember_upload(&id, &up.name).await?;
                }
                return Ok(());
            }
            S3Op::AbortMultipartUpload => {
                if let Some(id) = param(&ctx.query, "uploadId") {
                    self.state.forget_upload(&id).await?;
                }
                return Ok(());
            }
            _ => {}
        }
        if let Some((keys, _)) = &ctx.delete {
            // DeleteObjects: "make the primary equal": each key is copied
            // back, or deleted there if it is gone (also right for a key the
            // backend reported an error for). One transaction.
            if up.name != self.primary {
                self.state.record_failback_many(&ctx.bucket.name, keys, Op::Put, &up.name).await?;
            }
            return Ok(());
        }
        if ctx.op.is_subresource_write(&ctx.method) {
            // Tagging, ACL, retention, legal hold: the object is copied again
            // with them (crate::replay::sync_key), on failback and, in
            // dual-write, to the other backend.
            if ctx.bucket.mode == BucketMode::DualWrite
                && let Some(o) = &other
            {
                self.journal(&ctx.bucket.name, key, Op::Put, &up.name, &o.name).await?;
            }
            if up.name != self.primary {
                self.state.record_failback(&ctx.bucket.name, key, Op::Put, &up.name).await?;
            }
            return Ok(());
        }
        let op = match ctx.op {
            S3Op::PutObject | S3Op::CopyObject | S3Op::CompleteMultipartUpload => Op::Put,
            S3Op::DeleteObject => Op::Delete,
            _ => return Ok(()),
        };
        if ctx.op == S3Op::CompleteMultipartUpload {
            if let Some(id) = param(&ctx.query, "uploadId") {
                self.state.forget_upload(&id).await?;
            }
            if ctx.bucket.mode == BucketMode::DualWrite
                && let Some(o) = other
            {
                // The parts went to one backend; the other gets a copy of
                // the completed object through the journal (ack = all: now).
                if ctx.bucket.ack == Ack::All {
                    // Boxed: a copy's future is some 5 KiB, and every write's
                    // future (the fast path's included) would carry its room.
                    let copy = Box::pin(crate::replay::sync_key(self, key, up, &o, self.opts.deadlines));
                    if let Err(e) = copy.await {
                        tracing::warn!(error = %e, "dual-write copy of a completed upload failed; journaled");
                        self.journal(&ctx.bucket.name, key, Op::Put, &up.name, &o.name).await?;
                    }
                } else {
                    self.journal(&ctx.bucket.name, key, Op::Put, &up.name, &o.name).await?;
                }
            }
        }
        if up.name != self.primary {
            self.state.record_failback(&ctx.bucket.name, key, op, &up.name).await?;
        }
        Ok(())
    }
}

/// The answer to a write the backend took but the state file could not
/// record (failback would miss it): a retryable 503.
pub(super) fn unrecorded(e: &GatewayError, resource: &str) -> Response<Body> {
    tracing::error!(error = %e, "recording a write in the state file");
    s3xml::error(
        StatusCode::SERVICE_UNAVAILABLE,
        "ServiceUnavailable",
        "the write was taken but could not be recorded for failback; retry it",
        resource,
    )
}

pub(super) fn upload_id(body: &[u8]) -> Option<String> {
    let t = std::str::from_utf8(body).ok()?;
    let i = t.find("<UploadId>")? + 10;
    let j = t[i..].find("</UploadId>")? + i;
    Some(t[i..j].to_string())
}
