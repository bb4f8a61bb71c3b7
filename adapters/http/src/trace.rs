//! Record and replay: every input the hub feeds its [`Scheduler`], with
//! its time, as JSON lines (feature `trace`); [`replay`] feeds a recorded
//! trace into a fresh scheduler and returns its outputs, which are the
//! recorded run's outputs byte for byte, since the scheduler is
//! deterministic. A production run becomes a unit test.
//!
//! The format (version [`FORMAT`]): a header line
//! `{"weir_trace":1,"config":{..}}`, then one line per input,
//! `{"at_ns":N,"op":{..}}`, `at_ns` counting nanoseconds from the first
//! timed input; `"drain"` marks where the adapter drained the outputs (the
//! scheduler decides starts when drained, so where matters). With
//! outputs recorded too, lines `{"at_ns":N,"out":{..}}` follow each drain's
//! outputs, for a diff.
//!
//! Without the `trace` feature the hub records nothing and this module
//! holds only the hub's pass-through wrapper.

use std::ops::Deref;
use std::time::{Duration, Instant};

use weir::{
    EnqueueError, GroupId, NetError, Output, PeerId, Request, RequestId, RequestMethod, RequestPriority, RetryPolicy,
    Scheduler, Timeouts, Url,
};

/// The trace format this weir writes and reads.
pub const FORMAT: u32 = 1;

/// One input to the scheduler.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "trace", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "trace", serde(rename_all = "snake_case"))]
#[allow(missing_docs)] // each variant is the scheduler method of the same name
pub enum Op {
    AddPeer {
        priority: RequestPriority,
    },
    RemovePeer {
        peer: PeerId,
    },
    SetPeerPriority {
        peer: PeerId,
        priority: RequestPriority,
    },
    NewGroup {
        peer: PeerId,
    },
    CancelGroup {
        group: GroupId,
    },
    Enqueue {
        peer: PeerId,
        url: Url,
        method: RequestMethod,
        priority: RequestPriority,
        group: Option<GroupId>,
        range: Option<(u64, Option<u64>)>,
        /// What the request sets beyond the config (absent in traces of
        /// requests that set nothing).
        #[cfg_attr(feature = "trace", serde(default, skip_serializing_if = "Option::is_none"))]
        policy: Option<Box<Policy>>,
    },
    Cancel {
        id: RequestId,
    },
    SetPriority {
        id: RequestId,
        priority: RequestPriority,
    },
    Bytes {
        id: RequestId,
        n: u64,
    },
    LateBytes {
        id: RequestId,
        n: u64,
    },
    Progress {
        id: RequestId,
    },
    Complete {
        id: RequestId,
    },
    Failed {
        id: RequestId,
        error: NetError,
    },
    Redirect {
        id: RequestId,
        url: Url,
    },
    Discarded {
        id: RequestId,
        error: NetError,
    },
    Response {
        id: RequestId,
        status: u16,
        content_length: Option<u64>,
    },
    Timeout,
    /// The outputs were drained (`poll_output` until `None`).
    Drain,
    Shutdown,
}

impl Op {
    /// Feed this input to `s` at `now`; a drain returns the outputs.
    pub fn apply(self, s: &mut Scheduler, now: Instant) -> Vec<Output> {
        match self {
            Op::AddPeer { priority } => drop(s.add_peer(priority)),
            Op::RemovePeer { peer } => s.remove_peer(peer, now),
            Op::SetPeerPriority { peer, priority } => s.set_peer_priority(peer, priority, now),
            Op::NewGroup { peer } => drop(s.new_group(peer)),
            Op::CancelGroup { group } => s.cancel_group(group, now),
            Op::Enqueue { peer, url, method, priority, group, range, policy } => {
                let r = request(url, method, priority, group, range);
                let r = match policy {
                    Some(p) => p.apply(r),
                    None => r,
                };
                let _ = s.enqueue(peer, r, now);
            }
            Op::Cancel { id } => s.cancel(id, now),
            Op::SetPriority { id, priority } => s.set_priority(id, priority, now),
            Op::Bytes { id, n } => s.on_bytes(id, n, now),
            Op::LateBytes { id, n } => s.on_late_bytes(id, n, now),
            Op::Progress { id } => s.on_progress(id, now),
            Op::Complete { id } => s.on_complete(id, now),
            Op::Failed { id, error } => s.on_failed(id, error, now),
            Op::Redirect { id, url } => s.on_redirect(id, url, now),
            Op::Discarded { id, error } => s.on_discarded(id, error, now),
            Op::Response { id, status, content_length } => s.on_response(id, status, content_length, now),
            Op::Timeout => s.handle_timeout(now),
            Op::Drain => return std::iter::from_fn(|| s.poll_output()).collect(),
            Op::Shutdown => s.shutdown(now),
        }
        Vec::new()
    }
}

