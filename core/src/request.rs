//! What a caller asks for ([`Request`]) and what the scheduler tells an
//! adapter to fetch ([`FetchCmd`]).

use url::Url;

use crate::error::EnqueueError;
use crate::hosts::Hosts;
use crate::ids::{GroupId, PeerId, RequestId};

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
}

impl Request {
    /// A GET of `url`, priority [`RequestPriority::Low`], no group, whole resource.
    #[must_use]
    pub fn get(url: Url) -> Self {
        Self { url, method: RequestMethod::Get, priority: RequestPriority::Low, group: None, range: None }
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
        let scheme = self.url.scheme();
        if scheme != "http" && scheme != "https" {
            return Err(EnqueueError::InvalidRequest(format!("unsupported scheme {scheme:?} (only http and https)")));
        }
        let host =
            Hosts::key_of(&self.url).ok_or_else(|| EnqueueError::InvalidRequest("the URL has no host".into()))?;
        if let Some((start, Some(end))) = self.range {
            if start > end {
                return Err(EnqueueError::InvalidRequest(format!("range start {start} is past its end {end}")));
            }
        }
        Ok(host)
    }
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
