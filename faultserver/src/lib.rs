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
//! | `/file/{len}` | `content(len, len)`, `ETag`, `Last-Modified`, `Range`/`If-Range`, HEAD |
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
//! | anything else | 404 |
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
}

#[derive(Default)]
struct State {
    hits: HashMap<String, usize>,
    seen: Vec<Seen>,
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

fn read_head(stream: &TcpStream) -> Option<Head> {
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let mut r = BufReader::new(stream);
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
    let b: usize = if b.trim().is_empty() { len.checked_sub(1)? } else { b.trim().parse::<usize>().ok()?.min(len - 1) };
    (a <= b && b < len).then_some((a, b))
}

fn write_head(w: &mut TcpStream, status: &str, headers: &[(String, String)]) -> std::io::Result<()> {
    let mut s = format!("HTTP/1.1 {status}\r\nConnection: close\r\n");
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
}

#[derive(Clone, Copy)]
enum Cut {
    Close,
    Reset,
    Stall,
}

fn send(mut w: TcpStream, head: &Head, p: &Plan<'_>, stop: &AtomicBool) -> std::io::Result<()> {
    let len = p.body.len();
    let mut range = if p.honour_range { head.headers.get("range").and_then(|v| parse_range(v, len)) } else { None };
    if let Some(ir) = head.headers.get("if-range") {
        if *ir != p.etag {
            range = None;
        }
    }
    let (status, slice, mut hdrs) = match range {
        Some((a, b)) => {
            let h = vec![("Content-Range".to_owned(), format!("bytes {a}-{b}/{len}"))];
            ("206 Partial Content", &p.body[a..=b], h)
        }
        None => ("200 OK", p.body, Vec::new()),
    };
    hdrs.push(("Content-Length".into(), p.claim.unwrap_or(slice.len() as u64).to_string()));
    hdrs.push(("ETag".into(), p.etag.clone()));
    hdrs.push(("Last-Modified".into(), "Sun, 06 Nov 1994 08:49:37 GMT".into()));
    hdrs.push(("Accept-Ranges".into(), if p.honour_range { "bytes" } else { "none" }.into()));
    write_head(&mut w, status, &hdrs)?;
    if head.method == "HEAD" {
        return Ok(());
    }
    let (limit, cut) = match p.cut {
        Some((n, how)) => (n.min(slice.len()), Some(how)),
        None => (slice.len(), None),
    };
    let body = &slice[..limit];
    match p.drip {
        Some((chunk, every)) => {
            for c in body.chunks(chunk.max(1)) {
                if stop.load(Ordering::SeqCst) {
                    return Ok(());
                }
                w.write_all(c)?;
                w.flush()?;
                pause(every, stop);
            }
        }
        None => w.write_all(body)?,
    }
    w.flush()?;
    match cut {
        Some(Cut::Reset) => {
            socket2::SockRef::from(&w).set_linger(Some(Duration::ZERO))?;
            drop(w);
        }
        Some(Cut::Stall) => {
            // Hold the connection silently until the client gives up (or 10 s).
            w.set_read_timeout(Some(Duration::from_millis(20)))?;
            let end = Instant::now() + Duration::from_secs(10);
            let mut buf = [0u8; 64];
            while Instant::now() < end && !stop.load(Ordering::SeqCst) {
                match std::io::Read::read(&mut w, &mut buf) {
                    Ok(0) => break,
                    Ok(_) => {}
                    Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
                    Err(_) => break,
                }
            }
        }
        Some(Cut::Close) | None => {}
    }
    Ok(())
}

fn num(s: Option<&str>) -> Option<usize> {
    s?.parse().ok()
}

fn serve(stream: TcpStream, stop: &AtomicBool, state: &Mutex<State>) {
    let Some(head) = read_head(&stream) else { return };
    let hit = {
        let mut st = state.lock().expect("state");
        st.seen.push(Seen {
            method: head.method.clone(),
            path: head.path.clone(),
            range: head.headers.get("range").cloned(),
            if_range: head.headers.get("if-range").cloned(),
        });
        let h = st.hits.entry(head.path.clone()).or_default();
        *h += 1;
        *h
    };
    let _ = route(stream, &head, hit, stop);
}

fn route(mut w: TcpStream, head: &Head, hit: usize, stop: &AtomicBool) -> std::io::Result<()> {
    let segs: Vec<&str> = head.path.trim_start_matches('/').split('/').collect();
    let file = |len: usize| content(len, len as u64);
    match segs.as_slice() {
        ["named", len, _name] => send(w, head, &plain(&file(num(Some(len)).unwrap_or(0))), stop),
        ["file", len] => {
            let body = file(num(Some(len)).unwrap_or(0));
            send(w, head, &plain(&body), stop)
        }
        ["stall" | "reset", len, after] => {
            let body = file(num(Some(len)).unwrap_or(0));
            let how = if segs[0] == "stall" { Cut::Stall } else { Cut::Reset };
            let cut = (hit == 1).then(|| (num(Some(after)).unwrap_or(0), how));
            send(w, head, &Plan { cut, ..plain(&body) }, stop)
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
            send(w, head, &plan, stop)
        }
        ["status", code, times, ra] => {
            let times = num(Some(times)).unwrap_or(usize::MAX);
            if hit <= times {
                let mut h = vec![("Content-Length".to_owned(), "0".to_owned())];
                if *ra != "-" {
                    h.push(("Retry-After".into(), (*ra).to_owned()));
                }
                write_head(&mut w, &format!("{code} Test"), &h)
            } else {
                send(w, head, &plain(&file(1000)), stop)
            }
        }
        ["loop"] => write_head(
            &mut w,
            "302 Found",
            &[("Location".into(), "/loop".into()), ("Content-Length".into(), "0".into())],
        ),
        ["drip", len, chunk, ms] => {
            let body = file(num(Some(len)).unwrap_or(0));
            let every = Duration::from_millis(num(Some(ms)).unwrap_or(1) as u64);
            send(w, head, &Plan { drip: Some((num(Some(chunk)).unwrap_or(1), every)), ..plain(&body) }, stop)
        }
        ["norange", len, after] => {
            let body = file(num(Some(len)).unwrap_or(0));
            let cut = (hit == 1).then(|| (num(Some(after)).unwrap_or(0), Cut::Close));
            send(w, head, &Plan { honour_range: false, cut, ..plain(&body) }, stop)
        }
        ["etag", len, after] => {
            let len = num(Some(len)).unwrap_or(0);
            let (body, etag) = if hit == 1 { (content(len, 1), "\"one\"") } else { (content(len, 2), "\"two\"") };
            let cut = (hit == 1).then(|| (num(Some(after)).unwrap_or(0), Cut::Close));
            send(w, head, &Plan { etag: etag.to_owned(), cut, ..plain(&body) }, stop)
        }
        ["bigclaim"] => {
            let body = file(10);
            send(w, head, &Plan { honour_range: false, claim: Some(2 << 30), ..plain(&body) }, stop)
        }
        ["empty"] => send(w, head, &plain(&[]), stop),
        _ => write_head(&mut w, "404 Not Found", &[("Content-Length".into(), "0".into())]),
    }
}

/// A well-behaved plan for `body`.
fn plain(body: &[u8]) -> Plan<'_> {
    Plan { body, etag: format!("\"v1-{}\"", body.len()), honour_range: true, cut: None, drip: None, claim: None }
}
