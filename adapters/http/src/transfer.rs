//! One attempt of one download, as it leaves the [`Hub`](crate::Hub) for a
//! worker thread or task: the request to make, the download's sink (moved
//! here, it comes back in the final [`Report`]) and a [`Stop`] the hub
//! raises to abort it.
//!
//! The adapter's transfer loop is I/O only:
//!
//! ```text
//! let Some(ask) = t.begin()? else { return t.done(Ok(None)) };   // nothing missing
//! send ask; t.on_head(status, headers)?  -> Some(url): drain, t.done(Ok(Some(url)))
//! while t.wants_more() { read a chunk; part = t.body(chunk)?; t.write(part)? }
//! t.end(End::Clean or End::Broken(e))?;  t.done(result)
//! ```
//!
//! Every decision (what to ask, whether an answer is good, which bytes to
//! write, when to tell the scheduler) is made here and in [`Attempt`].

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

use weir::{NetError, RequestId, RequestMethod, Url};

use crate::attempt::{Ask, Attempt, End, Verdict};
use crate::fetch::{Check, Head};
use crate::report::Coalescer;
use crate::sink::SinkState;

type Hook = Box<dyn FnOnce() + Send>;

/// The abort signal of one transfer. The hub raises it; the transfer checks
/// [`Stop::is_stopped`] between reads and may leave a hook that makes a
/// blocked read return at once (shut a socket down, wake a task).
#[derive(Clone, Default)]
pub struct Stop(Arc<StopState>);

#[derive(Default)]
struct StopState {
    stopped: AtomicBool,
    hook: Mutex<Option<Hook>>,
}

impl std::fmt::Debug for Stop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Stop").field(&self.is_stopped()).finish()
    }
}

impl Stop {
    /// Whether the hub has aborted this transfer: write nothing more and
    /// hand the sink back.
    #[must_use]
    pub fn is_stopped(&self) -> bool {
        self.0.stopped.load(Ordering::SeqCst)
    }

    /// Run `hook` when the transfer is stopped (at once if it already is).
    /// It replaces an earlier hook.
    pub fn on_stop(&self, hook: impl FnOnce() + Send + 'static) {
        let mut slot = self.0.hook.lock().unwrap_or_else(PoisonError::into_inner);
        if self.is_stopped() {
            drop(slot);
            hook();
        } else {
            *slot = Some(Box::new(hook));
        }
    }

    /// Abort: raise the flag and run the hook.
    pub(crate) fn stop(&self) {
        let hook = {
            let mut slot = self.0.hook.lock().unwrap_or_else(PoisonError::into_inner);
            self.0.stopped.store(true, Ordering::SeqCst);
            slot.take()
        };
        if let Some(hook) = hook {
            hook();
        }
    }
}

/// What a transfer tells the hub. Send them in order; `Done` is the last.
#[derive(Debug)]
pub enum Report {
    /// Bytes were written to the sink (paced: not every chunk is reported).
    Bytes {
        /// The download.
        id: RequestId,
        /// The attempt.
        attempt: u32,
        /// How many.
        n: u64,
        /// The accepted response head, in the first report after it.
        head: Option<ResponseHead>,
    },
    /// Body bytes arrived that the sink skips (a resent prefix): the
    /// transfer is alive, nothing was delivered.
    Alive {
        /// The download.
        id: RequestId,
        /// The attempt.
        attempt: u32,
        /// The accepted response head, in the first report after it.
        head: Option<ResponseHead>,
    },
    /// The attempt is over; the sink comes back.
    Done(Box<Finished>),
}

/// A response head the transfer accepted: what `ResponseReceived` says.
/// It rides on the first report the transfer sends after it (a small
/// file's only report is its `Done`), so it costs no report of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResponseHead {
    /// The HTTP status.
    pub status: u16,
    /// The size the sink will have when complete, if the answer told.
    pub total: Option<u64>,
}

/// The end of a transfer.
#[derive(Debug)]
pub struct Finished {
    /// The download.
    pub id: RequestId,
    /// The attempt.
    pub attempt: u32,
    /// The sink, returned to the hub.
    pub sink: SinkState,
    /// Bytes written and not yet reported.
    pub unreported: u64,
    /// The accepted response head, if no report carried it yet.
    pub head: Option<ResponseHead>,
    /// Complete (`Ok(None)`), redirected (`Ok(Some(url))`) or failed. Of a
    /// stopped transfer the hub ignores it.
    pub result: Result<Option<Url>, NetError>,
}

