//! Operation sequences for property tests and fuzz targets: decoded from
//! raw bytes (so proptest and cargo-fuzz share one format), run against the
//! real scheduler under the [`Checker`](crate::Checker), and optionally
//! against the reference [`Model`] with outputs compared step by step.

use std::time::Duration;

use weir::{Config, EnqueueError, GroupId, NetError, Output, PeerId, Request, RequestId, RetryPolicy, Timeouts, Url};
use weir::{Footprint, RequestPriority};

use crate::model::{canonical, Model};
use crate::Sim;

/// One input to the scheduler. Indices pick among the peers, groups and
/// requests created so far (modulo their count).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Add a peer (High when true).
    AddPeer(bool),
    /// Remove a peer.
    RemovePeer(u8),
    /// Change a peer's priority.
    SetPeerPriority(u8, bool),
    /// Open a group for a peer.
    NewGroup(u8),
    /// Cancel a group.
    CancelGroup(u8),
    /// Enqueue a request.
    Enqueue {
        /// Peer index.
        peer: u8,
        /// Host index (0..4; 4 means a bad URL kind, see `url_for`).
        host: u8,
        /// High priority.
        high: bool,
        /// HEAD instead of GET.
        head: bool,
        /// Group index.
        group: Option<u8>,
        /// Byte range.
        range: Option<(u8, u8)>,
        /// Its own timeouts (see `timeouts_for`).
        timeouts: Option<u8>,
        /// Its own retry policy (see `retry_for`).
        retry: Option<u8>,
        /// A whole-request deadline in ms.
        deadline: Option<u16>,
        /// Mirrors, by host index as for `host`.
        mirrors: Vec<u8>,
    },
    /// Cancel a request.
    Cancel(u8),
    /// Change a request's priority.
    SetPriority(u8, bool),
    /// Report bytes.
    Bytes(u8, u16),
    /// Report bytes a stopped attempt wrote late.
    LateBytes(u8, u16),
    /// Report completion.
    Complete(u8),
    /// Report failure (error kind).
    Fail(u8, u8),
    /// Report a redirect (target kind, see `redirect_target`).
    Redirect(u8, u8),
    /// Report a failure after which the bytes were thrown away (error kind).
    Discard(u8, u8),
    /// Report a response head (status kind, length).
    Response(u8, u8, Option<u16>),
    /// Advance the clock (ms), firing deadlines on the way.
    Advance(u16),
    /// Call `handle_timeout` with a time in the past (ms back).
    Backwards(u16),
    /// Shut down.
    Shutdown,
}

/// A cursor over fuzz bytes that yields zeros when exhausted.
struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn u8(&mut self) -> u8 {
        match self.0.split_first() {
            Some((&b, rest)) => {
                self.0 = rest;
                b
            }
            None => 0,
        }
    }
    fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }
    fn bool(&mut self) -> bool {
        self.u8() & 1 == 1
    }
    fn opt<T>(&mut self, f: impl FnOnce(&mut Self) -> T) -> Option<T> {
        if self.u8().is_multiple_of(4) {
            Some(f(self))
        } else {
            None
        }
    }
}

