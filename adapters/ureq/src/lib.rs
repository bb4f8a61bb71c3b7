//! # weir-ureq: weir for programs without an async runtime
//!
//! One driver thread owns the [`weir::Scheduler`] and runs its loop; a pool
//! of `max_concurrent` worker threads performs the transfers with
//! [`ureq`] 3. Handles talk to the driver over channels.
//!
//! ```no_run
//! use weir::{Config, Request, RequestPriority, Url};
//! use weir_ureq::{Downloader, Sink};
//!
//! let dl = Downloader::new(Config::default());
//! let player = dl.peer(RequestPriority::High);
//! let seg = Request::get(Url::parse("http://127.0.0.1:8080/seg1.ts").unwrap()).priority(RequestPriority::High);
//! let download = player.fetch(seg, Sink::Memory).unwrap();
//! let response = download.wait().unwrap();
//! println!("{} bytes, status {}", response.bytes, response.status);
//! ```
//!
//! * **Resume.** A retry or a preempted request continues where its sink
//!   stopped: `Range: bytes=N-` with `If-Range` (the first answer's strong
//!   `ETag`, else its `Last-Modified`). Every answer is judged by
//!   [`weir_http::Attempt`]: a 206 is appended only when it starts at N,
//!   is exactly the span it announces and is of the same version (validator
//!   and total); a 200 to a range request has the held prefix skipped when
//!   it is the same version. Otherwise a memory or file sink starts over and
//!   a writer sink fails: a completed download is one version, every byte
//!   once. Redirects are followed by the attempt (at most 10, never from
//!   https to http), not by `ureq`.
//! * **Abort** is prompt: the driver raises the transfer's flag and shuts
//!   down the worker's `ureq` agent, which interrupts a read blocked on the
//!   socket. The worker starts its next job on a fresh agent.
//! * **Byte accounting.** The sink's count of delivered bytes is what the
//!   next `Range` asks from. Bytes a worker wrote in the instant between the
//!   scheduler's abort and the worker noticing it are in the sink (and so
//!   never fetched twice) but may be missing from the scheduler's
//!   `bytes_transferred`.
//! * **Threads.** [`Downloader`] joins its driver and every worker when it
//!   is dropped or shut down; nothing is left behind.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod resets;
mod worker;

use std::collections::HashMap;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub use weir;
use weir::{
    Config, ConfigError, DownloaderEvent, EnqueueError, GroupId, NetError, Output, PeerId, Request, RequestId,
    RequestPriority, Scheduler, Url,
};
pub use weir_http::{content_range, retry_after, ContentRange, Event, FetchError, Outcome, Response, Sink, Snapshot};

use weir_http::SinkState;
pub use weir_http::{Expect, Fetch, HeaderError, Headers, Progress};
use worker::{lock, AbortHandle, Job};

/// Most worker threads one downloader starts (`Config::max_concurrent`):
/// one thread per concurrent transfer is this adapter's model; for more
/// concurrency use `weir-async`, whose transfers are tasks.
pub const MAX_WORKERS: usize = 1024;

/// Why a downloader could not start.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum StartError {
    /// The scheduler's config cannot work.
    Config(ConfigError),
    /// `max_concurrent` asks for more worker threads than [`MAX_WORKERS`].
    TooManyWorkers(usize),
    /// The system refused a thread.
    Threads(String),
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StartError::Config(e) => write!(f, "{e}"),
            StartError::TooManyWorkers(n) => {
                write!(f, "max_concurrent {n} needs {n} worker threads; weir-ureq starts at most {MAX_WORKERS}")
            }
            StartError::Threads(e) => write!(f, "cannot start a thread: {e}"),
        }
    }
}

impl std::error::Error for StartError {}

impl From<ConfigError> for StartError {
    fn from(e: ConfigError) -> Self {
        StartError::Config(e)
    }
}

/// Default largest body a [`Sink::Memory`] accepts: 256 MiB.
pub const DEFAULT_MEMORY_LIMIT: u64 = 256 * 1024 * 1024;

/// One download on its way to the driver.
pub(crate) struct Item {
    req: Request,
    sink: Sink,
    fetch: Fetch,
    done: Sender<Outcome>,
    progress: Arc<Progress>,
}

