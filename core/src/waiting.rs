//! The waiting requests: per peer and request priority a queue, per
//! [`Class`] a round-robin ring of the peers with something waiting in it.
//!
//! Inside a class the ring serves peers round-robin (in the order the peers
//! were added, from a cursor) and each peer's queue FIFO by an order key.
//! Requests keep their order key when they move between classes (priority
//! changes), so a move keeps the original enqueue order; requests re-queued
//! after a backoff, a preemption or a redirect get a key below every other
//! one (the front of the queue).
//!
//! Each peer queue is split by host, so finding the first request whose
//! host is not full skips only the full hosts (at most `max_concurrent` of
//! them, plus paused ones), never the requests queued behind them.
//!
//! # Lazy removal
//!
//! A request that leaves a queue without being started (cancelled, moved to
//! another priority) leaves its entry behind; entries are checked against
//! the request's state (`is_current`) when they reach the head and dropped
//! then. So cancel and priority change touch no other request. The live
//! counts are exact: a host queue whose last live request leaves is freed
//! with its stale entries, and one with more stale than live entries is
//! compacted, so memory stays proportional to the live requests.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, VecDeque};

use crate::class::Class;
use crate::ids::{PeerId, RequestId};
use crate::keys::HostKey;
use crate::request::RequestPriority;

/// Position inside a peer's queue: enqueue sequence numbers are positive and
/// grow; re-queues at the front take negative numbers that shrink.
pub(crate) type Order = i64;

/// One queue entry. It is current while the request waits in this queue
/// with this order; otherwise it is a leftover, skipped and dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Entry {
    pub(crate) order: Order,
    pub(crate) id: RequestId,
}

/// One peer's waiting requests of one priority to one host.
#[derive(Debug, Default)]
struct HostQueue {
    /// Entries in ascending order: enqueues arrive at the back (their
    /// order is the largest yet), re-queues at the front (the smallest).
    run: VecDeque<Entry>,
    /// Entries that arrived out of order (a priority change moves a request
    /// here with its old order), smallest first.
    moved: BinaryHeap<Reverse<Entry>>,
    /// Requests waiting here (the entries minus the leftovers).
    live: usize,
    /// The order this queue is filed under in its peer queue's `heads`: at
    /// most the order of its first current entry.
    head: Order,
}

impl HostQueue {
    fn entries(&self) -> usize {
        self.run.len() + self.moved.len()
    }

    fn push(&mut self, e: Entry) {
        match (self.run.front(), self.run.back()) {
            (_, Some(back)) if e.order > back.order => self.run.push_back(e),
            (Some(front), _) if e.order < front.order => self.run.push_front(e),
            (None, _) => self.run.push_back(e),
            _ => self.moved.push(Reverse(e)),
        }
    }

    /// The smallest entry, current or not.
    fn first(&self) -> Option<Entry> {
        match (self.run.front(), self.moved.peek()) {
            (Some(&a), Some(&Reverse(b))) => Some(a.min(b)),
            (a, b) => a.copied().or(b.map(|r| r.0)),
        }
    }

    fn pop_first(&mut self) -> Option<Entry> {
        let e = self.first()?;
        if self.run.front() == Some(&e) {
            self.run.pop_front()
        } else {
            self.moved.pop().map(|r| r.0)
        }
    }

    /// Drop leftovers from the head; the first current entry.
    fn clean_head(&mut self, is_current: &impl Fn(Entry) -> bool) -> Option<Entry> {
        while let Some(e) = self.first() {
            if is_current(e) {
                return Some(e);
            }
            self.pop_first();
        }
        None
    }

    /// Keep only current entries (once each), in order.
    fn compact(&mut self, is_current: &impl Fn(Entry) -> bool) {
        let mut all: Vec<Entry> =
            self.run.drain(..).chain(self.moved.drain().map(|r| r.0)).filter(|&e| is_current(e)).collect();
        all.sort_unstable();
        all.dedup();
        self.run = all.into();
        self.run.shrink_to_fit();
        self.moved = BinaryHeap::new();
    }
}

/// One peer's waiting requests of one priority.
#[derive(Debug, Default)]
struct PeerQueue {
    hosts: BTreeMap<HostKey, HostQueue>,
    /// Each host queue filed under its `head`: iterating gives hosts in the
    /// order of their first request (after dropping leftovers).
    heads: BTreeSet<(Order, HostKey)>,
    live: usize,
}

impl PeerQueue {
    fn refile(&mut self, host: HostKey, head: Order) {
        let q = self.hosts.get_mut(&host).expect("a filed host queue exists");
        if q.head != head {
            self.heads.remove(&(q.head, host));
            self.heads.insert((head, host));
            q.head = head;
        }
    }

