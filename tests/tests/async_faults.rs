//! weir-async against the misbehaving loopback server, under
//! `async_io::block_on`: outcomes, event sequences, byte-exact sinks.

use std::future::Future;
use std::time::Duration;

use async_channel::Receiver;
use futures_lite::future;
use weir_async::{Downloader, Event, FetchError, Outcome, PeerHandle, Sink};
use weir_tests::server::{content, fnv, FaultServer};
use weir_tests::*;

fn cfg() -> Config {
    Config {
        max_concurrent: 2,
        soft_timeout: None,
        idle_timeout: Some(ms(400)),
        retry: RetryPolicy { max_retries: 3, base: ms(20), cap: ms(200), jitter: false, ..RetryPolicy::default() },
        ..Config::default()
    }
}

/// Run `f` next to the driver on `async_io::block_on`, bounded in time.
fn with<T, F: Future<Output = T>>(c: Config, f: impl FnOnce(Downloader) -> F) -> T {
    let (dl, driver) = Downloader::new(c);
    async_io::block_on(future::or(
        future::or(f(dl), async {
            driver.await;
            panic!("the driver ended early")
        }),
        async {
            async_io::Timer::after(Duration::from_secs(30)).await;
            panic!("the test did not finish in 30 s")
        },
    ))
}

async fn events_of(rx: &Receiver<Event>, id: RequestId) -> Vec<DownloaderEvent> {
    let mut v = Vec::new();
    while let Ok((_, e)) = rx.recv().await {
        if e.request_id() == id {
            let end = e.is_terminal();
            v.push(e);
            if end {
                break;
            }
        }
    }
    v
}

async fn run(peer: &PeerHandle, u: &str) -> (Outcome, Vec<DownloaderEvent>) {
    let rx = peer.subscribe();
    let d = peer.fetch(get(u), Sink::Memory).await.expect("accepted");
    let id = d.id();
    let out = d.await;
    (out, events_of(&rx, id).await)
}

#[test]
fn a_plain_file_arrives_byte_exact() {
    let server = FaultServer::start();
    with(cfg(), |dl| async move {
        let peer = dl.peer(RequestPriority::High).await;
        let (out, ev) = run(&peer, &server.url("/file/300000")).await;
        let resp = out.expect("completed");
        assert_eq!(fnv(resp.body.as_deref().unwrap()), fnv(&content(300_000, 300_000)));
        assert_eq!(resp.header("etag"), Some("\"v1-300000\""));
        assert_eq!(event_names(&ev), ["Enqueued", "Started", "Response", "FirstByte", "Completed"]);
        let head = peer.fetch(Request::head(url(&server.url("/file/77"))), Sink::Memory).await.unwrap().await.unwrap();
        assert_eq!((head.status, head.header("content-length"), head.bytes), (200, Some("77"), 0));
    });
}

#[test]
fn stalls_and_resets_resume_with_range_and_if_range() {
    let server = FaultServer::start();
    with(cfg(), |dl| async move {
        let peer = dl.peer(RequestPriority::High).await;
        let (out, ev) = run(&peer, &server.url("/stall/200000/70000")).await;
        assert_eq!(fnv(out.expect("completed").body.as_deref().unwrap()), fnv(&content(200_000, 200_000)));
        assert_eq!(
            event_names(&ev),
            [
                "Enqueued",
                "Started",
                "Response",
                "FirstByte",
                "Retrying",
                "Started",
                "Response",
                "FirstByte",
                "Completed"
            ]
        );
        let seen = server.seen();
        assert_eq!(seen[1].range.as_deref(), Some("bytes=70000-"));
        assert_eq!(seen[1].if_range.as_deref(), Some("\"v1-200000\""));

        let (out, _) = run(&peer, &server.url("/reset/150000/50000")).await;
        assert_eq!(fnv(out.expect("completed").body.as_deref().unwrap()), fnv(&content(150_000, 150_000)));
    });
}

