//! One test body, both adapters: run the same downloads through
//! `weir-ureq` and `weir-async` and hand back outcomes and events in one
//! shape, so a behaviour test is written once and asserted on each.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use weir::{Config, DownloaderEvent, Request, RequestPriority};
use weir_http::{FetchError, Headers, Response};

/// Which adapter runs the downloads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Adapter {
    /// `weir-ureq`: worker threads.
    Ureq,
    /// `weir-async`: tasks on async-io.
    Async,
}

/// Both adapters, for `for adapter in ADAPTERS`.
pub const ADAPTERS: [Adapter; 2] = [Adapter::Ureq, Adapter::Async];

/// Where a download goes.
#[derive(Debug, Clone)]
pub enum Into {
    /// Memory.
    Memory,
    /// A file at this path.
    File(std::path::PathBuf),
    /// A writer that cannot be rewound (the bytes are in [`Got::written`]).
    Writer,
    /// A resumable partial file for this destination.
    Resumable(std::path::PathBuf),
    /// A writer that panics at its first write.
    Panicking,
}

/// A writer that panics at its first write.
struct Panicking;

impl Write for Panicking {
    fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
        panic!("a writer that panics (on purpose, in a test)")
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A writer the test can read back.
#[derive(Clone, Default)]
struct Shared(Arc<Mutex<Vec<u8>>>);

impl Write for Shared {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("buffer").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The sink both adapters take for `into`.
fn sink(into: Into, w: &Shared) -> weir_http::Sink {
    match into {
        Into::Memory => weir_http::Sink::Memory,
        Into::File(p) => weir_http::Sink::File(p),
        Into::Writer => weir_http::Sink::Writer(Box::new(w.clone())),
        Into::Resumable(p) => weir_http::Sink::Resumable(p),
        Into::Panicking => weir_http::Sink::Writer(Box::new(Panicking)),
    }
}

/// What one download ended with.
#[derive(Debug)]
pub struct Got {
    /// The outcome.
    pub outcome: Result<Response, FetchError>,
    /// What a [`Into::Writer`] sink received.
    pub written: Vec<u8>,
    /// The request's events, in order.
    pub events: Vec<DownloaderEvent>,
}

impl Got {
    /// The body of a completed memory download.
    ///
    /// # Panics
    /// When the download did not complete into memory.
    #[must_use]
    pub fn body(&self) -> &[u8] {
        match &self.outcome {
            Ok(r) => r.body.as_deref().expect("a memory sink"),
            Err(e) => panic!("the download failed: {e}"),
        }
    }

