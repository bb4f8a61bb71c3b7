//! The header parsers of weir-ureq on arbitrary input: no panic, and what
//! they accept is sane and round-trips.
#![no_main]
#![forbid(unsafe_code)]

use std::time::{Duration, SystemTime};

use libfuzzer_sys::fuzz_target;
use weir_http::{content_range, retry_after, ContentRange};

fuzz_target!(|data: &[u8]| {
    let s = String::from_utf8_lossy(data);
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    if let Some(d) = retry_after(&s, now) {
        // Seconds parse back to themselves; dates never go below zero.
        if s.trim().bytes().all(|b| b.is_ascii_digit()) {
            if let Ok(n) = s.trim().parse::<u64>() {
                assert_eq!(d, Duration::from_secs(n));
            }
        }
    }
    if let Some(cr) = content_range(&s) {
        assert!(cr.first <= cr.last);
        assert!(cr.total.map_or(true, |t| cr.last < t));
        let text = match cr.total {
            Some(t) => format!("bytes {}-{}/{t}", cr.first, cr.last),
            None => format!("bytes {}-{}/*", cr.first, cr.last),
        };
        assert_eq!(content_range(&text), Some(ContentRange { ..cr }));
    }
});
