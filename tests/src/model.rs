//! A reference model of the scheduling rules: deliberately simple (every
//! decision is a linear scan over a `Vec` of live requests), written from
//! DESIGN.md's text, and compared step by step with the real [`Scheduler`].
//!
//! It speaks in canonical terms so outputs compare exactly: time is a
//! `Duration` since the start, peers and groups are the indices the driver
//! created them in, and request ids are `RequestId::new(seq)`. Use
//! [`canonical`] to bring the real scheduler's outputs to that form.
//!
//! [`Scheduler`]: weir::Scheduler

use std::collections::{BTreeMap, VecDeque};
use std::num::NonZeroU64;
use std::time::Duration;

use weir::{
    CancelReason, Config, DownloaderEvent, EnqueueError, FetchCmd, NetError, Output, PeerId, Request, RequestId,
    RequestMethod, RequestPriority, RetryPolicy, Timeouts, Url,
};

/// An output in canonical form: the peer by creation index.
#[derive(Debug, Clone, PartialEq)]
pub enum Canon {
    /// `Output::Start` (the `FetchCmd` with a canonical id and no peer).
    Start { id: RequestId, url: Url, method: RequestMethod, range: Option<(u64, Option<u64>)>, attempt: u32 },
    /// `Output::Abort`.
    Abort(RequestId),
    /// `Output::Event` for the peer with this creation index.
    Event(usize, DownloaderEvent),
}

fn canon_id(id: RequestId) -> RequestId {
    RequestId::new(NonZeroU64::new(id.seq()).expect("seq >= 1"))
}

fn seq_id(seq: u64) -> RequestId {
    RequestId::new(NonZeroU64::new(seq).expect("seq >= 1"))
}

/// Bring a real output to canonical form; `peers` lists the real peer ids in creation order.
#[must_use]
pub fn canonical(o: &Output, peers: &[PeerId]) -> Canon {
    match o {
        Output::Start(FetchCmd { id, url, method, range, attempt, .. }) => {
            Canon::Start { id: canon_id(*id), url: url.clone(), method: *method, range: *range, attempt: *attempt }
        }
        Output::Abort(id) => Canon::Abort(canon_id(*id)),
        Output::Event(p, e) => {
            let idx = peers.iter().position(|x| x == p).expect("event for a peer the driver created");
            let mut e = e.clone();
            match &mut e {
                DownloaderEvent::RequestEnqueued { request_id, .. }
                | DownloaderEvent::RequestStarted { request_id, .. }
                | DownloaderEvent::FirstByte { request_id, .. }
                | DownloaderEvent::LoadSlow { request_id, .. }
                | DownloaderEvent::ResponseReceived { request_id, .. }
                | DownloaderEvent::RequestRetrying { request_id, .. }
                | DownloaderEvent::RequestPreempted { request_id, .. }
                | DownloaderEvent::PriorityChanged { request_id, .. }
                | DownloaderEvent::RequestRedirected { request_id, .. }
                | DownloaderEvent::RequestCompleted { request_id, .. }
                | DownloaderEvent::RequestFailed { request_id, .. }
                | DownloaderEvent::RequestCancelled { request_id, .. } => *request_id = canon_id(*request_id),
                other => panic!("the model does not know {other:?}"),
            }
            Canon::Event(idx, e)
        }
    }
}

#[derive(Debug)]
struct MAttempt {
    start: Duration,
    start_seq: u64,
    bytes: u64,
    first_byte: bool,
    responded: bool,
    /// The rate window: where it began (time, bytes) and the last closed one's rate.
    mark: Duration,
    mark_bytes: u64,
    last_rate: Option<u64>,
    soft: Option<Duration>,
    idle: Option<Duration>,
    hard: Option<Duration>,
}

#[derive(Debug)]
enum MState {
    Queued { age: Option<Duration> },
    Backoff(Duration),
    Running(MAttempt),
}

