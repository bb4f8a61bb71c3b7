//! The hub (weir-http's sans-IO driver) on a fake clock: transfers carry
//! the sink away and back, downloads settle exactly once, starts wait for a
//! sink that is still out, late bytes count.

use std::time::Duration;

use weir_http::{Command, FetchError, Sink};
use weir_tests::hub::{resource, Scene};
use weir_tests::*;

fn cfg(n: usize) -> Config {
    Config { max_concurrent: n, ..quiet(n) }
}

/// One slot; an attempt idle for 100 ms is aborted and re-queued with no
/// backoff, so its next start comes while the old transfer holds the sink.
fn idle_then_retry_at_once() -> Config {
    Config {
        idle_timeout: Some(ms(100)),
        retry: RetryPolicy { base: Duration::ZERO, jitter: false, ..quiet(1).retry },
        ..cfg(1)
    }
}

#[test]
fn a_start_is_one_transfer_that_takes_the_sink_and_brings_it_back() {
    let mut s = Scene::new(cfg(1));
    let p = s.peer(RequestPriority::Low);
    let k = s.fetch(p, get("http://h.test/3000"), Sink::Memory);
    let id = s.id(k);
    assert_eq!(s.workers.len(), 1, "the start is a transfer at once");
    assert_eq!(s.hub.transfers_out(), 1);
    s.finish(0);
    assert_eq!(s.hub.transfers_out(), 0);
    let names = event_names(&s.events_for(id));
    assert_eq!(names, ["Enqueued", "Started", "Response", "FirstByte", "Completed"]);
    let outcomes = s.outcomes(k);
    assert_eq!(outcomes.len(), 1, "settled once");
    let resp = outcomes[0].clone().expect("complete");
    assert_eq!(resp.body.as_deref(), Some(&resource(3000)[..]));
    assert_eq!(resp.status, 200);
    assert_eq!(s.hub.live(), 0, "nothing kept once settled");
}

