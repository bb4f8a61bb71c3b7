//! What one request sets beyond the config (its timeouts, its retry policy,
//! a deadline for the whole request, mirrors), a failure whose bytes were
//! thrown away, the response head, and bandwidth learnt while transfers
//! run. Exact events on fake time.

use weir::Timeouts;
use weir_tests::*;

fn timeouts(soft: Option<u64>, idle: Option<u64>, hard: Option<u64>) -> Timeouts {
    Timeouts { soft: soft.map(ms), idle: idle.map(ms), hard: hard.map(ms) }
}

#[test]
fn a_request_s_own_timeouts_replace_the_config_s_and_others_keep_the_config_s() {
    let cfg = Config { soft_timeout: Some(ms(1000)), idle_timeout: Some(ms(5000)), ..quiet(4) };
    let mut sim = Sim::new(cfg);
    let p = sim.peer(RequestPriority::Low);
    let manifest = sim.enq(p, get("http://a.example/m3u8").timeouts(timeouts(Some(100), Some(300), None)));
    let segment = sim.enq(p, get("http://a.example/seg"));
    sim.drain();
    let o = sim.advance(ms(100));
    assert_eq!(events(&o), vec![DownloaderEvent::LoadSlow { request_id: manifest, elapsed: ms(100) }]);
    // Its idle timeout is 300 ms, the config's 5 s; bytes at 250 ms move it.
    sim.advance(ms(150));
    sim.bytes(manifest, 10);
    sim.bytes(segment, 10);
    let o = sim.advance(ms(299));
    assert!(aborts(&o).is_empty(), "{o:?}");
    let o = sim.advance(ms(1));
    assert_eq!(aborts(&o), vec![manifest]);
    assert!(matches!(
        &events(&o)[0],
        DownloaderEvent::RequestRetrying { request_id, error: NetError::Timeout, .. } if *request_id == manifest
    ));
    // The segment runs under the config: slow at 1 s, idle at 250 ms + 5 s.
    let o = sim.run_to(ms(1000));
    assert!(events(&o).contains(&DownloaderEvent::LoadSlow { request_id: segment, elapsed: ms(1000) }));
    let o = sim.run_to(ms(5249));
    assert!(!aborts(&o).contains(&segment));
    let o = sim.run_to(ms(5250));
    assert!(aborts(&o).contains(&segment));
}

#[test]
fn a_request_s_own_retry_policy_decides_its_retries_and_backoff() {
    let mut sim = Sim::new(quiet(2));
    let p = sim.peer(RequestPriority::Low);
    let key = sim.enq(p, get("http://a.example/key").retry(RetryPolicy { max_retries: 0, ..RetryPolicy::default() }));
    let fast = RetryPolicy { max_retries: 5, base: ms(10), cap: ms(20), jitter: false, ..RetryPolicy::default() };
    let seg = sim.enq(p, get("http://a.example/seg").retry(fast));
    sim.drain();
    sim.fail(key, NetError::Timeout);
    assert_eq!(
        sim.terminal(key),
        DownloaderEvent::RequestFailed { request_id: key, error: NetError::Timeout, retryable: true }
    );
    for (n, delay) in [(2, 10), (3, 20), (4, 20)] {
        let o = sim.fail(seg, NetError::Timeout);
        assert_eq!(
            events(&o)[0],
            DownloaderEvent::RequestRetrying {
                request_id: seg,
                attempt: n,
                delay: ms(delay),
                error: NetError::Timeout
            }
        );
        let o = sim.advance(ms(delay));
        assert_eq!(starts(&o), vec![seg]);
    }
}

#[test]
fn a_deadline_runs_from_the_first_start_through_backoffs_and_fails_wherever_the_request_is() {
    let mut sim = Sim::new(quiet(1));
    let p = sim.peer(RequestPriority::Low);
    let blocker = sim.enq(p, get("http://a.example/first"));
    let r = sim.enq(p, get("http://a.example/x").deadline(ms(500)));
    sim.drain();
    // Queue wait is not charged: 10 s waiting, then its first start.
    sim.advance(ms(10_000));
    let o = sim.complete(blocker);
    assert_eq!(starts(&o), vec![r]);
    // Fails at 200 ms, waits a 100 ms backoff, runs again, fails at 400 ms,
    // waits 200 ms: the deadline (500 ms after the first start) hits the backoff.
    sim.advance(ms(200));
    sim.fail(r, NetError::Timeout);
    sim.advance(ms(100));
    sim.advance(ms(100));
    sim.fail(r, NetError::Reset("peer".into()));
    let o = sim.advance(ms(99));
    assert!(events(&o).is_empty(), "{o:?}");
    let o = sim.advance(ms(1));
    assert_eq!(
        o,
        vec![Output::Event(
            p,
            DownloaderEvent::RequestFailed { request_id: r, error: NetError::Timeout, retryable: true }
        )]
    );
    assert_eq!(sim.s.poll_timeout(), None, "its timers are gone");
    assert_eq!(event_names(&sim.events_for(r)), ["Enqueued", "Started", "Retrying", "Started", "Retrying", "Failed"]);
}

