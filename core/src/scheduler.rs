//! The [`Scheduler`]: the sans-IO state machine itself.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::{Duration, Instant};

use slab::Slab;

use crate::config::Config;
use crate::error::{ConfigError, EnqueueError, NetError};
use crate::events::{CancelReason, DownloaderEvent, Output};
use crate::hosts::Hosts;
use crate::ids::{GroupId, PeerId, RequestId, MAX_LIVE, MAX_SEQ};
use crate::list::{Link, List};
use crate::queue::{slot, Order, PeerQueue, Ring};
use crate::request::{FetchCmd, Request, RequestMethod, RequestPriority};
use crate::retry::{backoff, Rng};
use crate::timers::{TimerKind, Timers};
use url::Url;

/// Completed attempts smaller than this do not feed the bandwidth estimate.
const MIN_BANDWIDTH_SAMPLE: u64 = 16 * 1024;
/// Weight of a new sample in the bandwidth EWMA.
const BANDWIDTH_ALPHA: f64 = 0.3;

/// Where a live request is.
#[derive(Debug)]
enum State {
    /// In its peer's queue. Its ageing deadline, when armed, follows from
    /// its fields (see `Scheduler::age_deadline`).
    Queued,
    /// Waiting out a retry backoff until `until`.
    Backoff { until: Instant },
    /// Transferring. Boxed: only `max_concurrent` requests run, while
    /// millions may wait, so waiting requests stay small.
    Running(Box<Attempt>),
}

/// The running attempt of a request.
#[derive(Debug)]
struct Attempt {
    start: Instant,
    /// Start order, to find the most recently started preemption victim.
    start_seq: u64,
    bytes: u64,
    first_byte: bool,
    soft: Option<Instant>,
    idle: Option<Instant>,
    hard: Option<Instant>,
}

/// Everything about one live request, in one slab entry.
#[derive(Debug)]
struct Req {
    id: RequestId,
    peer: u32,
    group: Option<u32>,
    host: u32,
    method: RequestMethod,
    priority: RequestPriority,
    /// The URL's serialization; parsed again at each start, which keeps the
    /// millions of waiting requests small (`Url` is 88 bytes inline).
    url: Box<str>,
    /// Whether the request asked for a range, and which (`range_end` is
    /// `u64::MAX` for an open end): 17 bytes instead of 32.
    ranged: bool,
    range_start: u64,
    range_end: u64,
    order: Order,
    /// When it last became ready to start (enqueue, backoff end, preemption).
    ready_at: Instant,
    /// When its priority last changed, for ageing.
    priority_changed_at: Option<Instant>,
    /// Bytes delivered across all attempts.
    delivered: u64,
    /// Starts so far.
    attempt: u32,
    /// Retries used (preemptions do not count).
    retries: u32,
    /// Redirects followed.
    redirects: u32,
    state: State,
    peer_link: Link,
    group_link: Link,
}

impl Req {
    /// The requested range.
    fn range(&self) -> Option<(u64, Option<u64>)> {
        self.ranged.then(|| (self.range_start, (self.range_end != u64::MAX).then_some(self.range_end)))
    }

    /// A bounded range whose every byte has been delivered.
    fn fully_delivered(&self) -> bool {
        match self.range() {
            Some((start, Some(end))) => self.delivered > end - start,
            _ => false,
        }
    }

    /// The range still to fetch: the original one minus what was delivered.
    fn remaining_range(&self) -> Option<(u64, Option<u64>)> {
        match (self.range(), self.delivered) {
            (range, 0) => range,
            (None, d) => Some((d, None)),
            (Some((start, end)), d) => Some((start.saturating_add(d), end)),
        }
    }

    fn attempt(&self) -> Option<&Attempt> {
        match &self.state {
            State::Running(a) => Some(a),
            _ => None,
        }
    }
}

fn peer_link(r: &mut Req) -> &mut Link {
    &mut r.peer_link
}

fn group_link(r: &mut Req) -> &mut Link {
    &mut r.group_link
}

#[derive(Debug)]
struct Peer {
    id: PeerId,
    priority: RequestPriority,
    /// Waiting requests by request priority.
    queues: [PeerQueue; 2],
    /// Every live request of the peer, in id order.
    members: List,
    /// Its live groups.
    groups: BTreeSet<u32>,
}

#[derive(Debug)]
struct Group {
    generation: u64,
    peer: u32,
    members: List,
}

/// How a group named in an enqueue stands.
enum GroupState {
    None,
    Live(u32),
    Cancelled,
}

/// The sans-IO download scheduler. See the [crate docs](crate) for the run loop.
///
/// Every input takes the caller's `now`; time going backwards is clamped to
/// the latest `now` seen. Inputs naming unknown, finished or stale ids are
/// ignored. Nothing here panics on caller input.
#[derive(Debug)]
pub struct Scheduler {
    cfg: Config,
    /// The latest `now` seen.
    now: Option<Instant>,
    reqs: Slab<Req>,
    peers: Slab<Peer>,
    groups: Slab<Group>,
    hosts: Hosts,
    slots: [Ring; 4],
    timers: Timers,
    out: VecDeque<Output>,
    /// Running requests by start order.
    running: BTreeMap<u64, u32>,
    next_seq: u64,
    next_front: Order,
    next_generation: u64,
    next_start: u64,
    low_in_flight: usize,
    rng: Rng,
    bandwidth: Option<f64>,
    shut_down: bool,
}