/// A request's own timeouts, retry policy, deadline and mirrors.
#[derive(Debug, Clone, PartialEq, Default)]
#[cfg_attr(feature = "trace", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "trace", serde(default, deny_unknown_fields))]
pub struct Policy {
    /// `Request::timeouts`.
    #[cfg_attr(feature = "trace", serde(skip_serializing_if = "Option::is_none"))]
    pub timeouts: Option<Timeouts>,
    /// `Request::retry`.
    #[cfg_attr(feature = "trace", serde(skip_serializing_if = "Option::is_none"))]
    pub retry: Option<RetryPolicy>,
    /// `Request::deadline`, in nanoseconds (exact).
    #[cfg_attr(feature = "trace", serde(skip_serializing_if = "Option::is_none"))]
    pub deadline_ns: Option<u64>,
    /// `Request::mirror`, in order.
    #[cfg_attr(feature = "trace", serde(skip_serializing_if = "Vec::is_empty"))]
    pub mirrors: Vec<Url>,
}

impl Policy {
    /// What `req` sets, if anything.
    fn of(req: &Request) -> Option<Box<Self>> {
        let p = Self {
            timeouts: req.timeouts_value(),
            retry: req.retry_value().cloned(),
            deadline_ns: req.deadline_value().map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)),
            mirrors: req.mirrors().to_vec(),
        };
        (p != Self::default()).then(|| Box::new(p))
    }

    fn apply(self, mut r: Request) -> Request {
        if let Some(t) = self.timeouts {
            r = r.timeouts(t);
        }
        if let Some(p) = self.retry {
            r = r.retry(p);
        }
        if let Some(d) = self.deadline_ns {
            r = r.deadline(Duration::from_nanos(d));
        }
        self.mirrors.into_iter().fold(r, Request::mirror)
    }
}

fn request(
    url: Url,
    method: RequestMethod,
    priority: RequestPriority,
    group: Option<GroupId>,
    range: Option<(u64, Option<u64>)>,
) -> Request {
    let mut r = match method {
        RequestMethod::Get => Request::get(url),
        RequestMethod::Head => Request::head(url),
    }
    .priority(priority);
    if let Some(g) = group {
        r = r.group(g);
    }
    if let Some((start, end)) = range {
        r = r.range(start, end);
    }
    r
}

/// The scheduler as the hub drives it: every input goes through here, and
/// is written to the recorder first when there is one.
pub(crate) struct Traced {
    sched: Scheduler,
    #[cfg(feature = "trace")]
    rec: Option<record::Recorder>,
}

impl Deref for Traced {
    type Target = Scheduler;

    fn deref(&self) -> &Scheduler {
        &self.sched
    }
}

impl Traced {
    pub(crate) fn new(sched: Scheduler) -> Self {
        Self {
            sched,
            #[cfg(feature = "trace")]
            rec: None,
        }
    }

    #[cfg(feature = "trace")]
    pub(crate) fn record(&mut self, rec: record::Recorder) {
        self.rec = Some(rec);
    }

    /// Stop recording: the trace is flushed and closed.
    #[cfg_attr(not(feature = "trace"), allow(clippy::unused_self))]
    pub(crate) fn end_recording(&mut self) {
        #[cfg(feature = "trace")]
        drop(self.rec.take());
    }

