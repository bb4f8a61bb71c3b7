//! HTTP CONNECT proxies: which requests go through one, what to ask it,
//! and whether its answer opened the tunnel. Read from the environment
//! (`HTTPS_PROXY`, `HTTP_PROXY`, `ALL_PROXY` and `NO_PROXY`, upper or lower
//! case, as curl reads them) or set by hand. Every request, http or https,
//! goes through a `CONNECT host:port` tunnel, the way ureq does it. The
//! adapter only moves the bytes ([`Tunnel`]).

use weir::{NetError, Url};

/// Where requests go through, and which hosts skip it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Proxies {
    http: Option<Endpoint>,
    https: Option<Endpoint>,
    /// Hosts (and their subdomains) reached directly; `*` means all.
    no_proxy: Vec<String>,
}

/// One proxy: host, port and credentials (`http://` proxies only).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Endpoint {
    host: String,
    port: u16,
    /// `Basic base64(user:password)`, from the proxy URL's user info.
    auth: Option<Secret>,
}

/// A credential, never shown by `Debug`.
#[derive(Clone, PartialEq, Eq)]
struct Secret(String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

impl Endpoint {
    fn parse(text: &str) -> Result<Self, String> {
        let with_scheme = if text.contains("://") { text.to_owned() } else { format!("http://{text}") };
        let url = Url::parse(&with_scheme).map_err(|e| format!("proxy {text:?}: {e}"))?;
        if url.scheme() != "http" {
            return Err(format!("proxy {text:?}: only http:// proxies are supported"));
        }
        let host = url.host_str().filter(|h| !h.is_empty()).ok_or_else(|| format!("proxy {text:?}: no host"))?;
        let auth = (!url.username().is_empty() || url.password().is_some()).then(|| {
            use base64::Engine;
            let decode = |s: &str| percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned();
            let pair = format!("{}:{}", decode(url.username()), decode(url.password().unwrap_or("")));
            Secret(format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(pair)))
        });
        Ok(Endpoint { host: host.to_owned(), port: url.port().unwrap_or(80), auth })
    }
}

impl Proxies {
    /// No proxy: every request connects directly.
    #[must_use]
    pub fn none() -> Self {
        Self::default()
    }

    /// One proxy for http and https requests.
    ///
    /// # Errors
    /// A text that is not `http://host[:port]` (or `host[:port]`).
    pub fn all(proxy: &str) -> Result<Self, String> {
        let e = Endpoint::parse(proxy)?;
        Ok(Proxies { http: Some(e.clone()), https: Some(e), no_proxy: Vec::new() })
    }

    /// Reach these hosts (and their subdomains; `*`: every host) directly.
    #[must_use]
    pub fn except(mut self, hosts: &[&str]) -> Self {
        self.no_proxy.extend(hosts.iter().map(|h| h.trim().trim_start_matches('.').to_ascii_lowercase()));
        self
    }

    /// What the environment says: `HTTPS_PROXY` for https, `HTTP_PROXY`
    /// for http, `ALL_PROXY` for either when those are unset, `NO_PROXY`
    /// (comma-separated hosts) for the exceptions; lower-case names too.
    /// A variable that does not parse is ignored (there is no one to tell
    /// at start-up); set the proxy by hand to get the error.
    #[must_use]
    pub fn from_env() -> Self {
        let var = |name: &str| {
            std::env::var(name).or_else(|_| std::env::var(name.to_ascii_lowercase())).ok().filter(|v| !v.is_empty())
        };
        let parsed = |name: &str| var(name).and_then(|v| Endpoint::parse(&v).ok());
        let all = parsed("ALL_PROXY");
        let no_proxy = var("NO_PROXY")
            .map(|v| v.split(',').map(|h| h.trim().trim_start_matches('.').to_ascii_lowercase()).collect())
            .unwrap_or_default();
        Proxies { http: parsed("HTTP_PROXY").or_else(|| all.clone()), https: parsed("HTTPS_PROXY").or(all), no_proxy }
    }

    /// The proxy a request to `host` goes through, if any.
    fn for_host(&self, https: bool, host: &str) -> Option<&Endpoint> {
        let host = host.trim_start_matches('[').trim_end_matches(']').to_ascii_lowercase();
        let skip = self
            .no_proxy
            .iter()
            .any(|n| n == "*" || (!n.is_empty() && (host == *n || host.ends_with(&format!(".{n}")))));
        if skip {
            return None;
        }
        if https {
            self.https.as_ref()
        } else {
            self.http.as_ref()
        }
    }

