//! Retry backoff and its deterministic jitter.

use std::time::Duration;

use crate::config::RetryPolicy;

/// SplitMix64: a tiny, well-distributed PRNG. Seeded from `Config::seed`, so
/// the same seed gives the same jitter, run after run.
#[derive(Debug, Clone)]
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[lo, hi]` (inclusive).
    fn between(&mut self, lo: u64, hi: u64) -> u64 {
        debug_assert!(lo <= hi);
        match (hi - lo).checked_add(1) {
            Some(span) => lo + self.next_u64() % span,
            None => self.next_u64(),
        }
    }
}

/// The computed delay before the `n`-th retry (`n >= 1`):
/// `min(cap, base · 2^(n−1))`, then with jitter uniform in `[d/2, d]`.
pub(crate) fn backoff(policy: &RetryPolicy, n: u32, rng: &mut Rng) -> Duration {
    let shift = n.saturating_sub(1);
    let raw = if shift >= 64 { u128::MAX } else { policy.base.as_nanos().saturating_mul(1u128 << shift) };
    let d = raw.min(policy.cap.as_nanos());
    let d = u64::try_from(d).unwrap_or(u64::MAX);
    let d = if policy.jitter { rng.between(d / 2, d) } else { d };
    Duration::from_nanos(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(jitter: bool) -> RetryPolicy {
        RetryPolicy {
            base: Duration::from_millis(100),
            cap: Duration::from_millis(1000),
            jitter,
            ..RetryPolicy::default()
        }
    }

    #[test]
    fn doubles_then_caps() {
        let mut rng = Rng::new(1);
        let got: Vec<_> = (1..=6).map(|n| backoff(&policy(false), n, &mut rng).as_millis()).collect();
        assert_eq!(got, vec![100, 200, 400, 800, 1000, 1000]);
        assert_eq!(backoff(&policy(false), u32::MAX, &mut rng), Duration::from_millis(1000));
    }

    #[test]
    fn jitter_stays_in_half_to_full_and_repeats_per_seed() {
        let p = policy(true);
        let draw = |seed| {
            let mut rng = Rng::new(seed);
            (1..=50).map(|n| backoff(&p, n.min(4), &mut rng)).collect::<Vec<_>>()
        };
        let a = draw(7);
        assert_eq!(a, draw(7));
        assert_ne!(a, draw(8));
        for (i, d) in a.iter().enumerate() {
            let full = backoff(&policy(false), (i as u32 + 1).min(4), &mut Rng::new(0));
            assert!(*d >= full / 2 && *d <= full, "{d:?} not in [{:?}, {full:?}]", full / 2);
        }
    }

    #[test]
    fn huge_base_and_cap_do_not_overflow() {
        let p = RetryPolicy { base: Duration::MAX, cap: Duration::MAX, jitter: true, ..RetryPolicy::default() };
        let d = backoff(&p, 3, &mut Rng::new(3));
        assert!(d >= Duration::from_nanos(u64::MAX / 2));
    }
}