impl Scheduler {
    /// A scheduler with this config.
    ///
    /// # Errors
    /// [`ConfigError`] when the config cannot work, e.g. `max_concurrent == 0`.
    pub fn try_new(config: Config) -> Result<Self, ConfigError> {
        config.validate()?;
        Ok(Self {
            rng: Rng::new(config.seed),
            cfg: config,
            now: None,
            reqs: Slab::new(),
            peers: Slab::new(),
            groups: Slab::new(),
            hosts: Hosts::default(),
            slots: Default::default(),
            timers: Timers::default(),
            out: VecDeque::new(),
            running: BTreeMap::new(),
            next_seq: 1,
            next_front: -1,
            next_generation: 1,
            next_start: 0,
            low_in_flight: 0,
            bandwidth: None,
            shut_down: false,
        })
    }

    /// A scheduler with this config.
    ///
    /// # Panics
    /// With the [`ConfigError`]'s message when the config cannot work; use
    /// [`Scheduler::try_new`] to handle that as an error.
    #[must_use]
    pub fn new(config: Config) -> Self {
        match Self::try_new(config) {
            Ok(s) => s,
            Err(e) => panic!("{e}"),
        }
    }

    /// The config this scheduler runs with.
    #[must_use]
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// Clamp `now` to the latest time seen and remember it.
    fn tick(&mut self, now: Instant) -> Instant {
        let now = match self.now {
            Some(last) if last > now => last,
            _ => now,
        };
        self.now = Some(now);
        now
    }

    // ----- peers and groups -------------------------------------------------

    fn generation(&mut self) -> u64 {
        let g = self.next_generation;
        self.next_generation += 1;
        g
    }

    fn peer_index(&self, peer: PeerId) -> Option<u32> {
        match self.peers.get(peer.index as usize) {
            Some(p) if p.id == peer => Some(peer.index),
            _ => None,
        }
    }

    /// Register a peer: a client with its own priority and event scope.
    pub fn add_peer(&mut self, priority: RequestPriority) -> PeerId {
        let generation = self.generation();
        let entry = self.peers.vacant_entry();
        let id = PeerId { index: entry.key() as u32, generation };
        entry.insert(Peer {
            id,
            priority,
            queues: Default::default(),
            members: List::default(),
            groups: BTreeSet::new(),
        });
        id
    }

    /// The peer's priority, or `None` for an unknown or removed peer.
    #[must_use]
    pub fn peer_priority(&self, peer: PeerId) -> Option<RequestPriority> {
        self.peer_index(peer).map(|p| self.peers[p as usize].priority)
    }

    /// Change a peer's priority. Its waiting requests move to the slots of the
    /// new priority keeping their order; no events (request priorities do
    /// not change). Running requests are judged by it for preemption from
    /// now on.
    pub fn set_peer_priority(&mut self, peer: PeerId, p: RequestPriority, now: Instant) {
        self.tick(now);
        let Some(pi) = self.peer_index(peer) else { return };
        let old = self.peers[pi as usize].priority;
        if old == p {
            return;
        }
        for q in 0..2 {
            if !self.peers[pi as usize].queues[q].is_empty() {
                self.slots[slot(old.index(), q)].remove(peer);
                self.slots[slot(p.index(), q)].insert(peer);
            }
        }
        self.peers[pi as usize].priority = p;
    }

    /// Remove a peer: each of its live requests ends with
    /// [`CancelReason::PeerCancel`] (in id order; running ones are aborted
    /// first), its groups are freed, and its id is dead for good.
    pub fn remove_peer(&mut self, peer: PeerId, now: Instant) {
        self.tick(now);
        let Some(pi) = self.peer_index(peer) else { return };
        let keys = self.peers[pi as usize].members.keys(&mut self.reqs, peer_link);
        for key in keys {
            self.cancel_key(key, CancelReason::PeerCancel);
        }
        let removed = self.peers.remove(pi as usize);
        for g in removed.groups {
            self.groups.remove(g as usize);
        }
    }

    /// Open a new cancellation group (an epoch) for `peer`.
    ///
    /// For an unknown or removed peer this returns a dead group: enqueueing
    /// with it fails with [`EnqueueError::UnknownPeer`], cancelling it does nothing.
    pub fn new_group(&mut self, peer: PeerId) -> GroupId {
        let generation = self.generation();
        let Some(pi) = self.peer_index(peer) else {
            return GroupId { peer, index: u32::MAX, generation };
        };
        let index = self.groups.insert(Group { generation, peer: pi, members: List::default() }) as u32;
        self.peers[pi as usize].groups.insert(index);
        GroupId { peer, index, generation }
    }

    fn group_index(&self, group: GroupId) -> Option<u32> {
        self.peer_index(group.peer)?;
        match self.groups.get(group.index as usize) {
            Some(g) if g.generation == group.generation => Some(group.index),
            _ => None,
        }
    }

    /// Cancel a group: each of its live requests ends with
    /// [`CancelReason::EpochCancel`] (in id order; running ones are aborted
    /// first). The group's memory is freed; later enqueues into it end at once
    /// with [`CancelReason::BeforeStart`]. Cancelling it again does nothing.
    pub fn cancel_group(&mut self, group: GroupId, now: Instant) {
        self.tick(now);
        let Some(gi) = self.group_index(group) else { return };
        let keys = self.groups[gi as usize].members.keys(&mut self.reqs, group_link);
        for key in keys {
            self.cancel_key(key, CancelReason::EpochCancel);
        }
        let g = self.groups.remove(gi as usize);
        self.peers[g.peer as usize].groups.remove(&gi);
    }

    // ----- requests -----------------------------------------------------------

