//! What the wait queues hold (`Scheduler::queue_footprint`): entries left
//! behind by cancels and priority changes stay bounded by the waiting
//! requests and never change the start order; emptied host queues kept for
//! reuse stay few and go with their peer.

use std::time::{Duration, Instant};

use weir::{Config, Output, QueueFootprint, Request, RequestId, RequestPriority::*, Scheduler, Url};

fn started(s: &mut Scheduler) -> Vec<RequestId> {
    std::iter::from_fn(|| s.poll_output())
        .filter_map(|o| match o {
            Output::Start(c) => Some(c.id),
            _ => None,
        })
        .collect()
}

fn one_at_a_time() -> Scheduler {
    Scheduler::new(Config { max_concurrent: 1, soft_timeout: None, idle_timeout: None, ..Config::default() })
}

/// Priority flips and cancels leave entries behind in the queues; they
/// stay bounded by the waiting requests, and the start order is still by
/// class, then original enqueue order.
#[test]
fn leftovers_stay_bounded_and_order_survives_priority_flips() {
    let mut s = one_at_a_time();
    let peer = s.add_peer(High);
    let now = Instant::now();
    let url = Url::parse("http://h.example/x").unwrap();
    let blocker = s.enqueue(peer, Request::get(url.clone()), now).unwrap();
    assert_eq!(started(&mut s), vec![blocker]);
    let ids: Vec<_> = (0..60).map(|_| s.enqueue(peer, Request::get(url.clone()), now).unwrap()).collect();
    for round in 0..50 {
        for (i, &id) in ids.iter().enumerate() {
            let p = if (i + round) % 3 == 0 { High } else { Low };
            s.set_priority(id, p, now);
        }
        let QueueFootprint { entries, waiting, .. } = s.queue_footprint();
        assert!(entries <= 2 * waiting + 2 * 9, "round {round}: {entries} entries for {waiting} waiting");
    }
    for &id in ids.iter().step_by(4) {
        s.cancel(id, now);
    }
    // Final priorities are those of round 49.
    let kept: Vec<(usize, RequestId)> = ids.iter().copied().enumerate().filter(|(i, _)| i % 4 != 0).collect();
    let high = kept.iter().filter(|(i, _)| (i + 49) % 3 == 0).map(|&(_, id)| id);
    let low = kept.iter().filter(|(i, _)| (i + 49) % 3 != 0).map(|&(_, id)| id);
    let expected: Vec<RequestId> = high.chain(low).collect();
    let mut order = Vec::new();
    let mut done = blocker;
    for _ in 0..expected.len() {
        s.on_complete(done, now + Duration::from_millis(1));
        let next = started(&mut s);
        assert_eq!(next.len(), 1);
        done = next[0];
        order.push(done);
    }
    assert_eq!(order, expected);
    let fp = s.queue_footprint();
    assert_eq!((fp.entries, fp.waiting), (0, 0), "nothing left behind once the queue is empty");
}

/// Emptied host queues are kept for the host's next request, at most 16
/// per peer and priority, and freed with their peer; a new peer (which
/// takes the removed one's freed table entry) starts clean.
#[test]
fn emptied_queues_are_bounded_and_freed_with_their_peer() {
    let mut s = one_at_a_time();
    let now = Instant::now();
    let a = s.add_peer(Low);
    for h in 0..40 {
        let id = s.enqueue(a, Request::get(Url::parse(&format!("http://h{h}.example/x")).unwrap()), now).unwrap();
        assert_eq!(started(&mut s), vec![id]);
        s.on_complete(id, now);
        let kept = s.queue_footprint().host_queues;
        assert!(kept <= 16, "{kept} queues kept after {h} hosts");
    }
    s.remove_peer(a, now);
    assert_eq!(s.queue_footprint().host_queues, 0, "freed with the peer");
    let b = s.add_peer(Low);
    let id = s.enqueue(b, Request::get(Url::parse("http://h39.example/x").unwrap()), now).unwrap();
    assert_eq!(started(&mut s), vec![id]);
    s.on_complete(id, now);
    assert_eq!(s.queue_footprint().host_queues, 1, "kept for its host's next request");
    s.shrink_to_fit();
    assert_eq!(s.queue_footprint(), QueueFootprint::default(), "shrink_to_fit frees the kept ones");
}