/// Messages into the driver: commands from handles, reports from workers.
pub(crate) enum Msg {
    AddPeer(RequestPriority, Sender<PeerId>),
    RemovePeer(PeerId),
    SetPeerPriority(PeerId, RequestPriority),
    NewGroup(PeerId, Sender<GroupId>),
    CancelGroup(GroupId),
    FetchMany {
        peer: PeerId,
        items: Vec<Item>,
        reply: Sender<Vec<Result<RequestId, EnqueueError>>>,
    },
    Cancel(RequestId),
    SetPriority(RequestId, RequestPriority),
    Subscribe(Option<PeerId>, Sender<Event>),
    Bytes {
        id: RequestId,
        attempt: u32,
        n: u64,
    },
    /// Bytes arrived that the sink skips: alive, nothing delivered.
    Progress {
        id: RequestId,
        attempt: u32,
    },
    /// The attempt ended: complete (`Ok(None)`), redirected (`Ok(Some(url))`) or failed.
    Finished {
        id: RequestId,
        attempt: u32,
        result: Result<Option<Url>, NetError>,
    },
    Shutdown,
}

/// Options of the blocking adapter beyond the scheduler's [`Config`].
#[derive(Debug, Clone)]
pub struct Options {
    /// The `ureq` configuration every worker's agent is built from. The
    /// default keeps `ureq`'s defaults (10 redirects at most, proxy from the
    /// environment) but reports HTTP error statuses as responses, so the
    /// adapter can read `Retry-After`.
    pub agent: ureq::config::Config,
    /// Largest body a [`Sink::Memory`] accepts ([`NetError::TooLarge`] beyond).
    pub memory_limit: u64,
    /// Headers every download sends unless it sets its own (see
    /// [`PeerHandle::fetch_with`]); a `User-Agent` of [`weir_http::USER_AGENT`]
    /// is sent when neither sets one.
    pub headers: Headers,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            agent: ureq::Agent::config_builder()
                .http_status_as_error(false)
                .timeout_connect(Some(Duration::from_secs(30)))
                .build(),
            memory_limit: DEFAULT_MEMORY_LIMIT,
            headers: Headers::new(),
        }
    }
}

/// The blocking downloader: a driver thread and its workers.
pub struct Downloader {
    tx: Sender<Msg>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl std::fmt::Debug for Downloader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Downloader").finish_non_exhaustive()
    }
}