#[test]
fn short_bodies_statuses_and_redirect_loops_fail_clearly() {
    let server = FaultServer::start();
    let c = Config { retry: RetryPolicy { max_retries: 1, ..cfg().retry }, ..cfg() };
    with(c, |dl| async move {
        let peer = dl.peer(RequestPriority::High).await;
        let (out, _) = run(&peer, &server.url("/short/10000/4000")).await;
        assert!(matches!(out, Err(FetchError::Failed(NetError::Reset(_)))), "{out:?}");
        let (out, ev) = run(&peer, &server.url("/nothing")).await;
        assert_eq!(out, Err(FetchError::Failed(NetError::Status { status: 404, retry_after: None })));
        assert_eq!(event_names(&ev), ["Enqueued", "Started", "Failed"]);
        match run(&peer, &server.url("/loop")).await.0 {
            Err(FetchError::Failed(NetError::Protocol(m))) => assert!(m.contains("redirect"), "{m}"),
            other => panic!("{other:?}"),
        }
        let (out, ev) = run(&peer, &server.url("/status/503/1/1")).await;
        assert_eq!(out.unwrap().bytes, 1000);
        assert!(ev
            .iter()
            .any(|e| matches!(e, DownloaderEvent::RequestRetrying { delay, .. } if *delay == Duration::from_secs(1))));
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
        let (out, _) = run(&peer, &format!("http://{closed}/x")).await;
        assert!(matches!(out, Err(FetchError::Failed(NetError::Connect(_)))), "{out:?}");
    });
}

#[test]
fn ignored_ranges_and_changed_etags_keep_bodies_exact() {
    let server = FaultServer::start();
    with(cfg(), |dl| async move {
        let peer = dl.peer(RequestPriority::High).await;
        let (out, _) = run(&peer, &server.url("/norange/120000/40000")).await;
        assert_eq!(fnv(out.unwrap().body.as_deref().unwrap()), fnv(&content(120_000, 120_000)));
        let (out, _) = run(&peer, &server.url("/etag/90000/30000")).await;
        assert_eq!(out.unwrap().body.as_deref(), Some(&content(90_000, 2)[..]));
    });
}

#[test]
fn dropping_a_download_cancels_it_and_demand_preempts_prefetch() {
    let server = FaultServer::start();
    with(Config { preempt_low: true, ..cfg() }, |dl| async move {
        let all = dl.subscribe();
        let peer = dl.peer(RequestPriority::High).await;
        let d = peer.fetch(get(&server.url("/drip/100000/1000/20")), Sink::Memory).await.unwrap();
        let id = d.id();
        async_io::Timer::after(ms(60)).await;
        drop(d);
        let ev = events_of(&all, id).await;
        assert!(
            matches!(ev.last(), Some(DownloaderEvent::RequestCancelled { reason: CancelReason::Explicit, .. })),
            "{ev:?}"
        );

        // Fill both slots with slow prefetch, then ask for demand.
        let lows: Vec<_> = (0..2).map(|_| (get(&server.url("/drip/40000/2000/10")), Sink::Memory)).collect();
        let lows = peer.fetch_all(lows).await;
        async_io::Timer::after(ms(60)).await;
        let demand = peer.fetch(high(&server.url("/file/5000")), Sink::Memory).await.unwrap();
        let demand_id = demand.id();
        assert_eq!(demand.await.unwrap().body.unwrap(), content(5000, 5000));
        let low_ids: Vec<_> = lows.iter().map(|l| l.as_ref().unwrap().id()).collect();
        for l in lows {
            let body = l.unwrap().await.unwrap().body.unwrap();
            assert_eq!(fnv(&body), fnv(&content(40_000, 40_000)), "the preempted prefetch resumed exactly");
        }
        // Order of events: a prefetch was preempted, and the demand completed
        // before either prefetch did (each needs ~200 ms of drip).
        let mut order = Vec::new();
        while order.len() < 3 {
            let (_, e) = all.recv().await.unwrap();
            if matches!(e, DownloaderEvent::RequestPreempted { .. }) {
                order.push(("preempted", e.request_id()));
            } else if matches!(e, DownloaderEvent::RequestCompleted { .. }) {
                order.push(("completed", e.request_id()));
            }
        }
        assert_eq!(order[0].0, "preempted", "{order:?}");
        assert!(low_ids.contains(&order[0].1));
        assert_eq!(order[1], ("completed", demand_id), "{order:?}");
    });
}

