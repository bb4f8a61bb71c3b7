//! # weir-faultserver: a loopback HTTP/1.1 server that misbehaves on purpose
//!
//! Download code is only as good as its handling of servers that stall,
//! reset, lie about lengths, ignore `Range`, change the resource between
//! two requests or answer `429`/`503` with `Retry-After`. Real servers do
//! all of that, rarely and never on demand; this one does it on the path
//! you ask for, so a test can pin the behaviour down. weir's own tests and
//! `weir demo` run against it.
//!
//! Deliberately small and built on `std::net`: the broken modes need control
//! no real server gives. It binds loopback addresses only (`127.0.0.0/8`,
//! e.g. `127.0.0.2` as a second host), one request per connection
//! (`Connection: close`), every wait is bounded, and dropping the server
//! stops every thread it started. It records what it saw ([`FaultServer::seen`],
//! [`FaultServer::hits`]) so a test can assert what the client asked for.
//!
//! ```
//! use std::io::{Read, Write};
//! let server = weir_faultserver::FaultServer::start();
//! let mut conn = std::net::TcpStream::connect(server.addr()).unwrap();
//! conn.write_all(b"GET /file/5 HTTP/1.1\r\nHost: x\r\nRange: bytes=2-\r\n\r\n").unwrap();
//! let mut answer = Vec::new();
//! conn.read_to_end(&mut answer).unwrap();
//! assert!(answer.starts_with(b"HTTP/1.1 206"));
//! assert!(answer.ends_with(&weir_faultserver::content(5, 5)[2..]));
//! assert_eq!(server.seen()[0].range.as_deref(), Some("bytes=2-"));
//! ```
//!
//! Routes (numbers are byte counts unless noted):
//!
//! | path | behaviour |
//! |---|---|
//! | `/file/{len}` | `content(len, len)`, `ETag`, `Last-Modified`, `Range`/`If-Range` (416 past the end), HEAD |
//! | `/named/{len}/{name}` | like `/file/{len}`, under any file name |
//! | `/stall/{len}/{after}` | first hit: `after` bytes then silence (≤ 10 s); later: like `/file` |
//! | `/reset/{len}/{after}` | first hit: `after` bytes then a TCP reset; later: like `/file` |
//! | `/short/{len}/{actual}` | always claims `len`, sends `actual`, closes; ignores `Range` |
//! | `/status/{code}/{times}/{retry_after}` | `code` (with `Retry-After` unless `-`) for the first `times` hits, then `/file/1000` |
//! | `/loop` | `302` to itself |
//! | `/drip/{len}/{chunk}/{ms}` | like `/file`, `chunk` bytes every `ms` milliseconds |
//! | `/norange/{len}/{after}` | first hit: `after` bytes then close; always ignores `Range` (200) |
//! | `/etag/{len}/{after}` | first hit: version 1, `after` bytes then close; later: version 2 (other bytes, other `ETag`) |
//! | `/bigclaim` | claims 2 GiB, sends 10 bytes, closes |
//! | `/empty` | 200, empty body |
//! | `/ifrange/{len}/{after}` | first hit: version 1 cut after `after` bytes; later: version 2, answering `Range` with a 206 whatever `If-Range` says |
//! | `/retotal/{len}/{after}` | first hit: `len` bytes cut after `after`; later: `len + 5` bytes under the same `ETag` |
//! | `/longspan/{len}/{after}` | first hit: cut after `after`; later: a 206 whose body runs 7 bytes past its `Content-Range` (no `Content-Length`) |
//! | `/slowprefix/{len}/{after}/{ms}` | first hit: cut after `after`; later: ignores `Range`, sends 1 KiB every `ms` milliseconds |
//! | `/resetnolen/{len}/{after}` | first hit: no `Content-Length`, `after` bytes then a TCP reset; later: like `/file` |
//! | `/status101` | `101 Switching Protocols` and nothing else |
//! | `/evilheader` | a header value holding a C1 control and a bidi override |
//! | `/nocontent` | `204` with a `Content-Length: 5` it must not have |
//! | `/redirect/{n}/{path..}` | `302` to `/redirect/{n-1}/{path..}`, at 0 to `/{path..}` |
//! | `/to/{ip:port}/{path..}` | `302` to `http://{ip:port}/{path..}` (loopback addresses only) |
//! | anything else | 404 |
//!
//! Well-behaved answers keep the connection open (HTTP/1.1 keep-alive, up
//! to 5 s idle); broken ones close it. [`FaultServer::connections`] counts
//! the connections accepted, to check that a client reuses them.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Deterministic content: `len` bytes derived from `seed`.
#[must_use]
pub fn content(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// FNV-1a, to compare bodies by hash in assertions.
#[must_use]
pub fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

/// One request as the server saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    /// `GET` or `HEAD`.
    pub method: String,
    /// The request path.
    pub path: String,
    /// The `Range` header.
    pub range: Option<String>,
    /// The `If-Range` header.
    pub if_range: Option<String>,
    /// Every header, names lower-cased.
    pub headers: HashMap<String, String>,
    /// When the request's head was read.
    pub at: std::time::Instant,
}

