//! # weir-async: weir for async programs, on any executor
//!
//! [`Downloader::new`] returns a handle and the **driver**, a `Send` future
//! that owns the [`weir::Scheduler`] and runs its loop: it takes commands
//! from handles over `async-channel`, sleeps on an `async_io::Timer` set to
//! `poll_timeout()` (checking the deadline itself first), and runs every
//! transfer as a task of an `async-executor` it drives itself. Spawn the
//! driver on your executor (smol, async-executor, a tokio task, or just
//! `futures_lite::future::block_on`), or call [`Downloader::spawn`] to run
//! it on a background thread. The driver ends when the downloader is shut
//! down or its last handle is gone.
//!
//! Transfers are non-blocking: HTTP/1.1 through hyper 1 over `async-net`,
//! TLS through `futures-rustls` ([`HyperTransport`]), or any [`Transport`]
//! you plug in. No thread per
//! transfer: aborting one drops its task.
//!
//! ```no_run
//! use weir::{Config, Request, RequestPriority, Url};
//! use weir_async::{Downloader, Sink};
//!
//! futures_lite::future::block_on(async {
//!     let dl = Downloader::spawn(Config::default());
//!     let player = dl.peer(RequestPriority::High).await;
//!     let seg = Request::get(Url::parse("http://127.0.0.1:8080/seg1.ts").unwrap()).priority(RequestPriority::High);
//!     let resp = player.fetch(seg, Sink::Memory).await.unwrap().await.unwrap();
//!     println!("{} bytes", resp.bytes);
//! });
//! ```
//!
//! Resume, sinks and the byte accounting follow `weir-http`, exactly as in
//! the blocking adapter. [`Sink::AsyncWriter`] takes any `AsyncWrite`;
//! `Sink::File` and `Sink::Writer` write with plain blocking calls on the
//! driver's thread (page-cache writes are quick).
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod transport;

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Instant, SystemTime};

use async_channel::{Receiver, Sender};
use async_executor::{Executor, Task};
use futures_lite::StreamExt;
use futures_lite::{AsyncWrite, AsyncWriteExt};
/// The rustls version the default transport uses (to build a `RootCertStore`).
pub use futures_rustls::rustls;
pub use transport::{BodyStream, HttpRequest, HttpResponse, HyperTransport, ResponseFuture, Transport};
pub use weir;
use weir::{
    Config, ConfigError, DownloaderEvent, EnqueueError, GroupId, NetError, Output, PeerId, Request, RequestId,
    RequestMethod, RequestPriority, Scheduler, Url,
};
use weir_http::attempt::{Attempt, End, Held, Verdict, Version, DRAIN_LIMIT};
use weir_http::report::Coalescer;
use weir_http::Verifier;
pub use weir_http::{Expect, Fetch, HeaderError, Headers, Progress};

/// Why [`Downloader::try_spawn`] could not start a downloader.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SpawnError {
    /// The scheduler's config cannot work.
    Config(ConfigError),
    /// The system refused the driver's thread.
    Thread(String),
}

impl std::fmt::Display for SpawnError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SpawnError::Config(e) => write!(f, "{e}"),
            SpawnError::Thread(e) => write!(f, "cannot start the driver thread: {e}"),
        }
    }
}

impl std::error::Error for SpawnError {}

/// Options of the async adapter beyond the scheduler's [`Config`].
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Headers every download sends unless it sets its own (see
    /// [`PeerHandle::fetch_with`]); a `User-Agent` of [`weir_http::USER_AGENT`]
    /// is sent when neither sets one.
    pub headers: Headers,
}
use weir_http::SinkState;
pub use weir_http::{Event, FetchError, Outcome, Response, Snapshot};

/// The destination of a download's body: memory, a file, a resumable
/// partial file, a blocking writer or an async writer; the one type both
/// adapters take ([`weir_http::Sink`]).
pub use weir_http::Sink;

/// A request's sink and what is known about the resource.
enum Target {
    Sync(SinkState),
    Async(AsyncState),
}

