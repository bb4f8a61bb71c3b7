//! One HTTP exchange of one request, as a sans-IO state machine.
//!
//! An [`Attempt`] is told what the sink already holds ([`Held`]: a byte
//! count and the [`Version`] those bytes belong to) and which part of the
//! resource the request wants. It says what to ask for ([`Attempt::ask`]),
//! judges the response head ([`Attempt::on_head`]: follow a redirect, fail,
//! or accept, restarting the sink when the resource changed), cuts every
//! body chunk to the part the sink must write ([`Attempt::on_body`]) and
//! decides at the end whether the exchange is complete or truncated
//! ([`Attempt::on_end`]). Every HTTP rule of resume and validation lives
//! here and nowhere else; the adapters move bytes.
//!
//! The rule it exists for: **one version, every byte once.** Bytes are
//! appended to a sink only when the answer provably continues the version
//! the sink holds: a `206` must start where the sink ends, cover exactly the
//! span its `Content-Range` announces and carry the same validator and total
//! length; a `200` to a resumed request is skipped up to where the sink ends
//! only when it is the same version, and restarts the sink otherwise. A sink
//! that cannot start over (a caller's writer) fails instead of splicing.
//!
//! ```
//! use std::time::SystemTime;
//! use weir_http::attempt::{Attempt, Held, Verdict, Version};
//! use weir::{RequestMethod, Url};
//!
//! // The sink holds 4 bytes of version "v1" of a 10-byte resource.
//! let held = Held { bytes: 4, version: Version { validator: Some("\"v1\"".into()), total: Some(10) } };
//! let url = Url::parse("http://127.0.0.1/f").unwrap();
//! let mut a = Attempt::new(url, RequestMethod::Get, None, held, true);
//! let ask = a.ask().expect("bytes are missing");
//! assert_eq!(ask.headers, [("Range", "bytes=4-".to_owned()), ("If-Range", "\"v1\"".to_owned())]);
//!
//! // The server ignored If-Range and sent another version's tail: refused.
//! let head = [("content-range", "bytes 4-9/10"), ("etag", "\"v2\"")];
//! let v = a.on_head(206, &head, SystemTime::UNIX_EPOCH);
//! assert!(matches!(v, Verdict::Fail { discard: true, .. }), "{v:?}");
//! ```

use std::time::SystemTime;

use weir::{NetError, RequestMethod, Url};

use crate::parse::{content_range, range_header, retry_after};

/// Unread body bytes an adapter reads and drops after the wanted part, so
/// the connection can go back to the pool; a longer rest closes it.
pub const DRAIN_LIMIT: u64 = 64 * 1024;

/// The version of a resource some bytes belong to: its validator (a strong
/// `ETag`, else `Last-Modified`) and its total length, each when known.
/// Bytes of one version continue bytes of another only when their
/// validators are equal, their totals do not differ, and the earlier one
/// can be checked at all (it has a validator, or both totals are known):
/// bytes fetched under nothing checkable are never resumed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Version {
    /// Strong `ETag`, else `Last-Modified`, of the answer the bytes came from.
    pub validator: Option<String>,
    /// Total length of the resource, from a `Content-Range` total or the
    /// `Content-Length` of a full answer.
    pub total: Option<u64>,
}

impl Version {
    /// Whether bytes of `other` may continue bytes of `self`.
    #[must_use]
    pub fn continues(&self, other: &Version) -> bool {
        let checkable = self.validator.is_some() || self.total.is_some() && other.total.is_some();
        checkable
            && self.validator == other.validator
            && !matches!((self.total, other.total), (Some(a), Some(b)) if a != b)
    }

    /// Whether a later answer can be checked against this version at all.
    #[must_use]
    pub fn is_checkable(&self) -> bool {
        self.validator.is_some() || self.total.is_some()
    }

    /// `self` with what `other` adds (a total learnt later).
    fn merged(&self, other: &Version) -> Version {
        Version { validator: self.validator.clone(), total: self.total.or(other.total) }
    }
}

/// What a sink holds when an attempt begins.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Held {
    /// Bytes of the request's range the sink holds, from its start.
    pub bytes: u64,
    /// The version they belong to.
    pub version: Version,
}

/// The request to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ask {
    /// Where to send it (changes when a redirect is followed).
    pub url: Url,
    /// `GET` or `HEAD`.
    pub method: RequestMethod,
    /// Headers weir owns: `Range` and `If-Range`.
    pub headers: Vec<(&'static str, String)>,
    /// The caller's headers for this attempt (see [`Attempt::with_headers`]).
    pub caller: Vec<(String, String)>,
}

