//! `weir_http::trace::replay` on any bytes: a trace that is cut, corrupted
//! or not a trace at all is refused with the line that is wrong, or replays;
//! never a panic, never a hang.
#![no_main]
#![forbid(unsafe_code)]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(e) = weir_http::trace::replay(data) {
        assert!(e.line >= 1);
    }
});