struct AsyncState {
    /// Out while a transfer writes to it; put back (even on cancellation) by `Lent`.
    writer: Option<Box<dyn AsyncWrite + Send + Unpin>>,
    written: u64,
    version: Version,
    status: u16,
    headers: Vec<(String, String)>,
    progress: Arc<Progress>,
    /// The size and digest the bytes must have.
    verify: Option<Verifier>,
}

impl Target {
    fn new(sink: Sink, progress: Arc<Progress>, expect: Expect) -> Self {
        match sink {
            Sink::AsyncWriter(w) => Target::Async(AsyncState {
                writer: Some(w),
                written: 0,
                version: Version::default(),
                status: 0,
                headers: Vec::new(),
                progress,
                verify: (!expect.is_empty()).then(|| Verifier::new(expect)),
            }),
            other => Target::Sync(SinkState::with_progress(other, MEMORY_LIMIT, progress).expecting(expect)),
        }
    }

    fn verify_complete(&mut self) -> Result<(), NetError> {
        match self {
            Target::Sync(s) => s.verify_complete(),
            Target::Async(a) => a.verify.as_ref().map_or(Ok(()), Verifier::finish),
        }
    }

    fn prepare(&mut self) -> Result<Held, NetError> {
        match self {
            Target::Sync(s) => s.prepare(),
            Target::Async(a) => Ok(Held { bytes: a.written, version: a.version.clone() }),
        }
    }

    fn rewindable(&self) -> bool {
        match self {
            Target::Sync(s) => s.rewindable(),
            Target::Async(_) => false,
        }
    }

    /// Apply an accepted answer: restart, record it as the response, keep its version.
    fn accept(
        &mut self,
        restart: bool,
        record: Option<(u16, Vec<(String, String)>)>,
        attempt: &Attempt,
    ) -> Result<(), NetError> {
        match self {
            Target::Sync(s) => s.accept(restart, record, attempt)?,
            Target::Async(a) => {
                if restart {
                    return Err(NetError::Protocol(
                        "the resource changed between attempts and the async writer cannot be rewound".into(),
                    ));
                }
                if let Some((status, headers)) = record {
                    (a.status, a.headers) = (status, headers);
                }
                a.version = attempt.version().clone();
                a.progress.set_total(attempt.final_size());
                if let Some(v) = &a.verify {
                    v.announced(attempt.final_size())?;
                }
            }
        }
        Ok(())
    }

    fn reset(&mut self) -> Result<(), NetError> {
        match self {
            Target::Sync(s) => s.reset(),
            Target::Async(_) => Err(NetError::Protocol(
                "the resource changed between attempts and the async writer cannot be rewound".into(),
            )),
        }
    }
}

/// The async writer, lent to a transfer; returned to the target when the
/// transfer ends or is cancelled, with every completed write counted.
struct Lent<'a> {
    target: &'a Mutex<Target>,
    writer: Option<Box<dyn AsyncWrite + Send + Unpin>>,
}

impl Lent<'_> {
    async fn write(&mut self, mut part: &[u8]) -> Result<(), NetError> {
        let w = self.writer.as_mut().ok_or_else(|| NetError::Sink("the writer is gone".into()))?;
        while !part.is_empty() {
            let n = w.write(part).await.map_err(|e| NetError::Sink(e.to_string()))?;
            if n == 0 {
                return Err(NetError::Sink("the writer accepts no more bytes".into()));
            }
            // Counted at once: a cancellation after this keeps the count exact.
            if let Target::Async(a) = &mut *lock(self.target) {
                a.written += n as u64;
                a.progress.set_bytes(a.written);
                if let Some(v) = &mut a.verify {
                    v.update(&part[..n]);
                }
            }
            part = &part[n..];
        }
        Ok(())
    }
}

impl Drop for Lent<'_> {
    fn drop(&mut self) {
        if let Target::Async(a) = &mut *lock(self.target) {
            a.writer = self.writer.take();
        }
    }
}

