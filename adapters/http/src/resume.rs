//! Resume planning: what to ask for given what the sink already holds, and
//! how to read the answer so every byte of the resource reaches the sink
//! exactly once. Pure logic; the adapters do the I/O.

use std::time::SystemTime;

use weir::{NetError, RequestMethod};

use crate::parse::{content_range, range_header, retry_after};

/// The request headers of one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ask {
    /// Absolute offset of the first byte asked for.
    pub start: u64,
    /// Whether a `Range` header goes out.
    pub ranged: bool,
    /// Headers to add (`Range`, `If-Range`).
    pub headers: Vec<(&'static str, String)>,
}

/// Plan an attempt. `range` is the request's original range, `written` the
/// bytes its sink holds, `validator` the first answer's `ETag` or
/// `Last-Modified`. `None` when a bounded range is already complete.
#[must_use]
pub fn ask(
    method: RequestMethod,
    range: Option<(u64, Option<u64>)>,
    written: u64,
    validator: Option<&str>,
) -> Option<Ask> {
    let (orig_start, orig_end) = range.unwrap_or((0, None));
    let start = orig_start.saturating_add(written);
    if orig_end.is_some_and(|end| start > end) {
        return None;
    }
    let ranged = method == RequestMethod::Get && (range.is_some() || written > 0);
    let mut headers = Vec::new();
    if ranged {
        headers.push(("Range", range_header(start, orig_end)));
        if let (true, Some(v)) = (written > 0, validator) {
            headers.push(("If-Range", v.to_owned()));
        }
    }
    Some(Ask { start, ranged, headers })
}

/// An error status (with its `Retry-After`) or an unfollowed redirect as the
/// `NetError` the core decides on; `None` for a 2xx.
#[must_use]
pub fn status_error(status: u16, retry_after_header: Option<&str>) -> Option<NetError> {
    if status >= 400 {
        let ra = retry_after_header.and_then(|v| retry_after(v, SystemTime::now()));
        return Some(NetError::Status { status, retry_after: ra });
    }
    (status >= 300).then(|| NetError::Protocol(format!("unexpected status {status} (a redirect not followed)")))
}

/// How to read a 2xx body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    /// The sink must start over (the resource changed between attempts).
    pub reset: bool,
    /// Body bytes to drop before the first one the sink needs.
    pub skip: u64,
}

/// Check a 2xx answer against what was asked and plan how to read it.
///
/// * A 206 must cover exactly from `ask.start` (and not past a bounded
///   range's end); anything else is a [`NetError::Protocol`].
/// * A 200 to a range request means the server ignored `Range`, or
///   `If-Range` found the resource changed: with the same validator the
///   delivered prefix is skipped; with another one the sink starts over.
///
/// # Errors
/// A mismatching 206.
pub fn plan(
    status: u16,
    content_range_header: Option<&str>,
    ask: &Ask,
    range: Option<(u64, Option<u64>)>,
    written: u64,
    validator: Option<&str>,
    new_validator: Option<&str>,
) -> Result<Plan, NetError> {
    let (orig_start, orig_end) = range.unwrap_or((0, None));
    if status == 206 {
        let cr = content_range_header
            .and_then(content_range)
            .ok_or_else(|| NetError::Protocol("206 without a valid Content-Range".into()))?;
        if !ask.ranged || cr.first != ask.start || orig_end.is_some_and(|e| cr.last > e) {
            return Err(NetError::Protocol(format!(
                "206 for bytes {}-{} does not match the requested range {}",
                cr.first,
                cr.last,
                range_header(ask.start, orig_end)
            )));
        }
        return Ok(Plan { reset: false, skip: 0 });
    }
    if !ask.ranged {
        return Ok(Plan { reset: false, skip: 0 });
    }
    let changed = written > 0 && validator.is_some() && new_validator != validator;
    Ok(if changed { Plan { reset: true, skip: orig_start } } else { Plan { reset: false, skip: ask.start } })
}

/// Cuts body chunks to what the sink needs: drops a skipped prefix and
/// anything past a bounded range's end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    skip: u64,
    want: Option<u64>,
}

