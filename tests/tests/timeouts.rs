//! Rule 7: soft, idle and hard timeouts, measured from the attempt's start.

use weir_tests::*;

fn cfg(soft: Option<u64>, idle: Option<u64>, hard: Option<u64>) -> Config {
    Config { soft_timeout: soft.map(ms), idle_timeout: idle.map(ms), hard_timeout: hard.map(ms), ..quiet(1) }
}

#[test]
fn load_slow_fires_once_per_attempt_and_never_for_queue_time() {
    let mut sim = Sim::new(cfg(Some(100), None, None));
    let p = sim.peer(RequestPriority::Low);
    let b = sim.blocker(p);
    let r = sim.enq(p, get("http://a.example/r"));
    sim.drain();
    sim.advance(ms(90));
    sim.complete(b); // r waited 90 ms in the queue: not charged
    let o = sim.advance(ms(99));
    assert!(events(&o).is_empty(), "{o:?}");
    let o = sim.advance(ms(1));
    assert_eq!(events(&o), vec![DownloaderEvent::LoadSlow { request_id: r, elapsed: ms(100) }]);
    let o = sim.advance(ms(1000));
    assert!(o.is_empty(), "once per attempt: {o:?}");
    // A new attempt may be slow again.
    sim.fail(r, NetError::Reset("x".into()));
    sim.advance(ms(100)); // backoff
    let o = sim.advance(ms(100));
    assert_eq!(events(&o), vec![DownloaderEvent::LoadSlow { request_id: r, elapsed: ms(100) }]);
    sim.complete(r);
    let slow = sim.events_for(r).iter().filter(|e| matches!(e, DownloaderEvent::LoadSlow { .. })).count();
    assert_eq!(slow, 2);
    assert!(matches!(sim.terminal(r), DownloaderEvent::RequestCompleted { .. }));
}

#[test]
fn idle_timeout_runs_from_the_last_byte_then_aborts_and_retries() {
    let mut sim = Sim::new(cfg(None, Some(200), None));
    let p = sim.peer(RequestPriority::Low);
    let r = sim.enq(p, get("http://a.example/r"));
    sim.drain();
    sim.advance(ms(150));
    sim.bytes(r, 10);
    sim.drain();
    let o = sim.advance(ms(199));
    assert_eq!(events(&o), vec![], "bytes at 150 ms moved the idle deadline to 350 ms");
    let o = sim.advance(ms(1));
    assert_eq!(
        o,
        vec![
            Output::Abort(r),
            Output::Event(
                p,
                DownloaderEvent::RequestRetrying {
                    request_id: r,
                    attempt: 2,
                    delay: ms(100),
                    error: NetError::Timeout
                }
            ),
        ]
    );
    assert_eq!(sim.s.in_flight(), 0);
    let o = sim.advance(ms(100));
    let c = cmds(&o);
    assert_eq!((c[0].attempt, c[0].range), (2, Some((10, None))), "the retry resumes after the 10 bytes");
}

#[test]
fn hard_timeout_limits_the_whole_attempt_even_while_bytes_flow() {
    let mut sim = Sim::new(cfg(None, Some(200), Some(500)));
    let p = sim.peer(RequestPriority::Low);
    let r = sim.enq(p, get("http://a.example/r"));
    sim.drain();
    for _ in 0..4 {
        sim.advance(ms(100));
        sim.bytes(r, 1);
    }
    let o = sim.advance(ms(100));
    assert_eq!(aborts(&o), vec![r]);
    assert!(matches!(events(&o)[..], [DownloaderEvent::RequestRetrying { attempt: 2, error: NetError::Timeout, .. }]));
}

#[test]
fn timeouts_on_the_last_attempt_fail_with_timeout() {
    let c = Config { retry: RetryPolicy { max_retries: 1, ..quiet(1).retry }, ..cfg(None, None, Some(50)) };
    let mut sim = Sim::new(c);
    let p = sim.peer(RequestPriority::Low);
    let r = sim.enq(p, get("http://a.example/r"));
    let o = sim.drive_until_idle(100);
    assert_eq!(starts(&o), vec![r, r]);
    assert_eq!(sim.at(), ms(50 + 100 + 50));
    assert_eq!(
        sim.terminal(r),
        DownloaderEvent::RequestFailed { request_id: r, error: NetError::Timeout, retryable: true }
    );
    assert_eq!(aborts(&sim.log), vec![r, r]);
}

#[test]
fn a_timeout_after_a_bounded_range_was_delivered_completes_it() {
    let mut sim = Sim::new(cfg(None, Some(100), None));
    let p = sim.peer(RequestPriority::Low);
    let r = sim.enq(p, get("http://a.example/r").range(1000, Some(1099)));
    sim.drain();
    sim.advance(ms(10));
    sim.bytes(r, 100);
    sim.drain();
    let o = sim.advance(ms(100));
    assert_eq!(
        o,
        vec![
            Output::Abort(r),
            Output::Event(
                p,
                DownloaderEvent::RequestCompleted {
                    request_id: r,
                    bytes_transferred: 100,
                    duration: ms(110),
                    bandwidth_bps: 100 * 8 * 1000 / 110
                }
            ),
        ]
    );
}

#[test]
fn no_timer_is_left_once_everything_ended() {
    let mut sim = Sim::new(Config { promote_after: Some(ms(10)), ..cfg(Some(10), Some(10), Some(10)) });
    let p = sim.peer(RequestPriority::Low);
    let a = sim.enq(p, get("http://a.example/a"));
    let b = sim.enq(p, get("http://a.example/b"));
    sim.drain();
    assert!(sim.s.poll_timeout().is_some());
    sim.cancel(b);
    sim.complete(a);
    assert_eq!(sim.s.poll_timeout(), None);
    assert_eq!(sim.s.footprint().timers, 0);
}

#[test]
fn a_skipped_resend_keeps_the_idle_timer_alive_and_counts_no_byte() {
    let mut sim = Sim::new(cfg(None, Some(200), None));
    let p = sim.peer(RequestPriority::Low);
    let r = sim.enq(p, get("http://a.example/r"));
    sim.drain();
    // The server resends a prefix the sink holds: only progress, every 150 ms.
    for _ in 0..5 {
        sim.advance(ms(150));
        sim.progress(r);
        assert!(sim.drain().is_empty(), "progress emits nothing (no FirstByte either)");
    }
    let o = sim.advance(ms(199));
    assert!(o.is_empty(), "the last progress at 750 ms moved the idle deadline to 950 ms: {o:?}");
    sim.bytes(r, 7);
    sim.advance(ms(10));
    sim.complete(r);
    assert!(
        matches!(sim.terminal(r), DownloaderEvent::RequestCompleted { bytes_transferred: 7, .. }),
        "progress counted no byte: {:?}",
        sim.terminal(r)
    );
    // Progress for a request that is not running is ignored.
    sim.progress(r);
    assert!(sim.drain().is_empty());
}
