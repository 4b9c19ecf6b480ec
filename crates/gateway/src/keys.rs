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
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering::SeqCst;
use std::sync::{Arc, Mutex};

use http::StatusCode;
use tokio::sync::{Notify, OwnedRwLockReadGuard, OwnedRwLockWriteGuard, RwLock};

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

/// How many stripes the key ids are spread over for the lock-free live
/// writes (see [`KeyLocks`]).
const STRIPES: usize = 64;

/// In-process locks per (client bucket, key): a live write of a key and the
/// journal replay or resync of the same key never overlap, so a replay that
/// read the old object cannot write it over the new one afterwards. Live
/// writes share a key's lock (they do not wait for each other, as without
/// the gateway); replay and resync hold it alone.
///
/// A brief live write of one key (the fast path's: its body whole in
/// memory, its exchange bounded by the backend deadlines) takes no lock,
/// and no process-wide mutex, while no replay holds or waits for a key of
/// its stripe (the key id modulo [`STRIPES`]): it is only counted, two
/// atomic operations. A replay first marks the stripe (new writes of it
/// then take their key's lock), waits until the counted writes of the
/// stripe have ended, then takes its key's lock alone. Each side writes its
/// own counter before it reads the other's (sequentially consistent), so
/// either the write sees the mark or the replay sees the count: they never
/// overlap. A counted write holds nothing else and waits for nothing, so a
/// replay waiting for its stripe cannot deadlock with it. Streamed writes
/// and writes of several keys (a `DeleteObjects`) take their keys' locks
/// and are never counted: a replay never waits for a write of another key
/// longer than a brief one takes.
#[derive(Debug)]
pub struct KeyLocks {
    ids: RandomState,
    held: Mutex<Held>,
    /// Per stripe: live writes under way without a lock.
    counted: [AtomicUsize; STRIPES],
    /// Per stripe: replays holding or waiting for a key of it.
    marked: [AtomicUsize; STRIPES],
    /// Told when a stripe's last counted write ends while it is marked.
    drained: Notify,
}

impl Default for KeyLocks {
    fn default() -> Self {
        Self {
            ids: RandomState::new(),
            held: Mutex::default(),
            counted: std::array::from_fn(|_| AtomicUsize::new(0)),
            marked: std::array::from_fn(|_| AtomicUsize::new(0)),
            drained: Notify::new(),
        }
    }
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

/// How a key is held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Want {
    /// A replay's or resync's: alone.
    Alone,
    /// A live write's: shared with the other live writes.
    Shared,
    /// A brief live write of one key ([`KeyLocks::lock_brief`]): shared,
    /// and only counted while no replay marks its stripe.
    Brief,
}

/// A live write counted in its stripe (no lock); uncounted on drop.
#[derive(Debug)]
struct Counted<'a> {
    locks: &'a KeyLocks,
    stripe: usize,
}

impl Drop for Counted<'_> {
    fn drop(&mut self) {
        let l = self.locks;
        if l.counted[self.stripe].fetch_sub(1, SeqCst) == 1 && l.marked[self.stripe].load(SeqCst) > 0 {
            l.drained.notify_waiters();
        }
    }
}

/// A replay's mark on its stripe, from before it waits until its hold ends
/// (also when it stops waiting early: a dropped lock future).
#[derive(Debug)]
struct Marked<'a> {
    locks: &'a KeyLocks,
    stripe: usize,
}

impl Drop for Marked<'_> {
    fn drop(&mut self) {
        self.locks.marked[self.stripe].fetch_sub(1, SeqCst);
    }
}

