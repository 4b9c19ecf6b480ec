//! The streaming diff: both listings are read page by page (each in its own
//! task, at most a couple of pages ahead) and merge-joined on the key
//! relative to each side's prefix, so memory does not grow with the number
//! of objects. Listings are sorted by S3; an out-of-order page is an error.

use std::collections::VecDeque;

use cutover_s3::S3Client;
use cutover_s3::client::ListedObject;
use tokio::sync::mpsc;

use crate::SyncError;
use crate::location::Filter;
use crate::retry::{Limiter, RetryPolicy, RetryStats, with_retries};

/// An object as the diff sees it: key relative to the side's prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub rel: String,
    pub size: u64,
    pub etag: Option<String>,
    pub last_modified: Option<String>,
}

/// Why an object differs, or that it does not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Only on the source.
    New,
    /// Sizes differ, or both ETags are plain MD5s and differ.
    Changed,
    /// Same size and the ETags cannot decide (multipart or SSE ETags): equal
    /// unless a checksum comparison says otherwise.
    Undecided,
    /// Same size and same plain-MD5 ETag (or same ETag of any form).
    Same,
    /// Only on the destination.
    Extra,
}

/// True for an ETag that is the MD5 of the content: 32 hex digits, no `-N`.
pub fn is_plain_md5(etag: &str) -> bool {
    etag.len() == 32 && etag.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Compares one source object with the destination object of the same key.
pub fn compare(src: &Entry, dst: &Entry) -> Verdict {
    if src.size != dst.size {
        return Verdict::Changed;
    }
    match (src.etag.as_deref(), dst.etag.as_deref()) {
        (Some(a), Some(b)) if a.eq_ignore_ascii_case(b) => Verdict::Same,
        (Some(a), Some(b)) if is_plain_md5(a) && is_plain_md5(b) => Verdict::Changed,
        _ => Verdict::Undecided,
    }
}

/// One step of the merge-join.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pair {
    pub src: Option<Entry>,
    pub dst: Option<Entry>,
    pub verdict: Verdict,
}

impl Pair {
    pub fn rel(&self) -> &str {
        match (&self.src, &self.dst) {
            (Some(e), _) | (None, Some(e)) => &e.rel,
            (None, None) => "",
        }
    }
}

type PageResult = Result<Vec<ListedObject>, SyncError>;

/// What a lister needs: where, and how to retry a page (its retries are
/// counted into `stats`).
#[derive(Debug, Clone)]
pub struct Listing {
    pub client: S3Client,
    pub side: String,
    pub prefix: String,
    /// A full key to start after.
    pub start_after: Option<String>,
    pub page_size: u32,
    pub retry: RetryPolicy,
    pub stats: RetryStats,
}

/// Starts a listing in a task that stays at most two pages ahead of the reader.
pub fn spawn_lister(listing: Listing) -> mpsc::Receiver<PageResult> {
    let Listing { client, side, prefix, start_after, page_size, retry, stats } = listing;
    let (tx, rx) = mpsc::channel(2);
    tokio::spawn(async move {
        let limiter = Limiter::with_stats(1, stats);
        let mut token: Option<String> = None;
        loop {
            let page = with_retries(retry, &limiter, || {
                let (client, prefix, token, start_after, side) =
                    (&client, &prefix, token.clone(), start_after.clone(), side.clone());
                async move {
                    client
                        .list_objects_v2_detailed(prefix, start_after.as_deref(), token.as_deref(), page_size)
                        .await
                        .map_err(|source| SyncError::Listing { side, source: Box::new(source) })
                }
            })
            .await;
            match page {
                Err(e) => {
                    let _ = tx.send(Err(e)).await;
                    return;
                }
                Ok(page) => {
                    let last = page.next_token.is_none();
                    if tx.send(Ok(page.objects)).await.is_err() {
                        return;
                    }
                    if last {
                        return;
                    }
                    token = page.next_token;
                }
            }
        }
    });
    rx
}

/// A cursor over one side's listing: relative keys, filtered, checked to
/// be strictly increasing.
#[derive(Debug)]
pub struct Cursor {
    side: String,
    rx: mpsc::Receiver<PageResult>,
    page: VecDeque<ListedObject>,
    prefix_len: usize,
    filter: Filter,
    previous: Option<String>,
    head: Option<Entry>,
    done: bool,
    /// Objects read from the listing (before filtering).
    pub listed: u64,
}

impl Cursor {
    pub fn new(side: String, rx: mpsc::Receiver<PageResult>, prefix: &str, filter: Filter) -> Self {
        Self {
            side,
            rx,
            page: VecDeque::new(),
            prefix_len: prefix.len(),
            filter,
            previous: None,
            head: None,
            done: false,
            listed: 0,
        }
    }

