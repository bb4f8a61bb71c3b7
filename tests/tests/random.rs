//! Random operation sequences against every kind of config, with the
//! invariant checker on after every step: no panic, no livelock, limits
//! held, exactly one terminal event per request, memory back to baseline,
//! and the same inputs always give the same outputs.

use proptest::prelude::*;
use std::time::Duration;
use weir_tests::*;

#[derive(Debug, Clone)]
enum Op {
    AddPeer(bool),
    RemovePeer(u8),
    SetPeerPriority(u8, bool),
    NewGroup(u8),
    CancelGroup(u8),
    Enqueue { peer: u8, host: u8, high: bool, group: Option<u8>, range: Option<(u8, u8)> },
    Cancel(u8),
    SetPriority(u8, bool),
    Bytes(u8, u16),
    Complete(u8),
    Fail(u8, u8),
    Advance(u16),
    Backwards(u16),
    Shutdown,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => any::<bool>().prop_map(Op::AddPeer),
        1 => any::<u8>().prop_map(Op::RemovePeer),
        1 => (any::<u8>(), any::<bool>()).prop_map(|(p, h)| Op::SetPeerPriority(p, h)),
        1 => any::<u8>().prop_map(Op::NewGroup),
        1 => any::<u8>().prop_map(Op::CancelGroup),
        8 => (any::<u8>(), 0u8..4, any::<bool>(), proptest::option::of(any::<u8>()), proptest::option::weighted(0.2, (any::<u8>(), any::<u8>())))
            .prop_map(|(peer, host, high, group, range)| Op::Enqueue { peer, host, high, group, range }),
        2 => any::<u8>().prop_map(Op::Cancel),
        2 => (any::<u8>(), any::<bool>()).prop_map(|(r, h)| Op::SetPriority(r, h)),
        5 => (any::<u8>(), 0u16..2000).prop_map(|(r, n)| Op::Bytes(r, n)),
        4 => any::<u8>().prop_map(Op::Complete),
        3 => (any::<u8>(), any::<u8>()).prop_map(|(r, e)| Op::Fail(r, e)),
        4 => (0u16..3000).prop_map(Op::Advance),
        1 => (0u16..500).prop_map(Op::Backwards),
        1 => Just(Op::Shutdown).prop_filter("rare", |_| true),
    ]
}

fn config() -> impl Strategy<Value = Config> {
    (
        1usize..5,
        proptest::option::of(1usize..3),
        proptest::option::of(1usize..3),
        proptest::option::of(1usize..20),
        (any::<bool>(), any::<bool>(), any::<bool>()),
        (0u32..4, any::<bool>(), any::<bool>(), proptest::option::of(0u64..2000), any::<u64>()),
    )
        .prop_map(|(max_concurrent, max_per_host, max_low_in_flight, max_queued, (soft, idle, hard), r)| {
            let (max_retries, jitter, preempt_low, promote, seed) = r;
            Config {
                max_concurrent,
                max_per_host,
                max_low_in_flight,
                max_queued,
                soft_timeout: soft.then(|| ms(300)),
                idle_timeout: idle.then(|| ms(700)),
                hard_timeout: hard.then(|| ms(1500)),
                retry: RetryPolicy { max_retries, base: ms(50), cap: ms(400), jitter, max_retry_after: ms(1000) },
                preempt_low,
                promote_after: promote.map(ms),
                seed,
            }
        })
}

fn error(e: u8) -> NetError {
    match e % 8 {
        0 => NetError::Timeout,
        1 => NetError::Reset("reset".into()),
        2 => NetError::Connect("refused".into()),
        3 => NetError::Status { status: 503, retry_after: Some(ms(u64::from(e) * 10)) },
        4 => NetError::Status { status: 429, retry_after: None },
        5 => NetError::Status { status: 404, retry_after: None },
        6 => NetError::Tls("bad cert".into()),
        _ => NetError::Dns("nxdomain".into()),
    }
}

fn pick<T: Copy>(v: &[T], i: u8) -> Option<T> {
    (!v.is_empty()).then(|| v[usize::from(i) % v.len()])
}