#[test]
fn a_deadline_aborts_a_running_attempt_and_comes_before_its_own_timeouts_at_a_tie() {
    let mut sim = Sim::new(Config { hard_timeout: Some(ms(300)), ..quiet(2) });
    let p = sim.peer(RequestPriority::Low);
    let r = sim.enq(p, get("http://a.example/x").deadline(ms(300)));
    let done = sim.enq(p, get("http://a.example/y").range(0, Some(9)).deadline(ms(300)));
    sim.drain();
    sim.bytes(done, 10);
    sim.drain();
    let o = sim.advance(ms(300));
    // The running request is aborted and fails (no retry for a hard timeout
    // at the same instant); the one that holds its whole range completes.
    assert_eq!(aborts(&o), vec![r, done]);
    let names: Vec<_> = event_names(&events(&o));
    assert_eq!(names, ["Failed", "Completed"], "{o:?}");
}

#[test]
fn mirrors_take_over_at_once_then_a_new_round_waits_its_backoff() {
    let mut sim = Sim::new(quiet(4));
    let p = sim.peer(RequestPriority::Low);
    let r = sim
        .enq(p, get("http://a.example/pkg").mirror(url("http://b.example/pkg")).mirror(url("https://c.example/pkg")));
    let o = sim.drain();
    assert_eq!(cmds(&o)[0].url.as_str(), "http://a.example/pkg");
    // A 404 from a mirror not yet synced moves on: no delay, no retry used.
    let not_found = NetError::Status { status: 404, retry_after: None };
    let o = sim.fail(r, not_found.clone());
    assert_eq!(
        events(&o)[0],
        DownloaderEvent::RequestRetrying { request_id: r, attempt: 2, delay: ms(0), error: not_found }
    );
    assert_eq!((cmds(&o)[0].url.as_str(), cmds(&o)[0].attempt), ("http://b.example/pkg", 2));
    sim.bytes(r, 100);
    let o = sim.fail(r, NetError::Reset("cut".into()));
    assert_eq!(cmds(&o)[0].url.as_str(), "https://c.example/pkg");
    assert_eq!(cmds(&o)[0].range, Some((100, None)), "the bytes held are asked from the next mirror on");
    // After the last one, a retryable failure starts a new round at the
    // first URL after the first retry's backoff.
    let o = sim.fail(r, NetError::Timeout);
    assert_eq!(
        events(&o)[0],
        DownloaderEvent::RequestRetrying { request_id: r, attempt: 4, delay: ms(100), error: NetError::Timeout }
    );
    let o = sim.advance(ms(100));
    assert_eq!(cmds(&o)[0].url.as_str(), "http://a.example/pkg");
    // Within the new round, the mirrors are tried again.
    let o = sim.fail(r, NetError::Connect("refused".into()));
    assert_eq!(cmds(&o)[0].url.as_str(), "http://b.example/pkg");
    sim.complete(r);
}

#[test]
fn a_mirror_list_ends_on_a_final_error_and_the_sink_s_errors_never_move() {
    let mut sim = Sim::new(quiet(4));
    let p = sim.peer(RequestPriority::Low);
    let r = sim.enq(p, get("http://a.example/x").mirror(url("http://b.example/x")));
    let full = sim.enq(p, get("http://a.example/y").mirror(url("http://b.example/y")));
    sim.drain();
    sim.fail(r, NetError::Status { status: 404, retry_after: None });
    sim.fail(r, NetError::Status { status: 410, retry_after: None });
    assert!(matches!(
        sim.terminal(r),
        DownloaderEvent::RequestFailed { error: NetError::Status { status: 410, .. }, retryable: false, .. }
    ));
    sim.fail(full, NetError::Sink("disk full".into()));
    assert!(matches!(sim.terminal(full), DownloaderEvent::RequestFailed { error: NetError::Sink(_), .. }));
}

#[test]
fn mirrors_are_checked_at_enqueue_and_caps_and_pauses_count_at_the_mirror_s_host() {
    let mut sim = Sim::new(Config { max_per_host: Some(1), ..quiet(4) });
    let p = sim.peer(RequestPriority::Low);
    let bad = sim.s.enqueue(p, get("http://a.example/x").mirror(url("ftp://b.example/x")), sim.now);
    assert_eq!(
        bad,
        Err(EnqueueError::InvalidRequest("mirror 1: unsupported scheme \"ftp\" (only http and https)".into()))
    );
    let r = sim.enq(p, get("http://a.example/x").mirror(url("http://b.example/x")));
    let on_b = sim.enq(p, get("http://b.example/other"));
    let o = sim.drain();
    assert_eq!(starts(&o), vec![r, on_b]);
    // a.example pauses for 1 s; the request moves to b.example, whose one
    // slot is taken: it waits for it, not for a.example's pause.
    let o = sim.fail(r, NetError::Status { status: 503, retry_after: Some(ms(1000)) });
    assert!(starts(&o).is_empty());
    let o = sim.complete(on_b);
    assert_eq!(cmds(&o)[0].url.as_str(), "http://b.example/x");
}