    /// Note `op` (built only when recording) at `now` (`None`: the last time).
    #[cfg_attr(not(feature = "trace"), allow(unused_variables, clippy::unused_self))]
    fn note(&mut self, now: Option<Instant>, op: impl FnOnce() -> Op) {
        #[cfg(feature = "trace")]
        if let Some(rec) = &mut self.rec {
            rec.op(now, &op());
        }
    }

    /// Apply `op` to the scheduler, noting it first.
    fn apply(&mut self, now: Instant, op: Op) {
        #[cfg(feature = "trace")]
        if let Some(rec) = &mut self.rec {
            rec.op(Some(now), &op);
        }
        op.apply(&mut self.sched, now);
    }

    pub(crate) fn add_peer(&mut self, priority: RequestPriority) -> PeerId {
        self.note(None, || Op::AddPeer { priority });
        self.sched.add_peer(priority)
    }

    pub(crate) fn new_group(&mut self, peer: PeerId) -> GroupId {
        self.note(None, || Op::NewGroup { peer });
        self.sched.new_group(peer)
    }

    pub(crate) fn enqueue(&mut self, peer: PeerId, req: Request, now: Instant) -> Result<RequestId, EnqueueError> {
        self.note(Some(now), || Op::Enqueue {
            peer,
            url: req.url().clone(),
            method: req.method(),
            priority: req.priority_value(),
            group: req.group_value(),
            range: req.range_value(),
            policy: Policy::of(&req),
        });
        self.sched.enqueue(peer, req, now)
    }

    pub(crate) fn remove_peer(&mut self, peer: PeerId, now: Instant) {
        self.apply(now, Op::RemovePeer { peer });
    }

    pub(crate) fn set_peer_priority(&mut self, peer: PeerId, priority: RequestPriority, now: Instant) {
        self.apply(now, Op::SetPeerPriority { peer, priority });
    }

    pub(crate) fn cancel_group(&mut self, group: GroupId, now: Instant) {
        self.apply(now, Op::CancelGroup { group });
    }

    pub(crate) fn cancel(&mut self, id: RequestId, now: Instant) {
        self.apply(now, Op::Cancel { id });
    }

    pub(crate) fn set_priority(&mut self, id: RequestId, priority: RequestPriority, now: Instant) {
        self.apply(now, Op::SetPriority { id, priority });
    }

    pub(crate) fn on_bytes(&mut self, id: RequestId, n: u64, now: Instant) {
        self.apply(now, Op::Bytes { id, n });
    }

    pub(crate) fn on_late_bytes(&mut self, id: RequestId, n: u64, now: Instant) {
        self.apply(now, Op::LateBytes { id, n });
    }

    pub(crate) fn on_progress(&mut self, id: RequestId, now: Instant) {
        self.apply(now, Op::Progress { id });
    }

    pub(crate) fn on_complete(&mut self, id: RequestId, now: Instant) {
        self.apply(now, Op::Complete { id });
    }

    pub(crate) fn on_failed(&mut self, id: RequestId, error: NetError, now: Instant) {
        self.apply(now, Op::Failed { id, error });
    }

    pub(crate) fn on_redirect(&mut self, id: RequestId, url: Url, now: Instant) {
        self.apply(now, Op::Redirect { id, url });
    }

    pub(crate) fn on_discarded(&mut self, id: RequestId, error: NetError, now: Instant) {
        self.apply(now, Op::Discarded { id, error });
    }

    pub(crate) fn on_response(&mut self, id: RequestId, status: u16, content_length: Option<u64>, now: Instant) {
        self.apply(now, Op::Response { id, status, content_length });
    }

    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        self.apply(now, Op::Timeout);
    }

    pub(crate) fn shutdown(&mut self, now: Instant) {
        self.apply(now, Op::Shutdown);
    }

    /// The next output; the end of a drain is noted.
    pub(crate) fn poll_output(&mut self) -> Option<Output> {
        let out = self.sched.poll_output();
        #[cfg(feature = "trace")]
        if let Some(rec) = &mut self.rec {
            match &out {
                Some(o) => rec.out(o),
                None => rec.op(None, &Op::Drain),
            }
        }
        out
    }
}