/// One attempt of one download, owned by the worker or task that runs it.
#[derive(Debug)]
pub struct Transfer {
    id: RequestId,
    attempt_no: u32,
    stop: Stop,
    /// Made by [`Transfer::begin`], from what the sink holds.
    exchange: Option<Attempt>,
    url: Url,
    method: RequestMethod,
    range: Option<(u64, Option<u64>)>,
    headers: Vec<(String, String)>,
    sink: SinkState,
    pace: Coalescer,
    /// The accepted head, until a report carries it.
    head: Option<ResponseHead>,
    /// The caller's verdict on a response head it would accept.
    pub(crate) check: Option<Check>,
    /// The download's `tracing` span, for the adapter to run this in.
    #[cfg(feature = "tracing")]
    pub(crate) span: tracing::Span,
}

impl Transfer {
    pub(crate) fn new(
        (id, attempt_no): (RequestId, u32),
        (url, method, range): (Url, RequestMethod, Option<(u64, Option<u64>)>),
        headers: Vec<(String, String)>,
        sink: SinkState,
        stop: Stop,
    ) -> Self {
        Self {
            id,
            attempt_no,
            stop,
            exchange: None,
            url,
            method,
            range,
            headers,
            sink,
            pace: Coalescer::default(),
            head: None,
            check: None,
            #[cfg(feature = "tracing")]
            span: tracing::Span::none(),
        }
    }

    /// The download's `tracing` span (feature `tracing`): an adapter runs
    /// the transfer inside it, so what the transport logs nests under it.
    #[cfg(feature = "tracing")]
    #[must_use]
    pub fn span(&self) -> &tracing::Span {
        &self.span
    }

    /// The download this transfer belongs to.
    #[must_use]
    pub fn id(&self) -> RequestId {
        self.id
    }

    /// Which attempt of it (1 for the first start).
    #[must_use]
    pub fn attempt(&self) -> u32 {
        self.attempt_no
    }

    /// The abort signal.
    #[must_use]
    pub fn stop(&self) -> &Stop {
        &self.stop
    }

    fn exchange(&mut self) -> Result<&mut Attempt, NetError> {
        self.exchange.as_mut().ok_or_else(|| NetError::Protocol("the transfer was not begun".into()))
    }

    /// Open the sink and say what to send; `None`: every byte is already
    /// there (the sink was checked), so finish with `done(Ok(None))`.
    ///
    /// # Errors
    /// The sink cannot be opened, or what it holds fails its integrity check.
    pub fn begin(&mut self) -> Result<Option<Ask>, NetError> {
        let held = self.sink.prepare()?;
        let exchange = Attempt::new(self.url.clone(), self.method, self.range, held, self.sink.rewindable())
            .with_headers(std::mem::take(&mut self.headers));
        let ask = exchange.ask();
        self.exchange = Some(exchange);
        if ask.is_none() {
            self.sink.verify_complete()?;
            self.sink.sync()?;
        }
        Ok(ask)
    }

    /// Judge the response head. `Ok(Some(url))`: a redirect; read a short
    /// body away ([`DRAIN_LIMIT`](crate::attempt::DRAIN_LIMIT)) and finish
    /// with `done(Ok(Some(url)))`. `Ok(None)`: read the body.
    ///
    /// # Errors
    /// The answer is refused (status, a bad 206, an integrity or size limit).
    pub fn on_head(&mut self, status: u16, headers: Vec<(String, String)>) -> Result<Option<Url>, NetError> {
        #[cfg(feature = "tracing")]
        crate::observe::head(status);
        let verdict = self.exchange()?.on_head(status, &headers, SystemTime::now());
        match verdict {
            Verdict::Redirect(url) => Ok(Some(url)),
            Verdict::Fail { error, discard } => {
                if discard {
                    self.sink.reset()?;
                }
                Err(error)
            }
            Verdict::Accept { restart, record } => {
                if let Some(check) = &self.check {
                    let head = Head { status, headers: &headers };
                    check.verdict(&head).map_err(|why| NetError::Integrity(format!("response refused: {why}")))?;
                }
                let exchange = self.exchange.as_ref().ok_or_else(|| NetError::Protocol("not begun".into()))?;
                let head = ResponseHead { status, total: exchange.final_size() };
                self.sink.accept(restart, record.then_some((status, headers)), exchange)?;
                // Announced only once the sink took it (not too large, the expected size).
                self.head = Some(head);
                Ok(None)
            }
        }
    }

