//! Rule 9: cancellation of a request, a group (epoch), a peer, everything.

use weir_tests::*;

fn cancelled(id: RequestId, reason: CancelReason, bytes: u64) -> DownloaderEvent {
    DownloaderEvent::RequestCancelled { request_id: id, reason, bytes_transferred: bytes }
}

#[test]
fn cancelling_a_queued_request_ends_it_at_once() {
    let mut sim = Sim::new(quiet(1));
    let p = sim.peer(RequestPriority::Low);
    let _b = sim.blocker(p);
    let q = sim.enq(p, get("http://a.example/q"));
    sim.drain();
    let o = sim.cancel(q);
    assert_eq!(o, vec![Output::Event(p, cancelled(q, CancelReason::Explicit, 0))]);
    assert_eq!(sim.s.queued(), 0);
}

#[test]
fn cancelling_a_running_request_aborts_it_and_frees_its_slot() {
    let mut sim = Sim::new(quiet(1));
    let p = sim.peer(RequestPriority::Low);
    let r = sim.enq(p, get("http://a.example/r"));
    let next = sim.enq(p, get("http://a.example/n"));
    sim.drain();
    sim.bytes(r, 42);
    sim.drain();
    let o = sim.cancel(r);
    assert_eq!(o[..2], [Output::Abort(r), Output::Event(p, cancelled(r, CancelReason::Explicit, 42))]);
    assert_eq!(starts(&o), vec![next]);
    // Cancelling again and late reports change nothing.
    sim.s.cancel(r, sim.now);
    sim.bytes(r, 5);
    sim.s.on_complete(r, sim.now);
    sim.s.on_failed(r, NetError::Timeout, sim.now);
    sim.s.set_priority(r, RequestPriority::High, sim.now);
    assert!(sim.drain().is_empty());
    let _ = sim.terminal(r);
}

#[test]
fn cancelling_during_backoff_ends_it_and_disarms_the_timer() {
    let mut sim = Sim::new(quiet(1));
    let p = sim.peer(RequestPriority::Low);
    let r = sim.enq(p, get("http://a.example/r"));
    sim.drain();
    sim.bytes(r, 9);
    sim.fail(r, NetError::Reset("x".into()));
    assert!(sim.s.poll_timeout().is_some());
    let o = sim.cancel(r);
    assert_eq!(o, vec![Output::Event(p, cancelled(r, CancelReason::Explicit, 9))]);
    assert_eq!(sim.s.poll_timeout(), None);
    assert_eq!(sim.s.queued(), 0);
}

#[test]
fn cancelling_a_group_ends_its_requests_in_id_order() {
    let mut sim = Sim::new(quiet(2));
    let p = sim.peer(RequestPriority::Low);
    let g = sim.s.new_group(p);
    let r1 = sim.enq(p, get("http://a.example/1").group(g));
    let other = sim.enq(p, get("http://a.example/x"));
    let r2 = sim.enq(p, get("http://a.example/2").group(g));
    let r3 = sim.enq(p, get("http://a.example/3").group(g));
    let o = sim.drain();
    assert_eq!(starts(&o), vec![r1, other]);
    sim.bytes(r1, 7);
    sim.fail(other, NetError::Reset("x".into())); // frees a slot: r2 starts
    sim.drain();
    sim.s.cancel_group(g, sim.now);
    let o = sim.drain();
    assert_eq!(
        o[..5],
        [
            Output::Abort(r1),
            Output::Event(p, cancelled(r1, CancelReason::EpochCancel, 7)),
            Output::Abort(r2),
            Output::Event(p, cancelled(r2, CancelReason::EpochCancel, 0)),
            Output::Event(p, cancelled(r3, CancelReason::EpochCancel, 0)),
        ]
    );
    assert_eq!(sim.s.footprint().groups, 0, "a cancelled group frees its memory");
    // Other requests are untouched; a second cancel does nothing.
    sim.s.cancel_group(g, sim.now);
    assert!(events(&sim.drain()).iter().all(|e| e.request_id() == other));
}

#[test]
fn enqueue_into_a_cancelled_group_ends_before_start_even_when_full() {
    let mut sim = Sim::new(Config { max_queued: Some(1), ..quiet(1) });
    let p = sim.peer(RequestPriority::Low);
    let g = sim.s.new_group(p);
    sim.s.cancel_group(g, sim.now);
    let _fill = sim.enq(p, get("http://a.example/fill"));
    let late = sim.enq(p, get("http://a.example/late").group(g));
    let o = sim.drain();
    let ev = sim.events_for(late);
    assert_eq!(ev.len(), 2);
    assert!(matches!(ev[0], DownloaderEvent::RequestEnqueued { .. }));
    assert_eq!(ev[1], cancelled(late, CancelReason::BeforeStart, 0));
    assert!(!starts(&o).contains(&late));
}