    /// The next entry without consuming it.
    async fn peek(&mut self) -> Result<Option<&Entry>, SyncError> {
        while self.head.is_none() && !self.done {
            let Some(obj) = self.page.pop_front() else {
                match self.rx.recv().await {
                    Some(Ok(objects)) => self.page = objects.into(),
                    Some(Err(e)) => return Err(e),
                    // The lister ends its channel only after the last page or an error.
                    None => self.done = true,
                }
                continue;
            };
            self.listed += 1;
            if let Some(prev) = &self.previous
                && obj.key.as_str() <= prev.as_str()
            {
                return Err(SyncError::Unsorted { side: self.side.clone(), previous: prev.clone(), key: obj.key });
            }
            self.previous = Some(obj.key.clone());
            let Some(rel) = obj.key.get(self.prefix_len..) else { continue };
            if !self.filter.selects(rel) {
                continue;
            }
            self.head =
                Some(Entry { rel: rel.to_string(), size: obj.size, etag: obj.etag, last_modified: obj.last_modified });
        }
        Ok(self.head.as_ref())
    }

    fn take(&mut self) -> Option<Entry> {
        self.head.take()
    }
}

/// Merge-joins the source and destination cursors.
#[derive(Debug)]
pub struct MergeJoin {
    pub src: Cursor,
    pub dst: Cursor,
}

impl MergeJoin {
    /// The next pair in key order, or `None` when both listings are done.
    pub async fn next(&mut self) -> Result<Option<Pair>, SyncError> {
        let order = {
            let s = self.src.peek().await?.map(|e| e.rel.clone());
            let d = self.dst.peek().await?;
            match (s, d) {
                (None, None) => return Ok(None),
                (Some(_), None) => std::cmp::Ordering::Less,
                (None, Some(_)) => std::cmp::Ordering::Greater,
                (Some(s), Some(d)) => s.as_str().cmp(d.rel.as_str()),
            }
        };
        Ok(Some(match order {
            std::cmp::Ordering::Less => Pair { src: self.src.take(), dst: None, verdict: Verdict::New },
            std::cmp::Ordering::Greater => Pair { src: None, dst: self.dst.take(), verdict: Verdict::Extra },
            std::cmp::Ordering::Equal => {
                let (s, d) = (self.src.take().expect("peeked"), self.dst.take().expect("peeked"));
                let verdict = compare(&s, &d);
                Pair { src: Some(s), dst: Some(d), verdict }
            }
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(key: &str, size: u64, etag: &str) -> ListedObject {
        ListedObject { key: key.into(), size, etag: Some(etag.into()), last_modified: None }
    }

    fn cursor(prefix: &str, pages: Vec<Vec<ListedObject>>) -> Cursor {
        let (tx, rx) = mpsc::channel(pages.len().max(1));
        for p in pages {
            tx.try_send(Ok(p)).unwrap();
        }
        Cursor::new("test".into(), rx, prefix, Filter::default())
    }

    const A: &str = "0cc175b9c0f1b6a831c399e269772661";
    const B: &str = "92eb5ffee6ae2fec3ad71c777531578f";

    #[test]
    fn compares_by_size_then_md5_etags() {
        let e = |size, etag: &str| Entry { rel: "k".into(), size, etag: Some(etag.into()), last_modified: None };
        assert_eq!(compare(&e(1, A), &e(2, A)), Verdict::Changed);
        assert_eq!(compare(&e(1, A), &e(1, B)), Verdict::Changed);
        assert_eq!(compare(&e(1, A), &e(1, &A.to_uppercase())), Verdict::Same);
        assert_eq!(compare(&e(1, A), &e(1, "abc-2")), Verdict::Undecided);
        assert!(is_plain_md5(A) && !is_plain_md5("0cc175b9c0f1b6a831c399e269772661-3"));
    }

    #[tokio::test]
    async fn merge_joins_across_pages_and_prefixes() {
        let src =
            cursor("s/", vec![vec![obj("s/a", 1, A), obj("s/b", 1, A)], vec![obj("s/c", 1, A), obj("s/d", 2, A)]]);
        let dst = cursor("d/", vec![vec![obj("d/b", 1, A)], vec![obj("d/bb", 1, A), obj("d/d", 2, B)]]);
        let mut mj = MergeJoin { src, dst };
        let mut got = Vec::new();
        while let Some(p) = mj.next().await.unwrap() {
            got.push((p.rel().to_string(), p.verdict));
        }
        let want = [
            ("a", Verdict::New),
            ("b", Verdict::Same),
            ("bb", Verdict::Extra),
            ("c", Verdict::New),
            ("d", Verdict::Changed),
        ];
        assert_eq!(got, want.map(|(k, v)| (k.to_string(), v)));
    }

    #[tokio::test]
    async fn an_unsorted_listing_is_an_error() {
        let src = cursor("", vec![vec![obj("b", 1, A), obj("a", 1, A)]]);
        let mut mj = MergeJoin { src, dst: cursor("", vec![]) };
        assert!(mj.next().await.unwrap().is_some());
        assert!(matches!(mj.next().await, Err(SyncError::Unsorted { .. })));
    }

    #[tokio::test]
    async fn a_listing_error_stops_the_join() {
        let (tx, rx) = mpsc::channel(2);
        tx.try_send(Ok(vec![obj("a", 1, A)])).unwrap();
        tx.try_send(Err(SyncError::Options("boom".into()))).unwrap();
        let mut mj = MergeJoin { src: Cursor::new("s".into(), rx, "", Filter::default()), dst: cursor("", vec![]) };
        assert!(mj.next().await.unwrap().is_some());
        assert!(mj.next().await.is_err());
    }
}
