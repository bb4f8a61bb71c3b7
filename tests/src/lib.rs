//! Test harness for the `weir` core: a [`Sim`] that owns a [`Scheduler`] and
//! a fake clock, and a [`Checker`] that watches every output and asserts the
//! invariants of DESIGN.md as it goes.
//!
//! Tests read like the behaviour they pin down:
//!
//! ```
//! use weir_tests::*;
//! let mut sim = Sim::new(quiet(1));
//! let p = sim.peer(RequestPriority::Low);
//! let id = sim.enq(p, get("http://a.example/x"));
//! assert_eq!(starts(&sim.drain()), vec![id]);
//! sim.bytes(id, 10);
//! sim.advance(ms(5));
//! sim.complete(id);
//! assert!(matches!(sim.terminal(id), DownloaderEvent::RequestCompleted { bytes_transferred: 10, .. }));
//! ```
#![forbid(unsafe_code)]

#[cfg(feature = "adapters")]
pub mod both;
pub mod exchange;
pub mod exchange_fuzz;
pub mod hub;
pub mod hub_fuzz;
pub mod model;
pub mod nginx;
pub mod ops;
pub mod proxy;
pub use weir_faultserver as server;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

pub use url::Url;
pub use weir::*;

/// One millisecond.
pub const MS: Duration = Duration::from_millis(1);

/// An empty directory of its own, `weir-TAG-PID` under the system's
/// temporary directory (emptied first when an earlier run left it).
///
/// # Panics
/// When it cannot be created.
#[must_use]
pub fn fresh_dir(tag: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("weir-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a fresh temporary directory");
    dir
}

/// `n` milliseconds.
#[must_use]
pub fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// A config with no timers, no jitter and `max_retries` 3 (base 100 ms, cap 5 s).
#[must_use]
pub fn quiet(max_concurrent: usize) -> Config {
    Config {
        max_concurrent,
        soft_timeout: None,
        idle_timeout: None,
        hard_timeout: None,
        retry: RetryPolicy { max_retries: 3, base: ms(100), cap: ms(5000), jitter: false, ..RetryPolicy::default() },
        ..Config::default()
    }
}

/// Parse a URL (panics on a bad literal: test input).
#[must_use]
pub fn url(s: &str) -> Url {
    Url::parse(s).expect("test URL")
}

/// A Low GET.
#[must_use]
pub fn get(s: &str) -> Request {
    Request::get(url(s))
}

/// A High GET.
#[must_use]
pub fn high(s: &str) -> Request {
    get(s).priority(RequestPriority::High)
}

/// Ids of the `Start`s in `outs`, in order.
#[must_use]
pub fn starts(outs: &[Output]) -> Vec<RequestId> {
    outs.iter()
        .filter_map(|o| match o {
            Output::Start(c) => Some(c.id),
            _ => None,
        })
        .collect()
}

/// The `FetchCmd`s in `outs`, in order.
#[must_use]
pub fn cmds(outs: &[Output]) -> Vec<FetchCmd> {
    outs.iter()
        .filter_map(|o| match o {
            Output::Start(c) => Some(c.clone()),
            _ => None,
        })
        .collect()
}

/// Ids of the `Abort`s in `outs`, in order.
#[must_use]
pub fn aborts(outs: &[Output]) -> Vec<RequestId> {
    outs.iter()
        .filter_map(|o| match o {
            Output::Abort(id) => Some(*id),
            _ => None,
        })
        .collect()
}

/// The events in `outs`, in order.
#[must_use]
pub fn events(outs: &[Output]) -> Vec<DownloaderEvent> {
    outs.iter()
        .filter_map(|o| match o {
            Output::Event(_, e) => Some(e.clone()),
            _ => None,
        })
        .collect()
}

/// The variant names of events, for asserting sequences compactly.
#[must_use]
pub fn event_names(ev: &[DownloaderEvent]) -> Vec<&'static str> {
    ev.iter()
        .map(|e| match e {
            DownloaderEvent::RequestEnqueued { .. } => "Enqueued",
            DownloaderEvent::RequestStarted { .. } => "Started",
            DownloaderEvent::FirstByte { .. } => "FirstByte",
            DownloaderEvent::LoadSlow { .. } => "LoadSlow",
            DownloaderEvent::ResponseReceived { .. } => "Response",
            DownloaderEvent::RequestRetrying { .. } => "Retrying",
            DownloaderEvent::RequestPreempted { .. } => "Preempted",
            DownloaderEvent::PriorityChanged { .. } => "PriorityChanged",
            DownloaderEvent::RequestRedirected { .. } => "Redirected",
            DownloaderEvent::RequestCompleted { .. } => "Completed",
            DownloaderEvent::RequestFailed { .. } => "Failed",
            DownloaderEvent::RequestCancelled { .. } => "Cancelled",
            _ => "?",
        })
        .collect()
}