/// The judgement of a response head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// A redirect to this URL (resolved against the asked one). The
    /// exchange is over: report it to the scheduler
    /// (`Scheduler::on_redirect`), which decides whether and when the
    /// request fetches it, and checks the scheme, https downgrades and the
    /// number of redirects.
    Redirect(Url),
    /// Read the body. `restart`: empty the sink first (the resource changed,
    /// or it must be fetched from its start). `record`: this answer's status
    /// and headers describe the download from now on.
    Accept {
        /// Empty the sink before writing.
        restart: bool,
        /// This answer is the one the download's response reports.
        record: bool,
    },
    /// The exchange failed with `error`. `discard`: the sink's bytes belong
    /// to another version of the resource and must be dropped before any
    /// retry (only ever set for a sink that can start over).
    Fail {
        /// Why.
        error: NetError,
        /// Drop the sink's bytes.
        discard: bool,
    },
}

/// How a body ended, as the transport saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End {
    /// The transport saw the end of the body (its length, the last chunk,
    /// or a clean close of a body without a length).
    Clean,
    /// The transfer broke off with this error (reset, timeout).
    Broken(NetError),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Phase {
    /// Waiting for a response head.
    Asking,
    /// Reading the body of an accepted answer.
    Reading,
    /// Over: judged complete, failed, or nothing was needed.
    Over,
}

/// One HTTP exchange of one request. See the [module docs](self).
#[derive(Debug, Clone)]
pub struct Attempt {
    url: Url,
    method: RequestMethod,
    /// The request's original range: the sink's byte 0 is its start.
    start: u64,
    end: Option<u64>,
    held: Held,
    rewindable: bool,
    /// The caller's headers, sent with every request of the exchange.
    caller: Vec<(String, String)>,
    /// The sink's bytes can be checked against nothing: fetch from the
    /// start and restart the sink rather than risk a splice.
    stale: bool,
    phase: Phase,
    /// The version the sink holds after the head was accepted.
    version: Version,
    /// Body bytes to drop before the first one the sink needs.
    skip: u64,
    /// Sink bytes still wanted in this attempt (`None`: up to the body's end).
    want: Option<u64>,
    /// Body bytes the answer announced (`Content-Length`, or a 206's span).
    expect: Option<u64>,
    /// Body bytes received so far in this answer.
    received: u64,
    /// Whether the answer is a 206 (its body may not exceed its span).
    partial: bool,
    /// Whether reaching `want` ends the request (the resource ends there, or
    /// the request's bounded range does).
    final_span: bool,
}

fn header<'h>(headers: &'h [(impl AsRef<str>, impl AsRef<str>)], name: &str) -> Option<&'h str> {
    headers.iter().find(|(k, _)| k.as_ref().eq_ignore_ascii_case(name)).map(|(_, v)| v.as_ref().trim())
}

fn number(v: &str) -> Option<u64> {
    (!v.is_empty() && v.bytes().all(|b| b.is_ascii_digit())).then(|| v.parse().ok()).flatten()
}

/// The validator of an answer: a strong `ETag`, else `Last-Modified`. A weak
/// `ETag` promises equivalence, not identical bytes, so it cannot guard a splice.
fn validator(headers: &[(impl AsRef<str>, impl AsRef<str>)]) -> Option<String> {
    header(headers, "etag")
        .filter(|e| !e.starts_with("W/") && !e.is_empty())
        .or_else(|| header(headers, "last-modified").filter(|v| !v.is_empty()))
        .map(str::to_owned)
}

fn protocol(msg: String) -> Verdict {
    Verdict::Fail { error: NetError::Protocol(msg), discard: false }
}

impl Attempt {
    /// An attempt to fetch `range` (the request's original range; `None`:
    /// the whole resource) of `url` into a sink holding `held`.
    /// `rewindable`: the sink can start over from zero (memory, file).
    #[must_use]
    pub fn new(
        url: Url,
        method: RequestMethod,
        range: Option<(u64, Option<u64>)>,
        held: Held,
        rewindable: bool,
    ) -> Self {
        let (start, end) = range.unwrap_or((0, None));
        let stale = held.bytes > 0 && rewindable && !held.version.is_checkable();
        let held = if stale { Held::default() } else { held };
        let version = held.version.clone();
        let mut a = Attempt {
            url,
            method,
            start,
            end,
            held,
            rewindable,
            caller: Vec::new(),
            stale,
            phase: Phase::Asking,
            version,
            skip: 0,
            want: None,
            expect: None,
            received: 0,
            partial: false,
            final_span: false,
        };
        if a.first_missing().is_none() {
            a.phase = Phase::Over;
        }
        a
    }