/// A live write's hold of one key, counted or shared, or a replay's.
#[derive(Debug)]
enum Hold<'a> {
    Counted(#[allow(dead_code)] Counted<'a>),
    Shared(#[allow(dead_code)] OwnedRwLockReadGuard<()>),
    /// The lock is released before the mark (fields drop in order).
    Alone(#[allow(dead_code)] OwnedRwLockWriteGuard<()>, #[allow(dead_code)] Marked<'a>),
}

/// Holds the locks of some keys; released on drop.
#[derive(Debug)]
pub struct KeyGuard<'a> {
    locks: &'a KeyLocks,
    /// The first key's hold (none for no keys), then the others'.
    first: Option<(KeyId, Hold<'a>)>,
    rest: Vec<(KeyId, Hold<'a>)>,
}

impl KeyLocks {
    /// Locks every key of `keys` in `bucket` (in one order and deduplicated,
    /// so that two requests locking several keys cannot deadlock).
    pub async fn lock<'a>(&'a self, bucket: &str, keys: impl IntoIterator<Item = &str>) -> KeyGuard<'a> {
        self.take(bucket, keys, Want::Alone).await
    }

    /// Like [`KeyLocks::lock`], shared with other live writes.
    pub async fn lock_shared<'a>(&'a self, bucket: &str, keys: impl IntoIterator<Item = &str>) -> KeyGuard<'a> {
        self.take(bucket, keys, Want::Shared).await
    }

    /// [`KeyLocks::lock_shared`] for a brief write of one key: one whose
    /// body is whole in memory and whose exchange the backend deadlines
    /// bound (the fast path's). It is only counted while no replay holds or
    /// waits for a key of its stripe. A streamed write, which may last
    /// minutes, takes the key's lock instead: a replay of another key of
    /// its stripe does not wait for it.
    pub async fn lock_brief<'a>(&'a self, bucket: &str, key: &str) -> KeyGuard<'a> {
        let id = self.ids.hash_one((bucket, key));
        KeyGuard { locks: self, first: Some((id, self.hold(id, Want::Brief).await)), rest: Vec::new() }
    }

    /// Holds `keys` as `want` says: [`Want::Alone`] or [`Want::Shared`].
    async fn take<'a>(&'a self, bucket: &str, keys: impl IntoIterator<Item = &str>, want: Want) -> KeyGuard<'a> {
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
                let hold = self.hold(id, want).await;
                guard.rest.push((id, hold));
            }
            return guard;
        }
        guard.first = Some((first, self.hold(first, want).await));
        guard
    }

    /// One key's hold.
    async fn hold(&self, id: KeyId, want: Want) -> Hold<'_> {
        let stripe = (id % STRIPES as u64) as usize;
        let mark = if want == Want::Alone {
            self.marked[stripe].fetch_add(1, SeqCst);
            let mark = Marked { locks: self, stripe };
            // The stripe's counted writes hold no lock to wait on: wait
            // until the last has ended (none starts while it is marked).
            loop {
                let drained = self.drained.notified();
                tokio::pin!(drained);
                drained.as_mut().enable();
                if self.counted[stripe].load(SeqCst) == 0 {
                    break;
                }
                drained.await;
            }
            Some(mark)
        } else if want == Want::Brief {
            self.counted[stripe].fetch_add(1, SeqCst);
            let counted = Counted { locks: self, stripe };
            if self.marked[stripe].load(SeqCst) == 0 {
                return Hold::Counted(counted);
            }
            // A replay holds or waits for a key of the stripe: the key's lock.
            drop(counted);
            None
        } else {
            None
        };
        let m = {
            let mut held = self.held.lock().expect("key locks");
            let Held { locks, spare } = &mut *held;
            locks.entry(id).or_insert_with(|| spare.pop().unwrap_or_default()).clone()
        };
        match mark {
            Some(mark) => Hold::Alone(m.write_owned().await, mark),
            None => Hold::Shared(m.read_owned().await),
        }
    }
}

