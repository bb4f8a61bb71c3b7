//! Worker threads: each runs one transfer at a time with its own `ureq`
//! agent, writes the body to the request's sink and reports bytes and the
//! end of the attempt to the driver. All decisions stay in the core.

use std::io::{self, Read};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender};
use std::sync::{Arc, Mutex};

use ureq::Agent;
use weir::{NetError, RequestId, RequestMethod, Url};

use weir_http::report::Coalescer;
use weir_http::{resume, SinkState};

use crate::Msg;

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
        let a = agent.get_or_insert_with(|| Agent::new_with_config(config.clone())).clone();
        *lock(&job.abort.agent) = Some(a.clone());
        let result = if job.abort.aborted() { Ok(()) } else { transfer(&a, &job, reports, &mut buf) };
        if lock(&job.abort.agent).take().is_none() {
            // The driver shut this agent down: start the next job on a fresh one.
            agent = None;
        }
        let _ = reports.send(Msg::Finished { id: job.id, attempt: job.attempt, result });
    }
}

fn header(resp: &ureq::http::Response<ureq::Body>, name: &str) -> Option<String> {
    resp.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned)
}

/// Run one attempt. `Ok(())` means the body (or the part still missing) was
/// delivered, or the attempt was aborted and nobody cares any more.
fn transfer(agent: &Agent, job: &Job, reports: &Sender<Msg>, buf: &mut [u8]) -> Result<(), NetError> {
    let (written, validator) = {
        let s = lock(&job.sink);
        (s.written, s.validator.clone())
    };
    let Some(ask) = resume::ask(job.method, job.range, written, validator.as_deref()) else {
        return Ok(()); // every byte of the range is already there
    };
    let get = job.method == RequestMethod::Get;
    let mut req = if get { agent.get(job.url.as_str()) } else { agent.head(job.url.as_str()) };
    for (k, v) in &ask.headers {
        req = req.header(*k, v.as_str());
    }
    let resp = req.call().map_err(map_error)?;
    let status = resp.status().as_u16();
    if let Some(e) = resume::status_error(status, header(&resp, "retry-after").as_deref()) {
        return Err(e);
    }
    let headers: Vec<(String, String)> = resp
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
        .collect();
    let new_validator = header(&resp, "etag").or_else(|| header(&resp, "last-modified"));
    let length = header(&resp, "content-length").and_then(|v| v.trim().parse::<u64>().ok());
    let cr = header(&resp, "content-range");
    let plan =
        resume::plan(status, cr.as_deref(), &ask, job.range, written, validator.as_deref(), new_validator.as_deref())?;
    let mut cursor = {
        let mut s = lock(&job.sink);
        if plan.reset {
            s.reset()?;
        }
        if s.written == 0 {
            s.status = status;
            s.headers = headers;
            s.validator = new_validator;
        }
        if let Some(len) = length {
            if !s.fits(s.written.saturating_add(len.saturating_sub(plan.skip))) {
                return Err(NetError::TooLarge);
            }
        }
        resume::Cursor::new(plan, job.range, s.written)
    };
    if !get {
        return Ok(());
    }
    let mut reader = resp.into_body().into_reader();
    let mut report = Reporter { tx: reports, id: job.id, attempt: job.attempt, pace: Coalescer::default() };
    while !cursor.done() {
        let n = match reader.read(buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(_) if job.abort.aborted() => return Ok(()),
            Err(e) => return Err(map_io(&e)),
        };
        let chunk = cursor.take(&buf[..n]);
        if !chunk.is_empty() {
            let mut s = lock(&job.sink);
            if job.abort.aborted() {
                return Ok(());
            }
            s.write(chunk)?;
            drop(s);
            report.add(chunk.len() as u64);
        }
    }
    cursor.finish()
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
        E::TooManyRedirects => NetError::Protocol("too many redirects (a redirect loop?)".into()),
        E::BodyExceedsLimit(_) => NetError::TooLarge,
        E::Tls(_) => NetError::Tls(e.to_string()),
        #[cfg(feature = "rustls")]
        E::Rustls(_) => NetError::Tls(e.to_string()),
        other => NetError::Protocol(other.to_string()),
    }
}
