//! What a caller asks for ([`Request`]) and what the scheduler tells an
//! adapter to fetch ([`FetchCmd`]).

use std::time::Duration;

use url::Url;

use crate::config::RetryPolicy;
use crate::error::EnqueueError;
use crate::hosts::Hosts;
use crate::ids::{GroupId, PeerId, RequestId};
use crate::policy::{Policy, Timeouts};

/// HTTP method of a request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum RequestMethod {
    /// HTTP GET with a streamed body. The default.
    #[default]
    Get,
    /// HTTP HEAD: status and headers only (e.g. `Content-Length`).
    Head,
}

/// Scheduling priority of a request or of a peer.
///
/// `High < Low` in `Ord`: sorting puts what runs first first.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum RequestPriority {
    /// Latency-sensitive work: a demand segment, a seek, a user click.
    High = 0,
    /// Background work: prefetch, idle downloads. The default.
    #[default]
    Low = 1,
}

/// A download to schedule: built with [`Request::get`] or [`Request::head`]
/// and refined with the builder methods, then handed to
/// [`Scheduler::enqueue`](crate::Scheduler::enqueue).
///
/// ```
/// use weir::{Request, RequestPriority};
/// let url = url::Url::parse("https://cdn.example/seg/42.ts").unwrap();
/// let req = Request::get(url).priority(RequestPriority::High).range(0, Some(1023));
/// assert_eq!(req.priority_value(), RequestPriority::High);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub(crate) url: Url,
    pub(crate) method: RequestMethod,
    pub(crate) priority: RequestPriority,
    pub(crate) group: Option<GroupId>,
    pub(crate) range: Option<(u64, Option<u64>)>,
    /// What it sets beyond the config; `None` when nothing.
    pub(crate) policy: Option<Box<Policy>>,
}

impl Request {
    /// A GET of `url`, priority [`RequestPriority::Low`], no group, whole resource.
    #[must_use]
    pub fn get(url: Url) -> Self {
        Self { url, method: RequestMethod::Get, priority: RequestPriority::Low, group: None, range: None, policy: None }
    }

    /// A HEAD of `url`, priority [`RequestPriority::Low`].
    #[must_use]
    pub fn head(url: Url) -> Self {
        Self { method: RequestMethod::Head, ..Self::get(url) }
    }

    /// Set the request's priority.
    #[must_use]
    pub fn priority(mut self, p: RequestPriority) -> Self {
        self.priority = p;
        self
    }

    /// Put the request in a cancellation group (an epoch) of its peer.
    #[must_use]
    pub fn group(mut self, g: GroupId) -> Self {
        self.group = Some(g);
        self
    }

    /// Ask for bytes `start..=end_inclusive` only (`None`: to the end).
    /// A start past the end is refused at enqueue with
    /// [`EnqueueError::InvalidRequest`](crate::EnqueueError::InvalidRequest).
    #[must_use]
    pub fn range(mut self, start: u64, end_inclusive: Option<u64>) -> Self {
        self.range = Some((start, end_inclusive));
        self
    }

    fn policy_mut(&mut self) -> &mut Policy {
        self.policy.get_or_insert_with(Box::default)
    }

    /// Use these timeouts for each attempt of this request instead of the
    /// config's (see [`Timeouts`]): a manifest that must answer fast, a
    /// large file that may idle longer.
    #[must_use]
    pub fn timeouts(mut self, timeouts: Timeouts) -> Self {
        self.policy_mut().timeouts = Some(timeouts);
        self
    }

