//! The bandwidth estimate: an EWMA over completed attempts.

use std::time::Duration;

/// Completed attempts smaller than this do not feed the estimate.
const MIN_SAMPLE: u64 = 16 * 1024;
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

    /// Bits per second; `as` saturates for floats, which is what we want.
    pub(crate) fn estimate(&self) -> Option<u64> {
        self.ewma.map(|b| b as u64)
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
