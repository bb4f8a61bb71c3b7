//! Rules 4-6: priority changes, preemption, ageing.

use weir_tests::*;

fn changed(id: RequestId, from: RequestPriority, to: RequestPriority) -> DownloaderEvent {
    DownloaderEvent::PriorityChanged { request_id: id, from, to }
}

use RequestPriority::{High, Low};

#[test]
fn set_priority_moves_a_queued_request_keeping_enqueue_order() {
    let mut sim = Sim::new(quiet(1));
    let p = sim.peer(Low);
    let b = sim.blocker(p);
    let l1 = sim.enq(p, get("http://a.example/1"));
    let h1 = sim.enq(p, high("http://a.example/h1"));
    let l2 = sim.enq(p, get("http://a.example/2"));
    let h2 = sim.enq(p, high("http://a.example/h2"));
    sim.drain();
    sim.s.set_priority(l1, High, sim.now);
    let o = sim.drain();
    assert_eq!(events(&o), vec![changed(l1, Low, High)]);
    // l1 was enqueued before h1, so it goes first in the High slot.
    let order = sim.serve_in_turn(b, 4);
    assert_eq!(order, vec![l1, h1, h2, l2]);
}

#[test]
fn a_demoted_request_keeps_its_place_among_older_low_ones() {
    let mut sim = Sim::new(quiet(1));
    let p = sim.peer(Low);
    let b = sim.blocker(p);
    let l1 = sim.enq(p, get("http://a.example/1"));
    let h = sim.enq(p, high("http://a.example/h"));
    let l2 = sim.enq(p, get("http://a.example/2"));
    sim.drain();
    sim.s.set_priority(h, Low, sim.now);
    assert_eq!(events(&sim.drain()), vec![changed(h, High, Low)]);
    let order = sim.serve_in_turn(b, 3);
    assert_eq!(order, vec![l1, h, l2]);
}

#[test]
fn setting_the_same_priority_does_nothing() {
    let mut sim = Sim::new(quiet(1));
    let p = sim.peer(Low);
    let _b = sim.blocker(p);
    let l = sim.enq(p, get("http://a.example/1"));
    sim.drain();
    sim.s.set_priority(l, Low, sim.now);
    assert!(sim.drain().is_empty());
}

#[test]
fn set_peer_priority_moves_its_queue_without_events() {
    let mut sim = Sim::new(quiet(1));
    let paused = sim.peer(Low);
    let playing = sim.peer(High);
    let b = sim.blocker(playing);
    let x1 = sim.enq(paused, high("http://a.example/x1"));
    let x2 = sim.enq(paused, get("http://a.example/x2"));
    let y1 = sim.enq(playing, get("http://a.example/y1"));
    sim.drain();
    // The paused track starts playing, the playing one pauses.
    sim.s.set_peer_priority(paused, High, sim.now);
    sim.s.set_peer_priority(playing, Low, sim.now);
    assert!(sim.drain().is_empty(), "no events: request priorities did not change");
    assert_eq!(sim.s.peer_priority(paused), Some(High));
    let order = sim.serve_in_turn(b, 3);
    assert_eq!(order, vec![x1, x2, y1]);
}

#[test]
fn set_priority_of_a_running_request_is_recorded_and_announced() {
    let cfg = Config { max_low_in_flight: Some(1), ..quiet(3) };
    let mut sim = Sim::new(cfg);
    let p = sim.peer(Low);
    let a = sim.enq(p, get("http://a.example/a"));
    let b = sim.enq(p, get("http://a.example/b"));
    assert_eq!(starts(&sim.drain()), vec![a]);
    sim.s.set_priority(a, High, sim.now);
    let o = sim.drain();
    assert_eq!(events(&o)[0], changed(a, Low, High));
    assert_eq!(starts(&o), vec![b], "a no longer counts against the Low reserve");
    assert_eq!(sim.s.priority_of(a), Some(High));
}

