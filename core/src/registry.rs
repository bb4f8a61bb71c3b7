//! Peers and groups: who may enqueue, under which priority, and which
//! requests a group cancel or a peer removal ends.

use std::collections::BTreeSet;

use crate::bandwidth::Bandwidth;
use crate::error::EnqueueError;
use crate::ids::{GroupId, PeerId, RequestId};
use crate::keys::{GroupKey, Key, PeerKey, Table};
use crate::request::RequestPriority;

#[derive(Debug)]
pub(crate) struct Peer {
    pub(crate) id: PeerId,
    pub(crate) priority: RequestPriority,
    /// The rate of its transfers, learnt while they run.
    pub(crate) bandwidth: Bandwidth,
    /// Its live groups, freed with it.
    groups: BTreeSet<GroupKey>,
}

/// A group's requests, in acceptance (= id) order. Ended requests are
/// dropped lazily: at the group's last live request, or when they
/// outnumber the live ones.
#[derive(Debug)]
struct Group {
    generation: u64,
    peer: PeerKey,
    members: Vec<RequestId>,
    live: usize,
}

/// How a group named in an enqueue stands.
pub(crate) enum GroupState {
    None,
    Live(GroupKey),
    Cancelled,
}

/// The live peers and groups, with generational ids that never alias.
#[derive(Debug)]
pub(crate) struct Registry {
    peers: Table<PeerKey, Peer>,
    groups: Table<GroupKey, Group>,
    next_generation: u64,
}

impl Default for Registry {
    fn default() -> Self {
        Self { peers: Table::default(), groups: Table::default(), next_generation: 1 }
    }
}

impl Registry {
    fn generation(&mut self) -> u64 {
        let g = self.next_generation;
        self.next_generation += 1;
        g
    }

    pub(crate) fn add_peer(&mut self, priority: RequestPriority) -> PeerId {
        let generation = self.generation();
        let index = self.peers.vacant_key().index() as u32;
        let id = PeerId { index, generation };
        self.peers.insert(Peer { id, priority, bandwidth: Bandwidth::default(), groups: BTreeSet::new() });
        id
    }

    /// The key of a live peer.
    pub(crate) fn peer_key(&self, peer: PeerId) -> Option<PeerKey> {
        let key = PeerKey::from_index(peer.index as usize);
        self.peers.get(key).filter(|p| p.id == peer).map(|_| key)
    }

    pub(crate) fn peer(&self, key: PeerKey) -> &Peer {
        &self.peers[key]
    }

    pub(crate) fn peer_mut(&mut self, key: PeerKey) -> &mut Peer {
        &mut self.peers[key]
    }

    /// Set a peer's priority; returns the old one.
    pub(crate) fn set_priority(&mut self, key: PeerKey, p: RequestPriority) -> RequestPriority {
        std::mem::replace(&mut self.peers[key].priority, p)
    }

    /// Forget a peer (its requests have ended) and its groups.
    pub(crate) fn remove_peer(&mut self, key: PeerKey) {
        for g in self.peers.remove(key).groups {
            self.groups.remove(g);
        }
    }

    /// A new group of `peer`; for a dead peer, a dead group.
    pub(crate) fn new_group(&mut self, peer: PeerId) -> GroupId {
        let generation = self.generation();
        let Some(pk) = self.peer_key(peer) else {
            return GroupId { peer, index: u32::MAX, generation };
        };
        let key = self.groups.insert(Group { generation, peer: pk, members: Vec::new(), live: 0 });
        self.peers[pk].groups.insert(key);
        GroupId { peer, index: key.index() as u32, generation }
    }

    /// The key of a live group of a live peer.
    pub(crate) fn group_key(&self, group: GroupId) -> Option<GroupKey> {
        self.peer_key(group.peer)?;
        let key = GroupKey::from_index(group.index as usize);
        self.groups.get(key).filter(|g| g.generation == group.generation).map(|_| key)
    }

    /// How `group`, named by an enqueue of `peer`, stands.
    pub(crate) fn classify(&self, peer: PeerId, group: Option<GroupId>) -> Result<GroupState, EnqueueError> {
        let Some(g) = group else { return Ok(GroupState::None) };
        if g.peer != peer || g.generation >= self.next_generation {
            return Err(EnqueueError::UnknownGroup);
        }
        match self.group_key(g) {
            Some(key) => Ok(GroupState::Live(key)),
            // Groups of a live peer are only freed by cancelling them.
            None => Ok(GroupState::Cancelled),
        }
    }

    /// Free a cancelled group (its requests have ended).
    pub(crate) fn remove_group(&mut self, key: GroupKey) {
        let g = self.groups.remove(key);
        self.peers[g.peer].groups.remove(&key);
    }

    /// A request joined the group.
    pub(crate) fn join(&mut self, key: GroupKey, id: RequestId) {
        let g = &mut self.groups[key];
        g.members.push(id);
        g.live += 1;
    }

    /// A request of the group ended; `is_live` tells the others apart.
    pub(crate) fn leave(&mut self, key: GroupKey, is_live: impl Fn(RequestId) -> bool) {
        let g = &mut self.groups[key];
        g.live -= 1;
        if g.live == 0 {
            g.members = Vec::new();
        } else if g.members.len() > 2 * g.live + 8 {
            g.members.retain(|&id| is_live(id));
        }
    }

    /// The group's live requests, in id order.
    pub(crate) fn members(&self, key: GroupKey, is_live: impl Fn(RequestId) -> bool) -> Vec<RequestId> {
        self.groups[key].members.iter().copied().filter(|&id| is_live(id)).collect()
    }

    pub(crate) fn peers(&self) -> usize {
        self.peers.len()
    }

    pub(crate) fn groups(&self) -> usize {
        self.groups.len()
    }
}