/// Where the checker believes a request is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Waiting,
    Running,
    Ended,
}

#[derive(Debug)]
struct Tracked {
    phase: Phase,
    host: String,
    low: bool,
    first_byte: bool,
    slow: bool,
    response: bool,
    /// An `Abort` was seen and its event must follow at once.
    aborted: bool,
}

/// Watches outputs and panics at the first broken invariant: the event
/// grammar, one terminal event per request, `Start`/`Abort` only where they
/// make sense, and the concurrency limits.
#[derive(Debug)]
pub struct Checker {
    cfg: Config,
    reqs: BTreeMap<RequestId, Tracked>,
    running: usize,
    per_host: BTreeMap<String, usize>,
    low_running: usize,
    /// A `Start` was seen and its `RequestStarted` must follow at once.
    expect_started: Option<RequestId>,
    /// The last `Abort`, whose event must follow at once.
    expect_after_abort: Option<RequestId>,
}

impl Checker {
    /// A checker for a scheduler with this config.
    #[must_use]
    pub fn new(cfg: Config) -> Self {
        Self {
            cfg,
            reqs: BTreeMap::new(),
            running: 0,
            per_host: BTreeMap::new(),
            low_running: 0,
            expect_started: None,
            expect_after_abort: None,
        }
    }

    fn host_of(u: &Url) -> String {
        format!("{}:{}", u.host_str().unwrap_or(""), u.port_or_known_default().unwrap_or(0))
    }

    fn stop_running(&mut self, id: RequestId) {
        let t = self.reqs.get_mut(&id).expect("tracked");
        assert_eq!(t.phase, Phase::Running);
        t.phase = Phase::Waiting;
        self.running -= 1;
        *self.per_host.get_mut(&t.host).expect("host") -= 1;
        if t.low {
            self.low_running -= 1;
        }
    }

    /// Check one output.
    pub fn observe(&mut self, o: &Output) {
        if let Some(id) = self.expect_started.take() {
            assert!(
                matches!(o, Output::Event(_, DownloaderEvent::RequestStarted { request_id, .. }) if *request_id == id),
                "Start({id:?}) must be followed by its RequestStarted, got {o:?}"
            );
        }
        if let Some(id) = self.expect_after_abort.take() {
            assert!(
                matches!(o, Output::Event(_, e) if e.request_id() == id && matches!(e,
                    DownloaderEvent::RequestCancelled { .. } | DownloaderEvent::RequestPreempted { .. }
                    | DownloaderEvent::RequestRetrying { .. } | DownloaderEvent::RequestFailed { .. }
                    | DownloaderEvent::RequestCompleted { .. })),
                "Abort({id:?}) must be followed by its event, got {o:?}"
            );
        }
        match o {
            Output::Start(c) => {
                let t = self.reqs.get_mut(&c.id).unwrap_or_else(|| panic!("Start for unknown {:?}", c.id));
                assert_eq!(t.phase, Phase::Waiting, "Start for a request that is not waiting: {c:?}");
                t.phase = Phase::Running;
                t.first_byte = false;
                t.response = false;
                t.slow = false;
                // The host of this attempt (a redirect may have moved it).
                t.host = Self::host_of(&c.url);
                let (host, low) = (t.host.clone(), t.low);
                self.running += 1;
                let h = self.per_host.entry(host).or_default();
                *h += 1;
                assert!(self.running <= self.cfg.max_concurrent, "max_concurrent exceeded");
                if let Some(max) = self.cfg.max_per_host {
                    assert!(*h <= max, "max_per_host exceeded");
                }
                if low {
                    self.low_running += 1;
                    if let Some(max) = self.cfg.max_low_in_flight {
                        assert!(self.low_running <= max, "a Low start beyond max_low_in_flight");
                    }
                }
                self.expect_started = Some(c.id);
            }
            Output::Abort(id) => {
                let t = self.reqs.get(id).unwrap_or_else(|| panic!("Abort for unknown {id:?}"));
                assert_eq!(t.phase, Phase::Running, "Abort for a request that is not running");
                self.reqs.get_mut(id).expect("tracked").aborted = true;
                self.expect_after_abort = Some(*id);
            }
            Output::Event(_, e) => self.event(e),
        }
    }

