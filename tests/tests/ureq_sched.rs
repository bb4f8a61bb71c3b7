//! weir-ureq end to end: the scheduler's decisions hold over real HTTP.

use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use weir_tests::server::{content, fnv, FaultServer};
use weir_tests::*;
use weir_ureq::{Downloader, Event, FetchError, Sink};

const LIMIT: Duration = Duration::from_secs(30);

fn cfg(n: usize) -> Config {
    Config {
        max_concurrent: n,
        soft_timeout: None,
        idle_timeout: Some(Duration::from_secs(5)),
        retry: RetryPolicy { max_retries: 2, base: ms(20), cap: ms(200), jitter: false, ..RetryPolicy::default() },
        ..Config::default()
    }
}

/// Collect events until `n` terminal ones arrived.
fn until_terminals(rx: &Receiver<Event>, n: usize) -> Vec<DownloaderEvent> {
    let mut v = Vec::new();
    let mut seen = 0;
    while seen < n {
        let (_, e) = rx.recv_timeout(LIMIT).expect("events arrive");
        seen += usize::from(e.is_terminal());
        v.push(e);
    }
    v
}

/// Skip events until one matches.
fn wait_for(rx: &Receiver<Event>, f: impl Fn(&DownloaderEvent) -> bool) -> DownloaderEvent {
    for _ in 0..10_000 {
        let (_, e) = rx.recv_timeout(LIMIT).expect("events arrive");
        if f(&e) {
            return e;
        }
    }
    panic!("the awaited event never came");
}

fn completed_order(ev: &[DownloaderEvent]) -> Vec<RequestId> {
    ev.iter()
        .filter(|e| matches!(e, DownloaderEvent::RequestCompleted { .. }))
        .map(DownloaderEvent::request_id)
        .collect()
}

#[test]
fn with_one_slot_requests_complete_in_priority_order() {
    let server = FaultServer::start();
    let dl = Downloader::new(cfg(1));
    let all = dl.subscribe();
    let peer = dl.peer(RequestPriority::Low);
    let blocker = peer.fetch(get(&server.url("/drip/3000/1000/50")), Sink::Memory).unwrap();
    wait_for(&all, |e| matches!(e, DownloaderEvent::RequestStarted { .. })); // the blocker holds the only slot
    let l1 = peer.fetch(get(&server.url("/file/100")), Sink::Memory).unwrap();
    let l2 = peer.fetch(get(&server.url("/file/200")), Sink::Memory).unwrap();
    let h = peer.fetch(high(&server.url("/file/300")), Sink::Memory).unwrap();
    let ids = [blocker.id(), h.id(), l1.id(), l2.id()];
    let ev = until_terminals(&all, 4);
    assert_eq!(completed_order(&ev), ids, "the demand request overtook the queued prefetch");
    for d in [blocker, l1, l2, h] {
        assert!(d.wait().is_ok());
    }
}

#[test]
fn with_preemption_demand_starts_at_once_and_the_victim_resumes_byte_exact() {
    let server = FaultServer::start();
    let dl = Downloader::new(Config { preempt_low: true, ..cfg(1) });
    let all = dl.subscribe();
    let peer = dl.peer(RequestPriority::High);
    let low = peer.fetch(get(&server.url("/drip/40000/2000/10")), Sink::Memory).unwrap();
    wait_for(&all, |e| matches!(e, DownloaderEvent::FirstByte { .. })); // the prefetch is delivering
    let t = Instant::now();
    let demand = peer.fetch(high(&server.url("/file/5000")), Sink::Memory).unwrap();
    let demand_body = demand.wait().expect("demand completed").body.unwrap();
    let demand_time = t.elapsed();
    let low_resp = low.wait().expect("the prefetch completed after resuming");
    assert_eq!(demand_body, content(5000, 5000));
    assert_eq!(fnv(low_resp.body.as_deref().unwrap()), fnv(&content(40_000, 40_000)), "no byte lost or doubled");
    assert!(demand_time < Duration::from_secs(2), "demand waited {demand_time:?}: the drip alone takes ~200 ms more");
    let ev = until_terminals(&all, 2);
    assert!(ev.iter().any(|e| matches!(e, DownloaderEvent::RequestPreempted { .. })), "{ev:?}");
    let resumed = server.seen().into_iter().filter(|s| s.path.starts_with("/drip")).nth(1).expect("a second request");
    assert!(resumed.range.is_some_and(|r| r != "bytes=0-"), "the victim resumed from its delivered bytes");
}