#[test]
fn a_cancelled_download_settles_when_its_sink_is_back_and_leaves_no_file() {
    let dir = fresh_dir("hub-cancel");
    let mut s = Scene::new(cfg(1));
    let p = s.peer(RequestPriority::Low);
    let k = s.fetch(p, get("http://h.test/100000"), Sink::File(dir.join("out")));
    let id = s.id(k);
    s.step(0, 0); // the head
    s.step(0, 1000);
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1, "the temporary file holds the first bytes");
    s.command(Command::Cancel(id));
    assert!(s.workers[0].t.stop().is_stopped(), "the abort raised the transfer's stop");
    assert_eq!(event_names(&s.events_for(id)).last(), Some(&"Cancelled"), "the event goes out at once");
    assert!(s.outcomes(k).is_empty(), "the sink is still out: not settled yet");
    s.finish(0);
    assert_eq!(s.outcomes(k), vec![Err(FetchError::Cancelled(CancelReason::Explicit))]);
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0, "no partial file left");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_start_while_the_sink_is_out_waits_for_it_then_resumes_where_the_sink_ends() {
    let mut s = Scene::new(idle_then_retry_at_once());
    let p = s.peer(RequestPriority::Low);
    let k = s.fetch(p, get("http://h.test/5000"), Sink::Memory);
    let id = s.id(k);
    s.step(0, 0);
    s.step(0, 1000);
    s.step(0, 500);
    // Idle: the core aborts and re-queues at once (no backoff); the old
    // transfer has not noticed yet and still holds the sink.
    s.advance(ms(100));
    let names = event_names(&s.events_for(id));
    assert_eq!(names.iter().filter(|n| **n == "Started").count(), 2, "{names:?}");
    assert_eq!(s.workers.len(), 1, "the second start waits for the sink");
    assert!(s.workers[0].t.stop().is_stopped());
    s.step(0, 1); // the old transfer notices its stop and hands the sink back
    assert_eq!(s.workers.len(), 1, "now the second start is a transfer");
    assert_eq!(s.workers[0].t.attempt(), 2);
    s.finish(0);
    assert_eq!(s.spawned[&id], 2, "every start one transfer");
    let resp = s.outcomes(k).pop().expect("settled").expect("complete");
    assert_eq!(resp.body.as_deref(), Some(&resource(5000)[..]), "resumed without a gap or a doubled byte");
    match s.events_for(id).last() {
        Some(DownloaderEvent::RequestCompleted { bytes_transferred, .. }) => {
            assert_eq!(*bytes_transferred, 5000, "the bytes the stopped attempt wrote late count too");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_start_aborted_before_the_sink_came_back_is_still_one_transfer() {
    let mut s = Scene::new(idle_then_retry_at_once());
    let p = s.peer(RequestPriority::Low);
    let k = s.fetch(p, get("http://h.test/5000"), Sink::Memory);
    let id = s.id(k);
    s.step(0, 0);
    s.advance(ms(100)); // attempt 2 waits for the sink
    s.command(Command::Cancel(id)); // and is cancelled while waiting
    assert!(s.outcomes(k).is_empty());
    s.finish_all();
    assert_eq!(s.spawned[&id], 2, "the waiting start still became a transfer (stopped at once)");
    assert_eq!(s.outcomes(k), vec![Err(FetchError::Cancelled(CancelReason::Explicit))]);
    assert_eq!(s.hub.live(), 0);
}

#[test]
fn removing_a_peer_starts_what_waits_behind_it_at_once() {
    let mut s = Scene::new(cfg(1));
    let a = s.peer(RequestPriority::High);
    let b = s.peer(RequestPriority::Low);
    let ka = s.fetch(a, get("http://h.test/1000"), Sink::Memory);
    let kb = s.fetch(b, get("http://h.test/2000"), Sink::Memory);
    assert_eq!(s.workers.len(), 1);
    s.command(Command::RemovePeer(a));
    assert_eq!(s.workers.len(), 2, "b's request is a transfer in the same step");
    assert_eq!(s.workers[1].t.id(), s.id(kb));
    s.finish_all();
    assert_eq!(s.outcomes(ka), vec![Err(FetchError::Cancelled(CancelReason::PeerCancel))]);
    assert!(s.outcomes(kb)[0].is_ok());
}

#[test]
fn shutdown_finishes_only_when_every_sink_is_back() {
    let mut s = Scene::new(cfg(2));
    let p = s.peer(RequestPriority::Low);
    let k1 = s.fetch(p, get("http://h.test/1000"), Sink::Memory);
    let k2 = s.fetch(p, get("http://h.test/1000"), Sink::Memory);
    let k3 = s.fetch(p, get("http://h.test/1000"), Sink::Memory);
    s.step(0, 0);
    s.command(Command::Shutdown);
    assert!(!s.hub.is_finished(), "two transfers still hold sinks");
    assert_eq!(
        s.outcomes(k3),
        vec![Err(FetchError::Cancelled(CancelReason::DownloaderShutdown))],
        "a queued one settles at once"
    );
    s.finish(0);
    assert!(!s.hub.is_finished());
    s.finish(0);
    assert!(s.hub.is_finished());
    for k in [k1, k2] {
        assert_eq!(s.outcomes(k), vec![Err(FetchError::Cancelled(CancelReason::DownloaderShutdown))]);
    }
}

#[test]
fn a_gone_subscriber_is_dropped_and_a_peers_subscribers_see_its_end() {
    let mut s = Scene::new(cfg(1));
    let p = s.peer(RequestPriority::Low);
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = std::sync::Arc::clone(&seen);
    let calls = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let gone_calls = std::sync::Arc::clone(&calls);
    s.command(Command::Subscribe(
        Some(p),
        Box::new(move |e| {
            log.lock().unwrap().push(e.1.clone());
            true
        }),
    ));
    s.command(Command::Subscribe(
        None,
        Box::new(move |_| {
            gone_calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            false
        }),
    ));
    let k = s.fetch(p, get("http://h.test/10"), Sink::Memory);
    s.command(Command::RemovePeer(p));
    assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 1, "asked once, then forgotten");
    let names = event_names(&seen.lock().unwrap());
    assert_eq!(names.last(), Some(&"Cancelled"), "the peer's subscriber saw its end: {names:?}");
    s.finish_all();
    assert_eq!(s.outcomes(k).len(), 1);
}

#[test]
fn the_event_streams_end_once_the_hub_is_finished() {
    let mut s = Scene::new(cfg(1));
    let p = s.peer(RequestPriority::Low);
    let (tx, rx) = std::sync::mpsc::channel();
    s.command(Command::Subscribe(Some(p), Box::new(move |e| tx.send(e.clone()).is_ok())));
    s.fetch(p, get("http://h.test/1000"), Sink::Memory);
    s.command(Command::Shutdown);
    assert!(!s.hub.is_finished());
    assert!(rx.try_recv().is_ok(), "events flow while the transfer is out");
    s.finish_all();
    assert!(s.hub.is_finished());
    let rest: Vec<_> = rx.try_iter().collect();
    assert!(rest.iter().any(|(_, e)| e.is_terminal()), "the end was published: {rest:?}");
    assert_eq!(rx.try_recv(), Err(std::sync::mpsc::TryRecvError::Disconnected), "then the stream ends");
}

#[test]
fn completed_files_wait_for_the_disk_in_their_settlement_together_not_in_their_transfer() {
    let dir = fresh_dir("hub-sync");
    let mut s = Scene::new(cfg(2));
    let p = s.peer(RequestPriority::Low);
    let dest = |k: usize| dir.join(format!("f{k}"));
    let ks: Vec<usize> =
        (0..3).map(|k| s.fetch(p, get(&format!("http://h.test/{}", 5000 + k)), Sink::File(dest(k)))).collect();
    let resumable = s.fetch(p, get("http://h.test/7000"), Sink::Resumable(dir.join("r")));
    let memory = s.fetch(p, get("http://h.test/100"), Sink::Memory);
    s.finish_all();
    assert_eq!(s.hub.transfers_out(), 0, "every transfer ended: none waited for the disk");
    assert_eq!(s.syncing.len(), 4, "the three files and the partial file wait for the disk");
    assert_eq!(s.outcomes(memory).len(), 1, "a memory download settles at once");
    for &k in &ks {
        assert!(s.outcomes(k).is_empty() && !dest(k).exists(), "not in place before it is on disk");
        assert!(event_names(&s.events_for(s.id(k))).ends_with(&["Completed"]), "the event is out: every byte arrived");
    }
    let alone = s.sync();
    if cfg!(target_os = "linux") {
        assert_eq!(alone, 0, "one syncfs put every file on disk: none is synced alone");
    }
    for (k, size) in ks.iter().zip(5000..) {
        assert_eq!(s.outcomes(*k).len(), 1, "settled once");
        assert_eq!(std::fs::read(dest(*k)).unwrap(), resource(size), "in place, byte-exact");
    }
    assert!(s.outcomes(resumable)[0].is_ok());
    assert_eq!(std::fs::read(dir.join("r")).unwrap(), resource(7000));
    let left: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(left.len(), 4, "no temporary or partial file left: {left:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_file_whose_name_has_the_most_bytes_allowed_still_gets_a_temporary_file() {
    let dir = fresh_dir("hub-long");
    let dest = dir.join("\u{e9}".repeat(127)); // 254 bytes
    let mut s = Scene::new(cfg(1));
    let p = s.peer(RequestPriority::Low);
    let k = s.fetch(p, get("http://h.test/3000"), Sink::File(dest.clone()));
    s.finish_all();
    s.sync();
    let outcome = s.outcomes(k).pop().expect("settled");
    assert!(outcome.is_ok(), "{outcome:?}");
    assert_eq!(std::fs::read(&dest).unwrap(), resource(3000));
    let _ = std::fs::remove_dir_all(&dir);
}
