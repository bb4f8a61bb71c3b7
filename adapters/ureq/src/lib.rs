//! # weir-ureq: weir for programs without an async runtime
//!
//! The sans-IO driver, [`weir_http::Hub`] (which owns the
//! [`weir::Scheduler`]), sits behind one lock. Handles call it directly; a
//! pool of worker threads performs the transfers with [`ureq`] 3 and
//! reports to it, a worker that finishes taking its own next transfer in
//! the same call; a timer thread fires the scheduler's deadlines.
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
//! * **No decision here.** The hub makes every decision: it hands each
//!   transfer the download's sink, which comes back with the transfer's
//!   last report.
//! * **One pool.** Every worker uses the downloader's one `ureq` agent
//!   ([`Pool`]), which downloaders may share.
//! * **Abort** is prompt: the hub raises the transfer's [`weir_http::Stop`];
//!   a read blocked on the socket waits in slices of 10 ms and gives up at
//!   the next one, dropping that connection only. (A connect in progress
//!   finishes or times out first.) A quarter more workers than
//!   `max_concurrent` (at least one) are spare, so the start that follows
//!   an abort (a preemption) never waits for the aborted transfer to stop.
//! * **Byte accounting.** The sink's count of delivered bytes is what the
//!   next `Range` asks from. Bytes a worker wrote in the instant between the
//!   scheduler's abort and the worker noticing it are in the sink (and so
//!   never fetched twice) but may be missing from the scheduler's
//!   `bytes_transferred`.
//! * **Disk.** A completed file is put on disk (unless
//!   [`Options::durable`] is off) before it takes its final name, on a
//!   sync thread that does it for every file completed meanwhile at once
//!   (one `syncfs` per file system on Linux) and then renames them:
//!   workers never wait for the disk nor contend for a directory's lock.
//! * **Threads.** [`Downloader`] joins its timer, its sync thread and
//!   every worker when it is dropped or shut down (settling what the sync
//!   thread holds first); nothing is left behind.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod handle;
mod shared;
mod syncer;
mod watch;
mod worker;

use std::sync::mpsc;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

pub use handle::{Download, PeerHandle};
use shared::Shared;
/// The `ureq` this adapter runs on, for [`Options::agent`] (proxy, TLS,
/// timeouts) and [`Pool`] without a version to keep in step.
pub use ureq;
pub use weir;
use weir::{Config, ConfigError, RequestPriority, Scheduler};
/// Where [`Options::record`] writes its trace (feature `trace`).
#[cfg(feature = "trace")]
pub use weir_http::trace::RecordTo;
pub use weir_http::{
    content_range, retry_after, Check, ContentRange, Event, Expect, Fetch, FetchError, Head, HeaderError, Headers,
    Outcome, Progress, Response, Sink, Snapshot, DEFAULT_MEMORY_LIMIT,
};
use weir_http::{Hub, HubOptions, Transfer};

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

/// A `ureq` agent (one connection pool) built for weir: its connections
/// tell a reset from the end of a body and stop promptly when weir aborts
/// a transfer. Clone it to share one pool between downloaders.
#[derive(Debug, Clone)]
pub struct Pool(ureq::Agent);

impl Pool {
    /// A pool whose agent has this configuration (see [`Options::agent`]).
    #[must_use]
    pub fn new(config: &ureq::config::Config) -> Self {
        Pool(worker::new_agent(config))
    }
}

/// Options of the blocking adapter beyond the scheduler's [`Config`].
#[derive(Debug, Clone)]
pub struct Options {
    /// The `ureq` configuration the downloader's agent is built from (unless
    /// [`Options::pool`] is given). The default keeps `ureq`'s defaults
    /// (proxy from the environment) and a 30 s connect timeout; weir judges
    /// redirects and error statuses itself, reading `Retry-After` and
    /// routing redirects through the scheduler.
    pub agent: ureq::config::Config,
    /// Use this pool (shared with other downloaders) instead of a new one.
    pub pool: Option<Pool>,
    /// Record every input of the scheduler to this trace (feature `trace`;
    /// replay it with `weir_http::trace::replay` or `weir replay`).
    #[cfg(feature = "trace")]
    pub record: Option<weir_http::trace::RecordTo>,
    /// Largest body a [`Sink::Memory`] accepts ([`weir::NetError::TooLarge`] beyond).
    pub memory_limit: u64,
    /// Put every completed file on disk before it takes its final name
    /// (default `true`), off the transfers and for many files at once (see
    /// [`weir_http::sync_together`]); `false` trusts the OS as curl and
    /// wget do: faster on many small files, but a power loss may leave a
    /// short file under its final name.
    pub durable: bool,
    /// Headers every download sends unless it sets its own (see
    /// [`PeerHandle::fetch_with`]); a `User-Agent` of [`weir_http::USER_AGENT`]
    /// is sent when neither sets one.
    pub headers: Headers,
}