#[test]
fn groups_cancel_running_and_queued_and_refuse_late_requests() {
    let server = FaultServer::start();
    let dl = Downloader::new(cfg(1));
    let peer = dl.peer(RequestPriority::High);
    let g = peer.new_group();
    let running = peer.fetch(get(&server.url("/drip/100000/1000/20")).group(g), Sink::Memory).unwrap();
    let queued = peer.fetch(get(&server.url("/file/10")).group(g), Sink::Memory).unwrap();
    std::thread::sleep(ms(50));
    peer.cancel_group(g);
    assert_eq!(running.wait(), Err(FetchError::Cancelled(CancelReason::EpochCancel)));
    assert_eq!(queued.wait(), Err(FetchError::Cancelled(CancelReason::EpochCancel)));
    let late = peer.fetch(get(&server.url("/file/10")).group(g), Sink::Memory).unwrap();
    assert_eq!(late.wait(), Err(FetchError::Cancelled(CancelReason::BeforeStart)));
    assert_eq!(server.hits("/file/10"), 0);
}

#[test]
fn dropping_a_download_or_a_peer_cancels_with_the_right_reason() {
    let server = FaultServer::start();
    let dl = Downloader::new(cfg(2));
    let all = dl.subscribe();
    let peer = dl.peer(RequestPriority::Low);
    let d = peer.fetch(get(&server.url("/drip/100000/1000/20")), Sink::Memory).unwrap();
    let id = d.id();
    wait_for(&all, |e| matches!(e, DownloaderEvent::FirstByte { request_id, .. } if *request_id == id));
    drop(d);
    let e = wait_for(&all, |e| e.request_id() == id && e.is_terminal());
    assert!(
        matches!(e, DownloaderEvent::RequestCancelled { reason: CancelReason::Explicit, bytes_transferred, .. } if bytes_transferred > 0),
        "{e:?}"
    );

    let other = dl.peer(RequestPriority::Low);
    let d2 = other.fetch(get(&server.url("/drip/100000/1000/20")), Sink::Memory).unwrap();
    let id2 = d2.id();
    d2.detach();
    wait_for(&all, |e| matches!(e, DownloaderEvent::FirstByte { request_id, .. } if *request_id == id2));
    drop(other);
    let e = wait_for(&all, |e| e.request_id() == id2 && e.is_terminal());
    assert!(matches!(e, DownloaderEvent::RequestCancelled { reason: CancelReason::PeerCancel, .. }), "{e:?}");
}

#[test]
fn batch_returns_outcomes_in_input_order_and_execute_is_blocking() {
    let server = FaultServer::start();
    let dl = Downloader::new(cfg(3));
    let peer = dl.peer(RequestPriority::High);
    let reqs = vec![
        get(&server.url("/file/30")),
        get(&server.url("/missing")),
        get(&server.url("/file/10")),
        get(&server.url("/drip/50/10/5")),
    ];
    let out = peer.batch(reqs);
    assert_eq!(out.len(), 4);
    assert_eq!(out[0].as_ref().unwrap().bytes, 30);
    assert_eq!(out[1], Err(FetchError::Failed(NetError::Status { status: 404, retry_after: None })));
    assert_eq!(out[2].as_ref().unwrap().bytes, 10);
    assert_eq!(out[3].as_ref().unwrap().bytes, 50);
    assert_eq!(peer.execute(get(&server.url("/file/7"))).unwrap().body, Some(content(7, 7)));
}

#[test]
fn per_host_limits_hold_across_two_loopback_hosts() {
    let a = FaultServer::start_on("127.0.0.1");
    let b = FaultServer::start_on("127.0.0.2");
    let dl = Downloader::new(Config { max_per_host: Some(1), ..cfg(4) });
    let all = dl.subscribe();
    let peer = dl.peer(RequestPriority::Low);
    let downloads: Vec<_> = (0..3)
        .flat_map(|_| [a.url("/drip/600/200/20"), b.url("/drip/600/200/20")])
        .map(|u| peer.fetch(get(&u), Sink::Memory).unwrap())
        .collect();
    let ev = until_terminals(&all, 6);
    // Never two transfers of one host at once: replay starts and ends.
    let host_of: std::collections::HashMap<RequestId, bool> =
        downloads.iter().enumerate().map(|(i, d)| (d.id(), i % 2 == 0)).collect();
    let mut running = [0i32; 2];
    for e in &ev {
        let h = usize::from(host_of[&e.request_id()]);
        match e {
            DownloaderEvent::RequestStarted { .. } => {
                running[h] += 1;
                assert!(running[h] <= 1, "two transfers to one host: {ev:?}");
            }
            e if e.is_terminal() => running[h] -= 1,
            _ => {}
        }
    }
    for d in downloads {
        assert_eq!(d.wait().unwrap().body.unwrap(), content(600, 600));
    }
}
