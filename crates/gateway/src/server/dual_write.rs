//! Dual-write: the same write to both backends in parallel, acknowledged
//! by the active one, or by the other one after `hedge_after` (hedged).

use std::time::Duration;

use bytes::Bytes;
use cutover_core::Outcome;
use cutover_core::config::Ack;
use cutover_s3::http::TransportError;
use http::{Response, StatusCode};
use tokio::sync::watch;

use super::forward::{send_failed, set_backend, succeeded};
use super::tee::{ActiveAnswer, OtherAnswer, deadline_after, race, tee};
use super::{Ctx, Inner, SMALL_BODY_LIMIT};
use crate::body::{Body, channel, collect_limited, full};
use crate::route::S3Op;
use crate::s3xml;
use crate::state::Op;
use crate::upstream::Upstream;

impl Inner {
    /// Dual-write: the same write to both backends in parallel; the body is
    /// teed through two bounded channels (never buffered whole).
    pub(super) async fn dual_write(
        &self,
        ctx: &Ctx,
        active: &Upstream,
        other: &Upstream,
        body: Body,
        len: Option<u64>,
    ) -> Response<Body> {
        let all = ctx.bucket.ack == Ack::All;
        let other_limit = if all { self.opts.write_timeout } else { self.opts.other_timeout };
        // With ack = active-journal, the other backend's answer is enough
        // when the active one cannot give its own in time.
        let hedge = if all { None } else { self.opts.hedge_after };
        let (ra, rb) = match self.send_both(ctx, active, other, body, len, other_limit, hedge).await {
            Ok(answers) => answers,
            Err(answer) => return answer,
        };
        let b_ok = match &rb {
            Ok((parts, text)) => {
                // A 200 with an error document (a failed copy) is a failure too.
                let ok = succeeded(parts.status, text.as_ref());
                if !ok {
                    tracing::warn!(backend = %other.name, status = parts.status.as_u16(), code = ?text.as_deref().and_then(s3xml::error_code), "dual-write: the other backend refused the write");
                }
                ok
            }
            Err(e) => {
                tracing::warn!(backend = %other.name, outcome = %e.outcome, detail = %e.detail, "dual-write: the other backend did not take the write");
                false
            }
        };
        let keys: Vec<String> = match &ctx.delete {
            Some((keys, _)) => keys.clone(),
            None => ctx.key.iter().cloned().collect(),
        };
        let op = if matches!(ctx.op, S3Op::DeleteObject | S3Op::DeleteObjects) { Op::Delete } else { Op::Put };
        let ra = match ra {
            Some(Ok(r)) => {
                let (r, small_a) = self.answer(ctx, active, r).await;
                Ok((r, small_a))
            }
            Some(Err(e)) => Err(e),
            None => Err(TransportError {
                outcome: Outcome::Timeout,
                detail: format!(
                    "{}: no answer within {:?} of the other backend's",
                    active.name,
                    hedge.unwrap_or_default()
                ),
            }),
        };
        // The active backend could not take the write (no answer in time, a
        // transport error, a 5xx) but the other did: with ack =
        // active-journal the write is acknowledged from the other backend
        // and journaled for the active one, so no client write fails while
        // the active backend is down, even before the failover.
        let active_unavailable = match &ra {
            Err(_) => true,
            Ok((r, _)) => r.status().is_server_error(),
        };
        if hedge.is_some()
            && b_ok
            && active_unavailable
            && let Ok((parts, text)) = rb
        {
            return self.hedged(ctx, active, other, &keys, op, parts, text).await;
        }
        let (ra, small_a) = match ra {
            Ok((r, s)) => (Ok(r), s),
            Err(e) => (Err(e), None),
        };
        self.settle(ctx, active, other, ra, small_a, b_ok, &keys, op).await
    }

