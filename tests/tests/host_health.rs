//! Host health (DESIGN.md "Host health"): a `429`/`503` with `Retry-After`
//! pauses new starts to that host until the deadline; requests to it are
//! skipped like a full host's, other hosts are unaffected, running
//! transfers continue.

use std::time::Duration;

use weir_tests::both::{run, Into, ADAPTERS};
use weir_tests::server::FaultServer;
use weir_tests::*;

fn status(code: u16, secs: u64) -> NetError {
    NetError::Status { status: code, retry_after: Some(Duration::from_secs(secs)) }
}

#[test]
fn a_503_with_retry_after_holds_the_host_and_only_the_host() {
    let mut sim = Sim::new(quiet(3));
    let p = sim.peer(RequestPriority::Low);
    let a1 = sim.enq(p, get("http://a.example/1"));
    let a2 = sim.enq(p, get("http://a.example/2"));
    assert_eq!(starts(&sim.drain()), vec![a1, a2]);
    let (a3, b1) = (sim.enq(p, get("http://a.example/3")), sim.enq(p, get("http://b.example/1")));
    let o = sim.fail(a1, status(503, 2));
    assert_eq!(starts(&o), vec![b1], "a.example is paused: a3 waits though a slot is free; b.example is not");
    assert!(aborts(&o).is_empty(), "a2 keeps running on the paused host");
    assert_eq!(sim.s.host_paused_until(&url("http://a.example/x")), Some(sim.now + Duration::from_secs(2)));
    assert_eq!(sim.s.host_paused_until(&url("http://b.example/x")), None);
    assert_eq!(sim.s.poll_timeout(), Some(sim.now + Duration::from_secs(2)), "the pause and the retry end together");
    sim.complete(a2);
    assert!(starts(&sim.drain()).is_empty(), "a freed slot does not end the pause");
    let o = sim.advance(Duration::from_millis(1999));
    assert!(starts(&o).is_empty(), "nothing to a.example before the deadline");
    let o = sim.advance(ms(1));
    assert_eq!(
        starts(&o),
        vec![a1, a3],
        "at the deadline the retried request (front of the queue) and the waiting one"
    );
    assert_eq!(sim.s.host_paused_until(&url("http://a.example/x")), None);
}

#[test]
fn only_429_and_503_with_retry_after_pause_and_never_past_max_retry_after() {
    for (error, paused) in [
        (status(429, 1), true),
        (NetError::Status { status: 429, retry_after: None }, false),
        (status(500, 1), false),
        (status(503, 0), false),
    ] {
        let mut sim = Sim::new(quiet(2));
        let p = sim.peer(RequestPriority::Low);
        let a1 = sim.enq(p, get("http://a.example/1"));
        sim.drain();
        let a2 = sim.enq(p, get("http://a.example/2"));
        let _ = a2;
        let o = sim.fail(a1, error.clone());
        assert_eq!(starts(&o).is_empty(), paused, "{error:?}");
        assert_eq!(sim.s.host_paused_until(&url("http://a.example/")).is_some(), paused, "{error:?}");
    }
    // A Retry-After beyond the limit fails that request at once and pauses the host for the limit.
    let c = Config { retry: RetryPolicy { max_retry_after: Duration::from_secs(5), ..quiet(2).retry }, ..quiet(2) };
    let mut sim = Sim::new(c);
    let p = sim.peer(RequestPriority::Low);
    let a1 = sim.enq(p, get("http://a.example/1"));
    sim.drain();
    let a2 = sim.enq(p, get("http://a.example/2"));
    let o = sim.fail(a1, status(503, 3600));
    assert!(events(&o).iter().any(|e| matches!(e, DownloaderEvent::RequestFailed { retryable: true, .. })));
    assert_eq!(sim.s.host_paused_until(&url("http://a.example/")), Some(sim.now + Duration::from_secs(5)));
    assert_eq!(starts(&sim.advance(Duration::from_secs(5))), vec![a2]);
}

#[test]
fn a_pause_is_forgotten_with_the_last_request_to_its_host() {
    let mut sim = Sim::new(Config { retry: RetryPolicy { max_retries: 0, ..quiet(1).retry }, ..quiet(1) });
    let p = sim.peer(RequestPriority::Low);
    let a1 = sim.enq(p, get("http://a.example/1"));
    sim.drain();
    let o = sim.fail(a1, status(503, 60));
    assert!(events(&o).iter().any(DownloaderEvent::is_terminal), "no retries left: it fails");
    assert_eq!(sim.s.host_paused_until(&url("http://a.example/")), None, "no live request points at the host");
    assert_eq!(sim.s.poll_timeout(), None, "and no deadline is left behind");
    let a2 = sim.enq(p, get("http://a.example/2"));
    assert_eq!(starts(&sim.drain()), vec![a2]);
}

#[test]
fn a_crawler_against_a_host_that_answers_429_once_waits_for_it_and_only_for_it() {
    let (a, b) = (FaultServer::start_on("127.0.0.1"), FaultServer::start_on("127.0.0.2"));
    for adapter in ADAPTERS {
        let first = format!("/status/429/1/1?{adapter:?}");
        let mut reqs = vec![(get(&a.url(&first)), Into::Memory)];
        for i in 0..4 {
            reqs.push((get(&a.url(&format!("/file/{}?{adapter:?}", 1000 + i))), Into::Memory));
            reqs.push((get(&b.url(&format!("/file/{}?{adapter:?}", 2000 + i))), Into::Memory));
        }
        let config = Config { max_concurrent: 1, ..Config::default() };
        let got = run(adapter, config, reqs);
        assert!(got.iter().all(|g| g.outcome.is_ok()), "{adapter:?}: every download completes");
        let tag = format!("?{adapter:?}");
        let a_seen: Vec<_> = a.seen().into_iter().filter(|s| s.path.ends_with(&tag)).collect();
        let b_seen: Vec<_> = b.seen().into_iter().filter(|s| s.path.ends_with(&tag)).collect();
        assert_eq!(a_seen[0].path, first, "{adapter:?}: the 429 came first");
        let deadline = a_seen[0].at + Duration::from_secs(1);
        assert_eq!(a_seen.len(), 6, "{adapter:?}: the 429, its retry, four files");
        assert!(a_seen[1..].iter().all(|s| s.at >= deadline), "{adapter:?}: nothing to the host before Retry-After");
        assert_eq!(b_seen.len(), 4);
        assert!(b_seen.iter().all(|s| s.at < deadline), "{adapter:?}: the other host was served during the pause");
    }
}
