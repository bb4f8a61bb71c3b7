//! The same operations against the real scheduler and the reference model:
//! identical outputs, counts and deadlines after every step; and a second
//! run of the real scheduler gives the same log (determinism).
#![no_main]
#![forbid(unsafe_code)]

use libfuzzer_sys::fuzz_target;
use weir_tests::ops::{decode, run};

fuzz_target!(|data: &[u8]| {
    let (cfg, ops) = decode(data, 200);
    let a = run(&cfg, &ops, true);
    let b = run(&cfg, &ops, false);
    assert_eq!(a, b, "same inputs, same outputs");
});
