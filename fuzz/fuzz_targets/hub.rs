//! `weir_http::Hub` under random commands (fetch, cancel, priorities,
//! peers, shutdown), transfer steps, failures and time: every start is one
//! transfer, every download settles exactly once and after its terminal
//! event, a completed one is byte-exact with one byte count
//! (`weir_tests::hub_fuzz`, also run by proptest on stable).
#![no_main]
#![forbid(unsafe_code)]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| weir_tests::hub_fuzz::run(data));
