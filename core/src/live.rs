//! [`Req`]: the state of one live request, in one table entry. Only
//! `max_concurrent` requests run while millions may wait, so what only a
//! running attempt needs lives in [`Running`](crate::running::Running),
//! and a waiting request stays small.

use std::time::Instant;

use url::Url;

use crate::ids::RequestId;
use crate::keys::{AttemptKey, GroupKey, HostKey, PeerKey, QueueKey};
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
    /// Retries used (preemptions do not count).
    pub(crate) retries: u32,
    /// Redirects followed.
    pub(crate) redirects: u32,
    pub(crate) state: State,
}

impl Req {
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
