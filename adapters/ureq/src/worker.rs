//! Worker threads: each runs one [`Transfer`] at a time on the
//! downloader's `ureq` agent and moves bytes between the socket and the
//! transfer, which decides everything; the reports go to the hub.

use std::io::{self, Read};
use std::panic::AssertUnwindSafe;
use std::sync::mpsc::Receiver;
use std::sync::{Mutex, PoisonError};

use ureq::Agent;
use weir::{NetError, RequestMethod, Url};
use weir_http::attempt::{End, DRAIN_LIMIT};
use weir_http::{Report, Transfer};

use crate::shared::Shared;
use crate::watch;

/// Read buffer per worker.
const CHUNK: usize = 64 * 1024;

/// The worker loop: run transfers until the job channel closes. A
/// transfer's end is reported to the hub, which may hand this worker its
/// next transfer at once.
pub(crate) fn run(shared: &Shared, jobs: &Mutex<Receiver<Box<Transfer>>>, agent: &Agent) {
    let mut buf = vec![0u8; CHUNK];
    let mut next = None;
    loop {
        let mut t = match next.take() {
            Some(t) => t,
            None => match jobs.lock().unwrap_or_else(PoisonError::into_inner).recv() {
                Ok(t) => t,
                Err(_) => return,
            },
        };
        #[cfg(feature = "tracing")]
        let span = t.span().clone().entered();
        // Reads on this thread give up once the hub stops this transfer.
        watch::watch(Some(t.stop().clone()));
        let result = if t.stop().is_stopped() {
            Ok(None)
        } else {
            // A panic (in a caller's writer, say) fails this download; the
            // sink still goes back, so the downloader never waits for it.
            std::panic::catch_unwind(AssertUnwindSafe(|| transfer(agent, &mut t, shared, &mut buf)))
                .unwrap_or_else(|_| Err(NetError::Sink("the transfer panicked".into())))
        };
        watch::watch(None);
        #[cfg(feature = "tracing")]
        drop(span);
        let done = t.done(result);
        next = shared.call(true, |hub, now| hub.report(done, now)).1;
    }
}

/// An agent (one connection pool) whose connections note resets and stop
/// on an abort ([`watch`]).
pub(crate) fn new_agent(config: &ureq::config::Config) -> Agent {
    use ureq::unversioned::{resolver::DefaultResolver, transport::Connector, transport::DefaultConnector};
    let connector = DefaultConnector::new().chain(watch::Watch);
    Agent::with_parts(config.clone(), connector, DefaultResolver::default())
}

fn send(shared: &Shared, report: Option<Report>) {
    if let Some(r) = report {
        shared.with(|hub, now| hub.report(r, now));
    }
}

/// Run one attempt: bytes in and out of `t`, which makes every decision.
/// `Ok(None)`: complete, or stopped (the hub ignores a stopped transfer's
/// result); `Ok(Some(url))`: a redirect, for the scheduler to decide on.
fn transfer(agent: &Agent, t: &mut Transfer, shared: &Shared, buf: &mut [u8]) -> Result<Option<Url>, NetError> {
    let Some(ask) = t.begin()? else { return Ok(None) };
    let mut req = match ask.method {
        RequestMethod::Get => agent.get(ask.url.as_str()),
        RequestMethod::Head => agent.head(ask.url.as_str()),
    };
    for (k, v) in &ask.caller {
        req = req.header(k.as_str(), v.as_str());
    }
    for (k, v) in &ask.headers {
        req = req.header(*k, v.as_str());
    }
    // Redirects and error statuses are the transfer's to judge.
    let req = req.config().max_redirects(0).http_status_as_error(false).build();
    let resp = req.call().map_err(map_error)?;
    let status = resp.status().as_u16();
    let headers = weir_http::response_headers(resp.headers().iter().map(|(k, v)| (k.as_str(), v.as_bytes())));
    if let Some(url) = t.on_head(status, headers)? {
        drain(resp.into_body().into_reader(), buf, DRAIN_LIMIT);
        return Ok(Some(url));
    }
    let mut reader = resp.into_body().into_reader();
    watch::clear();
    let end = loop {
        if !t.wants_more() {
            // Read a short rest so the connection goes back to the pool; the
            // transfer still checks it against the announced length.
            if let Some(rest) = t.unread().filter(|&n| n <= DRAIN_LIMIT) {
                let mut left = rest.saturating_add(1);
                while left > 0 {
                    match reader.read(buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            t.body(&buf[..n])?;
                            left = left.saturating_sub(n as u64);
                        }
                    }
                }
            }
            break End::Clean;
        }
        let n = match reader.read(buf) {
            Ok(0) if watch::broken() => break End::Broken(NetError::Reset("the connection broke off".into())),
            Ok(0) => break End::Clean,
            Ok(n) => n,
            Err(_) if t.stop().is_stopped() => return Ok(None),
            Err(e) => break End::Broken(map_io(&e)),
        };
        let (part, alive) = t.body(&buf[..n])?;
        send(shared, alive);
        if t.stop().is_stopped() {
            return Ok(None);
        }
        if !part.is_empty() {
            let due = t.write(part)?;
            send(shared, due);
        }
    };
    t.end(end)?;
    Ok(None)
}

/// Read and drop up to `limit` more bytes of a redirect's body (plus the
/// end), so the connection returns to the pool.
fn drain(mut reader: impl Read, buf: &mut [u8], limit: u64) {
    let mut left = limit.saturating_add(1);
    while left > 0 {
        match reader.read(buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => left = left.saturating_sub(n as u64),
        }
    }
}

fn map_io(e: &io::Error) -> NetError {
    use io::ErrorKind as K;
    match e.kind() {
        K::ConnectionRefused => NetError::Connect(e.to_string()),
        K::TimedOut | K::WouldBlock => NetError::Timeout,
        _ => NetError::Reset(e.to_string()),
    }
}

/// Map a `ureq` error to the `NetError` the core decides on.
pub(crate) fn map_error(e: ureq::Error) -> NetError {
    use ureq::Error as E;
    match e {
        E::StatusCode(status) => NetError::Status { status, retry_after: None },
        E::Http(_) | E::BadUri(_) | E::InvalidProxyUrl => NetError::InvalidUrl(e.to_string()),
        E::Io(io) => map_io(&io),
        E::Timeout(_) => NetError::Timeout,
        E::HostNotFound => NetError::Dns("host not found".into()),
        E::ConnectionFailed => NetError::Connect("connection failed".into()),
        E::BodyExceedsLimit(_) => NetError::TooLarge,
        E::Tls(_) => NetError::Tls(e.to_string()),
        #[cfg(feature = "rustls")]
        E::Rustls(_) => NetError::Tls(e.to_string()),
        other => NetError::Protocol(other.to_string()),
    }
}
