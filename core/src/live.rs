//! [`Req`]: the state of one live request, in one table entry. Only
//! `max_concurrent` requests run while millions may wait, so what only a
//! running attempt needs lives in [`Running`](crate::running::Running),
//! and a waiting request stays small.

use std::time::Instant;

use url::Url;

use crate::config::{Config, RetryPolicy};
use crate::ids::RequestId;
use crate::keys::{AttemptKey, GroupKey, HostKey, PeerKey, QueueKey};
use crate::policy::{Policy, Timeouts};
use crate::request::{RequestMethod, RequestPriority};
use crate::waiting::{Entry, Order};

/// Where a live request is. Each state holds the deadline it armed.
#[derive(Debug)]
pub(crate) enum State {
    /// Waiting in host queue `queue` since `since` (enqueue, backoff end,
    /// preemption, redirect); `age` is its armed ageing deadline.
    Queued { since: Instant, age: Option<Instant>, queue: QueueKey },
    /// Waiting out a retry backoff until `until`; `changed` is when its
    /// priority changed meanwhile (ageing counts from the later of the two).
    Backoff { until: Instant, changed: Option<Instant> },
    /// Transferring.
    Running(AttemptKey),
    /// For an instant between two states: its attempt just stopped.
    Stopped,
}

/// Everything about one live request.
#[derive(Debug)]
pub(crate) struct Req {
    pub(crate) id: RequestId,
    pub(crate) peer: PeerKey,
    pub(crate) group: Option<GroupKey>,
    pub(crate) host: HostKey,
    pub(crate) method: RequestMethod,
    pub(crate) priority: RequestPriority,
    /// Kept parsed: every start hands out a copy, and a copy costs a
    /// twentieth of a parse.
    pub(crate) url: Url,
    /// Whether the request asked for a range, and which (`range_end` is
    /// `u64::MAX` for an open end).
    pub(crate) ranged: bool,
    pub(crate) range_start: u64,
    pub(crate) range_end: u64,
    /// Its place in its peer's queue.
    pub(crate) order: Order,
    /// Bytes delivered across all attempts.
    pub(crate) delivered: u64,
    /// Starts so far.
    pub(crate) attempt: u32,
    /// What most requests never need; made at the first need.
    pub(crate) extra: Option<Box<Extra>>,
    pub(crate) state: State,
}

/// The part of a request's state that only some requests need: those with
/// a policy of their own, or that failed or were redirected.
#[derive(Debug, Default)]
pub(crate) struct Extra {
    pub(crate) policy: Policy,
    /// Retries used (preemptions and moves to a mirror do not count).
    pub(crate) retries: u32,
    /// Redirects followed since the request's URL was last chosen.
    pub(crate) redirects: u32,
    /// The armed whole-request deadline.
    pub(crate) deadline_at: Option<Instant>,
    /// With mirrors: the request's first URL (index 0; a redirect
    /// replaces `Req::url`) and which of `[first, mirrors..]` it fetches.
    pub(crate) first: Option<Url>,
    pub(crate) mirror: usize,
}

impl Extra {
    /// The URL `index` of `[first, mirrors..]`.
    pub(crate) fn url(&self, index: usize) -> Option<&Url> {
        match index {
            0 => self.first.as_ref(),
            i => self.policy.mirrors.get(i - 1),
        }
    }
}

impl Req {
    /// Its extra state, made now if it had none.
    pub(crate) fn extra_mut(&mut self) -> &mut Extra {
        self.extra.get_or_insert_with(Box::default)
    }

    pub(crate) fn retries(&self) -> u32 {
        self.extra.as_ref().map_or(0, |x| x.retries)
    }

    pub(crate) fn redirects(&self) -> u32 {
        self.extra.as_ref().map_or(0, |x| x.redirects)
    }

    /// The timeouts its attempts run under.
    pub(crate) fn timeouts(&self, cfg: &Config) -> Timeouts {
        self.extra.as_ref().and_then(|x| x.policy.timeouts).unwrap_or_else(|| Timeouts::of(cfg))
    }

    /// The idle timeout its attempts run under.
    pub(crate) fn idle_timeout(&self, cfg: &Config) -> Option<std::time::Duration> {
        match &self.extra {
            Some(x) => x.policy.timeouts.map_or(cfg.idle_timeout, |t| t.idle),
            None => cfg.idle_timeout,
        }
    }

    /// The retry policy it is retried by.
    pub(crate) fn retry_policy<'a>(&'a self, cfg: &'a Config) -> &'a RetryPolicy {
        self.extra.as_ref().and_then(|x| x.policy.retry.as_ref()).unwrap_or(&cfg.retry)
    }

    /// The requested range.
    pub(crate) fn range(&self) -> Option<(u64, Option<u64>)> {
        self.ranged.then(|| (self.range_start, (self.range_end != u64::MAX).then_some(self.range_end)))
    }

    /// A bounded range whose every byte has been delivered.
    pub(crate) fn fully_delivered(&self) -> bool {
        match self.range() {
            Some((start, Some(end))) => self.delivered > end - start,
            _ => false,
        }
    }

    /// The range still to fetch: the original one minus what was delivered.
    pub(crate) fn remaining_range(&self) -> Option<(u64, Option<u64>)> {
        match (self.range(), self.delivered) {
            (range, 0) => range,
            (None, d) => Some((d, None)),
            (Some((start, end)), d) => Some((start.saturating_add(d), end)),
        }
    }

    /// The running attempt.
    pub(crate) fn attempt(&self) -> Option<AttemptKey> {
        match self.state {
            State::Running(a) => Some(a),
            _ => None,
        }
    }

    /// Whether `entry`, found in a queue of `priority`, is this request
    /// waiting there now (not a leftover of an earlier place).
    pub(crate) fn is_filed(&self, entry: Entry, priority: RequestPriority) -> bool {
        self.id == entry.id
            && self.order == entry.order
            && self.priority == priority
            && matches!(self.state, State::Queued { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waiting_requests_stay_small() {
        // A waiting request is one table entry, its URL's string and a queue
        // entry; keep the entry itself compact (issue: <= 300 B/request).
        let size = std::mem::size_of::<Req>();
        println!("size_of::<Req>() = {size}");
        assert!(size <= 200, "a request's state grew to {size} bytes");
    }
}