    fn event(&mut self, e: &DownloaderEvent) {
        let id = e.request_id();
        if let DownloaderEvent::RequestEnqueued { url, priority, .. } = e {
            let fresh = Tracked {
                phase: Phase::Waiting,
                host: Self::host_of(url),
                low: *priority == RequestPriority::Low,
                first_byte: false,
                slow: false,
                response: false,
                aborted: false,
            };
            assert!(self.reqs.insert(id, fresh).is_none(), "RequestEnqueued twice for {id:?}");
            return;
        }
        let t = self.reqs.get(&id).unwrap_or_else(|| panic!("event before RequestEnqueued: {e:?}"));
        assert_ne!(t.phase, Phase::Ended, "event after the terminal event: {e:?}");
        let (phase, aborted) = (t.phase, t.aborted);
        match e {
            DownloaderEvent::RequestEnqueued { .. } => unreachable!(),
            DownloaderEvent::RequestStarted { .. } => assert_eq!(phase, Phase::Running, "{e:?}"),
            DownloaderEvent::FirstByte { .. } => {
                assert_eq!(phase, Phase::Running, "{e:?}");
                let t = self.reqs.get_mut(&id).expect("tracked");
                assert!(!t.first_byte, "two FirstByte in one attempt");
                t.first_byte = true;
            }
            DownloaderEvent::ResponseReceived { .. } => {
                assert_eq!(phase, Phase::Running, "{e:?}");
                let t = self.reqs.get_mut(&id).expect("tracked");
                assert!(!t.response, "two ResponseReceived in one attempt");
                t.response = true;
            }
            DownloaderEvent::LoadSlow { .. } => {
                assert_eq!(phase, Phase::Running, "{e:?}");
                let t = self.reqs.get_mut(&id).expect("tracked");
                assert!(!t.slow, "two LoadSlow in one attempt");
                t.slow = true;
            }
            DownloaderEvent::PriorityChanged { from, to, .. } => {
                assert_ne!(from, to);
                let t = self.reqs.get_mut(&id).expect("tracked");
                let was_low = t.low;
                t.low = *to == RequestPriority::Low;
                if phase == Phase::Running && was_low != t.low {
                    if t.low {
                        self.low_running += 1;
                    } else {
                        self.low_running -= 1;
                    }
                }
            }
            DownloaderEvent::RequestRetrying { .. }
            | DownloaderEvent::RequestPreempted { .. }
            | DownloaderEvent::RequestRedirected { .. } => {
                if phase == Phase::Running {
                    self.stop_running(id);
                } else {
                    panic!("{e:?} for a request that was not running");
                }
                if matches!(e, DownloaderEvent::RequestPreempted { .. }) {
                    assert!(aborted, "a preemption is announced by an Abort");
                }
            }
            DownloaderEvent::RequestCompleted { .. }
            | DownloaderEvent::RequestFailed { .. }
            | DownloaderEvent::RequestCancelled { .. } => {
                if phase == Phase::Running {
                    self.stop_running(id);
                }
                if matches!(e, DownloaderEvent::RequestCompleted { .. }) {
                    assert_eq!(phase, Phase::Running, "completed without running: {e:?}");
                }
                self.reqs.get_mut(&id).expect("tracked").phase = Phase::Ended;
            }
            _ => panic!("unknown event {e:?}"),
        }
        self.reqs.get_mut(&id).expect("tracked").aborted = false;
    }

    /// Compare the checker's counts with the scheduler's.
    pub fn check_counts(&self, s: &Scheduler) {
        assert!(self.expect_started.is_none() && self.expect_after_abort.is_none(), "an output pair was cut");
        assert_eq!(s.in_flight(), self.running, "in_flight() disagrees with the outputs");
        let live = self.reqs.values().filter(|t| t.phase != Phase::Ended).count();
        assert_eq!(s.queued(), live - self.running, "queued() disagrees with the outputs");
    }

    /// Requests that have not ended yet.
    #[must_use]
    pub fn live(&self) -> usize {
        self.reqs.values().filter(|t| t.phase != Phase::Ended).count()
    }
}

/// A scheduler, a fake clock, a log of every output, and a [`Checker`].
#[derive(Debug)]
pub struct Sim {
    /// The scheduler under test.
    pub s: Scheduler,
    /// Time zero.
    pub t0: Instant,
    /// The fake clock.
    pub now: Instant,
    /// Every output drained so far.
    pub log: Vec<Output>,
    /// The invariant checker fed with every output.
    pub checker: Checker,
}

impl Sim {
    /// A simulation of a scheduler with this config.
    #[must_use]
    pub fn new(cfg: Config) -> Self {
        // The only clock read in the tests: an arbitrary origin, never read again.
        let t0 = Instant::now();
        Sim { checker: Checker::new(cfg.clone()), s: Scheduler::new(cfg), t0, now: t0, log: Vec::new() }
    }

    /// Time since `t0`.
    #[must_use]
    pub fn at(&self) -> Duration {
        self.now - self.t0
    }

    /// Drain every output (a livelock fails the test) and check it.
    pub fn drain(&mut self) -> Vec<Output> {
        let mut v = Vec::new();
        while let Some(o) = self.s.poll_output() {
            self.checker.observe(&o);
            v.push(o);
            assert!(v.len() < 1_000_000, "poll_output never ends");
        }
        self.checker.check_counts(&self.s);
        self.log.extend(v.iter().cloned());
        v
    }