impl Downloader {
    /// Start a downloader with default [`Options`].
    ///
    /// # Panics
    /// When the downloader cannot start (see [`Downloader::try_new`]); use
    /// [`Downloader::try_new`] to get the error instead.
    #[must_use]
    pub fn new(config: Config) -> Self {
        Self::try_new(config, Options::default()).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Start a downloader whose workers use agents configured like `agent`
    /// (each worker builds its own from `agent.config()`, so that aborting
    /// one transfer never disturbs another).
    ///
    /// # Panics
    /// As [`Downloader::new`].
    #[must_use]
    pub fn with_agent(config: Config, agent: &ureq::Agent) -> Self {
        let opts = Options { agent: agent.config().clone(), ..Options::default() };
        Self::try_new(config, opts).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Start a downloader.
    ///
    /// # Errors
    /// [`StartError::Config`] when the config cannot work,
    /// [`StartError::TooManyWorkers`] beyond [`MAX_WORKERS`], and
    /// [`StartError::Threads`] when the system refuses a thread (those
    /// already started are stopped and joined first).
    pub fn try_new(config: Config, options: Options) -> Result<Self, StartError> {
        let workers = config.max_concurrent;
        if workers > MAX_WORKERS {
            return Err(StartError::TooManyWorkers(workers));
        }
        let sched = Scheduler::try_new(config)?;
        let (tx, rx) = mpsc::channel();
        let (job_tx, job_rx) = mpsc::channel::<Job>();
        let job_rx = Arc::new(Mutex::new(job_rx));
        let mut threads = Vec::with_capacity(workers + 1);
        for i in 0..workers {
            let (jobs, reports, cfg) = (Arc::clone(&job_rx), tx.clone(), options.agent.clone());
            let spawned = std::thread::Builder::new()
                .name(format!("weir-worker-{i}"))
                .spawn(move || worker::run(&jobs, &reports, &cfg));
            match spawned {
                Ok(t) => threads.push(t),
                Err(e) => {
                    // Closing the job channel ends the workers already running.
                    drop(job_tx);
                    for t in threads {
                        let _ = t.join();
                    }
                    return Err(StartError::Threads(format!("worker {i} of {workers}: {e}")));
                }
            }
        }
        let driver = Driver {
            sched,
            rx,
            jobs: Some(job_tx),
            reqs: HashMap::new(),
            root_subs: Vec::new(),
            peer_subs: HashMap::new(),
            memory_limit: options.memory_limit,
            headers: options.headers,
        };
        match std::thread::Builder::new().name("weir-driver".into()).spawn(move || driver.run()) {
            Ok(t) => threads.push(t),
            Err(e) => {
                // The driver (and with it the job channel) is gone: the workers end.
                for t in threads {
                    let _ = t.join();
                }
                return Err(StartError::Threads(format!("the driver: {e}")));
            }
        }
        Ok(Self { tx, threads: Mutex::new(threads) })
    }

    fn ask<T>(&self, make: impl FnOnce(Sender<T>) -> Msg) -> Option<T> {
        let (tx, rx) = mpsc::channel();
        self.tx.send(make(tx)).ok()?;
        rx.recv().ok()
    }

    /// A new peer with this priority. Dropping its last handle cancels its
    /// requests with [`CancelReason::PeerCancel`](weir::CancelReason::PeerCancel).
    ///
    /// # Panics
    /// When the driver thread is gone (it never exits before the downloader).
    #[must_use]
    pub fn peer(&self, priority: RequestPriority) -> PeerHandle {
        let id = self.ask(|tx| Msg::AddPeer(priority, tx)).expect("the driver is running");
        PeerHandle { inner: Arc::new(PeerInner { id, tx: self.tx.clone() }) }
    }

    /// Every event of every peer.
    #[must_use]
    pub fn subscribe(&self) -> Receiver<Event> {
        let (tx, rx) = mpsc::channel();
        let _ = self.tx.send(Msg::Subscribe(None, tx));
        rx
    }

    /// Cancel everything ([`CancelReason::DownloaderShutdown`](weir::CancelReason::DownloaderShutdown)), stop and join
    /// every thread. Later fetches fail with [`EnqueueError::ShutDown`] or
    /// [`FetchError::Gone`].
    pub fn shutdown(&self) {
        let _ = self.tx.send(Msg::Shutdown);
        let threads: Vec<_> = lock(&self.threads).drain(..).collect();
        for t in threads {
            let _ = t.join();
        }
    }
}

impl Drop for Downloader {
    fn drop(&mut self) {
        self.shutdown();
    }
}

struct PeerInner {
    id: PeerId,
    tx: Sender<Msg>,
}

impl Drop for PeerInner {
    fn drop(&mut self) {
        let _ = self.tx.send(Msg::RemovePeer(self.id));
    }
}

/// A peer: a scope with its own priority, groups and event stream. Clones
/// share the peer; dropping the last one removes it.
#[derive(Clone)]
pub struct PeerHandle {
    inner: Arc<PeerInner>,
}

impl std::fmt::Debug for PeerHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("PeerHandle").field(&self.inner.id).finish()
    }
}

impl PeerHandle {
    /// The peer's id, as events name it.
    #[must_use]
    pub fn id(&self) -> PeerId {
        self.inner.id
    }

    /// Schedule a download into `sink`.
    ///
    /// # Errors
    /// The scheduler's [`EnqueueError`] (bad URL, full queue, shut down, …).
    pub fn fetch(&self, req: Request, sink: Sink) -> Result<Download, EnqueueError> {
        self.fetch_with(req, sink, Fetch::new())
    }

    /// Schedule a download into `sink` with its HTTP side: headers to
    /// send too (auth tokens, cookies, `Accept`, ...; a [`Headers`] alone
    /// will do) and the size and SHA-256 its bytes must have. Credentials
    /// (`Authorization`, `Cookie`, `Proxy-Authorization`) are not sent to
    /// another origin after a redirect; a size or digest mismatch fails the
    /// download with [`NetError::Integrity`] instead of completing it.
    ///
    /// # Errors
    /// As [`PeerHandle::fetch`].
    pub fn fetch_with(&self, req: Request, sink: Sink, fetch: impl Into<Fetch>) -> Result<Download, EnqueueError> {
        self.fetch_all_with(vec![(req, sink, fetch.into())]).pop().unwrap_or(Err(EnqueueError::ShutDown))
    }

