//! weir-ureq against a real loopback server that misbehaves on purpose:
//! outcomes, exact event sequences, byte-exact sinks.

use std::sync::mpsc::Receiver;
use std::time::Duration;

use weir_tests::server::{content, fnv, FaultServer};
use weir_tests::*;
use weir_ureq::{Downloader, Event, FetchError, Outcome, PeerHandle, Sink};

const LIMIT: Duration = Duration::from_secs(30);

fn cfg() -> Config {
    Config {
        max_concurrent: 2,
        soft_timeout: None,
        idle_timeout: Some(ms(400)),
        retry: RetryPolicy { max_retries: 3, base: ms(20), cap: ms(200), jitter: false, ..RetryPolicy::default() },
        ..Config::default()
    }
}

fn setup(c: Config) -> (FaultServer, Downloader, PeerHandle, Receiver<Event>) {
    let server = FaultServer::start();
    let dl = Downloader::new(c);
    let peer = dl.peer(RequestPriority::High);
    let events = peer.subscribe();
    (server, dl, peer, events)
}

fn fetch(peer: &PeerHandle, u: &str) -> Outcome {
    let mut d = peer.fetch(Request::get(url(u)), Sink::Memory).expect("accepted");
    d.wait_timeout(LIMIT).expect("the download ends in time")
}

/// The events of one request, in order (waits for its terminal event).
fn events_of(rx: &Receiver<Event>, id: RequestId) -> Vec<DownloaderEvent> {
    let mut v = Vec::new();
    for _ in 0..10_000 {
        let (_, e) = rx.recv_timeout(LIMIT).expect("events arrive");
        if e.request_id() == id {
            let end = e.is_terminal();
            v.push(e);
            if end {
                return v;
            }
        }
    }
    panic!("no terminal event for {id:?}");
}

fn run(peer: &PeerHandle, rx: &Receiver<Event>, u: &str) -> (Outcome, Vec<DownloaderEvent>) {
    let mut d = peer.fetch(Request::get(url(u)), Sink::Memory).expect("accepted");
    let id = d.id();
    let out = d.wait_timeout(LIMIT).expect("ends in time");
    (out, events_of(rx, id))
}

#[test]
fn a_plain_file_arrives_byte_exact_with_the_plain_event_sequence() {
    let (server, _dl, peer, rx) = setup(cfg());
    let (out, ev) = run(&peer, &rx, &server.url("/file/300000"));
    let resp = out.expect("completed");
    assert_eq!(resp.status, 200);
    assert_eq!(fnv(resp.body.as_deref().expect("memory body")), fnv(&content(300_000, 300_000)));
    assert_eq!(resp.bytes, 300_000);
    assert_eq!(resp.header("etag"), Some("\"v1-300000\""));
    assert_eq!(event_names(&ev), ["Enqueued", "Started", "Response", "FirstByte", "Completed"]);
    assert!(matches!(ev[4], DownloaderEvent::RequestCompleted { bytes_transferred: 300_000, .. }));
}

#[test]
fn head_returns_status_and_length_without_a_body() {
    let (server, _dl, peer, _rx) = setup(cfg());
    let d = peer.fetch(Request::head(url(&server.url("/file/1234"))), Sink::Memory).expect("accepted");
    let resp = d.wait().expect("completed");
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("content-length"), Some("1234"));
    assert_eq!(resp.bytes, 0);
    assert_eq!(resp.body, Some(Vec::new()));
    assert_eq!(server.seen()[0].method, "HEAD");
}

#[test]
fn a_range_request_gets_exactly_its_bytes() {
    let (server, _dl, peer, _rx) = setup(cfg());
    let d = peer.fetch(get(&server.url("/file/5000")).range(1000, Some(1999)), Sink::Memory).expect("accepted");
    let resp = d.wait().expect("completed");
    assert_eq!(resp.status, 206);
    assert_eq!(resp.body.as_deref(), Some(&content(5000, 5000)[1000..2000]));
    assert_eq!(server.seen()[0].range.as_deref(), Some("bytes=1000-1999"));
}

