//! Bad input gets a clear error, never a panic, a hang or lost data.

use std::num::NonZeroU64;
use std::time::Duration;
use weir_tests::*;

#[test]
fn config_nonsense_is_refused_with_a_clear_error() {
    let bad = [
        (Config { max_concurrent: 0, ..Config::default() }, ConfigError::ZeroConcurrency),
        (Config { max_per_host: Some(0), ..Config::default() }, ConfigError::ZeroLimit("max_per_host")),
        (Config { max_low_in_flight: Some(0), ..Config::default() }, ConfigError::ZeroLimit("max_low_in_flight")),
        (Config { max_queued: Some(0), ..Config::default() }, ConfigError::ZeroLimit("max_queued")),
        (Config { idle_timeout: Some(Duration::ZERO), ..Config::default() }, ConfigError::ZeroTimeout("idle_timeout")),
    ];
    for (cfg, want) in bad {
        assert_eq!(Scheduler::try_new(cfg).err(), Some(want));
    }
    let msg = std::panic::catch_unwind(|| Scheduler::new(Config { max_concurrent: 0, ..Config::default() }))
        .err()
        .and_then(|e| e.downcast_ref::<String>().cloned())
        .expect("new panics with a message");
    assert!(msg.contains("max_concurrent must be at least 1"), "{msg}");
    assert!(Scheduler::try_new(Config::default()).is_ok());
}

#[test]
fn enqueue_errors_come_in_the_documented_order_and_use_no_id() {
    let mut sim = Sim::new(Config { max_queued: Some(1), ..quiet(1) });
    let p = sim.peer(RequestPriority::Low);
    let q = sim.peer(RequestPriority::Low);
    let g_of_q = sim.s.new_group(q);
    let first = sim.enq(p, get("http://a.example/1"));
    let bad_scheme = get("ftp://a.example/x");
    let e = |sim: &mut Sim, peer, r: Request| sim.s.enqueue(peer, r, sim.now).unwrap_err();
    // Queue is full (1 waiting) and the request is bad: InvalidRequest wins over QueueFull.
    assert!(matches!(e(&mut sim, p, bad_scheme.clone()), EnqueueError::InvalidRequest(m) if m.contains("ftp")));
    // A group of another peer wins over InvalidRequest.
    assert_eq!(e(&mut sim, p, bad_scheme.clone().group(g_of_q)), EnqueueError::UnknownGroup);
    assert_eq!(e(&mut sim, p, get("http://a.example/2")), EnqueueError::QueueFull);
    sim.s.remove_peer(q, sim.now);
    assert_eq!(e(&mut sim, q, bad_scheme.clone()), EnqueueError::UnknownPeer);
    sim.drain();
    let second = sim.enq(p, get("http://a.example/2"));
    assert_eq!(second.seq(), first.seq() + 1, "refused enqueues used no id");
    sim.s.shutdown(sim.now);
    assert_eq!(e(&mut sim, q, bad_scheme), EnqueueError::ShutDown);
    assert!(sim.log.iter().all(|o| match o {
        Output::Event(_, ev) => ev.request_id() == first || ev.request_id() == second,
        _ => true,
    }));
}

#[test]
fn invalid_requests_are_explained() {
    let mut sim = Sim::new(quiet(1));
    let p = sim.peer(RequestPriority::Low);
    let cases = [
        (Request::get(url("file:///etc/passwd")), "scheme"),
        (Request::get(url("mailto:someone@example.org")), "scheme"),
        (Request::get(url("http://a.example/x")).range(10, Some(9)), "range"),
    ];
    for (r, word) in cases {
        match sim.s.enqueue(p, r, sim.now) {
            Err(EnqueueError::InvalidRequest(m)) => assert!(m.contains(word), "{m}"),
            other => panic!("{other:?}"),
        }
    }
    // A one-byte range is fine.
    sim.enq(p, get("http://a.example/x").range(10, Some(10)));
    assert!(EnqueueError::InvalidRequest("x".into()).to_string().contains("invalid request"));
}

#[test]
fn unknown_and_foreign_ids_are_ignored() {
    let mut sim = Sim::new(quiet(1));
    let p = sim.peer(RequestPriority::Low);
    let r = sim.enq(p, get("http://a.example/r"));
    sim.drain();
    let forged = RequestId::new(NonZeroU64::new(r.get() + (1 << 30)).expect("non-zero"));
    let other = RequestId::new(NonZeroU64::new(12345).expect("non-zero"));
    for id in [forged, other] {
        sim.s.cancel(id, sim.now);
        sim.s.on_bytes(id, 1, sim.now);
        sim.s.on_complete(id, sim.now);
        sim.s.on_failed(id, NetError::Timeout, sim.now);
        sim.s.set_priority(id, RequestPriority::High, sim.now);
    }
    assert!(sim.drain().is_empty());
    assert_eq!(sim.s.in_flight(), 1);
}

