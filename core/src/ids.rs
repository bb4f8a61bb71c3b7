//! Opaque identifiers: requests, peers and groups.
//!
//! A [`RequestId`] is monotonic and never reused. [`PeerId`] and [`GroupId`]
//! are generational: the table entry behind them may be reused after the peer or
//! group is gone, but the generation never repeats, so a stale id never
//! aliases a new one.

use std::fmt;
use std::num::NonZeroU64;

/// Bits of a [`RequestId`] that hold the request's table entry in the scheduler.
pub(crate) const KEY_BITS: u32 = 24;
/// The number of requests that can be alive at once in one scheduler.
pub(crate) const MAX_LIVE: usize = 1 << KEY_BITS;
/// The number of requests one scheduler can accept over its lifetime.
pub(crate) const MAX_SEQ: u64 = (1 << (64 - KEY_BITS)) - 1;

/// Stable id of one request, echoed in every [`DownloaderEvent`] about it.
///
/// Ids are handed out by [`Scheduler::enqueue`] in increasing order and are
/// never reused, so comparing two ids tells which request was accepted first.
/// Internally the low bits locate the request's state, which makes every
/// lookup by id O(1); the exact numeric value is otherwise meaningless.
///
/// [`DownloaderEvent`]: crate::DownloaderEvent
/// [`Scheduler::enqueue`]: crate::Scheduler::enqueue
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RequestId(NonZeroU64);

impl RequestId {
    /// Construct from a non-zero `u64` (for tests and adapters that keep
    /// their own tables; the scheduler only recognises ids it issued).
    #[must_use]
    pub const fn new(id: NonZeroU64) -> Self {
        Self(id)
    }

    /// The inner `u64`, e.g. for logging.
    #[must_use]
    pub const fn get(self) -> u64 {
        self.0.get()
    }

    /// The order in which the scheduler accepted this request (1 for the first).
    #[must_use]
    pub const fn seq(self) -> u64 {
        self.0.get() >> KEY_BITS
    }

    pub(crate) fn compose(seq: u64, key: usize) -> Self {
        debug_assert!((1..=MAX_SEQ).contains(&seq) && key < MAX_LIVE);
        let raw = (seq << KEY_BITS) | key as u64;
        Self(NonZeroU64::new(raw).expect("seq >= 1 keeps the id non-zero"))
    }

    pub(crate) fn key(self) -> usize {
        (self.0.get() & ((1 << KEY_BITS) - 1)) as usize
    }
}

impl fmt::Debug for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "req#{}", self.seq())
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "req#{}", self.seq())
    }
}

/// A peer: one client of the scheduler with its own priority and event scope
/// (a track of a media player, a crawler worker, a sync job).
///
/// Generational: after [`Scheduler::remove_peer`](crate::Scheduler::remove_peer)
/// the id is dead for good, even when a new peer reuses its table entry.
/// Ordered by creation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct PeerId {
    pub(crate) generation: u64,
    pub(crate) index: u32,
}

impl fmt::Display for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "peer#{}", self.generation)
    }
}

/// A cancellation group (an *epoch*) owned by one peer: every request enqueued
/// with it can be cancelled at once with
/// [`Scheduler::cancel_group`](crate::Scheduler::cancel_group), e.g. on seek.
///
/// Generational: a cancelled group frees its memory, yet enqueueing into it
/// later still ends the request with
/// [`CancelReason::BeforeStart`](crate::CancelReason::BeforeStart).
/// Ordered by creation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct GroupId {
    pub(crate) generation: u64,
    pub(crate) peer: PeerId,
    pub(crate) index: u32,
}

impl GroupId {
    /// The peer that owns this group.
    #[must_use]
    pub const fn peer(self) -> PeerId {
        self.peer
    }
}

impl fmt::Display for GroupId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "group#{}", self.generation)
    }
}
