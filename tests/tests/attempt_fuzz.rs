//! The `attempt` fuzz target's checks on random cases, on stable: a
//! sequence of exchanges against a model resource that changes and a
//! server that misbehaves; the sink is always a prefix of one version and,
//! once complete, exactly one version's wanted range.

use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, ..ProptestConfig::default() })]
    #[test]
    fn a_completed_sink_is_exactly_one_version(data in proptest::collection::vec(any::<u8>(), 0..160)) {
        weir_tests::exchange_fuzz::run(&data);
    }
}