/// Needs nginx: compiled only with `WEIR_NGINX=1`.
#[cfg(weir_nginx)]
#[test]
fn https_with_a_trusted_root_works_and_an_untrusted_certificate_fails() {
    use std::sync::Arc;
    use weir_async::rustls::pki_types::{pem::PemObject, CertificateDer};
    use weir_async::{rustls::RootCertStore, HyperTransport};

    let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned(), "localhost".to_owned()]).unwrap();
    let (cert_pem, key_pem) = (cert.cert.pem(), cert.key_pair.serialize_pem());
    let body = content(50_000, 5);
    let nginx = weir_tests::nginx::Nginx::start_tls(&[("s.bin".to_owned(), body.clone())], &cert_pem, &key_pem);
    let https = nginx.url("s.bin").replacen("http://", "https://", 1);

    let mut roots = RootCertStore::empty();
    roots.add(CertificateDer::from_pem_slice(cert_pem.as_bytes()).unwrap()).unwrap();
    let (dl, driver) = Downloader::with_transport(cfg(), Arc::new(HyperTransport::with_roots(roots))).unwrap();
    let got = async_io::block_on(future::or(
        async {
            let peer = dl.peer(RequestPriority::High).await;
            let r = peer.execute(get(&https).range(1000, Some(1999))).await.unwrap();
            (r.status, r.body.unwrap())
        },
        async {
            driver.await;
            panic!("driver ended")
        },
    ));
    assert_eq!(got, (206, body[1000..2000].to_vec()));

    // The default roots do not know this certificate: a clear TLS failure, not retried.
    with(cfg(), |dl| async move {
        let peer = dl.peer(RequestPriority::High).await;
        let (out, ev) = run(&peer, &https).await;
        assert!(matches!(out, Err(FetchError::Failed(NetError::Tls(_)))), "{out:?}");
        assert_eq!(event_names(&ev), ["Enqueued", "Started", "Failed"]);
    });
}

