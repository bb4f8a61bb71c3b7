//! Worker threads: each runs one transfer at a time with its own `ureq`
//! agent, writes the body to the request's sink and reports bytes and the
//! end of the attempt to the driver. All decisions stay in the core.

use std::io::{self, Read};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use ureq::Agent;
use weir::{NetError, RequestId, RequestMethod, Url};

use weir_http::attempt::{Attempt, End, Verdict, DRAIN_LIMIT};
use weir_http::report::Coalescer;
use weir_http::SinkState;

use crate::{resets, Msg};

/// Read buffer per worker.
const CHUNK: usize = 64 * 1024;

/// Sends byte reports to the driver as `weir_http::report` paces them; what
/// is pending goes out when the attempt ends (on drop), before the worker
/// reports the end.
struct Reporter<'a> {
    tx: &'a Sender<Msg>,
    id: RequestId,
    attempt: u32,
    pace: Coalescer,
}

impl Reporter<'_> {
    fn send(&self, n: Option<u64>) {
        if let Some(n) = n {
            let _ = self.tx.send(Msg::Bytes { id: self.id, attempt: self.attempt, n });
        }
    }

    fn add(&mut self, n: u64) {
        let due = self.pace.add(n);
        self.send(due);
    }
}

impl Drop for Reporter<'_> {
    fn drop(&mut self) {
        let rest = self.pace.take();
        self.send(rest);
    }
}

/// Lets the driver stop a transfer at once: it raises the flag and shuts
/// the worker's agent down, which interrupts a read blocked on the socket.
#[derive(Default)]
pub(crate) struct AbortHandle {
    flag: AtomicBool,
    agent: Mutex<Option<Agent>>,
}

impl AbortHandle {
    pub(crate) fn abort(&self) {
        self.flag.store(true, Ordering::SeqCst);
        if let Some(agent) = lock(&self.agent).take() {
            agent.shutdown();
        }
    }

    fn aborted(&self) -> bool {
        self.flag.load(Ordering::SeqCst)
    }
}

/// One attempt of one request.
pub(crate) struct Job {
    pub(crate) id: RequestId,
    pub(crate) attempt: u32,
    pub(crate) url: Url,
    /// The caller's headers for this attempt's URL.
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) method: RequestMethod,
    /// The request's original range: where the sink's byte 0 is.
    pub(crate) range: Option<(u64, Option<u64>)>,
    pub(crate) sink: Arc<Mutex<SinkState>>,
    pub(crate) abort: Arc<AbortHandle>,
}

/// Lock a mutex, recovering from a poisoned one (a panicking worker must
/// not take the downloader down with it).
pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The worker loop: take jobs until the job channel closes.
pub(crate) fn run(jobs: &Mutex<Receiver<Job>>, reports: &Sender<Msg>, config: &ureq::config::Config) {
    let mut agent: Option<Agent> = None;
    let mut buf = vec![0u8; CHUNK];
    loop {
        let job = match lock(jobs).recv() {
            Ok(job) => job,
            Err(_) => return,
        };
        let a = agent.get_or_insert_with(|| new_agent(config)).clone();
        *lock(&job.abort.agent) = Some(a.clone());
        let result = if job.abort.aborted() { Ok(None) } else { transfer(&a, &job, reports, &mut buf) };
        if lock(&job.abort.agent).take().is_none() {
            // The driver shut this agent down: start the next job on a fresh one.
            agent = None;
        }
        let _ = reports.send(Msg::Finished { id: job.id, attempt: job.attempt, result });
    }
}

/// An agent whose connections note resets ([`resets`]).
fn new_agent(config: &ureq::config::Config) -> Agent {
    use ureq::unversioned::{resolver::DefaultResolver, transport::Connector, transport::DefaultConnector};
    let connector = DefaultConnector::new().chain(resets::WatchResets);
    Agent::with_parts(config.clone(), connector, DefaultResolver::default())
}

/// Run one attempt: a loop around [`Attempt`], which makes every HTTP
/// decision. `Ok(None)` means the request is complete, or the attempt was
/// aborted and nobody cares any more; `Ok(Some(url))` a redirect, for the
/// scheduler to decide on.
fn transfer(agent: &Agent, job: &Job, reports: &Sender<Msg>, buf: &mut [u8]) -> Result<Option<Url>, NetError> {
    let (held, rewindable) = {
        let mut s = lock(&job.sink);
        (s.prepare()?, s.rewindable())
    };
    let mut attempt =
        Attempt::new(job.url.clone(), job.method, job.range, held, rewindable).with_headers(job.headers.clone());
    let Some(ask) = attempt.ask() else {
        // Every byte is already there.
        lock(&job.sink).verify_complete()?;
        return Ok(None);
    };
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
    // Redirects and error statuses are the Attempt's to judge.
    let req = req.config().max_redirects(0).http_status_as_error(false).build();
    let resp = req.call().map_err(map_error)?;
    let status = resp.status().as_u16();
    let headers: Vec<(String, String)> = resp
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
        .collect();
    match attempt.on_head(status, &headers, SystemTime::now()) {
        Verdict::Redirect(url) => {
            drain(resp.into_body().into_reader(), buf, DRAIN_LIMIT);
            return Ok(Some(url));
        }
        Verdict::Fail { error, discard } => {
            if discard {
                lock(&job.sink).reset()?;
            }
            return Err(error);
        }
        Verdict::Accept { restart, record } => {
            lock(&job.sink).accept(restart, record.then_some((status, headers)), &attempt)?;
        }
    }
    let mut reader = resp.into_body().into_reader();
    resets::clear();
    let mut report = Reporter { tx: reports, id: job.id, attempt: job.attempt, pace: Coalescer::default() };
    let end = loop {
        if !attempt.wants_more() {
            // Read a short rest so the connection goes back to the pool; the
            // attempt still checks it against the announced length.
            if let Some(rest) = attempt.unread().filter(|&n| n <= DRAIN_LIMIT) {
                let mut left = rest.saturating_add(1);
                while left > 0 {
                    match reader.read(buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            attempt.on_body(&buf[..n])?;
                            left = left.saturating_sub(n as u64);
                        }
                    }
                }
            }
            break End::Clean;
        }
        let n = match reader.read(buf) {
            Ok(0) if resets::broken() => break End::Broken(NetError::Reset("the connection broke off".into())),
            Ok(0) => break End::Clean,
            Ok(n) => n,
            Err(_) if job.abort.aborted() => return Ok(None),
            Err(e) => break End::Broken(map_io(&e)),
        };
        let part = attempt.on_body(&buf[..n])?;
        if part.is_empty() {
            if report.pace.skipped() {
                let _ = reports.send(Msg::Progress { id: job.id, attempt: job.attempt });
            }
            continue;
        }
        let mut s = lock(&job.sink);
        if job.abort.aborted() {
            return Ok(None);
        }
        s.write(part)?;
        drop(s);
        report.add(part.len() as u64);
    };
    attempt.on_end(end)?;
    lock(&job.sink).verify_complete()?;
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
