//! The deadline table: every armed timer of every request in one ordered
//! set, so the earliest deadline is found in O(log n) and expiring k timers
//! costs O(k log n).
//!
//! One way to arm and disarm: the owner of a deadline keeps it in an
//! `Option<Instant>` slot (an attempt's soft/idle/hard, a waiting request's
//! ageing, a backoff's end) and passes that slot, so the set never holds a
//! deadline its owner forgot, nor misses one it remembers.

use std::collections::BTreeSet;
use std::time::Instant;

use crate::ids::RequestId;

/// What a deadline is for. The order breaks ties between deadlines at the
/// same instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum TimerKind {
    /// A request's whole-request deadline. First at a tie: a request out
    /// of time neither slows, retries nor waits.
    Deadline,
    /// `soft_timeout` of a running attempt: emit `LoadSlow`.
    Soft,
    /// `idle_timeout` of a running attempt, from its start or last byte.
    Idle,
    /// `hard_timeout` of a running attempt, from its start.
    Hard,
    /// The end of a retry backoff: re-queue.
    Backoff,
    /// `promote_after` of a waiting Low request: promote it.
    Age,
}

/// The ordered set of `(deadline, kind, request)`. Ties between requests
/// break by request id, so the order never depends on memory layout.
#[derive(Debug, Default)]
pub(crate) struct Timers {
    set: BTreeSet<(Instant, TimerKind, RequestId)>,
}

impl Timers {
    /// Arm `kind` for `id` at `at` (`None`: not at all), replacing what `slot` held.
    pub(crate) fn arm(&mut self, slot: &mut Option<Instant>, kind: TimerKind, id: RequestId, at: Option<Instant>) {
        if *slot == at {
            return;
        }
        self.disarm(slot, kind, id);
        if let Some(at) = at {
            self.set.insert((at, kind, id));
        }
        *slot = at;
    }

    /// Disarm `kind` for `id` if `slot` says it is armed.
    pub(crate) fn disarm(&mut self, slot: &mut Option<Instant>, kind: TimerKind, id: RequestId) {
        if let Some(at) = slot.take() {
            let removed = self.set.remove(&(at, kind, id));
            debug_assert!(removed, "an armed timer is in the table");
        }
    }

    /// The earliest deadline.
    pub(crate) fn next(&self) -> Option<Instant> {
        self.set.first().map(|&(at, _, _)| at)
    }

    /// Remove and return the earliest timer due at or before `now`. Its
    /// owner must clear the slot that held it.
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<(Instant, TimerKind, RequestId)> {
        match self.set.first() {
            Some(&(at, _, _)) if at <= now => self.set.pop_first(),
            _ => None,
        }
    }

    /// Requests with an armed deadline of `kind`, in deadline order.
    pub(crate) fn armed(&self, kind: TimerKind) -> impl Iterator<Item = RequestId> + '_ {
        self.set.iter().filter(move |e| e.1 == kind).map(|e| e.2)
    }

    pub(crate) fn len(&self) -> usize {
        self.set.len()
    }
}