#[derive(Default)]
struct State {
    hits: HashMap<String, usize>,
    seen: Vec<Seen>,
    connections: usize,
    /// Requests being answered now, and the most at once.
    busy: usize,
    peak: usize,
}

/// The running server. Dropping it stops it.
pub struct FaultServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    state: Arc<Mutex<State>>,
    accept: Option<JoinHandle<()>>,
}

impl FaultServer {
    /// Start on 127.0.0.1 and a free port.
    #[must_use]
    pub fn start() -> Self {
        Self::start_on("127.0.0.1")
    }

    /// Start on a loopback address (e.g. `127.0.0.2`, a second host) and a free port.
    ///
    /// # Panics
    /// When `ip` is not a loopback address or binding fails.
    #[must_use]
    pub fn start_on(ip: &str) -> Self {
        let ip: std::net::IpAddr = ip.parse().expect("an IP address");
        assert!(ip.is_loopback(), "tests talk to loopback only");
        let listener = TcpListener::bind((ip, 0)).expect("bind a loopback port");
        listener.set_nonblocking(true).expect("nonblocking listener");
        let addr = listener.local_addr().expect("local addr");
        let stop = Arc::new(AtomicBool::new(false));
        let state = Arc::new(Mutex::new(State::default()));
        let (s, st) = (Arc::clone(&stop), Arc::clone(&state));
        let accept = std::thread::spawn(move || {
            let mut conns: Vec<JoinHandle<()>> = Vec::new();
            while !s.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        st.lock().expect("state").connections += 1;
                        let (s2, st2) = (Arc::clone(&s), Arc::clone(&st));
                        conns.push(std::thread::spawn(move || serve(stream, &s2, &st2)));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(2)),
                }
                conns.retain(|c| !c.is_finished());
            }
            for c in conns {
                let _ = c.join();
            }
        });
        Self { addr, stop, state, accept: Some(accept) }
    }

    /// `http://ip:port{path}`.
    #[must_use]
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The address.
    #[must_use]
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Every request seen so far, in arrival order.
    #[must_use]
    pub fn seen(&self) -> Vec<Seen> {
        self.state.lock().expect("state").seen.clone()
    }

    /// The most requests this server answered at the same time.
    #[must_use]
    pub fn peak_concurrency(&self) -> usize {
        self.state.lock().expect("state").peak
    }

    /// How many connections were accepted so far.
    #[must_use]
    pub fn connections(&self) -> usize {
        self.state.lock().expect("state").connections
    }

    /// How many requests for `path` arrived.
    #[must_use]
    pub fn hits(&self, path: &str) -> usize {
        self.state.lock().expect("state").hits.get(path).copied().unwrap_or(0)
    }
}

impl Drop for FaultServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
    }
}

struct Head {
    method: String,
    path: String,
    headers: HashMap<String, String>,
}

