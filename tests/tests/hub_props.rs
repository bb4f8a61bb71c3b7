//! The `hub` fuzz target's checks on random cases, on stable: random
//! commands, transfer steps, failures and time against the hub; see
//! `weir_tests::hub_fuzz` for the invariants.

use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]
    #[test]
    fn every_start_is_one_transfer_and_every_download_settles_once(data in proptest::collection::vec(any::<u8>(), 0..300)) {
        weir_tests::hub_fuzz::run(&data);
    }
}
