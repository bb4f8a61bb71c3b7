//! `weir_http::Attempt` against a model resource that changes versions and
//! a server that ignores `Range`/`If-Range`, lies about `Content-Range`,
//! `Content-Length` and totals, sends over-long or cut bodies, resets,
//! redirects and fails, attempts in a row. Never a panic; the sink is always
//! a prefix of one version, and exactly one version's range once complete
//! (`weir_tests::exchange_fuzz`, also run by proptest on stable).
#![no_main]
#![forbid(unsafe_code)]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| weir_tests::exchange_fuzz::run(data));