    /// Sends the write to both backends, the body teed between them, and
    /// waits for their answers ([`race`]). The error is the answer for the
    /// client (the request could not be built).
    #[allow(clippy::too_many_arguments)]
    async fn send_both(
        &self,
        ctx: &Ctx,
        active: &Upstream,
        other: &Upstream,
        body: Body,
        len: Option<u64>,
        other_limit: Duration,
        hedge: Option<Duration>,
    ) -> Result<(ActiveAnswer, OtherAnswer), Response<Body>> {
        // DeleteObjects bodies are small and name the keys to journal.
        let (body, small_req) = if ctx.op == S3Op::DeleteObjects {
            match collect_limited(body, SMALL_BODY_LIMIT).await {
                Ok(b) => (full(b.clone()), Some(b)),
                Err(_) => {
                    if let Some(r) = ctx.body_fault.as_ref().and_then(|f| f.get()) {
                        return Err(s3xml::error(r.status, r.code, &r.message, &ctx.resource));
                    }
                    return Err(s3xml::error(
                        StatusCode::BAD_REQUEST,
                        "IncompleteBody",
                        "could not read the request body",
                        &ctx.resource,
                    ));
                }
            }
        } else {
            (body, None)
        };
        let (body_a, body_b, pump) = if len.unwrap_or(0) == 0 || small_req.is_some() {
            let b = small_req.clone().unwrap_or_default();
            (full(b.clone()), full(b), None)
        } else {
            let (tx_a, body_a) = channel(self.opts.tee_chunks, len);
            let (tx_b, body_b) = channel(self.opts.tee_chunks, len);
            (body_a, body_b, Some(tee(body, tx_a, tx_b, other_limit, hedge)))
        };
        let (req_a, req_b) = match (self.up_request(ctx, active, body_a, len), self.up_request(ctx, other, body_b, len))
        {
            (Ok(a), Ok(b)) => (a, b),
            (Err(r), _) | (_, Err(r)) => return Err(r),
        };
        let (done_tx, done_rx) = watch::channel(pump.is_none());
        let pump = async move {
            if let Some(p) = pump {
                p.await;
            }
            let _ = done_tx.send(true);
        };
        let d = self.opts.deadlines;
        let send_a =
            deadline_after(Box::pin(active.send(req_a, d)), done_rx.clone(), self.opts.write_timeout, &active.name);
        let send_b = deadline_after(Box::pin(other.send(req_b, d)), done_rx, other_limit, &other.name);
        // The other backend's answer is small (a PUT's headers, a copy's or
        // a DeleteObjects' XML): read it whole.
        let read_b = async move {
            let (parts, b) = send_b.await?.into_parts();
            let text = collect_limited(b, SMALL_BODY_LIMIT).await.ok();
            Ok::<_, TransportError>((parts, text))
        };
        let ((), answers) = tokio::join!(pump, race(send_a, read_b, hedge));
        Ok(answers)
    }

    /// The answer of a dual-write that was not hedged: the active
    /// backend's, once both took it; otherwise the side that missed it is
    /// journaled to converge to the active's state, and with `ack = all`
    /// (or when the journal cannot be written) the client is told to retry.
    #[allow(clippy::too_many_arguments)]
    async fn settle(
        &self,
        ctx: &Ctx,
        active: &Upstream,
        other: &Upstream,
        ra: Result<Response<Body>, TransportError>,
        small_a: Option<Bytes>,
        b_ok: bool,
        keys: &[String],
        op: Op,
    ) -> Response<Body> {
        let all = ctx.bucket.ack == Ack::All;
        let a_ok = matches!(&ra, Ok(r) if succeeded(r.status(), small_a.as_ref()));
        if a_ok && b_ok {
            return ra.expect("ok");
        }
        // One side missed the write: make it converge to the active's state
        // (journal), whatever the client is told.
        let mut journaled = true;
        if a_ok || b_ok {
            // A failed active write that the other side took: converge the
            // other side back to the active's state. All keys in one transaction.
            let op = if a_ok { op } else { Op::Put };
            if let Err(e) = self.journal_many(&ctx.bucket.name, keys, op, &active.name, &other.name).await {
                tracing::error!(error = %e, "writing the journal");
                journaled = false;
            }
        }
        match ra {
            Ok(r) if a_ok && !all && journaled => r,
            Ok(_) if a_ok => {
                let why = if journaled { "ack = all" } else { "the journal could not be written" };
                let mut r = s3xml::error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "ServiceUnavailable",
                    &format!("dual-write: backend {} did not take the write ({why}); retry", other.name),
                    &ctx.resource,
                );
                set_backend(&mut r, &active.name);
                r
            }
            Ok(r) => r,
            Err(e) => send_failed(&self.metrics, ctx, active, &e),
        }
    }

    /// Acknowledges a dual-write from the other backend's answer: every key
    /// is journaled from the other backend to the active one first (and,
    /// when the other is not the primary, recorded for failback); if that
    /// cannot be written the client is told to retry.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn hedged(
        &self,
        ctx: &Ctx,
        active: &Upstream,
        other: &Upstream,
        keys: &[String],
        op: Op,
        parts: http::response::Parts,
        text: Option<Bytes>,
    ) -> Response<Body> {
        {
            let mut r = self.journal_many(&ctx.bucket.name, keys, op, &other.name, &active.name).await;
            if r.is_ok() && other.name != self.primary {
                r = self.state.record_failback_many(&ctx.bucket.name, keys, op, &other.name).await;
            }
            if let Err(e) = r {
                tracing::error!(error = %e, "writing the journal for a hedged write");
                let mut r = s3xml::error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "ServiceUnavailable",
                    &format!(
                        "dual-write: backend {} did not take the write and the journal could not be written; retry",
                        active.name
                    ),
                    &ctx.resource,
                );
                set_backend(&mut r, &active.name);
                return r;
            }
        }
        self.metrics.hedged.inc();
        tracing::info!(backend = %active.name, acknowledged_by = %other.name, keys = keys.len(), "dual-write: acknowledged from the other backend and journaled for the active one");
        self.answer(ctx, other, Response::from_parts(parts, full(text.unwrap_or_default()))).await.0
    }
}