/// Read the next request head on a connection. Waits at most 5 s for it,
/// returning early when the server stops.
fn read_head(r: &mut BufReader<TcpStream>, stop: &AtomicBool) -> Option<Head> {
    r.get_ref().set_read_timeout(Some(Duration::from_millis(50))).ok()?;
    let idle_until = Instant::now() + Duration::from_secs(5);
    loop {
        match r.fill_buf() {
            Ok([]) => return None,
            Ok(_) => break,
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                if stop.load(Ordering::SeqCst) || Instant::now() >= idle_until {
                    return None;
                }
            }
            Err(_) => return None,
        }
    }
    r.get_ref().set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let mut line = String::new();
    r.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next()?.to_owned(), parts.next()?.to_owned());
    let mut headers = HashMap::new();
    for _ in 0..100 {
        let mut h = String::new();
        if r.read_line(&mut h).ok()? == 0 || h.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
        }
    }
    Some(Head { method, path, headers })
}

/// Parse `bytes=a-b` / `bytes=a-` against a resource of `len` bytes.
fn parse_range(v: &str, len: usize) -> Option<(usize, usize)> {
    let (a, b) = v.strip_prefix("bytes=")?.split_once('-')?;
    let a: usize = a.trim().parse().ok()?;
    let last = len.checked_sub(1)?;
    let b: usize = if b.trim().is_empty() { last } else { b.trim().parse::<u64>().ok()?.min(last as u64) as usize };
    (a <= b && b < len).then_some((a, b))
}

fn write_head(w: &mut TcpStream, status: &str, headers: &[(String, String)], keep: bool) -> std::io::Result<()> {
    let conn = if keep { "keep-alive" } else { "close" };
    let mut s = format!("HTTP/1.1 {status}\r\nConnection: {conn}\r\n");
    for (k, v) in headers {
        s.push_str(&format!("{k}: {v}\r\n"));
    }
    s.push_str("\r\n");
    w.write_all(s.as_bytes())
}

/// Wait up to `d`, but return early when the server stops.
fn pause(d: Duration, stop: &AtomicBool) {
    let end = Instant::now() + d;
    while Instant::now() < end && !stop.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(5).min(end.saturating_duration_since(Instant::now())));
    }
}

/// How to send a resource.
struct Plan<'a> {
    body: &'a [u8],
    etag: String,
    honour_range: bool,
    /// Stop after this many body bytes: `Some((n, how))`.
    cut: Option<(usize, Cut)>,
    drip: Option<(usize, Duration)>,
    claim: Option<u64>,
    /// Bytes sent after the body as if they were part of it.
    extra: &'static [u8],
    /// Answer `Range` with a 206 whatever `If-Range` says.
    ignore_if_range: bool,
    /// Leave `Content-Length` out (the body ends when the connection does).
    no_length: bool,
}

#[derive(Clone, Copy)]
enum Cut {
    Close,
    Reset,
    Stall,
}

/// Send a resource; `Ok(true)` when the connection may serve another request.
/// What one answer needs from its server: the stop flag, and its place
/// in the concurrency count, released as its last bytes go out.
struct Answer<'a> {
    stop: &'a AtomicBool,
    state: &'a Mutex<State>,
    released: std::cell::Cell<bool>,
}

impl Answer<'_> {
    /// This answer no longer counts as running: its client may have every
    /// byte the moment the next write lands, and start its next request.
    fn release(&self) {
        if !self.released.replace(true) {
            self.state.lock().expect("state").busy -= 1;
        }
    }
}

