//! What the scheduler tells its caller: [`Output`]s, among them typed
//! [`DownloaderEvent`]s.
//!
//! Per request, the events form this sequence (exactly one terminal event,
//! nothing after it):
//!
//! ```text
//! Enqueued  PriorityChanged*  ( Attempt (Retrying|Preempted|Redirected) PriorityChanged* )*  Attempt?  Terminal
//! Attempt  = Started, then ResponseReceived? FirstByte? LoadSlow? PriorityChanged* in any order
//! Terminal = Completed | Failed | Cancelled
//! ```

use std::time::Duration;

use url::Url;

use crate::error::NetError;
use crate::ids::{PeerId, RequestId};
use crate::request::{FetchCmd, RequestMethod, RequestPriority};

/// Why a request was cancelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum CancelReason {
    /// Its group (epoch) was cancelled, e.g. on seek.
    EpochCancel,
    /// Its peer was removed.
    PeerCancel,
    /// The scheduler was shut down.
    DownloaderShutdown,
    /// It was enqueued into a group that was already cancelled; it never started.
    BeforeStart,
    /// [`Scheduler::cancel`](crate::Scheduler::cancel) was called for it.
    Explicit,
}

/// Lifecycle events of a request. Every variant carries its [`RequestId`].
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(tag = "event", rename_all = "snake_case"))]
#[non_exhaustive]
pub enum DownloaderEvent {
    /// Accepted and placed in a queue. Always the first event of a request.
    RequestEnqueued {
        /// The request.
        request_id: RequestId,
        /// What it fetches.
        url: Url,
        /// How.
        method: RequestMethod,
        /// Its priority at enqueue.
        priority: RequestPriority,
    },
    /// An attempt started (the adapter received `Output::Start` just before).
    RequestStarted {
        /// The request.
        request_id: RequestId,
        /// Start time minus the time the request last became ready (enqueue,
        /// end of a retry backoff, preemption).
        #[cfg_attr(feature = "serde", serde(with = "crate::serde_support::secs"))]
        wait_in_queue: Duration,
        /// 1 for the first start, +1 for each later one.
        attempt: u32,
    },
    /// The attempt delivered its first byte.
    FirstByte {
        /// The request.
        request_id: RequestId,
        /// Time from the attempt's start to its first byte.
        #[cfg_attr(feature = "serde", serde(with = "crate::serde_support::secs"))]
        latency: Duration,
    },
    /// `soft_timeout` passed while the attempt runs; it keeps running. At most once per attempt.
    LoadSlow {
        /// The request.
        request_id: RequestId,
        /// Time since the attempt's start.
        #[cfg_attr(feature = "serde", serde(with = "crate::serde_support::secs"))]
        elapsed: Duration,
    },
    /// The attempt's response head arrived and its body is accepted: a UI
    /// learns the status and the total before the first byte. At most
    /// once per attempt, between its `RequestStarted` and its end.
    ResponseReceived {
        /// The request.
        request_id: RequestId,
        /// The HTTP status (200, 206, or e.g. a 416 that completes a file).
        status: u16,
        /// The size the complete resource (or asked range) will have, when
        /// the response told.
        content_length: Option<u64>,
    },
    /// The attempt failed and the request will start again after `delay`.
    RequestRetrying {
        /// The request.
        request_id: RequestId,
        /// The number of the next attempt.
        attempt: u32,
        /// How long the request waits before it is queued again.
        #[cfg_attr(feature = "serde", serde(with = "crate::serde_support::secs"))]
        delay: Duration,
        /// Why the attempt failed.
        error: NetError,
    },
    /// The attempt was aborted to make room for a High request; the request
    /// is queued again at the front and resumes from its delivered bytes.
    RequestPreempted {
        /// The request.
        request_id: RequestId,
        /// Bytes delivered so far, across attempts.
        bytes_transferred: u64,
    },
    /// The request's priority changed (explicitly or by ageing).
    PriorityChanged {
        /// The request.
        request_id: RequestId,
        /// The old priority.
        from: RequestPriority,
        /// The new priority.
        to: RequestPriority,
    },
    /// The attempt ended with a redirect; the request waits again (at the
    /// front of its peer's queue) and its next attempt fetches `url`, with
    /// `max_per_host` counted at `url`'s host. Not a retry.
    RequestRedirected {
        /// The request.
        request_id: RequestId,
        /// Where the next attempt goes.
        url: Url,
    },
    /// Terminal: every byte was delivered.
    RequestCompleted {
        /// The request.
        request_id: RequestId,
        /// Bytes delivered across all attempts.
        bytes_transferred: u64,
        /// Completion time minus the last attempt's start.
        #[cfg_attr(feature = "serde", serde(with = "crate::serde_support::secs"))]
        duration: Duration,
        /// The last attempt's bytes × 8 × 10⁹ / max(duration in ns, 1), saturating.
        bandwidth_bps: u64,
    },
    /// Terminal: the request failed for good.
    RequestFailed {
        /// The request.
        request_id: RequestId,
        /// The last error.
        error: NetError,
        /// `error.is_retryable()`: true when retries ran out or a
        /// `Retry-After` was too long.
        retryable: bool,
    },
    /// Terminal: the request was cancelled.
    RequestCancelled {
        /// The request.
        request_id: RequestId,
        /// Why.
        reason: CancelReason,
        /// Bytes delivered before the cancel, across attempts.
        bytes_transferred: u64,
    },
}

impl DownloaderEvent {
    /// The request this event is about.
    #[must_use]
    pub fn request_id(&self) -> RequestId {
        match self {
            DownloaderEvent::RequestEnqueued { request_id, .. }
            | DownloaderEvent::RequestStarted { request_id, .. }
            | DownloaderEvent::FirstByte { request_id, .. }
            | DownloaderEvent::ResponseReceived { request_id, .. }
            | DownloaderEvent::LoadSlow { request_id, .. }
            | DownloaderEvent::RequestRetrying { request_id, .. }
            | DownloaderEvent::RequestPreempted { request_id, .. }
            | DownloaderEvent::PriorityChanged { request_id, .. }
            | DownloaderEvent::RequestRedirected { request_id, .. }
            | DownloaderEvent::RequestCompleted { request_id, .. }
            | DownloaderEvent::RequestFailed { request_id, .. }
            | DownloaderEvent::RequestCancelled { request_id, .. } => *request_id,
        }
    }

    /// Whether this is a terminal event (completed, failed or cancelled).
    #[must_use]
    pub fn is_terminal(&self) -> bool {
        matches!(
            self,
            DownloaderEvent::RequestCompleted { .. }
                | DownloaderEvent::RequestFailed { .. }
                | DownloaderEvent::RequestCancelled { .. }
        )
    }
}

/// One thing the caller must do, drained with
/// [`Scheduler::poll_output`](crate::Scheduler::poll_output).
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum Output {
    /// Begin this transfer now.
    Start(FetchCmd),
    /// Stop this transfer; later reports for it are ignored.
    Abort(RequestId),
    /// Publish this event on the peer's scope.
    Event(PeerId, DownloaderEvent),
}