    /// Retry this request by `policy` instead of the config's `retry`
    /// (e.g. a key that must not be retried, a segment retried fast). Host
    /// health keeps the config's `max_retry_after`: a pause is the host's.
    #[must_use]
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.policy_mut().retry = Some(policy);
        self
    }

    /// Give the whole request `deadline`, measured from its first start
    /// (queue wait before it is not charged) and running through retries,
    /// backoffs, preemptions and redirects. When it passes, the request
    /// ends with `RequestFailed { error: NetError::Timeout, retryable:
    /// true }` wherever it is (a running attempt is aborted first; one
    /// that delivered every byte of a bounded range completes instead).
    #[must_use]
    pub fn deadline(mut self, deadline: Duration) -> Self {
        self.policy_mut().deadline = Some(deadline);
        self
    }

    /// Add a fallback URL for the same resource, tried after the URLs
    /// before it. When an attempt fails with an error of the server it
    /// asked (any [`NetError`](crate::NetError) but `Sink` and `TooLarge`:
    /// a 404 of a mirror not yet synced counts) and a URL not yet tried in
    /// this round remains, the next attempt goes to the next URL at once
    /// (`RequestRetrying` with no delay, no retry used, its redirect count
    /// starting again). After the last URL, a retryable failure starts a
    /// new round at the first URL under the retry policy (a retry with its
    /// backoff); any other failure ends the request. Each URL is checked
    /// at enqueue like the request's own, and `max_per_host` and host
    /// health apply to the host each attempt goes to.
    ///
    /// Whether bytes fetched from one mirror may be continued from another
    /// is the I/O layer's call (weir-http resumes only under the same
    /// validator, and starts over otherwise).
    #[must_use]
    pub fn mirror(mut self, url: Url) -> Self {
        self.policy_mut().mirrors.push(url);
        self
    }

    /// The request's own timeouts, if set.
    #[must_use]
    pub fn timeouts_value(&self) -> Option<Timeouts> {
        self.policy.as_ref().and_then(|p| p.timeouts)
    }

    /// The request's own retry policy, if set.
    #[must_use]
    pub fn retry_value(&self) -> Option<&RetryPolicy> {
        self.policy.as_ref().and_then(|p| p.retry.as_ref())
    }

    /// The request's deadline, if set.
    #[must_use]
    pub fn deadline_value(&self) -> Option<Duration> {
        self.policy.as_ref().and_then(|p| p.deadline)
    }

    /// The fallback URLs, in the order they are tried.
    #[must_use]
    pub fn mirrors(&self) -> &[Url] {
        self.policy.as_ref().map_or(&[], |p| p.mirrors.as_slice())
    }

    /// The URL to fetch.
    #[must_use]
    pub fn url(&self) -> &Url {
        &self.url
    }

    /// The HTTP method.
    #[must_use]
    pub fn method(&self) -> RequestMethod {
        self.method
    }

    /// The priority the request was built with.
    #[must_use]
    pub fn priority_value(&self) -> RequestPriority {
        self.priority
    }

    /// The group, if any.
    #[must_use]
    pub fn group_value(&self) -> Option<GroupId> {
        self.group
    }

    /// The byte range, if any.
    #[must_use]
    pub fn range_value(&self) -> Option<(u64, Option<u64>)> {
        self.range
    }

    /// Check the request before accepting it; returns its per-host key.
    pub(crate) fn check(&self) -> Result<(&str, u16), EnqueueError> {
        let host = fetchable(&self.url).map_err(EnqueueError::InvalidRequest)?;
        for (i, mirror) in self.mirrors().iter().enumerate() {
            fetchable(mirror).map_err(|why| EnqueueError::InvalidRequest(format!("mirror {}: {why}", i + 1)))?;
        }
        if let Some((start, Some(end))) = self.range {
            if start > end {
                return Err(EnqueueError::InvalidRequest(format!("range start {start} is past its end {end}")));
            }
        }
        Ok(host)
    }
}

/// The per-host key of `url`, or why it cannot be fetched.
pub(crate) fn fetchable(url: &Url) -> Result<(&str, u16), String> {
    let scheme = url.scheme();
    if scheme != "http" && scheme != "https" {
        return Err(format!("unsupported scheme {scheme:?} (only http and https)"));
    }
    Hosts::key_of(url).ok_or_else(|| "the URL has no host".into())
}

/// An order to an adapter: begin this transfer now.
///
/// `range` already accounts for bytes delivered by earlier attempts: a retry
/// or a resume after preemption asks only for what is missing. `attempt` is 1
/// for the first start and grows by one at every start; adapters tag the
/// transfer with `(id, attempt)` and drop reports of an attempt they were told
/// to abort.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct FetchCmd {
    /// The request.
    pub id: RequestId,
    /// The peer it belongs to.
    pub peer: PeerId,
    /// What to fetch.
    pub url: Url,
    /// How to fetch it.
    pub method: RequestMethod,
    /// Bytes `start..=end` to ask for (`Range` header); `None` for the whole resource.
    pub range: Option<(u64, Option<u64>)>,
    /// 1 for the first start, +1 for every later start (retry or resume).
    pub attempt: u32,
}