#[test]
fn time_going_backwards_is_clamped() {
    let mut sim = Sim::new(Config { soft_timeout: Some(ms(100)), ..quiet(1) });
    let p = sim.peer(RequestPriority::Low);
    sim.now += ms(1000);
    let r = sim.enq(p, get("http://a.example/r"));
    sim.drain();
    let deadline = sim.s.poll_timeout().expect("soft timeout armed");
    assert_eq!(deadline, sim.now + ms(100));
    // Reports from the past count as "now".
    let past = sim.t0;
    sim.s.on_bytes(r, 10, past);
    sim.s.handle_timeout(past);
    let o = sim.drain();
    assert_eq!(events(&o), vec![DownloaderEvent::FirstByte { request_id: r, latency: ms(0) }]);
    sim.now += ms(200);
    sim.s.handle_timeout(sim.now);
    sim.drain();
    sim.s.handle_timeout(sim.now); // an extra call is a no-op
    sim.s.handle_timeout(past);
    assert!(sim.drain().is_empty());
    // A deadline is never earlier than the last now.
    let late = sim.enq(p, get("http://a.example/late"));
    sim.drain();
    sim.s.on_complete(r, sim.now);
    sim.drain();
    sim.now += ms(500);
    sim.s.on_bytes(late, 1, sim.now); // time moves on without handle_timeout
    assert!(sim.s.poll_timeout().expect("armed") >= sim.now);
}

#[test]
fn stale_peer_ids_do_not_alias_after_slot_reuse() {
    let mut sim = Sim::new(quiet(1));
    let a = sim.peer(RequestPriority::Low);
    sim.s.remove_peer(a, sim.now);
    let b = sim.peer(RequestPriority::High); // reuses a's slot
    assert_ne!(a, b);
    assert_eq!(sim.s.enqueue(a, get("http://a.example/x"), sim.now), Err(EnqueueError::UnknownPeer));
    let dead_group = sim.s.new_group(a);
    assert_eq!(sim.s.enqueue(b, get("http://a.example/x").group(dead_group), sim.now), Err(EnqueueError::UnknownGroup));
    sim.s.cancel_group(dead_group, sim.now);
    sim.s.set_peer_priority(a, RequestPriority::Low, sim.now);
    assert_eq!(sim.s.peer_priority(b), Some(RequestPriority::High));
    let r = sim.enq(b, get("http://a.example/x"));
    assert_eq!(starts(&sim.drain()), vec![r]);
}

#[test]
fn request_ids_grow_and_are_never_reused() {
    let mut sim = Sim::new(quiet(1));
    let p = sim.peer(RequestPriority::Low);
    let mut last: Option<RequestId> = None;
    for i in 0..100 {
        let r = sim.enq(p, get(&format!("http://a.example/{i}")));
        sim.drain();
        sim.complete(r);
        if let Some(l) = last {
            assert!(r > l && r.seq() == l.seq() + 1);
        }
        last = Some(r);
    }
    assert_eq!(sim.s.footprint().requests, 0);
}

#[test]
fn errors_display_clearly() {
    assert_eq!(
        NetError::Status { status: 503, retry_after: Some(ms(1500)) }.to_string(),
        "HTTP status 503 (retry after 1.500 s)"
    );
    assert_eq!(EnqueueError::QueueFull.to_string(), "the queue is full");
    assert!(ConfigError::ZeroTimeout("hard_timeout").to_string().contains("hard_timeout"));
}

#[test]
fn shrink_to_fit_keeps_stale_ids_harmless() {
    let mut sim = Sim::new(quiet(2));
    let p = sim.peer(RequestPriority::Low);
    let old: Vec<_> = (0..50).map(|i| sim.enq(p, get(&format!("http://a.example/{i}")))).collect();
    sim.drain();
    for id in &old {
        sim.s.cancel(*id, sim.now);
    }
    sim.drain();
    sim.s.shrink_to_fit();
    let fresh = sim.enq(p, get("http://a.example/fresh"));
    assert_eq!(starts(&sim.drain()), vec![fresh]);
    for id in &old {
        sim.s.cancel(*id, sim.now);
        sim.s.on_complete(*id, sim.now);
    }
    assert!(sim.drain().is_empty(), "old ids name nothing, even where the fresh request reuses their slot");
    assert_eq!(sim.s.in_flight(), 1);
}