#[derive(Debug)]
struct MReq {
    seq: u64,
    peer: usize,
    group: Option<usize>,
    url: Url,
    host: (String, u16),
    method: RequestMethod,
    priority: RequestPriority,
    range: Option<(u64, Option<u64>)>,
    order: i64,
    ready_at: Duration,
    changed_at: Option<Duration>,
    delivered: u64,
    attempt: u32,
    retries: u32,
    redirects: u32,
    /// The request's timeouts and retry policy (its own, else the config's).
    timeouts: Timeouts,
    retry: RetryPolicy,
    deadline: Option<Duration>,
    deadline_at: Option<Duration>,
    /// Its URL and its mirrors, and which of them it fetches.
    urls: Vec<Url>,
    mirror: usize,
    state: MState,
}

impl MReq {
    fn done_range(&self) -> bool {
        matches!(self.range, Some((s, Some(e))) if self.delivered > e - s)
    }
    fn running(&self) -> bool {
        matches!(self.state, MState::Running(_))
    }
}

/// Timer kinds in the tie-break order of DESIGN's "deadlines at one instant".
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Deadline,
    Soft,
    Idle,
    Hard,
    Backoff,
    Age,
    /// The end of a host's pause (its `u64` is 0: hosts have no seq).
    Resume,
}

/// The reference model.
#[derive(Debug)]
pub struct Model {
    cfg: Config,
    now: Duration,
    reqs: Vec<MReq>,
    /// (priority, alive) by creation index.
    peers: Vec<(RequestPriority, bool)>,
    /// Each peer's in-transfer bandwidth EWMA, by creation index.
    peer_bw: Vec<Option<f64>>,
    /// (owner peer, alive) by creation index.
    groups: Vec<(usize, bool)>,
    /// Next peer (creation index) to serve in each slot.
    cursor: [usize; 4],
    out: VecDeque<Canon>,
    next_seq: u64,
    next_front: i64,
    next_start: u64,
    rng: u64,
    bandwidth: Option<f64>,
    shut_down: bool,
    /// Host health: no new start to a host before its instant. Forgotten
    /// when no live request points at the host (as the scheduler forgets it).
    pauses: BTreeMap<(String, u16), Duration>,
}

fn slot(peer: RequestPriority, req: RequestPriority) -> usize {
    (peer as usize) * 2 + req as usize
}

impl Model {
    /// A model of a scheduler with this config.
    #[must_use]
    pub fn new(cfg: Config) -> Self {
        Self {
            rng: cfg.seed,
            cfg,
            now: Duration::ZERO,
            reqs: Vec::new(),
            peers: Vec::new(),
            peer_bw: Vec::new(),
            groups: Vec::new(),
            cursor: [0; 4],
            out: VecDeque::new(),
            next_seq: 1,
            next_front: -1,
            next_start: 0,
            bandwidth: None,
            shut_down: false,
            pauses: BTreeMap::new(),
        }
    }

    fn tick(&mut self, now: Duration) -> Duration {
        self.now = self.now.max(now);
        self.now
    }

    fn idx(&self, seq: u64) -> Option<usize> {
        self.reqs.iter().position(|r| r.seq == seq)
    }

    fn emit(&mut self, i: usize, e: DownloaderEvent) {
        self.out.push_back(Canon::Event(self.reqs[i].peer, e));
    }

    /// Add a peer; returns its creation index.
    pub fn add_peer(&mut self, p: RequestPriority) -> usize {
        self.peers.push((p, true));
        self.peer_bw.push(None);
        self.peers.len() - 1
    }

    /// Change a peer's priority.
    pub fn set_peer_priority(&mut self, peer: usize, p: RequestPriority, now: Duration) {
        self.tick(now);
        if self.peers[peer].1 {
            self.peers[peer].0 = p;
        }
    }

    /// Remove a peer.
    pub fn remove_peer(&mut self, peer: usize, now: Duration) {
        self.tick(now);
        if !self.peers[peer].1 {
            return;
        }
        let mine: Vec<u64> = self.reqs.iter().filter(|r| r.peer == peer).map(|r| r.seq).collect();
        for seq in mine {
            self.cancel_seq(seq, CancelReason::PeerCancel);
        }
        self.peers[peer].1 = false;
    }