/// Largest body a [`Sink::Memory`] accepts: 256 MiB.
pub const MEMORY_LIMIT: u64 = 256 * 1024 * 1024;

enum Msg {
    AddPeer(RequestPriority, Sender<PeerId>),
    RemovePeer(PeerId),
    SetPeerPriority(PeerId, RequestPriority),
    NewGroup(PeerId, Sender<GroupId>),
    CancelGroup(GroupId),
    Fetch {
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

/// The handle to a downloader. Cheap to clone; the driver ends when every
/// clone (and every peer handle) is gone, or at [`Downloader::shutdown`].
#[derive(Clone)]
pub struct Downloader {
    tx: Sender<Msg>,
    thread: Option<Arc<Mutex<Option<std::thread::JoinHandle<()>>>>>,
}

impl std::fmt::Debug for Downloader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Downloader").finish_non_exhaustive()
    }
}

/// The driver future: run it on any executor.
pub type Driver = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

impl Downloader {
    /// A downloader and its driver, with the default [`HyperTransport`].
    ///
    /// # Panics
    /// When the config cannot work; see [`Downloader::with_transport`].
    #[must_use]
    pub fn new(config: Config) -> (Downloader, Driver) {
        Self::with_transport(config, Arc::new(HyperTransport::new())).unwrap_or_else(|e| panic!("{e}"))
    }

    /// A downloader and its driver over `transport`.
    ///
    /// # Errors
    /// The [`ConfigError`] when the config cannot work.
    pub fn with_transport(config: Config, transport: Arc<dyn Transport>) -> Result<(Downloader, Driver), ConfigError> {
        Self::with_options(config, transport, Options::default())
    }

    /// A downloader and its driver over `transport`, with `options`.
    ///
    /// # Errors
    /// The [`ConfigError`] when the config cannot work.
    pub fn with_options(
        config: Config,
        transport: Arc<dyn Transport>,
        options: Options,
    ) -> Result<(Downloader, Driver), ConfigError> {
        let sched = Scheduler::try_new(config)?;
        let (tx, rx) = async_channel::unbounded();
        let driver = DriverState {
            sched,
            rx,
            reports: tx.downgrade(),
            transport,
            reqs: HashMap::new(),
            root_subs: Vec::new(),
            peer_subs: HashMap::new(),
            headers: options.headers,
            retired: Vec::new(),
        };
        Ok((Downloader { tx, thread: None }, Box::pin(driver.run())))
    }

    /// A downloader whose driver runs on a background thread
    /// (`async_io::block_on`), joined when the last clone is dropped.
    ///
    /// # Panics
    /// When the config cannot work, or the thread cannot be spawned; see
    /// [`Downloader::try_spawn`] for the error instead.
    #[must_use]
    pub fn spawn(config: Config) -> Downloader {
        Self::try_spawn(config, Arc::new(HyperTransport::new()), Options::default()).unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`Downloader::spawn`] over `transport` with `options`.
    ///
    /// # Errors
    /// [`SpawnError::Config`] when the config cannot work,
    /// [`SpawnError::Thread`] when the system refuses the driver's thread.
    pub fn try_spawn(
        config: Config,
        transport: Arc<dyn Transport>,
        options: Options,
    ) -> Result<Downloader, SpawnError> {
        let (mut dl, driver) = Self::with_options(config, transport, options).map_err(SpawnError::Config)?;
        let t = std::thread::Builder::new()
            .name("weir-async-driver".into())
            .spawn(move || async_io::block_on(driver))
            .map_err(|e| SpawnError::Thread(e.to_string()))?;
        dl.thread = Some(Arc::new(Mutex::new(Some(t))));
        Ok(dl)
    }

    async fn ask<T>(&self, make: impl FnOnce(Sender<T>) -> Msg) -> Option<T> {
        let (tx, rx) = async_channel::bounded(1);
        self.tx.send(make(tx)).await.ok()?;
        rx.recv().await.ok()
    }

