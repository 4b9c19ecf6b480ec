//! The audit chain outside the database: segments of consecutive entries,
//! each carrying the head `(seq, hash)` it ends on and the hash it continues
//! from, and the comparison of the database with them. The upload itself is
//! the binary's (`cutover run`); this module has no I/O.
//!
//! A segment is one JSON document (see docs/audit.md):
//! `{"format", "first", "last", "prev_hash", "head": {"seq", "hash"},
//! "exported_at", "entries": [row, ...]}`, stored under
//! `{prefix}audit/{first:012}-{last:012}.json`.

use std::collections::BTreeMap;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::audit::{AuditRow, GENESIS, check_rows};
use crate::{AuditLog, StoreError};

/// The `format` of a segment this version writes and reads.
pub const SEGMENT_FORMAT: &str = "cutover-audit-segment/1";

/// The newest entry of a segment.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Head {
    pub seq: i64,
    pub hash: String,
}

/// Consecutive audit entries as exported.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Segment {
    pub format: String,
    pub first: i64,
    pub last: i64,
    /// The hash of entry `first - 1` (zeros before entry 1).
    pub prev_hash: String,
    pub head: Head,
    pub exported_at: String,
    pub entries: Vec<AuditRow>,
}

/// Why a stored segment could not be read.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum SegmentError {
    /// Not JSON, or not a segment document.
    #[error("{key}: not an audit segment: {reason}")]
    Malformed { key: String, reason: String },
}

/// What kind of damage a finding is.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum FindingKind {
    /// An entry's content differs from its hash or from the export.
    Edited,
    /// Entries are missing (from the middle or, compared with the export,
    /// from the end).
    Removed,
    /// The database's chain is consistent but differs from the export: its
    /// hashes were recomputed after a change.
    Rewritten,
    /// The export itself is damaged or incomplete.
    Export,
}

impl FindingKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FindingKind::Edited => "edited",
            FindingKind::Removed => "removed",
            FindingKind::Rewritten => "rewritten",
            FindingKind::Export => "export",
        }
    }
}

/// One problem, at the first entry it concerns.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Finding {
    pub seq: i64,
    pub kind: FindingKind,
    pub problem: String,
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "audit entry {}: {}: {}", self.seq, self.kind.as_str(), self.problem)
    }
}

/// The result of `cutover audit verify`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct VerifyReport {
    /// Entries in the database.
    pub entries: usize,
    /// Segments read from the export (`None`: no export configured).
    pub segments: Option<usize>,
    /// The newest exported entry that checked out.
    pub exported_through: Option<i64>,
    /// Every problem, by seq; empty when all is well.
    pub findings: Vec<Finding>,
}

impl VerifyReport {
    pub fn ok(&self) -> bool {
        self.findings.is_empty()
    }

    /// The first bad entry.
    pub fn first(&self) -> Option<&Finding> {
        self.findings.first()
    }
}

impl Segment {
    /// A segment of `rows` (consecutive, from the database). `None` when empty.
    pub fn from_rows(rows: Vec<AuditRow>, at: SystemTime) -> Option<Self> {
        let (first, last) = (rows.first()?, rows.last()?);
        Some(Self {
            format: SEGMENT_FORMAT.to_string(),
            first: first.seq,
            last: last.seq,
            prev_hash: first.prev_hash.clone(),
            head: Head { seq: last.seq, hash: last.hash.clone() },
            exported_at: cutover_core::time::rfc3339(at),
            entries: rows,
        })
    }

    /// The folder of the segments under an export prefix.
    pub fn folder(prefix: &str) -> String {
        format!("{prefix}audit/")
    }

    /// This segment's object key under `prefix`.
    pub fn key(&self, prefix: &str) -> String {
        format!("{}{:012}-{:012}.json", Self::folder(prefix), self.first, self.last)
    }

    /// `(first, last)` from a segment's object key, if it is one.
    pub fn parse_key(prefix: &str, key: &str) -> Option<(i64, i64)> {
        let name = key.strip_prefix(&Self::folder(prefix))?.strip_suffix(".json")?;
        let (a, b) = name.split_once('-')?;
        if a.len() != 12 || b.len() != 12 {
            return None;
        }
        Some((a.parse().ok()?, b.parse().ok()?))
    }

    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a segment serializes")
    }

    pub fn parse(key: &str, bytes: &[u8]) -> Result<Self, SegmentError> {
        let bad = |reason: String| SegmentError::Malformed { key: key.to_string(), reason };
        let s: Segment = serde_json::from_slice(bytes).map_err(|e| bad(e.to_string()))?;
        if s.format != SEGMENT_FORMAT {
            return Err(bad(format!("format {:?}, expected {SEGMENT_FORMAT:?}", s.format)));
        }
        Ok(s)
    }
}