fn send(w: &mut TcpStream, head: &Head, p: &Plan<'_>, cx: &Answer<'_>) -> std::io::Result<bool> {
    let stop = cx.stop;
    let len = p.body.len();
    let mut range = if p.honour_range { head.headers.get("range").and_then(|v| parse_range(v, len)) } else { None };
    if let Some(ir) = head.headers.get("if-range") {
        if *ir != p.etag && !p.ignore_if_range {
            range = None;
        }
    }
    // A range that starts at or past the end: 416 with the length, as nginx does.
    let unsatisfiable = p.honour_range
        && range.is_none()
        && head.headers.get("if-range").is_none_or(|ir| *ir == p.etag)
        && head
            .headers
            .get("range")
            .and_then(|v| v.strip_prefix("bytes="))
            .and_then(|v| v.split('-').next()?.trim().parse::<usize>().ok())
            .is_some_and(|a| a >= len);
    if unsatisfiable {
        let h = [
            ("Content-Range".to_owned(), format!("bytes */{len}")),
            ("Content-Length".to_owned(), "0".to_owned()),
            ("ETag".to_owned(), p.etag.clone()),
        ];
        write_head(w, "416 Range Not Satisfiable", &h, true)?;
        return Ok(true);
    }
    let (status, slice, mut hdrs) = match range {
        Some((a, b)) => {
            let h = vec![("Content-Range".to_owned(), format!("bytes {a}-{b}/{len}"))];
            ("206 Partial Content", &p.body[a..=b], h)
        }
        None => ("200 OK", p.body, Vec::new()),
    };
    if !p.no_length {
        hdrs.push(("Content-Length".into(), p.claim.unwrap_or(slice.len() as u64).to_string()));
    }
    hdrs.push(("ETag".into(), p.etag.clone()));
    hdrs.push(("Last-Modified".into(), "Sun, 06 Nov 1994 08:49:37 GMT".into()));
    hdrs.push(("Accept-Ranges".into(), if p.honour_range { "bytes" } else { "none" }.into()));
    let keep = p.cut.is_none()
        && p.claim.is_none()
        && p.extra.is_empty()
        && !p.no_length
        && !head.headers.get("connection").is_some_and(|c| c.eq_ignore_ascii_case("close"));
    write_head(w, status, &hdrs, keep)?;
    if head.method == "HEAD" {
        return Ok(keep);
    }
    let (limit, cut) = match p.cut {
        Some((n, how)) => (n.min(slice.len()), Some(how)),
        None => (slice.len(), None),
    };
    let body = &slice[..limit];
    match p.drip {
        Some((chunk, every)) => {
            let n = body.chunks(chunk.max(1)).count();
            for (i, c) in body.chunks(chunk.max(1)).enumerate() {
                if stop.load(Ordering::SeqCst) {
                    return Ok(false);
                }
                // Between chunks only: the answer is over with its last byte.
                if i > 0 {
                    pause(every, stop);
                }
                if i + 1 == n {
                    cx.release();
                }
                w.write_all(c)?;
                w.flush()?;
            }
        }
        None => {
            cx.release();
            w.write_all(body)?;
        }
    }
    w.write_all(p.extra)?;
    w.flush()?;
    match cut {
        Some(Cut::Reset) => {
            // Closing the connection now sends a reset, not a FIN.
            socket2::SockRef::from(&*w).set_linger(Some(Duration::ZERO))?;
        }
        Some(Cut::Stall) => {
            // Hold the connection silently until the client gives up (or 10 s).
            w.set_read_timeout(Some(Duration::from_millis(20)))?;
            let end = Instant::now() + Duration::from_secs(10);
            let mut buf = [0u8; 64];
            while Instant::now() < end && !stop.load(Ordering::SeqCst) {
                match std::io::Read::read(w, &mut buf) {
                    Ok(0) => break,
                    Ok(_) => {}
                    Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
                    Err(_) => break,
                }
            }
        }
        Some(Cut::Close) | None => {}
    }
    Ok(keep)
}

fn num(s: Option<&str>) -> Option<usize> {
    s?.parse().ok()
}

fn serve(stream: TcpStream, stop: &AtomicBool, state: &Mutex<State>) {
    let Ok(mut w) = stream.try_clone() else { return };
    let mut r = BufReader::new(stream);
    // Keep-alive: requests in turn until an answer closes the connection.
    for _ in 0..10_000 {
        let Some(head) = read_head(&mut r, stop) else { return };
        let hit = {
            let mut st = state.lock().expect("state");
            st.seen.push(Seen {
                method: head.method.clone(),
                path: head.path.clone(),
                range: head.headers.get("range").cloned(),
                if_range: head.headers.get("if-range").cloned(),
                headers: head.headers.clone(),
                at: std::time::Instant::now(),
            });
            let h = st.hits.entry(head.path.clone()).or_default();
            *h += 1;
            let hit = *h;
            st.busy += 1;
            st.peak = st.peak.max(st.busy);
            hit
        };
        let cx = Answer { stop, state, released: std::cell::Cell::new(false) };
        let keep = matches!(route(&mut w, &head, hit, &cx), Ok(true));
        cx.release();
        if !keep {
            return;
        }
    }
}

