//! The transitions of a request: filed in a queue, started (in
//! [`dispatch`](super::dispatch)), stopped, retried after a backoff,
//! re-queued at the front, ended with exactly one terminal event.

use std::time::{Duration, Instant};

use url::Url;

use super::{filed, live, Scheduler};
use crate::bandwidth::bits_per_second;
use crate::class::Class;
use crate::error::NetError;
use crate::events::{CancelReason, DownloaderEvent, Output};
use crate::hosts::Hosts;
use crate::keys::ReqKey;
use crate::live::State;
use crate::request::RequestPriority;
use crate::retry::backoff;
use crate::running::Attempt;
use crate::timers::TimerKind;
use crate::waiting::{order_of, Place};

impl Scheduler {
    pub(super) fn emit(&mut self, key: ReqKey, ev: DownloaderEvent) {
        let peer = self.registry.peer(self.reqs[key].peer).id;
        self.out.push_back(Output::Event(peer, ev));
    }

    /// Where the request is (or would be) filed while it waits.
    pub(super) fn place(&self, key: ReqKey) -> Place {
        let r = &self.reqs[key];
        let peer = self.registry.peer(r.peer);
        Place { peer: peer.id, peer_priority: peer.priority, priority: r.priority, host: r.host }
    }

    pub(super) fn class_of(&self, key: ReqKey) -> Class {
        let r = &self.reqs[key];
        Class::of(self.registry.peer(r.peer).priority, r.priority)
    }

    /// Queue a request (waiting since `since`; its priority last changed at
    /// `changed`) and arm its ageing: `promote_after` from the later of the
    /// two, for Low requests.
    pub(super) fn file(&mut self, key: ReqKey, since: Instant, changed: Option<Instant>) {
        let place = self.place(key);
        let r = &mut self.reqs[key];
        let queue = self.waiting.insert(place, r.order, r.id);
        let mut age = None;
        let at = match self.cfg.promote_after {
            Some(after) if r.priority == RequestPriority::Low => {
                changed.map_or(since, |c| c.max(since)).checked_add(after)
            }
            _ => None,
        };
        self.timers.arm(&mut age, TimerKind::Age, r.id, at);
        r.state = State::Queued { since, age, queue };
    }

    /// Take a waiting request out of its queue (it stays `Queued` until the
    /// caller moves it on) and disarm its ageing; returns since when it waits.
    pub(super) fn unfile(&mut self, key: ReqKey) -> Instant {
        let r = &mut self.reqs[key];
        let State::Queued { since, age, queue } = &mut r.state else { unreachable!("unfile a waiting request") };
        self.timers.disarm(age, TimerKind::Age, r.id);
        let (since, queue, priority) = (*since, *queue, r.priority);
        let peer_priority = self.registry.peer(r.peer).priority;
        self.waiting.remove(queue, peer_priority, filed(&self.reqs, priority));
        since
    }

    /// Queue a request again at the front of its peer's queue; that peer is
    /// served next in its class.
    pub(super) fn refile_front(&mut self, key: ReqKey, since: Instant, changed: Option<Instant>) {
        self.reqs[key].order = order_of(self.next_front);
        self.next_front = self.next_front.saturating_sub(1);
        self.file(key, since, changed);
        let peer = self.registry.peer(self.reqs[key].peer).id;
        self.waiting.serve_next(self.class_of(key), peer);
    }

    /// Stop a running attempt: release its limits and timers, and emit
    /// `Abort` when the scheduler (not the adapter) ends it. The request is
    /// left `Stopped` for the caller to move on.
    pub(super) fn stop_attempt(&mut self, key: ReqKey, abort: bool) -> Attempt {
        let r = &mut self.reqs[key];
        let State::Running(ak) = std::mem::replace(&mut r.state, State::Stopped) else {
            unreachable!("stop_attempt on a request that is not running")
        };
        let a = self.running.get_mut(ak);
        self.timers.disarm(&mut a.soft, TimerKind::Soft, r.id);
        self.timers.disarm(&mut a.idle, TimerKind::Idle, r.id);
        self.timers.disarm(&mut a.hard, TimerKind::Hard, r.id);
        if abort {
            self.out.push_back(Output::Abort(r.id));
        }
        self.running.stop(&mut self.hosts, ak)
    }

    /// End a request: emit its terminal event and free everything it held.
    pub(super) fn finish(&mut self, key: ReqKey, ev: DownloaderEvent) {
        debug_assert!(ev.is_terminal());
        self.emit(key, ev);
        let r = &mut self.reqs[key];
        if let Some(x) = &mut r.extra {
            self.timers.disarm(&mut x.deadline_at, TimerKind::Deadline, r.id);
        }
        let r = &self.reqs[key];
        if let Some(g) = r.group {
            let reqs = &self.reqs;
            self.registry.leave(g, |id| live(reqs, id).is_some());
        }
        self.hosts.release(r.host);
        self.reqs.remove(key);
    }

    pub(super) fn cancel_key(&mut self, key: ReqKey, reason: CancelReason) {
        self.leave(key);
        let r = &self.reqs[key];
        let ev = DownloaderEvent::RequestCancelled { request_id: r.id, reason, bytes_transferred: r.delivered };
        self.finish(key, ev);
    }