    /// The first current request whose host `blocked` does not refuse.
    fn pick(
        &mut self,
        blocked: &impl Fn(HostKey) -> bool,
        is_current: &impl Fn(Entry) -> bool,
    ) -> Option<(HostKey, Entry)> {
        let mut from = None;
        loop {
            let range = match from {
                None => self.heads.range(..),
                Some(f) => self.heads.range((std::ops::Bound::Excluded(f), std::ops::Bound::Unbounded)),
            };
            let &(order, host) = range.clone().find(|&&(_, h)| !blocked(h))?;
            let q = self.hosts.get_mut(&host).expect("a filed host queue exists");
            let first = q.clean_head(is_current).expect("a host queue with live requests has a current entry");
            if first.order == order {
                return Some((host, first));
            }
            // Filed too early (its head left): file it where it is now and
            // look again from where this one was.
            self.refile(host, first.order);
            from = Some((order, host));
        }
    }
}

/// The round-robin ring of one class.
#[derive(Debug, Default)]
struct Ring {
    /// Peers with at least one waiting request in this class, in creation order.
    active: BTreeSet<PeerId>,
    /// The next peer to serve is the first active one created at or after
    /// this generation.
    cursor: u64,
}

impl Ring {
    /// Active peers in service order, starting at the cursor and wrapping.
    fn service_order(&self) -> impl Iterator<Item = PeerId> + '_ {
        let from = PeerId { generation: self.cursor, index: 0 };
        self.active.range(from..).chain(self.active.range(..from)).copied()
    }
}

/// Every waiting request, by class, peer, priority and host.
#[derive(Debug, Default)]
pub(crate) struct Waiting {
    /// Per peer (by its key), the queues of its High and Low requests.
    queues: Vec<[PeerQueue; 2]>,
    rings: [Ring; 4],
}

/// Where a waiting request is filed.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Place {
    pub(crate) peer: PeerId,
    pub(crate) peer_priority: RequestPriority,
    pub(crate) priority: RequestPriority,
    pub(crate) host: HostKey,
}

impl Place {
    fn class(self) -> Class {
        Class::of(self.peer_priority, self.priority)
    }
}

impl Waiting {
    fn queue(&mut self, peer: PeerId, priority: RequestPriority) -> &mut PeerQueue {
        let i = peer.index as usize;
        if self.queues.len() <= i {
            self.queues.resize_with(i + 1, Default::default);
        }
        &mut self.queues[i][priority as usize]
    }

    /// File a request at `place` under `order`.
    pub(crate) fn insert(&mut self, place: Place, order: Order, id: RequestId) {
        let pq = self.queue(place.peer, place.priority);
        pq.live += 1;
        let q = pq.hosts.entry(place.host).or_insert_with(|| HostQueue { head: order, ..HostQueue::default() });
        q.live += 1;
        q.push(Entry { order, id });
        if q.live == 1 {
            q.head = order;
            pq.heads.insert((order, place.host));
        } else if order < q.head {
            pq.refile(place.host, order);
        }
        if pq.live == 1 {
            self.rings[place.class().index()].active.insert(place.peer);
        }
    }

    /// A request filed at `place` left without being started (cancelled,
    /// moved); its entry stays behind as a leftover.
    pub(crate) fn remove(&mut self, place: Place, is_current: impl Fn(Entry) -> bool) {
        let pq = self.queue(place.peer, place.priority);
        pq.live -= 1;
        let q = pq.hosts.get_mut(&place.host).expect("the request's host queue exists");
        q.live -= 1;
        if q.live == 0 {
            let head = q.head;
            pq.hosts.remove(&place.host);
            pq.heads.remove(&(head, place.host));
        } else if q.entries() > 2 * q.live + 8 {
            q.compact(&is_current);
            let head = q.first().expect("live entries remain").order;
            pq.refile(place.host, head);
        }
        if pq.live == 0 {
            self.rings[place.class().index()].active.remove(&place.peer);
        }
    }

    /// The request class `class` would start next: round-robin over its
    /// peers from the cursor, each peer's first current request whose host
    /// `blocked` does not refuse.
    pub(crate) fn pick(
        &mut self,
        class: Class,
        blocked: impl Fn(HostKey) -> bool,
        is_current: impl Fn(Entry) -> bool,
    ) -> Option<(PeerId, RequestId)> {
        let ring = &self.rings[class.index()];
        let priority = class.request() as usize;
        for peer in ring.service_order() {
            let pq = &mut self.queues[peer.index as usize][priority];
            if let Some((_, e)) = pq.pick(&blocked, &is_current) {
                return Some((peer, e.id));
            }
        }
        None
    }

