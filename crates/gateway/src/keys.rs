//! Which object keys a client may address, and the per-key lock that the
//! live write path and journal replay share.
//!
//! - A key with a `.` or `..` path segment (`a/../b`, `./x`, `..`, `x/.`;
//!   percent-encoded too, since keys are checked decoded) is refused with 400
//!   `InvalidArgument`: a path-normalising proxy or load balancer between
//!   the gateway and a backend would turn `/bucket/a/../b` into `/bucket/b`
//!   and `/bucket/x/..` into a bucket-level operation on `/bucket/`.
//! - A key under the probe prefix (`probe.prefix`, default `.cutover-probe/`)
//!   is refused with 403 `AccessDenied`: those objects are cutover's own
//!   health probes and smoke tests, which a client must neither read, forge
//!   nor delete.

use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher, RandomState};
use std::sync::{Arc, Mutex};

use http::StatusCode;
use tokio::sync::{OwnedRwLockReadGuard, OwnedRwLockWriteGuard, RwLock};

use crate::body::S3Refusal;

/// The key rules of one gateway.
#[derive(Debug, Clone)]
pub struct KeyPolicy {
    probe_prefix: String,
}

impl KeyPolicy {
    pub fn new(probe_prefix: impl Into<String>) -> Self {
        Self { probe_prefix: probe_prefix.into() }
    }

    /// Is `key` reserved for cutover's probes?
    pub fn is_probe(&self, key: &str) -> bool {
        !self.probe_prefix.is_empty() && key.starts_with(&self.probe_prefix)
    }

    /// Why a client may not address `key` (decoded), if it may not.
    pub fn check(&self, key: &str) -> Result<(), S3Refusal> {
        if has_dot_segment(key) {
            return Err(S3Refusal::bad_request(
                "InvalidArgument",
                "the object key has a \".\" or \"..\" path segment, which this gateway refuses \
                 (a path-normalising proxy would turn it into another key or a bucket-level operation)",
            ));
        }
        if self.is_probe(key) {
            return Err(S3Refusal::new(
                StatusCode::FORBIDDEN,
                "AccessDenied",
                format!("keys under {:?} are reserved for cutover's probes", self.probe_prefix),
            ));
        }
        Ok(())
    }
}

/// `.` or `..` between slashes (or at either end).
pub fn has_dot_segment(key: &str) -> bool {
    key.split('/').any(|s| s == "." || s == "..")
}

/// A (client bucket, key) pair as the locks know it: its hash under a key
/// of the process's own ([`RandomState`]), so that locking a key copies no
/// string. Two pairs with one hash would share a lock: they would only wait
/// for each other, never overlap wrongly (and with 64 bits, never in practice).
type KeyId = u64;

/// In-process locks per (client bucket, key): a live write of a key and the
/// journal replay or resync of the same key never overlap, so a replay that
/// read the old object cannot write it over the new one afterwards. Live
/// writes share a key's lock (they do not wait for each other, as without
/// the gateway); replay and resync hold it alone.
#[derive(Debug, Default)]
pub struct KeyLocks {
    ids: RandomState,
    held: Mutex<Held>,
}

/// The locks of the keys held or waited for, and spare ones to reuse.
#[derive(Debug, Default)]
struct Held {
    locks: HashMap<KeyId, Arc<RwLock<()>>, BuildHasherDefault<IdHasher>>,
    /// Locks of keys no longer held, kept for the next (at most
    /// [`SPARE_LOCKS`]): a write of a key nobody else holds allocates nothing.
    spare: Vec<Arc<RwLock<()>>>,
}

/// How many unused locks are kept for reuse.
const SPARE_LOCKS: usize = 64;

/// The hasher of a map whose keys are hashes already.
#[derive(Debug, Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// A shared (live write) or exclusive (replay) hold of one key.
#[derive(Debug)]
enum Hold {
    Shared(#[allow(dead_code)] OwnedRwLockReadGuard<()>),
    Alone(#[allow(dead_code)] OwnedRwLockWriteGuard<()>),
}

/// Holds the locks of some keys; released on drop.
#[derive(Debug)]
pub struct KeyGuard<'a> {
    locks: &'a KeyLocks,
    /// The first key's hold (none for no keys), then the others'.
    first: Option<(KeyId, Hold)>,
    rest: Vec<(KeyId, Hold)>,
}

impl KeyLocks {
    /// Locks every key of `keys` in `bucket` (in one order and deduplicated,
    /// so that two requests locking several keys cannot deadlock).
    pub async fn lock<'a>(&'a self, bucket: &str, keys: impl IntoIterator<Item = &str>) -> KeyGuard<'a> {
        self.take(bucket, keys, true).await
    }

    /// Like [`KeyLocks::lock`], shared with other live writes.
    pub async fn lock_shared<'a>(&'a self, bucket: &str, keys: impl IntoIterator<Item = &str>) -> KeyGuard<'a> {
        self.take(bucket, keys, false).await
    }

    async fn take<'a>(&'a self, bucket: &str, keys: impl IntoIterator<Item = &str>, alone: bool) -> KeyGuard<'a> {
        let mut ids = keys.into_iter().map(|k| self.ids.hash_one((bucket, k)));
        let mut guard = KeyGuard { locks: self, first: None, rest: Vec::new() };
        let Some(first) = ids.next() else { return guard };
        // One key (a PUT's or DELETE's) needs no list.
        let mut rest: Vec<KeyId> = ids.collect();
        if !rest.is_empty() {
            rest.push(first);
            rest.sort_unstable();
            rest.dedup();
            guard.rest.reserve(rest.len());
            for id in rest {
                let hold = self.hold(id, alone).await;
                guard.rest.push((id, hold));
            }
            return guard;
        }
        guard.first = Some((first, self.hold(first, alone).await));
        guard
    }

    async fn hold(&self, id: KeyId, alone: bool) -> Hold {
        let m = {
            let mut held = self.held.lock().expect("key locks");
            let Held { locks, spare } = &mut *held;
            locks.entry(id).or_insert_with(|| spare.pop().unwrap_or_default()).clone()
        };
        if alone { Hold::Alone(m.write_owned().await) } else { Hold::Shared(m.read_owned().await) }
    }
}