#[test]
fn set_priority_during_backoff_takes_effect_when_it_requeues() {
    let mut sim = Sim::new(quiet(1));
    let p = sim.peer(Low);
    let r = sim.enq(p, get("http://a.example/r"));
    sim.drain();
    sim.fail(r, NetError::Connect("refused".into()));
    let other = sim.enq(p, get("http://a.example/other"));
    let hi = sim.enq(p, high("http://a.example/hi"));
    let o = sim.drain();
    assert_eq!(starts(&o), vec![hi]);
    sim.s.set_priority(r, High, sim.now);
    assert_eq!(events(&sim.drain()), vec![changed(r, Low, High)]);
    sim.advance(ms(100)); // the backoff ends; r is High now
    assert_eq!(starts(&sim.complete(hi)), vec![r]);
    assert_eq!(starts(&sim.complete(r)), vec![other]);
}

fn preempt_cfg(n: usize) -> Config {
    Config { preempt_low: true, ..quiet(n) }
}

#[test]
fn preemption_aborts_the_most_recent_low_and_resumes_it_from_its_bytes() {
    let mut sim = Sim::new(preempt_cfg(2));
    let p = sim.peer(High);
    let l1 = sim.enq(p, get("http://a.example/l1"));
    sim.drain();
    sim.advance(ms(10));
    let l2 = sim.enq(p, get("http://a.example/l2"));
    sim.drain();
    sim.bytes(l2, 500);
    sim.advance(ms(10));
    let h = sim.enq(p, high("http://a.example/h"));
    let o = sim.drain();
    assert_eq!(
        o[1..],
        [
            Output::Abort(l2),
            Output::Event(p, DownloaderEvent::RequestPreempted { request_id: l2, bytes_transferred: 500 }),
            Output::Start(FetchCmd {
                id: h,
                peer: p,
                url: url("http://a.example/h"),
                method: RequestMethod::Get,
                range: None,
                attempt: 1
            }),
            Output::Event(p, DownloaderEvent::RequestStarted { request_id: h, wait_in_queue: ms(0), attempt: 1 }),
        ],
        "{o:?}"
    );
    sim.advance(ms(30));
    let o = sim.complete(h);
    let c = cmds(&o);
    assert_eq!(c.len(), 1);
    assert_eq!((c[0].id, c[0].range, c[0].attempt), (l2, Some((500, None)), 2), "resumes where it stopped");
    assert!(events(&o).contains(&DownloaderEvent::RequestStarted {
        request_id: l2,
        wait_in_queue: ms(30),
        attempt: 2
    }));
    sim.bytes(l2, 700);
    sim.complete(l2);
    sim.complete(l1);
    assert!(matches!(sim.terminal(l2), DownloaderEvent::RequestCompleted { bytes_transferred: 1200, .. }));
}

#[test]
fn preemption_needs_a_strictly_worse_slot_and_is_off_by_default() {
    // Same slot: a High request of a Low peer cannot preempt a Low request of a High peer.
    let mut sim = Sim::new(preempt_cfg(1));
    let hp = sim.peer(High);
    let lp = sim.peer(Low);
    let running = sim.enq(hp, get("http://a.example/hl"));
    sim.drain();
    let _waiter = sim.enq(lp, high("http://a.example/lh"));
    assert_eq!(aborts(&sim.drain()), vec![], "HighLow (slot 2) is better than LowHigh (slot 3)");
    let _ = running;

    let mut sim = Sim::new(quiet(1));
    let p = sim.peer(High);
    sim.enq(p, get("http://a.example/l"));
    sim.drain();
    sim.enq(p, high("http://a.example/h"));
    assert_eq!(aborts(&sim.drain()), vec![], "preempt_low is off");
}