/// Checks the export's own integrity and returns its entries by seq, up to
/// the first problem.
fn exported_rows(
    segments: &[(String, Result<Segment, SegmentError>)],
    key: Option<&[u8]>,
    findings: &mut Vec<Finding>,
) -> BTreeMap<i64, AuditRow> {
    let mut ok: Vec<(&String, &Segment)> = Vec::new();
    for (k, s) in segments {
        match s {
            Ok(s) => ok.push((k, s)),
            Err(e) => {
                findings.push(Finding { seq: 0, kind: FindingKind::Export, problem: e.to_string() });
                return BTreeMap::new();
            }
        }
    }
    ok.sort_by_key(|(_, s)| (s.first, s.last));
    let mut rows: BTreeMap<i64, AuditRow> = BTreeMap::new();
    let (mut next, mut prev) = (1i64, GENESIS.to_string());
    for (k, s) in ok {
        let bad = |seq: i64, problem: String| Finding { seq, kind: FindingKind::Export, problem };
        if s.first > next {
            let problem = format!(
                "entries {next}..{} are missing from the export (no segment holds them; the next is {k})",
                s.first - 1
            );
            findings.push(bad(next, problem));
            break;
        }
        let consistent = s.first <= s.last
            && s.entries.len() as i64 == s.last - s.first + 1
            && s.head.seq == s.last
            && s.entries.last().is_some_and(|e| e.hash == s.head.hash);
        if !consistent {
            findings.push(bad(s.first, format!("{k}: its entries do not match its range and head")));
            break;
        }
        if let Err(e) = check_rows(&s.entries, s.first, &s.prev_hash, key) {
            findings.push(bad(e.seq, format!("{k}: {}", e.problem)));
            break;
        }
        if s.first == next && s.prev_hash != prev {
            findings.push(bad(s.first, format!("{k} does not continue the previous segment's head hash")));
            break;
        }
        // A segment that overlaps what was read (an upload retried after a
        // lost answer) must agree with it where they overlap.
        if let Some(e) = s.entries.iter().find(|e| rows.get(&e.seq).is_some_and(|r| r != *e)) {
            findings.push(bad(e.seq, format!("{k} overlaps another segment and differs from it")));
            break;
        }
        if s.last >= next {
            for e in s.entries.iter().filter(|e| e.seq >= next) {
                rows.insert(e.seq, e.clone());
            }
            next = s.last + 1;
            prev = s.head.hash.clone();
        }
    }
    rows
}

/// Compares the database's rows with the exported ones; the first
/// difference becomes a finding.
fn compare(db: &[AuditRow], local_ok_through: i64, exported: &BTreeMap<i64, AuditRow>, findings: &mut Vec<Finding>) {
    let by_seq: BTreeMap<i64, &AuditRow> = db.iter().map(|r| (r.seq, r)).collect();
    let db_last = db.last().map_or(0, |r| r.seq);
    for (seq, e) in exported {
        let Some(d) = by_seq.get(seq) else {
            let last_exported = exported.keys().next_back().copied().unwrap_or(*seq);
            let problem = if *seq > db_last {
                format!(
                    "entries {seq}..{last_exported} were exported but are missing from the database (removed from its end; it ends at {db_last})"
                )
            } else {
                format!("entry {seq} was exported but is missing from the database (removed)")
            };
            findings.push(Finding { seq: *seq, kind: FindingKind::Removed, problem });
            return;
        };
        if *d == e {
            continue;
        }
        let fields: Vec<&str> = [
            ("at", d.at != e.at),
            ("actor", d.actor != e.actor),
            ("action", d.action != e.action),
            ("detail", d.detail != e.detail),
        ]
        .into_iter()
        .filter_map(|(n, differs)| differs.then_some(n))
        .collect();
        let (kind, problem) = if *seq <= local_ok_through {
            let what = if fields.is_empty() {
                "its hash differs from the exported one".to_string()
            } else {
                format!("its {} differ(s) from the export", fields.join(", "))
            };
            (
                FindingKind::Rewritten,
                format!(
                    "{what}, yet the database's chain is consistent: the hashes were recomputed (a rewritten chain); exported head hash {}…",
                    &e.hash[..e.hash.len().min(16)]
                ),
            )
        } else {
            (
                FindingKind::Edited,
                format!(
                    "the row was edited: its {} differ(s) from the export",
                    if fields.is_empty() { "hash".to_string() } else { fields.join(", ") }
                ),
            )
        };
        findings.push(Finding { seq: *seq, kind, problem });
        return;
    }
}

/// Verifies the local chain of `log` (hashed with `key`) and, when `export`
/// is given (every segment read from the export, by object key), the
/// export's own chain and that every exported entry is in the log unchanged.
pub fn verify(
    log: &dyn AuditLog,
    key: Option<&[u8]>,
    export: Option<&[(String, Result<Segment, SegmentError>)]>,
) -> Result<VerifyReport, StoreError> {
    let rows = log.audit_rows_after(0, i64::MAX)?;
    let mut findings = Vec::new();
    let local_ok_through = match check_rows(&rows, 1, GENESIS, key) {
        Ok(_) => i64::MAX,
        Err(e) => {
            let kind = if e.problem.contains("deleted or inserted") {
                FindingKind::Removed
            } else if e.problem.contains("not keyed although") {
                FindingKind::Rewritten
            } else {
                FindingKind::Edited
            };
            findings.push(Finding { seq: e.seq, kind, problem: e.problem.clone() });
            e.seq - 1
        }
    };
    let mut report = VerifyReport { entries: rows.len(), segments: None, exported_through: None, findings: vec![] };
    if let Some(segments) = export {
        report.segments = Some(segments.len());
        let exported = exported_rows(segments, key, &mut findings);
        report.exported_through = exported.keys().next_back().copied();
        compare(&rows, local_ok_through, &exported, &mut findings);
    }
    findings.sort_by_key(|f| f.seq);
    report.findings = findings;
    Ok(report)
}