#[cfg(feature = "trace")]
pub use record::{replay, RecordTo, Recorder, Replayed, TraceError};

#[cfg(feature = "trace")]
mod record {
    use std::fs::File;
    use std::io::{self, BufRead, BufWriter, Write};
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use serde::{Deserialize, Serialize};
    use weir::{Config, Output, Scheduler};

    use super::{Op, FORMAT};

    #[derive(Serialize, Deserialize)]
    struct Header {
        weir_trace: u32,
        config: Config,
    }

    #[derive(Serialize, Deserialize)]
    struct Line {
        at_ns: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        op: Option<Op>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        out: Option<Output>,
    }

    /// Writes a trace (see the [module docs](super)). Buffered; flushed
    /// when dropped. The first write error stops the recording (and is
    /// kept, see [`Recorder::error`]); the downloader runs on.
    pub struct Recorder {
        out: BufWriter<Box<dyn Write + Send>>,
        start: Option<Instant>,
        last_ns: u64,
        outputs: bool,
        error: Option<io::Error>,
    }

    impl std::fmt::Debug for Recorder {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("Recorder").field("outputs", &self.outputs).finish_non_exhaustive()
        }
    }

    impl Recorder {
        /// A recorder of a scheduler built with `config`, writing to `out`;
        /// `outputs`: record the outputs too (for a diff). A failure to
        /// write, even the header, is kept in [`Recorder::error`].
        pub fn new(out: impl Write + Send + 'static, config: &Config, outputs: bool) -> Self {
            let out = BufWriter::new(Box::new(out) as Box<dyn Write + Send>);
            let mut r = Self { out, start: None, last_ns: 0, outputs, error: None };
            let header = serde_json::to_writer(&mut r.out, &Header { weir_trace: FORMAT, config: config.clone() })
                .map_err(io::Error::from)
                .and_then(|()| r.out.write_all(b"\n"));
            r.error = header.err();
            r
        }

        /// The write error that stopped the recording, if any.
        #[must_use]
        pub fn error(&self) -> Option<&io::Error> {
            self.error.as_ref()
        }

        fn line(&mut self, line: &Line) {
            if self.error.is_some() {
                return;
            }
            let written = serde_json::to_writer(&mut self.out, line)
                .map_err(io::Error::from)
                .and_then(|()| self.out.write_all(b"\n"));
            if let Err(e) = written {
                self.error = Some(e);
            }
        }

        pub(crate) fn op(&mut self, now: Option<Instant>, op: &Op) {
            if let Some(now) = now {
                let start = *self.start.get_or_insert(now);
                let ns = u64::try_from(now.saturating_duration_since(start).as_nanos()).unwrap_or(u64::MAX);
                self.last_ns = self.last_ns.max(ns);
            }
            let line = Line { at_ns: self.last_ns, op: Some(op.clone()), out: None };
            self.line(&line);
        }

        pub(crate) fn out(&mut self, out: &Output) {
            if self.outputs {
                let line = Line { at_ns: self.last_ns, op: None, out: Some(out.clone()) };
                self.line(&line);
            }
        }
    }

    impl Drop for Recorder {
        fn drop(&mut self) {
            let _ = self.out.flush();
        }
    }

    /// Where an adapter records its trace (its `Options::record`): a file
    /// the caller opened, and whether outputs are recorded too. Cheap to
    /// clone; the downloader writes through a shared handle.
    #[derive(Debug, Clone)]
    pub struct RecordTo {
        file: Arc<File>,
        outputs: bool,
    }

    /// Writes through a shared file handle (`&File` is a writer).
    struct Shared(Arc<File>);

    impl Write for Shared {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            (&*self.0).write(b)
        }
        fn flush(&mut self) -> io::Result<()> {
            (&*self.0).flush()
        }
    }

    impl RecordTo {
        /// Record to `file` (opened for writing, e.g. `File::create`);
        /// `outputs`: the outputs too.
        #[must_use]
        pub fn file(file: File, outputs: bool) -> Self {
            Self { file: Arc::new(file), outputs }
        }

        /// The recorder of a downloader whose scheduler has `config`.
        #[must_use]
        pub fn recorder(&self, config: &Config) -> Recorder {
            Recorder::new(Shared(Arc::clone(&self.file)), config, self.outputs)
        }
    }

    /// Why a trace cannot be replayed: the line (1-based) and the reason.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct TraceError {
        /// The line that is wrong.
        pub line: usize,
        /// What is wrong with it.
        pub why: String,
    }

    impl std::fmt::Display for TraceError {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "trace line {}: {}", self.line, self.why)
        }
    }

    impl std::error::Error for TraceError {}

    /// A replayed trace: what the scheduler output now, and what the trace
    /// recorded (empty unless it was recorded with outputs), each with its
    /// time from the trace's start.
    #[derive(Debug, Clone, PartialEq)]
    pub struct Replayed {
        /// The outputs of the replay.
        pub outputs: Vec<(Duration, Output)>,
        /// For each output of the replay, the trace line (1-based) of the
        /// last input before the drain that produced it: where to look
        /// when it differs.
        pub after_line: Vec<usize>,
        /// The outputs in the trace.
        pub recorded: Vec<(Duration, Output)>,
    }

    impl Replayed {
        /// The first output where the replay and the recording differ
        /// (its index), when outputs were recorded.
        #[must_use]
        pub fn first_divergence(&self) -> Option<usize> {
            if self.recorded.is_empty() {
                return None;
            }
            let n = self.outputs.len().max(self.recorded.len());
            (0..n).find(|&i| self.outputs.get(i) != self.recorded.get(i))
        }
    }

    /// Feed a recorded trace into a fresh scheduler.
    ///
    /// # Errors
    /// A [`TraceError`] naming the first line that cannot be read: not
    /// JSON, not a trace, another format version, a config that cannot
    /// work, an unknown input. Never a panic.
    pub fn replay(trace: impl BufRead) -> Result<Replayed, TraceError> {
        let mut lines = trace.lines();
        let err = |line: usize, why: String| TraceError { line, why };
        let first = lines.next().ok_or_else(|| err(1, "empty: no header".into()))?;
        let first = first.map_err(|e| err(1, e.to_string()))?;
        let header: Header =
            serde_json::from_str(&first).map_err(|e| err(1, format!("not a weir trace header: {e}")))?;
        if header.weir_trace != FORMAT {
            let why = format!("trace format {}, this weir reads format {FORMAT}", header.weir_trace);
            return Err(err(1, why));
        }
        let mut sched = Scheduler::try_new(header.config).map_err(|e| err(1, e.to_string()))?;
        let base = Instant::now();
        let mut replayed = Replayed { outputs: Vec::new(), after_line: Vec::new(), recorded: Vec::new() };
        let mut last_input = 1;
        for (i, line) in lines.enumerate() {
            let n = i + 2;
            let line = line.map_err(|e| err(n, e.to_string()))?;
            if line.trim().is_empty() {
                continue;
            }
            let line: Line = serde_json::from_str(&line).map_err(|e| err(n, e.to_string()))?;
            let at = Duration::from_nanos(line.at_ns);
            let now = base.checked_add(at).ok_or_else(|| err(n, "a time beyond the clock's range".into()))?;
            match (line.op, line.out) {
                (Some(op), None) => {
                    if op != Op::Drain {
                        last_input = n;
                    }
                    let outs = op.apply(&mut sched, now);
                    replayed.after_line.extend(std::iter::repeat_n(last_input, outs.len()));
                    replayed.outputs.extend(outs.into_iter().map(|o| (at, o)));
                }
                (None, Some(out)) => replayed.recorded.push((at, out)),
                _ => return Err(err(n, "a line holds one \"op\" or one \"out\"".into())),
            }
        }
        Ok(replayed)
    }
}