    /// A new peer with this priority; dropping its last handle cancels its
    /// requests with [`CancelReason::PeerCancel`](weir::CancelReason::PeerCancel).
    ///
    /// # Panics
    /// When the driver is gone (shut down, or never polled and dropped).
    pub async fn peer(&self, priority: RequestPriority) -> PeerHandle {
        let id = self.ask(|tx| Msg::AddPeer(priority, tx)).await.expect("the driver is running");
        PeerHandle { inner: Arc::new(PeerInner { id, tx: self.tx.clone() }) }
    }

    /// Every event of every peer, as a `Stream`.
    #[must_use]
    pub fn subscribe(&self) -> Receiver<Event> {
        let (tx, rx) = async_channel::unbounded();
        let _ = self.tx.try_send(Msg::Subscribe(None, tx));
        rx
    }

    /// Cancel everything ([`CancelReason::DownloaderShutdown`](weir::CancelReason::DownloaderShutdown)) and end the driver.
    pub fn shutdown(&self) {
        let _ = self.tx.try_send(Msg::Shutdown);
    }
}

impl Drop for Downloader {
    fn drop(&mut self) {
        // The handle that started a background driver stops and joins it.
        if let Some(t) = self.thread.take() {
            if let Ok(m) = Arc::try_unwrap(t) {
                let _ = self.tx.try_send(Msg::Shutdown);
                if let Some(h) = m.into_inner().unwrap_or_else(std::sync::PoisonError::into_inner) {
                    let _ = h.join();
                }
            }
        }
    }
}

struct PeerInner {
    id: PeerId,
    tx: Sender<Msg>,
}

impl Drop for PeerInner {
    fn drop(&mut self) {
        let _ = self.tx.try_send(Msg::RemovePeer(self.id));
    }
}