#[test]
fn a_stall_mid_body_times_out_and_resumes_with_range_and_if_range() {
    let (server, _dl, peer, rx) = setup(cfg());
    let (out, ev) = run(&peer, &rx, &server.url("/stall/200000/70000"));
    let resp = out.expect("completed after a resume");
    assert_eq!(fnv(resp.body.as_deref().expect("body")), fnv(&content(200_000, 200_000)));
    assert_eq!(
        event_names(&ev),
        ["Enqueued", "Started", "Response", "FirstByte", "Retrying", "Started", "Response", "FirstByte", "Completed"]
    );
    assert!(matches!(&ev[4], DownloaderEvent::RequestRetrying { attempt: 2, error: NetError::Timeout, .. }));
    let seen = server.seen();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[1].range.as_deref(), Some("bytes=70000-"), "resumes exactly where the sink stopped");
    assert_eq!(seen[1].if_range.as_deref(), Some("\"v1-200000\""));
}

#[test]
fn a_reset_mid_body_is_retried_and_resumed() {
    let (server, _dl, peer, rx) = setup(cfg());
    let (out, ev) = run(&peer, &rx, &server.url("/reset/150000/50000"));
    let resp = out.expect("completed");
    assert_eq!(fnv(resp.body.as_deref().expect("body")), fnv(&content(150_000, 150_000)));
    let retry = ev.iter().find(|e| matches!(e, DownloaderEvent::RequestRetrying { .. })).expect("a retry");
    assert!(matches!(retry, DownloaderEvent::RequestRetrying { error: NetError::Reset(_), .. }), "{retry:?}");
    let r = server.seen()[1].range.clone().expect("a range on the retry");
    let from: u64 = r.trim_start_matches("bytes=").trim_end_matches('-').parse().expect("a number");
    assert!(from > 0 && from <= 50_000, "resumed from {from}");
}

#[test]
fn a_body_shorter_than_its_content_length_fails_as_reset() {
    let c = Config { retry: RetryPolicy { max_retries: 1, ..cfg().retry }, ..cfg() };
    let (server, _dl, peer, rx) = setup(c);
    let (out, ev) = run(&peer, &rx, &server.url("/short/10000/4000"));
    match out {
        Err(FetchError::Failed(NetError::Reset(_))) => {}
        other => panic!("{other:?}"),
    }
    assert!(matches!(ev.last(), Some(DownloaderEvent::RequestFailed { retryable: true, .. })));
    assert_eq!(server.hits("/short/10000/4000"), 2, "one retry");
}

#[test]
fn status_503_and_429_honour_retry_after() {
    let (server, _dl, peer, rx) = setup(cfg());
    let (out, ev) = run(&peer, &rx, &server.url("/status/503/1/1"));
    assert_eq!(out.expect("completed").body.map(|b| b.len()), Some(1000));
    assert_eq!(event_names(&ev), ["Enqueued", "Started", "Retrying", "Started", "Response", "FirstByte", "Completed"]);
    match &ev[2] {
        DownloaderEvent::RequestRetrying { delay, error, .. } => {
            assert_eq!(*delay, Duration::from_secs(1));
            assert_eq!(*error, NetError::Status { status: 503, retry_after: Some(Duration::from_secs(1)) });
        }
        e => panic!("{e:?}"),
    }
    let (out, ev) = run(&peer, &rx, &server.url("/status/429/2/0"));
    assert!(out.is_ok());
    let delays: Vec<_> = ev
        .iter()
        .filter_map(|e| match e {
            DownloaderEvent::RequestRetrying { delay, .. } => Some(*delay),
            _ => None,
        })
        .collect();
    assert_eq!(delays, vec![Duration::ZERO, Duration::ZERO]);
}

#[test]
fn a_retry_after_beyond_the_limit_fails_at_once() {
    let (server, _dl, peer, rx) = setup(cfg());
    let (out, ev) = run(&peer, &rx, &server.url("/status/503/9/3600"));
    assert!(matches!(out, Err(FetchError::Failed(NetError::Status { status: 503, .. }))));
    assert_eq!(event_names(&ev), ["Enqueued", "Started", "Failed"]);
}

#[test]
fn not_found_fails_at_once_and_is_not_retryable() {
    let (server, _dl, peer, rx) = setup(cfg());
    let (out, ev) = run(&peer, &rx, &server.url("/nothing-here"));
    assert_eq!(out, Err(FetchError::Failed(NetError::Status { status: 404, retry_after: None })));
    assert_eq!(event_names(&ev), ["Enqueued", "Started", "Failed"]);
    assert!(matches!(ev[2], DownloaderEvent::RequestFailed { retryable: false, .. }));
}

