//! The checkpoint's key: the lowest source key up to which everything is
//! done, while copies are in flight out of order.

use std::collections::BTreeMap;

/// The lowest key up to which everything is done, with copies in flight.
#[derive(Debug, Default)]
pub(super) struct Watermark {
    /// In-flight (or failed) items: sequence → the source key before them.
    pending: BTreeMap<u64, Option<String>>,
    last_src: Option<String>,
    seq: u64,
}

impl Watermark {
    /// A watermark that starts after `key` (a resumed run).
    pub fn after(key: String) -> Self {
        Watermark { last_src: Some(key), ..Watermark::default() }
    }

    /// `rel` goes to a copy task: the mark stays before it until it finishes.
    pub fn start(&mut self, rel: &str) -> u64 {
        self.seq += 1;
        self.pending.insert(self.seq, self.last_src.clone());
        self.last_src = Some(rel.to_string());
        self.seq
    }

    /// `rel` needed nothing.
    pub fn pass(&mut self, rel: &str) {
        self.last_src = Some(rel.to_string());
    }

    /// The copy task `seq` finished successfully.
    pub fn finish(&mut self, seq: u64) {
        self.pending.remove(&seq);
    }

    /// The key after which a resumed run continues.
    pub fn key(&self) -> Option<String> {
        match self.pending.first_key_value() {
            Some((_, before)) => before.clone(),
            None => self.last_src.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_watermark_never_passes_an_unfinished_copy() {
        let mut m = Watermark::default();
        m.pass("a");
        let b = m.start("b");
        m.pass("c");
        let d = m.start("d");
        assert_eq!(m.key().as_deref(), Some("a"));
        m.finish(d);
        assert_eq!(m.key().as_deref(), Some("a"));
        m.finish(b);
        assert_eq!(m.key().as_deref(), Some("d"));
    }

    #[test]
    fn a_resumed_watermark_starts_after_its_key() {
        let mut m = Watermark::after("k".into());
        assert_eq!(m.key().as_deref(), Some("k"));
        let s = m.start("l");
        assert_eq!(m.key().as_deref(), Some("k"));
        m.finish(s);
        assert_eq!(m.key().as_deref(), Some("l"));
    }
}
