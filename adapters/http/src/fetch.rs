//! What the HTTP layer knows about one download beyond the scheduler's
//! `Request`: its headers and what its bytes must turn out to be. Kept in
//! the adapter's per-download record, never in the core.

use std::fmt;
use std::sync::Arc;

use crate::headers::Headers;
use crate::integrity::Expect;

/// The HTTP side of one download.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fetch {
    /// Headers to send (see [`Headers::for_attempt`]).
    pub headers: Headers,
    /// Size and digest the bytes must have; checked before the download is
    /// reported complete (a mismatch fails it with `NetError::Integrity`).
    pub expect: Expect,
    /// Asked about every response weir would accept (after its own checks
    /// of status, range and version), before a byte reaches the sink.
    pub check: Option<Check>,
}

/// A response the download would accept: its status and headers (names
/// lower-case as the server sent them, compare ignoring case).
#[derive(Debug, Clone, Copy)]
pub struct Head<'a> {
    /// 200 or 206 (or what else weir accepts, e.g. a 416 that completes).
    pub status: u16,
    /// The response headers.
    pub headers: &'a [(String, String)],
}

impl Head<'_> {
    /// The first value of header `name` (any case).
    #[must_use]
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// A caller's verdict on a response head: `Err(why)` refuses it, and the
/// download fails with `NetError::Integrity("response refused: why")`
/// (not retried: the same server would answer the same). E.g. refuse
/// `text/html` for a media segment, which is what a captive portal's 200
/// looks like. Two checks are equal when they are the same closure.
#[derive(Clone)]
pub struct Check(Arc<Verdict>);

/// What a [`Check`] runs.
type Verdict = dyn Fn(&Head<'_>) -> Result<(), String> + Send + Sync;

impl Check {
    /// A check from a closure.
    pub fn new(f: impl Fn(&Head<'_>) -> Result<(), String> + Send + Sync + 'static) -> Self {
        Check(Arc::new(f))
    }

    /// Its verdict on `head`.
    ///
    /// # Errors
    /// The reason the closure gave for refusing it.
    pub fn verdict(&self, head: &Head<'_>) -> Result<(), String> {
        (self.0)(head)
    }
}

impl fmt::Debug for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Check(..)")
    }
}

impl PartialEq for Check {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for Check {}

impl Fetch {
    /// No headers, no expectations.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// With these headers.
    #[must_use]
    pub fn headers(mut self, headers: Headers) -> Self {
        self.headers = headers;
        self
    }

    /// Expect exactly `size` bytes.
    #[must_use]
    pub fn size(mut self, size: u64) -> Self {
        self.expect.size = Some(size);
        self
    }

    /// Ask `check` about every response before accepting it (see [`Check`]).
    #[must_use]
    pub fn check(mut self, check: impl Fn(&Head<'_>) -> Result<(), String> + Send + Sync + 'static) -> Self {
        self.check = Some(Check::new(check));
        self
    }

    /// Expect this SHA-256 (see [`Expect::parse_sha256`] for hex text).
    #[must_use]
    pub fn sha256(mut self, digest: [u8; 32]) -> Self {
        self.expect.sha256 = Some(digest);
        self
    }
}

impl From<Headers> for Fetch {
    fn from(headers: Headers) -> Self {
        Fetch { headers, ..Fetch::default() }
    }
}