    /// How many attempts started.
    #[must_use]
    pub fn starts(&self) -> usize {
        self.events.iter().filter(|e| matches!(e, DownloaderEvent::RequestStarted { .. })).count()
    }
}

/// Take events until every one of `ids` has its terminal event (an
/// outcome can settle a moment before its event is published), for at most 5 s.
fn collect(ids: &[weir::RequestId], mut next: impl FnMut() -> Option<weir_http::Event>) -> Vec<weir_http::Event> {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let mut out: Vec<weir_http::Event> = Vec::new();
    loop {
        while let Some(e) = next() {
            out.push(e);
        }
        let ended = |id: &weir::RequestId| out.iter().any(|(_, e)| e.request_id() == *id && e.is_terminal());
        if ids.iter().all(ended) || std::time::Instant::now() >= deadline {
            return out;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Run `reqs` on `adapter` under `config` (one peer), wait for all, and
/// collect each one's outcome and events.
///
/// # Panics
/// When the downloader cannot start or an event stream breaks.
#[must_use]
pub fn run(adapter: Adapter, config: Config, reqs: Vec<(Request, Into)>) -> Vec<Got> {
    let reqs = reqs.into_iter().map(|(r, i)| (r, i, weir_http::Fetch::new())).collect();
    run_with(adapter, config, &Headers::new(), reqs)
}

/// [`run`] with the downloader's default headers and each download's own.
///
/// # Panics
/// As [`run`].
#[must_use]
pub fn run_with(
    adapter: Adapter,
    config: Config,
    defaults: &Headers,
    reqs: Vec<(Request, Into, weir_http::Fetch)>,
) -> Vec<Got> {
    let writers: Vec<Shared> = reqs.iter().map(|_| Shared::default()).collect();
    let (outcomes, ids, events) = match adapter {
        Adapter::Ureq => {
            let options = weir_ureq::Options { headers: defaults.clone(), ..weir_ureq::Options::default() };
            let dl = weir_ureq::Downloader::try_new(config, options).expect("a downloader");
            let peer = dl.peer(RequestPriority::Low);
            let events = peer.subscribe();
            let items = reqs.into_iter().zip(&writers).map(|((r, into, h), w)| (r, sink(into, w), h)).collect();
            let downloads: Vec<_> = peer.fetch_all_with(items).into_iter().map(|d| d.expect("accepted")).collect();
            let ids: Vec<_> = downloads.iter().map(weir_ureq::Download::id).collect();
            let outcomes: Vec<_> = downloads.into_iter().map(weir_ureq::Download::wait).collect();
            drop(peer);
            drop(dl);
            let events = collect(&ids, || events.try_recv().ok());
            (outcomes, ids, events)
        }
        Adapter::Async => {
            let options = weir_async::Options { headers: defaults.clone(), ..Default::default() };
            let transport = std::sync::Arc::new(weir_async::HyperTransport::new());
            let (dl, driver) = weir_async::Downloader::with_options(config, transport, options).expect("a downloader");
            let driver_thread = std::thread::spawn(move || async_io::block_on(driver));
            let (outcomes, ids, events) = futures_lite::future::block_on(async {
                let peer = dl.peer(RequestPriority::Low).await;
                let events = peer.subscribe();
                let items = reqs.into_iter().zip(&writers).map(|((r, into, h), w)| (r, sink(into, w), h)).collect();
                let downloads: Vec<_> =
                    peer.fetch_all_with(items).await.into_iter().map(|d| d.expect("accepted")).collect();
                let ids: Vec<_> = downloads.iter().map(weir_async::Download::id).collect();
                let mut outcomes = Vec::new();
                for d in downloads {
                    outcomes.push(d.await);
                }
                let evs = collect(&ids, || events.try_recv().ok());
                (outcomes, ids, evs)
            });
            dl.shutdown();
            drop(dl);
            let _ = driver_thread.join();
            (outcomes, ids, events)
        }
    };
    outcomes
        .into_iter()
        .zip(ids)
        .zip(writers)
        .map(|((outcome, id), w)| Got {
            outcome,
            written: w.0.lock().expect("buffer").clone(),
            events: events.iter().filter(|(_, e)| e.request_id() == id).map(|(_, e)| e.clone()).collect(),
        })
        .collect()
}

/// Run one download into memory and read its progress every 5 ms while it
/// runs (for at most 30 s); the readings in order, and the outcome.
///
/// # Panics
/// When the downloader cannot start or the download is refused.
pub fn watch(
    adapter: Adapter,
    config: Config,
    req: Request,
) -> (Result<Response, FetchError>, Vec<weir_http::Snapshot>) {
    let mut seen = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    match adapter {
        Adapter::Ureq => {
            let dl = weir_ureq::Downloader::new(config);
            let peer = dl.peer(RequestPriority::Low);
            let mut d = peer.fetch(req, weir_http::Sink::Memory).expect("accepted");
            loop {
                seen.push(d.progress());
                if let Some(o) = d.wait_timeout(Duration::from_millis(5)) {
                    seen.push(d.progress());
                    return (o, seen);
                }
                assert!(std::time::Instant::now() < deadline, "the download ends within 30 s");
            }
        }
        Adapter::Async => {
            let dl = weir_async::Downloader::spawn(config);
            futures_lite::future::block_on(async {
                let peer = dl.peer(RequestPriority::Low).await;
                let mut d = peer.fetch(req, weir_http::Sink::Memory).await.expect("accepted");
                loop {
                    seen.push(d.progress());
                    let tick = async {
                        async_io::Timer::after(Duration::from_millis(5)).await;
                        None
                    };
                    if let Some(o) = futures_lite::future::or(async { Some((&mut d).await) }, tick).await {
                        seen.push(d.progress());
                        return (o, seen);
                    }
                    assert!(std::time::Instant::now() < deadline, "the download ends within 30 s");
                }
            })
        }
    }
}

/// A peer holds the only slot with a transfer that stalls; a second peer's
/// download waits for it. Then the first peer is dropped (its requests end
/// with `PeerCancel`), which frees the slot: returns the waiting download's
/// outcome and how long it took from the drop (given up after 5 s).
///
/// # Panics
/// When the downloader cannot start or a download is refused.
pub fn after_a_peer_is_dropped(
    adapter: Adapter,
    config: Config,
    stalled: Request,
    waiting: Request,
) -> (Option<Result<Response, FetchError>>, Duration) {
    let limit = Duration::from_secs(5);
    match adapter {
        Adapter::Ureq => {
            let dl = weir_ureq::Downloader::new(config);
            let (first, second) = (dl.peer(RequestPriority::Low), dl.peer(RequestPriority::Low));
            let events = first.subscribe();
            first.fetch(stalled, weir_http::Sink::Memory).expect("accepted").detach();
            let started = std::time::Instant::now() + limit;
            while !events.try_iter().any(|(_, e)| matches!(e, weir::DownloaderEvent::FirstByte { .. })) {
                assert!(std::time::Instant::now() < started, "the stalled transfer started");
                std::thread::sleep(Duration::from_millis(2));
            }
            let mut d = second.fetch(waiting, weir_http::Sink::Memory).expect("accepted");
            let t = std::time::Instant::now();
            drop(first);
            let out = d.wait_timeout(limit);
            (out, t.elapsed())
        }
        Adapter::Async => {
            let dl = weir_async::Downloader::spawn(config);
            futures_lite::future::block_on(async {
                let (first, second) = (dl.peer(RequestPriority::Low).await, dl.peer(RequestPriority::Low).await);
                let events = first.subscribe();
                first.fetch(stalled, weir_http::Sink::Memory).await.expect("accepted").detach();
                let started = std::time::Instant::now() + limit;
                loop {
                    let timeout = async {
                        async_io::Timer::at(started).await;
                        None
                    };
                    match futures_lite::future::or(async { events.recv().await.ok() }, timeout).await {
                        Some((_, weir::DownloaderEvent::FirstByte { .. })) => break,
                        Some(_) => {}
                        None => panic!("the stalled transfer started"),
                    }
                }
                let d = second.fetch(waiting, weir_http::Sink::Memory).await.expect("accepted");
                let t = std::time::Instant::now();
                drop(first);
                let timeout = async {
                    async_io::Timer::after(limit).await;
                    None
                };
                let out = futures_lite::future::or(async { Some(d.await) }, timeout).await;
                (out, t.elapsed())
            })
        }
    }
}

/// Start `slow` and `other` together; once `slow` delivered its first
/// bytes, cancel it. Returns its outcome and how long it took to settle
/// after the cancel (given up after 5 s), and `other`'s outcome.
///
/// # Panics
/// When the downloader cannot start or a download is refused.
pub fn cancel_one_of_two(
    adapter: Adapter,
    config: Config,
    slow: Request,
    other: Request,
) -> (Option<Result<Response, FetchError>>, Duration, Result<Response, FetchError>) {
    let limit = Duration::from_secs(5);
    let first_byte = |e: &weir_http::Event, id| matches!(e.1, weir::DownloaderEvent::FirstByte { request_id, .. } if request_id == id);
    match adapter {
        Adapter::Ureq => {
            let dl = weir_ureq::Downloader::new(config);
            let peer = dl.peer(RequestPriority::Low);
            let events = peer.subscribe();
            let mut s = peer.fetch(slow, weir_http::Sink::Memory).expect("accepted");
            let o = peer.fetch(other, weir_http::Sink::Memory).expect("accepted");
            let until = std::time::Instant::now() + limit;
            while !events.try_iter().any(|e| first_byte(&e, s.id())) {
                assert!(std::time::Instant::now() < until, "the slow transfer started");
                std::thread::sleep(Duration::from_millis(2));
            }
            let t = std::time::Instant::now();
            s.cancel();
            let out = s.wait_timeout(limit);
            (out, t.elapsed(), o.wait())
        }
        Adapter::Async => {
            let dl = weir_async::Downloader::spawn(config);
            futures_lite::future::block_on(async {
                let peer = dl.peer(RequestPriority::Low).await;
                let events = peer.subscribe();
                let s = peer.fetch(slow, weir_http::Sink::Memory).await.expect("accepted");
                let o = peer.fetch(other, weir_http::Sink::Memory).await.expect("accepted");
                let until = std::time::Instant::now() + limit;
                loop {
                    let timeout = async {
                        async_io::Timer::at(until).await;
                        None
                    };
                    match futures_lite::future::or(async { events.recv().await.ok() }, timeout).await {
                        Some(e) if first_byte(&e, s.id()) => break,
                        Some(_) => {}
                        None => panic!("the slow transfer started"),
                    }
                }
                let t = std::time::Instant::now();
                s.cancel();
                let timeout = async {
                    async_io::Timer::after(limit).await;
                    None
                };
                let out = futures_lite::future::or(async { Some(s.await) }, timeout).await;
                let elapsed = t.elapsed();
                (out, elapsed, o.await)
            })
        }
    }
}

/// What [`peer_downloads`] saw: the peer's list mid-flight (the first
/// reading in which every download had bytes and a known total), and after
/// every download ended.
#[derive(Debug)]
pub struct Listed {
    /// The ids the downloads got, in fetch order.
    pub ids: Vec<weir::RequestId>,
    /// The first mid-flight reading, if one came within 5 s.
    pub during: Option<Vec<(weir::RequestId, weir_http::Snapshot)>>,
    /// The reading after all ended.
    pub after: Vec<(weir::RequestId, weir_http::Snapshot)>,
    /// The peer's bandwidth estimate after all ended (`PeerHandle::bandwidth`).
    pub bandwidth: Option<u64>,
}

/// Fetch `reqs` on one peer and read the peer's download list
/// (`PeerHandle::downloads`) every 5 ms until each has bytes and a known
/// total (at most 5 s), then wait for all and read it again.
///
/// # Panics
/// When the downloader cannot start or a download is refused.
#[must_use]
pub fn peer_downloads(adapter: Adapter, config: Config, reqs: Vec<Request>) -> Listed {
    let limit = std::time::Instant::now() + Duration::from_secs(5);
    let mid = |l: &[(weir::RequestId, weir_http::Snapshot)], n: usize| {
        l.len() == n && l.iter().all(|(_, s)| s.bytes > 0 && s.total.is_some())
    };
    let n = reqs.len();
    match adapter {
        Adapter::Ureq => {
            let dl = weir_ureq::Downloader::new(config);
            let peer = dl.peer(RequestPriority::Low);
            let downloads: Vec<_> =
                reqs.into_iter().map(|r| peer.fetch(r, weir_http::Sink::Memory).expect("accepted")).collect();
            let ids = downloads.iter().map(weir_ureq::Download::id).collect();
            let mut during = None;
            while during.is_none() && std::time::Instant::now() < limit {
                let l = peer.downloads();
                if mid(&l, n) {
                    during = Some(l);
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            for d in downloads {
                let _ = d.wait();
            }
            Listed { ids, during, after: peer.downloads(), bandwidth: peer.bandwidth() }
        }
        Adapter::Async => {
            let dl = weir_async::Downloader::spawn(config);
            futures_lite::future::block_on(async {
                let peer = dl.peer(RequestPriority::Low).await;
                let mut downloads = Vec::new();
                for r in reqs {
                    downloads.push(peer.fetch(r, weir_http::Sink::Memory).await.expect("accepted"));
                }
                let ids = downloads.iter().map(weir_async::Download::id).collect();
                let mut during = None;
                while during.is_none() && std::time::Instant::now() < limit {
                    let l = peer.downloads().await;
                    if mid(&l, n) {
                        during = Some(l);
                    }
                    async_io::Timer::after(Duration::from_millis(5)).await;
                }
                for d in downloads {
                    let _ = d.await;
                }
                Listed { ids, during, after: peer.downloads().await, bandwidth: peer.bandwidth().await }
            })
        }
    }
}

/// Fetch `url` into memory through the HTTP CONNECT proxy at `proxy`
/// (`http://host:port`), set the adapter's way: ureq's config for
/// weir-ureq, [`weir_async::Proxies`] for weir-async.
///
/// # Panics
/// When the downloader cannot start or the download is refused.
pub fn fetch_via_proxy(adapter: Adapter, proxy: &str, url: weir::Url) -> Result<Response, FetchError> {
    let req = Request::get(url);
    match adapter {
        Adapter::Ureq => {
            let agent = weir_ureq::ureq::Agent::config_builder()
                .http_status_as_error(false)
                .proxy(Some(weir_ureq::ureq::Proxy::new(proxy).expect("a proxy URL")))
                .build();
            let options = weir_ureq::Options { agent, ..weir_ureq::Options::default() };
            let dl = weir_ureq::Downloader::try_new(Config::default(), options).expect("a downloader");
            let peer = dl.peer(RequestPriority::Low);
            let mut d = peer.fetch(req, weir_http::Sink::Memory).expect("accepted");
            d.wait_timeout(Duration::from_secs(30)).expect("ends in time")
        }
        Adapter::Async => {
            let proxies = weir_async::Proxies::all(proxy).expect("a proxy URL");
            let transport = std::sync::Arc::new(weir_async::HyperTransport::new().with_proxies(proxies));
            let (dl, driver) = weir_async::Downloader::with_options(Config::default(), transport, Default::default())
                .expect("a downloader");
            let driver_thread = std::thread::spawn(move || async_io::block_on(driver));
            let out = futures_lite::future::block_on(async {
                let peer = dl.peer(RequestPriority::Low).await;
                let d = peer.fetch(req, weir_http::Sink::Memory).await.expect("accepted");
                d.await
            });
            drop(dl);
            driver_thread.join().expect("the driver ends");
            out
        }
    }
}

/// Fetch `batches` into memory one after another on one downloader (each
/// batch enqueued together, all of it awaited before the next), so
/// connections go idle together between batches; whether each completed.
///
/// # Panics
/// When the downloader cannot start or a download is refused.
#[must_use]
pub fn in_batches(adapter: Adapter, config: Config, batches: Vec<Vec<Request>>) -> Vec<bool> {
    let mut done = Vec::new();
    match adapter {
        Adapter::Ureq => {
            let dl = weir_ureq::Downloader::new(config);
            let peer = dl.peer(RequestPriority::Low);
            for batch in batches {
                let items = batch.into_iter().map(|r| (r, weir_http::Sink::Memory)).collect();
                let downloads: Vec<_> = peer.fetch_all(items).into_iter().map(|d| d.expect("accepted")).collect();
                done.extend(downloads.into_iter().map(|d| d.wait().is_ok()));
            }
        }
        Adapter::Async => {
            let dl = weir_async::Downloader::spawn(config);
            futures_lite::future::block_on(async {
                let peer = dl.peer(RequestPriority::Low).await;
                for batch in batches {
                    let items = batch.into_iter().map(|r| (r, weir_http::Sink::Memory)).collect();
                    for d in peer.fetch_all(items).await {
                        done.push(d.expect("accepted").await.is_ok());
                    }
                }
            });
        }
    }
    done
}

/// Download each URL of `reqs` to its file, wait (at most 10 s) until every
/// request's terminal event is out, then shut the downloader down at once
/// and only then collect the outcomes: what a program that exits as soon
/// as the events say "done" gets.
///
/// # Panics
/// When the downloader cannot start, a download is refused or the events
/// do not all arrive within 10 s.
#[must_use]
pub fn shut_down_after_completion(
    adapter: Adapter,
    config: Config,
    reqs: Vec<(Request, std::path::PathBuf)>,
) -> Vec<Result<Response, FetchError>> {
    let ended = |ids: &[weir::RequestId], next: &mut dyn FnMut() -> Option<weir_http::Event>| {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let mut left: std::collections::BTreeSet<_> = ids.iter().copied().collect();
        while !left.is_empty() {
            assert!(std::time::Instant::now() < deadline, "every download ends within 10 s");
            match next() {
                Some((_, e)) if e.is_terminal() => {
                    left.remove(&e.request_id());
                }
                Some(_) => {}
                None => std::thread::sleep(Duration::from_millis(1)),
            }
        }
    };
    match adapter {
        Adapter::Ureq => {
            let dl = weir_ureq::Downloader::new(config);
            let peer = dl.peer(RequestPriority::Low);
            let events = peer.subscribe();
            let items = reqs.into_iter().map(|(r, p)| (r, weir_http::Sink::File(p))).collect();
            let downloads: Vec<_> = peer.fetch_all(items).into_iter().map(|d| d.expect("accepted")).collect();
            let ids: Vec<_> = downloads.iter().map(weir_ureq::Download::id).collect();
            ended(&ids, &mut || events.try_recv().ok());
            dl.shutdown();
            downloads.into_iter().map(weir_ureq::Download::wait).collect()
        }
        Adapter::Async => {
            let (dl, driver) = weir_async::Downloader::new(config);
            let driver_thread = std::thread::spawn(move || async_io::block_on(driver));
            let downloads = futures_lite::future::block_on(async {
                let peer = dl.peer(RequestPriority::Low).await;
                let events = peer.subscribe();
                let items = reqs.into_iter().map(|(r, p)| (r, weir_http::Sink::File(p))).collect();
                let downloads: Vec<_> = peer.fetch_all(items).await.into_iter().map(|d| d.expect("accepted")).collect();
                let ids: Vec<_> = downloads.iter().map(weir_async::Download::id).collect();
                ended(&ids, &mut || events.try_recv().ok());
                downloads
            });
            dl.shutdown();
            let _ = driver_thread.join();
            futures_lite::future::block_on(async {
                let mut outcomes = Vec::new();
                for d in downloads {
                    outcomes.push(d.await);
                }
                outcomes
            })
        }
    }
}
