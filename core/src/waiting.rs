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
use std::ops::Bound;

use crate::class::Class;
use crate::ids::{PeerId, RequestId};
use crate::keys::{HostKey, QueueKey, Table};
use crate::request::RequestPriority;

/// Position inside a peer's queue: enqueue sequence numbers are positive and
/// grow; re-queues at the front take negative numbers that shrink. The low
/// [`STAMP_BITS`] bits count the request's moves between queues (see
/// [`moved`]), so an entry left behind by an earlier move never looks like
/// the current one.
pub(crate) type Order = i64;

/// Bits of an [`Order`] that stamp a move.
const STAMP_BITS: u32 = 16;

/// The order of the `n`-th enqueue (positive) or front re-queue (negative).
pub(crate) fn order_of(n: i64) -> Order {
    n.saturating_mul(1 << STAMP_BITS)
}

/// The same position, stamped anew: a request moved to another queue
/// keeps its place among the others.
pub(crate) fn moved(order: Order) -> Order {
    let mask = (1 << STAMP_BITS) - 1;
    (order & !mask) | (order.wrapping_add(1) & mask)
}

/// One queue entry. It is current while the request waits in this queue
/// with this order; otherwise it is a leftover, skipped and dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Entry {
    pub(crate) order: Order,
    pub(crate) id: RequestId,
}

/// One peer's waiting requests of one priority to one host.
#[derive(Debug)]
struct HostQueue {
    peer: PeerId,
    priority: RequestPriority,
    host: HostKey,
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
    fn new(peer: PeerId, priority: RequestPriority, host: HostKey, head: Order) -> Self {
        Self { peer, priority, host, run: VecDeque::new(), moved: BinaryHeap::new(), live: 0, head }
    }

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

    /// Keep only current entries, in place (no allocation: a burst of
    /// cancels compacts without touching the allocator).
    fn compact(&mut self, is_current: &impl Fn(Entry) -> bool) {
        self.run.retain(|&e| is_current(e));
        self.moved.retain(|&Reverse(e)| is_current(e));
    }
}

/// One peer's waiting requests of one priority.
#[derive(Debug, Default)]
struct PeerQueue {
    /// Its host queues, with requests or emptied lately.
    hosts: BTreeMap<HostKey, QueueKey>,
    /// Host queues that emptied, oldest first (some may have been used
    /// again since): at most [`EMPTY_KEPT`] are kept, so a host whose
    /// requests start as soon as they come does not build its queue anew
    /// for each of them.
    emptied: VecDeque<QueueKey>,
    /// Each host queue filed under its `head`: iterating gives hosts in the
    /// order of their first request (after dropping leftovers).
    heads: BTreeSet<(Order, QueueKey)>,
    live: usize,
}

/// The round-robin ring of one class.
#[derive(Debug, Default)]
struct Ring {
    /// Peers with at least one waiting request in this class, in creation
    /// order (a sorted `Vec`: few peers, iterated at every start).
    active: Vec<PeerId>,
    /// The next peer to serve is the first active one created at or after
    /// this generation.
    cursor: u64,
}

impl Ring {
    fn insert(&mut self, peer: PeerId) {
        if let Err(i) = self.active.binary_search(&peer) {
            self.active.insert(i, peer);
        }
    }

    fn remove(&mut self, peer: PeerId) {
        if let Ok(i) = self.active.binary_search(&peer) {
            self.active.remove(i);
        }
    }

    /// Active peers in service order, starting at the cursor and wrapping.
    fn service_order(&self) -> impl Iterator<Item = PeerId> + '_ {
        let at = self.active.partition_point(|p| p.generation < self.cursor);
        let (before, after) = self.active.split_at(at);
        after.iter().chain(before).copied()
    }
}

/// Every waiting request, by class, peer, priority and host.
#[derive(Debug, Default)]
pub(crate) struct Waiting {
    /// Per peer (by the index of its id), its High and Low queues.
    peers: Vec<[PeerQueue; 2]>,
    /// The host queues; a request waiting in one holds its key.
    queues: Table<QueueKey, HostQueue>,
    rings: [Ring; 4],
}

/// Where a request is to be filed.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Place {
    pub(crate) peer: PeerId,
    pub(crate) peer_priority: RequestPriority,
    pub(crate) priority: RequestPriority,
    pub(crate) host: HostKey,
}

impl Waiting {
    fn peer_queue(&mut self, peer: PeerId, priority: RequestPriority) -> &mut PeerQueue {
        let i = peer.index as usize;
        if self.peers.len() <= i {
            self.peers.resize_with(i + 1, Default::default);
        }
        &mut self.peers[i][priority as usize]
    }