    fn live_key(&self, id: RequestId) -> Option<u32> {
        match self.reqs.get(id.key()) {
            Some(r) if r.id == id => Some(id.key() as u32),
            _ => None,
        }
    }

    fn classify_group(&self, peer: PeerId, group: Option<GroupId>) -> Result<GroupState, EnqueueError> {
        let Some(g) = group else { return Ok(GroupState::None) };
        if g.peer != peer || g.generation >= self.next_generation {
            return Err(EnqueueError::UnknownGroup);
        }
        match self.groups.get(g.index as usize) {
            Some(live) if live.generation == g.generation => Ok(GroupState::Live(g.index)),
            // Groups of a live peer are only freed by cancelling them.
            _ => Ok(GroupState::Cancelled),
        }
    }

    /// Accept a request for `peer`. It is queued at once; whether it starts is
    /// decided at the next [`Scheduler::poll_output`]. Emits `RequestEnqueued`.
    ///
    /// A request into an already-cancelled group is accepted and ends at once
    /// with [`CancelReason::BeforeStart`].
    ///
    /// # Errors
    /// Checked in this order: [`EnqueueError::ShutDown`],
    /// [`EnqueueError::UnknownPeer`], [`EnqueueError::UnknownGroup`] (a group
    /// of another peer), [`EnqueueError::InvalidRequest`] (scheme not
    /// http/https, no host, range start past its end), then
    /// [`EnqueueError::QueueFull`] (`max_queued` requests waiting, or the
    /// scheduler's capacity of 2²⁴ live requests reached). A refused
    /// enqueue uses no id and emits nothing.
    pub fn enqueue(&mut self, peer: PeerId, req: Request, now: Instant) -> Result<RequestId, EnqueueError> {
        let now = self.tick(now);
        if self.shut_down {
            return Err(EnqueueError::ShutDown);
        }
        let pi = self.peer_index(peer).ok_or(EnqueueError::UnknownPeer)?;
        let group = self.classify_group(peer, req.group)?;
        let (host_name, port) = validate(&req)?;
        let cancelled = matches!(group, GroupState::Cancelled);
        let full = self.cfg.max_queued.is_some_and(|max| self.queued() >= max);
        if (full && !cancelled) || self.reqs.len() >= MAX_LIVE || self.next_seq > MAX_SEQ {
            return Err(EnqueueError::QueueFull);
        }

        let id = RequestId::compose(self.next_seq, self.reqs.vacant_key());
        let order = self.next_seq as Order;
        self.next_seq += 1;
        let gi = match group {
            GroupState::Cancelled => {
                let Request { url, method, priority, .. } = req;
                let enqueued = DownloaderEvent::RequestEnqueued { request_id: id, url, method, priority };
                let cancelled = DownloaderEvent::RequestCancelled {
                    request_id: id,
                    reason: CancelReason::BeforeStart,
                    bytes_transferred: 0,
                };
                self.out.push_back(Output::Event(peer, enqueued));
                self.out.push_back(Output::Event(peer, cancelled));
                return Ok(id);
            }
            GroupState::Live(g) => Some(g),
            GroupState::None => None,
        };
        let host = self.hosts.acquire(host_name, port);
        let Request { url, method, priority, range, .. } = req;
        // One copy of the URL for the request's state; the event takes the caller's.
        let stored: Box<str> = url.as_str().into();
        self.out
            .push_back(Output::Event(peer, DownloaderEvent::RequestEnqueued { request_id: id, url, method, priority }));
        let key = self.reqs.insert(Req {
            id,
            peer: pi,
            group: gi,
            host,
            method,
            priority,
            url: stored,
            ranged: range.is_some(),
            range_start: range.map_or(0, |(s, _)| s),
            range_end: range.and_then(|(_, e)| e).unwrap_or(u64::MAX),
            order,
            ready_at: now,
            priority_changed_at: None,
            delivered: 0,
            attempt: 0,
            retries: 0,
            redirects: 0,
            state: State::Queued,
            peer_link: Link::default(),
            group_link: Link::default(),
        }) as u32;
        debug_assert_eq!(key as usize, id.key());
        self.peers[pi as usize].members.push_back(&mut self.reqs, key, peer_link);
        if let Some(g) = gi {
            self.groups[g as usize].members.push_back(&mut self.reqs, key, group_link);
        }
        self.queue_insert(key);
        Ok(id)
    }

    /// Cancel a request with [`CancelReason::Explicit`]: a waiting one ends at
    /// once, a running one is aborted (`Output::Abort`) and ends with the
    /// bytes it delivered. Unknown or finished ids are ignored.
    pub fn cancel(&mut self, id: RequestId, now: Instant) {
        self.tick(now);
        if let Some(key) = self.live_key(id) {
            self.cancel_key(key, CancelReason::Explicit);
        }
    }

    /// Change a request's priority and emit `PriorityChanged`. A waiting
    /// request moves to its new slot keeping its original enqueue order; a
    /// running one is judged by the new priority for preemption and the Low
    /// reserve from now on; one in backoff takes it when it re-queues.
    /// Setting the priority it already has does nothing.
    pub fn set_priority(&mut self, id: RequestId, p: RequestPriority, now: Instant) {
        let now = self.tick(now);
        let Some(key) = self.live_key(id) else { return };
        self.change_priority(key, p, now);
    }