    /// Open a group; returns its creation index.
    pub fn new_group(&mut self, peer: usize) -> usize {
        let alive = self.peers[peer].1;
        self.groups.push((peer, alive));
        self.groups.len() - 1
    }

    /// Cancel a group.
    pub fn cancel_group(&mut self, g: usize, now: Duration) {
        self.tick(now);
        let (peer, alive) = self.groups[g];
        if !alive || !self.peers[peer].1 {
            return;
        }
        let members: Vec<u64> = self.reqs.iter().filter(|r| r.group == Some(g)).map(|r| r.seq).collect();
        for seq in members {
            self.cancel_seq(seq, CancelReason::EpochCancel);
        }
        self.groups[g].1 = false;
    }

    fn queued(&self) -> usize {
        self.reqs.iter().filter(|r| !r.running()).count()
    }

    /// Enqueue `req` (its group given as a creation index) for `peer`.
    ///
    /// # Errors
    /// As `Scheduler::enqueue`.
    pub fn enqueue(
        &mut self,
        peer: usize,
        req: &Request,
        group: Option<usize>,
        now: Duration,
    ) -> Result<u64, EnqueueError> {
        let now = self.tick(now);
        if self.shut_down {
            return Err(EnqueueError::ShutDown);
        }
        if !self.peers[peer].1 {
            return Err(EnqueueError::UnknownPeer);
        }
        let cancelled = match group {
            Some(g) if self.groups[g].0 != peer => return Err(EnqueueError::UnknownGroup),
            Some(g) => !self.groups[g].1,
            None => false,
        };
        let url = req.url().clone();
        if url.scheme() != "http" && url.scheme() != "https" {
            return Err(EnqueueError::InvalidRequest("scheme".into()));
        }
        let Some(host) = url.host_str().filter(|h| !h.is_empty()) else {
            return Err(EnqueueError::InvalidRequest("host".into()));
        };
        let host = (host.to_owned(), url.port_or_known_default().unwrap_or(0));
        for m in req.mirrors() {
            if host_of(m).is_none() {
                return Err(EnqueueError::InvalidRequest("mirror".into()));
            }
        }
        if let Some((s, Some(e))) = req.range_value() {
            if s > e {
                return Err(EnqueueError::InvalidRequest("range".into()));
            }
        }
        if !cancelled && self.cfg.max_queued.is_some_and(|m| self.queued() >= m) {
            return Err(EnqueueError::QueueFull);
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        let (method, priority) = (req.method(), req.priority_value());
        self.out.push_back(Canon::Event(
            peer,
            DownloaderEvent::RequestEnqueued { request_id: seq_id(seq), url: url.clone(), method, priority },
        ));
        if cancelled {
            let e = DownloaderEvent::RequestCancelled {
                request_id: seq_id(seq),
                reason: CancelReason::BeforeStart,
                bytes_transferred: 0,
            };
            self.out.push_back(Canon::Event(peer, e));
            return Ok(seq);
        }
        let urls: Vec<Url> = std::iter::once(url.clone()).chain(req.mirrors().iter().cloned()).collect();
        self.reqs.push(MReq {
            seq,
            peer,
            group,
            urls,
            mirror: 0,
            timeouts: req.timeouts_value().unwrap_or(Timeouts::of(&self.cfg)),
            retry: req.retry_value().unwrap_or(&self.cfg.retry).clone(),
            deadline: req.deadline_value(),
            deadline_at: None,
            url,
            host,
            method,
            priority,
            range: req.range_value(),
            order: seq as i64,
            ready_at: now,
            changed_at: None,
            delivered: 0,
            attempt: 0,
            retries: 0,
            redirects: 0,
            state: MState::Queued { age: None },
        });
        let i = self.reqs.len() - 1;
        self.arm_age(i);
        Ok(seq)
    }

    fn arm_age(&mut self, i: usize) {
        let r = &mut self.reqs[i];
        let age = match (self.cfg.promote_after, r.priority) {
            (Some(after), RequestPriority::Low) => Some(r.ready_at.max(r.changed_at.unwrap_or_default()) + after),
            _ => None,
        };
        r.state = MState::Queued { age };
    }

    /// Cancel a request.
    pub fn cancel(&mut self, seq: u64, now: Duration) {
        self.tick(now);
        if self.idx(seq).is_some() {
            self.cancel_seq(seq, CancelReason::Explicit);
        }
    }

    fn cancel_seq(&mut self, seq: u64, reason: CancelReason) {
        let i = self.idx(seq).expect("live");
        if self.reqs[i].running() {
            self.out.push_back(Canon::Abort(seq_id(seq)));
        }
        let e = DownloaderEvent::RequestCancelled {
            request_id: seq_id(seq),
            reason,
            bytes_transferred: self.reqs[i].delivered,
        };
        self.end(i, e);
    }

    fn end(&mut self, i: usize, e: DownloaderEvent) {
        self.emit(i, e);
        self.reqs.remove(i);
        self.prune_pauses();
    }

    /// Change a request's priority.
    pub fn set_priority(&mut self, seq: u64, p: RequestPriority, now: Duration) {
        let now = self.tick(now);
        if let Some(i) = self.idx(seq) {
            self.change(i, p, now);
        }
    }

    fn change(&mut self, i: usize, p: RequestPriority, now: Duration) {
        let from = self.reqs[i].priority;
        if from == p {
            return;
        }
        self.reqs[i].priority = p;
        self.reqs[i].changed_at = Some(now);
        if matches!(self.reqs[i].state, MState::Queued { .. }) {
            self.arm_age(i);
        }
        let e = DownloaderEvent::PriorityChanged { request_id: seq_id(self.reqs[i].seq), from, to: p };
        self.emit(i, e);
    }

    /// Bytes of a running request.
    pub fn on_bytes(&mut self, seq: u64, n: u64, now: Duration) {
        let now = self.tick(now);
        let Some(i) = self.idx(seq) else { return };
        let r = &mut self.reqs[i];
        let idle = r.timeouts.idle;
        let MState::Running(a) = &mut r.state else { return };
        if n == 0 {
            return;
        }
        r.delivered = r.delivered.saturating_add(n);
        a.bytes = a.bytes.saturating_add(n);
        a.idle = idle.map(|d| now + d);
        let mut window = None;
        if a.bytes - a.mark_bytes >= 16 * 1024 && now - a.mark >= Duration::from_millis(100) {
            let bps = rate(a.bytes - a.mark_bytes, now - a.mark);
            (a.mark, a.mark_bytes, a.last_rate) = (now, a.bytes, Some(bps));
            window = Some((r.peer, bps));
        }
        if !a.first_byte {
            a.first_byte = true;
            let latency = now - a.start;
            self.emit(i, DownloaderEvent::FirstByte { request_id: seq_id(seq), latency });
        }
        if let Some((peer, bps)) = window {
            self.sample_peer(peer, bps);
        }
    }

    /// Bytes a stopped attempt wrote late: counted, nothing else.
    pub fn on_late_bytes(&mut self, seq: u64, n: u64, now: Duration) {
        self.tick(now);
        if let Some(i) = self.idx(seq) {
            self.reqs[i].delivered = self.reqs[i].delivered.saturating_add(n);
        }
    }

    /// A running request is alive without new bytes: the idle timer restarts.
    pub fn on_progress(&mut self, seq: u64, now: Duration) {
        let now = self.tick(now);
        let Some(i) = self.idx(seq) else { return };
        let idle = self.reqs[i].timeouts.idle;
        if let MState::Running(a) = &mut self.reqs[i].state {
            if idle.is_some() {
                a.idle = idle.map(|d| now + d);
            }
        }
    }

    /// A running request finished.
    pub fn on_complete(&mut self, seq: u64, now: Duration) {
        let now = self.tick(now);
        if let Some(i) = self.idx(seq).filter(|&i| self.reqs[i].running()) {
            self.complete(i, now, false);
        }
    }

    fn complete(&mut self, i: usize, now: Duration, abort: bool) {
        let seq = self.reqs[i].seq;
        if abort {
            self.out.push_back(Canon::Abort(seq_id(seq)));
        }
        let MState::Running(a) = &self.reqs[i].state else { unreachable!() };
        let duration = now - a.start;
        let bps = rate(a.bytes, duration);
        if a.bytes >= 16 * 1024 {
            self.bandwidth = Some(ewma(self.bandwidth, bps));
        }
        let open = a.bytes - a.mark_bytes;
        if open >= 16 * 1024 && (now - a.mark >= Duration::from_millis(100) || a.last_rate.is_none()) {
            let window = rate(open, now - a.mark);
            self.sample_peer(self.reqs[i].peer, window);
        }
        let e = DownloaderEvent::RequestCompleted {
            request_id: seq_id(seq),
            bytes_transferred: self.reqs[i].delivered,
            duration,
            bandwidth_bps: bps,
        };
        self.end(i, e);
    }

    /// A running request failed.
    pub fn on_failed(&mut self, seq: u64, error: NetError, now: Duration) {
        let now = self.tick(now);
        if let Some(i) = self.idx(seq).filter(|&i| self.reqs[i].running()) {
            if let NetError::Status { status: 429 | 503, retry_after: Some(d) } = &error {
                let until = now + (*d).min(self.cfg.retry.max_retry_after);
                if until > now {
                    let at = self.pauses.entry(self.reqs[i].host.clone()).or_default();
                    *at = (*at).max(until);
                }
            }
            self.failed(i, error, now, false, false);
        }
    }

    /// A running request failed and its bytes were thrown away.
    pub fn on_discarded(&mut self, seq: u64, error: NetError, now: Duration) {
        let now = self.tick(now);
        if let Some(i) = self.idx(seq).filter(|&i| self.reqs[i].running()) {
            self.reqs[i].delivered = 0;
            self.failed(i, error, now, false, true);
        }
    }

    /// A running request's response head arrived.
    pub fn on_response(&mut self, seq: u64, status: u16, content_length: Option<u64>, now: Duration) {
        self.tick(now);
        let Some(i) = self.idx(seq) else { return };
        if let MState::Running(a) = &mut self.reqs[i].state {
            if std::mem::replace(&mut a.responded, true) {
                return;
            }
            self.emit(i, DownloaderEvent::ResponseReceived { request_id: seq_id(seq), status, content_length });
        }
    }

    /// A peer's in-transfer bandwidth estimate.
    #[must_use]
    pub fn peer_bandwidth(&self, peer: usize) -> Option<u64> {
        self.peer_bw.get(peer).copied().flatten().filter(|_| self.peers[peer].1).map(|b| b as u64)
    }

    /// A running request's current rate.
    #[must_use]
    pub fn transfer_rate(&self, seq: u64) -> Option<u64> {
        let MState::Running(a) = &self.reqs[self.idx(seq)?].state else { return None };
        if a.last_rate.is_some() {
            return a.last_rate;
        }
        let elapsed = self.now - a.mark;
        (a.bytes > 0 && !elapsed.is_zero()).then(|| rate(a.bytes, elapsed))
    }

    /// Forget the pauses of hosts no live request points at.
    fn prune_pauses(&mut self) {
        let reqs = &self.reqs;
        self.pauses.retain(|h, _| reqs.iter().any(|r| &r.host == h));
    }

    /// A running request's attempt ended with a redirect (DESIGN: "Redirects
    /// go through the core").
    pub fn on_redirect(&mut self, seq: u64, url: Url, now: Duration) {
        let now = self.tick(now);
        let Some(i) = self.idx(seq).filter(|&i| self.reqs[i].running()) else { return };
        let host = match url.scheme() {
            "http" | "https" => url
                .host_str()
                .filter(|h| !h.is_empty())
                .map(|h| (h.to_owned(), url.port_or_known_default().unwrap_or(0))),
            _ => None,
        };
        let r = &self.reqs[i];
        let error = if host.is_none() {
            Some(NetError::InvalidUrl(format!("redirect to {url}: only http(s) URLs with a host can be fetched")))
        } else if r.url.scheme() == "https" && url.scheme() == "http" && !self.cfg.allow_https_downgrade {
            Some(NetError::Protocol(format!("refusing a redirect from https to http ({url})")))
        } else if r.redirects >= self.cfg.max_redirects {
            Some(NetError::Protocol(format!("more than {} redirects", self.cfg.max_redirects)))
        } else {
            None
        };
        if let Some(error) = error {
            return self.end(i, DownloaderEvent::RequestFailed { request_id: seq_id(seq), error, retryable: false });
        }
        let r = &mut self.reqs[i];
        r.redirects += 1;
        r.host = host.expect("checked above");
        r.url = url.clone();
        self.prune_pauses();
        self.emit(i, DownloaderEvent::RequestRedirected { request_id: seq_id(seq), url });
        self.requeue(i, now);
    }

    fn next_rand(&mut self) -> u64 {
        // SplitMix64, as documented for the jitter.
        self.rng = self.rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn failed(&mut self, i: usize, error: NetError, now: Duration, abort: bool, anyway: bool) {
        if self.reqs[i].done_range() {
            return self.complete(i, now, abort);
        }
        let seq = self.reqs[i].seq;
        if abort {
            self.out.push_back(Canon::Abort(seq_id(seq)));
        }
        let server = !matches!(error, NetError::Sink(_) | NetError::TooLarge);
        if server && self.reqs[i].mirror + 1 < self.reqs[i].urls.len() {
            self.move_to(i, self.reqs[i].mirror + 1);
            let attempt = self.reqs[i].attempt + 1;
            let e = DownloaderEvent::RequestRetrying { request_id: seq_id(seq), attempt, delay: Duration::ZERO, error };
            self.emit(i, e);
            return self.requeue(i, now);
        }
        let p = self.reqs[i].retry.clone();
        let retryable = error.is_retryable();
        let too_long = error.retry_after().is_some_and(|d| d > p.max_retry_after);
        if !(retryable || anyway) || self.reqs[i].retries >= p.max_retries || too_long {
            return self.end(i, DownloaderEvent::RequestFailed { request_id: seq_id(seq), error, retryable });
        }
        self.reqs[i].retries += 1;
        let n = self.reqs[i].retries;
        let delay = match error.retry_after() {
            Some(d) => d,
            None => {
                let mut d = p.base;
                for _ in 1..n.min(200) {
                    d = d.saturating_mul(2);
                }
                let d = d.min(p.cap).as_nanos() as u64;
                Duration::from_nanos(if p.jitter { d / 2 + self.next_rand() % (d - d / 2 + 1) } else { d })
            }
        };
        if self.reqs[i].urls.len() > 1 {
            self.move_to(i, 0);
        }
        let attempt = self.reqs[i].attempt + 1;
        self.emit(i, DownloaderEvent::RequestRetrying { request_id: seq_id(seq), attempt, delay, error });
        if delay.is_zero() {
            self.requeue(i, now);
        } else {
            self.reqs[i].state = MState::Backoff(now + delay);
        }
    }

    /// Point request `i` at its URL `k` (a mirror move or a new round).
    fn move_to(&mut self, i: usize, k: usize) {
        let r = &mut self.reqs[i];
        r.mirror = k;
        r.redirects = 0;
        r.url = r.urls[k].clone();
        r.host = host_of(&r.url).expect("checked at enqueue");
        self.prune_pauses();
    }

    fn sample_peer(&mut self, peer: usize, bps: u64) {
        self.peer_bw[peer] = Some(ewma(self.peer_bw[peer], bps));
    }

    fn requeue(&mut self, i: usize, ready: Duration) {
        self.reqs[i].order = self.next_front;
        self.next_front -= 1;
        self.reqs[i].ready_at = ready;
        self.arm_age(i);
        let r = &self.reqs[i];
        self.cursor[slot(self.peers[r.peer].0, r.priority)] = r.peer;
    }

    /// Every armed deadline: (at, kind, seq).
    fn deadlines(&self) -> Vec<(Duration, Kind, u64)> {
        let mut v = Vec::new();
        for r in &self.reqs {
            if let Some(at) = r.deadline_at {
                v.push((at, Kind::Deadline, r.seq));
            }
            match &r.state {
                MState::Queued { age: Some(at) } => v.push((*at, Kind::Age, r.seq)),
                MState::Queued { age: None } => {}
                MState::Backoff(at) => v.push((*at, Kind::Backoff, r.seq)),
                MState::Running(a) => {
                    for (t, k) in [(a.soft, Kind::Soft), (a.idle, Kind::Idle), (a.hard, Kind::Hard)] {
                        if let Some(t) = t {
                            v.push((t, k, r.seq));
                        }
                    }
                }
            }
        }
        v.extend(self.pauses.values().map(|&at| (at, Kind::Resume, 0)));
        v
    }

    /// The earliest deadline, never before the latest `now`.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Duration> {
        self.deadlines().into_iter().min().map(|(at, _, _)| at.max(self.now))
    }

    /// Fire what is due.
    pub fn handle_timeout(&mut self, now: Duration) {
        let now = self.tick(now);
        loop {
            let Some((at, kind, seq)) = self.deadlines().into_iter().filter(|d| d.0 <= now).min() else { return };
            if kind == Kind::Resume {
                self.pauses.retain(|_, end| *end > now);
                continue;
            }
            let i = self.idx(seq).expect("live");
            match kind {
                Kind::Soft => {
                    let MState::Running(a) = &mut self.reqs[i].state else { unreachable!() };
                    a.soft = None;
                    let elapsed = now - a.start;
                    self.emit(i, DownloaderEvent::LoadSlow { request_id: seq_id(seq), elapsed });
                }
                Kind::Idle | Kind::Hard => self.failed(i, NetError::Timeout, now, true, false),
                Kind::Deadline => {
                    self.reqs[i].deadline_at = None;
                    if self.reqs[i].running() && self.reqs[i].done_range() {
                        self.complete(i, now, true);
                    } else {
                        if self.reqs[i].running() {
                            self.out.push_back(Canon::Abort(seq_id(seq)));
                        }
                        let e = DownloaderEvent::RequestFailed {
                            request_id: seq_id(seq),
                            error: NetError::Timeout,
                            retryable: true,
                        };
                        self.end(i, e);
                    }
                }
                Kind::Backoff => self.requeue(i, at),
                Kind::Age => {
                    self.reqs[i].state = MState::Queued { age: None };
                    self.change(i, RequestPriority::High, now);
                }
                Kind::Resume => unreachable!("handled above"),
            }
        }
    }

    /// Shut down.
    pub fn shutdown(&mut self, now: Duration) {
        self.tick(now);
        self.shut_down = true;
        let all: Vec<u64> = self.reqs.iter().map(|r| r.seq).collect();
        for seq in all {
            self.cancel_seq(seq, CancelReason::DownloaderShutdown);
        }
    }

    /// Transfers running.
    #[must_use]
    pub fn in_flight(&self) -> usize {
        self.reqs.iter().filter(|r| r.running()).count()
    }

    /// Requests waiting.
    #[must_use]
    pub fn queued_count(&self) -> usize {
        self.queued()
    }

    /// The bandwidth estimate.
    #[must_use]
    pub fn bandwidth_estimate(&self) -> Option<u64> {
        self.bandwidth.map(|b| b as u64)
    }

    fn host_full(&self, host: &(String, u16)) -> bool {
        let n = self.reqs.iter().filter(|r| r.running() && &r.host == host).count();
        self.cfg.max_per_host.is_some_and(|m| n >= m) || self.pauses.get(host).is_some_and(|&at| at > self.now)
    }

    fn slot_of(&self, r: &MReq) -> usize {
        slot(self.peers[r.peer].0, r.priority)
    }

    /// The request slot `s` serves next: peers round-robin from the cursor
    /// (creation order), each peer's requests by order, skipping full hosts.
    fn pick(&self, s: usize) -> Option<usize> {
        let n = self.peers.len();
        for k in 0..n {
            let peer = (self.cursor[s] + k) % n;
            let best = self
                .reqs
                .iter()
                .enumerate()
                .filter(|(_, r)| r.peer == peer && matches!(r.state, MState::Queued { .. }) && self.slot_of(r) == s)
                .filter(|(_, r)| !self.host_full(&r.host))
                .min_by_key(|(_, r)| r.order);
            if let Some((i, _)) = best {
                return Some(i);
            }
        }
        None
    }

    fn start(&mut self, i: usize) {
        let now = self.now;
        let s = self.slot_of(&self.reqs[i]);
        self.cursor[s] = self.reqs[i].peer + 1;
        let r = &mut self.reqs[i];
        r.attempt += 1;
        if r.attempt == 1 {
            r.deadline_at = r.deadline.map(|d| now + d);
        }
        let t = r.timeouts;
        r.state = MState::Running(MAttempt {
            start: now,
            start_seq: self.next_start,
            bytes: 0,
            first_byte: false,
            responded: false,
            mark: now,
            mark_bytes: 0,
            last_rate: None,
            soft: t.soft.map(|d| now + d),
            idle: t.idle.map(|d| now + d),
            hard: t.hard.map(|d| now + d),
        });
        self.next_start += 1;
        let range = match (r.range, r.delivered) {
            (range, 0) => range,
            (None, d) => Some((d, None)),
            (Some((s, e)), d) => Some((s + d, e)),
        };
        let (seq, attempt) = (r.seq, r.attempt);
        self.out.push_back(Canon::Start { id: seq_id(seq), url: r.url.clone(), method: r.method, range, attempt });
        let wait = now - r.ready_at;
        self.emit(i, DownloaderEvent::RequestStarted { request_id: seq_id(seq), wait_in_queue: wait, attempt });
    }

    fn fill(&mut self) {
        if self.shut_down {
            return;
        }
        loop {
            while self.in_flight() < self.cfg.max_concurrent {
                let low = self.reqs.iter().filter(|r| r.running() && r.priority == RequestPriority::Low).count();
                let low_full = self.cfg.max_low_in_flight.is_some_and(|m| low >= m);
                let Some(i) = (0..4).filter(|s| !(s % 2 == 1 && low_full)).find_map(|s| self.pick(s)) else { break };
                self.start(i);
            }
            if !self.cfg.preempt_low || self.in_flight() < self.cfg.max_concurrent {
                return;
            }
            let Some(w) = [0, 2].into_iter().find(|&s| self.pick(s).is_some()) else { return };
            // Victim: running Low, slot worse than w, not a delivered range;
            // the worst slot, then the latest start.
            let victim = self
                .reqs
                .iter()
                .enumerate()
                .filter(|(_, r)| r.priority == RequestPriority::Low && !r.done_range() && self.slot_of(r) > w)
                .filter_map(|(i, r)| match &r.state {
                    MState::Running(a) => Some((self.slot_of(r), a.start_seq, i)),
                    _ => None,
                })
                .max();
            let Some((_, _, i)) = victim else { return };
            let seq = self.reqs[i].seq;
            self.out.push_back(Canon::Abort(seq_id(seq)));
            let e = DownloaderEvent::RequestPreempted {
                request_id: seq_id(seq),
                bytes_transferred: self.reqs[i].delivered,
            };
            self.emit(i, e);
            self.requeue(i, self.now);
        }
    }

    /// The next output.
    pub fn poll_output(&mut self) -> Option<Canon> {
        if self.out.is_empty() {
            self.fill();
        }
        self.out.pop_front()
    }
}

fn host_of(url: &Url) -> Option<(String, u16)> {
    match url.scheme() {
        "http" | "https" => {
            url.host_str().filter(|h| !h.is_empty()).map(|h| (h.to_owned(), url.port_or_known_default().unwrap_or(0)))
        }
        _ => None,
    }
}

/// bytes × 8 × 10⁹ / max(ns, 1), saturating.
fn rate(bytes: u64, d: Duration) -> u64 {
    u64::try_from(u128::from(bytes) * 8_000_000_000 / d.as_nanos().max(1)).unwrap_or(u64::MAX)
}

/// EWMA with α = 0.3, seeded by the first sample.
fn ewma(prev: Option<f64>, bps: u64) -> f64 {
    match prev {
        None => bps as f64,
        Some(prev) => 0.3 * bps as f64 + 0.7 * prev,
    }
}
