//! Any sequence of operations against any config: no panic, no livelock,
//! every invariant of the checker after every step, memory back to baseline.
#![no_main]
#![forbid(unsafe_code)]

use libfuzzer_sys::fuzz_target;
use weir_tests::ops::{decode, run};

fuzz_target!(|data: &[u8]| {
    let (cfg, ops) = decode(data, 400);
    let _ = run(&cfg, &ops, false);
});