    /// Priority change shared by `set_priority` and ageing.
    fn change_priority(&mut self, key: u32, p: RequestPriority, now: Instant) {
        let r = &self.reqs[key as usize];
        let from = r.priority;
        if from == p {
            return;
        }
        match r.state {
            State::Queued => {
                self.queue_remove(key);
                let r = &mut self.reqs[key as usize];
                r.priority = p;
                r.priority_changed_at = Some(now);
                self.queue_insert(key);
            }
            State::Backoff { .. } => {
                let r = &mut self.reqs[key as usize];
                r.priority = p;
                r.priority_changed_at = Some(now);
            }
            State::Running(_) => {
                if from == RequestPriority::Low {
                    self.low_in_flight -= 1;
                } else {
                    self.low_in_flight += 1;
                }
                let r = &mut self.reqs[key as usize];
                r.priority = p;
                r.priority_changed_at = Some(now);
            }
        }
        self.emit(key, DownloaderEvent::PriorityChanged { request_id: self.reqs[key as usize].id, from, to: p });
    }

    /// The running transfer is alive although it delivered nothing new: the
    /// server resends a prefix the sink already holds (it ignored `Range`),
    /// and the adapter skips those bytes. Resets the idle timer like
    /// [`Scheduler::on_bytes`] but counts no byte and emits no event, so a
    /// resume against such a server makes progress instead of timing out on
    /// every attempt. Ignored for a request that is not running.
    pub fn on_progress(&mut self, id: RequestId, now: Instant) {
        let now = self.tick(now);
        let Some(key) = self.live_key(id) else { return };
        let Some(idle) = self.cfg.idle_timeout else { return };
        let r = &mut self.reqs[key as usize];
        if let State::Running(a) = &mut r.state {
            self.timers.arm(&mut a.idle, id, TimerKind::Idle, now.checked_add(idle));
        }
    }

    /// The adapter received `n` more body bytes of a running request. The
    /// first bytes of an attempt emit `FirstByte`; every report resets the
    /// idle timer. Zero bytes, and reports for a request that is not running,
    /// are ignored.
    pub fn on_bytes(&mut self, id: RequestId, n: u64, now: Instant) {
        let now = self.tick(now);
        if n == 0 {
            return;
        }
        let Some(key) = self.live_key(id) else { return };
        let idle = self.cfg.idle_timeout;
        let r = &mut self.reqs[key as usize];
        let State::Running(a) = &mut r.state else { return };
        r.delivered = r.delivered.saturating_add(n);
        a.bytes = a.bytes.saturating_add(n);
        let first = !a.first_byte;
        a.first_byte = true;
        if let Some(idle) = idle {
            self.timers.arm(&mut a.idle, id, TimerKind::Idle, now.checked_add(idle));
        }
        if first {
            let latency = now.saturating_duration_since(a.start);
            self.emit(key, DownloaderEvent::FirstByte { request_id: id, latency });
        }
    }

    /// Bytes that an attempt the scheduler already stopped (aborted,
    /// preempted, timed out) wrote to the sink before it noticed. They are
    /// there and will not be fetched again, so they count in
    /// `bytes_transferred` and in the range of the next start; nothing else
    /// changes (no `FirstByte`, no timer, whatever attempt runs now).
    /// Ignored for a request that has ended: its events are out.
    pub fn on_late_bytes(&mut self, id: RequestId, n: u64, now: Instant) {
        self.tick(now);
        let Some(key) = self.live_key(id) else { return };
        let r = &mut self.reqs[key as usize];
        r.delivered = r.delivered.saturating_add(n);
    }

    /// The adapter finished a running request's transfer: it ends with
    /// `RequestCompleted`. Ignored for a request that is not running.
    pub fn on_complete(&mut self, id: RequestId, now: Instant) {
        let now = self.tick(now);
        let Some(key) = self.live_key(id) else { return };
        if self.reqs[key as usize].attempt().is_none() {
            return;
        }
        self.complete(key, now, false);
    }

    /// The adapter's transfer of a running request failed. Retryable errors
    /// are retried (with backoff, or after the error's `retry_after`) while
    /// retries remain; otherwise the request ends with `RequestFailed`. A
    /// failure after a bounded range was fully delivered completes the
    /// request instead. Ignored for a request that is not running.
    ///
    /// A `429` or `503` carrying `Retry-After` also pauses the request's host
    /// (host health): no new start to it until `now + retry_after` (bounded
    /// by `retry.max_retry_after`); requests to it are skipped like a full
    /// host's and running transfers continue. See
    /// [`Scheduler::host_paused_until`].
    pub fn on_failed(&mut self, id: RequestId, error: NetError, now: Instant) {
        let now = self.tick(now);
        let Some(key) = self.live_key(id) else { return };
        if self.reqs[key as usize].attempt().is_none() {
            return;
        }
        if let NetError::Status { status: 429 | 503, retry_after: Some(d) } = &error {
            let pause = (*d).min(self.cfg.retry.max_retry_after);
            if let Some(until) = now.checked_add(pause).filter(|&t| t > now) {
                self.hosts.pause(self.reqs[key as usize].host, until);
            }
        }
        self.attempt_failed(key, error, now, false);
    }

    /// Until when new starts to the host of `url` (host and port) are held
    /// because it answered `429`/`503` with `Retry-After`; `None` when it is
    /// not paused (or no live request points at it: a pause is forgotten
    /// with the host).
    #[must_use]
    pub fn host_paused_until(&self, url: &Url) -> Option<Instant> {
        let now = self.now?;
        self.hosts.paused_until(url, now)
    }

