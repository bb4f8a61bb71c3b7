//! The [`Scheduler`]: the public API and the transitions of a request
//! (queued, backoff, running, ended). Which request starts next is decided
//! in [`dispatch`]; the tables it works on live in their own modules.

use std::collections::VecDeque;
use std::time::Instant;

use url::Url;

use crate::bandwidth::Bandwidth;
use crate::config::Config;
use crate::error::{ConfigError, EnqueueError, NetError};
use crate::events::{CancelReason, DownloaderEvent, Output};
use crate::hosts::Hosts;
use crate::ids::{GroupId, PeerId, RequestId, MAX_LIVE, MAX_SEQ};
use crate::keys::{Key, ReqKey, Table};
use crate::live::{Extra, Req, State};
use crate::registry::{GroupState, Registry};
use crate::request::{Request, RequestPriority};
use crate::retry::Rng;
use crate::running::Running;
use crate::timers::{TimerKind, Timers};
use crate::waiting::{moved, order_of, Entry, Waiting};

mod dispatch;
mod transitions;

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
    reqs: Table<ReqKey, Req>,
    registry: Registry,
    hosts: Hosts,
    waiting: Waiting,
    running: Running,
    timers: Timers,
    out: VecDeque<Output>,
    next_seq: u64,
    /// The next front re-queue's number (negative, shrinking).
    next_front: i64,
    rng: Rng,
    bandwidth: Bandwidth,
    shut_down: bool,
}

/// Whether `id` names a live request of `reqs`.
fn live(reqs: &Table<ReqKey, Req>, id: RequestId) -> Option<ReqKey> {
    let key = ReqKey::from_index(id.key());
    reqs.get(key).filter(|r| r.id == id).map(|_| key)
}

