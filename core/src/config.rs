//! Scheduler configuration.

use std::time::Duration;

use crate::error::ConfigError;

/// How failed attempts are retried.
///
/// The n-th retry waits `min(cap, base · 2^(n−1))`; with `jitter` a value
/// drawn uniformly from `[d/2, d]` by a PRNG seeded from [`Config::seed`].
/// A server's `Retry-After` is used as given instead, unless it is longer
/// than `max_retry_after`, in which case the request fails at once.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(default, deny_unknown_fields))]
pub struct RetryPolicy {
    /// Retries after the first attempt (`3` allows 4 starts). Default 3.
    pub max_retries: u32,
    /// Delay before the first retry. Default 100 ms.
    #[cfg_attr(feature = "serde", serde(with = "crate::serde_support::secs"))]
    pub base: Duration,
    /// Longest computed delay. Default 5 s.
    #[cfg_attr(feature = "serde", serde(with = "crate::serde_support::secs"))]
    pub cap: Duration,
    /// Draw each delay from `[d/2, d]`. Default on.
    pub jitter: bool,
    /// Longest `Retry-After` worth waiting for. Default 120 s.
    #[cfg_attr(feature = "serde", serde(with = "crate::serde_support::secs"))]
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_retries: 3,
            base: Duration::from_millis(100),
            cap: Duration::from_secs(5),
            jitter: true,
            max_retry_after: Duration::from_secs(120),
        }
    }
}

/// Limits, timeouts and policies of a [`Scheduler`](crate::Scheduler).
///
/// Every timeout is measured from the attempt's start, never from enqueue:
/// time spent waiting in the queue is not charged to a request.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(default, deny_unknown_fields))]
pub struct Config {
    /// Transfers running at once. Default 5; must be at least 1.
    pub max_concurrent: usize,
    /// Transfers running at once per host (host + port). Default none.
    pub max_per_host: Option<usize>,
    /// Transfers of Low requests running at once; the rest of
    /// `max_concurrent` stays free for High demand. Default none.
    pub max_low_in_flight: Option<usize>,
    /// Requests waiting (queued or in backoff) beyond which `enqueue` returns
    /// [`EnqueueError::QueueFull`](crate::EnqueueError::QueueFull). Default none.
    pub max_queued: Option<usize>,
    /// After this long an attempt emits one `LoadSlow` and keeps running. Default 2 s.
    #[cfg_attr(feature = "serde", serde(with = "crate::serde_support::opt_secs"))]
    pub soft_timeout: Option<Duration>,
    /// An attempt with no bytes for this long is aborted and retried. Default 30 s.
    #[cfg_attr(feature = "serde", serde(with = "crate::serde_support::opt_secs"))]
    pub idle_timeout: Option<Duration>,
    /// An attempt running this long in total is aborted and retried. Default none.
    #[cfg_attr(feature = "serde", serde(with = "crate::serde_support::opt_secs"))]
    pub hard_timeout: Option<Duration>,
    /// Retry policy.
    pub retry: RetryPolicy,
    /// Abort a running Low request of a worse class (peer priority ×
    /// request priority) to make room for a High one. Default off.
    pub preempt_low: bool,
    /// Promote a Low request to High after it waited this long. Default none.
    #[cfg_attr(feature = "serde", serde(with = "crate::serde_support::opt_secs"))]
    pub promote_after: Option<Duration>,
    /// Seed of the jitter PRNG: same seed, same delays. Default 0.
    pub seed: u64,
    /// Redirects one request follows (see
    /// [`Scheduler::on_redirect`](crate::Scheduler::on_redirect)); one more
    /// fails it with a `Protocol` error. Default 10; 0 follows none.
    pub max_redirects: u32,
    /// Follow a redirect from https to plain http. Default off: such a
    /// redirect fails the request.
    pub allow_https_downgrade: bool,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            max_concurrent: 5,
            max_per_host: None,
            max_low_in_flight: None,
            max_queued: None,
            soft_timeout: Some(Duration::from_secs(2)),
            idle_timeout: Some(Duration::from_secs(30)),
            hard_timeout: None,
            retry: RetryPolicy::default(),
            preempt_low: false,
            promote_after: None,
            seed: 0,
            max_redirects: 10,
            allow_https_downgrade: false,
        }
    }
}

impl Config {
    /// Check the config for values that cannot work.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the first offending field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.max_concurrent == 0 {
            return Err(ConfigError::ZeroConcurrency);
        }
        for (name, v) in [
            ("max_per_host", self.max_per_host),
            ("max_low_in_flight", self.max_low_in_flight),
            ("max_queued", self.max_queued),
        ] {
            if v == Some(0) {
                return Err(ConfigError::ZeroLimit(name));
            }
        }
        for (name, v) in [
            ("soft_timeout", self.soft_timeout),
            ("idle_timeout", self.idle_timeout),
            ("hard_timeout", self.hard_timeout),
        ] {
            if v == Some(Duration::ZERO) {
                return Err(ConfigError::ZeroTimeout(name));
            }
        }
        Ok(())
    }
}