    /// The running attempt ended with a redirect to `url` (absolute; the
    /// adapter resolved it against the request's URL). The attempt is over
    /// (no `Abort`). A target that is not http(s) with a host fails the
    /// request with [`NetError::InvalidUrl`]; one from https to http fails
    /// it with [`NetError::Protocol`] unless `Config::allow_https_downgrade`;
    /// a redirect beyond `Config::max_redirects` fails it with
    /// [`NetError::Protocol`] (none retryable). Otherwise the request emits
    /// `RequestRedirected` and waits again at the front of its peer's queue,
    /// with no retry used and no backoff; its next `Start` carries `url`,
    /// and `max_per_host` counts it at `url`'s host from then on. Ignored
    /// for a request that is not running.
    pub fn on_redirect(&mut self, id: RequestId, url: Url, now: Instant) {
        let now = self.tick(now);
        let Some(key) = self.live_key(id) else { return };
        if self.reqs[key as usize].attempt().is_none() {
            return;
        }
        self.stop_attempt(key, false);
        let r = &self.reqs[key as usize];
        let target = match url.scheme() {
            "http" | "https" => Hosts::key_of(&url),
            _ => None,
        };
        let downgrade = url.scheme() == "http" && r.url.starts_with("https:");
        let error = if target.is_none() {
            Some(NetError::InvalidUrl(format!("redirect to {url}: only http(s) URLs with a host can be fetched")))
        } else if downgrade && !self.cfg.allow_https_downgrade {
            Some(NetError::Protocol(format!("refusing a redirect from https to http ({url})")))
        } else if r.redirects >= self.cfg.max_redirects {
            Some(NetError::Protocol(format!("more than {} redirects", self.cfg.max_redirects)))
        } else {
            None
        };
        if let Some(error) = error {
            let ev = DownloaderEvent::RequestFailed { request_id: id, error, retryable: false };
            return self.finish(key, ev);
        }
        let (name, port) = target.expect("checked above");
        let host = self.hosts.acquire(name, port);
        let r = &mut self.reqs[key as usize];
        let old = std::mem::replace(&mut r.host, host);
        r.url = url.as_str().into();
        r.redirects += 1;
        self.hosts.release(old);
        self.emit(key, DownloaderEvent::RequestRedirected { request_id: id, url });
        self.requeue_front(key, now);
    }

    /// Fire every deadline due at `now`: `LoadSlow`, idle and hard timeouts,
    /// ends of retry backoffs and host pauses, ageing. Calling it early or
    /// twice is harmless.
    pub fn handle_timeout(&mut self, now: Instant) {
        let now = self.tick(now);
        // Paused hosts whose pause ended: their requests start at the next poll.
        self.hosts.resume_due(now);
        while let Some((at, kind, id)) = self.timers.pop_due(now) {
            let key = id.key() as u32;
            // The popped deadline is no longer armed: forget it first.
            let armed = match (&mut self.reqs[key as usize].state, kind) {
                (State::Running(a), TimerKind::Soft) => a.soft.take().is_some(),
                (State::Running(a), TimerKind::Idle) => a.idle.take().is_some(),
                (State::Running(a), TimerKind::Hard) => a.hard.take().is_some(),
                (State::Queued, TimerKind::Age) => true,
                (State::Backoff { .. }, TimerKind::Backoff) => true,
                _ => false,
            };
            debug_assert!(armed, "timer {kind:?} fired for a request not waiting on it");
            if !armed {
                continue;
            }
            match kind {
                TimerKind::Soft => {
                    let r = &self.reqs[key as usize];
                    let elapsed = r.attempt().map_or(Duration::ZERO, |a| now.saturating_duration_since(a.start));
                    self.emit(key, DownloaderEvent::LoadSlow { request_id: r.id, elapsed });
                }
                TimerKind::Idle | TimerKind::Hard => self.attempt_failed(key, NetError::Timeout, now, true),
                TimerKind::Backoff => self.requeue_front(key, at),
                TimerKind::Age => self.change_priority(key, RequestPriority::High, now),
            }
        }
    }