#[test]
fn the_victim_is_taken_from_the_worst_slot() {
    let mut sim = Sim::new(preempt_cfg(2));
    let hp = sim.peer(High);
    let lp = sim.peer(Low);
    let worst = sim.enq(lp, get("http://a.example/lowlow"));
    sim.drain();
    sim.advance(ms(1));
    let newer = sim.enq(hp, get("http://a.example/highlow"));
    sim.drain();
    let h = sim.enq(hp, high("http://a.example/h"));
    let o = sim.drain();
    assert_eq!(aborts(&o), vec![worst], "LowLow goes before the more recent HighLow");
    assert_eq!(starts(&o), vec![h]);
    let _ = newer;
}

#[test]
fn a_waiter_whose_host_is_full_preempts_nothing() {
    let cfg = Config { max_per_host: Some(1), ..preempt_cfg(2) };
    let mut sim = Sim::new(cfg);
    let p = sim.peer(High);
    sim.enq(p, get("http://a.example/1"));
    sim.enq(p, get("http://b.example/1"));
    sim.drain();
    sim.enq(p, high("http://a.example/h"));
    assert!(aborts(&sim.drain()).is_empty());
}

#[test]
fn a_delivered_bounded_range_is_never_a_victim() {
    let mut sim = Sim::new(preempt_cfg(1));
    let p = sim.peer(High);
    let r = sim.enq(p, get("http://a.example/r").range(0, Some(99)));
    sim.drain();
    sim.bytes(r, 100);
    sim.enq(p, high("http://a.example/h"));
    assert!(aborts(&sim.drain()).is_empty(), "every byte of r is there; it only needs to finish");
}

#[test]
fn preemption_does_not_use_up_retries() {
    let cfg = Config { retry: RetryPolicy { max_retries: 0, ..quiet(1).retry }, ..preempt_cfg(1) };
    let mut sim = Sim::new(cfg);
    let p = sim.peer(High);
    let l = sim.enq(p, get("http://a.example/l"));
    sim.drain();
    for i in 0..3 {
        let h = sim.enq(p, high(&format!("http://a.example/h{i}")));
        assert_eq!(aborts(&sim.drain()), vec![l]);
        assert_eq!(starts(&sim.complete(h)), vec![l]);
    }
    let o = sim.fail(l, NetError::Reset("x".into()));
    assert!(matches!(&events(&o)[..], [DownloaderEvent::RequestFailed { retryable: true, .. }]), "{o:?}");
    assert!(sim.events_for(l).contains(&DownloaderEvent::RequestStarted {
        request_id: l,
        wait_in_queue: ms(0),
        attempt: 4
    }));
}

#[test]
fn ageing_promotes_a_waiting_low_request() {
    let cfg = Config { promote_after: Some(ms(500)), ..quiet(1) };
    let mut sim = Sim::new(cfg);
    let p = sim.peer(Low);
    let b = sim.blocker(p);
    let old = sim.enq(p, get("http://a.example/old"));
    sim.drain();
    let o = sim.advance(ms(499));
    assert!(o.is_empty());
    let fresh_high = sim.enq(p, high("http://a.example/new"));
    sim.drain();
    let o = sim.advance(ms(1));
    assert_eq!(events(&o), vec![changed(old, Low, High)], "promoted when the wait reaches promote_after");
    // Both High now; old was enqueued first.
    assert_eq!(starts(&sim.complete(b)), vec![old]);
    assert_eq!(starts(&sim.complete(old)), vec![fresh_high]);
}

#[test]
fn ageing_counts_from_the_last_priority_change() {
    let cfg = Config { promote_after: Some(ms(100)), ..quiet(1) };
    let mut sim = Sim::new(cfg);
    let p = sim.peer(Low);
    let _b = sim.blocker(p);
    let r = sim.enq(p, high("http://a.example/r"));
    sim.drain();
    sim.advance(ms(80));
    sim.s.set_priority(r, Low, sim.now);
    sim.drain();
    let o = sim.advance(ms(99));
    assert!(events(&o).is_empty(), "ageing restarted at the change");
    let o = sim.advance(ms(1));
    assert_eq!(events(&o), vec![changed(r, Low, High)]);
}
