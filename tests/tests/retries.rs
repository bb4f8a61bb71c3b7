//! Rule 8: retries, backoff, jitter, Retry-After, resume.

use std::time::Duration;
use weir_tests::*;

fn retrying_delay(o: &[Output]) -> Option<Duration> {
    events(o).into_iter().find_map(|e| match e {
        DownloaderEvent::RequestRetrying { delay, .. } => Some(delay),
        _ => None,
    })
}

/// Fail `r` until it fails for good; returns the backoff delays seen.
fn fail_until_terminal(sim: &mut Sim, r: RequestId, e: NetError) -> Vec<Duration> {
    let mut delays = Vec::new();
    for _ in 0..50 {
        let o = sim.fail(r, e.clone());
        let Some(d) = retrying_delay(&o) else { return delays };
        delays.push(d);
        let o = sim.advance(d);
        assert_eq!(starts(&o), vec![r], "restarts exactly when the backoff ends");
    }
    panic!("never ended");
}

#[test]
fn backoff_doubles_caps_then_fails_retryable() {
    let c = Config { retry: RetryPolicy { max_retries: 5, cap: ms(300), ..quiet(1).retry }, ..quiet(1) };
    let mut sim = Sim::new(c);
    let p = sim.peer(RequestPriority::Low);
    let r = sim.enq(p, get("http://a.example/r"));
    sim.drain();
    let delays = fail_until_terminal(&mut sim, r, NetError::Connect("refused".into()));
    assert_eq!(delays, vec![ms(100), ms(200), ms(300), ms(300), ms(300)]);
    let retrying: Vec<u32> = sim
        .events_for(r)
        .iter()
        .filter_map(|e| match e {
            DownloaderEvent::RequestRetrying { attempt, .. } => Some(*attempt),
            _ => None,
        })
        .collect();
    assert_eq!(retrying, vec![2, 3, 4, 5, 6], "attempt names the next start");
    assert_eq!(
        sim.terminal(r),
        DownloaderEvent::RequestFailed { request_id: r, error: NetError::Connect("refused".into()), retryable: true }
    );
}

#[test]
fn a_non_retryable_error_fails_at_once() {
    let mut sim = Sim::new(quiet(1));
    let p = sim.peer(RequestPriority::Low);
    let r = sim.enq(p, get("http://a.example/r"));
    sim.drain();
    let e = NetError::Status { status: 404, retry_after: None };
    let o = sim.fail(r, e.clone());
    assert_eq!(events(&o), vec![DownloaderEvent::RequestFailed { request_id: r, error: e, retryable: false }]);
    assert!(aborts(&o).is_empty(), "a reported failure needs no Abort");
}

#[test]
fn jitter_is_deterministic_per_seed_and_within_half_to_full() {
    let run = |seed: u64| {
        let c = Config {
            seed,
            retry: RetryPolicy { max_retries: 6, jitter: true, cap: ms(1600), ..quiet(1).retry },
            ..quiet(1)
        };
        let mut sim = Sim::new(c);
        let p = sim.peer(RequestPriority::Low);
        let r = sim.enq(p, get("http://a.example/r"));
        sim.drain();
        fail_until_terminal(&mut sim, r, NetError::Reset("x".into()))
    };
    let a = run(42);
    assert_eq!(a, run(42), "same seed, same delays");
    assert_ne!(a, run(43), "another seed, other delays");
    let full = [100u64, 200, 400, 800, 1600, 1600];
    for (d, f) in a.iter().zip(full) {
        assert!(*d >= ms(f) / 2 && *d <= ms(f), "{d:?} outside [{:?}, {:?}]", ms(f) / 2, ms(f));
    }
}