    /// Send these headers too (the caller's, as
    /// [`Headers::for_attempt`](crate::Headers::for_attempt) makes them for
    /// this attempt's URL); `Range` and `If-Range` stay the attempt's.
    #[must_use]
    pub fn with_headers(mut self, headers: Vec<(String, String)>) -> Self {
        self.caller = headers;
        self
    }

    /// Absolute offset of the first byte the sink lacks; `None` when a
    /// bounded range is already complete (or lies past every offset).
    fn first_missing(&self) -> Option<u64> {
        let at = self.start.checked_add(self.held.bytes)?;
        match self.end {
            Some(end) if at > end => None,
            _ => Some(at),
        }
    }

    fn ranged(&self) -> bool {
        self.method == RequestMethod::Get && (self.start > 0 || self.end.is_some() || self.held.bytes > 0)
    }

    /// The request to send now, or `None` when nothing is missing (the
    /// request is complete without any exchange) or the attempt is over.
    #[must_use]
    pub fn ask(&self) -> Option<Ask> {
        if self.phase != Phase::Asking {
            return None;
        }
        let at = self.first_missing()?;
        let mut headers = Vec::new();
        if self.ranged() {
            headers.push(("Range", range_header(at, self.end)));
            if let (true, Some(v)) = (self.held.bytes > 0, &self.held.version.validator) {
                headers.push(("If-Range", v.clone()));
            }
        }
        Some(Ask { url: self.url.clone(), method: self.method, headers, caller: self.caller.clone() })
    }

    /// Whether nothing is left to do: every wanted byte is in the sink.
    /// True from the start for a bounded range already held in full.
    #[must_use]
    pub fn is_complete(&self) -> bool {
        self.phase == Phase::Over && self.first_missing().is_none()
            || self.phase == Phase::Reading && self.want == Some(0) && self.final_span
    }

    /// The URL asked now.
    #[must_use]
    pub fn url(&self) -> &Url {
        &self.url
    }

    /// The version the sink's bytes belong to once the head is accepted
    /// (store it with the sink: the next attempt validates against it).
    #[must_use]
    pub fn version(&self) -> &Version {
        &self.version
    }

    /// Bytes the sink will hold when this answer's wanted part has been
    /// written, when known (for a sink's size limit).
    #[must_use]
    pub fn final_size(&self) -> Option<u64> {
        let body = match (self.want, self.expect) {
            (Some(w), Some(e)) => w.min(e.saturating_sub(self.skip)),
            (Some(w), None) => w,
            (None, Some(e)) => e.saturating_sub(self.skip),
            (None, None) => return None,
        };
        Some(self.held.bytes.saturating_add(body))
    }

    /// Judge the response head: `status` and `headers` (names in any case).
    /// `now` dates a `Retry-After` given as an HTTP date.
    pub fn on_head(&mut self, status: u16, headers: &[(impl AsRef<str>, impl AsRef<str>)], now: SystemTime) -> Verdict {
        if self.phase != Phase::Asking {
            return protocol("a response head arrived for an exchange that is not waiting for one".into());
        }
        let verdict = self.judge(status, headers, now);
        self.phase = match verdict {
            Verdict::Accept { .. } => Phase::Reading,
            Verdict::Redirect(_) | Verdict::Fail { .. } => Phase::Over,
        };
        match verdict {
            Verdict::Accept { restart: true, .. } => self.held.bytes = 0,
            Verdict::Accept { record, .. } if self.stale => {
                return Verdict::Accept { restart: true, record };
            }
            _ => {}
        }
        verdict
    }

    fn judge(&mut self, status: u16, headers: &[(impl AsRef<str>, impl AsRef<str>)], now: SystemTime) -> Verdict {
        match status {
            100..=199 => protocol(format!("unexpected informational status {status} as the final answer")),
            206 if self.method == RequestMethod::Get => self.partial_content(headers),
            200..=299 => self.full_content(status, headers),
            301 | 302 | 303 | 307 | 308 => self.redirect(status, headers),
            416 => self.unsatisfiable(headers),
            400..=599 => {
                let retry_after = header(headers, "retry-after").and_then(|v| retry_after(v, now));
                Verdict::Fail { error: NetError::Status { status, retry_after }, discard: false }
            }
            _ => protocol(format!("unexpected status {status}")),
        }
    }

    fn redirect(&mut self, status: u16, headers: &[(impl AsRef<str>, impl AsRef<str>)]) -> Verdict {
        let Some(location) = header(headers, "location") else {
            return protocol(format!("a {status} redirect without a Location"));
        };
        // Resolved here; whether to follow (scheme, https downgrade, how
        // many) is the scheduler's decision (`Scheduler::on_redirect`).
        match self.url.join(location) {
            Ok(next) => Verdict::Redirect(next),
            Err(e) => protocol(format!("a {status} redirect to a bad Location {location:?}: {e}")),
        }
    }

