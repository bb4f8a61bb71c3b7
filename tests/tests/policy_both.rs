//! Per-request policy, mirrors, a wrong digest fetched once more, the
//! response head and live rates: one test body on both adapters, against
//! loopback fault servers (127.0.0.1 and 127.0.0.2 as two hosts).

use std::time::{Duration, Instant};

use sha2::Digest;
use weir::Timeouts;
use weir_http::{Fetch, FetchError, Headers};
use weir_tests::both::{peer_downloads, run, run_with, watch, Into, ADAPTERS};
use weir_tests::server::{content, FaultServer};
use weir_tests::*;

fn cfg() -> Config {
    Config {
        max_concurrent: 4,
        retry: RetryPolicy { base: ms(10), cap: ms(50), ..RetryPolicy::default() },
        idle_timeout: Some(ms(30_000)),
        ..Config::default()
    }
}

fn sha(b: &[u8]) -> [u8; 32] {
    sha2::Sha256::digest(b).into()
}

fn names(events: &[DownloaderEvent]) -> Vec<&'static str> {
    event_names(events)
}

#[test]
fn the_response_head_comes_before_the_first_byte_and_the_rate_is_live() {
    let server = FaultServer::start();
    for adapter in ADAPTERS {
        // 120 KB, 10 KB every 25 ms: about 300 ms.
        let path = format!("/drip/120000/10000/25?{adapter:?}");
        let got = run(adapter, cfg(), vec![(get(&server.url(&path)), Into::Memory)]).pop().expect("one");
        assert_eq!(got.body(), &content(120_000, 120_000)[..], "{adapter:?}");
        let head = got.events.iter().find(|e| matches!(e, DownloaderEvent::ResponseReceived { .. }));
        assert!(
            matches!(head, Some(DownloaderEvent::ResponseReceived { status: 200, content_length: Some(120_000), .. })),
            "{adapter:?}: {:?}",
            got.events
        );
        assert_eq!(names(&got.events), ["Enqueued", "Started", "Response", "FirstByte", "Completed"], "{adapter:?}");

        let path = format!("/drip/120000/10000/25?watch-{adapter:?}");
        let (outcome, seen) = watch(adapter, cfg(), get(&server.url(&path)));
        assert!(outcome.is_ok(), "{adapter:?}");
        let live = seen.iter().filter(|s| s.bytes > 0 && s.bytes < 120_000).find_map(|s| s.rate_bps);
        // A drip of 10 KB per 25 ms is 3.2 Mbit/s; loopback adds nothing slower.
        let rate = live.unwrap_or_else(|| panic!("{adapter:?}: a rate while running: {seen:?}"));
        assert!((500_000..100_000_000).contains(&rate), "{adapter:?}: {rate} bit/s");
        let mid = seen.iter().find(|s| s.bytes > 0 && s.rate_bps.is_some()).expect("a reading mid-way");
        assert!(mid.eta().is_some(), "{adapter:?}: total and rate give an ETA");
        assert_eq!(seen.last().and_then(|s| s.rate_bps), None, "{adapter:?}: no rate once it ended");
    }
}

#[test]
fn a_peer_s_bandwidth_is_known_from_its_transfers() {
    let server = FaultServer::start();
    for adapter in ADAPTERS {
        let reqs = vec![get(&server.url(&format!("/drip/100000/10000/25?{adapter:?}")))];
        let listed = peer_downloads(adapter, cfg(), reqs);
        let bw = listed.bandwidth.unwrap_or_else(|| panic!("{adapter:?}: learnt"));
        assert!((500_000..100_000_000).contains(&bw), "{adapter:?}: {bw} bit/s");
    }
}

#[test]
fn wrong_bytes_are_fetched_once_more_from_zero_when_the_sink_can_start_over() {
    let server = FaultServer::start();
    let dir = fresh_dir("refetch");
    for adapter in ADAPTERS {
        // First hit: version 1, whole; later: version 2. The digest is version 2's.
        let v2 = content(50_000, 2);
        let (changing, file_path) =
            (format!("/etag/50000/50000?{adapter:?}"), format!("/etag/50000/50000?f{adapter:?}"));
        let dest = dir.join(format!("good-{adapter:?}"));
        let always_wrong = format!("/file/30000?{adapter:?}");
        let writer_path = format!("/etag/50000/50000?w{adapter:?}");
        let digest = Fetch::new().sha256(sha(&v2));
        let got = run_with(
            adapter,
            cfg(),
            &Headers::new(),
            vec![
                (get(&server.url(&changing)), Into::Memory, digest.clone()),
                (get(&server.url(&file_path)), Into::File(dest.clone()), digest.clone()),
                (get(&server.url(&always_wrong)), Into::Memory, Fetch::new().sha256(sha(b"other"))),
                (get(&server.url(&writer_path)), Into::Writer, digest),
            ],
        );
        assert_eq!(got[0].body(), &v2[..], "{adapter:?}");
        assert_eq!(server.hits(&changing), 2, "{adapter:?}");
        assert!(
            matches!(&got[0].events[..], [.., DownloaderEvent::RequestRetrying { error: NetError::Integrity(m), .. }, _, _, _, _] if m.contains("SHA-256")),
            "{adapter:?}: {:?}",
            got[0].events
        );
        assert!(got[1].outcome.is_ok(), "{adapter:?}: {:?}", got[1].outcome);
        assert_eq!(std::fs::read(&dest).expect("the file"), v2, "{adapter:?}");
        // Once only: a server that keeps sending other bytes fails.
        assert!(
            matches!(&got[2].outcome, Err(FetchError::Failed(NetError::Integrity(_)))),
            "{adapter:?}: {:?}",
            got[2].outcome
        );
        assert_eq!(server.hits(&always_wrong), 2, "{adapter:?}");
        // A caller's writer cannot start over: no second fetch.
        assert!(matches!(&got[3].outcome, Err(FetchError::Failed(NetError::Integrity(_)))), "{adapter:?}");
        assert_eq!(server.hits(&writer_path), 1, "{adapter:?}");
    }
}