/// Run the ops, then finish every transfer; returns the output log.
fn run(cfg: &Config, ops: &[Op]) -> Vec<Output> {
    let mut sim = Sim::new(cfg.clone());
    let mut peers = vec![sim.peer(RequestPriority::Low)];
    let mut groups: Vec<GroupId> = Vec::new();
    let mut reqs: Vec<RequestId> = Vec::new();
    for op in ops {
        let now = sim.now;
        match *op {
            Op::AddPeer(h) => peers.push(sim.peer(if h { RequestPriority::High } else { RequestPriority::Low })),
            Op::RemovePeer(i) => {
                if let Some(p) = pick(&peers, i) {
                    sim.s.remove_peer(p, now);
                }
            }
            Op::SetPeerPriority(i, h) => {
                if let Some(p) = pick(&peers, i) {
                    sim.s.set_peer_priority(p, if h { RequestPriority::High } else { RequestPriority::Low }, now);
                }
            }
            Op::NewGroup(i) => {
                if let Some(p) = pick(&peers, i) {
                    groups.push(sim.s.new_group(p));
                }
            }
            Op::CancelGroup(i) => {
                if let Some(g) = pick(&groups, i) {
                    sim.s.cancel_group(g, now);
                }
            }
            Op::Enqueue { peer, host, high, group, range } => {
                let Some(p) = pick(&peers, peer) else { continue };
                let mut r = get(&format!("http://h{host}.example/{}", reqs.len()));
                if high {
                    r = r.priority(RequestPriority::High);
                }
                if let Some(g) = group.and_then(|g| pick(&groups, g)) {
                    r = r.group(g);
                }
                if let Some((a, b)) = range {
                    r = r.range(u64::from(a), Some(u64::from(b)));
                }
                let before = sim.s.queued();
                match sim.s.enqueue(p, r, now) {
                    Ok(id) => reqs.push(id),
                    Err(EnqueueError::QueueFull) => {
                        assert!(cfg.max_queued.is_some_and(|m| before >= m), "QueueFull below max_queued");
                    }
                    Err(_) => {}
                }
            }
            Op::Cancel(i) => {
                if let Some(r) = pick(&reqs, i) {
                    sim.s.cancel(r, now);
                }
            }
            Op::SetPriority(i, h) => {
                if let Some(r) = pick(&reqs, i) {
                    sim.s.set_priority(r, if h { RequestPriority::High } else { RequestPriority::Low }, now);
                }
            }
            Op::Bytes(i, n) => {
                if let Some(r) = pick(&reqs, i) {
                    sim.s.on_bytes(r, u64::from(n), now);
                }
            }
            Op::Complete(i) => {
                if let Some(r) = pick(&reqs, i) {
                    sim.s.on_complete(r, now);
                }
            }
            Op::Fail(i, e) => {
                if let Some(r) = pick(&reqs, i) {
                    sim.s.on_failed(r, error(e), now);
                }
            }
            Op::Advance(d) => {
                sim.advance(ms(u64::from(d)));
            }
            Op::Backwards(d) => {
                let back = sim.now.checked_sub(ms(u64::from(d))).unwrap_or(sim.now);
                sim.s.handle_timeout(back);
            }
            Op::Shutdown => sim.s.shutdown(now),
        }
        sim.drain();
        assert!(sim.s.in_flight() <= cfg.max_concurrent);
    }

    // Finish: complete whatever runs, let timers fire, until nothing is left.
    for _ in 0..10_000 {
        if sim.checker.live() == 0 {
            break;
        }
        let running: Vec<RequestId> = reqs.iter().copied().filter(|r| sim.s.priority_of(*r).is_some()).collect();
        for r in running {
            sim.s.on_complete(r, sim.now);
        }
        sim.drain();
        if let Some(d) = sim.s.poll_timeout() {
            sim.now = sim.now.max(d);
            sim.s.handle_timeout(sim.now);
        }
        sim.drain();
    }
    assert_eq!(sim.checker.live(), 0, "every request ended");
    for r in &reqs {
        let _ = sim.terminal(*r);
    }
    let fp = sim.s.footprint();
    assert_eq!(fp, Footprint { peers: fp.peers, groups: fp.groups, ..Footprint::default() }, "memory back to baseline");
    assert_eq!(sim.s.poll_timeout(), None);
    sim.log
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn random_operations_keep_every_invariant(cfg in config(), ops in proptest::collection::vec(op(), 1..120)) {
        let a = run(&cfg, &ops);
        let b = run(&cfg, &ops);
        prop_assert_eq!(a, b, "same inputs, same outputs");
    }
}

#[test]
fn a_long_mixed_run_is_deterministic() {
    let cfg = Config {
        max_concurrent: 3,
        max_per_host: Some(2),
        preempt_low: true,
        promote_after: Some(ms(400)),
        seed: 9,
        ..Config::default()
    };
    let ops: Vec<Op> = (0..2000u32)
        .map(|i| {
            let b = (i.wrapping_mul(2_654_435_761) >> 24) as u8;
            match i % 7 {
                0 | 3 => Op::Enqueue { peer: b, host: b % 4, high: b % 3 == 0, group: None, range: None },
                1 => Op::Bytes(b, 500),
                2 => Op::Advance(u16::from(b) * 3),
                4 => Op::Complete(b),
                5 => Op::Fail(b, b),
                _ => Op::AddPeer(b % 2 == 0),
            }
        })
        .collect();
    let a = run(&cfg, &ops);
    assert!(a.len() > 2000, "the run did something: {} outputs", a.len());
    assert_eq!(a, run(&cfg, &ops));
    let _ = Duration::ZERO;
}