    /// The earliest deadline, never earlier than the latest `now` seen;
    /// `None` when no timer is armed. O(log n).
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        let next = match (self.timers.next(), self.hosts.next_resume()) {
            (Some(a), Some(b)) => a.min(b),
            (a, b) => a.or(b)?,
        };
        Some(match self.now {
            Some(now) if now > next => now,
            _ => next,
        })
    }

    /// The next thing to do. When nothing is pending, this first decides which
    /// waiting requests start now (and, with `preempt_low`, which running Low
    /// requests make room for High ones). Call it until it returns `None`
    /// after every batch of inputs.
    #[must_use]
    pub fn poll_output(&mut self) -> Option<Output> {
        if self.out.is_empty() {
            self.fill();
        }
        self.out.pop_front()
    }

    /// Shut down: every live request ends with
    /// [`CancelReason::DownloaderShutdown`] (in id order; running ones are
    /// aborted first) and every later enqueue returns
    /// [`EnqueueError::ShutDown`].
    pub fn shutdown(&mut self, now: Instant) {
        self.tick(now);
        self.shut_down = true;
        let mut live: Vec<(RequestId, u32)> = self.reqs.iter().map(|(k, r)| (r.id, k as u32)).collect();
        live.sort_unstable();
        for (_, key) in live {
            self.cancel_key(key, CancelReason::DownloaderShutdown);
        }
    }

    /// Whether [`Scheduler::shutdown`] was called.
    #[must_use]
    pub fn is_shut_down(&self) -> bool {
        self.shut_down
    }

    /// Transfers started and not yet stopped.
    #[must_use]
    pub fn in_flight(&self) -> usize {
        self.running.len()
    }

    /// Requests accepted, not ended and not running: waiting in a queue or a
    /// retry backoff.
    #[must_use]
    pub fn queued(&self) -> usize {
        self.reqs.len() - self.running.len()
    }

    /// Estimated bandwidth in bits per second: an EWMA (α = 0.3) over
    /// completed attempts of at least 16 KiB; `None` before the first one.
    #[must_use]
    pub fn bandwidth_estimate(&self) -> Option<u64> {
        // `as` saturates for floats, which is what we want.
        self.bandwidth.map(|b| b as u64)
    }

    /// Give back memory kept from a burst: the request table's and the
    /// output queue's spare capacity. Cheap when nothing is spare; call it
    /// when the scheduler goes idle after a large batch.
    pub fn shrink_to_fit(&mut self) {
        if self.reqs.is_empty() {
            // Ids name their slot, but stale ids never match a fresh table.
            self.reqs = Slab::new();
        } else {
            self.reqs.shrink_to_fit();
        }
        self.out.shrink_to_fit();
    }

    /// Internal table sizes, for tests that check memory returns to baseline.
    #[must_use]
    pub fn footprint(&self) -> Footprint {
        Footprint {
            requests: self.reqs.len(),
            peers: self.peers.len(),
            groups: self.groups.len(),
            hosts: self.hosts.len(),
            timers: self.timers.len(),
            pending_outputs: self.out.len(),
            waiting_peers: self.slots.iter().filter(|r| !r.is_empty()).count(),
        }
    }

    /// The request's current priority, or `None` when it has ended.
    #[must_use]
    pub fn priority_of(&self, id: RequestId) -> Option<RequestPriority> {
        self.live_key(id).map(|k| self.reqs[k as usize].priority)
    }

    // ----- internals ------------------------------------------------------------

    fn emit(&mut self, key: u32, ev: DownloaderEvent) {
        let peer = self.peers[self.reqs[key as usize].peer as usize].id;
        self.out.push_back(Output::Event(peer, ev));
    }

    fn slot_of(&self, key: u32) -> usize {
        let r = &self.reqs[key as usize];
        slot(self.peers[r.peer as usize].priority.index(), r.priority.index())
    }

    /// The ageing deadline of a waiting request: `promote_after` from the
    /// later of when it became ready and its last priority change; none for
    /// High requests.
    fn age_deadline(&self, key: u32) -> Option<Instant> {
        let r = &self.reqs[key as usize];
        let after = self.cfg.promote_after.filter(|_| r.priority == RequestPriority::Low)?;
        let from = match r.priority_changed_at {
            Some(t) if t > r.ready_at => t,
            _ => r.ready_at,
        };
        from.checked_add(after)
    }

    /// Put a request (state already `Queued`) into its peer's queue and arm
    /// its ageing timer.
    fn queue_insert(&mut self, key: u32) {
        let s = self.slot_of(key);
        let age = self.age_deadline(key);
        let r = &self.reqs[key as usize];
        let peer = &mut self.peers[r.peer as usize];
        let queue = &mut peer.queues[r.priority.index()];
        if queue.is_empty() {
            self.slots[s].insert(peer.id);
        }
        queue.insert(r.host, r.order, key);
        if let Some(at) = age {
            self.timers.insert(at, TimerKind::Age, r.id);
        }
    }

    /// Take a waiting request out of its queue and disarm its ageing timer
    /// (already gone when it is the timer being handled).
    fn queue_remove(&mut self, key: u32) {
        let s = self.slot_of(key);
        let age = self.age_deadline(key);
        let r = &self.reqs[key as usize];
        let peer = &mut self.peers[r.peer as usize];
        let queue = &mut peer.queues[r.priority.index()];
        queue.remove(r.host, r.order);
        if queue.is_empty() {
            self.slots[s].remove(peer.id);
        }
        if let Some(at) = age {
            self.timers.remove(at, TimerKind::Age, r.id);
        }
    }

    /// Queue a request again at the front of its peer's queue; that peer is
    /// served next in its slot.
    fn requeue_front(&mut self, key: u32, ready_at: Instant) {
        let order = self.next_front;
        self.next_front -= 1;
        let r = &mut self.reqs[key as usize];
        r.order = order;
        r.ready_at = ready_at;
        r.state = State::Queued;
        let peer = self.peers[r.peer as usize].id;
        self.queue_insert(key);
        let s = self.slot_of(key);
        self.slots[s].serve_next(peer);
    }

    /// Stop a running attempt: release its limits and timers, and emit
    /// `Abort` when the scheduler (not the adapter) ends it.
    fn stop_attempt(&mut self, key: u32, abort: bool) -> Box<Attempt> {
        let r = &mut self.reqs[key as usize];
        let State::Running(mut a) = std::mem::replace(&mut r.state, State::Queued) else {
            unreachable!("stop_attempt on a request that is not running")
        };
        self.timers.disarm(&mut a.soft, r.id, TimerKind::Soft);
        self.timers.disarm(&mut a.idle, r.id, TimerKind::Idle);
        self.timers.disarm(&mut a.hard, r.id, TimerKind::Hard);
        self.running.remove(&a.start_seq);
        self.hosts.stopped(r.host);
        if r.priority == RequestPriority::Low {
            self.low_in_flight -= 1;
        }
        if abort {
            self.out.push_back(Output::Abort(r.id));
        }
        a
    }

    /// End a request: emit its terminal event and free everything it held.
    fn finish(&mut self, key: u32, ev: DownloaderEvent) {
        debug_assert!(ev.is_terminal());
        self.emit(key, ev);
        let r = &self.reqs[key as usize];
        let (peer, group, host) = (r.peer, r.group, r.host);
        self.peers[peer as usize].members.unlink(&mut self.reqs, key, peer_link);
        if let Some(g) = group {
            self.groups[g as usize].members.unlink(&mut self.reqs, key, group_link);
        }
        self.hosts.release(host);
        self.reqs.remove(key as usize);
    }

    fn cancel_key(&mut self, key: u32, reason: CancelReason) {
        match self.reqs[key as usize].state {
            State::Queued => self.queue_remove(key),
            State::Backoff { until } => {
                let id = self.reqs[key as usize].id;
                self.timers.disarm(&mut Some(until), id, TimerKind::Backoff);
            }
            State::Running(_) => {
                self.stop_attempt(key, true);
            }
        }
        let r = &self.reqs[key as usize];
        let ev = DownloaderEvent::RequestCancelled { request_id: r.id, reason, bytes_transferred: r.delivered };
        self.finish(key, ev);
    }

    /// End a running request as completed (`abort`: the scheduler stops the
    /// transfer itself, e.g. a timeout after a bounded range was delivered).
    fn complete(&mut self, key: u32, now: Instant, abort: bool) {
        let a = self.stop_attempt(key, abort);
        let duration = now.saturating_duration_since(a.start);
        let bandwidth_bps = bits_per_second(a.bytes, duration);
        if a.bytes >= MIN_BANDWIDTH_SAMPLE {
            let sample = bandwidth_bps as f64;
            self.bandwidth = Some(match self.bandwidth {
                None => sample,
                Some(prev) => BANDWIDTH_ALPHA * sample + (1.0 - BANDWIDTH_ALPHA) * prev,
            });
        }
        let r = &self.reqs[key as usize];
        let ev = DownloaderEvent::RequestCompleted {
            request_id: r.id,
            bytes_transferred: r.delivered,
            duration,
            bandwidth_bps,
        };
        self.finish(key, ev);
    }

    /// A running attempt failed (`abort`: the scheduler stops it itself, on
    /// an idle or hard timeout). Complete, fail, or retry.
    fn attempt_failed(&mut self, key: u32, error: NetError, now: Instant, abort: bool) {
        if self.reqs[key as usize].fully_delivered() {
            return self.complete(key, now, abort);
        }
        self.stop_attempt(key, abort);
        let policy = &self.cfg.retry;
        let r = &self.reqs[key as usize];
        let retryable = error.is_retryable();
        let too_late = error.retry_after().is_some_and(|ra| ra > policy.max_retry_after);
        if !retryable || r.retries >= policy.max_retries || too_late {
            let ev = DownloaderEvent::RequestFailed { request_id: r.id, error, retryable };
            return self.finish(key, ev);
        }
        let n = r.retries + 1;
        let delay = match error.retry_after() {
            Some(ra) => ra,
            None => backoff(policy, n, &mut self.rng),
        };
        let r = &mut self.reqs[key as usize];
        r.retries = n;
        let ev =
            DownloaderEvent::RequestRetrying { request_id: r.id, attempt: r.attempt.saturating_add(1), delay, error };
        self.emit(key, ev);
        match now.checked_add(delay) {
            _ if delay.is_zero() => self.requeue_front(key, now),
            Some(until) => {
                let r = &mut self.reqs[key as usize];
                r.state = State::Backoff { until };
                self.timers.arm(&mut None, r.id, TimerKind::Backoff, Some(until));
            }
            // A delay beyond the clock's range: the request would never run.
            None => {
                let r = &self.reqs[key as usize];
                let ev = DownloaderEvent::RequestFailed { request_id: r.id, error: NetError::Timeout, retryable: true };
                self.finish(key, ev);
            }
        }
    }

    /// Whether a request to `host` cannot start now: the host is at
    /// `max_per_host`, or paused.
    fn host_full(&self, host: u32) -> bool {
        self.cfg.max_per_host.is_some_and(|max| self.hosts.running(host) >= max)
            || self.now.is_some_and(|now| self.hosts.is_paused(host, now))
    }

    fn low_reserve_full(&self) -> bool {
        self.cfg.max_low_in_flight.is_some_and(|max| self.low_in_flight >= max)
    }

    /// The request slot `s` would start next: round-robin over its peers from
    /// the cursor, each peer's first request whose host is not full.
    fn pick(&self, s: usize) -> Option<(PeerId, u32)> {
        let q = s % 2;
        self.slots[s].service_order().find_map(|p| {
            let key = self.peers[p.index as usize].queues[q].first_startable(|h| self.host_full(h))?;
            Some((p, key))
        })
    }

    /// Start what can start, in slot order; then, with `preempt_low`, make
    /// room for waiting High requests by aborting Low ones of worse slots.
    fn fill(&mut self) {
        let Some(now) = self.now else { return };
        if self.shut_down {
            return;
        }
        loop {
            // Within one pass, starting transfers only fills hosts and the
            // Low reserve, so a slot with nothing startable stays that way.
            let mut exhausted = [false; 4];
            while self.in_flight() < self.cfg.max_concurrent {
                let mut started = false;
                for (s, done) in exhausted.iter_mut().enumerate() {
                    if *done || (s % 2 == 1 && self.low_reserve_full()) {
                        continue;
                    }
                    match self.pick(s) {
                        Some((peer, key)) => {
                            self.slots[s].served(peer);
                            self.start(key, now);
                            started = true;
                            break;
                        }
                        None => *done = true,
                    }
                }
                if !started {
                    break;
                }
            }
            if !self.cfg.preempt_low || self.in_flight() < self.cfg.max_concurrent {
                return;
            }
            let Some(waiter_slot) = [0, 2].into_iter().find(|&s| !exhausted[s] && self.pick(s).is_some()) else {
                return;
            };
            let Some(victim) = self.victim(waiter_slot) else { return };
            self.stop_attempt(victim, true);
            let r = &self.reqs[victim as usize];
            let ev = DownloaderEvent::RequestPreempted { request_id: r.id, bytes_transferred: r.delivered };
            self.emit(victim, ev);
            self.requeue_front(victim, now);
        }
    }

    /// The running Low request to preempt for a waiter of slot `w`: of those
    /// in a strictly worse slot (by current peer priority) and not done with
    /// a bounded range, the worst-slot, most recently started one.
    fn victim(&self, w: usize) -> Option<u32> {
        let mut best: Option<(usize, u32)> = None;
        for &key in self.running.values().rev() {
            let r = &self.reqs[key as usize];
            if r.priority != RequestPriority::Low || r.fully_delivered() {
                continue;
            }
            let s = self.slot_of(key);
            if s > w && best.is_none_or(|(bs, _)| s > bs) {
                best = Some((s, key));
            }
        }
        best.map(|(_, key)| key)
    }

    fn start(&mut self, key: u32, now: Instant) {
        self.queue_remove(key);
        let start_seq = self.next_start;
        self.next_start += 1;
        self.running.insert(start_seq, key);
        let cfg = &self.cfg;
        let r = &mut self.reqs[key as usize];
        r.attempt = r.attempt.saturating_add(1);
        self.hosts.started(r.host);
        if r.priority == RequestPriority::Low {
            self.low_in_flight += 1;
        }
        let mut a = Box::new(Attempt {
            start: now,
            start_seq,
            bytes: 0,
            first_byte: false,
            soft: None,
            idle: None,
            hard: None,
        });
        let at = |d: Option<Duration>| d.and_then(|d| now.checked_add(d));
        self.timers.arm(&mut a.soft, r.id, TimerKind::Soft, at(cfg.soft_timeout));
        self.timers.arm(&mut a.idle, r.id, TimerKind::Idle, at(cfg.idle_timeout));
        self.timers.arm(&mut a.hard, r.id, TimerKind::Hard, at(cfg.hard_timeout));
        r.state = State::Running(a);
        let cmd = FetchCmd {
            id: r.id,
            peer: self.peers[r.peer as usize].id,
            // The url crate guarantees that a serialization parses back to itself.
            url: url::Url::parse(&r.url).expect("a stored URL parses"),
            method: r.method,
            range: r.remaining_range(),
            attempt: r.attempt,
        };
        let ev = DownloaderEvent::RequestStarted {
            request_id: r.id,
            wait_in_queue: now.saturating_duration_since(r.ready_at),
            attempt: r.attempt,
        };
        self.out.push_back(Output::Start(cmd));
        self.emit(key, ev);
    }
}