    /// Move the clock to `t0 + total`, firing every deadline on the way at its exact time.
    pub fn run_to(&mut self, total: Duration) -> Vec<Output> {
        let target = self.t0 + total;
        let mut out = self.drain();
        let mut guard = 0;
        while let Some(d) = self.s.poll_timeout() {
            assert!(d >= self.now, "a deadline earlier than the last now");
            if d > target {
                break;
            }
            self.now = d;
            self.s.handle_timeout(self.now);
            out.extend(self.drain());
            guard += 1;
            assert!(guard < 1_000_000, "timers never settle");
        }
        if target > self.now {
            self.now = target;
        }
        self.s.handle_timeout(self.now);
        out.extend(self.drain());
        out
    }

    /// Advance the clock by `d`, firing deadlines on the way.
    pub fn advance(&mut self, d: Duration) -> Vec<Output> {
        let t = self.at() + d;
        self.run_to(t)
    }

    /// Advance by one millisecond.
    pub fn step(&mut self) -> Vec<Output> {
        self.advance(MS)
    }

    /// Fire deadlines until none is left (no transfer reports anything),
    /// at most `max_steps` of them: a livelock fails the test.
    pub fn drive_until_idle(&mut self, max_steps: usize) -> Vec<Output> {
        let mut out = self.drain();
        for _ in 0..max_steps {
            let Some(d) = self.s.poll_timeout() else { return out };
            self.now = self.now.max(d);
            self.s.handle_timeout(self.now);
            out.extend(self.drain());
        }
        panic!("still busy after {max_steps} deadlines: livelock?");
    }

    /// Add a peer.
    pub fn peer(&mut self, p: RequestPriority) -> PeerId {
        self.s.add_peer(p)
    }

    /// Enqueue at the current time; panics if refused.
    pub fn enq(&mut self, peer: PeerId, r: Request) -> RequestId {
        self.s.enqueue(peer, r, self.now).expect("enqueue accepted")
    }

    /// Report bytes at the current time.
    pub fn bytes(&mut self, id: RequestId, n: u64) {
        self.s.on_bytes(id, n, self.now);
    }

    /// Report a live transfer that delivered nothing new (a skipped resend).
    pub fn progress(&mut self, id: RequestId) {
        self.s.on_progress(id, self.now);
    }

    /// Report a redirect and drain.
    pub fn redirect(&mut self, id: RequestId, to: &str) -> Vec<Output> {
        self.s.on_redirect(id, url(to), self.now);
        self.drain()
    }

    /// Report completion and drain.
    pub fn complete(&mut self, id: RequestId) -> Vec<Output> {
        self.s.on_complete(id, self.now);
        self.drain()
    }

    /// Report failure and drain.
    pub fn fail(&mut self, id: RequestId, e: NetError) -> Vec<Output> {
        self.s.on_failed(id, e, self.now);
        self.drain()
    }

    /// Cancel and drain.
    pub fn cancel(&mut self, id: RequestId) -> Vec<Output> {
        self.s.cancel(id, self.now);
        self.drain()
    }

    /// Every event logged for `id`, in order.
    #[must_use]
    pub fn events_for(&self, id: RequestId) -> Vec<DownloaderEvent> {
        self.log
            .iter()
            .filter_map(|o| match o {
                Output::Event(_, e) if e.request_id() == id => Some(e.clone()),
                _ => None,
            })
            .collect()
    }

    /// The one terminal event of `id` (panics unless exactly one, and last).
    #[must_use]
    pub fn terminal(&self, id: RequestId) -> DownloaderEvent {
        let ev = self.events_for(id);
        let t: Vec<_> = ev.iter().filter(|e| e.is_terminal()).collect();
        assert_eq!(t.len(), 1, "exactly one terminal event for {id:?}: {ev:?}");
        assert!(ev.last().is_some_and(DownloaderEvent::is_terminal), "nothing after the terminal event: {ev:?}");
        t[0].clone()
    }

    /// With one slot: complete `running`, note the one request that starts
    /// in its place, complete that, and so on `n` times; returns the order.
    pub fn serve_in_turn(&mut self, mut running: RequestId, n: usize) -> Vec<RequestId> {
        let mut order = Vec::with_capacity(n);
        for _ in 0..n {
            let s = starts(&self.complete(running));
            assert_eq!(s.len(), 1, "exactly one start replaces a completed request");
            running = s[0];
            order.push(running);
        }
        order
    }

    /// Start a request that fills one slot, and drain; returns its id.
    pub fn blocker(&mut self, peer: PeerId) -> RequestId {
        let id = self.enq(peer, get("http://blocker.example/b"));
        let o = self.drain();
        assert_eq!(starts(&o), vec![id], "the blocker starts at once");
        id
    }
}

/// The README's examples, compiled and run as doctests so they cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;
