//! Random operation sequences (see `weir_tests::ops`) against every kind of
//! config, with the invariant checker on after every step and the reference
//! model compared output by output: no panic, no livelock, limits held,
//! exactly one terminal event per request, memory back to baseline, and the
//! same inputs always give the same outputs.

use proptest::prelude::*;
use weir_tests::ops::{decode, run, Op};
use weir_tests::*;

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn the_scheduler_matches_the_model_and_keeps_every_invariant(data in proptest::collection::vec(any::<u8>(), 12..600)) {
        let (cfg, ops) = decode(&data, 200);
        let a = run(&cfg, &ops, true);
        let b = run(&cfg, &ops, false);
        prop_assert_eq!(a, b, "same inputs, same outputs");
    }
}

#[test]
fn a_long_mixed_run_matches_the_model() {
    let cfg = Config {
        max_concurrent: 3,
        max_per_host: Some(2),
        preempt_low: true,
        promote_after: Some(ms(400)),
        seed: 9,
        ..Config::default()
    };
    let ops: Vec<Op> = (0..3000u32)
        .map(|i| {
            let b = (i.wrapping_mul(2_654_435_761) >> 24) as u8;
            match i % 9 {
                0 | 3 | 7 => Op::Enqueue {
                    peer: b,
                    host: b % 4,
                    high: b.is_multiple_of(3),
                    head: false,
                    group: None,
                    range: None,
                    timeouts: b.is_multiple_of(5).then_some(b),
                    retry: b.is_multiple_of(7).then_some(b),
                    deadline: b.is_multiple_of(11).then(|| u16::from(b) * 8),
                    mirrors: if b.is_multiple_of(6) { vec![(b / 6) % 4, b % 4] } else { Vec::new() },
                },
                1 => Op::Bytes(b, 500),
                2 => Op::Advance(u16::from(b) * 3),
                4 => Op::Complete(b),
                5 => Op::Fail(b, b),
                6 => Op::SetPriority(b, b.is_multiple_of(2)),
                _ => Op::AddPeer(b.is_multiple_of(2)),
            }
        })
        .collect();
    let a = run(&cfg, &ops, true);
    assert!(a.len() > 3000, "the run did something: {} outputs", a.len());
    assert_eq!(a, run(&cfg, &ops, false));
}