#[test]
fn retry_after_wins_over_backoff_uncapped_and_unjittered() {
    let c = Config { retry: RetryPolicy { jitter: true, cap: ms(200), ..quiet(1).retry }, ..quiet(1) };
    let mut sim = Sim::new(c);
    let p = sim.peer(RequestPriority::Low);
    let r = sim.enq(p, get("http://a.example/r"));
    sim.drain();
    let o = sim.fail(r, NetError::Status { status: 429, retry_after: Some(ms(3000)) });
    assert_eq!(retrying_delay(&o), Some(ms(3000)));
    assert!(starts(&sim.advance(ms(2999))).is_empty());
    assert_eq!(starts(&sim.advance(ms(1))), vec![r]);
    // Shorter than the computed backoff is used as given too.
    let o = sim.fail(r, NetError::Status { status: 503, retry_after: Some(ms(1)) });
    assert_eq!(retrying_delay(&o), Some(ms(1)));
}

#[test]
fn a_zero_retry_after_requeues_at_once() {
    let mut sim = Sim::new(quiet(1));
    let p = sim.peer(RequestPriority::Low);
    let r = sim.enq(p, get("http://a.example/r"));
    sim.drain();
    let o = sim.fail(r, NetError::Status { status: 503, retry_after: Some(Duration::ZERO) });
    assert_eq!(retrying_delay(&o), Some(Duration::ZERO));
    assert_eq!(starts(&o), vec![r]);
}

#[test]
fn a_retry_after_beyond_the_limit_fails_at_once_as_retryable() {
    let mut sim = Sim::new(quiet(1));
    let p = sim.peer(RequestPriority::Low);
    let r = sim.enq(p, get("http://a.example/r"));
    sim.drain();
    let e = NetError::Status { status: 503, retry_after: Some(Duration::from_secs(121)) };
    let o = sim.fail(r, e.clone());
    assert_eq!(events(&o), vec![DownloaderEvent::RequestFailed { request_id: r, error: e, retryable: true }]);
}

#[test]
fn a_retry_goes_to_the_front_and_its_peer_is_served_next() {
    let mut sim = Sim::new(quiet(1));
    let a = sim.peer(RequestPriority::Low);
    let b = sim.peer(RequestPriority::Low);
    let r = sim.enq(a, get("http://a.example/r"));
    sim.drain();
    let b1 = sim.enq(b, get("http://a.example/b1"));
    let a2 = sim.enq(a, get("http://a.example/a2"));
    sim.drain();
    sim.fail(r, NetError::Reset("x".into()));
    // While r backs off, the slot is free: b1 (b's turn) starts.
    assert_eq!(starts(&sim.log[sim.log.len() - 2..]), vec![b1]);
    sim.advance(ms(100));
    let o = sim.complete(b1);
    assert_eq!(starts(&o), vec![r], "r was admitted earlier than a2");
    let o = sim.events_for(r);
    assert!(o.contains(&DownloaderEvent::RequestStarted { request_id: r, wait_in_queue: ms(0), attempt: 2 }));
    assert_eq!(starts(&sim.complete(r)), vec![a2]);
}

#[test]
fn a_retry_asks_for_the_missing_part_of_the_original_range() {
    let mut sim = Sim::new(quiet(1));
    let p = sim.peer(RequestPriority::Low);
    let r = sim.enq(p, get("http://a.example/r").range(100, Some(199)));
    let o = sim.drain();
    assert_eq!(cmds(&o)[0].range, Some((100, Some(199))));
    sim.fail(r, NetError::Reset("x".into()));
    let o = sim.advance(ms(100));
    assert_eq!(cmds(&o)[0].range, Some((100, Some(199))), "no bytes yet: the original range");
    sim.bytes(r, 30);
    sim.fail(r, NetError::Reset("x".into()));
    let o = sim.advance(ms(200));
    assert_eq!(cmds(&o)[0].range, Some((130, Some(199))));
    sim.bytes(r, 70);
    // The body is complete; a failure reported now completes the request.
    let o = sim.fail(r, NetError::Reset("connection closed".into()));
    assert!(
        matches!(
            events(&o)[..],
            [DownloaderEvent::FirstByte { .. }, DownloaderEvent::RequestCompleted { bytes_transferred: 100, .. }]
        ),
        "{o:?}"
    );
}