    /// The sink's bytes are of another version: start over if the sink can.
    fn changed(&self, what: String) -> Verdict {
        if self.rewindable {
            Verdict::Fail { error: NetError::Reset(format!("{what}; starting over from byte 0")), discard: true }
        } else {
            protocol(format!("{what}, and the sink cannot be rewound"))
        }
    }

    fn partial_content(&mut self, headers: &[(impl AsRef<str>, impl AsRef<str>)]) -> Verdict {
        let Some(at) = self.first_missing().filter(|_| self.ranged()) else {
            return protocol("a 206 to a request that asked for no range".into());
        };
        let Some(cr) = header(headers, "content-range").and_then(content_range) else {
            return protocol("a 206 without a valid Content-Range".into());
        };
        let asked = range_header(at, self.end);
        if cr.first != at || self.end.is_some_and(|e| cr.last > e) {
            return protocol(format!("a 206 for bytes {}-{} to a request for {asked}", cr.first, cr.last));
        }
        let Some(span) = (cr.last - cr.first).checked_add(1) else {
            return protocol("a 206 spanning every offset".into());
        };
        if let Some(len) = header(headers, "content-length") {
            if number(len) != Some(span) {
                return protocol(format!("a 206 whose Content-Length {len} is not its span of {span} bytes"));
            }
        }
        let got = Version { validator: validator(headers), total: cr.total };
        if self.held.bytes > 0 && !self.held.version.continues(&got) {
            return self
                .changed(format!("the resource changed (held {:?}, the 206 is of {:?})", self.held.version, got));
        }
        // The span ends the request when it reaches the bounded range's end
        // or the resource's.
        let ends_range = self.end == Some(cr.last);
        let ends_resource = cr.total.is_some_and(|t| cr.last + 1 == t) || (self.end.is_none() && cr.total.is_none());
        self.final_span = ends_range || ends_resource;
        self.version = if self.held.bytes > 0 { self.held.version.merged(&got) } else { got };
        (self.skip, self.want, self.expect, self.partial) = (0, Some(span), Some(span), true);
        Verdict::Accept { restart: false, record: self.held.bytes == 0 }
    }

    fn full_content(&mut self, status: u16, headers: &[(impl AsRef<str>, impl AsRef<str>)]) -> Verdict {
        let head = self.method == RequestMethod::Head;
        let bodiless = head || matches!(status, 204 | 205);
        let length =
            if matches!(status, 204 | 205) { Some(0) } else { header(headers, "content-length").and_then(number) };
        let got = Version { validator: validator(headers), total: length.filter(|_| !head || status == 200) };
        let same = self.held.bytes > 0 && self.held.version.continues(&got);
        if self.held.bytes > 0 && !same && !self.rewindable {
            return protocol(format!(
                "the resource changed (held {:?}, the answer is of {:?}) and the sink cannot be rewound",
                self.held.version, got
            ));
        }
        let restart = self.held.bytes > 0 && !same;
        let held = if restart { 0 } else { self.held.bytes };
        // The body is the whole resource: skip to the first byte the sink lacks.
        let Some(from) = self.start.checked_add(held) else {
            return protocol("the resume offset overflows".into());
        };
        let total = got.total;
        if total.is_some_and(|t| from > t) && !bodiless {
            // The sink (or the requested range) begins past the resource's end.
            return if held > 0 {
                self.changed(format!("the resource is now {} bytes, shorter than the {held} held", total.unwrap_or(0)))
            } else {
                Verdict::Fail { error: NetError::Status { status: 416, retry_after: None }, discard: false }
            };
        }
        let end = match (self.end, total) {
            (Some(e), Some(t)) => Some(e.min(t.saturating_sub(1))),
            (e, _) => e,
        };
        let want =
            if bodiless { Some(0) } else { end.map(|e| if e < from { 0 } else { (e - from).saturating_add(1) }) };
        // The body is the resource itself: its end is the request's end.
        self.final_span = true;
        self.version = if same { self.held.version.merged(&got) } else { got };
        (self.skip, self.want, self.expect, self.partial) =
            (if bodiless { 0 } else { from }, want, if bodiless { Some(0) } else { length }, false);
        Verdict::Accept { restart, record: held == 0 }
    }