/// Decode a config (first 12 bytes) and up to `max_ops` operations.
#[must_use]
pub fn decode(data: &[u8], max_ops: usize) -> (Config, Vec<Op>) {
    let mut b = Bytes(data);
    let ms = |n: u64| Duration::from_millis(n);
    let mut cfg = Config {
        max_concurrent: usize::from(b.u8() % 5) + 1,
        max_per_host: b.opt(|b| usize::from(b.u8() % 3) + 1),
        max_low_in_flight: b.opt(|b| usize::from(b.u8() % 3) + 1),
        max_queued: b.opt(|b| usize::from(b.u8() % 20) + 1),
        ..Config::default()
    };
    let timers = b.u8();
    cfg.soft_timeout = (timers & 1 != 0).then(|| ms(300));
    cfg.idle_timeout = (timers & 2 != 0).then(|| ms(700));
    cfg.hard_timeout = (timers & 4 != 0).then(|| ms(1500));
    cfg.preempt_low = timers & 8 != 0;
    cfg.promote_after = (timers & 16 != 0).then(|| ms(u64::from(timers >> 5) * 200));
    let r = b.u8();
    cfg.retry = RetryPolicy {
        max_retries: u32::from(r % 4),
        base: ms(50),
        cap: ms(400),
        jitter: r & 4 != 0,
        max_retry_after: ms(1000),
    };
    cfg.max_redirects = u32::from((r >> 3) % 4);
    cfg.allow_https_downgrade = r & 32 != 0;
    cfg.seed = u64::from(b.u16());
    let mut ops = Vec::new();
    while !b.0.is_empty() && ops.len() < max_ops {
        let op = match b.u8() % 34 {
            0 | 1 => Op::AddPeer(b.bool()),
            2 => Op::RemovePeer(b.u8()),
            3 => Op::SetPeerPriority(b.u8(), b.bool()),
            4 => Op::NewGroup(b.u8()),
            5 => Op::CancelGroup(b.u8()),
            6..=13 => {
                let flags = b.u8();
                Op::Enqueue {
                    peer: b.u8(),
                    host: b.u8() % 5,
                    high: flags & 1 != 0,
                    head: flags & 2 != 0,
                    group: (flags & 4 != 0).then(|| b.u8()),
                    range: (flags & 8 != 0).then(|| (b.u8(), b.u8())),
                    timeouts: (flags & 16 != 0).then(|| b.u8()),
                    retry: (flags & 32 != 0).then(|| b.u8()),
                    deadline: (flags & 64 != 0).then(|| b.u16() % 4000),
                    mirrors: if flags & 128 != 0 { (0..=b.u8() % 3).map(|_| b.u8() % 5).collect() } else { Vec::new() },
                }
            }
            14 | 15 => Op::Cancel(b.u8()),
            16 | 17 => Op::SetPriority(b.u8(), b.bool()),
            18..=21 => Op::Bytes(b.u8(), if b.u8() % 4 == 0 { 0 } else { b.u16() % 5000 }),
            22 => Op::LateBytes(b.u8(), b.u16() % 5000),
            23..=25 => Op::Complete(b.u8()),
            26 => Op::Fail(b.u8(), b.u8()),
            27 => Op::Redirect(b.u8(), b.u8()),
            28..=30 => Op::Advance(b.u16() % 3000),
            32 => Op::Discard(b.u8(), b.u8()),
            33 => Op::Response(b.u8(), b.u8(), b.opt(Bytes::u16)),
            _ if b.u8() % 8 == 0 => Op::Shutdown,
            _ => Op::Backwards(b.u16() % 500),
        };
        ops.push(op);
    }
    (cfg, ops)
}

/// Every kind of `NetError`, picked by `e`.
#[must_use]
pub fn error(e: u8) -> NetError {
    match e % 12 {
        0 => NetError::Timeout,
        1 => NetError::Reset("reset".into()),
        2 => NetError::Connect("refused".into()),
        3 => NetError::Status { status: 503, retry_after: Some(Duration::from_millis(u64::from(e) * 10)) },
        4 => NetError::Status { status: 429, retry_after: None },
        5 => NetError::Status { status: 404, retry_after: None },
        6 => NetError::Tls("bad cert".into()),
        7 => NetError::Dns("nxdomain".into()),
        8 => NetError::InvalidUrl("bad".into()),
        9 => NetError::TooLarge,
        10 => NetError::Sink("disk full".into()),
        _ => NetError::Protocol("bad 206".into()),
    }
}

/// Where a redirect points: one of the four hosts, https, or a URL that
/// cannot be fetched.
fn redirect_target(t: u8) -> Url {
    let s = match t % 6 {
        k @ 0..=3 => format!("http://h{k}.example/moved/{t}"),
        4 => "https://h0.example/secure".to_owned(),
        _ => "ftp://h.example/nope".to_owned(),
    };
    Url::parse(&s).expect("valid test URL")
}

