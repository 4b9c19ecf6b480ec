//! The plumbing of a dual-write: the body teed to both backends, the race
//! between their answers, and the deadline after the upload.

use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use cutover_core::Outcome;
use cutover_s3::http::TransportError;
use http::Response;
use http_body_util::BodyExt;
use tokio::sync::watch;

use super::forward::succeeded;
use crate::body::Body;

/// The active backend's answer to a dual-write (`None`: not waited for,
/// the write was hedged).
pub(super) type ActiveAnswer = Option<Result<Response<Body>, TransportError>>;
/// The other backend's answer to a dual-write, its body read whole.
pub(super) type OtherAnswer = Result<(http::response::Parts, Option<Bytes>), TransportError>;

/// Waits for both backends of a dual-write; with `hedge`, stops waiting for
/// the active one (`None`) once the other has answered successfully and
/// `hedge` has passed.
pub(super) async fn race<A, B>(send_a: A, read_b: B, hedge: Option<Duration>) -> (ActiveAnswer, OtherAnswer)
where
    A: Future<Output = Result<Response<Body>, TransportError>>,
    B: Future<Output = OtherAnswer>,
{
    tokio::pin!(send_a, read_b);
    let (mut ra, mut rb) = (None, None);
    let mut give_up: Option<tokio::time::Instant> = None;
    loop {
        let at = give_up;
        tokio::select! {
            r = &mut send_a, if ra.is_none() => ra = Some(r),
            r = &mut read_b, if rb.is_none() => {
                if let (Some(h), Ok((parts, text))) = (hedge, &r)
                    && succeeded(parts.status, text.as_ref())
                {
                    give_up = Some(tokio::time::Instant::now() + h);
                }
                rb = Some(r);
            }
            _ = async move {
                match at {
                    Some(t) => tokio::time::sleep_until(t).await,
                    None => std::future::pending().await,
                }
            }, if ra.is_none() => return (None, rb.expect("the other answered")),
        }
        if let (Some(_), Some(_)) = (&ra, &rb) {
            return (ra, rb.expect("checked"));
        }
    }
}

/// Waits for `send`, but gives up `limit` after the body has been fully fed.
pub(super) async fn deadline_after<T>(
    send: std::pin::Pin<Box<dyn Future<Output = Result<T, TransportError>> + Send + '_>>,
    mut done: watch::Receiver<bool>,
    limit: Duration,
    name: &str,
) -> Result<T, TransportError> {
    let mut send = send;
    let deadline = async {
        let _ = done.wait_for(|d| *d).await;
        tokio::time::sleep(limit).await;
    };
    tokio::select! {
        r = &mut send => r,
        _ = deadline => Err(TransportError { outcome: Outcome::Timeout, detail: format!("{name}: no answer within {limit:?} after the upload") }),
    }
}

/// Feeds each chunk of `body` to both channels. The other side (`tx_b`) is
/// dropped if it stalls for `stall` or goes away. The active side is waited
/// for (its upstream request has its own deadlines), except with `hedge`:
/// then it is dropped when it stalls that long, so the other side still
/// gets the whole body (and the write is acknowledged from it).
pub(super) async fn tee(
    mut body: Body,
    tx_a: tokio::sync::mpsc::Sender<Result<Bytes, crate::body::BoxError>>,
    tx_b: tokio::sync::mpsc::Sender<Result<Bytes, crate::body::BoxError>>,
    stall: Duration,
    hedge: Option<Duration>,
) {
    let (mut tx_a, mut tx_b) = (Some(tx_a), Some(tx_b));
    while tx_a.is_some() || tx_b.is_some() {
        match body.frame().await {
            None => return,
            Some(Err(e)) => {
                let msg = e.to_string();
                for tx in [&tx_a, &tx_b].into_iter().flatten() {
                    let _ = tx.try_send(Err(msg.clone().into()));
                }
                return;
            }
            Some(Ok(frame)) => {
                let Ok(data) = frame.into_data() else { continue };
                if let Some(b) = &tx_b {
                    match tokio::time::timeout(stall, b.send(Ok(data.clone()))).await {
                        Ok(Ok(())) => {}
                        _ => {
                            tracing::warn!(
                                "dual-write: the other backend stalled or failed; continuing with the active one"
                            );
                            tx_b = None;
                        }
                    }
                }
                if let Some(a) = &tx_a {
                    let sent = match hedge {
                        None => a.send(Ok(data)).await.is_ok(),
                        Some(h) => matches!(tokio::time::timeout(h, a.send(Ok(data))).await, Ok(Ok(()))),
                    };
                    if !sent {
                        if tx_b.is_some() && hedge.is_some() {
                            tracing::warn!("dual-write: the active backend stalled; continuing with the other one");
                        }
                        tx_a = None;
                        if hedge.is_none() {
                            return;
                        }
                    }
                }
            }
        }
    }
}
