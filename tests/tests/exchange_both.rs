//! Every class of misbehaving server, one test body run on both adapters
//! against the loopback fault server: a completed download is exactly one
//! version of the resource, every byte once; bad answers fail clearly;
//! complete exchanges give their connection back to the pool.

use weir_http::{FetchError, Headers};
use weir_tests::both::{cancel_one_of_two, run, run_with, Adapter, Into, ADAPTERS};
use weir_tests::server::{content, FaultServer};
use weir_tests::*;

fn cfg() -> Config {
    Config {
        max_concurrent: 2,
        retry: RetryPolicy { base: ms(10), cap: ms(50), ..RetryPolicy::default() },
        idle_timeout: Some(ms(2000)),
        ..Config::default()
    }
}

fn one(adapter: Adapter, config: Config, req: Request, into: Into) -> weir_tests::both::Got {
    run(adapter, config, vec![(req, into)]).pop().expect("one download")
}

fn failed_with_protocol(g: &weir_tests::both::Got) -> bool {
    matches!(&g.outcome, Err(FetchError::Failed(NetError::Protocol(_))))
}

#[test]
fn a_server_that_ignores_if_range_never_gets_spliced() {
    let server = FaultServer::start();
    for adapter in ADAPTERS {
        let path = format!("/ifrange/30000/10000?{adapter:?}");
        let g = one(adapter, cfg(), get(&server.url(&path)), Into::Memory);
        assert!(g.body() == &content(30_000, 2)[..], "{adapter:?}: exactly version 2, started over");
        let path = format!("/ifrange/30000/10000?w{adapter:?}");
        let g = one(adapter, cfg(), get(&server.url(&path)), Into::Writer);
        assert!(failed_with_protocol(&g), "{adapter:?}: a writer cannot start over: {:?}", g.outcome);
        assert!(g.written == content(30_000, 1)[..10_000], "{adapter:?}: nothing of version 2 appended");
    }
}

#[test]
fn a_changed_total_under_the_same_etag_starts_over() {
    let server = FaultServer::start();
    for adapter in ADAPTERS {
        let g = one(adapter, cfg(), get(&server.url(&format!("/retotal/20000/5000?{adapter:?}"))), Into::Memory);
        assert!(g.body() == &content(20_005, 2)[..], "{adapter:?}");
    }
}