#[test]
fn a_mirror_serves_what_the_first_url_cannot_and_resumes_only_the_same_version() {
    let (a, b) = (FaultServer::start_on("127.0.0.1"), FaultServer::start_on("127.0.0.2"));
    for adapter in ADAPTERS {
        let t = |p: &str| format!("{p}?{adapter:?}");
        // 1. Not on the first server (404 every time): the mirror serves it.
        let missing = t("/status/404/99/-");
        let r1 = get(&a.url(&missing)).mirror(url(&b.url(&t("/file/40000"))));
        // 2. The first server resets after 30 000 bytes; the mirror has the
        //    same version (same ETag): only the rest is asked of it.
        let cut = t("/reset/200000/30000");
        let r2 = get(&a.url(&cut)).mirror(url(&b.url(&t("/file/200000"))));
        // 3. The mirror has another version: it starts over, no splice.
        let cut3 = t("/reset/200000/30000?3");
        let other = t("/etag/200000/200000");
        let r3 = get(&a.url(&cut3)).mirror(url(&b.url(&other)));
        let got = run(adapter, cfg(), vec![(r1, Into::Memory), (r2, Into::Memory), (r3, Into::Memory)]);

        assert_eq!(got[0].body(), &content(40_000, 40_000)[..], "{adapter:?}");
        assert_eq!(a.hits(&missing), 1, "{adapter:?}: one try at the first URL");
        let retry = got[0].events.iter().find(|e| matches!(e, DownloaderEvent::RequestRetrying { .. }));
        assert!(
            matches!(retry, Some(DownloaderEvent::RequestRetrying { delay, error: NetError::Status { status: 404, .. }, .. }) if delay.is_zero()),
            "{adapter:?}: {retry:?}"
        );

        assert_eq!(got[1].body(), &content(200_000, 200_000)[..], "{adapter:?}");
        let asked: Vec<_> = b.seen().into_iter().filter(|s| s.path == t("/file/200000")).collect();
        assert_eq!(asked.len(), 1, "{adapter:?}");
        let from: u64 = asked[0]
            .range
            .as_deref()
            .and_then(|r| r.strip_prefix("bytes=")?.strip_suffix('-')?.parse().ok())
            .unwrap_or_else(|| panic!("{adapter:?}: a resume asks a range: {:?}", asked[0].range));
        assert!((1..=30_000).contains(&from), "{adapter:?}: resumed at {from}");

        assert_eq!(got[2].body(), &content(200_000, 1)[..], "{adapter:?}: the mirror's version, whole");
    }
}

#[test]
fn mirrors_get_no_credentials_of_another_origin() {
    let (a, b) = (FaultServer::start_on("127.0.0.1"), FaultServer::start_on("127.0.0.2"));
    for adapter in ADAPTERS {
        let missing = format!("/status/404/99/-?{adapter:?}");
        let there = format!("/file/100?{adapter:?}");
        let headers = Headers::new().with("Authorization", "Bearer secret").expect("a header");
        let req = get(&a.url(&missing)).mirror(url(&b.url(&there)));
        let got = run_with(adapter, cfg(), &Headers::new(), vec![(req, Into::Memory, Fetch::from(headers))]);
        assert!(got[0].outcome.is_ok(), "{adapter:?}");
        let first = a.seen().into_iter().find(|s| s.path == missing).expect("asked");
        let mirror = b.seen().into_iter().find(|s| s.path == there).expect("asked");
        assert!(first.headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("authorization")), "{adapter:?}");
        assert!(!mirror.headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("authorization")), "{adapter:?}");
    }
}

#[test]
fn a_request_s_own_idle_timeout_and_deadline_hold_on_a_stalling_server() {
    let server = FaultServer::start();
    for adapter in ADAPTERS {
        // The config waits 30 s for bytes; this request 200 ms, then retries
        // (the second hit is served whole).
        let quick = Timeouts { idle: Some(ms(200)), ..Timeouts::of(&cfg()) };
        let stall = format!("/stall/50000/10000?{adapter:?}");
        // Whole request: 400 ms, idle timeout off: the stall cannot outlast it.
        let deadline = format!("/stall/50000/10000?d{adapter:?}");
        let no_idle = Timeouts { idle: None, ..Timeouts::of(&cfg()) };
        let begun = Instant::now();
        let got = run(
            adapter,
            cfg(),
            vec![
                (get(&server.url(&stall)).timeouts(quick), Into::Memory),
                (get(&server.url(&deadline)).timeouts(no_idle).deadline(ms(400)), Into::Memory),
            ],
        );
        assert!(begun.elapsed() < Duration::from_secs(5), "{adapter:?}: neither waited for the server's 10 s stall");
        assert_eq!(got[0].body(), &content(50_000, 50_000)[..], "{adapter:?}");
        assert!(
            got[0]
                .events
                .iter()
                .any(|e| matches!(e, DownloaderEvent::RequestRetrying { error: NetError::Timeout, .. })),
            "{adapter:?}: {:?}",
            got[0].events
        );
        assert!(
            matches!(&got[1].outcome, Err(FetchError::Failed(NetError::Timeout))),
            "{adapter:?}: {:?}",
            got[1].outcome
        );
        assert_eq!(names(&got[1].events), ["Enqueued", "Started", "Response", "FirstByte", "Failed"], "{adapter:?}");
    }
}