/// Table sizes of a [`Scheduler`], from [`Scheduler::footprint`]. All zero
/// (but `peers`) once every request has ended and every output was drained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Footprint {
    /// Live requests.
    pub requests: usize,
    /// Live peers.
    pub peers: usize,
    /// Live (not cancelled) groups.
    pub groups: usize,
    /// Interned hosts (hosts of live requests).
    pub hosts: usize,
    /// Armed deadlines.
    pub timers: usize,
    /// Outputs not yet polled.
    pub pending_outputs: usize,
    /// Slots with at least one waiting peer.
    pub waiting_peers: usize,
}

/// Check a request before accepting it; returns its per-host key.
fn validate(req: &Request) -> Result<(&str, u16), EnqueueError> {
    let scheme = req.url.scheme();
    if scheme != "http" && scheme != "https" {
        return Err(EnqueueError::InvalidRequest(format!("unsupported scheme {scheme:?} (only http and https)")));
    }
    let host = Hosts::key_of(&req.url).ok_or_else(|| EnqueueError::InvalidRequest("the URL has no host".into()))?;
    if let Some((start, Some(end))) = req.range {
        if start > end {
            return Err(EnqueueError::InvalidRequest(format!("range start {start} is past its end {end}")));
        }
    }
    Ok(host)
}

/// bytes × 8 × 10⁹ / max(ns, 1), saturating.
fn bits_per_second(bytes: u64, duration: Duration) -> u64 {
    let ns = duration.as_nanos().max(1);
    let bps = u128::from(bytes) * 8 * 1_000_000_000 / ns;
    u64::try_from(bps).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_per_second_handles_zero_and_huge() {
        assert_eq!(bits_per_second(1_000_000, Duration::from_secs(2)), 4_000_000);
        assert_eq!(bits_per_second(10, Duration::ZERO), 80_000_000_000);
        assert_eq!(bits_per_second(u64::MAX, Duration::ZERO), u64::MAX);
        assert_eq!(bits_per_second(0, Duration::from_secs(1)), 0);
    }
}

#[cfg(test)]
mod size_tests {
    use super::*;

    #[test]
    fn waiting_requests_stay_small() {
        // A waiting request is one slab entry plus its URL's heap string and
        // a queue entry; keep the entry itself compact (issue: < 300 B/request).
        let size = std::mem::size_of::<Req>();
        println!("size_of::<Req>() = {size}");
        assert!(size <= 160, "a request's state grew to {size} bytes");
    }
}