    fn unsatisfiable(&mut self, headers: &[(impl AsRef<str>, impl AsRef<str>)]) -> Verdict {
        let total =
            header(headers, "content-range").and_then(|v| v.strip_prefix("bytes */")).and_then(|t| number(t.trim()));
        let status416 = Verdict::Fail { error: NetError::Status { status: 416, retry_after: None }, discard: false };
        let (Some(total), Some(at)) = (total, self.first_missing()) else { return status416 };
        if self.held.bytes == 0 {
            return status416;
        }
        // Complete when the sink provably holds its whole version: the held
        // version's total is this one, or the 416 names the held validator.
        // A 416 without a validator proves nothing about a version whose
        // total is unknown (another version may just be that long).
        let got = Version { validator: validator(headers), total: Some(total) };
        let held = &self.held.version;
        let validator_ok = got.validator.is_none() || got.validator == held.validator;
        let proven = validator_ok
            && (held.total == Some(total) || got.validator.is_some() && held.total.is_none_or(|t| t == total));
        if at == total && proven {
            self.version = held.merged(&got);
            (self.skip, self.want, self.expect, self.partial, self.final_span) = (0, Some(0), Some(0), false, true);
            return Verdict::Accept { restart: false, record: false };
        }
        self.changed(format!("the resource is {total} bytes and the sink holds {} past its start", self.held.bytes))
    }

    /// A chunk of the accepted answer's body: the part the sink must write
    /// (maybe empty: a skipped prefix, or bytes past the wanted range).
    ///
    /// # Errors
    /// [`NetError::Protocol`] when the body is longer than announced.
    pub fn on_body<'c>(&mut self, chunk: &'c [u8]) -> Result<&'c [u8], NetError> {
        if self.phase != Phase::Reading {
            return Err(NetError::Protocol("body bytes for an exchange that is not reading a body".into()));
        }
        let n = chunk.len() as u64;
        self.received = self.received.saturating_add(n);
        if self.expect.is_some_and(|e| self.received > e) {
            self.phase = Phase::Over;
            let what = if self.partial { "its Content-Range span" } else { "its Content-Length" };
            return Err(NetError::Protocol(format!(
                "the body is longer than {what} ({} bytes announced)",
                self.expect.unwrap_or(0)
            )));
        }
        let skipped = usize::try_from(self.skip.min(n)).unwrap_or(chunk.len());
        self.skip -= skipped as u64;
        let rest = &chunk[skipped..];
        let take = match self.want {
            Some(w) => usize::try_from(w).map_or(rest.len(), |w| w.min(rest.len())),
            None => rest.len(),
        };
        if let Some(w) = &mut self.want {
            *w -= take as u64;
        }
        self.held.bytes = self.held.bytes.saturating_add(take as u64);
        Ok(&rest[..take])
    }

    /// Whether the adapter should keep reading: false once every wanted byte
    /// of this answer has arrived.
    #[must_use]
    pub fn wants_more(&self) -> bool {
        self.phase == Phase::Reading && self.want != Some(0)
    }

    /// Body bytes of this answer still unread, when its length is known.
    /// After the wanted part, an adapter reads and drops a rest of at most
    /// [`DRAIN_LIMIT`] (zero included: one more read sees the end) so the
    /// connection returns to the pool.
    #[must_use]
    pub fn unread(&self) -> Option<u64> {
        self.expect.map(|e| e.saturating_sub(self.received))
    }

    /// The body ended. `Ok` when the exchange delivered every byte it had to
    /// (the request is complete); otherwise the error to report, which a
    /// retry resumes from.
    ///
    /// # Errors
    /// [`NetError::Reset`] for a body cut short, or the transport's error.
    pub fn on_end(&mut self, end: End) -> Result<(), NetError> {
        let was = std::mem::replace(&mut self.phase, Phase::Over);
        if was == Phase::Over && self.first_missing().is_none() {
            return Ok(());
        }
        if was != Phase::Reading {
            return Err(NetError::Protocol("the exchange ended before an answer was accepted".into()));
        }
        if self.want == Some(0) && self.final_span {
            return Ok(());
        }
        if let End::Broken(e) = end {
            return Err(e);
        }
        if self.skip > 0 {
            return Err(NetError::Reset("the body ended before the resume offset".into()));
        }
        if let Some(e) = self.expect.filter(|&e| self.received < e) {
            return Err(NetError::Reset(format!("the body ended after {} of {e} bytes", self.received)));
        }
        match self.want {
            // A shorter span than asked (the server may send less): resume from there.
            Some(0) => Err(NetError::Reset("the server sent less than the requested range".into())),
            Some(_) => Err(NetError::Reset("the body ended before the end of the requested range".into())),
            None => Ok(()),
        }
    }
}