/// Per-request timeouts: each of soft, idle, hard on or off by a bit.
fn timeouts_for(t: u8) -> Timeouts {
    let ms = |bit: u8, n: u64| (t & bit != 0).then(|| Duration::from_millis(n + u64::from(t >> 3) * 40));
    Timeouts { soft: ms(1, 100), idle: ms(2, 250), hard: ms(4, 600) }
}

/// A per-request retry policy.
fn retry_for(r: u8) -> RetryPolicy {
    RetryPolicy {
        max_retries: u32::from(r % 5),
        base: Duration::from_millis(10 + u64::from(r >> 4) * 10),
        cap: Duration::from_millis(300),
        jitter: r & 8 != 0,
        max_retry_after: Duration::from_millis(500),
    }
}

/// A response's status.
fn status_for(s: u8) -> u16 {
    [200, 206, 416, 204][usize::from(s % 4)]
}

fn url_for(host: u8, n: usize) -> Url {
    let s = match host {
        0..=3 => format!("http://h{host}.example/{n}"),
        _ if n.is_multiple_of(2) => format!("ftp://h.example/{n}"),
        _ => format!("https://127.0.0.2:8443/{n}"),
    };
    Url::parse(&s).expect("valid test URL")
}

fn pick<T: Copy>(v: &[T], i: u8) -> Option<T> {
    index(v.len(), i).map(|k| v[k])
}

fn index(len: usize, i: u8) -> Option<usize> {
    (len > 0).then(|| usize::from(i) % len)
}

fn prio(high: bool) -> RequestPriority {
    if high {
        RequestPriority::High
    } else {
        RequestPriority::Low
    }
}

/// The real scheduler and, optionally, the model, fed the same inputs.
struct Pair {
    sim: Sim,
    model: Option<Model>,
    peers: Vec<PeerId>,
    groups: Vec<GroupId>,
    reqs: Vec<RequestId>,
}

impl Pair {
    fn at(&self) -> Duration {
        self.sim.at()
    }

    /// Drain both and compare.
    fn drain(&mut self) -> Vec<Output> {
        let out = self.sim.drain();
        if let Some(m) = &mut self.model {
            let mut want = Vec::new();
            while let Some(o) = m.poll_output() {
                want.push(o);
                assert!(want.len() < 1_000_000, "model livelock");
            }
            let got: Vec<_> = out.iter().map(|o| canonical(o, &self.peers)).collect();
            assert_eq!(got, want, "the scheduler and the model disagree at {:?}", self.sim.at());
            assert_eq!(self.sim.s.in_flight(), m.in_flight());
            assert_eq!(self.sim.s.queued(), m.queued_count());
            assert_eq!(self.sim.s.bandwidth_estimate(), m.bandwidth_estimate());
            for (k, &p) in self.peers.iter().enumerate() {
                assert_eq!(self.sim.s.peer_bandwidth(p), m.peer_bandwidth(k), "peer {k}'s bandwidth");
            }
            for &r in &self.reqs {
                assert_eq!(self.sim.s.transfer_rate(r), m.transfer_rate(r.seq()), "{r:?}'s rate");
            }
            let real = self.sim.s.poll_timeout().map(|t| t - self.sim.t0);
            assert_eq!(real, m.poll_timeout(), "poll_timeout differs");
        }
        out
    }

    /// Fire deadlines up to `at() + d` at their exact times, draining in between.
    fn advance(&mut self, d: Duration) {
        let target = self.sim.now + d;
        self.drain();
        for _ in 0..100_000 {
            match self.sim.s.poll_timeout() {
                Some(t) if t <= target => {
                    assert!(t >= self.sim.now, "a deadline earlier than the last now");
                    self.sim.now = t;
                }
                _ => break,
            }
            self.timeout();
        }
        self.sim.now = target;
        self.timeout();
    }

    fn timeout(&mut self) {
        self.sim.s.handle_timeout(self.sim.now);
        let at = self.at();
        if let Some(m) = &mut self.model {
            m.handle_timeout(at);
        }
        self.drain();
    }