#[test]
fn thousands_of_seeks_do_not_grow_memory() {
    let mut sim = Sim::new(quiet(2));
    let p = sim.peer(RequestPriority::High);
    let mut old = Vec::new();
    for i in 0..5000 {
        let g = sim.s.new_group(p);
        sim.enq(p, get(&format!("http://a.example/{i}")).group(g));
        sim.drain();
        sim.s.cancel_group(g, sim.now);
        sim.drain();
        old.push(g);
    }
    assert_eq!(sim.s.footprint(), Footprint { peers: 1, ..Footprint::default() });
    // Every old epoch still refuses new work, and no new group aliases one.
    let fresh = sim.s.new_group(p);
    assert!(!old.contains(&fresh));
    let r = sim.enq(p, get("http://a.example/again").group(old[17]));
    sim.drain();
    assert_eq!(sim.terminal(r), cancelled(r, CancelReason::BeforeStart, 0));
    let r = sim.enq(p, get("http://a.example/fresh").group(fresh));
    assert_eq!(starts(&sim.drain()), vec![r]);
}

#[test]
fn removing_a_peer_cancels_its_requests_and_kills_its_ids() {
    let mut sim = Sim::new(quiet(1));
    let a = sim.peer(RequestPriority::Low);
    let b = sim.peer(RequestPriority::Low);
    let g = sim.s.new_group(a);
    let a1 = sim.enq(a, get("http://a.example/1"));
    let b1 = sim.enq(b, get("http://a.example/b"));
    let a2 = sim.enq(a, get("http://a.example/2").group(g));
    sim.drain();
    sim.bytes(a1, 3);
    sim.drain();
    sim.s.remove_peer(a, sim.now);
    let o = sim.drain();
    assert_eq!(
        o,
        vec![
            Output::Abort(a1),
            Output::Event(a, cancelled(a1, CancelReason::PeerCancel, 3)),
            Output::Event(a, cancelled(a2, CancelReason::PeerCancel, 0)),
            Output::Start(cmds(&o)[0].clone()),
            Output::Event(b, DownloaderEvent::RequestStarted { request_id: b1, wait_in_queue: ms(0), attempt: 1 }),
        ]
    );
    assert_eq!(cmds(&o)[0].id, b1);
    // The dead peer and its group are refused; a new peer never aliases it.
    assert_eq!(sim.s.enqueue(a, get("http://a.example/3"), sim.now), Err(EnqueueError::UnknownPeer));
    assert_eq!(sim.s.enqueue(a, get("http://a.example/3").group(g), sim.now), Err(EnqueueError::UnknownPeer));
    let c = sim.peer(RequestPriority::Low);
    assert_ne!(c, a);
    assert_eq!(sim.s.peer_priority(a), None);
    assert_eq!(sim.s.enqueue(c, get("http://a.example/3").group(g), sim.now), Err(EnqueueError::UnknownGroup));
    sim.s.remove_peer(a, sim.now); // again: nothing
    sim.s.set_peer_priority(a, RequestPriority::High, sim.now);
    assert!(sim.drain().is_empty());
    assert_eq!(sim.s.footprint().groups, 0);
}

#[test]
fn shutdown_cancels_everything_in_id_order_and_refuses_enqueue() {
    let mut sim = Sim::new(quiet(1));
    let a = sim.peer(RequestPriority::Low);
    let b = sim.peer(RequestPriority::High);
    let a1 = sim.enq(a, get("http://a.example/1"));
    let b1 = sim.enq(b, get("http://a.example/b"));
    let a2 = sim.enq(a, get("http://a.example/2"));
    sim.drain();
    sim.fail(b1, NetError::Reset("x".into())); // b1 backs off, a1 runs
    sim.drain();
    sim.s.shutdown(sim.now);
    let o = sim.drain();
    assert_eq!(
        o,
        vec![
            Output::Abort(a1),
            Output::Event(a, cancelled(a1, CancelReason::DownloaderShutdown, 0)),
            Output::Event(b, cancelled(b1, CancelReason::DownloaderShutdown, 0)),
            Output::Event(a, cancelled(a2, CancelReason::DownloaderShutdown, 0)),
        ]
    );
    assert_eq!(sim.s.enqueue(a, get("http://a.example/3"), sim.now), Err(EnqueueError::ShutDown));
    assert_eq!(sim.s.poll_timeout(), None);
    assert_eq!((sim.s.in_flight(), sim.s.queued()), (0, 0));
    assert!(sim.s.is_shut_down());
}
