//! Request headers a caller adds: per download, and a downloader's
//! defaults. `Range` and `If-Range` stay weir's (the [`Attempt`](crate::Attempt)
//! sets them), framing headers stay the HTTP client's, and credentials
//! never follow a redirect to another origin.

use std::fmt;

use weir::Url;

/// The `User-Agent` sent when neither the download nor the downloader sets one.
pub const USER_AGENT: &str = concat!("weir/", env!("CARGO_PKG_VERSION"));

/// Headers weir or the HTTP client owns; a caller cannot set them.
const RESERVED: [&str; 7] = ["range", "if-range", "host", "content-length", "transfer-encoding", "connection", "te"];

/// Headers that carry credentials: dropped when a redirect leads to
/// another origin (scheme, host and port).
const CREDENTIALS: [&str; 3] = ["authorization", "cookie", "proxy-authorization"];

/// A response's headers as weir reads them (name, value), in the order
/// the server sent them; a value that is not UTF-8 is read lossily (it
/// can still be shown and compared, and no header weir acts on needs
/// other bytes). Both adapters turn their client's header map into this.
pub fn response_headers<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a [u8])>) -> Vec<(String, String)> {
    pairs.into_iter().map(|(k, v)| (k.to_owned(), String::from_utf8_lossy(v).into_owned())).collect()
}

/// Why a header was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderError(String);

impl fmt::Display for HeaderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for HeaderError {}

/// An ordered list of request headers, checked as they are added.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers(Vec<(String, String)>);

fn is_token(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

impl Headers {
    /// No headers.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Set `name` to `value`, replacing an earlier value of the same name.
    ///
    /// # Errors
    /// A name that is not an HTTP token, a value with a control character
    /// (a line break would inject headers), or a header weir or the client
    /// sets itself (`Range`, `If-Range`, `Host`, `Content-Length`, ...).
    pub fn insert(&mut self, name: &str, value: &str) -> Result<(), HeaderError> {
        if !is_token(name) {
            return Err(HeaderError(format!("{name:?} is not a valid header name")));
        }
        if value.chars().any(|c| c.is_control() && c != '\t') {
            return Err(HeaderError(format!("the value of {name} has a control character (a line break?)")));
        }
        let lower = name.to_ascii_lowercase();
        if RESERVED.contains(&lower.as_str()) {
            return Err(HeaderError(format!("{name} is set by weir or the HTTP client, not by the caller")));
        }
        self.0.retain(|(k, _)| !k.eq_ignore_ascii_case(name));
        self.0.push((name.to_owned(), value.trim().to_owned()));
        Ok(())
    }

    /// [`Headers::insert`], chained.
    ///
    /// # Errors
    /// As [`Headers::insert`].
    pub fn with(mut self, name: &str, value: &str) -> Result<Self, HeaderError> {
        self.insert(name, value)?;
        Ok(self)
    }

    /// Parse a `Name: value` line (as `curl -H` takes it) and insert it.
    ///
    /// # Errors
    /// A line without a colon, or what [`Headers::insert`] refuses.
    pub fn insert_line(&mut self, line: &str) -> Result<(), HeaderError> {
        let (name, value) =
            line.split_once(':').ok_or_else(|| HeaderError(format!("{line:?} is not a \"Name: value\" header")))?;
        self.insert(name.trim(), value)
    }

    /// The value of `name`, if set (case-insensitive).
    #[must_use]
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// The headers in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// What to send for one attempt of a download: `defaults` overridden by
    /// `own`, a `User-Agent` of [`USER_AGENT`] unless one is set, and no
    /// credentials when `target` (where the attempt goes after redirects)
    /// is of another origin than `first` (the URL the download was asked for).
    #[must_use]
    pub fn for_attempt(own: &Headers, defaults: &Headers, first: &Url, target: &Url) -> Vec<(String, String)> {
        let cross_origin = first.origin() != target.origin();
        let mut out: Vec<(String, String)> = Vec::new();
        for (k, v) in defaults.0.iter().filter(|(k, _)| own.get(k).is_none()).chain(own.0.iter()) {
            if cross_origin && CREDENTIALS.iter().any(|c| k.eq_ignore_ascii_case(c)) {
                continue;
            }
            out.push((k.clone(), v.clone()));
        }
        if !out.iter().any(|(k, _)| k.eq_ignore_ascii_case("user-agent")) {
            out.push(("User-Agent".to_owned(), USER_AGENT.to_owned()));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> Url {
        Url::parse(s).expect("url")
    }

    #[test]
    fn bad_headers_are_refused_with_a_reason() {
        let mut h = Headers::new();
        assert!(h.insert("Bad Name", "x").is_err());
        assert!(h.insert("X-Evil", "a\r\nInjected: yes").is_err(), "no header injection");
        assert!(h.insert("Range", "bytes=0-").is_err(), "weir's");
        assert!(h.insert("content-length", "3").is_err(), "the client's");
        assert!(h.insert_line("no colon here").is_err());
        assert!(h.insert_line("Accept: text/plain").is_ok());
        assert_eq!(h.get("accept"), Some("text/plain"));
    }

    #[test]
    fn own_headers_win_a_user_agent_is_always_sent_and_credentials_stay_home() {
        let defaults = Headers::new().with("Accept", "*/*").unwrap().with("Authorization", "Bearer d").unwrap();
        let own = Headers::new().with("accept", "video/mp2t").unwrap().with("Cookie", "s=1").unwrap();
        let first = url("https://cdn.example/a");
        let sent = Headers::for_attempt(&own, &defaults, &first, &url("https://cdn.example/b"));
        assert_eq!(
            sent,
            [
                ("Authorization".to_owned(), "Bearer d".to_owned()),
                ("accept".to_owned(), "video/mp2t".to_owned()),
                ("Cookie".to_owned(), "s=1".to_owned()),
                ("User-Agent".to_owned(), USER_AGENT.to_owned()),
            ]
        );
        // Another origin (host, or scheme, or port): no credentials.
        for other in ["https://evil.example/b", "http://cdn.example/b", "https://cdn.example:8443/b"] {
            let sent = Headers::for_attempt(&own, &defaults, &first, &url(other));
            let names: Vec<&str> = sent.iter().map(|(k, _)| k.as_str()).collect();
            assert_eq!(names, ["accept", "User-Agent"], "{other}");
        }
        let ua = Headers::new().with("User-Agent", "player/2").unwrap();
        let sent = Headers::for_attempt(&ua, &Headers::new(), &first, &first);
        assert_eq!(sent, [("User-Agent".to_owned(), "player/2".to_owned())]);
    }
}
