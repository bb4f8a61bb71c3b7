//! Dispatch: which waiting requests start now and, with `preempt_low`,
//! which running Low request makes room for a waiting High one. A function
//! of the waiting queues, the running set, the hosts and the config, run
//! lazily from `poll_output`.

use std::time::Instant;

use super::{filed, Scheduler};
use crate::class::Class;
use crate::events::{DownloaderEvent, Output};
use crate::keys::{HostKey, Key, ReqKey};
use crate::live::State;
use crate::request::{FetchCmd, RequestPriority};
use crate::timers::TimerKind;

impl Scheduler {
    /// Start what can start, in class order; then, with `preempt_low`, make
    /// room for waiting High requests by aborting Low ones of worse classes.
    pub(super) fn fill(&mut self) {
        let Some(now) = self.now else { return };
        if self.shut_down {
            return;
        }
        loop {
            // Within one pass, starting transfers only fills hosts and the
            // Low reserve, so a class with nothing startable stays that way.
            let mut exhausted = [false; 4];
            while self.running.len() < self.cfg.max_concurrent {
                let mut started = false;
                for class in Class::ALL {
                    if exhausted[class.index()] || (class.request() == RequestPriority::Low && self.low_reserve_full())
                    {
                        continue;
                    }
                    match self.pick(class) {
                        Some(key) => {
                            self.start(key, now);
                            started = true;
                            break;
                        }
                        None => exhausted[class.index()] = true,
                    }
                }
                if !started {
                    break;
                }
            }
            if !self.cfg.preempt_low || self.running.len() < self.cfg.max_concurrent {
                return;
            }
            let waiter = [Class::HighHigh, Class::LowHigh]
                .into_iter()
                .find(|&c| !exhausted[c.index()] && self.pick(c).is_some());
            let Some(victim) = waiter.and_then(|w| self.victim(w)) else { return };
            self.stop_attempt(victim, true);
            let r = &self.reqs[victim];
            let ev = DownloaderEvent::RequestPreempted { request_id: r.id, bytes_transferred: r.delivered };
            self.emit(victim, ev);
            self.refile_front(victim, now, None);
        }
    }

    fn low_reserve_full(&self) -> bool {
        self.cfg.max_low_in_flight.is_some_and(|max| self.running.low() >= max)
    }

    /// The request `class` would start next. A request to a host at
    /// `max_per_host`, or paused, cannot start now and is skipped.
    fn pick(&mut self, class: Class) -> Option<ReqKey> {
        let blocked = |h: HostKey| {
            self.cfg.max_per_host.is_some_and(|max| self.hosts.running(h) >= max)
                || self.now.is_some_and(|now| self.hosts.is_paused(h, now))
        };
        let (_, id) = self.waiting.pick(class, blocked, filed(&self.reqs, class.request()))?;
        Some(ReqKey::from_index(id.key()))
    }

    /// The running Low request to preempt for a waiter of class `waiter`: of
    /// those in a strictly worse class (by current peer priority) and not
    /// done with a bounded range, the worst-class, most recently started one.
    fn victim(&self, waiter: Class) -> Option<ReqKey> {
        self.running.victim(waiter, |a| (!self.reqs[a.req].fully_delivered()).then(|| self.class_of(a.req)))
    }

    fn start(&mut self, key: ReqKey, now: Instant) {
        let r = &mut self.reqs[key];
        let id = r.id;
        let State::Queued { since, age, queue } = &mut r.state else { unreachable!("starting a waiting request") };
        let (since, queue, priority) = (*since, *queue, r.priority);
        self.timers.disarm(age, TimerKind::Age, id);
        let peer = self.registry.peer(r.peer);
        let (peer_id, peer_priority) = (peer.id, peer.priority);
        self.waiting.take(queue, peer_priority, filed(&self.reqs, priority));
        let r = &mut self.reqs[key];
        r.attempt = r.attempt.saturating_add(1);
        let ak = self.running.start(&mut self.hosts, key, id, r.host, r.priority == RequestPriority::Low, now);
        r.state = State::Running(ak);
        let at = |d: Option<std::time::Duration>| d.and_then(|d| now.checked_add(d));
        // The whole-request deadline runs from the first start.
        if let Some(x) = r.extra.as_mut().filter(|_| r.attempt == 1) {
            self.timers.arm(&mut x.deadline_at, TimerKind::Deadline, id, at(x.policy.deadline));
        }
        let t = r.timeouts(&self.cfg);
        let a = self.running.get_mut(ak);
        self.timers.arm(&mut a.soft, TimerKind::Soft, id, at(t.soft));
        self.timers.arm(&mut a.idle, TimerKind::Idle, id, at(t.idle));
        self.timers.arm(&mut a.hard, TimerKind::Hard, id, at(t.hard));
        let cmd = FetchCmd {
            id,
            peer: peer_id,
            url: r.url.clone(),
            method: r.method,
            range: r.remaining_range(),
            attempt: r.attempt,
        };
        let ev = DownloaderEvent::RequestStarted {
            request_id: id,
            wait_in_queue: now.saturating_duration_since(since),
            attempt: r.attempt,
        };
        self.out.push_back(Output::Start(cmd));
        self.emit(key, ev);
    }
}
