//! What one request may set beyond the [`Config`](crate::Config): its own
//! timeouts and retry policy, a deadline for the whole request, and
//! mirrors. Carried boxed and only when set, so a plain request stays as
//! small as before.

use std::time::Duration;

use url::Url;

use crate::config::{Config, RetryPolicy};

/// The timeouts of each attempt of one request, replacing the config's
/// `soft_timeout`, `idle_timeout` and `hard_timeout` (all three: a `None`
/// here switches that timeout off for the request). Like the config's,
/// each is measured from the attempt's start (idle: from its last byte),
/// never from enqueue.
///
/// ```
/// use std::time::Duration;
/// use weir::{Request, Timeouts};
/// // A playlist must answer fast; a 2 GB file may idle longer.
/// let url = url::Url::parse("https://cdn.example/live.m3u8").unwrap();
/// let manifest = Request::get(url).timeouts(Timeouts {
///     soft: Some(Duration::from_millis(500)),
///     idle: Some(Duration::from_secs(2)),
///     hard: Some(Duration::from_secs(5)),
/// });
/// assert_eq!(manifest.timeouts_value().unwrap().hard, Some(Duration::from_secs(5)));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(default, deny_unknown_fields))]
pub struct Timeouts {
    /// After this long an attempt emits one `LoadSlow` and keeps running.
    #[cfg_attr(feature = "serde", serde(with = "crate::serde_support::opt_secs"))]
    pub soft: Option<Duration>,
    /// An attempt with no bytes for this long is aborted and retried.
    #[cfg_attr(feature = "serde", serde(with = "crate::serde_support::opt_secs"))]
    pub idle: Option<Duration>,
    /// An attempt running this long in total is aborted and retried.
    #[cfg_attr(feature = "serde", serde(with = "crate::serde_support::opt_secs"))]
    pub hard: Option<Duration>,
}

impl Timeouts {
    /// The config's timeouts.
    #[must_use]
    pub fn of(config: &Config) -> Self {
        Self { soft: config.soft_timeout, idle: config.idle_timeout, hard: config.hard_timeout }
    }
}

/// A request's own settings; the config's stand for what is `None`.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct Policy {
    pub(crate) timeouts: Option<Timeouts>,
    pub(crate) retry: Option<RetryPolicy>,
    pub(crate) deadline: Option<Duration>,
    /// Fallback URLs, tried in order after the request's own.
    pub(crate) mirrors: Vec<Url>,
}
