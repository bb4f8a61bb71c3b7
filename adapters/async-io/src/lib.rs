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
//! Transfers are non-blocking: hyper-util's pooled client over
//! `async-net` (HTTP/1.1, and HTTP/2 where TLS negotiates it), TLS through
//! `futures-rustls` ([`HyperTransport`]), or any [`Transport`] you plug in. No thread per
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
//! The driver is a shell around [`weir_http::Hub`], which makes every
//! decision, exactly as in the blocking adapter: resume, sinks and the byte
//! accounting follow `weir-http`. Each transfer task owns its download's
//! sink while it runs and hands it back when it ends; aborting a transfer
//! raises its [`weir_http::Stop`], which ends the task at its next await. [`Sink::AsyncWriter`] takes any `AsyncWrite`;
//! `Sink::File` and `Sink::Writer` write with plain blocking calls on the
//! driver's thread (page-cache writes are quick); putting completed files
//! on disk (`fsync`, or one `syncfs` for every file completed meanwhile on
//! Linux) and renaming them into place runs on `blocking`'s thread pool,
//! never on the executor.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod driver;
mod handle;
mod transport;

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};

use async_channel::{Receiver, Sender};
/// The rustls version the default transport uses (to build a `RootCertStore`).
pub use futures_rustls::rustls;
pub use handle::{Download, PeerHandle};
pub use transport::{BodyStream, HttpRequest, HttpResponse, HyperTransport, ResponseFuture, Transport};
pub use weir;
use weir::{Config, ConfigError, RequestPriority, Scheduler};
pub use weir_http::proxy::Proxies;
/// Where [`Options::record`] writes its trace (feature `trace`).
#[cfg(feature = "trace")]
pub use weir_http::trace::RecordTo;
pub use weir_http::{
    Check, Event, Expect, Fetch, FetchError, Head, HeaderError, Headers, Outcome, Progress, Response, Snapshot,
};
use weir_http::{Command, Hub, HubOptions, Input};

/// The destination of a download's body: memory, a file, a resumable
/// partial file, a blocking writer or an async writer; the one type both
/// adapters take ([`weir_http::Sink`]).
pub use weir_http::Sink;

/// Largest body a [`Sink::Memory`] accepts: 256 MiB.
pub const MEMORY_LIMIT: u64 = weir_http::DEFAULT_MEMORY_LIMIT;

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
#[derive(Debug, Clone)]
pub struct Options {
    /// Headers every download sends unless it sets its own (see
    /// [`PeerHandle::fetch_with`]); a `User-Agent` of [`weir_http::USER_AGENT`]
    /// is sent when neither sets one.
    pub headers: Headers,
    /// Largest body a [`Sink::Memory`] accepts ([`weir::NetError::TooLarge`] beyond).
    pub memory_limit: u64,
    /// Put every completed file on disk before it takes its final name
    /// (default `true`), off the transfers and for many files at once (see
    /// [`weir_http::sync_together`]); `false` trusts the OS as curl and
    /// wget do: faster on many small files, but a power loss may leave a
    /// short file under its final name.
    pub durable: bool,
    /// Record every input of the scheduler to this trace (feature `trace`;
    /// replay it with `weir_http::trace::replay` or `weir replay`).
    #[cfg(feature = "trace")]
    pub record: Option<weir_http::trace::RecordTo>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            headers: Headers::new(),
            memory_limit: MEMORY_LIMIT,
            durable: true,
            #[cfg(feature = "trace")]
            record: None,
        }
    }
}

/// The handle to a downloader. Cheap to clone; the driver ends when every
/// clone (and every peer handle) is gone, or at [`Downloader::shutdown`].
#[derive(Clone)]
pub struct Downloader {
    tx: Sender<Input>,
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
        let hub_options = HubOptions {
            headers: options.headers,
            memory_limit: options.memory_limit,
            async_writers: true,
            durable: options.durable,
            #[cfg(feature = "trace")]
            record: options.record,
        };
        let hub = Hub::new(Scheduler::try_new(config)?, hub_options);
        let (tx, rx) = async_channel::unbounded();
        let driver = driver::run(hub, rx, tx.downgrade(), transport);
        Ok((Downloader { tx, thread: None }, Box::pin(driver)))
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

    /// A new peer with this priority; dropping its last handle cancels its
    /// requests with [`CancelReason::PeerCancel`](weir::CancelReason::PeerCancel).
    ///
    /// # Panics
    /// When the driver is gone (shut down, or never polled and dropped).
    pub async fn peer(&self, priority: RequestPriority) -> PeerHandle {
        let id = handle::ask(&self.tx, |r| Command::AddPeer(priority, r)).await.expect("the driver is running");
        PeerHandle::new(id, self.tx.clone())
    }

    /// Every event of every peer, as a `Stream`.
    #[must_use]
    pub fn subscribe(&self) -> Receiver<Event> {
        handle::subscribe(&self.tx, None)
    }

    /// Cancel everything ([`CancelReason::DownloaderShutdown`](weir::CancelReason::DownloaderShutdown)) and end the driver.
    pub fn shutdown(&self) {
        let _ = self.tx.try_send(Input::Command(Command::Shutdown));
    }
}

impl Drop for Downloader {
    fn drop(&mut self) {
        // The handle that started a background driver stops and joins it.
        if let Some(t) = self.thread.take() {
            if let Ok(m) = Arc::try_unwrap(t) {
                let _ = self.tx.try_send(Input::Command(Command::Shutdown));
                if let Some(h) = m.into_inner().unwrap_or_else(PoisonError::into_inner) {
                    let _ = h.join();
                }
            }
        }
    }
}
