//! Rules 1-3: slot order, fairness inside a slot, limits.

use weir_tests::*;

#[test]
fn enqueue_emits_enqueued_then_start_then_started() {
    let mut sim = Sim::new(quiet(2));
    let p = sim.peer(RequestPriority::High);
    let id = sim.enq(p, high("http://a.example/x"));
    let o = sim.drain();
    assert_eq!(
        o,
        vec![
            Output::Event(
                p,
                DownloaderEvent::RequestEnqueued {
                    request_id: id,
                    url: url("http://a.example/x"),
                    method: RequestMethod::Get,
                    priority: RequestPriority::High,
                }
            ),
            Output::Start(FetchCmd {
                id,
                peer: p,
                url: url("http://a.example/x"),
                method: RequestMethod::Get,
                range: None,
                attempt: 1
            }),
            Output::Event(p, DownloaderEvent::RequestStarted { request_id: id, wait_in_queue: ms(0), attempt: 1 }),
        ]
    );
}

#[test]
fn slots_are_served_highhigh_highlow_lowhigh_lowlow() {
    let mut sim = Sim::new(quiet(1));
    let hp = sim.peer(RequestPriority::High);
    let lp = sim.peer(RequestPriority::Low);
    let b = sim.blocker(hp);
    let ll = sim.enq(lp, get("http://l.example/ll"));
    let lh = sim.enq(lp, high("http://l.example/lh"));
    let hl = sim.enq(hp, get("http://h.example/hl"));
    let hh = sim.enq(hp, high("http://h.example/hh"));
    sim.drain();
    let order = sim.serve_in_turn(b, 4);
    assert_eq!(order, vec![hh, hl, lh, ll]);
}

#[test]
fn starts_are_lazy_so_a_batch_is_scheduled_together() {
    let mut sim = Sim::new(quiet(1));
    let p = sim.peer(RequestPriority::Low);
    let low = sim.enq(p, get("http://a.example/low"));
    let hi = sim.enq(p, high("http://a.example/high"));
    assert_eq!(starts(&sim.drain()), vec![hi]);
    assert_eq!(starts(&sim.complete(hi)), vec![low]);
}

#[test]
fn peers_in_one_slot_take_turns_and_each_is_fifo() {
    let mut sim = Sim::new(quiet(1));
    let a = sim.peer(RequestPriority::Low);
    let b = sim.peer(RequestPriority::Low);
    let c = sim.peer(RequestPriority::Low);
    let blk = sim.blocker(a);
    let a1 = sim.enq(a, get("http://x.example/a1"));
    let a2 = sim.enq(a, get("http://x.example/a2"));
    let a3 = sim.enq(a, get("http://x.example/a3"));
    let b1 = sim.enq(b, get("http://x.example/b1"));
    let c1 = sim.enq(c, get("http://x.example/c1"));
    let b2 = sim.enq(b, get("http://x.example/b2"));
    sim.drain();
    let order = sim.serve_in_turn(blk, 6);
    // The blocker was peer a's turn, so b is next: b, c, a, b, a, a.
    assert_eq!(order, vec![b1, c1, a1, b2, a2, a3]);
}

#[test]
fn a_peer_with_ten_thousand_queued_does_not_starve_another() {
    let mut sim = Sim::new(quiet(2));
    let hog = sim.peer(RequestPriority::Low);
    let other = sim.peer(RequestPriority::Low);
    let hogs: Vec<_> = (0..10_000).map(|i| sim.enq(hog, get(&format!("http://hog.example/{i}")))).collect();
    let o = sim.drain();
    assert_eq!(starts(&o), hogs[..2].to_vec());
    let mine: Vec<_> = (0..3).map(|i| sim.enq(other, get(&format!("http://other.example/{i}")))).collect();
    // Every completion frees one slot; the two peers alternate.
    let mut order = Vec::new();
    let mut running = hogs[..2].to_vec();
    for _ in 0..8 {
        let done = running.remove(0);
        let s = starts(&sim.complete(done));
        assert_eq!(s.len(), 1);
        running.push(s[0]);
        order.push(s[0]);
    }
    assert_eq!(order, vec![mine[0], hogs[2], mine[1], hogs[3], mine[2], hogs[4], hogs[5], hogs[6]]);
    assert_eq!(sim.s.queued(), 10_000 - 7);
}