    /// Take a request out of where it is (a running one is aborted), for
    /// the caller to end it.
    fn leave(&mut self, key: ReqKey) {
        match self.reqs[key].state {
            State::Queued { .. } => {
                self.unfile(key);
            }
            State::Backoff { until, .. } => {
                let id = self.reqs[key].id;
                self.timers.disarm(&mut Some(until), TimerKind::Backoff, id);
            }
            State::Running(_) => {
                self.stop_attempt(key, true);
            }
            State::Stopped => unreachable!("a request is never left stopped"),
        }
    }

    /// The request's whole deadline passed: it fails with a timeout
    /// wherever it is, or completes if a bounded range is all there.
    pub(super) fn expire(&mut self, key: ReqKey, now: Instant) {
        let r = &self.reqs[key];
        if r.attempt().is_some() && r.fully_delivered() {
            return self.complete(key, now, true);
        }
        self.leave(key);
        let ev =
            DownloaderEvent::RequestFailed { request_id: self.reqs[key].id, error: NetError::Timeout, retryable: true };
        self.finish(key, ev);
    }

    /// Point the request at `url` (checked fetchable) and its host.
    pub(super) fn retarget(&mut self, key: ReqKey, url: Url) {
        let (name, port) = Hosts::key_of(&url).expect("a checked URL has a host");
        let host = self.hosts.acquire(name, port);
        let r = &mut self.reqs[key];
        let old = std::mem::replace(&mut r.host, host);
        r.url = url;
        self.hosts.release(old);
    }

    /// With mirrors, after an attempt failed with `error`: move the request
    /// to its next URL if one is left in this round and the error is the
    /// server's; whether it moved.
    fn next_mirror(&mut self, key: ReqKey, error: &NetError) -> bool {
        // Without an `Extra` there is no mirror: `switch_mirror` says no.
        let next = self.reqs[key].extra.as_ref().map_or(0, |x| x.mirror + 1);
        !matches!(error, NetError::Sink(_) | NetError::TooLarge) && self.switch_mirror(key, next)
    }

    /// Point a request with mirrors at its URL `index` of `[first,
    /// mirrors..]` (0 starts a new round), its redirect count starting
    /// again; whether it has that URL.
    fn switch_mirror(&mut self, key: ReqKey, index: usize) -> bool {
        let Some(x) = self.reqs[key].extra.as_deref_mut() else { return false };
        let Some(url) = x.url(index).cloned() else { return false };
        x.mirror = index;
        x.redirects = 0;
        self.retarget(key, url);
        true
    }

    /// End a running request as completed (`abort`: the scheduler stops the
    /// transfer itself, e.g. a timeout after a bounded range was delivered).
    pub(super) fn complete(&mut self, key: ReqKey, now: Instant, abort: bool) {
        let a = self.stop_attempt(key, abort);
        let duration = now.saturating_duration_since(a.start);
        let bandwidth_bps = bits_per_second(a.bytes, duration);
        self.bandwidth.sample(a.bytes, bandwidth_bps);
        let mut meter = a.meter;
        if let Some(bps) = meter.on_complete(a.bytes, now) {
            self.registry.peer_mut(self.reqs[key].peer).bandwidth.sample_rate(bps);
        }
        let r = &self.reqs[key];
        let ev = DownloaderEvent::RequestCompleted {
            request_id: r.id,
            bytes_transferred: r.delivered,
            duration,
            bandwidth_bps,
        };
        self.finish(key, ev);
    }

    /// A running attempt failed (`abort`: the scheduler stops it itself, on
    /// an idle or hard timeout; `anyway`: retry it whatever the error's
    /// class). Complete, move to a mirror, fail, or retry.
    pub(super) fn attempt_failed(&mut self, key: ReqKey, error: NetError, now: Instant, abort: bool, anyway: bool) {
        if self.reqs[key].fully_delivered() {
            return self.complete(key, now, abort);
        }
        self.stop_attempt(key, abort);
        if self.next_mirror(key, &error) {
            return self.retry(key, error, Duration::ZERO, now);
        }
        let r = &self.reqs[key];
        let policy = r.retry_policy(&self.cfg);
        let retryable = error.is_retryable();
        let too_late = error.retry_after().is_some_and(|ra| ra > policy.max_retry_after);
        if !(retryable || anyway) || r.retries() >= policy.max_retries || too_late {
            let ev = DownloaderEvent::RequestFailed { request_id: r.id, error, retryable };
            return self.finish(key, ev);
        }
        let n = r.retries() + 1;
        let delay = match error.retry_after() {
            Some(ra) => ra,
            None => backoff(policy, n, &mut self.rng),
        };
        self.reqs[key].extra_mut().retries = n;
        self.switch_mirror(key, 0);
        self.retry(key, error, delay, now);
    }

    /// Emit `RequestRetrying` and wait `delay` (none: re-queue at once).
    fn retry(&mut self, key: ReqKey, error: NetError, delay: Duration, now: Instant) {
        let r = &self.reqs[key];
        let ev =
            DownloaderEvent::RequestRetrying { request_id: r.id, attempt: r.attempt.saturating_add(1), delay, error };
        self.emit(key, ev);
        match now.checked_add(delay) {
            _ if delay.is_zero() => self.refile_front(key, now, None),
            Some(until) => {
                let r = &mut self.reqs[key];
                r.state = State::Backoff { until, changed: None };
                self.timers.arm(&mut None, TimerKind::Backoff, r.id, Some(until));
            }
            // A delay beyond the clock's range: the request would never run.
            None => {
                let r = &self.reqs[key];
                let ev = DownloaderEvent::RequestFailed { request_id: r.id, error: NetError::Timeout, retryable: true };
                self.finish(key, ev);
            }
        }
    }
}