    /// File a request at `place` under `order`; returns the key of the
    /// host queue it waits in, which [`Waiting::remove`] and
    /// [`Waiting::take`] take.
    pub(crate) fn insert(&mut self, place: Place, order: Order, id: RequestId) -> QueueKey {
        self.peer_queue(place.peer, place.priority);
        let pq = &mut self.peers[place.peer.index as usize][place.priority as usize];
        let key = match pq.hosts.get(&place.host) {
            Some(&key) if self.queues[key].live == 0 => {
                self.queues[key].head = order;
                pq.heads.insert((order, key));
                key
            }
            Some(&key) => key,
            None => {
                let key = self.queues.insert(HostQueue::new(place.peer, place.priority, place.host, order));
                pq.hosts.insert(place.host, key);
                pq.heads.insert((order, key));
                key
            }
        };
        let q = &mut self.queues[key];
        q.live += 1;
        q.push(Entry { order, id });
        if order < q.head {
            pq.heads.remove(&(q.head, key));
            pq.heads.insert((order, key));
            q.head = order;
        }
        pq.live += 1;
        if pq.live == 1 {
            self.rings[Class::of(place.peer_priority, place.priority).index()].insert(place.peer);
        }
        key
    }

    /// A request waiting in `key` left without being started (cancelled,
    /// moved); its entry stays behind as a leftover. `peer_priority` is its
    /// peer's priority now.
    pub(crate) fn remove(&mut self, key: QueueKey, peer_priority: RequestPriority, is_current: impl Fn(Entry) -> bool) {
        let q = &mut self.queues[key];
        let (peer, priority) = (q.peer, q.priority);
        let pq = &mut self.peers[peer.index as usize][priority as usize];
        q.live -= 1;
        if q.live == 0 {
            // Kept for the host's next request, among the last few emptied.
            pq.heads.remove(&(q.head, key));
            if q.run.capacity() + q.moved.capacity() > 64 {
                // What a burst grew is given back.
                q.run = VecDeque::new();
                q.moved = BinaryHeap::new();
            }
            q.run.clear();
            q.moved.clear();
            pq.emptied.push_back(key);
            if pq.emptied.len() > EMPTY_KEPT {
                let old = pq.emptied.pop_front().expect("non-empty");
                free_if_empty(&mut self.queues, pq, old, peer, priority);
            }
        } else if q.entries() > 2 * q.live + 8 {
            // Leftovers at the head (requests that left in queue order, as
            // ageing promotes them) go cheaply; a full pass only when the
            // rest still outnumber the live entries.
            q.clean_head(&is_current);
            if q.entries() > 2 * q.live + 8 {
                q.compact(&is_current);
            }
            let head = q.first().expect("live entries remain").order;
            refile(pq, q, key, head);
        }
        pq.live -= 1;
        if pq.live == 0 {
            self.rings[Class::of(peer_priority, priority).index()].remove(peer);
        }
    }

    /// The request class `class` would start next: round-robin over its
    /// peers from the cursor, each peer's first current request whose host
    /// `blocked` does not refuse. Returns it and the queue it waits in.
    pub(crate) fn pick(
        &mut self,
        class: Class,
        blocked: impl Fn(HostKey) -> bool,
        is_current: impl Fn(Entry) -> bool,
    ) -> Option<(QueueKey, RequestId)> {
        let priority = class.request() as usize;
        for peer in self.rings[class.index()].service_order() {
            let pq = &mut self.peers[peer.index as usize][priority];
            let mut from = None;
            // Hosts in the order of their first request; a host queue filed
            // too early (its head left) is filed again where it is now.
            while let Some(&(order, key)) = match from {
                None => pq.heads.range(..),
                Some(f) => pq.heads.range((Bound::Excluded(f), Bound::Unbounded)),
            }
            .find(|&&(_, key)| !blocked(self.queues[key].host))
            {
                let q = &mut self.queues[key];
                let first = q.clean_head(&is_current).expect("a host queue with live requests has a current entry");
                if first.order == order {
                    return Some((key, first.id));
                }
                refile(pq, q, key, first.order);
                from = Some((order, key));
            }
        }
        None
    }

    /// Take the request [`Waiting::pick`] just returned (waiting in `key`)
    /// out of its queue to start it; its peer is served after it in the ring.
    pub(crate) fn take(&mut self, key: QueueKey, peer_priority: RequestPriority, is_current: impl Fn(Entry) -> bool) {
        let q = &mut self.queues[key];
        let taken = q.pop_first();
        debug_assert!(taken.is_some_and(&is_current), "take follows pick");
        let (peer, priority) = (q.peer, q.priority);
        if q.live > 1 {
            // File it under its new first entry (a lower bound: it may be a leftover).
            let head = q.first().map_or(Order::MAX, |e| e.order);
            let pq = &mut self.peers[peer.index as usize][priority as usize];
            refile(pq, q, key, head);
        }
        self.remove(key, peer_priority, is_current);
        self.rings[Class::of(peer_priority, priority).index()].cursor = peer.generation.saturating_add(1);
    }

    /// `peer` goes next in `class` (it re-queued a request admitted earlier).
    pub(crate) fn serve_next(&mut self, class: Class, peer: PeerId) {
        self.rings[class.index()].cursor = peer.generation;
    }

