//! Worker threads: each runs one transfer at a time with its own `ureq`
//! agent, writes the body to the request's sink and reports bytes and the
//! end of the attempt to the driver. All decisions stay in the core.

use std::io::{self, Read};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use ureq::Agent;
use weir::{NetError, RequestId, RequestMethod, Url};

use crate::parse::{content_range, range_header, retry_after};
use crate::sink::SinkState;
use crate::Msg;

/// Read buffer per worker.
const CHUNK: usize = 64 * 1024;

/// Byte reports are coalesced to at most one per this interval (or per
/// `REPORT_BYTES`) after the first, which goes at once for `FirstByte`.
const REPORT_EVERY: Duration = Duration::from_millis(20);
const REPORT_BYTES: u64 = 1 << 20;

/// Coalesces byte reports to the driver, so a fast transfer does not wake
/// it for every chunk. Whatever is pending goes out when the attempt ends
/// (on drop), before the worker reports the end.
struct Reporter<'a> {
    tx: &'a Sender<Msg>,
    id: RequestId,
    attempt: u32,
    pending: u64,
    last: Option<Instant>,
}

impl Reporter<'_> {
    fn add(&mut self, n: u64) {
        self.pending += n;
        let due = self.last.map_or(true, |t| t.elapsed() >= REPORT_EVERY);
        if due || self.pending >= REPORT_BYTES {
            self.flush();
        }
    }

    fn flush(&mut self) {
        if self.pending > 0 {
            let _ = self.tx.send(Msg::Bytes { id: self.id, attempt: self.attempt, n: self.pending });
            self.pending = 0;
            self.last = Some(Instant::now());
        }
    }
}

impl Drop for Reporter<'_> {
    fn drop(&mut self) {
        self.flush();
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
    let (orig_start, orig_end) = job.range.unwrap_or((0, None));
    let (written, validator) = {
        let s = lock(&job.sink);
        (s.written, s.validator.clone())
    };
    let start = orig_start.saturating_add(written);
    if orig_end.is_some_and(|end| start > end) {
        return Ok(()); // every byte of the range is already there
    }
    let get = job.method == RequestMethod::Get;
    let ranged = get && (job.range.is_some() || written > 0);
    let mut req = if get { agent.get(job.url.as_str()) } else { agent.head(job.url.as_str()) };
    if ranged {
        req = req.header("Range", range_header(start, orig_end));
        if written > 0 {
            if let Some(v) = &validator {
                req = req.header("If-Range", v.as_str());
            }
        }
    }
    let resp = req.call().map_err(map_error)?;
    let status = resp.status().as_u16();
    if status >= 400 {
        let ra = header(&resp, "retry-after").and_then(|v| retry_after(&v, SystemTime::now()));
        return Err(NetError::Status { status, retry_after: ra });
    }
    if status >= 300 {
        return Err(NetError::Protocol(format!("unexpected status {status} (redirect without a usable Location)")));
    }
    let headers: Vec<(String, String)> = resp
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
        .collect();
    let new_validator = header(&resp, "etag").or_else(|| header(&resp, "last-modified"));
    let length = header(&resp, "content-length").and_then(|v| v.trim().parse::<u64>().ok());

    // Where this body starts relative to what we need.
    let mut skip = 0u64;
    {
        let mut s = lock(&job.sink);
        if status == 206 {
            let cr = header(&resp, "content-range")
                .and_then(|v| content_range(&v))
                .ok_or_else(|| NetError::Protocol("206 without a valid Content-Range".into()))?;
            if !ranged || cr.first != start || orig_end.is_some_and(|e| cr.last > e) {
                return Err(NetError::Protocol(format!(
                    "206 for bytes {}-{} does not match the requested range {}",
                    cr.first,
                    cr.last,
                    range_header(start, orig_end)
                )));
            }
        } else if ranged {
            // A 200 to a range request: the server ignored Range, or If-Range
            // said the resource changed. A changed resource starts over.
            let changed = written > 0 && validator.is_some() && new_validator != validator;
            if changed {
                s.reset()?;
                skip = orig_start;
            } else {
                skip = start;
            }
        }
        if s.written == 0 {
            s.status = status;
            s.headers = headers;
            s.validator = new_validator;
        }
        if let Some(len) = length {
            if !s.fits(s.written.saturating_add(len.saturating_sub(skip))) {
                return Err(NetError::TooLarge);
            }
        }
    }
    if !get {
        return Ok(());
    }

    // Bytes still wanted when the range is bounded.
    let mut want = orig_end.map(|end| end - orig_start + 1 - lock(&job.sink).written);
    let mut reader = resp.into_body().into_reader();
    let mut report = Reporter { tx: reports, id: job.id, attempt: job.attempt, pending: 0, last: None };
    loop {
        let n = match reader.read(buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(_) if job.abort.aborted() => return Ok(()),
            Err(e) => return Err(map_io(&e)),
        };
        let mut chunk = &buf[..n];
        if skip > 0 {
            let k = usize::try_from(skip).unwrap_or(usize::MAX).min(chunk.len());
            chunk = &chunk[k..];
            skip -= k as u64;
        }
        if let Some(w) = want {
            chunk = &chunk[..usize::try_from(w).unwrap_or(usize::MAX).min(chunk.len())];
        }
        if !chunk.is_empty() {
            let mut s = lock(&job.sink);
            if job.abort.aborted() {
                return Ok(());
            }
            s.write(chunk)?;
            drop(s);
            want = want.map(|w| w - chunk.len() as u64);
            report.add(chunk.len() as u64);
        }
        if want == Some(0) {
            break;
        }
    }
    if skip > 0 {
        return Err(NetError::Reset("the body ended before the resume offset".into()));
    }
    if want.is_some_and(|w| w > 0) {
        return Err(NetError::Reset("the body ended before the end of the requested range".into()));
    }
    Ok(())
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