#[test]
fn a_discarded_attempt_is_retried_from_the_start_whatever_its_error() {
    let mut sim = Sim::new(quiet(1));
    let p = sim.peer(RequestPriority::Low);
    let r = sim.enq(p, get("http://a.example/x").range(100, Some(1099)));
    sim.drain();
    sim.bytes(r, 1000);
    sim.drain();
    let bad = NetError::Integrity("SHA-256 differs".into());
    sim.s.on_discarded(r, bad.clone(), sim.now);
    let o = sim.drain();
    assert_eq!(
        events(&o)[0],
        DownloaderEvent::RequestRetrying { request_id: r, attempt: 2, delay: ms(100), error: bad.clone() }
    );
    let o = sim.advance(ms(100));
    assert_eq!(cmds(&o)[0].range, Some((100, Some(1099))), "the original range again");
    sim.bytes(r, 1000);
    sim.complete(r);
    assert!(matches!(sim.terminal(r), DownloaderEvent::RequestCompleted { bytes_transferred: 1000, .. }));
    // Bounded by the retry policy like any retry.
    let mut sim = Sim::new(Config { retry: RetryPolicy { max_retries: 0, ..RetryPolicy::default() }, ..quiet(1) });
    let p = sim.peer(RequestPriority::Low);
    let r = sim.enq(p, get("http://a.example/x"));
    sim.drain();
    sim.s.on_discarded(r, bad.clone(), sim.now);
    sim.drain();
    assert_eq!(sim.terminal(r), DownloaderEvent::RequestFailed { request_id: r, error: bad, retryable: false });
}

#[test]
fn the_response_head_is_announced_once_per_attempt_and_only_while_running() {
    let mut sim = Sim::new(quiet(1));
    let p = sim.peer(RequestPriority::Low);
    let r = sim.enq(p, get("http://a.example/x"));
    let waiting = sim.enq(p, get("http://a.example/y"));
    sim.drain();
    sim.s.on_response(waiting, 200, Some(5), sim.now);
    sim.s.on_response(r, 200, Some(5000), sim.now);
    sim.s.on_response(r, 200, Some(5000), sim.now);
    let o = sim.drain();
    assert_eq!(
        events(&o),
        vec![DownloaderEvent::ResponseReceived { request_id: r, status: 200, content_length: Some(5000) }]
    );
    sim.cancel(waiting);
    sim.fail(r, NetError::Timeout);
    assert_eq!(starts(&sim.advance(ms(100))), vec![r]);
    sim.s.on_response(r, 206, None, sim.now);
    let o = sim.drain();
    assert_eq!(
        events(&o),
        vec![DownloaderEvent::ResponseReceived { request_id: r, status: 206, content_length: None }]
    );
}

#[test]
fn a_peer_s_bandwidth_is_learnt_while_its_transfers_run() {
    let mut sim = Sim::new(quiet(4));
    let player = sim.peer(RequestPriority::High);
    let other = sim.peer(RequestPriority::Low);
    let seg = sim.enq(player, get("http://cdn.example/seg1"));
    let bulk = sim.enq(other, get("http://cdn.example/big"));
    sim.drain();
    assert_eq!(sim.s.peer_bandwidth(player), None);
    assert_eq!(sim.s.transfer_rate(seg), None, "no byte yet");
    // 100 KB in the first 100 ms: 8 Mbit/s, known before the segment ends.
    sim.advance(ms(50));
    sim.bytes(seg, 50_000);
    assert_eq!(sim.s.peer_bandwidth(player), None, "a window lasts 100 ms");
    assert_eq!(sim.s.transfer_rate(seg), Some(8_000_000), "since the start before the first window");
    sim.advance(ms(50));
    sim.bytes(seg, 50_000);
    assert_eq!(sim.s.peer_bandwidth(player), Some(8_000_000));
    // The next 100 ms at 4 Mbit/s: EWMA 0.3 · 4 + 0.7 · 8 = 6.8 Mbit/s.
    sim.advance(ms(100));
    sim.bytes(seg, 50_000);
    assert_eq!(sim.s.peer_bandwidth(player), Some(6_800_000));
    assert_eq!(sim.s.transfer_rate(seg), Some(4_000_000));
    // The other peer's transfer counts for it alone; the scheduler-wide
    // estimate still learns at completion only.
    assert_eq!(sim.s.peer_bandwidth(other), None);
    assert_eq!(sim.s.bandwidth_estimate(), None);
    // At completion, a last window of 16 KiB or more counts once it lasted
    // 100 ms; a short attempt counts whole.
    sim.advance(ms(10));
    sim.bytes(bulk, 20_000);
    sim.complete(bulk);
    assert_eq!(sim.s.peer_bandwidth(other), Some(20_000 * 8 * 1000 / 210));
    sim.bytes(seg, 20_000);
    sim.complete(seg);
    assert_eq!(sim.s.peer_bandwidth(player), Some(6_800_000), "a 10 ms tail is too short to judge");
    assert_eq!(sim.s.transfer_rate(seg), None, "not running");
}
