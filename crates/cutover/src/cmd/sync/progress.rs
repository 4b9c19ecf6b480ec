//! How progress is shown: on a terminal (stderr is a TTY), an indicatif bar
//! with objects, bytes, rate and ETA; otherwise the plain periodic lines.
//!
//! The listing is streamed, so the total is not known at first: the bar
//! starts as a spinner with counts and becomes a bar with the total once
//! it is known. With a bar, the engine lists the source once more ahead of
//! the diff only to count it (`count_ahead`), so the total comes after one
//! quick listing pass rather than when the diff reaches the last key.

use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::Duration;

use cutover_sync::Progress;
use indicatif::{HumanDuration, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How often the engine reports progress while a bar is shown.
const BAR_EVERY: Duration = Duration::from_millis(200);

/// Where progress goes.
#[derive(Debug)]
pub enum Display {
    /// Plain lines on stderr, one per progress event (also when not a TTY).
    Lines,
    /// A bar on stderr, created at the first progress event of a run and
    /// cleared by [`Display::finish`].
    Bar(Mutex<Option<ProgressBar>>),
}

fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template)
        .expect("a valid progress template")
        .tick_chars("|/-\\ ")
        .progress_chars("=> ")
}

fn new_bar() -> ProgressBar {
    let pb = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    pb.set_style(style("{spinner} {pos} objects, listing... {msg} [{elapsed}]"));
    pb.enable_steady_tick(Duration::from_millis(120));
    pb
}

impl Display {
    /// A bar when progress is wanted (`every` set) and stderr is a terminal.
    pub fn new(every: Option<Duration>) -> Self {
        if every.is_some() && std::io::stderr().is_terminal() { Display::Bar(Mutex::new(None)) } else { Display::Lines }
    }

    /// How often the engine should report progress for this display.
    pub fn every(&self, every: Option<Duration>) -> Option<Duration> {
        match self {
            Display::Lines => every,
            Display::Bar(_) => Some(BAR_EVERY),
        }
    }

    /// Whether the engine should count the source ahead of the diff.
    pub fn counts_ahead(&self) -> bool {
        matches!(self, Display::Bar(_))
    }

    /// Shows one progress event; false when it is for the caller to print
    /// as a line.
    pub fn progress(&self, p: &Progress) -> bool {
        let Display::Bar(bar) = self else { return false };
        let mut bar = bar.lock().expect("bar lock");
        let pb = bar.get_or_insert_with(new_bar);
        if let Some(total) = p.source_total
            && pb.length().is_none()
        {
            pb.set_length(total);
            pb.set_style(style("{bar:30} {pos}/{len} objects {msg} [{elapsed}]"));
        }
        pb.set_position(handled(p).min(pb.length().unwrap_or(u64::MAX)));
        pb.set_message(message(p));
        true
    }

    /// Runs `print` (which writes lines) without tearing the bar.
    pub fn print(&self, print: impl FnOnce()) {
        match self {
            Display::Bar(bar) => match &*bar.lock().expect("bar lock") {
                Some(pb) => pb.suspend(print),
                None => print(),
            },
            Display::Lines => print(),
        }
    }

    /// Clears the bar of this run (the summary follows it).
    pub fn finish(&self) {
        if let Display::Bar(bar) = self
            && let Some(pb) = bar.lock().expect("bar lock").take()
        {
            pb.finish_and_clear();
        }
    }
}

/// Source objects dealt with: copied, found equal, or failed.
fn handled(p: &Progress) -> u64 {
    p.copied + p.skipped + p.failed
}

/// The time left, once the total is known: by the object rate so far, and
/// once the listings are done (the bytes to copy known too) the slower of
/// that and the byte rate.
fn eta(p: &Progress) -> Option<Duration> {
    let total = p.source_total.filter(|_| p.seconds >= 1.0)?;
    let by_objects = {
        let left = total.saturating_sub(handled(p)) as f64;
        let rate = handled(p) as f64 / p.seconds;
        (rate > 0.0).then(|| left / rate)
    };
    let by_bytes = p.listing_done.then(|| {
        let left = p.pending_bytes.saturating_sub(p.bytes) as f64;
        let rate = p.bytes as f64 / p.seconds;
        if left == 0.0 { Some(0.0) } else { (rate > 0.0).then(|| left / rate) }
    });
    let by_bytes = by_bytes.flatten();
    let secs = match (by_objects, by_bytes) {
        (Some(a), Some(b)) => a.max(b),
        (a, b) => a.or(b)?,
    };
    Some(Duration::from_secs_f64(secs.min(1e9)))
}

/// The counts, bytes, rate and ETA next to the bar.
fn message(p: &Progress) -> String {
    let mb = p.bytes as f64 / 1e6;
    let mut m = format!("| {} copied, {} skipped", p.copied, p.skipped);
    if p.failed > 0 {
        m += &format!(", {} failed", p.failed);
    }
    if p.retries > 0 {
        m += &format!(", {} retries", p.retries);
    }
    m += &format!(" | {mb:.1}");
    if p.listing_done {
        m += &format!(" of {:.1}", p.pending_bytes as f64 / 1e6);
    }
    m += &format!(" MB, {:.1} MB/s", mb / p.seconds.max(1e-9));
    if let Some(eta) = eta(p) {
        m += &format!(" | ETA {}", HumanDuration(eta));
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    fn progress() -> Progress {
        Progress {
            listed: 0,
            copied: 10,
            skipped: 30,
            failed: 0,
            bytes: 20_000_000,
            in_flight: 2,
            seconds: 10.0,
            source_listed: 100,
            listing_done: false,
            source_total: None,
            pending_objects: 40,
            pending_bytes: 80_000_000,
            remaining_objects: 30,
            remaining_bytes: 60_000_000,
            oldest_pending: None,
            retries: 0,
        }
    }

    #[test]
    fn the_message_has_counts_bytes_rate_and_an_eta_once_the_total_is_known() {
        let mut p = progress();
        assert_eq!(message(&p), "| 10 copied, 30 skipped | 20.0 MB, 2.0 MB/s");
        // Counted ahead: 60 objects left at 4 objects/s.
        p.source_total = Some(100);
        assert_eq!(eta(&p), Some(Duration::from_secs(15)));
        p.listing_done = true;
        p.retries = 3;
        // 60 MB left at 2 MB/s (30 s) is slower than 60 objects at 4/s (15 s).
        assert_eq!(eta(&p), Some(Duration::from_secs(30)));
        assert_eq!(message(&p), "| 10 copied, 30 skipped, 3 retries | 20.0 of 80.0 MB, 2.0 MB/s | ETA 30 seconds");
    }

    #[test]
    fn lines_stay_lines_when_stderr_is_not_a_terminal() {
        // The tests run with stderr captured, never a terminal.
        let d = Display::new(Some(Duration::from_secs(2)));
        assert!(matches!(d, Display::Lines));
        assert_eq!(d.every(Some(Duration::from_secs(2))), Some(Duration::from_secs(2)));
        assert!(!d.progress(&progress()));
    }
}