#[test]
fn bytes_count_across_attempts_bandwidth_only_the_last() {
    let mut sim = Sim::new(quiet(1));
    let p = sim.peer(RequestPriority::Low);
    let r = sim.enq(p, get("http://a.example/r"));
    sim.drain();
    sim.advance(ms(100));
    sim.bytes(r, 4000);
    sim.fail(r, NetError::Reset("x".into()));
    sim.advance(ms(100));
    sim.advance(ms(500));
    sim.bytes(r, 1000);
    sim.advance(ms(500));
    sim.complete(r);
    assert_eq!(
        sim.terminal(r),
        DownloaderEvent::RequestCompleted {
            request_id: r,
            bytes_transferred: 5000,
            duration: ms(1000),
            bandwidth_bps: 8000
        }
    );
    let fb: Vec<_> = sim.events_for(r).into_iter().filter(|e| matches!(e, DownloaderEvent::FirstByte { .. })).collect();
    assert_eq!(
        fb,
        vec![
            DownloaderEvent::FirstByte { request_id: r, latency: ms(100) },
            DownloaderEvent::FirstByte { request_id: r, latency: ms(500) }
        ],
        "one FirstByte per attempt"
    );
}

#[test]
fn bandwidth_estimate_is_an_ewma_of_large_completions() {
    let mut sim = Sim::new(quiet(1));
    let p = sim.peer(RequestPriority::Low);
    assert_eq!(sim.s.bandwidth_estimate(), None);
    let run = |sim: &mut Sim, bytes: u64, millis: u64| {
        let r = sim.enq(p, get("http://a.example/r"));
        sim.drain();
        sim.bytes(r, bytes);
        sim.advance(ms(millis));
        sim.complete(r);
    };
    run(&mut sim, 1000, 1); // too small: ignored
    assert_eq!(sim.s.bandwidth_estimate(), None);
    run(&mut sim, 100_000, 1000); // 800 kbit/s seeds the estimate
    assert_eq!(sim.s.bandwidth_estimate(), Some(800_000));
    run(&mut sim, 200_000, 1000); // 1.6 Mbit/s: 0.3 * 1.6M + 0.7 * 0.8M
    assert_eq!(sim.s.bandwidth_estimate(), Some(1_040_000));
}

#[test]
fn zero_byte_reports_and_reports_for_waiting_requests_are_ignored() {
    let mut sim = Sim::new(quiet(1));
    let p = sim.peer(RequestPriority::Low);
    let r = sim.enq(p, get("http://a.example/r"));
    let waiting = sim.enq(p, get("http://a.example/w"));
    sim.drain();
    sim.bytes(r, 0);
    sim.bytes(waiting, 5);
    sim.s.on_complete(waiting, sim.now);
    sim.s.on_failed(waiting, NetError::Timeout, sim.now);
    assert!(sim.drain().is_empty(), "no FirstByte for zero bytes, nothing for a waiting request");
    assert_eq!(sim.s.queued(), 1);
}

#[test]
fn late_bytes_of_a_stopped_attempt_count_and_move_the_next_range_but_nothing_else() {
    let c = Config { idle_timeout: Some(ms(500)), ..quiet(1) };
    let mut sim = Sim::new(c);
    let p = sim.peer(RequestPriority::Low);
    let r = sim.enq(p, get("http://a.example/r").range(100, Some(199)));
    sim.drain();
    sim.bytes(r, 10);
    // The idle timeout aborts the attempt; its transfer wrote 20 more bytes before it noticed.
    let o = sim.advance(ms(500));
    assert_eq!(aborts(&o), vec![r]);
    sim.s.on_late_bytes(r, 20, sim.now);
    assert!(sim.drain().is_empty(), "late bytes emit nothing (no FirstByte, no start)");
    let o = sim.advance(ms(100));
    assert_eq!(cmds(&o)[0].range, Some((130, Some(199))), "the next start resumes after the late bytes");
    sim.bytes(r, 70);
    let o = sim.complete(r);
    assert!(
        matches!(
            events(&o)[..],
            [DownloaderEvent::FirstByte { .. }, DownloaderEvent::RequestCompleted { bytes_transferred: 100, .. }]
        ),
        "{o:?}"
    );
    sim.s.on_late_bytes(r, 5, sim.now);
    assert!(sim.drain().is_empty(), "ignored once the request ended");
}