    /// Whether to read more of the body. When it says no, the adapter may
    /// read [`Transfer::unread`] more bytes (if short) through
    /// [`Transfer::body`] so the connection goes back to the pool.
    #[must_use]
    pub fn wants_more(&self) -> bool {
        self.exchange.as_ref().is_some_and(Attempt::wants_more)
    }

    /// Body bytes the answer announced and the sink does not need.
    #[must_use]
    pub fn unread(&self) -> Option<u64> {
        self.exchange.as_ref().and_then(Attempt::unread)
    }

    /// A body chunk: the part the sink must write (maybe empty: skipped
    /// bytes of a resent prefix), and a report to send now, if one is due.
    ///
    /// # Errors
    /// The body breaks its announced length.
    pub fn body<'c>(&mut self, chunk: &'c [u8]) -> Result<(&'c [u8], Option<Report>), NetError> {
        let part = self.exchange()?.on_body(chunk)?;
        let alive = (part.is_empty() && !chunk.is_empty() && self.pace.skipped()).then(|| Report::Alive {
            id: self.id,
            attempt: self.attempt_no,
            head: self.head.take(),
        });
        Ok((part, alive))
    }

    /// Write a part to the sink; a byte report, if one is due. For an
    /// async writer sink, write through [`Transfer::async_writer`] instead.
    ///
    /// # Errors
    /// The sink's error ([`NetError::Sink`], [`NetError::TooLarge`]).
    pub fn write(&mut self, part: &[u8]) -> Result<Option<Report>, NetError> {
        self.sink.write(part)?;
        Ok(self.paced(part.len() as u64))
    }

    /// The caller's async writer, when the sink is one: write each part to
    /// it and tell [`Transfer::wrote`] what it accepted, right after each
    /// write returns (so a stop between writes loses no count).
    #[cfg(feature = "async")]
    pub fn async_writer(&mut self) -> Option<&mut (dyn futures_io::AsyncWrite + Send + Unpin)> {
        self.sink.async_writer()
    }

    /// These bytes went to the async writer; a byte report, if one is due.
    pub fn wrote(&mut self, bytes: &[u8]) -> Option<Report> {
        self.sink.wrote(bytes);
        self.paced(bytes.len() as u64)
    }

    fn paced(&mut self, n: u64) -> Option<Report> {
        if !self.wants_more() {
            // The body is complete: the final report carries these bytes,
            // and a small file costs one report, not two.
            self.pace.hold(n);
            return None;
        }
        let n = self.pace.add(n)?;
        Some(Report::Bytes { id: self.id, attempt: self.attempt_no, n, head: self.head.take() })
    }

    /// The body ended as the transport saw it: complete, or truncated.
    /// A complete download's bytes are checked (size, digest) and put on
    /// disk here, on the transfer's thread.
    ///
    /// # Errors
    /// Truncated or overlong body, an integrity mismatch, a failed sync.
    pub fn end(&mut self, end: End) -> Result<(), NetError> {
        self.exchange()?.on_end(end)?;
        self.sink.verify_complete()?;
        self.sink.sync()
    }

    /// The final report, handing the sink back.
    #[must_use]
    pub fn done(mut self, result: Result<Option<Url>, NetError>) -> Report {
        let unreported = self.pace.take().unwrap_or(0);
        let head = self.head.take();
        let (id, attempt, sink) = (self.id, self.attempt_no, self.sink);
        Report::Done(Box::new(Finished { id, attempt, sink, unreported, head, result }))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use super::Stop;

    #[test]
    fn a_hook_runs_once_when_stopped_or_at_once_when_already_stopped() {
        let runs = Arc::new(AtomicUsize::new(0));
        let stop = Stop::default();
        let r = Arc::clone(&runs);
        stop.on_stop(move || {
            r.fetch_add(1, Ordering::SeqCst);
        });
        assert_eq!(runs.load(Ordering::SeqCst), 0, "not before the stop");
        assert!(!stop.is_stopped());
        stop.clone().stop();
        assert!(stop.is_stopped(), "clones share the flag");
        stop.stop();
        assert_eq!(runs.load(Ordering::SeqCst), 1, "once, however often it is stopped");
        let r = Arc::clone(&runs);
        stop.on_stop(move || {
            r.fetch_add(1, Ordering::SeqCst);
        });
        assert_eq!(runs.load(Ordering::SeqCst), 2, "a hook set after the stop runs at once");
    }
}