#[test]
fn a_redirect_loop_ends_in_a_clear_error() {
    let (server, _dl, peer, _rx) = setup(cfg());
    match fetch(&peer, &server.url("/loop")) {
        Err(FetchError::Failed(NetError::Protocol(m))) => assert!(m.contains("redirect"), "{m}"),
        other => panic!("{other:?}"),
    }
    assert!(server.hits("/loop") > 3 && server.hits("/loop") < 20);
}

#[test]
fn a_server_that_ignores_range_has_the_delivered_prefix_skipped() {
    let (server, _dl, peer, _rx) = setup(cfg());
    let resp = fetch(&peer, &server.url("/norange/120000/40000")).expect("completed");
    assert_eq!(fnv(resp.body.as_deref().expect("body")), fnv(&content(120_000, 120_000)));
    assert!(server.seen()[1].range.is_some(), "the retry asked for a range");
}

#[test]
fn a_resource_that_changes_between_attempts_starts_over() {
    let (server, _dl, peer, _rx) = setup(cfg());
    let resp = fetch(&peer, &server.url("/etag/90000/30000")).expect("completed");
    assert_eq!(resp.body.as_deref(), Some(&content(90_000, 2)[..]), "the whole new version, nothing spliced");
    assert_eq!(resp.header("etag"), Some("\"two\""));
    assert_eq!(server.seen()[1].if_range.as_deref(), Some("\"one\""));

    // A writer cannot be rewound: the download fails clearly instead of splicing.
    let buf = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    struct Shared(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
    impl std::io::Write for Shared {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("lock").extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let server2 = FaultServer::start();
    let d = peer.fetch(get(&server2.url("/etag/90000/30000")), Sink::Writer(Box::new(Shared(buf.clone())))).unwrap();
    match d.wait() {
        Err(FetchError::Failed(NetError::Protocol(m))) => assert!(m.contains("changed"), "{m}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(buf.lock().unwrap().len(), 30_000, "only the first version's prefix reached the writer");
}

#[test]
fn a_slow_drip_completes_and_reports_load_slow() {
    let c = Config { soft_timeout: Some(ms(100)), ..cfg() };
    let (server, _dl, peer, rx) = setup(c);
    let (out, ev) = run(&peer, &rx, &server.url("/drip/4000/500/40"));
    assert_eq!(out.expect("completed").body.as_deref(), Some(&content(4000, 4000)[..]));
    assert_eq!(ev.iter().filter(|e| matches!(e, DownloaderEvent::LoadSlow { .. })).count(), 1);
}

#[test]
fn a_file_sink_appears_only_when_complete_and_never_when_failed() {
    let (server, _dl, peer, _rx) = setup(cfg());
    let dir = std::env::temp_dir().join(format!("weir-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let dest = dir.join("out.bin");
    let d = peer.fetch(get(&server.url("/reset/100000/30000")), Sink::File(dest.clone())).unwrap();
    let resp = d.wait().expect("completed");
    assert_eq!(resp.path.as_deref(), Some(dest.as_path()));
    assert_eq!(fnv(&std::fs::read(&dest).unwrap()), fnv(&content(100_000, 100_000)));

    let failed = dir.join("failed.bin");
    let d = peer.fetch(get(&server.url("/nothing")), Sink::File(failed.clone())).unwrap();
    assert!(d.wait().is_err());
    assert!(!failed.exists());
    let leftovers: Vec<_> = std::fs::read_dir(&dir).unwrap().filter_map(Result::ok).map(|e| e.file_name()).collect();
    assert_eq!(leftovers, vec![std::ffi::OsString::from("out.bin")], "no temporary file left behind");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bad_input_gets_clear_errors() {
    let (server, _dl, peer, _rx) = setup(cfg());
    match peer.fetch(Request::get(url("ftp://127.0.0.1/x")), Sink::Memory) {
        Err(EnqueueError::InvalidRequest(m)) => assert!(m.contains("ftp")),
        other => panic!("{other:?}"),
    }
    match peer.fetch(Request::get(url("data:text/plain,hello")), Sink::Memory) {
        Err(EnqueueError::InvalidRequest(_)) => {}
        other => panic!("{other:?}"),
    }
    let resp = fetch(&peer, &server.url("/empty")).expect("an empty body is fine");
    assert_eq!((resp.bytes, resp.body), (0, Some(Vec::new())));
    // A 2 GiB claim into memory is refused at once; into a file it ends as a truncated body.
    assert_eq!(fetch(&peer, &server.url("/bigclaim")), Err(FetchError::Failed(NetError::TooLarge)));
    let path = std::env::temp_dir().join(format!("weir-big-{}", std::process::id()));
    let d = peer.fetch(get(&server.url("/bigclaim")), Sink::File(path.clone())).unwrap();
    assert!(matches!(d.wait(), Err(FetchError::Failed(NetError::Reset(_)))));
    assert!(!path.exists());
    // Nothing listens on this port: a connect error, retried, then failed.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    match fetch(&peer, &format!("http://{closed}/x")) {
        Err(FetchError::Failed(NetError::Connect(_))) => {}
        other => panic!("{other:?}"),
    }
}

#[test]
fn an_async_writer_sink_is_refused_before_any_exchange() {
    let (server, _dl, peer, _rx) = setup(cfg());
    let sink = Sink::AsyncWriter(Box::new(futures_lite::io::sink()));
    let out = peer.fetch(get(&server.url("/file/100")), sink).unwrap().wait();
    assert!(
        matches!(&out, Err(FetchError::Failed(NetError::Sink(m))) if m.contains("weir-async")),
        "a clear error: {out:?}"
    );
    assert_eq!(server.hits("/file/100"), 0, "refused before asking the server");
}

#[test]
fn a_downloader_that_cannot_start_says_why_instead_of_panicking() {
    use weir_ureq::{Options, StartError, MAX_WORKERS};
    let huge = Config { max_concurrent: 100_000, ..Config::default() };
    assert_eq!(Downloader::try_new(huge, Options::default()).err(), Some(StartError::TooManyWorkers(100_000)));
    let max = Config { max_concurrent: usize::MAX, ..Config::default() };
    assert!(matches!(Downloader::try_new(max, Options::default()), Err(StartError::TooManyWorkers(_))));
    let zero = Config { max_concurrent: 0, ..Config::default() };
    assert_eq!(
        Downloader::try_new(zero, Options::default()).err(),
        Some(StartError::Config(ConfigError::ZeroConcurrency))
    );
    let most = Config { max_concurrent: MAX_WORKERS, ..Config::default() };
    assert!(Downloader::try_new(most, Options::default()).is_ok(), "the limit itself starts");
}

#[test]
fn workers_and_downloaders_share_one_pool_and_an_abort_spares_it() {
    let server = FaultServer::start();
    let pool = weir_ureq::Pool::new(&weir_ureq::Options::default().agent);
    let options = || weir_ureq::Options { pool: Some(pool.clone()), ..weir_ureq::Options::default() };
    let one = Downloader::try_new(Config { max_concurrent: 4, ..cfg() }, options()).expect("a downloader");
    let two = Downloader::try_new(Config { max_concurrent: 4, ..cfg() }, options()).expect("a downloader");
    let (p1, p2) = (one.peer(RequestPriority::Low), two.peer(RequestPriority::Low));
    // One at a time, alternating downloaders and so workers: one connection serves them all.
    for i in 0..6 {
        let peer = if i % 2 == 0 { &p1 } else { &p2 };
        let got = peer.execute(get(&server.url("/file/3000"))).expect("complete");
        assert_eq!(got.body.as_deref(), Some(&content(3000, 3000)[..]));
    }
    assert_eq!(server.connections(), 1, "every worker of both downloaders used the one pooled connection");
    // Aborting a transfer drops its own connection only: the pooled one still serves.
    let events = p1.subscribe();
    let stalled = p1.fetch(get(&server.url("/drip/100000/1000/3000")), Sink::Memory).expect("accepted");
    let id = stalled.id();
    loop {
        match events.recv_timeout(LIMIT) {
            Ok((_, DownloaderEvent::FirstByte { request_id, .. })) if request_id == id => break,
            Ok(_) => {}
            Err(e) => panic!("the stalled transfer never delivered: {e}"),
        }
    }
    drop(stalled);
    let got = p2.execute(get(&server.url("/file/3000"))).expect("complete");
    assert_eq!(got.bytes, 3000);
    assert_eq!(server.connections(), 2, "the stalled transfer's own connection, and the pooled one reused");
}