impl Cursor {
    /// For a body read with `plan`, the sink holding `written` bytes of `range`.
    #[must_use]
    pub fn new(plan: Plan, range: Option<(u64, Option<u64>)>, written: u64) -> Self {
        let (orig_start, orig_end) = range.unwrap_or((0, None));
        let want = orig_end.map(|end| (end - orig_start + 1).saturating_sub(written));
        Self { skip: plan.skip, want }
    }

    /// The part of `chunk` the sink needs (maybe empty).
    pub fn take<'a>(&mut self, chunk: &'a [u8]) -> &'a [u8] {
        let k = usize::try_from(self.skip).unwrap_or(usize::MAX).min(chunk.len());
        self.skip -= k as u64;
        let rest = &chunk[k..];
        let rest = match self.want {
            Some(w) => &rest[..usize::try_from(w).unwrap_or(usize::MAX).min(rest.len())],
            None => rest,
        };
        if let Some(w) = &mut self.want {
            *w -= rest.len() as u64;
        }
        rest
    }

    /// Every wanted byte arrived (a bounded range is complete).
    #[must_use]
    pub fn done(&self) -> bool {
        self.want == Some(0)
    }

    /// The body ended: fine unless bytes are still owed.
    ///
    /// # Errors
    /// [`NetError::Reset`] when the body ended early.
    pub fn finish(&self) -> Result<(), NetError> {
        if self.skip > 0 {
            return Err(NetError::Reset("the body ended before the resume offset".into()));
        }
        if self.want.is_some_and(|w| w > 0) {
            return Err(NetError::Reset("the body ended before the end of the requested range".into()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GET: RequestMethod = RequestMethod::Get;

    #[test]
    fn asks_for_what_is_missing_with_if_range() {
        assert_eq!(ask(GET, None, 0, None), Some(Ask { start: 0, ranged: false, headers: vec![] }));
        let a = ask(GET, None, 500, Some("\"e\"")).unwrap();
        assert_eq!(a.headers, vec![("Range", "bytes=500-".into()), ("If-Range", "\"e\"".into())]);
        let a = ask(GET, Some((100, Some(199))), 30, None).unwrap();
        assert_eq!((a.start, a.headers), (130, vec![("Range", "bytes=130-199".into())]));
        assert_eq!(ask(GET, Some((100, Some(199))), 100, None), None, "complete");
        assert!(!ask(RequestMethod::Head, None, 5, None).unwrap().ranged);
    }

    #[test]
    fn plans_206_200_and_changed_resources() {
        let a = ask(GET, None, 500, Some("v1")).unwrap();
        assert_eq!(
            plan(206, Some("bytes 500-999/1000"), &a, None, 500, Some("v1"), Some("v1")),
            Ok(Plan { reset: false, skip: 0 })
        );
        assert!(plan(206, Some("bytes 0-999/1000"), &a, None, 500, Some("v1"), Some("v1")).is_err());
        assert!(plan(206, None, &a, None, 500, Some("v1"), Some("v1")).is_err());
        assert_eq!(plan(200, None, &a, None, 500, Some("v1"), Some("v1")), Ok(Plan { reset: false, skip: 500 }));
        assert_eq!(plan(200, None, &a, None, 500, Some("v1"), Some("v2")), Ok(Plan { reset: true, skip: 0 }));
        let a = ask(GET, Some((100, Some(199))), 0, None).unwrap();
        assert!(
            plan(206, Some("bytes 100-299/1000"), &a, Some((100, Some(199))), 0, None, None).is_err(),
            "past the end"
        );
    }

    #[test]
    fn cursor_skips_and_stops() {
        let mut c = Cursor::new(Plan { reset: false, skip: 3 }, Some((0, Some(6))), 0);
        assert_eq!(c.take(b"ab"), b"");
        assert_eq!(c.take(b"cdefg"), b"defg");
        assert!(!c.done());
        assert_eq!(c.take(b"hijk"), b"hij");
        assert!(c.done());
        assert_eq!(c.finish(), Ok(()));
        let c = Cursor::new(Plan { reset: false, skip: 10 }, None, 0);
        assert!(c.finish().is_err());
    }
}