#[test]
fn a_206_longer_than_its_span_is_refused_and_leaves_no_file() {
    let server = FaultServer::start();
    let dir = std::env::temp_dir().join(format!("weir-longspan-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for adapter in ADAPTERS {
        let dest = dir.join(format!("{adapter:?}.bin"));
        let g = one(
            adapter,
            cfg(),
            get(&server.url(&format!("/longspan/7000/3000?{adapter:?}"))),
            Into::File(dest.clone()),
        );
        assert!(failed_with_protocol(&g), "{adapter:?}: {:?}", g.outcome);
        assert!(!dest.exists(), "{adapter:?}: no file under the final name");
    }
    let left: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
    assert!(left.is_empty(), "no partial file left: {left:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_slowly_resent_prefix_counts_as_progress() {
    let server = FaultServer::start();
    for adapter in ADAPTERS {
        // The resend drips 1 KiB every 20 ms: the 30 KiB prefix takes ~600 ms,
        // twice the idle timeout, while bytes flow all along.
        let config = Config { idle_timeout: Some(ms(300)), ..cfg() };
        let path = format!("/slowprefix/40960/30720/20?{adapter:?}");
        let g = one(adapter, config, get(&server.url(&path)), Into::Memory);
        assert!(g.body() == &content(40_960, 40_960)[..], "{adapter:?}");
        assert_eq!(g.starts(), 2, "{adapter:?}: the resume never timed out: {:?}", g.events);
    }
}

#[test]
fn ranges_at_the_edges_get_exactly_what_exists() {
    let server = FaultServer::start();
    for adapter in ADAPTERS {
        let got = run(
            adapter,
            cfg(),
            vec![
                (get(&server.url("/file/1000")).range(0, Some(u64::MAX)), Into::Memory),
                (get(&server.url("/file/100000")).range(99_990, Some(199_999)), Into::Memory),
            ],
        );
        assert!(got[0].body() == &content(1000, 1000)[..], "{adapter:?}: range(0, u64::MAX) is the whole resource");
        assert!(got[1].body() == &content(100_000, 100_000)[99_990..], "{adapter:?}: clamped to the end");
        assert_eq!((got[0].starts(), got[1].starts()), (1, 1), "{adapter:?}: no retry");
    }
}

#[test]
fn adapters_agree_on_resets_statuses_and_redirects() {
    let server = FaultServer::start();
    for adapter in ADAPTERS {
        let got = run(
            adapter,
            cfg(),
            vec![
                (get(&server.url(&format!("/resetnolen/50000/20000?{adapter:?}"))), Into::Memory),
                (get(&server.url(&format!("/status101?{adapter:?}"))), Into::Memory),
                (get(&server.url(&format!("/nocontent?{adapter:?}"))), Into::Memory),
                (get(&server.url("/redirect/3/file/500")), Into::Memory),
            ],
        );
        // A body without a length cut by a reset is not complete.
        assert!(got[0].body() == &content(50_000, 50_000)[..], "{adapter:?}: {:?}", got[0].events);
        assert!(
            got[0]
                .events
                .iter()
                .any(|e| matches!(e, DownloaderEvent::RequestRetrying { error: NetError::Reset(_), .. })),
            "{adapter:?}: {:?}",
            got[0].events
        );
        assert!(
            matches!(&got[1].outcome, Err(FetchError::Failed(e)) if !e.is_retryable()),
            "{adapter:?}: a 101 is no success: {:?}",
            got[1].outcome
        );
        let r = got[2].outcome.as_ref().expect("a 204 completes");
        assert_eq!((r.status, r.bytes), (204, 0), "{adapter:?}: empty whatever its Content-Length");
        assert!(got[3].body() == &content(500, 500)[..], "{adapter:?}: three redirects followed");
    }
}

#[test]
fn complete_exchanges_give_their_connection_back() {
    for adapter in ADAPTERS {
        for (kind, make) in [
            ("GET", (|u: &str| get(u)) as fn(&str) -> Request),
            ("ranged GET", |u: &str| get(u).range(100, Some(1099))),
            ("HEAD", |u: &str| Request::head(url(u))),
        ] {
            let server = FaultServer::start();
            let config = Config { max_concurrent: 1, ..cfg() };
            let reqs = (0..20).map(|_| (make(&server.url("/file/3000")), Into::Memory)).collect();
            let got = run(adapter, config, reqs);
            assert!(got.iter().all(|g| g.outcome.is_ok()), "{adapter:?} {kind}");
            let conns = server.connections();
            assert!(conns <= 2, "{adapter:?}: 20 sequential {kind}s opened {conns} connections");
        }
    }
}

#[test]
fn concurrent_downloads_to_one_host_keep_their_connections() {
    for adapter in ADAPTERS {
        let server = FaultServer::start();
        let config = Config { max_concurrent: 8, ..cfg() };
        // Ten batches of 8: between two, all 8 connections are idle at once.
        let batches =
            (0..10).map(|b| (0..8).map(|i| get(&server.url(&format!("/file/2000?{b}-{i}")))).collect()).collect();
        let done = weir_tests::both::in_batches(adapter, config, batches);
        assert!(done.iter().all(|&ok| ok) && done.len() == 80, "{adapter:?}");
        // At most one per worker (weir-ureq keeps 2 spare workers for 8).
        let conns = server.connections();
        assert!(conns <= 10, "{adapter:?}: 80 downloads, 8 at once, opened {conns} connections");
    }
}

#[test]
fn file_sinks_write_private_temporary_files_and_never_follow_a_planted_link() {
    let server = FaultServer::start();
    for adapter in ADAPTERS {
        let dir = fresh_dir(&format!("filesink-{adapter:?}"));
        let victim = dir.join("victim");
        std::fs::write(&victim, b"precious").unwrap();
        // Links where a predictable temporary name would be (request 1 and 2).
        for seq in 1..=2 {
            std::os::unix::fs::symlink(&victim, dir.join(format!(".out.bin.weir-{seq}.part"))).unwrap();
        }
        let dest = dir.join("out.bin");
        // Two downloads into one destination at once: each has its own file.
        let got = run(
            adapter,
            cfg(),
            vec![
                (get(&server.url("/drip/70000/7000/2")), Into::File(dest.clone())),
                (get(&server.url("/drip/70000/7000/3")), Into::File(dest.clone())),
            ],
        );
        assert!(
            got.iter().all(|g| g.outcome.is_ok()),
            "{adapter:?}: {:?}",
            got.iter().map(|g| &g.outcome).collect::<Vec<_>>()
        );
        assert_eq!(std::fs::read(&victim).unwrap(), b"precious", "{adapter:?}: the link was not followed");
        assert!(std::fs::read(&dest).unwrap() == content(70_000, 70_000), "{adapter:?}: one whole version");
        assert!(!std::fs::symlink_metadata(&dest).unwrap().file_type().is_symlink(), "{adapter:?}");
        let mut names: Vec<String> =
            std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        names.sort();
        assert_eq!(
            names,
            [".out.bin.weir-1.part", ".out.bin.weir-2.part", "out.bin", "victim"],
            "{adapter:?}: no temporary file left"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}

#[test]
fn a_resumable_file_outlives_the_downloader_and_never_splices_two_versions() {
    let server = FaultServer::start();
    for adapter in ADAPTERS {
        let dir = fresh_dir(&format!("resumable-{adapter:?}"));
        let once = Config {
            idle_timeout: Some(ms(300)),
            retry: RetryPolicy { max_retries: 0, ..RetryPolicy::default() },
            ..cfg()
        };

        // Run 1 stalls after 40 000 bytes and gives up: the partial file stays.
        let dest = dir.join("r.bin");
        let path = format!("/stall/100000/40000?{adapter:?}");
        let g = one(adapter, once.clone(), get(&server.url(&path)), Into::Resumable(dest.clone()));
        assert!(matches!(g.outcome, Err(FetchError::Failed(NetError::Timeout))), "{adapter:?}: {:?}", g.outcome);
        assert!(!dest.exists(), "{adapter:?}: nothing under the final name");
        let part = weir_http::partial::part_path(&dest);
        assert!(
            std::fs::read(&part).unwrap() == content(100_000, 100_000)[..40_000],
            "{adapter:?}: the prefix is kept"
        );
        assert!(weir_http::partial::meta_path(&dest).exists(), "{adapter:?}: with its version");

        // Run 2, a new downloader (as another process would): resumes with If-Range.
        let g = one(adapter, cfg(), get(&server.url(&path)), Into::Resumable(dest.clone()));
        assert!(g.outcome.is_ok(), "{adapter:?}: {:?}", g.outcome);
        assert!(std::fs::read(&dest).unwrap() == content(100_000, 100_000), "{adapter:?}: byte-exact");
        let last = server.seen().into_iter().rev().find(|s| s.path == path).unwrap();
        assert_eq!(last.range.as_deref(), Some("bytes=40000-"), "{adapter:?}");
        assert_eq!(last.if_range.as_deref(), Some("\"v1-100000\""), "{adapter:?}");
        assert!(!part.exists() && !weir_http::partial::meta_path(&dest).exists(), "{adapter:?}: partial files gone");

        // The resource changes between runs: the second run starts over.
        let dest = dir.join("e.bin");
        let path = format!("/etag/60000/20000?{adapter:?}");
        let g = one(adapter, once.clone(), get(&server.url(&path)), Into::Resumable(dest.clone()));
        assert!(g.outcome.is_err(), "{adapter:?}: run 1 was cut short");
        let g = one(adapter, cfg(), get(&server.url(&path)), Into::Resumable(dest.clone()));
        assert!(g.outcome.is_ok(), "{adapter:?}: {:?}", g.outcome);
        assert!(std::fs::read(&dest).unwrap() == content(60_000, 2), "{adapter:?}: exactly version 2, never v1's head");

        // A symlink planted at the partial path is refused, its target untouched.
        let victim = dir.join("victim");
        std::fs::write(&victim, b"precious").unwrap();
        let dest = dir.join("s.bin");
        std::os::unix::fs::symlink(&victim, weir_http::partial::part_path(&dest)).unwrap();
        let g = one(adapter, cfg(), get(&server.url("/file/1000")), Into::Resumable(dest.clone()));
        assert!(
            matches!(&g.outcome, Err(FetchError::Failed(NetError::Sink(m))) if m.contains("symlink")),
            "{adapter:?}: {:?}",
            g.outcome
        );
        assert_eq!(std::fs::read(&victim).unwrap(), b"precious", "{adapter:?}");
        assert!(!dest.exists(), "{adapter:?}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}

#[test]
fn progress_is_readable_while_a_download_runs() {
    let server = FaultServer::start();
    for adapter in ADAPTERS {
        // 20 chunks of 10 000 bytes, one every 15 ms.
        let (outcome, seen) = weir_tests::both::watch(adapter, cfg(), get(&server.url("/drip/200000/10000/15")));
        assert_eq!(outcome.expect("completes").bytes, 200_000, "{adapter:?}");
        let last = *seen.last().expect("readings");
        assert_eq!((last.bytes, last.total), (200_000, Some(200_000)), "{adapter:?}");
        assert!(
            seen.iter().any(|s| s.total == Some(200_000) && s.bytes > 0 && s.bytes < 200_000),
            "{adapter:?}: the size is known and bytes grow while it runs: {seen:?}"
        );
        assert!(seen.windows(2).all(|w| w[0].bytes <= w[1].bytes), "{adapter:?}: never backwards here");
    }
}

#[test]
fn per_host_caps_hold_at_the_server_a_redirect_leads_to() {
    // Two origin hosts redirect everything to a third that drips slowly.
    let (a1, a2, b) =
        (FaultServer::start_on("127.0.0.1"), FaultServer::start_on("127.0.0.3"), FaultServer::start_on("127.0.0.2"));
    for adapter in ADAPTERS {
        let config = Config { max_concurrent: 4, max_per_host: Some(1), ..cfg() };
        let reqs = (0..4)
            .map(|i| {
                let origin = if i % 2 == 0 { &a1 } else { &a2 };
                let path = format!("/to/{}/drip/20000/4000/10?{adapter:?}{i}", b.addr());
                (get(&origin.url(&path)), Into::Memory)
            })
            .collect();
        let got = run(adapter, config, reqs);
        for g in &got {
            assert!(g.body() == &content(20_000, 20_000)[..], "{adapter:?}");
            assert!(event_names(&g.events).contains(&"Redirected"), "{adapter:?}: the core followed it");
        }
    }
    assert_eq!(b.peak_concurrency(), 1, "max_per_host 1 holds at the redirect target");
    let served = b.seen().iter().filter(|s| s.path.starts_with("/drip/20000/4000/10?")).count();
    assert_eq!(served, 8, "every download was served by the target");
}

#[test]
fn headers_are_sent_merged_with_defaults_and_credentials_never_follow_to_another_origin() {
    use weir_http::{Headers, USER_AGENT};
    let (home, other) = (FaultServer::start_on("127.0.0.1"), FaultServer::start_on("127.0.0.2"));
    for adapter in ADAPTERS {
        let defaults = Headers::new().with("Accept", "*/*").unwrap().with("X-Client", "suite").unwrap();
        let own = Headers::new()
            .with("Authorization", "Bearer secret")
            .unwrap()
            .with("Cookie", "s=1")
            .unwrap()
            .with("accept", "video/mp2t")
            .unwrap();
        let tag = format!("{adapter:?}");
        let reqs = vec![
            (get(&home.url(&format!("/file/10?plain{tag}"))), Into::Memory, Headers::new()),
            (get(&home.url(&format!("/file/11?own{tag}"))), Into::Memory, own.clone()),
            // Same origin after the redirect: credentials stay.
            (get(&home.url(&format!("/redirect/1/file/12?same{tag}"))), Into::Memory, own.clone()),
            // Another origin: no credentials there.
            (get(&home.url(&format!("/to/{}/file/13?cross{tag}", other.addr()))), Into::Memory, own.clone()),
        ];
        let reqs = reqs.into_iter().map(|(r, i, h)| (r, i, h.into())).collect();
        let got = run_with(adapter, cfg(), &defaults, reqs);
        assert!(got.iter().all(|g| g.outcome.is_ok()), "{adapter:?}");
        let seen = |s: &FaultServer, q: &str| {
            s.seen()
                .into_iter()
                .find(|x| x.path.ends_with(&format!("{q}{tag}")))
                .unwrap_or_else(|| panic!("{q}"))
                .headers
        };
        let plain = seen(&home, "plain");
        assert_eq!(plain.get("user-agent").map(String::as_str), Some(USER_AGENT), "{adapter:?}: weir's User-Agent");
        assert_eq!(plain.get("accept").map(String::as_str), Some("*/*"), "{adapter:?}: the default");
        assert_eq!(plain.get("authorization"), None);
        let own_seen = seen(&home, "own");
        assert_eq!(own_seen.get("accept").map(String::as_str), Some("video/mp2t"), "{adapter:?}: the download's wins");
        assert_eq!(own_seen.get("x-client").map(String::as_str), Some("suite"), "{adapter:?}");
        assert_eq!(own_seen.get("authorization").map(String::as_str), Some("Bearer secret"), "{adapter:?}");
        let same = seen(&home, "same");
        assert_eq!(same.get("cookie").map(String::as_str), Some("s=1"), "{adapter:?}: same origin keeps them");
        let cross = seen(&other, "cross");
        assert_eq!((cross.get("authorization"), cross.get("cookie")), (None, None), "{adapter:?}: stripped");
        assert_eq!(cross.get("x-client").map(String::as_str), Some("suite"), "{adapter:?}: the rest still goes");
    }
}

#[test]
fn dropping_a_peer_lets_another_peers_waiting_download_start_at_once() {
    let server = FaultServer::start();
    for adapter in ADAPTERS {
        // One slot, no idle timeout: a start lost on the way would wait forever.
        let config = Config { max_concurrent: 1, idle_timeout: None, ..cfg() };
        let stalled = get(&server.url(&format!("/stall/100000/1000?{adapter:?}")));
        let waiting = get(&server.url(&format!("/file/5000?{adapter:?}")));
        let (out, took) = weir_tests::both::after_a_peer_is_dropped(adapter, config, stalled, waiting);
        let out = out.unwrap_or_else(|| panic!("{adapter:?}: the waiting download never started"));
        assert_eq!(out.expect("completes").body.as_deref(), Some(&content(5000, 5000)[..]), "{adapter:?}");
        assert!(took < std::time::Duration::from_secs(2), "{adapter:?}: started at once ({took:?})");
    }
}

#[test]
fn expected_size_and_sha256_are_checked_before_a_download_completes() {
    use sha2::Digest;
    use weir_http::Fetch;
    let sha = |b: &[u8]| -> [u8; 32] { sha2::Sha256::digest(b).into() };
    let server = FaultServer::start();
    let dir = fresh_dir("integrity");
    for adapter in ADAPTERS {
        let body = content(30_000, 30_000);
        let good = Fetch::new().size(30_000).sha256(sha(&body));
        let bad = Fetch::new().sha256(sha(b"something else"));
        let dest = dir.join(format!("bad-{adapter:?}"));
        let got = run_with(
            adapter,
            cfg(),
            &Headers::new(),
            vec![
                (get(&server.url("/file/30000")), Into::Memory, good.clone()),
                (get(&server.url("/file/30000")), Into::File(dest.clone()), bad),
                (get(&server.url(&format!("/file/20000?{adapter:?}"))), Into::Memory, Fetch::new().size(30_000)),
            ],
        );
        assert!(got[0].body() == &body[..], "{adapter:?}");
        assert!(
            matches!(&got[1].outcome, Err(FetchError::Failed(NetError::Integrity(m))) if m.contains("SHA-256")),
            "{adapter:?}: {:?}",
            got[1].outcome
        );
        assert_eq!(got[1].starts(), 2, "{adapter:?}: fetched once more from zero, then failed");
        assert!(!dest.exists(), "{adapter:?}: no file under the final name");
        assert!(
            matches!(&got[2].outcome, Err(FetchError::Failed(NetError::Integrity(m))) if m.contains("announces 20000")),
            "{adapter:?}: refused at the head: {:?}",
            got[2].outcome
        );
        // A head the sink refused is not announced as received.
        assert_eq!(event_names(&got[2].events), ["Enqueued", "Started", "Failed"], "{adapter:?}");

        // A resumed partial file: the digest covers the bytes of the earlier run.
        let dest = dir.join(format!("resumed-{adapter:?}"));
        let path = format!("/stall/100000/40000?{adapter:?}");
        let once = Config {
            idle_timeout: Some(ms(300)),
            retry: RetryPolicy { max_retries: 0, ..RetryPolicy::default() },
            ..cfg()
        };
        let whole = content(100_000, 100_000);
        let first = run_with(
            adapter,
            once,
            &Headers::new(),
            vec![(get(&server.url(&path)), Into::Resumable(dest.clone()), Fetch::new())],
        );
        assert!(first[0].outcome.is_err(), "{adapter:?}: run 1 stalls");
        let fetch = Fetch::new().sha256(sha(&whole));
        let second = run_with(
            adapter,
            cfg(),
            &Headers::new(),
            vec![(get(&server.url(&path)), Into::Resumable(dest.clone()), fetch)],
        );
        assert!(second[0].outcome.is_ok(), "{adapter:?}: {:?}", second[0].outcome);
        assert!(std::fs::read(&dest).unwrap() == whole, "{adapter:?}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn cancelling_one_transfer_stops_it_at_once_and_leaves_the_other_alone() {
    let server = FaultServer::start();
    for adapter in ADAPTERS {
        // 2 kB every 3 s: once the first chunk is in, the transfer blocks in
        // a read. Beside it, 40 kB at 400 kB/s on the same host.
        let slow = Request::get(url(&server.url("/drip/200000/2000/3000")));
        let other = Request::get(url(&server.url("/drip/40000/4000/10")));
        let (cancelled, took, other) = cancel_one_of_two(adapter, Config::default(), slow, other);
        assert_eq!(
            cancelled,
            Some(Err(FetchError::Cancelled(CancelReason::Explicit))),
            "{adapter:?}: the cancelled download settles"
        );
        assert!(took < ms(1000), "{adapter:?}: it settled {took:?} after the cancel");
        let other = other.unwrap_or_else(|e| panic!("{adapter:?}: the other download completes: {e}"));
        assert_eq!(other.body.as_deref(), Some(&content(40000, 40000)[..]), "{adapter:?}: byte-exact");
    }
}

#[test]
fn a_panicking_writer_fails_its_download_and_the_downloader_lives_on() {
    let server = FaultServer::start();
    for adapter in ADAPTERS {
        let reqs = vec![
            (Request::get(url(&server.url("/file/5000"))), Into::Panicking),
            (Request::get(url(&server.url("/file/100"))), Into::Memory),
        ];
        let got = run(adapter, Config { max_concurrent: 1, ..cfg() }, reqs);
        match &got[0].outcome {
            Err(FetchError::Failed(NetError::Sink(why))) => assert!(why.contains("panicked"), "{adapter:?}: {why}"),
            other => panic!("{adapter:?}: {other:?}"),
        }
        assert_eq!(got[1].outcome.as_ref().map(|r| r.bytes), Ok(100), "{adapter:?}: the next download runs");
    }
}

/// A peer's download list (progress of each live download, no handle
/// needed) shows both transfers mid-way with their totals, in id order,
/// and is empty once they ended; on both adapters.
#[test]
fn a_peer_lists_its_live_downloads_with_their_progress() {
    for adapter in ADAPTERS {
        let server = FaultServer::start();
        // 20 000 bytes each, 1000 every 20 ms: about 0.4 s in flight.
        let reqs = vec![
            Request::get(Url::parse(&server.url("/drip/20000/1000/20")).expect("url")),
            Request::get(Url::parse(&server.url("/drip/20000/1000/20")).expect("url")),
        ];
        let listed = weir_tests::both::peer_downloads(adapter, Config::default(), reqs);
        let during = listed.during.unwrap_or_else(|| panic!("{adapter:?}: both listed mid-flight within 5 s"));
        assert_eq!(during.iter().map(|(id, _)| *id).collect::<Vec<_>>(), listed.ids, "{adapter:?}: in id order");
        for (_, s) in &during {
            assert_eq!(s.total, Some(20_000), "{adapter:?}");
            assert!(s.bytes > 0 && s.bytes <= 20_000, "{adapter:?}: {s:?}");
        }
        assert_eq!(listed.after, vec![], "{adapter:?}: ended downloads leave the list");
    }
}

/// A caller's check on the response head (e.g. a media segment must not
/// be `text/html`, a captive portal's 200) refuses a response before a byte
/// reaches the sink: the download fails with `Integrity`, is not retried,
/// leaves no file; a response it accepts completes. Both adapters.
#[test]
fn a_response_check_refuses_a_response_before_its_bytes_land() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use weir_http::Fetch;
    let server = FaultServer::start();
    let dir = fresh_dir("check");
    for adapter in ADAPTERS {
        let asked = Arc::new(AtomicUsize::new(0));
        let a = Arc::clone(&asked);
        // The fault server sends no Content-Type: a segment check refuses it.
        let segment = Fetch::new().check(move |head| {
            a.fetch_add(1, Ordering::SeqCst);
            match head.header("content-type") {
                Some(t) if t.starts_with("video/") => Ok(()),
                other => Err(format!("status {} with content type {other:?}", head.status)),
            }
        });
        let tagged = Fetch::new().check(|head| head.header("ETag").map(|_| ()).ok_or_else(|| "no ETag".to_owned()));
        let dest = dir.join(format!("refused-{adapter:?}"));
        let got = run_with(
            adapter,
            cfg(),
            &Headers::new(),
            vec![
                (get(&server.url("/file/5000")), Into::File(dest.clone()), segment),
                (get(&server.url("/file/6000")), Into::Memory, tagged),
            ],
        );
        assert!(
            matches!(&got[0].outcome, Err(FetchError::Failed(NetError::Integrity(m)))
                if m.contains("response refused: status 200 with content type None")),
            "{adapter:?}: {:?}",
            got[0].outcome
        );
        assert_eq!(got[0].starts(), 1, "{adapter:?}: not retried");
        assert_eq!(asked.load(Ordering::SeqCst), 1, "{adapter:?}: asked once");
        assert!(!dest.exists(), "{adapter:?}: no file");
        assert_eq!(got[1].body(), &content(6000, 6000)[..], "{adapter:?}");
    }
}

#[test]
fn completed_files_are_in_place_when_the_downloader_shuts_down_right_after_their_events() {
    let server = FaultServer::start();
    let dir = fresh_dir("sync");
    for adapter in ADAPTERS {
        let dest = |k: u64| dir.join(format!("{adapter:?}-{k}"));
        let reqs = (0..40).map(|k| (get(&server.url(&format!("/file/{}", 300_000 + k))), dest(k))).collect();
        let config = Config { max_concurrent: 8, ..cfg() };
        let outcomes = weir_tests::both::shut_down_after_completion(adapter, config, reqs);
        for (k, o) in (0..).zip(&outcomes) {
            let resp = o.as_ref().unwrap_or_else(|e| panic!("{adapter:?} file {k}: {e}"));
            assert_eq!(resp.path.as_deref(), Some(dest(k).as_path()), "{adapter:?}");
            assert_eq!(
                std::fs::read(dest(k)).unwrap(),
                content(300_000 + k as usize, 300_000 + k),
                "{adapter:?} file {k}, byte-exact"
            );
        }
    }
    let left = std::fs::read_dir(&dir).unwrap().count();
    assert_eq!(left, 80, "only the final files, no temporary one");
    let _ = std::fs::remove_dir_all(&dir);
}