/// A peer: a scope with its own priority, groups and events.
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
    /// The scheduler's [`EnqueueError`].
    pub async fn fetch(&self, req: Request, sink: Sink) -> Result<Download, EnqueueError> {
        self.fetch_all(vec![(req, sink)]).await.pop().unwrap_or(Err(EnqueueError::ShutDown))
    }

    /// Schedule many downloads together (one round trip); results in input order.
    pub async fn fetch_all(&self, items: Vec<(Request, Sink)>) -> Vec<Result<Download, EnqueueError>> {
        self.fetch_all_with(items.into_iter().map(|(r, s)| (r, s, Fetch::new())).collect()).await
    }

    /// Schedule a download into `sink` with its HTTP side: headers to
    /// send too (auth tokens, cookies, `Accept`, ...; a [`Headers`] alone
    /// will do) and the size and SHA-256 its bytes must have. Credentials
    /// (`Authorization`, `Cookie`, `Proxy-Authorization`) are not sent to
    /// another origin after a redirect; a size or digest mismatch fails the
    /// download with [`NetError::Integrity`] instead of completing it.
    ///
    /// # Errors
    /// The scheduler's [`EnqueueError`].
    pub async fn fetch_with(
        &self,
        req: Request,
        sink: Sink,
        fetch: impl Into<Fetch>,
    ) -> Result<Download, EnqueueError> {
        self.fetch_all_with(vec![(req, sink, fetch.into())]).await.pop().unwrap_or(Err(EnqueueError::ShutDown))
    }

    /// [`PeerHandle::fetch_all`] with headers per download (see [`PeerHandle::fetch_with`]).
    pub async fn fetch_all_with(&self, items: Vec<(Request, Sink, Fetch)>) -> Vec<Result<Download, EnqueueError>> {
        let n = items.len();
        let mut outcomes = Vec::with_capacity(n);
        let items: Vec<_> = items
            .into_iter()
            .map(|(req, sink, fetch)| {
                let (done, rx) = async_channel::bounded(1);
                let progress = Arc::new(Progress::default());
                outcomes.push((rx, Arc::clone(&progress)));
                Item { req, sink, fetch, done, progress }
            })
            .collect();
        let (reply, reply_rx) = async_channel::bounded(1);
        let ids = match self.inner.tx.send(Msg::Fetch { peer: self.inner.id, items, reply }).await {
            Ok(()) => reply_rx.recv().await.unwrap_or_else(|_| vec![Err(EnqueueError::ShutDown); n]),
            Err(_) => vec![Err(EnqueueError::ShutDown); n],
        };
        ids.into_iter()
            .zip(outcomes)
            .map(|(id, (rx, progress))| {
                id.map(|id| Download { id, rx: Box::pin(rx), tx: self.inner.tx.clone(), progress, finished: false })
            })
            .collect()
    }

    /// Download into memory and wait.
    ///
    /// # Errors
    /// Why it did not complete.
    pub async fn execute(&self, req: Request) -> Outcome {
        self.fetch(req, Sink::Memory).await.map_err(FetchError::Refused)?.await
    }

    /// Download all into memory; outcomes in input order.
    pub async fn batch(&self, reqs: Vec<Request>) -> Vec<Outcome> {
        let downloads = self.fetch_all(reqs.into_iter().map(|r| (r, Sink::Memory)).collect()).await;
        let mut out = Vec::with_capacity(downloads.len());
        for d in downloads {
            out.push(match d {
                Ok(d) => d.await,
                Err(e) => Err(FetchError::Refused(e)),
            });
        }
        out
    }

    /// Open a cancellation group (an epoch).
    ///
    /// # Panics
    /// When the driver is gone.
    pub async fn new_group(&self) -> GroupId {
        let (tx, rx) = async_channel::bounded(1);
        let _ = self.inner.tx.send(Msg::NewGroup(self.inner.id, tx)).await;
        rx.recv().await.expect("the driver is running")
    }

    /// Cancel a group ([`CancelReason::EpochCancel`](weir::CancelReason::EpochCancel)).
    pub fn cancel_group(&self, g: GroupId) {
        let _ = self.inner.tx.try_send(Msg::CancelGroup(g));
    }

    /// Change the peer's priority.
    pub fn set_priority(&self, p: RequestPriority) {
        let _ = self.inner.tx.try_send(Msg::SetPeerPriority(self.inner.id, p));
    }

    /// This peer's events, as a `Stream`.
    #[must_use]
    pub fn subscribe(&self) -> Receiver<Event> {
        let (tx, rx) = async_channel::unbounded();
        let _ = self.inner.tx.try_send(Msg::Subscribe(Some(self.inner.id), tx));
        rx
    }
}

/// A scheduled download: a future of its [`Outcome`]. Dropping it before it
/// finished cancels the request ([`CancelReason::Explicit`](weir::CancelReason::Explicit)): cancel-safe.
#[derive(Debug)]
pub struct Download {
    id: RequestId,
    rx: Pin<Box<Receiver<Outcome>>>,
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

    /// The request's id.
    #[must_use]
    pub fn id(&self) -> RequestId {
        self.id
    }

    /// Cancel it.
    pub fn cancel(&self) {
        let _ = self.tx.try_send(Msg::Cancel(self.id));
    }

    /// Change its priority.
    pub fn set_priority(&self, p: RequestPriority) {
        let _ = self.tx.try_send(Msg::SetPriority(self.id, p));
    }

    /// Let it run without anyone awaiting it.
    pub fn detach(mut self) {
        self.finished = true;
    }
}