    /// The tunnel a request to `host:port` goes through, if a proxy applies.
    #[must_use]
    pub fn tunnel_for(&self, https: bool, host: &str, port: u16) -> Option<Tunnel> {
        let proxy = self.for_host(https, host)?;
        let target = format!("{host}:{port}");
        let auth = proxy.auth.as_ref().map(|a| format!("Proxy-Authorization: {}\r\n", a.0)).unwrap_or_default();
        let ask =
            format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\nUser-Agent: {}\r\n{auth}\r\n", crate::USER_AGENT);
        Some(Tunnel { host: proxy.host.clone(), port: proxy.port, ask, target })
    }
}

/// A tunnel to open: connect to the proxy at `host:port`, send `ask`, read
/// its answer head up to the blank line (at most [`Tunnel::MAX_ANSWER`]
/// bytes, a byte at a time so nothing of the tunnel is consumed) and give
/// it to [`Tunnel::opened`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tunnel {
    /// The proxy's host.
    pub host: String,
    /// The proxy's port.
    pub port: u16,
    /// The `CONNECT` request to send.
    pub ask: String,
    target: String,
}

impl Tunnel {
    /// The longest answer head a proxy may send.
    pub const MAX_ANSWER: usize = 16 * 1024;

    /// Whether the answer head read so far (`head`, ending with the blank
    /// line) opened the tunnel.
    ///
    /// # Errors
    /// `Connect` naming the proxy's status line when it refused.
    pub fn opened(&self, head: &[u8]) -> Result<(), NetError> {
        let line_end = head.iter().position(|&b| b == b'\r').unwrap_or(head.len());
        let status_line = String::from_utf8_lossy(&head[..line_end]).into_owned();
        match status_line.split_whitespace().nth(1) {
            Some(code) if code.starts_with('2') => Ok(()),
            _ => Err(NetError::Connect(format!("the proxy refused the tunnel to {}: {status_line}", self.target))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exceptions_match_hosts_and_their_subdomains() {
        let p = Proxies::all("proxy.example:3128").unwrap().except(&[".internal.example", "db"]);
        assert_eq!(p.for_host(false, "cdn.example").map(|e| e.port), Some(3128));
        assert!(p.for_host(true, "a.internal.example").is_none());
        assert!(p.for_host(true, "internal.example").is_none());
        assert!(p.for_host(false, "db").is_none());
        assert!(p.for_host(false, "notdb").is_some());
        assert!(Proxies::all("p:1").unwrap().except(&["*"]).for_host(false, "x").is_none());
    }

    #[test]
    fn the_answer_decides_whether_the_tunnel_opened() {
        let t = Proxies::all("p:1").unwrap().tunnel_for(true, "cdn.example", 443).unwrap();
        assert_eq!((t.host.as_str(), t.port), ("p", 1));
        assert!(t.ask.starts_with("CONNECT cdn.example:443 HTTP/1.1\r\nHost: cdn.example:443\r\n"));
        assert!(t.opened(b"HTTP/1.1 200 Connection established\r\n\r\n").is_ok());
        let refused = t.opened(b"HTTP/1.1 407 Proxy Authentication Required\r\n\r\n").unwrap_err();
        assert!(
            matches!(&refused, NetError::Connect(m) if m.contains("cdn.example:443") && m.contains("407")),
            "{refused}"
        );
        assert!(t.opened(b"").is_err());
    }

    #[test]
    fn only_plain_http_proxies() {
        assert!(Proxies::all("https://p:1").is_err());
        assert!(Proxies::all("socks5://p:1").is_err());
        assert_eq!(Proxies::all("http://p").unwrap().http.unwrap().port, 80);
    }

    #[test]
    fn credentials_of_the_proxy_url_go_in_the_connect_request_and_never_in_debug() {
        // "user" and "p@ss:w" percent-encoded in the URL; base64("user:p@ss:w").
        let p = Proxies::all("http://user:p%40ss%3Aw@p:1").unwrap();
        let t = p.tunnel_for(false, "h", 80).unwrap();
        assert!(t.ask.contains("\r\nProxy-Authorization: Basic dXNlcjpwQHNzOnc=\r\n"), "{}", t.ask);
        assert!(t.ask.ends_with("\r\n\r\n"));
        assert!(!format!("{p:?}").contains("dXNl"), "{p:?}");
        let none = Proxies::all("http://p:1").unwrap().tunnel_for(false, "h", 80).unwrap();
        assert!(!none.ask.contains("Proxy-Authorization"));
    }
}
