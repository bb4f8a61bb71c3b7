//! The deadline table: every armed timer of every request in one ordered
//! set, so the earliest deadline is found in O(log n) and expiring k timers
//! costs O(k log n).

use std::collections::BTreeSet;
use std::time::Instant;

use crate::ids::RequestId;

/// What a deadline is for. The order breaks ties between deadlines at the
/// same instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum TimerKind {
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
///
/// Requests remember which deadlines they armed; disarming needs the exact
/// deadline, which keeps the set free of stale entries.
#[derive(Debug, Default)]
pub(crate) struct Timers {
    set: BTreeSet<(Instant, TimerKind, RequestId)>,
}

impl Timers {
    /// Arm `kind` for `id` at `at` (`None`: not at all), replacing what `slot` held.
    pub(crate) fn arm(&mut self, slot: &mut Option<Instant>, id: RequestId, kind: TimerKind, at: Option<Instant>) {
        self.disarm(slot, id, kind);
        if let Some(at) = at {
            self.set.insert((at, kind, id));
        }
        *slot = at;
    }

    /// Disarm `kind` for `id` if `slot` says it is armed.
    pub(crate) fn disarm(&mut self, slot: &mut Option<Instant>, id: RequestId, kind: TimerKind) {
        if let Some(at) = slot.take() {
            let removed = self.set.remove(&(at, kind, id));
            debug_assert!(removed, "an armed timer is in the table");
        }
    }

    /// Insert a deadline whose arming the caller tracks itself.
    pub(crate) fn insert(&mut self, at: Instant, kind: TimerKind, id: RequestId) {
        self.set.insert((at, kind, id));
    }

    /// Remove a deadline inserted with [`Timers::insert`], if still there.
    pub(crate) fn remove(&mut self, at: Instant, kind: TimerKind, id: RequestId) {
        self.set.remove(&(at, kind, id));
    }

    /// The earliest deadline.
    pub(crate) fn next(&self) -> Option<Instant> {
        self.set.first().map(|&(at, _, _)| at)
    }

    /// Remove and return the earliest timer due at or before `now`.
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<(Instant, TimerKind, RequestId)> {
        match self.set.first() {
            Some(&(at, _, _)) if at <= now => self.set.pop_first(),
            _ => None,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.set.len()
    }
}