fn route(w: &mut TcpStream, head: &Head, hit: usize, cx: &Answer<'_>) -> std::io::Result<bool> {
    let route_path = head.path.split('?').next().unwrap_or("");
    // Redirects carry the query along.
    let query = head.path.split_once('?').map_or(String::new(), |(_, q)| format!("?{q}"));
    let segs: Vec<&str> = route_path.trim_start_matches('/').split('/').collect();
    let file = |len: usize| content(len, len as u64);
    match segs.as_slice() {
        ["named", len, _name] => send(w, head, &plain(&file(num(Some(len)).unwrap_or(0))), cx),
        ["file", len] => {
            let body = file(num(Some(len)).unwrap_or(0));
            send(w, head, &plain(&body), cx)
        }
        ["stall" | "reset", len, after] => {
            let body = file(num(Some(len)).unwrap_or(0));
            let how = if segs[0] == "stall" { Cut::Stall } else { Cut::Reset };
            let cut = (hit == 1).then(|| (num(Some(after)).unwrap_or(0), how));
            send(w, head, &Plan { cut, ..plain(&body) }, cx)
        }
        ["short", len, actual] => {
            let len = num(Some(len)).unwrap_or(0);
            let body = file(len);
            let plan = Plan {
                honour_range: false,
                cut: Some((num(Some(actual)).unwrap_or(0), Cut::Close)),
                claim: Some(len as u64),
                ..plain(&body)
            };
            send(w, head, &plan, cx)
        }
        ["status", code, times, ra] => {
            let times = num(Some(times)).unwrap_or(usize::MAX);
            if hit <= times {
                let mut h = vec![("Content-Length".to_owned(), "0".to_owned())];
                if *ra != "-" {
                    h.push(("Retry-After".into(), (*ra).to_owned()));
                }
                write_head(w, &format!("{code} Test"), &h, true).map(|()| true)
            } else {
                send(w, head, &plain(&file(1000)), cx)
            }
        }
        ["loop"] => write_head(
            w,
            "302 Found",
            &[("Location".into(), "/loop".into()), ("Content-Length".into(), "0".into())],
            true,
        )
        .map(|()| true),
        ["to", authority, rest @ ..] => {
            // Only to loopback addresses: this server never sends a client elsewhere.
            let ip = authority.split(':').next().and_then(|h| h.parse::<std::net::IpAddr>().ok());
            if !ip.is_some_and(|ip| ip.is_loopback()) {
                return write_head(w, "400 Bad Request", &[("Content-Length".into(), "0".into())], false)
                    .map(|()| false);
            }
            let to = format!("http://{authority}/{}{query}", rest.join("/"));
            write_head(w, "302 Found", &[("Location".into(), to), ("Content-Length".into(), "0".into())], true)
                .map(|()| true)
        }
        ["redirect", n, rest @ ..] => {
            let n = num(Some(n)).unwrap_or(0);
            let to = if n == 0 {
                format!("/{}{query}", rest.join("/"))
            } else {
                format!("/redirect/{}/{}{query}", n - 1, rest.join("/"))
            };
            write_head(w, "302 Found", &[("Location".into(), to), ("Content-Length".into(), "0".into())], true)
                .map(|()| true)
        }
        ["ifrange", len, after] => {
            let len = num(Some(len)).unwrap_or(0);
            let (body, etag) = if hit == 1 { (content(len, 1), "\"one\"") } else { (content(len, 2), "\"two\"") };
            let cut = (hit == 1).then(|| (num(Some(after)).unwrap_or(0), Cut::Close));
            send(w, head, &Plan { etag: etag.to_owned(), cut, ignore_if_range: true, ..plain(&body) }, cx)
        }
        ["retotal", len, after] => {
            let len = num(Some(len)).unwrap_or(0);
            let body = if hit == 1 { content(len, 1) } else { content(len + 5, 2) };
            let cut = (hit == 1).then(|| (num(Some(after)).unwrap_or(0), Cut::Close));
            send(w, head, &Plan { etag: "\"same\"".to_owned(), cut, ..plain(&body) }, cx)
        }
        ["longspan", len, after] => {
            let body = file(num(Some(len)).unwrap_or(0));
            let cut = (hit == 1).then(|| (num(Some(after)).unwrap_or(0), Cut::Close));
            let (extra, no_length): (&[u8], bool) = if hit == 1 { (b"", false) } else { (b"GARBAGE", true) };
            send(w, head, &Plan { cut, extra, no_length, ..plain(&body) }, cx)
        }
        ["slowprefix", len, after, ms] => {
            let body = file(num(Some(len)).unwrap_or(0));
            let every = Duration::from_millis(num(Some(ms)).unwrap_or(1) as u64);
            let plan = if hit == 1 {
                Plan { cut: Some((num(Some(after)).unwrap_or(0), Cut::Close)), ..plain(&body) }
            } else {
                Plan { honour_range: false, drip: Some((1024, every)), ..plain(&body) }
            };
            send(w, head, &plan, cx)
        }
        ["resetnolen", len, after] => {
            let body = file(num(Some(len)).unwrap_or(0));
            let plan = if hit == 1 {
                Plan { cut: Some((num(Some(after)).unwrap_or(0), Cut::Reset)), no_length: true, ..plain(&body) }
            } else {
                plain(&body)
            };
            send(w, head, &plan, cx)
        }
        ["status101"] => {
            write_head(w, "101 Switching Protocols", &[("Upgrade".into(), "nothing".into())], false).map(|()| false)
        }
        ["evilheader"] => {
            // A value with a C1 control (U+009B, a terminal's CSI) and a bidi override.
            let h = [
                ("X-Evil".to_owned(), "a\u{9b}31mred\u{202e}txt".to_owned()),
                ("Content-Length".to_owned(), "0".to_owned()),
            ];
            write_head(w, "200 OK", &h, true).map(|()| true)
        }
        ["nocontent"] => write_head(w, "204 No Content", &[("Content-Length".into(), "5".into())], false)
            .and_then(|()| w.write_all(b"oops!"))
            .map(|()| false),
        ["drip", len, chunk, ms] => {
            let body = file(num(Some(len)).unwrap_or(0));
            let every = Duration::from_millis(num(Some(ms)).unwrap_or(1) as u64);
            send(w, head, &Plan { drip: Some((num(Some(chunk)).unwrap_or(1), every)), ..plain(&body) }, cx)
        }
        ["norange", len, after] => {
            let body = file(num(Some(len)).unwrap_or(0));
            let cut = (hit == 1).then(|| (num(Some(after)).unwrap_or(0), Cut::Close));
            send(w, head, &Plan { honour_range: false, cut, ..plain(&body) }, cx)
        }
        ["etag", len, after] => {
            let len = num(Some(len)).unwrap_or(0);
            let (body, etag) = if hit == 1 { (content(len, 1), "\"one\"") } else { (content(len, 2), "\"two\"") };
            let cut = (hit == 1).then(|| (num(Some(after)).unwrap_or(0), Cut::Close));
            send(w, head, &Plan { etag: etag.to_owned(), cut, ..plain(&body) }, cx)
        }
        ["bigclaim"] => {
            let body = file(10);
            send(w, head, &Plan { honour_range: false, claim: Some(2 << 30), ..plain(&body) }, cx)
        }
        ["empty"] => send(w, head, &plain(&[]), cx),
        _ => write_head(w, "404 Not Found", &[("Content-Length".into(), "0".into())], true).map(|()| true),
    }
}

/// A well-behaved plan for `body`.
fn plain(body: &[u8]) -> Plan<'_> {
    Plan {
        body,
        etag: format!("\"v1-{}\"", body.len()),
        honour_range: true,
        cut: None,
        drip: None,
        claim: None,
        extra: b"",
        ignore_if_range: false,
        no_length: false,
    }
}
