//! The running attempts: their table and every count that follows from it
//! (in flight, Low in flight, running per host). Only
//! [`Running::start`], [`Running::stop`] and [`Running::set_low`] change
//! them, so the counts cannot drift apart.

use std::time::Instant;

use crate::bandwidth::Meter;
use crate::hosts::Hosts;
use crate::ids::RequestId;
use crate::keys::{AttemptKey, HostKey, ReqKey, Table};

/// One running attempt of a request.
#[derive(Debug)]
pub(crate) struct Attempt {
    pub(crate) req: ReqKey,
    pub(crate) id: RequestId,
    /// The host it counts against.
    pub(crate) host: HostKey,
    /// Whether it counts against the Low reserve (its request priority).
    low: bool,
    pub(crate) start: Instant,
    /// Start order, to find the most recently started preemption victim.
    seq: u64,
    /// Bytes of this attempt.
    pub(crate) bytes: u64,
    pub(crate) first_byte: bool,
    /// Whether its response head was reported.
    pub(crate) responded: bool,
    /// Its rate, window by window.
    pub(crate) meter: Meter,
    pub(crate) soft: Option<Instant>,
    pub(crate) idle: Option<Instant>,
    pub(crate) hard: Option<Instant>,
}

/// The running attempts. At most `max_concurrent` of them, so scans are
/// cheap and the table stays in cache.
#[derive(Debug, Default)]
pub(crate) struct Running {
    attempts: Table<AttemptKey, Attempt>,
    low: usize,
    next_seq: u64,
}

impl Running {
    /// Start an attempt of `req` to `host` (`low`: a Low request).
    pub(crate) fn start(
        &mut self,
        hosts: &mut Hosts,
        req: ReqKey,
        id: RequestId,
        host: HostKey,
        low: bool,
        now: Instant,
    ) -> AttemptKey {
        hosts.started(host);
        self.low += usize::from(low);
        let seq = self.next_seq;
        self.next_seq += 1;
        self.attempts.insert(Attempt {
            req,
            id,
            host,
            low,
            start: now,
            seq,
            bytes: 0,
            first_byte: false,
            responded: false,
            meter: Meter::new(now),
            soft: None,
            idle: None,
            hard: None,
        })
    }

    /// End an attempt; its timers must be disarmed by the caller first.
    pub(crate) fn stop(&mut self, hosts: &mut Hosts, key: AttemptKey) -> Attempt {
        let a = self.attempts.remove(key);
        debug_assert!(a.soft.is_none() && a.idle.is_none() && a.hard.is_none(), "timers disarmed");
        hosts.stopped(a.host);
        self.low -= usize::from(a.low);
        a
    }

    /// The running request's priority changed.
    pub(crate) fn set_low(&mut self, key: AttemptKey, low: bool) {
        let a = &mut self.attempts[key];
        self.low = self.low - usize::from(a.low) + usize::from(low);
        a.low = low;
    }

    pub(crate) fn get(&self, key: AttemptKey) -> &Attempt {
        &self.attempts[key]
    }

    pub(crate) fn get_mut(&mut self, key: AttemptKey) -> &mut Attempt {
        &mut self.attempts[key]
    }

    /// Transfers running now.
    pub(crate) fn len(&self) -> usize {
        self.attempts.len()
    }

    /// Low requests running now.
    pub(crate) fn low(&self) -> usize {
        self.low
    }

    /// The running attempts.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (AttemptKey, &Attempt)> {
        self.attempts.iter()
    }

    /// The preemption victim: among the running Low requests for which
    /// `class_of` gives a class (those not eligible give `None`) strictly
    /// worse than `worse_than`, the one of the worst class, most recently
    /// started.
    pub(crate) fn victim<C: Ord + Copy>(
        &self,
        worse_than: C,
        class_of: impl Fn(&Attempt) -> Option<C>,
    ) -> Option<ReqKey> {
        self.attempts
            .values()
            .filter(|a| a.low)
            .filter_map(|a| Some((class_of(a)?, a.seq, a.req)))
            .filter(|&(c, _, _)| c > worse_than)
            .max_by_key(|&(c, seq, _)| (c, seq))
            .map(|(_, _, req)| req)
    }

    pub(crate) fn shrink_to_fit(&mut self) {
        self.attempts.shrink_to_fit();
    }
}