/// Whether a queue entry of `priority` is a request waiting there now.
fn filed(reqs: &Table<ReqKey, Req>, priority: RequestPriority) -> impl Fn(Entry) -> bool + '_ {
    move |e| reqs.get(ReqKey::from_index(e.id.key())).is_some_and(|r| r.is_filed(e, priority))
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
            reqs: Table::default(),
            registry: Registry::default(),
            hosts: Hosts::default(),
            waiting: Waiting::default(),
            running: Running::default(),
            timers: Timers::default(),
            out: VecDeque::new(),
            next_seq: 1,
            next_front: -1,
            bandwidth: Bandwidth::default(),
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

    /// Register a peer: a client with its own priority and event scope.
    pub fn add_peer(&mut self, priority: RequestPriority) -> PeerId {
        self.registry.add_peer(priority)
    }

    /// The peer's priority, or `None` for an unknown or removed peer.
    #[must_use]
    pub fn peer_priority(&self, peer: PeerId) -> Option<RequestPriority> {
        self.registry.peer_key(peer).map(|k| self.registry.peer(k).priority)
    }

    /// Change a peer's priority. Its waiting requests move to the classes of
    /// the new priority keeping their order; no events (request priorities
    /// do not change). Running requests are judged by it for preemption
    /// from now on.
    pub fn set_peer_priority(&mut self, peer: PeerId, p: RequestPriority, now: Instant) {
        self.tick(now);
        let Some(key) = self.registry.peer_key(peer) else { return };
        let old = self.registry.set_priority(key, p);
        if old != p {
            self.waiting.set_peer_priority(peer, old, p);
        }
    }

    /// Remove a peer: each of its live requests ends with
    /// [`CancelReason::PeerCancel`] (in id order; running ones are aborted
    /// first), its groups are freed, and its id is dead for good.
    pub fn remove_peer(&mut self, peer: PeerId, now: Instant) {
        self.tick(now);
        let Some(pk) = self.registry.peer_key(peer) else { return };
        // Its requests are waiting, running or in a backoff; sorted once
        // here, for the events' id order.
        let reqs = &self.reqs;
        let of_peer = |id: RequestId| live(reqs, id).filter(|&k| reqs[k].peer == pk);
        // An entry is current when its request waits under that order (its
        // own priority's queue is the only one holding such an entry).
        let waiting =
            self.waiting.of_peer(peer, |e| live(reqs, e.id).is_some_and(|k| reqs[k].is_filed(e, reqs[k].priority)));
        let running = self.running.iter().map(|(_, a)| a.id);
        let backoff = self.timers.armed(TimerKind::Backoff);
        let mut keys: Vec<ReqKey> = waiting.into_iter().chain(running).chain(backoff).filter_map(of_peer).collect();
        keys.sort_unstable_by_key(|&k| self.reqs[k].id);
        keys.dedup();
        for key in keys {
            self.cancel_key(key, CancelReason::PeerCancel);
        }
        self.waiting.forget_peer(peer);
        self.registry.remove_peer(pk);
    }

    /// Open a new cancellation group (an epoch) for `peer`.
    ///
    /// For an unknown or removed peer this returns a dead group: enqueueing
    /// with it fails with [`EnqueueError::UnknownPeer`], cancelling it does nothing.
    pub fn new_group(&mut self, peer: PeerId) -> GroupId {
        self.registry.new_group(peer)
    }

    /// Cancel a group: each of its live requests ends with
    /// [`CancelReason::EpochCancel`] (in id order; running ones are aborted
    /// first). The group's memory is freed; later enqueues into it end at once
    /// with [`CancelReason::BeforeStart`]. Cancelling it again does nothing.
    pub fn cancel_group(&mut self, group: GroupId, now: Instant) {
        self.tick(now);
        let Some(gk) = self.registry.group_key(group) else { return };
        let reqs = &self.reqs;
        for id in self.registry.members(gk, |id| live(reqs, id).is_some()) {
            let key = ReqKey::from_index(id.key());
            self.cancel_key(key, CancelReason::EpochCancel);
        }
        self.registry.remove_group(gk);
    }

    // ----- requests -----------------------------------------------------------

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
        let pk = self.registry.peer_key(peer).ok_or(EnqueueError::UnknownPeer)?;
        let group = self.registry.classify(peer, req.group)?;
        let (host_name, port) = req.check()?;
        let cancelled = matches!(group, GroupState::Cancelled);
        let full = self.cfg.max_queued.is_some_and(|max| self.queued() >= max);
        if (full && !cancelled) || self.reqs.len() >= MAX_LIVE || self.next_seq > MAX_SEQ {
            return Err(EnqueueError::QueueFull);
        }

        let id = RequestId::compose(self.next_seq, self.reqs.vacant_key().index());
        let order = order_of(self.next_seq as i64);
        self.next_seq += 1;
        let group = match group {
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
        let Request { url, method, priority, range, policy, .. } = req;
        let extra = policy.map(|p| {
            let first = (!p.mirrors.is_empty()).then(|| url.clone());
            Box::new(Extra { policy: *p, first, ..Extra::default() })
        });
        let key = self.reqs.insert(Req {
            id,
            peer: pk,
            group,
            host,
            method,
            priority,
            url: url.clone(),
            ranged: range.is_some(),
            range_start: range.map_or(0, |(s, _)| s),
            range_end: range.and_then(|(_, e)| e).unwrap_or(u64::MAX),
            order,
            delivered: 0,
            attempt: 0,
            extra,
            state: State::Stopped,
        });
        debug_assert_eq!(key.index(), id.key());
        self.out
            .push_back(Output::Event(peer, DownloaderEvent::RequestEnqueued { request_id: id, url, method, priority }));
        if let Some(g) = group {
            self.registry.join(g, id);
        }
        self.file(key, now, None);
        Ok(id)
    }

    /// Cancel a request with [`CancelReason::Explicit`]: a waiting one ends at
    /// once, a running one is aborted (`Output::Abort`) and ends with the
    /// bytes it delivered. Unknown or finished ids are ignored.
    pub fn cancel(&mut self, id: RequestId, now: Instant) {
        self.tick(now);
        if let Some(key) = live(&self.reqs, id) {
            self.cancel_key(key, CancelReason::Explicit);
        }
    }

    /// Change a request's priority and emit `PriorityChanged`. A waiting
    /// request moves to its new class keeping its original enqueue order; a
    /// running one is judged by the new priority for preemption and the Low
    /// reserve from now on; one in backoff takes it when it re-queues.
    /// Setting the priority it already has does nothing.
    pub fn set_priority(&mut self, id: RequestId, p: RequestPriority, now: Instant) {
        let now = self.tick(now);
        let Some(key) = live(&self.reqs, id) else { return };
        self.change_priority(key, p, now);
    }

    /// Priority change shared by `set_priority` and ageing.
    fn change_priority(&mut self, key: ReqKey, p: RequestPriority, now: Instant) {
        let r = &mut self.reqs[key];
        let from = r.priority;
        if from == p {
            return;
        }
        match &mut r.state {
            State::Queued { .. } => {
                let since = self.unfile(key);
                let r = &mut self.reqs[key];
                r.priority = p;
                r.order = moved(r.order);
                self.file(key, since, Some(now));
            }
            State::Backoff { changed, .. } => {
                *changed = Some(now);
                r.priority = p;
            }
            State::Running(a) => {
                self.running.set_low(*a, p == RequestPriority::Low);
                r.priority = p;
            }
            State::Stopped => unreachable!("a request is never left stopped"),
        }
        let id = self.reqs[key].id;
        self.emit(key, DownloaderEvent::PriorityChanged { request_id: id, from, to: p });
    }

    /// The running transfer is alive although it delivered nothing new: the
    /// server resends a prefix the sink already holds (it ignored `Range`),
    /// and the adapter skips those bytes. Resets the idle timer like
    /// [`Scheduler::on_bytes`] but counts no byte and emits no event, so a
    /// resume against such a server makes progress instead of timing out on
    /// every attempt. Ignored for a request that is not running.
    pub fn on_progress(&mut self, id: RequestId, now: Instant) {
        let now = self.tick(now);
        let Some(key) = live(&self.reqs, id) else { return };
        let r = &self.reqs[key];
        let Some(a) = r.attempt() else { return };
        if let Some(idle) = r.idle_timeout(&self.cfg) {
            let a = self.running.get_mut(a);
            self.timers.arm(&mut a.idle, TimerKind::Idle, id, now.checked_add(idle));
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
        let Some(key) = live(&self.reqs, id) else { return };
        let r = &mut self.reqs[key];
        let Some(ak) = r.attempt() else { return };
        r.delivered = r.delivered.saturating_add(n);
        let idle = r.idle_timeout(&self.cfg);
        let peer = r.peer;
        let a = self.running.get_mut(ak);
        a.bytes = a.bytes.saturating_add(n);
        let first = !a.first_byte;
        a.first_byte = true;
        if let Some(idle) = idle {
            self.timers.arm(&mut a.idle, TimerKind::Idle, id, now.checked_add(idle));
        }
        if let Some(bps) = a.meter.on_bytes(a.bytes, now) {
            self.registry.peer_mut(peer).bandwidth.sample_rate(bps);
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
        if let Some(key) = live(&self.reqs, id) {
            let r = &mut self.reqs[key];
            r.delivered = r.delivered.saturating_add(n);
        }
    }

    /// The adapter finished a running request's transfer: it ends with
    /// `RequestCompleted`. Ignored for a request that is not running.
    pub fn on_complete(&mut self, id: RequestId, now: Instant) {
        let now = self.tick(now);
        let Some(key) = live(&self.reqs, id).filter(|&k| self.reqs[k].attempt().is_some()) else { return };
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
        let Some(key) = live(&self.reqs, id).filter(|&k| self.reqs[k].attempt().is_some()) else { return };
        if let NetError::Status { status: 429 | 503, retry_after: Some(d) } = &error {
            let pause = (*d).min(self.cfg.retry.max_retry_after);
            if let Some(until) = now.checked_add(pause).filter(|&t| t > now) {
                self.hosts.pause(self.reqs[key].host, until);
            }
        }
        self.attempt_failed(key, error, now, false, false);
    }

    /// The running attempt failed and the adapter threw away every byte the
    /// request had delivered: its sink starts over (e.g. the whole file's
    /// SHA-256 did not match and the sink can be rewound). Unlike
    /// [`Scheduler::on_failed`], the request is retried whatever the error's
    /// class, while its retry policy allows (a retry with its backoff; a
    /// mirror is moved to first, as for `on_failed`), and its next start
    /// asks for the original range: `bytes_transferred` counts from zero
    /// again, so at completion it is what the sink holds. An adapter calls
    /// this at most as often as it is willing to refetch (weir-http: once
    /// per download). Ignored for a request that is not running.
    pub fn on_discarded(&mut self, id: RequestId, error: NetError, now: Instant) {
        let now = self.tick(now);
        let Some(key) = live(&self.reqs, id).filter(|&k| self.reqs[k].attempt().is_some()) else { return };
        self.reqs[key].delivered = 0;
        self.attempt_failed(key, error, now, false, true);
    }

    /// The running attempt's response head arrived and the adapter accepts
    /// its body: emits `ResponseReceived` with its status and the size the
    /// complete resource (or the asked range) will have when the response
    /// told (`content_length`), so a UI shows a total before the first
    /// byte. Ignored for a request that is not running, and after the
    /// attempt's first report (one head per exchange).
    pub fn on_response(&mut self, id: RequestId, status: u16, content_length: Option<u64>, now: Instant) {
        self.tick(now);
        let Some(key) = live(&self.reqs, id) else { return };
        let Some(a) = self.reqs[key].attempt() else { return };
        let a = self.running.get_mut(a);
        if std::mem::replace(&mut a.responded, true) {
            return;
        }
        self.emit(key, DownloaderEvent::ResponseReceived { request_id: id, status, content_length });
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
        let Some(key) = live(&self.reqs, id).filter(|&k| self.reqs[k].attempt().is_some()) else { return };
        self.stop_attempt(key, false);
        let r = &self.reqs[key];
        let target = match url.scheme() {
            "http" | "https" => Hosts::key_of(&url),
            _ => None,
        };
        let downgrade = url.scheme() == "http" && r.url.scheme() == "https";
        let error = if target.is_none() {
            Some(NetError::InvalidUrl(format!("redirect to {url}: only http(s) URLs with a host can be fetched")))
        } else if downgrade && !self.cfg.allow_https_downgrade {
            Some(NetError::Protocol(format!("refusing a redirect from https to http ({url})")))
        } else if r.redirects() >= self.cfg.max_redirects {
            Some(NetError::Protocol(format!("more than {} redirects", self.cfg.max_redirects)))
        } else {
            None
        };
        if let Some(error) = error {
            let ev = DownloaderEvent::RequestFailed { request_id: id, error, retryable: false };
            return self.finish(key, ev);
        }
        self.retarget(key, url.clone());
        self.reqs[key].extra_mut().redirects += 1;
        self.emit(key, DownloaderEvent::RequestRedirected { request_id: id, url });
        self.refile_front(key, now, None);
    }

    /// Fire every deadline due at `now`: `LoadSlow`, idle and hard timeouts,
    /// ends of retry backoffs and host pauses, ageing. Calling it early or
    /// twice is harmless.
    pub fn handle_timeout(&mut self, now: Instant) {
        let now = self.tick(now);
        // Paused hosts whose pause ended: their requests start at the next poll.
        self.hosts.resume_due(now);
        while let Some((at, kind, id)) = self.timers.pop_due(now) {
            let key = ReqKey::from_index(id.key());
            // The popped deadline is no longer armed: clear its slot first.
            let r = &mut self.reqs[key];
            let armed = match (&mut r.state, kind) {
                (_, TimerKind::Deadline) => r.extra.as_mut().is_some_and(|x| x.deadline_at.take().is_some()),
                (State::Running(a), TimerKind::Soft) => self.running.get_mut(*a).soft.take().is_some(),
                (State::Running(a), TimerKind::Idle) => self.running.get_mut(*a).idle.take().is_some(),
                (State::Running(a), TimerKind::Hard) => self.running.get_mut(*a).hard.take().is_some(),
                (State::Queued { age, .. }, TimerKind::Age) => age.take().is_some(),
                (State::Backoff { .. }, TimerKind::Backoff) => true,
                _ => false,
            };
            debug_assert!(armed, "timer {kind:?} fired for a request not waiting on it");
            if !armed {
                continue;
            }
            match kind {
                TimerKind::Soft => {
                    let a = self.running.get(self.reqs[key].attempt().expect("running"));
                    let elapsed = now.saturating_duration_since(a.start);
                    self.emit(key, DownloaderEvent::LoadSlow { request_id: id, elapsed });
                }
                TimerKind::Idle | TimerKind::Hard => self.attempt_failed(key, NetError::Timeout, now, true, false),
                TimerKind::Backoff => {
                    let State::Backoff { changed, .. } = self.reqs[key].state else { unreachable!() };
                    self.refile_front(key, at, changed);
                }
                TimerKind::Age => self.change_priority(key, RequestPriority::High, now),
                TimerKind::Deadline => self.expire(key, now),
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
        let mut live: Vec<(RequestId, ReqKey)> = self.reqs.iter().map(|(k, r)| (r.id, k)).collect();
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
        self.bandwidth.estimate()
    }

    /// Estimated bandwidth of `peer`'s transfers in bits per second, for
    /// adaptive bitrate decisions: an EWMA (α = 0.3) of its attempts'
    /// rates, sampled *while they run* over windows of at least 16 KiB and
    /// 100 ms (and at completion, the last window's, or the whole
    /// attempt's when it had no window yet, if it held 16 KiB). `None`
    /// before the first sample or for an unknown peer.
    #[must_use]
    pub fn peer_bandwidth(&self, peer: PeerId) -> Option<u64> {
        self.registry.peer_key(peer).and_then(|k| self.registry.peer(k).bandwidth.estimate())
    }

    /// The current rate of a running request's attempt in bits per second:
    /// over its latest window of at least 16 KiB and 100 ms, or over the
    /// time since its start before the first window closed. `None` when it
    /// is not running, has no byte yet, or no time has passed.
    #[must_use]
    pub fn transfer_rate(&self, id: RequestId) -> Option<u64> {
        let a = self.running.get(live(&self.reqs, id).and_then(|k| self.reqs[k].attempt())?);
        a.meter.rate(a.bytes, self.now?)
    }

    /// Give back memory kept from a burst: the request table's, the queues'
    /// and the output queue's spare capacity. Cheap when nothing is spare;
    /// call it when the scheduler goes idle after a large batch.
    pub fn shrink_to_fit(&mut self) {
        // Ids name their table entry, but stale ids never match a fresh table.
        self.reqs.shrink_to_fit();
        self.waiting.shrink_to_fit();
        self.running.shrink_to_fit();
        self.out.shrink_to_fit();
    }

    /// Internal table sizes, for tests that check memory returns to baseline.
    #[must_use]
    pub fn footprint(&self) -> Footprint {
        Footprint {
            requests: self.reqs.len(),
            peers: self.registry.peers(),
            groups: self.registry.groups(),
            hosts: self.hosts.len(),
            timers: self.timers.len(),
            pending_outputs: self.out.len(),
            waiting_peers: self.waiting.busy_classes(),
        }
    }

    /// How much the wait queues hold, for tests and diagnostics (see
    /// [`QueueFootprint`]).
    #[must_use]
    pub fn queue_footprint(&self) -> QueueFootprint {
        let (entries, waiting, host_queues) = self.waiting.sizes();
        QueueFootprint { entries, waiting, host_queues }
    }

    /// The request's current priority, or `None` when it has ended.
    #[must_use]
    pub fn priority_of(&self, id: RequestId) -> Option<RequestPriority> {
        live(&self.reqs, id).map(|k| self.reqs[k].priority)
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
    /// Classes with at least one waiting peer.
    pub waiting_peers: usize,
}

/// What the wait queues hold, from [`Scheduler::queue_footprint`]. A
/// request that leaves a queue without starting (cancelled, moved to the
/// other priority) leaves its entry behind until it reaches the head or
/// leftovers outnumber the queue's live entries, so `entries` may exceed
/// `waiting`, within about twice it; a host queue that empties is kept for
/// the host's next request (16 per peer and priority at most) until its
/// peer is removed or [`Scheduler::shrink_to_fit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct QueueFootprint {
    /// Queue entries held, leftovers included.
    pub entries: usize,
    /// Requests waiting in a queue (not in a backoff, not running).
    pub waiting: usize,
    /// Host queues held, emptied ones kept for reuse included.
    pub host_queues: usize,
}