    /// The peer's priority changed: its waiting requests move to the
    /// classes of the new priority, keeping their order.
    pub(crate) fn set_peer_priority(&mut self, peer: PeerId, from: RequestPriority, to: RequestPriority) {
        for priority in [RequestPriority::High, RequestPriority::Low] {
            if self.peer_queue(peer, priority).live > 0 {
                self.rings[Class::of(from, priority).index()].remove(peer);
                self.rings[Class::of(to, priority).index()].insert(peer);
            }
        }
    }

    /// The peer is gone (its requests have ended): free its emptied queues.
    pub(crate) fn forget_peer(&mut self, peer: PeerId) {
        for priority in [RequestPriority::High, RequestPriority::Low] {
            let pq = std::mem::take(self.peer_queue(peer, priority));
            debug_assert_eq!(pq.live, 0, "a removed peer has nothing waiting");
            for key in pq.hosts.into_values() {
                self.queues.remove(key);
            }
        }
    }

    /// The requests of `peer` waiting now (current entries only; a
    /// request may appear twice, in no particular order: the caller sorts).
    pub(crate) fn of_peer(&self, peer: PeerId, is_current: impl Fn(Entry) -> bool) -> Vec<RequestId> {
        let Some(both) = self.peers.get(peer.index as usize) else { return Vec::new() };
        let queues = both.iter().flat_map(|pq| pq.hosts.values()).map(|&key| &self.queues[key]);
        let entries = queues.flat_map(|q| q.run.iter().chain(q.moved.iter().map(|r| &r.0)));
        entries.filter(|&&e| is_current(e)).map(|e| e.id).collect()
    }

    /// Classes with at least one waiting peer.
    pub(crate) fn busy_classes(&self) -> usize {
        self.rings.iter().filter(|r| !r.active.is_empty()).count()
    }

    /// Entries held (current and leftovers), requests waiting, host
    /// queues held (emptied ones kept for reuse included).
    pub(crate) fn sizes(&self) -> (usize, usize, usize) {
        let qs = || self.queues.values();
        (qs().map(HostQueue::entries).sum(), qs().map(|q| q.live).sum(), self.queues.len())
    }

    /// Give back the spare capacity of the queues.
    pub(crate) fn shrink_to_fit(&mut self) {
        for i in 0..self.peers.len() {
            for priority in [RequestPriority::High, RequestPriority::Low] {
                let pq = &mut self.peers[i][priority as usize];
                for key in std::mem::take(&mut pq.emptied) {
                    let peer = match self.queues.get(key) {
                        Some(q) => q.peer,
                        None => continue,
                    };
                    free_if_empty(&mut self.queues, pq, key, peer, priority);
                }
            }
        }
        while self.peers.last().is_some_and(|[h, l]| h.live == 0 && l.live == 0) {
            self.peers.pop();
        }
        self.peers.shrink_to_fit();
        self.queues.shrink_to_fit();
        for key in self.queues.iter().map(|(k, _)| k).collect::<Vec<_>>() {
            let q = &mut self.queues[key];
            q.run.shrink_to_fit();
            q.moved.shrink_to_fit();
        }
    }
}

/// Emptied host queues kept per peer and priority.
const EMPTY_KEPT: usize = 16;

/// Free host queue `key` of `pq` (of `peer` and `priority`) if it is still
/// there and empty (it may have been used again, or freed and its key reused).
fn free_if_empty(
    queues: &mut Table<QueueKey, HostQueue>,
    pq: &mut PeerQueue,
    key: QueueKey,
    peer: PeerId,
    priority: RequestPriority,
) {
    if let Some(q) = queues.get(key).filter(|q| q.live == 0 && q.peer == peer && q.priority == priority) {
        if pq.hosts.get(&q.host) == Some(&key) {
            pq.hosts.remove(&q.host);
            queues.remove(key);
        }
    }
}

/// File host queue `q` (key `key`) of `pq` under `head`.
fn refile(pq: &mut PeerQueue, q: &mut HostQueue, key: QueueKey, head: Order) {
    if q.head != head {
        pq.heads.remove(&(q.head, key));
        pq.heads.insert((head, key));
        q.head = head;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::Key;
    use std::num::NonZeroU64;

    fn id(n: u64) -> RequestId {
        RequestId::new(NonZeroU64::new(n).unwrap())
    }

    #[test]
    fn host_queue_keeps_order_across_front_back_and_moved_entries() {
        let mut q = HostQueue::new(PeerId { generation: 1, index: 0 }, RequestPriority::Low, HostKey::from_index(0), 0);
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
    fn a_moved_order_keeps_its_place_and_differs() {
        for n in [1, 2, 1000, -1, -2, -1000] {
            let o = order_of(n);
            let m = moved(o);
            assert_ne!(m, o);
            assert!(m > order_of(n - 1) && m < order_of(n + 1), "{n}");
            // Stamps wrap inside their bits.
            let far = (0..(1 << STAMP_BITS)).fold(o, |o, _| moved(o));
            assert_eq!(far, o);
        }
    }

    #[test]
    fn leftovers_are_skipped_and_compacted_away() {
        let mut q = HostQueue::new(PeerId { generation: 1, index: 0 }, RequestPriority::Low, HostKey::from_index(0), 0);
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