/// Idle keep-alive connections the pool keeps per host (ureq's default is
/// 3): more than weir's workers to one host rarely run at once, and each
/// connection dropped for want of room is a new connection later.
pub const IDLE_PER_HOST: usize = 64;

/// weir's starting point for an agent: ureq's defaults (proxy from the
/// environment), status codes as responses, a 30 s connect timeout, and
/// room in the pool for [`IDLE_PER_HOST`] idle connections per host (256
/// in all).
fn agent_builder() -> ureq::config::ConfigBuilder<ureq::typestate::AgentScope> {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_connect(Some(Duration::from_secs(30)))
        .max_idle_connections(256)
        .max_idle_connections_per_host(IDLE_PER_HOST)
}

impl Options {
    /// With `agent` rebuilt from weir's defaults with this proxy instead of
    /// the environment's (`None`: direct connections only). Set other agent
    /// settings after this, or build the whole config yourself.
    #[must_use]
    pub fn with_proxy(mut self, proxy: Option<ureq::Proxy>) -> Self {
        self.agent = agent_builder().proxy(proxy).build();
        self
    }
}

impl Default for Options {
    fn default() -> Self {
        Self {
            agent: agent_builder().build(),
            memory_limit: DEFAULT_MEMORY_LIMIT,
            durable: true,
            headers: Headers::new(),
            pool: None,
            #[cfg(feature = "trace")]
            record: None,
        }
    }
}

/// The blocking downloader: its workers, a timer thread and a sync thread
/// around one [`weir_http::Hub`].
pub struct Downloader {
    shared: Arc<Shared>,
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

    /// Start a downloader whose agent is configured like `agent` (weir
    /// builds its own agent from `agent.config()`, with its connection
    /// wrapper; see [`Pool`]).
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
        if config.max_concurrent > MAX_WORKERS {
            return Err(StartError::TooManyWorkers(config.max_concurrent));
        }
        let hub_options = HubOptions {
            headers: options.headers,
            memory_limit: options.memory_limit,
            async_writers: false,
            durable: options.durable,
            #[cfg(feature = "trace")]
            record: options.record,
        };
        // Spare workers: a start never waits for an aborted transfer to
        // notice its stop (up to one read slice) before a worker is free.
        let workers = config.max_concurrent + (config.max_concurrent / 4).max(1);
        let hub = Hub::new(Scheduler::try_new(config)?, hub_options);
        let (job_tx, job_rx) = mpsc::channel::<Box<Transfer>>();
        let (syncer, waiting) = syncer::Syncer::new();
        let mut waiting = Some(waiting);
        let shared = Arc::new(Shared::new(hub, job_tx, syncer));
        let job_rx = Arc::new(Mutex::new(job_rx));
        let pool = options.pool.unwrap_or_else(|| Pool::new(&options.agent));
        let mut threads = Vec::with_capacity(workers + 2);
        let spawn = |name: String, f: Box<dyn FnOnce() + Send>| std::thread::Builder::new().name(name).spawn(f);
        for i in 0..workers + 2 {
            let (jobs, on, agent) = (Arc::clone(&job_rx), Arc::clone(&shared), pool.0.clone());
            let spawned = if i == workers {
                spawn("weir-timer".into(), Box::new(move || on.run_timer()))
            } else if i == workers + 1 {
                let waiting = waiting.take();
                spawn(
                    "weir-sync".into(),
                    Box::new(move || {
                        if let Some(w) = waiting {
                            syncer::run(&w);
                        }
                    }),
                )
            } else {
                spawn(format!("weir-worker-{i}"), Box::new(move || worker::run(&on, &jobs, &agent)))
            };
            match spawned {
                Ok(t) => threads.push(t),
                Err(e) => {
                    // Stopping closes the job queue and the timer: those already running end.
                    shared.stop();
                    for t in threads {
                        let _ = t.join();
                    }
                    return Err(StartError::Threads(format!("thread {i} of {}: {e}", workers + 2)));
                }
            }
        }
        Ok(Self { shared, threads: Mutex::new(threads) })
    }

    /// A new peer with this priority. Dropping its last handle cancels its
    /// requests with [`CancelReason::PeerCancel`](weir::CancelReason::PeerCancel).
    ///
    #[must_use]
    pub fn peer(&self, priority: RequestPriority) -> PeerHandle {
        let id = self.shared.with(|hub, _| hub.add_peer(priority));
        PeerHandle::new(id, Arc::clone(&self.shared))
    }

    /// Every event of every peer.
    #[must_use]
    pub fn subscribe(&self) -> mpsc::Receiver<Event> {
        handle::subscribe(&self.shared, None)
    }

    /// Cancel everything ([`CancelReason::DownloaderShutdown`](weir::CancelReason::DownloaderShutdown)), stop and join
    /// every thread. Later fetches fail with [`weir::EnqueueError::ShutDown`] or
    /// [`FetchError::Gone`].
    pub fn shutdown(&self) {
        self.shared.stop();
        let threads: Vec<_> = self.threads.lock().unwrap_or_else(PoisonError::into_inner).drain(..).collect();
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