impl Drop for KeyGuard<'_> {
    fn drop(&mut self) {
        let mut held = self.locks.held.lock().expect("key locks");
        for (id, guard) in self.first.take().into_iter().chain(self.rest.drain(..)) {
            drop(guard);
            // Nobody else holds or waits for it: forget it (and keep the
            // lock for another key).
            if held.locks.get(&id).is_some_and(|m| Arc::strong_count(m) == 1)
                && let Some(m) = held.locks.remove(&id)
                && held.spare.len() < SPARE_LOCKS
            {
                held.spare.push(m);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn refuses_dot_segments_and_the_probe_prefix_only() {
        let p = KeyPolicy::new(".cutover-probe/");
        for bad in ["..", ".", "a/../b", "./x", "x/.", "x/..", "a/./b", "../x"] {
            assert_eq!(p.check(bad).unwrap_err().code, "InvalidArgument", "{bad}");
        }
        for ok in ["a..b", ".x", "x.", "...", "a/.../b", ".cutover-probe", "a/.cutover-probe/x", "", "a//b"] {
            assert!(p.check(ok).is_ok(), "{ok}");
        }
        let r = p.check(".cutover-probe/probe-1").unwrap_err();
        assert_eq!((r.status, r.code), (StatusCode::FORBIDDEN, "AccessDenied"));
    }

    #[tokio::test(start_paused = true)]
    async fn a_key_is_held_by_one_holder_at_a_time_and_forgotten_after() {
        let locks = Arc::new(KeyLocks::default());
        let g = locks.lock("app", ["k", "a", "k"]).await;
        let l2 = locks.clone();
        let waiter = tokio::spawn(async move {
            let _g = l2.lock("app", ["k"]).await;
        });
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(!waiter.is_finished(), "a second holder got the lock");
        // Another key and another bucket are independent.
        drop(locks.lock("app", ["b"]).await);
        drop(locks.lock("other", ["k"]).await);
        drop(g);
        waiter.await.unwrap();
        assert!(locks.held.lock().unwrap().locks.is_empty());
    }

    #[tokio::test]
    async fn a_key_nobody_holds_reuses_the_lock_another_key_left() {
        let locks = KeyLocks::default();
        let lock_of = |locks: &KeyLocks| {
            let held = locks.held.lock().unwrap();
            assert_eq!(held.locks.len(), 1);
            Arc::as_ptr(held.locks.values().next().unwrap())
        };
        let g = locks.lock_shared("app", ["a"]).await;
        let first = lock_of(&locks);
        drop(g);
        assert!(locks.held.lock().unwrap().locks.is_empty());
        assert_eq!(locks.held.lock().unwrap().spare.len(), 1, "the lock of a key nobody holds is kept as a spare");
        let g = locks.lock_shared("app", ["b"]).await;
        assert_eq!(lock_of(&locks), first, "a new key allocated a lock although a spare was there");
        assert!(locks.held.lock().unwrap().spare.is_empty());
        // Still a lock: a replay of "b" waits for the live write.
        let l = &locks;
        let replay = async move { drop(l.lock("app", ["b"]).await) };
        tokio::pin!(replay);
        assert!(poll_once(replay.as_mut()).await.is_pending(), "a replay overlapped a live write");
        drop(g);
        replay.await;
        assert!(locks.held.lock().unwrap().locks.is_empty());
    }

    /// Polls a future once.
    async fn poll_once<F: std::future::Future + Unpin>(f: F) -> std::task::Poll<F::Output> {
        let mut f = f;
        std::future::poll_fn(|cx| std::task::Poll::Ready(std::pin::Pin::new(&mut f).poll(cx))).await
    }

    #[tokio::test(start_paused = true)]
    async fn several_keys_are_held_together_and_a_single_key_waits_for_them() {
        let locks = Arc::new(KeyLocks::default());
        let g = locks.lock("app", ["x", "y"]).await;
        let l2 = locks.clone();
        let waiter = tokio::spawn(async move {
            let _g = l2.lock_shared("app", ["y"]).await;
        });
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(!waiter.is_finished(), "a live write of a key a replay holds went ahead");
        drop(g);
        waiter.await.unwrap();
        assert!(locks.held.lock().unwrap().locks.is_empty());
    }
}