    /// Schedule many downloads in one round trip to the driver: they are
    /// enqueued together, so they are also scheduled together (a High one
    /// among them starts first). Results in input order.
    #[must_use]
    pub fn fetch_all(&self, items: Vec<(Request, Sink)>) -> Vec<Result<Download, EnqueueError>> {
        self.fetch_all_with(items.into_iter().map(|(r, s)| (r, s, Fetch::new())).collect())
    }

    /// [`PeerHandle::fetch_all`] with headers per download (see [`PeerHandle::fetch_with`]).
    #[must_use]
    pub fn fetch_all_with(&self, items: Vec<(Request, Sink, Fetch)>) -> Vec<Result<Download, EnqueueError>> {
        let n = items.len();
        let (reply, reply_rx) = mpsc::channel();
        let mut outcomes = Vec::with_capacity(n);
        let items: Vec<_> = items
            .into_iter()
            .map(|(req, sink, fetch)| {
                let (done, done_rx) = mpsc::channel();
                let progress = Arc::new(Progress::default());
                outcomes.push((done_rx, Arc::clone(&progress)));
                Item { req, sink, fetch, done, progress }
            })
            .collect();
        let ids = match self.inner.tx.send(Msg::FetchMany { peer: self.inner.id, items, reply }) {
            Ok(()) => reply_rx.recv().unwrap_or_else(|_| vec![Err(EnqueueError::ShutDown); n]),
            Err(_) => vec![Err(EnqueueError::ShutDown); n],
        };
        ids.into_iter()
            .zip(outcomes)
            .map(|(id, (rx, progress))| {
                id.map(|id| Download { id, rx, tx: self.inner.tx.clone(), progress, finished: false })
            })
            .collect()
    }

    /// Download into memory and wait for the outcome.
    ///
    /// # Errors
    /// Why the download did not complete.
    pub fn execute(&self, req: Request) -> Outcome {
        self.fetch(req, Sink::Memory).map_err(FetchError::Refused)?.wait()
    }

    /// Download all into memory, concurrently as the scheduler allows; the
    /// outcomes come back in input order.
    #[must_use]
    pub fn batch(&self, reqs: Vec<Request>) -> Vec<Outcome> {
        let downloads = self.fetch_all(reqs.into_iter().map(|r| (r, Sink::Memory)).collect());
        downloads.into_iter().map(|d| d.map_err(FetchError::Refused).and_then(Download::wait)).collect()
    }

    /// Open a cancellation group (an epoch) for this peer.
    ///
    /// # Panics
    /// When the driver thread is gone.
    #[must_use]
    pub fn new_group(&self) -> GroupId {
        let (tx, rx) = mpsc::channel();
        let _ = self.inner.tx.send(Msg::NewGroup(self.inner.id, tx));
        rx.recv().expect("the driver is running")
    }

    /// Cancel a group: its requests end with [`CancelReason::EpochCancel`](weir::CancelReason::EpochCancel).
    pub fn cancel_group(&self, group: GroupId) {
        let _ = self.inner.tx.send(Msg::CancelGroup(group));
    }

    /// Change the peer's priority.
    pub fn set_priority(&self, p: RequestPriority) {
        let _ = self.inner.tx.send(Msg::SetPeerPriority(self.inner.id, p));
    }

    /// This peer's events.
    #[must_use]
    pub fn subscribe(&self) -> Receiver<Event> {
        let (tx, rx) = mpsc::channel();
        let _ = self.inner.tx.send(Msg::Subscribe(Some(self.inner.id), tx));
        rx
    }
}

/// A scheduled download. Dropping it before it finished cancels it
/// ([`CancelReason::Explicit`](weir::CancelReason::Explicit)); [`Download::detach`] lets it run instead.
#[derive(Debug)]
pub struct Download {
    id: RequestId,
    rx: Receiver<Outcome>,
    tx: Sender<Msg>,
    progress: Arc<Progress>,
    finished: bool,
}

impl Download {
    /// Bytes in the sink now and the size it will have, when known: a
    /// cheap read at any moment (no message to the driver).
    #[must_use]
    pub fn progress(&self) -> Snapshot {
        self.progress.get()
    }

    /// The live counter behind [`Download::progress`], to read from another
    /// thread (a UI's ticker) for as long as it likes.
    #[must_use]
    pub fn progress_handle(&self) -> Arc<Progress> {
        Arc::clone(&self.progress)
    }