impl Future for Download {
    type Output = Outcome;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Outcome> {
        match self.rx.as_mut().poll_next(cx) {
            Poll::Ready(o) => {
                self.finished = true;
                Poll::Ready(o.unwrap_or(Err(FetchError::Gone)))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl Drop for Download {
    fn drop(&mut self) {
        if !self.finished {
            self.cancel();
        }
    }
}

/// One download on its way to the driver.
struct Item {
    req: Request,
    sink: Sink,
    fetch: Fetch,
    done: Sender<Outcome>,
    progress: Arc<Progress>,
}

struct Rec {
    /// The URL asked for (the origin credentials may go to).
    first: Url,
    headers: Headers,
    method: RequestMethod,
    range: Option<(u64, Option<u64>)>,
    sink: Arc<Mutex<Target>>,
    done: Sender<Outcome>,
    running: Option<(u32, Task<()>)>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

struct DriverState {
    sched: Scheduler,
    rx: Receiver<Msg>,
    /// For transfers' reports; weak so that handles alone keep the driver alive.
    reports: async_channel::WeakSender<Msg>,
    transport: Arc<dyn Transport>,
    reqs: HashMap<RequestId, Rec>,
    root_subs: Vec<Sender<Event>>,
    peer_subs: HashMap<PeerId, Vec<Sender<Event>>>,
    /// Headers every download sends unless it sets its own.
    headers: Headers,
    /// Peers removed since the last drain; their subscribers go after it.
    retired: Vec<PeerId>,
}

enum Wake {
    Msg(Msg),
    Timer,
    Closed,
}

impl DriverState {
    async fn run(mut self) {
        let ex = Executor::new();
        ex.run(async {
            loop {
                let wake = match self.sched.poll_timeout() {
                    Some(at) if at <= Instant::now() => Wake::Timer,
                    Some(at) => {
                        futures_lite::future::or(
                            async { self.rx.recv().await.map_or(Wake::Closed, Wake::Msg) },
                            async {
                                async_io::Timer::at(at).await;
                                Wake::Timer
                            },
                        )
                        .await
                    }
                    None => self.rx.recv().await.map_or(Wake::Closed, Wake::Msg),
                };
                match wake {
                    Wake::Closed | Wake::Msg(Msg::Shutdown) => break,
                    Wake::Msg(m) => self.handle(m),
                    Wake::Timer => {}
                }
                let mut stop = false;
                while let Ok(m) = self.rx.try_recv() {
                    if matches!(m, Msg::Shutdown) {
                        stop = true;
                        break;
                    }
                    self.handle(m);
                }
                self.sched.handle_timeout(Instant::now());
                self.drain(&ex);
                if stop {
                    break;
                }
            }
            self.sched.shutdown(Instant::now());
            self.drain(&ex);
        })
        .await;
    }

    fn handle(&mut self, m: Msg) {
        let now = Instant::now();
        match m {
            Msg::AddPeer(p, reply) => {
                let _ = reply.try_send(self.sched.add_peer(p));
            }
            Msg::RemovePeer(p) => {
                // Its subscribers go once the events of its end are
                // published, in the drain that follows (which also starts
                // what the freed slots let start).
                self.sched.remove_peer(p, now);
                self.retired.push(p);
            }
            Msg::SetPeerPriority(p, prio) => self.sched.set_peer_priority(p, prio, now),
            Msg::NewGroup(p, reply) => {
                let _ = reply.try_send(self.sched.new_group(p));
            }
            Msg::CancelGroup(g) => self.sched.cancel_group(g, now),
            Msg::Fetch { peer, items, reply } => {
                let ids = items
                    .into_iter()
                    .map(|Item { req, sink, fetch, done, progress }| {
                        let (first, method, range) = (req.url().clone(), req.method(), req.range_value());
                        let id = self.sched.enqueue(peer, req, now)?;
                        let sink = Arc::new(Mutex::new(Target::new(sink, progress, fetch.expect)));
                        let headers = fetch.headers;
                        self.reqs.insert(id, Rec { first, headers, method, range, sink, done, running: None });
                        Ok(id)
                    })
                    .collect();
                let _ = reply.try_send(ids);
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
                        // The task is finishing on its own: detach rather than cancel it.
                        if let Some((_, task)) = rec.running.take() {
                            task.detach();
                        }
                    }
                    match result {
                        Ok(None) => self.sched.on_complete(id, now),
                        Ok(Some(url)) => self.sched.on_redirect(id, url, now),
                        Err(e) => self.sched.on_failed(id, e, now),
                    }
                }
            }
            Msg::Shutdown => {}
        }
    }

    fn current(&self, id: RequestId, attempt: u32) -> bool {
        self.reqs.get(&id).and_then(|r| r.running.as_ref()).is_some_and(|(a, _)| *a == attempt)
    }

    fn drain(&mut self, ex: &Executor<'_>) {
        while let Some(out) = self.sched.poll_output() {
            self.act(out, ex);
        }
        for p in self.retired.drain(..) {
            self.peer_subs.remove(&p);
        }
    }

    fn act(&mut self, out: Output, ex: &Executor<'_>) {
        match out {
            Output::Start(cmd) => {
                let (Some(rec), Some(reports)) = (self.reqs.get_mut(&cmd.id), self.reports.upgrade()) else {
                    return;
                };
                let job = Job {
                    id: cmd.id,
                    attempt: cmd.attempt,
                    headers: Headers::for_attempt(&rec.headers, &self.headers, &rec.first, &cmd.url),
                    url: cmd.url.clone(), // a redirect may have moved it
                    method: rec.method,
                    range: rec.range,
                    sink: Arc::clone(&rec.sink),
                };
                let task = ex.spawn(transfer(Arc::clone(&self.transport), job, reports));
                rec.running = Some((cmd.attempt, task));
            }
            Output::Abort(id) => {
                // Dropping the task cancels the transfer at its next await.
                if let Some(rec) = self.reqs.get_mut(&id) {
                    rec.running = None;
                }
            }
            Output::Event(peer, ev) => {
                if ev.is_terminal() {
                    self.finish(&ev);
                }
                let item = (peer, ev);
                self.root_subs.retain(|s| s.try_send(item.clone()).is_ok());
                if let Some(subs) = self.peer_subs.get_mut(&peer) {
                    subs.retain(|s| s.try_send(item.clone()).is_ok());
                }
            }
        }
    }

    fn finish(&mut self, ev: &DownloaderEvent) {
        let Some(rec) = self.reqs.remove(&ev.request_id()) else { return };
        drop(rec.running);
        let target = match Arc::try_unwrap(rec.sink) {
            Ok(m) => m.into_inner().unwrap_or_else(std::sync::PoisonError::into_inner),
            Err(shared) => {
                std::mem::replace(&mut *lock(&shared), Target::Sync(SinkState::new(weir_http::Sink::Memory, 0)))
            }
        };
        let outcome = match target {
            Target::Sync(state) => match state.settle(ev) {
                Some(o) => o,
                None => return,
            },
            // The transfer flushed the writer before it reported success.
            Target::Async(a) => match ev {
                DownloaderEvent::RequestCompleted { .. } => {
                    Ok(Response { status: a.status, headers: a.headers, bytes: a.written, body: None, path: None })
                }
                DownloaderEvent::RequestFailed { error, .. } => Err(FetchError::Failed(error.clone())),
                DownloaderEvent::RequestCancelled { reason, .. } => Err(FetchError::Cancelled(*reason)),
                _ => return,
            },
        };
        let _ = rec.done.try_send(outcome);
    }
}

struct Job {
    id: RequestId,
    attempt: u32,
    url: Url,
    /// The caller's headers for this attempt's URL.
    headers: Vec<(String, String)>,
    method: RequestMethod,
    range: Option<(u64, Option<u64>)>,
    sink: Arc<Mutex<Target>>,
}

/// Sends byte reports to the driver as `weir_http::report` paces them.
struct Reporter {
    tx: Sender<Msg>,
    id: RequestId,
    attempt: u32,
    pace: Coalescer,
}

impl Reporter {
    fn send(&self, n: Option<u64>) {
        if let Some(n) = n {
            let _ = self.tx.try_send(Msg::Bytes { id: self.id, attempt: self.attempt, n });
        }
    }

    fn add(&mut self, n: u64) {
        let due = self.pace.add(n);
        self.send(due);
    }

    fn skipped(&mut self) {
        if self.pace.skipped() {
            let _ = self.tx.try_send(Msg::Progress { id: self.id, attempt: self.attempt });
        }
    }

    fn flush(&mut self) {
        let rest = self.pace.take();
        self.send(rest);
    }
}

async fn transfer(transport: Arc<dyn Transport>, job: Job, reports: Sender<Msg>) {
    let mut report = Reporter { tx: reports.clone(), id: job.id, attempt: job.attempt, pace: Coalescer::default() };
    let result = attempt(&*transport, &job, &mut report).await;
    report.flush();
    let _ = reports.try_send(Msg::Finished { id: job.id, attempt: job.attempt, result });
}

/// One attempt: a loop around [`Attempt`], which makes every HTTP decision.
/// `Ok(None)`: complete; `Ok(Some(url))`: a redirect, for the scheduler to decide on.
async fn attempt(transport: &dyn Transport, job: &Job, report: &mut Reporter) -> Result<Option<Url>, NetError> {
    let (held, rewindable) = {
        let mut t = lock(&job.sink);
        (t.prepare()?, t.rewindable())
    };
    let mut attempt =
        Attempt::new(job.url.clone(), job.method, job.range, held, rewindable).with_headers(job.headers.clone());
    let Some(ask) = attempt.ask() else {
        // Every byte is already there.
        lock(&job.sink).verify_complete()?;
        return Ok(None);
    };
    let headers =
        ask.caller.iter().cloned().chain(ask.headers.iter().map(|(k, v)| ((*k).to_owned(), v.clone()))).collect();
    let mut resp = transport.send(HttpRequest { method: ask.method, url: ask.url, headers }).await?;
    match attempt.on_head(resp.status, &resp.headers, SystemTime::now()) {
        Verdict::Redirect(url) => {
            drain(resp.body, DRAIN_LIMIT).await;
            return Ok(Some(url));
        }
        Verdict::Fail { error, discard } => {
            if discard {
                lock(&job.sink).reset()?;
            }
            return Err(error);
        }
        Verdict::Accept { restart, record } => {
            let record = record.then(|| (resp.status, resp.headers.clone()));
            lock(&job.sink).accept(restart, record, &attempt)?;
        }
    }
    let mut lent = match &mut *lock(&job.sink) {
        Target::Async(a) => Some(Lent { target: &job.sink, writer: a.writer.take() }),
        Target::Sync(_) => None,
    };
    let end = loop {
        if !attempt.wants_more() {
            // Read a short rest so the connection goes back to the pool; the
            // attempt still checks it against the announced length.
            if let Some(rest) = attempt.unread().filter(|&n| n <= DRAIN_LIMIT) {
                let mut left = rest.saturating_add(1);
                while left > 0 {
                    match resp.body.next().await {
                        Some(Ok(c)) => {
                            attempt.on_body(&c)?;
                            left = left.saturating_sub(c.len() as u64);
                        }
                        Some(Err(_)) | None => break,
                    }
                }
            }
            break End::Clean;
        }
        let chunk = match resp.body.next().await {
            None => break End::Clean,
            Some(Err(e)) => break End::Broken(e),
            Some(Ok(chunk)) => chunk,
        };
        let part = attempt.on_body(&chunk)?;
        if part.is_empty() {
            report.skipped();
            continue;
        }
        match &mut lent {
            Some(l) => l.write(part).await?,
            None => match &mut *lock(&job.sink) {
                Target::Sync(s) => s.write(part)?,
                Target::Async(_) => unreachable!("an async target is lent"),
            },
        }
        report.add(part.len() as u64);
    };
    attempt.on_end(end)?;
    if let Some(w) = lent.as_mut().and_then(|l| l.writer.as_mut()) {
        w.flush().await.map_err(|e| NetError::Sink(e.to_string()))?;
    }
    drop(lent);
    lock(&job.sink).verify_complete()?;
    Ok(None)
}

/// Read and drop up to `limit` more bytes of a redirect's body (plus the
/// end), so the connection returns to the pool.
async fn drain(mut body: BodyStream, limit: u64) {
    let mut left = limit.saturating_add(1);
    while left > 0 {
        match body.next().await {
            Some(Ok(c)) => left = left.saturating_sub(c.len() as u64),
            Some(Err(_)) | None => return,
        }
    }
}
