//! The write journal as seen from live requests: append, and which side
//! holds the newest version of a key.

use super::Inner;
use crate::error::GatewayError;
use crate::state::Op;

impl Inner {
    /// The backend that holds the newest version of a key with a pending
    /// journal entry.
    pub(super) fn newest_of(&self, bucket: &str, key: &str) -> Option<String> {
        let m = self.newest.lock().expect("newest");
        if m.is_empty() {
            // The common case: nothing pending, no key to build.
            return None;
        }
        m.get(&(bucket.to_string(), key.to_string())).map(|(s, _)| s.clone())
    }

    /// A journal entry was replayed (or superseded): its key is equal on
    /// both sides again unless a newer entry took its place.
    pub(crate) fn replayed(&self, bucket: &str, key: &str, id: i64) {
        let mut m = self.newest.lock().expect("newest");
        let k = (bucket.to_string(), key.to_string());
        if m.get(&k).is_some_and(|(_, i)| *i == id) {
            m.remove(&k);
        }
    }

    pub(crate) async fn journal(
        &self,
        bucket: &str,
        key: &str,
        op: Op,
        source: &str,
        target: &str,
    ) -> Result<(), GatewayError> {
        self.journal_many(bucket, &[key.to_string()], op, source, target).await
    }

    /// [`Inner::journal`] for several keys, in one transaction.
    pub(crate) async fn journal_many(
        &self,
        bucket: &str,
        keys: &[String],
        op: Op,
        source: &str,
        target: &str,
    ) -> Result<(), GatewayError> {
        if keys.is_empty() {
            return Ok(());
        }
        let ids = self.state.append_many(bucket, keys, op, source, target).await?;
        {
            let mut m = self.newest.lock().expect("newest");
            for (k, id) in keys.iter().zip(ids) {
                m.insert((bucket.to_string(), k.clone()), (source.to_string(), id));
            }
        }
        self.metrics.journal_appended.inc_by(keys.len() as u64);
        self.wake.notify_one();
        Ok(())
    }
}