impl Drop for KeyGuard<'_> {
    fn drop(&mut self) {
        let holds = self.first.take().into_iter().chain(self.rest.drain(..));
        let mut held = None;
        for (id, hold) in holds {
            if matches!(hold, Hold::Counted(_)) {
                continue;
            }
            drop(hold);
            // Nobody else holds or waits for it: forget it (and keep the
            // lock for another key).
            let held = held.get_or_insert_with(|| self.locks.held.lock().expect("key locks"));
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
        let g = locks.lock("app", ["a"]).await;
        let first = lock_of(&locks);
        drop(g);
        assert!(locks.held.lock().unwrap().locks.is_empty());
        assert_eq!(locks.held.lock().unwrap().spare.len(), 1, "the lock of a key nobody holds is kept as a spare");
        let g = locks.lock("app", ["b"]).await;
        assert_eq!(lock_of(&locks), first, "a new key allocated a lock although a spare was there");
        assert!(locks.held.lock().unwrap().spare.is_empty());
        // Still a lock: a live write of "b" waits for the replay.
        let l = &locks;
        let write = async move { drop(l.lock_shared("app", ["b"]).await) };
        tokio::pin!(write);
        assert!(poll_once(write.as_mut()).await.is_pending(), "a live write overlapped a replay");
        drop(g);
        write.await;
        assert!(locks.held.lock().unwrap().locks.is_empty());
    }

    /// A key of `bucket` whose id is in `key`'s stripe, other than `key`.
    fn same_stripe(locks: &KeyLocks, bucket: &str, key: &str) -> String {
        let stripe = |k: &str| locks.ids.hash_one((bucket, k)) % STRIPES as u64;
        (0..).map(|i| format!("other-{i}")).find(|k| stripe(k) == stripe(key)).unwrap()
    }

    #[tokio::test]
    async fn a_live_write_of_one_key_takes_no_lock_and_a_replay_of_it_waits_for_it() {
        let locks = KeyLocks::default();
        let w1 = locks.lock_brief("app", "k").await;
        let w2 = locks.lock_brief("app", "k").await;
        assert!(locks.held.lock().unwrap().locks.is_empty(), "a live write took a lock while no replay ran");
        let replay = async { drop(locks.lock("app", ["k"]).await) };
        tokio::pin!(replay);
        assert!(poll_once(replay.as_mut()).await.is_pending(), "a replay overlapped two live writes");
        drop(w1);
        assert!(poll_once(replay.as_mut()).await.is_pending(), "a replay overlapped a live write");
        drop(w2);
        replay.await;
        // A write of another key of another stripe did not wait for anything.
        assert!(locks.counted.iter().chain(&locks.marked).all(|c| c.load(SeqCst) == 0));
    }

    #[tokio::test]
    async fn a_live_write_in_the_stripe_of_a_replayed_key_waits_only_for_its_own_key() {
        let locks = KeyLocks::default();
        let replay = locks.lock("app", ["k"]).await;
        let neighbour = same_stripe(&locks, "app", "k");
        // Another key of the marked stripe takes its own lock, at once.
        let other = locks.lock_brief("app", &neighbour).await;
        assert_eq!(locks.held.lock().unwrap().locks.len(), 2);
        let write = async { drop(locks.lock_brief("app", "k").await) };
        tokio::pin!(write);
        assert!(poll_once(write.as_mut()).await.is_pending(), "a live write overlapped the replay of its key");
        drop(replay);
        write.await;
        drop(other);
        assert!(locks.held.lock().unwrap().locks.is_empty());
        // The stripe is unmarked: a write is counted again.
        drop(locks.lock_brief("app", "k").await);
        assert!(locks.held.lock().unwrap().locks.is_empty());
    }

    #[tokio::test]
    async fn a_replay_that_stops_waiting_unmarks_its_stripe() {
        let locks = KeyLocks::default();
        let w = locks.lock_brief("app", "k").await;
        {
            let replay = async { drop(locks.lock("app", ["k"]).await) };
            tokio::pin!(replay);
            assert!(poll_once(replay.as_mut()).await.is_pending());
        }
        drop(w);
        assert!(locks.marked.iter().all(|c| c.load(SeqCst) == 0), "a dropped replay left its mark");
        let w = locks.lock_brief("app", "k").await;
        assert!(locks.held.lock().unwrap().locks.is_empty(), "a write took a lock after the replay was dropped");
        drop(w);
    }

    #[tokio::test]
    async fn a_replay_does_not_wait_for_a_streamed_write_of_another_key_of_its_stripe() {
        let locks = KeyLocks::default();
        let neighbour = same_stripe(&locks, "app", "k");
        // A streamed write (hyper's path) takes its key's lock, uncounted.
        let streamed = locks.lock_shared("app", [neighbour.as_str()]).await;
        let replay = async { drop(locks.lock("app", ["k"]).await) };
        tokio::pin!(replay);
        assert!(poll_once(replay.as_mut()).await.is_ready(), "a replay waited for a streamed write of another key");
        // A brief write of that key is counted: a replay of its stripe waits for it.
        drop(streamed);
        let brief = locks.lock_brief("app", &neighbour).await;
        let replay = async { drop(locks.lock("app", ["k"]).await) };
        tokio::pin!(replay);
        assert!(poll_once(replay.as_mut()).await.is_pending());
        drop(brief);
        replay.await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn replays_and_live_writes_of_one_key_never_overlap_across_threads() {
        let locks = Arc::new(KeyLocks::default());
        // Per key: live writes under way, and whether a replay is.
        let state = Arc::new(Mutex::new((0usize, false)));
        let mut tasks = Vec::new();
        for t in 0..4 {
            let (locks, state) = (locks.clone(), state.clone());
            tasks.push(tokio::spawn(async move {
                for i in 0..2000 {
                    let alone = (i + t) % 7 == 0;
                    let g = match (alone, i % 2) {
                        (true, _) => locks.lock("app", ["k"]).await,
                        (false, 0) => locks.lock_brief("app", "k").await,
                        (false, _) => locks.lock_shared("app", ["k"]).await,
                    };
                    {
                        let mut s = state.lock().unwrap();
                        assert!(!s.1, "a hold of the key overlapped a replay");
                        if alone {
                            assert_eq!(s.0, 0, "a replay overlapped a live write");
                            s.1 = true;
                        } else {
                            s.0 += 1;
                        }
                    }
                    tokio::task::yield_now().await;
                    {
                        let mut s = state.lock().unwrap();
                        if alone { s.1 = false } else { s.0 -= 1 }
                    }
                    drop(g);
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        assert!(locks.counted.iter().chain(&locks.marked).all(|c| c.load(SeqCst) == 0));
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
