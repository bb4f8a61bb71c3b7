//! Redirects go through the core: the attempt ends, the request waits at
//! the front with the new URL and host key, limits count at the target.

use weir_tests::*;

#[test]
fn a_redirect_requeues_at_the_front_with_the_new_url_and_uses_no_retry() {
    let mut sim = Sim::new(quiet(1));
    let p = sim.peer(RequestPriority::Low);
    let r = sim.enq(p, get("http://a.example/x").range(10, None));
    let other = sim.enq(p, get("http://a.example/y"));
    assert_eq!(starts(&sim.drain()), vec![r]);
    sim.bytes(r, 5);
    sim.advance(ms(20));
    let o = sim.redirect(r, "http://b.example/moved");
    // No Abort (the attempt is over); announced; started again first.
    assert_eq!(aborts(&o), vec![]);
    assert_eq!(events(&o)[0], DownloaderEvent::RequestRedirected { request_id: r, url: url("http://b.example/moved") });
    let c = cmds(&o);
    assert_eq!(c.len(), 1, "{o:?}");
    assert_eq!(
        (c[0].id, c[0].url.as_str(), c[0].range, c[0].attempt),
        (r, "http://b.example/moved", Some((15, None)), 2)
    );
    assert!(events(&o).contains(&DownloaderEvent::RequestStarted { request_id: r, wait_in_queue: ms(0), attempt: 2 }));
    let o = sim.complete(r);
    assert_eq!(starts(&o), vec![other]);
    assert_eq!(
        event_names(&sim.events_for(r)),
        ["Enqueued", "Started", "FirstByte", "Redirected", "Started", "Completed"]
    );
}

#[test]
fn redirects_beyond_the_limit_downgrades_and_bad_targets_fail_clearly() {
    let cfg = Config { max_redirects: 2, ..quiet(4) };
    let mut sim = Sim::new(cfg);
    let p = sim.peer(RequestPriority::Low);
    let looped = sim.enq(p, get("http://a.example/loop"));
    let secure = sim.enq(p, get("https://a.example/s"));
    let bad = sim.enq(p, get("http://a.example/b"));
    sim.drain();
    sim.redirect(looped, "http://a.example/loop1");
    sim.redirect(looped, "http://a.example/loop2");
    sim.redirect(looped, "http://a.example/loop3");
    match sim.terminal(looped) {
        DownloaderEvent::RequestFailed { error: NetError::Protocol(m), retryable: false, .. } => {
            assert_eq!(m, "more than 2 redirects");
        }
        other => panic!("{other:?}"),
    }
    sim.redirect(secure, "http://a.example/plain");
    assert!(matches!(
        sim.terminal(secure),
        DownloaderEvent::RequestFailed { error: NetError::Protocol(m), retryable: false, .. } if m.contains("https to http")
    ));
    sim.redirect(bad, "ftp://a.example/file");
    assert!(matches!(
        sim.terminal(bad),
        DownloaderEvent::RequestFailed { error: NetError::InvalidUrl(_), retryable: false, .. }
    ));
    assert_eq!(sim.s.in_flight(), 0);
}

#[test]
fn a_downgrade_is_followed_when_allowed_and_reports_for_waiting_requests_are_ignored() {
    let mut sim = Sim::new(Config { allow_https_downgrade: true, ..quiet(1) });
    let p = sim.peer(RequestPriority::Low);
    let r = sim.enq(p, get("https://a.example/s"));
    let waiting = sim.enq(p, get("https://a.example/w"));
    sim.drain();
    assert!(sim.redirect(waiting, "http://a.example/x").is_empty(), "not running: ignored");
    let o = sim.redirect(r, "http://a.example/plain");
    assert_eq!(cmds(&o)[0].url.as_str(), "http://a.example/plain");
}

#[test]
fn max_per_host_counts_at_the_redirect_target() {
    let mut sim = Sim::new(Config { max_per_host: Some(1), ..quiet(4) });
    let p = sim.peer(RequestPriority::Low);
    let base = sim.s.footprint();
    let a1 = sim.enq(p, get("http://a1.example/f"));
    let a2 = sim.enq(p, get("http://a2.example/f"));
    assert_eq!(starts(&sim.drain()), vec![a1, a2], "two hosts, both start");
    // Both are redirected to one host b: only one may run there.
    let o = sim.redirect(a1, "http://b.example/f1");
    assert_eq!(starts(&o), vec![a1]);
    let o = sim.redirect(a2, "http://b.example/f2");
    assert_eq!(starts(&o), vec![], "b is full: a2 waits");
    let o = sim.complete(a1);
    assert_eq!(starts(&o), vec![a2], "b is free again");
    sim.complete(a2);
    assert_eq!(sim.s.footprint(), base, "hosts a1, a2 and b are forgotten");
}
