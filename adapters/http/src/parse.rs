//! Header parsers the adapter owns: `Retry-After` and `Content-Range`.
//! Pure functions, so they can be fuzzed and unit-tested alone.

use std::time::{Duration, SystemTime};

/// Parse a `Retry-After` value: delay-seconds or an HTTP date, relative to
/// `now`. A date in the past means "now" (zero). Garbage gives `None`.
#[must_use]
pub fn retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let v = value.trim();
    if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) {
        // Longer than u64 seconds is "forever": saturate, the core refuses it.
        return Some(Duration::from_secs(v.parse::<u64>().unwrap_or(u64::MAX)));
    }
    let at = httpdate::parse_http_date(v).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// A parsed `Content-Range: bytes first-last/total` (total may be `*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContentRange {
    /// First byte position.
    pub first: u64,
    /// Last byte position (inclusive).
    pub last: u64,
    /// Complete length, when the server knows it.
    pub total: Option<u64>,
}

/// Parse a `Content-Range` header of a 206 answer. `None` for anything that
/// is not a satisfied byte range with `first <= last < total`.
#[must_use]
pub fn content_range(value: &str) -> Option<ContentRange> {
    let rest = value.trim().strip_prefix("bytes")?.trim_start();
    let (span, total) = rest.split_once('/')?;
    let (first, last) = span.trim().split_once('-')?;
    let num = |s: &str| -> Option<u64> {
        let s = s.trim();
        (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())).then(|| s.parse().ok()).flatten()
    };
    let (first, last) = (num(first)?, num(last)?);
    let total = match total.trim() {
        "*" => None,
        t => Some(num(t)?),
    };
    if first > last || total.is_some_and(|t| last >= t) {
        return None;
    }
    Some(ContentRange { first, last, total })
}

/// The `Range` header value for bytes `start..=end` (`end` open when `None`).
#[must_use]
pub fn range_header(start: u64, end: Option<u64>) -> String {
    match end {
        Some(e) => format!("bytes={start}-{e}"),
        None => format!("bytes={start}-"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_seconds_and_dates() {
        let now = httpdate::parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT").unwrap();
        assert_eq!(retry_after("120", now), Some(Duration::from_secs(120)));
        assert_eq!(retry_after(" 0 ", now), Some(Duration::ZERO));
        assert_eq!(retry_after("Sun, 06 Nov 1994 08:50:07 GMT", now), Some(Duration::from_secs(30)));
        assert_eq!(retry_after("Sun, 06 Nov 1994 08:00:00 GMT", now), Some(Duration::ZERO), "past dates mean now");
        assert_eq!(retry_after("99999999999999999999999", now), Some(Duration::from_secs(u64::MAX)));
        for bad in ["", "-1", "1.5", "soon", "Sun, 06 Nov 1994"] {
            assert_eq!(retry_after(bad, now), None, "{bad:?}");
        }
    }

    #[test]
    fn content_range_accepts_only_sane_ranges() {
        assert_eq!(content_range("bytes 0-99/1000"), Some(ContentRange { first: 0, last: 99, total: Some(1000) }));
        assert_eq!(content_range("bytes 500-999/*"), Some(ContentRange { first: 500, last: 999, total: None }));
        for bad in ["bytes 10-5/100", "bytes 0-100/100", "bytes */100", "items 0-1/2", "bytes 0-1", "bytes -1-2/9", ""]
        {
            assert_eq!(content_range(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn range_headers() {
        assert_eq!(range_header(5, None), "bytes=5-");
        assert_eq!(range_header(5, Some(9)), "bytes=5-9");
    }
}