    fn apply(&mut self, op: &Op) {
        let now = self.sim.now;
        let at = self.at();
        let m = &mut self.model;
        match *op {
            Op::AddPeer(h) => {
                self.peers.push(self.sim.s.add_peer(prio(h)));
                if let Some(m) = m {
                    m.add_peer(prio(h));
                }
            }
            Op::RemovePeer(i) => {
                if let Some(k) = index(self.peers.len(), i) {
                    self.sim.s.remove_peer(self.peers[k], now);
                    if let Some(m) = m {
                        m.remove_peer(k, at);
                    }
                }
            }
            Op::SetPeerPriority(i, h) => {
                if let Some(k) = index(self.peers.len(), i) {
                    self.sim.s.set_peer_priority(self.peers[k], prio(h), now);
                    if let Some(m) = m {
                        m.set_peer_priority(k, prio(h), at);
                    }
                }
            }
            Op::NewGroup(i) => {
                if let Some(k) = index(self.peers.len(), i) {
                    self.groups.push(self.sim.s.new_group(self.peers[k]));
                    if let Some(m) = m {
                        m.new_group(k);
                    }
                }
            }
            Op::CancelGroup(i) => {
                if let Some(k) = index(self.groups.len(), i) {
                    self.sim.s.cancel_group(self.groups[k], now);
                    if let Some(m) = m {
                        m.cancel_group(k, at);
                    }
                }
            }
            Op::Enqueue { peer, host, high, head, group, range, timeouts, retry, deadline, ref mirrors } => {
                let Some(k) = index(self.peers.len(), peer) else { return };
                let u = url_for(host, self.reqs.len());
                let mut r = if head { Request::head(u) } else { Request::get(u) }.priority(prio(high));
                if let Some(t) = timeouts {
                    r = r.timeouts(timeouts_for(t));
                }
                if let Some(p) = retry {
                    r = r.retry(retry_for(p));
                }
                if let Some(d) = deadline {
                    r = r.deadline(Duration::from_millis(u64::from(d)));
                }
                for (j, &h) in mirrors.iter().enumerate() {
                    r = r.mirror(url_for(h, self.reqs.len() + 1000 * (j + 1)));
                }
                let g = group.and_then(|g| index(self.groups.len(), g));
                if let Some(g) = g {
                    r = r.group(self.groups[g]);
                }
                if let Some((a, b)) = range {
                    r = r.range(u64::from(a), Some(u64::from(b)));
                }
                let queued = self.sim.s.queued();
                let got = self.sim.s.enqueue(self.peers[k], r.clone(), now);
                if let Err(EnqueueError::QueueFull) = got {
                    let max = self.sim.s.config().max_queued;
                    assert!(max.is_some_and(|m| queued >= m), "QueueFull below max_queued");
                }
                if let Some(m) = m {
                    let want = m.enqueue(k, &r, g, at);
                    match (&got, &want) {
                        (Ok(id), Ok(seq)) => assert_eq!(id.seq(), *seq, "ids are handed out in order"),
                        (Err(a), Err(b)) => {
                            assert_eq!(std::mem::discriminant(a), std::mem::discriminant(b), "{a:?} vs {b:?}");
                        }
                        _ => panic!("enqueue: scheduler {got:?}, model {want:?}"),
                    }
                }
                if let Ok(id) = got {
                    self.reqs.push(id);
                }
            }
            Op::Cancel(i) => {
                if let Some(r) = pick(&self.reqs, i) {
                    self.sim.s.cancel(r, now);
                    if let Some(m) = m {
                        m.cancel(r.seq(), at);
                    }
                }
            }
            Op::SetPriority(i, h) => {
                if let Some(r) = pick(&self.reqs, i) {
                    self.sim.s.set_priority(r, prio(h), now);
                    if let Some(m) = m {
                        m.set_priority(r.seq(), prio(h), at);
                    }
                }
            }
            Op::Bytes(i, n) => {
                if let Some(r) = pick(&self.reqs, i) {
                    // Zero bytes stand for a skipped resend: alive, nothing delivered.
                    if n == 0 {
                        self.sim.s.on_progress(r, now);
                        if let Some(m) = m {
                            m.on_progress(r.seq(), at);
                        }
                    } else {
                        self.sim.s.on_bytes(r, u64::from(n), now);
                        if let Some(m) = m {
                            m.on_bytes(r.seq(), u64::from(n), at);
                        }
                    }
                }
            }
            Op::LateBytes(i, n) => {
                if let Some(r) = pick(&self.reqs, i) {
                    self.sim.s.on_late_bytes(r, u64::from(n), now);
                    if let Some(m) = m {
                        m.on_late_bytes(r.seq(), u64::from(n), at);
                    }
                }
            }
            Op::Complete(i) => {
                if let Some(r) = pick(&self.reqs, i) {
                    self.sim.s.on_complete(r, now);
                    if let Some(m) = m {
                        m.on_complete(r.seq(), at);
                    }
                }
            }
            Op::Fail(i, e) => {
                if let Some(r) = pick(&self.reqs, i) {
                    self.sim.s.on_failed(r, error(e), now);
                    if let Some(m) = m {
                        m.on_failed(r.seq(), error(e), at);
                    }
                }
            }
            Op::Redirect(i, t) => {
                if let Some(r) = pick(&self.reqs, i) {
                    self.sim.s.on_redirect(r, redirect_target(t), now);
                    if let Some(m) = m {
                        m.on_redirect(r.seq(), redirect_target(t), at);
                    }
                }
            }
            Op::Discard(i, e) => {
                if let Some(r) = pick(&self.reqs, i) {
                    self.sim.s.on_discarded(r, error(e), now);
                    if let Some(m) = m {
                        m.on_discarded(r.seq(), error(e), at);
                    }
                }
            }
            Op::Response(i, st, len) => {
                if let Some(r) = pick(&self.reqs, i) {
                    let len = len.map(u64::from);
                    self.sim.s.on_response(r, status_for(st), len, now);
                    if let Some(m) = m {
                        m.on_response(r.seq(), status_for(st), len, at);
                    }
                }
            }
            Op::Advance(d) => self.advance(Duration::from_millis(u64::from(d))),
            Op::Backwards(d) => {
                let back = Duration::from_millis(u64::from(d));
                self.sim.s.handle_timeout(now.checked_sub(back).unwrap_or(now));
                if let Some(m) = m {
                    m.handle_timeout(at.saturating_sub(back));
                }
            }
            Op::Shutdown => {
                self.sim.s.shutdown(now);
                if let Some(m) = m {
                    m.shutdown(at);
                }
            }
        }
        self.drain();
    }
}

