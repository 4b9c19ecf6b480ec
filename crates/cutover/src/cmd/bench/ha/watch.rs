//! The bench's view of etcd: the keys under a prefix read once, then every
//! change to them as it arrives, timed on arrival by a task on the lab's
//! runtime.

use std::sync::mpsc;
use std::time::Instant;

use cutover_etcd::{Event, RangeResponse};

use super::lab::HaLab;
use crate::cmd::bench::error::{BenchError, etcd};

/// A change under the prefix and when the bench received it.
pub type Seen = (Instant, Event);

/// Reads every key starting with `prefix`, then watches them from the
/// revision after that read.
pub fn follow(lab: &HaLab, prefix: &str) -> Result<(RangeResponse, mpsc::Receiver<Seen>), BenchError> {
    let end = cutover_etcd::prefix_end(prefix.as_bytes());
    let now = lab.rt.block_on(lab.client.get_prefix(prefix.as_bytes())).map_err(etcd("reading a prefix"))?;
    let mut stream = lab
        .rt
        .block_on(lab.client.watch(prefix.as_bytes(), &end, now.header.revision + 1))
        .map_err(etcd("watching a prefix"))?;
    let (tx, rx) = mpsc::channel();
    lab.rt.spawn(async move {
        while let Ok(Some(msg)) = stream.next().await {
            let at = Instant::now();
            for e in msg.events {
                if tx.send((at, e)).is_err() {
                    return; // the bench stopped following
                }
            }
        }
    });
    Ok((now, rx))
}

/// The key's last path segment.
pub fn leaf(key: &[u8]) -> String {
    String::from_utf8_lossy(key).rsplit('/').next().unwrap_or("").to_string()
}
