//! The wait queues: per peer and request priority an ordered queue, per slot
//! a round-robin ring of the peers that have something waiting in it.
//!
//! A slot is (peer priority × request priority), served in the order
//! HighHigh, HighLow, LowHigh, LowLow. Inside a slot the ring serves peers
//! round-robin (in the order the peers were added, starting at a cursor) and each peer's queue
//! FIFO by an order key. Requests keep their order key when they move between
//! slots (priority changes), so a move keeps the original enqueue order;
//! requests re-queued after a backoff or a preemption get a key that sorts
//! before every enqueued one (the front of the queue).
//!
//! Each peer queue is indexed by host as well, so finding the first request
//! whose host is not full skips only full hosts (at most `max_concurrent` of
//! them), never the requests queued behind them.

use std::collections::{BTreeMap, BTreeSet};

use crate::ids::PeerId;

/// Position inside a peer's queue: enqueue sequence numbers are positive and
/// grow; re-queues at the front take negative numbers that shrink.
pub(crate) type Order = i64;

/// Slot index of (peer priority, request priority): 0 HighHigh … 3 LowLow.
pub(crate) const fn slot(peer_priority: usize, request_priority: usize) -> usize {
    peer_priority * 2 + request_priority
}

/// One peer's waiting requests of one request priority.
#[derive(Debug, Default)]
pub(crate) struct PeerQueue {
    /// Every waiting request, by (host, order).
    items: BTreeMap<(u32, Order), u32>,
    /// The first request of each host, by (order, host).
    heads: BTreeSet<(Order, u32)>,
}

impl PeerQueue {
    pub(crate) fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    fn host_head(&self, host: u32) -> Option<Order> {
        self.items.range((host, Order::MIN)..=(host, Order::MAX)).next().map(|(&(_, o), _)| o)
    }

    pub(crate) fn insert(&mut self, host: u32, order: Order, key: u32) {
        let old_head = self.host_head(host);
        let prev = self.items.insert((host, order), key);
        debug_assert!(prev.is_none(), "order keys are unique per host");
        match old_head {
            Some(h) if h < order => {}
            Some(h) => {
                self.heads.remove(&(h, host));
                self.heads.insert((order, host));
            }
            None => {
                self.heads.insert((order, host));
            }
        }
    }

    pub(crate) fn remove(&mut self, host: u32, order: Order) {
        let removed = self.items.remove(&(host, order));
        debug_assert!(removed.is_some(), "removing a request that is not queued");
        if self.heads.remove(&(order, host)) {
            if let Some(next) = self.host_head(host) {
                self.heads.insert((next, host));
            }
        }
    }

    /// The first request (in order) whose host is not full.
    pub(crate) fn first_startable(&self, host_full: impl Fn(u32) -> bool) -> Option<u32> {
        self.heads.iter().find(|&&(_, host)| !host_full(host)).map(|&(order, host)| self.items[&(host, order)])
    }
}

/// The round-robin ring of one slot.
#[derive(Debug, Default)]
pub(crate) struct Ring {
    /// Peers with at least one waiting request in this slot, in creation order.
    active: BTreeSet<PeerId>,
    /// The next peer to serve is the first active one created at or after
    /// this generation.
    cursor: u64,
}

impl Ring {
    pub(crate) fn insert(&mut self, peer: PeerId) {
        self.active.insert(peer);
    }

    pub(crate) fn remove(&mut self, peer: PeerId) {
        self.active.remove(&peer);
    }

    /// Active peers in service order, starting at the cursor and wrapping.
    pub(crate) fn service_order(&self) -> impl Iterator<Item = PeerId> + '_ {
        let from = PeerId { generation: self.cursor, index: 0 };
        self.active.range(from..).chain(self.active.range(..from)).copied()
    }

    /// `peer` was just served: the next one after it goes next.
    pub(crate) fn served(&mut self, peer: PeerId) {
        self.cursor = peer.generation.saturating_add(1);
    }

    /// `peer` goes next (it re-queued a request that was admitted earlier).
    pub(crate) fn serve_next(&mut self, peer: PeerId) {
        self.cursor = peer.generation;
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.active.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_track_the_first_request_of_each_host() {
        let mut q = PeerQueue::default();
        q.insert(7, 10, 100);
        q.insert(8, 11, 101);
        q.insert(7, 12, 102);
        assert_eq!(q.first_startable(|_| false), Some(100));
        assert_eq!(q.first_startable(|h| h == 7), Some(101));
        q.insert(7, -1, 103); // front of the queue
        assert_eq!(q.first_startable(|_| false), Some(103));
        q.remove(7, -1);
        q.remove(7, 10);
        assert_eq!(q.first_startable(|h| h == 8), Some(102));
        q.remove(8, 11);
        q.remove(7, 12);
        assert!(q.is_empty());
        assert!(q.heads.is_empty());
        assert_eq!(q.first_startable(|_| false), None);
    }

    #[test]
    fn ring_wraps_from_the_cursor() {
        let peer = |generation| PeerId { generation, index: 0 };
        let gens = |r: &Ring| r.service_order().map(|p| p.generation).collect::<Vec<_>>();
        let mut r = Ring::default();
        for g in [1, 4, 9] {
            r.insert(peer(g));
        }
        r.served(peer(4));
        assert_eq!(gens(&r), vec![9, 1, 4]);
        r.serve_next(peer(1));
        assert_eq!(gens(&r), vec![1, 4, 9]);
        r.served(peer(9));
        assert_eq!(gens(&r), vec![1, 4, 9]);
    }
}