#[test]
fn a_full_host_does_not_block_requests_to_other_hosts() {
    let cfg = Config { max_per_host: Some(1), ..quiet(3) };
    let mut sim = Sim::new(cfg);
    let p = sim.peer(RequestPriority::Low);
    let a1 = sim.enq(p, get("http://a.example/1"));
    let a2 = sim.enq(p, get("http://a.example/2"));
    let a3 = sim.enq(p, get("http://a.example/3"));
    let b1 = sim.enq(p, get("http://b.example/1"));
    let a_other_port = sim.enq(p, get("http://a.example:8080/1"));
    let o = sim.drain();
    assert_eq!(starts(&o), vec![a1, b1, a_other_port], "host a:80 is full after a1; b and a:8080 are other hosts");
    assert_eq!(sim.s.in_flight(), 3);
    assert_eq!(starts(&sim.complete(b1)), Vec::<RequestId>::new(), "only host a waits, and it is full");
    assert_eq!(starts(&sim.complete(a1)), vec![a2]);
    assert_eq!(starts(&sim.complete(a2)), vec![a3]);
}

#[test]
fn default_ports_are_part_of_the_host_key() {
    let cfg = Config { max_per_host: Some(1), ..quiet(3) };
    let mut sim = Sim::new(cfg);
    let p = sim.peer(RequestPriority::Low);
    let x = sim.enq(p, get("http://a.example/1"));
    let y = sim.enq(p, get("http://A.EXAMPLE:80/2"));
    let z = sim.enq(p, get("https://a.example/3"));
    let o = sim.drain();
    assert_eq!(starts(&o), vec![x, z], "http://a.example and http://A.EXAMPLE:80 are one host; https is :443");
    assert_eq!(starts(&sim.complete(x)), vec![y]);
}

#[test]
fn the_low_reserve_keeps_slots_free_for_high() {
    let cfg = Config { max_low_in_flight: Some(2), ..quiet(3) };
    let mut sim = Sim::new(cfg);
    let p = sim.peer(RequestPriority::High);
    let lows: Vec<_> = (0..4).map(|i| sim.enq(p, get(&format!("http://a.example/{i}")))).collect();
    let o = sim.drain();
    assert_eq!(starts(&o), lows[..2].to_vec(), "two Low at most");
    assert_eq!(sim.s.in_flight(), 2);
    let h = sim.enq(p, high("http://a.example/h"));
    assert_eq!(starts(&sim.drain()), vec![h], "the free slot goes to High demand at once");
    assert_eq!(starts(&sim.complete(h)), Vec::<RequestId>::new(), "still only two Low");
    assert_eq!(starts(&sim.complete(lows[0])), vec![lows[2]]);
}

#[test]
fn max_concurrent_is_never_exceeded_and_counts_add_up() {
    let mut sim = Sim::new(quiet(3));
    let p = sim.peer(RequestPriority::Low);
    let ids: Vec<_> = (0..10).map(|i| sim.enq(p, get(&format!("http://a.example/{i}")))).collect();
    assert_eq!(sim.s.queued(), 10, "nothing starts before poll_output");
    assert_eq!(starts(&sim.drain()), ids[..3].to_vec());
    assert_eq!((sim.s.in_flight(), sim.s.queued()), (3, 7));
    assert_eq!(starts(&sim.complete(ids[1])), vec![ids[3]]);
    assert_eq!((sim.s.in_flight(), sim.s.queued()), (3, 6));
}

#[test]
fn a_full_queue_refuses_without_dropping_anything() {
    let cfg = Config { max_queued: Some(2), ..quiet(1) };
    let mut sim = Sim::new(cfg);
    let p = sim.peer(RequestPriority::Low);
    let a = sim.enq(p, get("http://a.example/a"));
    let b = sim.enq(p, get("http://a.example/b"));
    // A burst before polling counts in full.
    assert_eq!(sim.s.enqueue(p, get("http://a.example/c"), sim.now), Err(EnqueueError::QueueFull));
    assert_eq!(starts(&sim.drain()), vec![a]);
    let c = sim.enq(p, get("http://a.example/c"));
    assert_eq!(sim.s.enqueue(p, get("http://a.example/d"), sim.now), Err(EnqueueError::QueueFull));
    sim.complete(a);
    sim.complete(b);
    sim.complete(c);
    for id in [a, b, c] {
        assert!(matches!(sim.terminal(id), DownloaderEvent::RequestCompleted { .. }));
    }
    assert_eq!(sim.checker.live(), 0);
}