    /// The request's id, as events name it.
    #[must_use]
    pub fn id(&self) -> RequestId {
        self.id
    }

    /// Block until the download ends.
    ///
    /// # Errors
    /// Why it did not complete.
    pub fn wait(mut self) -> Outcome {
        self.finished = true;
        self.rx.recv().unwrap_or(Err(FetchError::Gone))
    }

    /// Block at most `d`; `None` when the download is still running.
    pub fn wait_timeout(&mut self, d: Duration) -> Option<Outcome> {
        if self.finished {
            return Some(Err(FetchError::Gone));
        }
        match self.rx.recv_timeout(d) {
            Ok(o) => {
                self.finished = true;
                Some(o)
            }
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => {
                self.finished = true;
                Some(Err(FetchError::Gone))
            }
        }
    }

    /// Cancel it ([`CancelReason::Explicit`](weir::CancelReason::Explicit)).
    pub fn cancel(&self) {
        let _ = self.tx.send(Msg::Cancel(self.id));
    }

    /// Change its priority.
    pub fn set_priority(&self, p: RequestPriority) {
        let _ = self.tx.send(Msg::SetPriority(self.id, p));
    }

    /// Let it run to its end without anyone waiting for it.
    pub fn detach(mut self) {
        self.finished = true;
    }
}

impl Drop for Download {
    fn drop(&mut self) {
        if !self.finished {
            self.cancel();
        }
    }
}

/// What the driver keeps per live request.
struct Rec {
    /// The URL asked for (the origin credentials may go to).
    first: Url,
    headers: Headers,
    method: weir::RequestMethod,
    range: Option<(u64, Option<u64>)>,
    sink: Arc<Mutex<SinkState>>,
    done: Sender<Outcome>,
    /// The running attempt and its abort handle.
    running: Option<(u32, Arc<AbortHandle>)>,
}

/// The driver: owns the scheduler and runs the loop of DESIGN.md.
struct Driver {
    sched: Scheduler,
    rx: Receiver<Msg>,
    jobs: Option<Sender<Job>>,
    reqs: HashMap<RequestId, Rec>,
    root_subs: Vec<Sender<Event>>,
    peer_subs: HashMap<PeerId, Vec<Sender<Event>>>,
    memory_limit: u64,
    headers: Headers,
}

impl Driver {
    fn run(mut self) {
        loop {
            let msg = match self.sched.poll_timeout() {
                Some(at) => {
                    let now = Instant::now();
                    if at <= now {
                        Err(RecvTimeoutError::Timeout)
                    } else {
                        self.rx.recv_timeout(at - now)
                    }
                }
                None => self.rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
            };
            match msg {
                Ok(Msg::Shutdown) | Err(RecvTimeoutError::Disconnected) => break,
                Ok(m) => self.handle(m),
                Err(RecvTimeoutError::Timeout) => {}
            }
            // Take whatever else is waiting, so inputs that arrived together are scheduled together.
            loop {
                match self.rx.try_recv() {
                    Ok(Msg::Shutdown) => return self.stop(),
                    Ok(m) => self.handle(m),
                    Err(_) => break,
                }
            }
            self.sched.handle_timeout(Instant::now());
            self.drain();
        }
        self.stop();
    }

    fn stop(mut self) {
        self.sched.shutdown(Instant::now());
        self.drain();
        // Closing the job channel ends the workers once their transfer stops.
        self.jobs = None;
    }

