//! What the HTTP layer knows about one download beyond the scheduler's
//! `Request`: its headers and what its bytes must turn out to be. Kept in
//! the adapter's per-download record, never in the core.

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
}

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

    /// Expect this SHA-256 (see [`Expect::parse_sha256`] for hex text).
    #[must_use]
    pub fn sha256(mut self, digest: [u8; 32]) -> Self {
        self.expect.sha256 = Some(digest);
        self
    }
}

impl From<Headers> for Fetch {
    fn from(headers: Headers) -> Self {
        Fetch { headers, expect: Expect::default() }
    }
}
