//! Read-through: GET/HEAD on the active backend, the other one when it
//! cannot answer.

use std::sync::Arc;

use http::{Response, StatusCode};

use super::forward::unavailable;
use super::{Ctx, Inner};
use crate::body::{Body, empty};
use crate::upstream::Upstream;

impl Inner {
    /// GET/HEAD on the active backend; on a transport error, timeout, 5xx or
    /// (with `on_missing`) 404, the same on the other backend.
    pub(super) async fn read_through(
        &self,
        ctx: &Ctx,
        active: &Upstream,
        other: Option<Arc<Upstream>>,
        on_missing: bool,
    ) -> Response<Body> {
        let first = self.up_request(ctx, active, empty(), None);
        let first = match first {
            Ok(r) => active.send(r, self.opts.deadlines).await,
            Err(resp) => return resp,
        };
        let retry = match &first {
            Err(_) => true,
            Ok(r) => r.status().is_server_error() || (on_missing && r.status() == StatusCode::NOT_FOUND),
        };
        let other = if retry { other } else { None };
        let Some(other) = other else {
            return match first {
                Ok(r) => self.answer(ctx, active, r).await.0,
                Err(e) => unavailable(&self.metrics, active, &e, &ctx.resource),
            };
        };
        // Keep the active's answer (read whole: it is an error document) in
        // case the other backend does no better.
        let first = match first {
            Ok(r) => Ok(self.answer(ctx, active, r).await.0),
            Err(e) => Err(e),
        };
        let second = match self.up_request(ctx, &other, empty(), None) {
            Ok(r) => other.send(r, self.opts.deadlines).await,
            Err(resp) => return resp,
        };
        match second {
            Ok(r)
                if r.status().is_success()
                    || r.status().is_redirection()
                    || r.status() == StatusCode::PRECONDITION_FAILED
                    || r.status() == StatusCode::RANGE_NOT_SATISFIABLE =>
            {
                self.metrics.fallbacks.inc();
                self.answer(ctx, &other, r).await.0
            }
            _ => match first {
                Ok(r) => r,
                Err(e) => unavailable(&self.metrics, active, &e, &ctx.resource),
            },
        }
    }
}