    fn handle(&mut self, m: Msg) {
        let now = Instant::now();
        match m {
            Msg::AddPeer(p, reply) => {
                let _ = reply.send(self.sched.add_peer(p));
            }
            Msg::RemovePeer(p) => {
                self.sched.remove_peer(p, now);
                self.drain();
                self.peer_subs.remove(&p);
            }
            Msg::SetPeerPriority(p, prio) => self.sched.set_peer_priority(p, prio, now),
            Msg::NewGroup(p, reply) => {
                let _ = reply.send(self.sched.new_group(p));
            }
            Msg::CancelGroup(g) => self.sched.cancel_group(g, now),
            Msg::FetchMany { peer, items, reply } => {
                let ids = items.into_iter().map(|item| self.enqueue(peer, item, now)).collect();
                let _ = reply.send(ids);
            }
            Msg::Cancel(id) => self.sched.cancel(id, now),
            Msg::SetPriority(id, p) => self.sched.set_priority(id, p, now),
            Msg::Subscribe(None, tx) => self.root_subs.push(tx),
            Msg::Subscribe(Some(p), tx) => self.peer_subs.entry(p).or_default().push(tx),
            Msg::Bytes { id, attempt, n } => {
                if self.current(id, attempt) {
                    self.sched.on_bytes(id, n, now);
                }
            }
            Msg::Progress { id, attempt } => {
                if self.current(id, attempt) {
                    self.sched.on_progress(id, now);
                }
            }
            Msg::Finished { id, attempt, result } => {
                if self.current(id, attempt) {
                    if let Some(rec) = self.reqs.get_mut(&id) {
                        rec.running = None;
                    }
                    match result {
                        Ok(None) => self.sched.on_complete(id, now),
                        Ok(Some(url)) => self.sched.on_redirect(id, url, now),
                        Err(e) => self.sched.on_failed(id, e, now),
                    }
                }
            }
            Msg::Shutdown => unreachable!("handled by the loop"),
        }
    }

    fn enqueue(&mut self, peer: PeerId, item: Item, now: Instant) -> Result<RequestId, EnqueueError> {
        let Item { req, sink, fetch, done, progress } = item;
        let (first, method, range) = (req.url().clone(), req.method(), req.range_value());
        let id = self.sched.enqueue(peer, req, now)?;
        let sink = SinkState::with_progress(sink, self.memory_limit, progress).expecting(fetch.expect);
        let sink = Arc::new(Mutex::new(sink));
        let headers = fetch.headers;
        self.reqs.insert(id, Rec { first, headers, method, range, sink, done, running: None });
        Ok(id)
    }

    /// Whether a report comes from the attempt that is running now.
    fn current(&self, id: RequestId, attempt: u32) -> bool {
        self.reqs.get(&id).and_then(|r| r.running.as_ref()).is_some_and(|(a, _)| *a == attempt)
    }

    fn drain(&mut self) {
        while let Some(out) = self.sched.poll_output() {
            match out {
                Output::Start(cmd) => {
                    let Some(rec) = self.reqs.get_mut(&cmd.id) else { continue };
                    let abort = Arc::new(AbortHandle::default());
                    rec.running = Some((cmd.attempt, Arc::clone(&abort)));
                    let job = Job {
                        id: cmd.id,
                        attempt: cmd.attempt,
                        headers: Headers::for_attempt(&rec.headers, &self.headers, &rec.first, &cmd.url),
                        url: cmd.url.clone(), // a redirect may have moved it
                        method: rec.method,
                        range: rec.range,
                        sink: Arc::clone(&rec.sink),
                        abort,
                    };
                    if let Some(jobs) = &self.jobs {
                        let _ = jobs.send(job);
                    }
                }
                Output::Abort(id) => {
                    if let Some((_, abort)) = self.reqs.get_mut(&id).and_then(|r| r.running.take()) {
                        abort.abort();
                    }
                }
                Output::Event(peer, ev) => {
                    if ev.is_terminal() {
                        self.finish(&ev);
                    }
                    self.publish(peer, ev);
                }
            }
        }
    }

    fn publish(&mut self, peer: PeerId, ev: DownloaderEvent) {
        let item = (peer, ev);
        self.root_subs.retain(|s| s.send(item.clone()).is_ok());
        if let Some(subs) = self.peer_subs.get_mut(&peer) {
            subs.retain(|s| s.send(item.clone()).is_ok());
        }
    }

    /// A request ended: settle its sink and tell whoever waits.
    fn finish(&mut self, ev: &DownloaderEvent) {
        let Some(rec) = self.reqs.remove(&ev.request_id()) else { return };
        if let Some((_, abort)) = &rec.running {
            abort.abort();
        }
        // The worker may still hold the sink for an instant after an abort;
        // it never writes once aborted, so taking it over is safe.
        let state = match Arc::try_unwrap(rec.sink) {
            Ok(m) => m.into_inner().unwrap_or_else(std::sync::PoisonError::into_inner),
            Err(shared) => {
                let mut s = lock(&shared);
                std::mem::replace(&mut *s, SinkState::new(Sink::Memory, 0))
            }
        };
        let Some(outcome) = state.settle(ev) else { return };
        let _ = rec.done.send(outcome);
    }
}
