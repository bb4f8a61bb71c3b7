//! Bandwidth estimates: an EWMA over completed attempts (the scheduler's)
//! or over windows of running attempts (a peer's), and the [`Meter`] that
//! cuts an attempt into those windows.

use std::time::{Duration, Instant};

/// Completed attempts smaller than this do not feed the estimate.
const MIN_SAMPLE: u64 = 16 * 1024;
/// A window of a running attempt closes after this many bytes and ...
const WINDOW_BYTES: u64 = 16 * 1024;
/// ... this much time.
const WINDOW_TIME: Duration = Duration::from_millis(100);
/// Weight of a new sample.
const ALPHA: f64 = 0.3;

/// EWMA (α = 0.3) of the rate of completed attempts of at least 16 KiB,
/// seeded by the first such sample.
#[derive(Debug, Default)]
pub(crate) struct Bandwidth {
    ewma: Option<f64>,
}

impl Bandwidth {
    /// An attempt delivered `bytes` at `bps` bits per second.
    pub(crate) fn sample(&mut self, bytes: u64, bps: u64) {
        if bytes < MIN_SAMPLE {
            return;
        }
        let sample = bps as f64;
        self.ewma = Some(match self.ewma {
            None => sample,
            Some(prev) => ALPHA * sample + (1.0 - ALPHA) * prev,
        });
    }

    /// A rate measured over a window of a running attempt.
    pub(crate) fn sample_rate(&mut self, bps: u64) {
        self.sample(MIN_SAMPLE, bps);
    }

    /// Bits per second; `as` saturates for floats, which is what we want.
    pub(crate) fn estimate(&self) -> Option<u64> {
        self.ewma.map(|b| b as u64)
    }
}

/// The rate of one running attempt, window by window: a window closes
/// once it holds 16 KiB and lasted 100 ms, so a fast link is not judged by
/// one chunk and a slow one still reports every 16 KiB.
#[derive(Debug)]
pub(crate) struct Meter {
    /// Where the open window began: time and the attempt's bytes then.
    mark: Instant,
    mark_bytes: u64,
    /// The last closed window's rate.
    last: Option<u64>,
}

impl Meter {
    pub(crate) fn new(start: Instant) -> Self {
        Self { mark: start, mark_bytes: 0, last: None }
    }

    fn close(&mut self, bytes: u64, now: Instant) -> u64 {
        let bps = bits_per_second(bytes - self.mark_bytes, now.saturating_duration_since(self.mark));
        self.mark = now;
        self.mark_bytes = bytes;
        self.last = Some(bps);
        bps
    }

    /// The attempt holds `bytes` at `now`: the rate of the window this
    /// closes, if it closes one.
    pub(crate) fn on_bytes(&mut self, bytes: u64, now: Instant) -> Option<u64> {
        let full = bytes - self.mark_bytes >= WINDOW_BYTES && now.saturating_duration_since(self.mark) >= WINDOW_TIME;
        full.then(|| self.close(bytes, now))
    }

    /// The attempt completed with `bytes` at `now`: the rate of its last
    /// window if that held 16 KiB and lasted 100 ms, or of the whole
    /// attempt if it held 16 KiB and no window closed before.
    pub(crate) fn on_complete(&mut self, bytes: u64, now: Instant) -> Option<u64> {
        let open = bytes - self.mark_bytes;
        let long = now.saturating_duration_since(self.mark) >= WINDOW_TIME;
        (open >= WINDOW_BYTES && (long || self.last.is_none())).then(|| self.close(bytes, now))
    }

    /// The latest closed window's rate, or the rate since the start.
    pub(crate) fn rate(&self, bytes: u64, now: Instant) -> Option<u64> {
        if self.last.is_some() {
            return self.last;
        }
        let elapsed = now.saturating_duration_since(self.mark);
        (bytes > 0 && !elapsed.is_zero()).then(|| bits_per_second(bytes, elapsed))
    }
}

/// bytes × 8 × 10⁹ / max(ns, 1), saturating.
pub(crate) fn bits_per_second(bytes: u64, duration: Duration) -> u64 {
    let ns = duration.as_nanos().max(1);
    // The common case in 64 bits: a 128-bit division costs several times more.
    if let (Some(bits), Ok(ns)) = (bytes.checked_mul(8_000_000_000), u64::try_from(ns)) {
        return bits / ns;
    }
    let bps = u128::from(bytes) * 8 * 1_000_000_000 / ns;
    u64::try_from(bps).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_per_second_handles_zero_and_huge() {
        assert_eq!(bits_per_second(1_000_000, Duration::from_secs(2)), 4_000_000);
        assert_eq!(bits_per_second(10, Duration::ZERO), 80_000_000_000);
        assert_eq!(bits_per_second(u64::MAX, Duration::ZERO), u64::MAX);
        assert_eq!(bits_per_second(0, Duration::from_secs(1)), 0);
    }

    #[test]
    fn small_attempts_do_not_count_and_the_first_sample_seeds() {
        let mut b = Bandwidth::default();
        b.sample(1000, 5);
        assert_eq!(b.estimate(), None);
        b.sample(MIN_SAMPLE, 1000);
        assert_eq!(b.estimate(), Some(1000));
        b.sample(MIN_SAMPLE, 2000);
        assert_eq!(b.estimate(), Some(1300));
    }
}