/// Run `ops` on a fresh scheduler (and the model when `with_model`), then
/// complete every transfer and let every timer fire until nothing is left.
/// Panics at the first broken invariant or disagreement; returns the log.
#[must_use]
pub fn run(cfg: &Config, ops: &[Op], with_model: bool) -> Vec<Output> {
    let mut p = Pair {
        sim: Sim::new(cfg.clone()),
        model: with_model.then(|| Model::new(cfg.clone())),
        peers: Vec::new(),
        groups: Vec::new(),
        reqs: Vec::new(),
    };
    p.apply(&Op::AddPeer(false));
    for op in ops {
        p.apply(op);
    }
    // Wind down: complete whatever runs, fire timers, until nothing is left.
    for _ in 0..100_000 {
        if p.sim.checker.live() == 0 {
            break;
        }
        let (now, at) = (p.sim.now, p.sim.at());
        for r in &p.reqs {
            p.sim.s.on_complete(*r, now);
            if let Some(m) = &mut p.model {
                m.on_complete(r.seq(), at);
            }
        }
        p.drain();
        if let Some(t) = p.sim.s.poll_timeout() {
            p.advance(t.saturating_duration_since(p.sim.now));
        }
    }
    assert_eq!(p.sim.checker.live(), 0, "every request ended");
    for r in &p.reqs {
        let _ = p.sim.terminal(*r);
    }
    let fp = p.sim.s.footprint();
    assert_eq!(fp, Footprint { peers: fp.peers, groups: fp.groups, ..Footprint::default() }, "memory back to baseline");
    assert_eq!(p.sim.s.poll_timeout(), None);
    p.sim.log
}
