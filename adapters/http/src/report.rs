//! How often a transfer reports its bytes to the scheduler: the first bytes
//! at once (they make `FirstByte`), then at most one report per 20 ms or per
//! MiB, and the rest when the attempt ends. Keeps a fast transfer from
//! waking the driver for every chunk while the idle timer stays fresh.

use std::time::{Duration, Instant};

/// Longest a delivered byte waits before it is reported.
pub const REPORT_EVERY: Duration = Duration::from_millis(20);
/// Pending bytes that are reported at once.
pub const REPORT_BYTES: u64 = 1 << 20;

/// Accumulates delivered bytes and says when to report them.
#[derive(Debug, Default, Clone, Copy)]
pub struct Coalescer {
    pending: u64,
    last: Option<Instant>,
}

impl Coalescer {
    /// `n` more bytes were delivered; the count to report now, if any.
    pub fn add(&mut self, n: u64) -> Option<u64> {
        self.pending += n;
        let due = self.last.is_none_or(|t| t.elapsed() >= REPORT_EVERY);
        if due || self.pending >= REPORT_BYTES {
            self.take()
        } else {
            None
        }
    }

    /// `n` more bytes were delivered and the attempt's last report will
    /// carry them (the body is complete): nothing to report now.
    pub fn hold(&mut self, n: u64) {
        self.pending += n;
    }

    /// Body bytes arrived that the sink skips (a resent prefix): whether to
    /// tell the scheduler the transfer is alive now (at most once per
    /// [`REPORT_EVERY`], like byte reports).
    pub fn skipped(&mut self) -> bool {
        let due = self.last.is_none_or(|t| t.elapsed() >= REPORT_EVERY);
        if due {
            self.last = Some(Instant::now());
        }
        due
    }

    /// Whatever is pending (the attempt ends), if anything.
    pub fn take(&mut self) -> Option<u64> {
        if self.pending == 0 {
            return None;
        }
        self.last = Some(Instant::now());
        Some(std::mem::take(&mut self.pending))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_bytes_go_at_once_then_they_accumulate() {
        let mut c = Coalescer::default();
        assert_eq!(c.take(), None);
        assert_eq!(c.add(10), Some(10), "the first report is immediate");
        assert_eq!(c.add(5), None, "within 20 ms: held");
        assert_eq!(c.add(REPORT_BYTES), Some(REPORT_BYTES + 5), "a MiB pending goes at once");
        assert_eq!(c.add(7), None);
        assert_eq!(c.take(), Some(7));
        assert_eq!(c.take(), None);
        assert!(!c.skipped(), "a report just went out: the scheduler knows it is alive");
        let mut fresh = Coalescer::default();
        assert!(fresh.skipped(), "the first skipped bytes are reported at once");
        assert!(!fresh.skipped());
    }
}