    /// Take the request [`Waiting::pick`] just returned out of its queue to
    /// start it; its peer is served next after it in the class's ring.
    pub(crate) fn take(&mut self, place: Place, id: RequestId, is_current: impl Fn(Entry) -> bool) {
        let pq = self.queue(place.peer, place.priority);
        let q = pq.hosts.get_mut(&place.host).expect("the request's host queue exists");
        let first = q.clean_head(&is_current);
        debug_assert_eq!(first.map(|e| e.id), Some(id), "take follows pick");
        q.pop_first();
        self.remove(place, is_current);
        if let Some(q) = self.queue(place.peer, place.priority).hosts.get(&place.host) {
            // File it under its new first entry (a lower bound: it may be a leftover).
            let head = q.first().map_or(Order::MAX, |e| e.order);
            self.queue(place.peer, place.priority).refile(place.host, head);
        }
        self.rings[place.class().index()].cursor = place.peer.generation.saturating_add(1);
    }

    /// `peer` goes next in `class` (it re-queued a request admitted earlier).
    pub(crate) fn serve_next(&mut self, class: Class, peer: PeerId) {
        self.rings[class.index()].cursor = peer.generation;
    }

    /// The peer's priority changed: its waiting requests move to the
    /// classes of the new priority, keeping their order.
    pub(crate) fn set_peer_priority(&mut self, peer: PeerId, from: RequestPriority, to: RequestPriority) {
        for priority in [RequestPriority::High, RequestPriority::Low] {
            if self.queue(peer, priority).live > 0 {
                self.rings[Class::of(from, priority).index()].active.remove(&peer);
                self.rings[Class::of(to, priority).index()].active.insert(peer);
            }
        }
    }

    /// Every request of `peer` waiting now (current entries only, each
    /// once, in no particular order).
    pub(crate) fn of_peer(&mut self, peer: PeerId, is_current: impl Fn(Entry) -> bool) -> Vec<RequestId> {
        let mut ids = Vec::new();
        for priority in [RequestPriority::High, RequestPriority::Low] {
            for q in self.queue(peer, priority).hosts.values() {
                ids.extend(q.run.iter().chain(q.moved.iter().map(|r| &r.0)).filter(|&&e| is_current(e)).map(|e| e.id));
            }
        }
        ids.sort_unstable();
        ids.dedup();
        ids
    }

    /// Entries held (current and leftovers) and requests waiting.
    #[cfg(test)]
    pub(crate) fn entries_and_live(&self) -> (usize, usize) {
        let qs = || self.queues.iter().flatten().flat_map(|pq| pq.hosts.values());
        (qs().map(HostQueue::entries).sum(), qs().map(|q| q.live).sum())
    }

    /// Classes with at least one waiting peer.
    pub(crate) fn busy_classes(&self) -> usize {
        self.rings.iter().filter(|r| !r.active.is_empty()).count()
    }

    /// Give back the spare capacity of the queues.
    pub(crate) fn shrink_to_fit(&mut self) {
        while self.queues.last().is_some_and(|[h, l]| h.live == 0 && l.live == 0) {
            self.queues.pop();
        }
        self.queues.shrink_to_fit();
        for pq in self.queues.iter_mut().flatten() {
            for q in pq.hosts.values_mut() {
                q.run.shrink_to_fit();
                q.moved.shrink_to_fit();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::num::NonZeroU64;

    fn id(n: u64) -> RequestId {
        RequestId::new(NonZeroU64::new(n).unwrap())
    }

    #[test]
    fn host_queue_keeps_order_across_front_back_and_moved_entries() {
        let mut q = HostQueue::default();
        for (order, n) in [(10, 1), (12, 2), (-1, 3), (11, 4), (-2, 5), (13, 6)] {
            q.push(Entry { order, id: id(n) });
        }
        let all = |_| true;
        let mut seen = Vec::new();
        while let Some(e) = q.clean_head(&all) {
            seen.push(e.order);
            q.pop_first();
        }
        assert_eq!(seen, vec![-2, -1, 10, 11, 12, 13]);
    }

    #[test]
    fn leftovers_are_skipped_and_compacted_away() {
        let mut q = HostQueue::default();
        for n in 1..=20 {
            q.push(Entry { order: n, id: id(n as u64) });
        }
        let even = |e: Entry| e.order % 2 == 0;
        assert_eq!(q.clean_head(&even).map(|e| e.order), Some(2));
        q.compact(&even);
        assert_eq!(q.entries(), 10, "1 was dropped at the head, the other odd ones by compaction");
        assert_eq!(q.run.iter().map(|e| e.order).collect::<Vec<_>>(), (2..=20).step_by(2).collect::<Vec<_>>());
    }
}