/// An `AsyncWrite` into a shared buffer that accepts at most 1000 bytes per
/// write (so partial writes happen).
struct Shared(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl futures_lite::AsyncWrite for Shared {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let n = buf.len().min(1000);
        self.0.lock().unwrap().extend_from_slice(&buf[..n]);
        std::task::Poll::Ready(Ok(n))
    }
    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
    fn poll_close(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

#[test]
fn an_async_writer_gets_every_byte_once_across_a_resume() {
    let server = FaultServer::start();
    with(cfg(), |dl| async move {
        let peer = dl.peer(RequestPriority::High).await;
        let buf = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let d =
            peer.fetch(get(&server.url("/reset/150000/50000")), Sink::AsyncWriter(Box::new(Shared(buf.clone())))).await;
        let r = d.unwrap().await.expect("completed");
        assert_eq!(r.bytes, 150_000);
        assert_eq!(fnv(&buf.lock().unwrap()), fnv(&content(150_000, 150_000)));

        // A changed resource cannot be spliced into a writer: a clear failure.
        let buf = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let d =
            peer.fetch(get(&server.url("/etag/90000/30000")), Sink::AsyncWriter(Box::new(Shared(buf.clone())))).await;
        match d.unwrap().await {
            Err(FetchError::Failed(NetError::Protocol(m))) => assert!(m.contains("changed"), "{m}"),
            other => panic!("{other:?}"),
        }
        assert_eq!(buf.lock().unwrap().len(), 30_000);
    });
}

#[test]
fn groups_file_sinks_and_bad_input() {
    let server = FaultServer::start();
    with(Config { max_concurrent: 1, ..cfg() }, |dl| async move {
        let peer = dl.peer(RequestPriority::High).await;
        let g = peer.new_group().await;
        let running = peer.fetch(get(&server.url("/drip/100000/1000/20")).group(g), Sink::Memory).await.unwrap();
        let queued = peer.fetch(get(&server.url("/file/10")).group(g), Sink::Memory).await.unwrap();
        async_io::Timer::after(ms(50)).await;
        peer.cancel_group(g);
        assert_eq!(running.await, Err(FetchError::Cancelled(CancelReason::EpochCancel)));
        assert_eq!(queued.await, Err(FetchError::Cancelled(CancelReason::EpochCancel)));
        let late = peer.fetch(get(&server.url("/file/10")).group(g), Sink::Memory).await.unwrap();
        assert_eq!(late.await, Err(FetchError::Cancelled(CancelReason::BeforeStart)));

        let dir = std::env::temp_dir().join(format!("weir-async-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let dest = dir.join("f.bin");
        let r =
            peer.fetch(get(&server.url("/reset/80000/20000")), Sink::File(dest.clone())).await.unwrap().await.unwrap();
        assert_eq!(r.path.as_deref(), Some(dest.as_path()));
        assert_eq!(std::fs::read(&dest).unwrap(), content(80_000, 80_000));
        let failed = dir.join("missing.bin");
        assert!(peer.fetch(get(&server.url("/nope")), Sink::File(failed.clone())).await.unwrap().await.is_err());
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1, "no partial or temporary file left");
        std::fs::remove_dir_all(&dir).unwrap();

        match peer.fetch(get("ftp://127.0.0.1/x"), Sink::Memory).await {
            Err(EnqueueError::InvalidRequest(m)) => assert!(m.contains("ftp")),
            other => panic!("{other:?}"),
        }
        peer.set_priority(RequestPriority::Low);
        let d = peer.fetch(get(&server.url("/file/5")), Sink::Memory).await.unwrap();
        d.set_priority(RequestPriority::High);
        assert_eq!(d.await.unwrap().body, Some(content(5, 5)));
    });
}

/// Needs nginx: compiled only with `WEIR_NGINX=1`.
#[cfg(weir_nginx)]
#[test]
fn the_default_transport_reuses_keep_alive_connections() {
    let files: Vec<_> = (0..4).map(|i| (format!("k{i}"), content(3000, i))).collect();
    let nginx = weir_tests::nginx::Nginx::start_with(&files, "add_header X-Conn-Requests $connection_requests;");
    with(Config { max_concurrent: 1, ..cfg() }, |dl| async move {
        let peer = dl.peer(RequestPriority::High).await;
        let mut seen = Vec::new();
        for i in 0..4 {
            let r = peer.execute(get(&nginx.url(&format!("k{i}")))).await.unwrap();
            assert_eq!(r.body.as_deref(), Some(&content(3000, i as u64)[..]));
            seen.push(r.header("x-conn-requests").unwrap_or("?").to_owned());
        }
        assert_eq!(seen, ["1", "2", "3", "4"], "one connection served all four");
    });
}

#[test]
fn a_downloader_that_cannot_start_says_why() {
    use std::sync::Arc;
    use weir_async::{HyperTransport, Options, SpawnError};
    let zero = Config { max_concurrent: 0, ..Config::default() };
    let got = Downloader::try_spawn(zero, Arc::new(HyperTransport::new()), Options::default());
    assert_eq!(got.err(), Some(SpawnError::Config(ConfigError::ZeroConcurrency)));
    let ok = Downloader::try_spawn(Config::default(), Arc::new(HyperTransport::new()), Options::default());
    assert!(ok.is_ok());
}
