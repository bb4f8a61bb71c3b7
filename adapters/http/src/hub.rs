//! The driver both adapters wrap: a sans-IO state machine that owns the
//! [`Scheduler`], the table of live downloads and the event subscribers.
//!
//! An adapter is a shell around it: it feeds [`Input`]s (commands from its
//! handles, [`Report`]s from its transfers) and the time, runs every
//! [`Transfer`] that [`Hub::poll`] hands out on a thread or task, and runs
//! every [`Settlement`] (where it likes: outside a lock). The hub does the
//! rest: it builds each transfer from the scheduler's `Start`,
//! lends it the download's sink (which comes back in the final report),
//! raises a transfer's [`Stop`] when the scheduler aborts it, publishes
//! events and settles each download exactly once.
//!
//! ```text
//! loop {
//!     wait for an input or until hub.poll_timeout()
//!     hub.input(input, now); hub.handle_timeout(now)
//!     while let Some(action) = hub.poll() { spawn the transfer, or run the settlement }
//!     if hub.is_finished() { break }      // shut down and every sink is back
//! }
//! ```
//!
//! **Sinks move.** While a transfer runs it owns the sink; the hub holds
//! none of it. A start the scheduler decides while an aborted transfer
//! still holds the sink waits for the sink to come back (abort is prompt,
//! so that is a read's time), and a download that ends while its sink is
//! out settles when the sink returns: a file is then never written after
//! its download settled.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use weir::{
    DownloaderEvent, EnqueueError, FetchCmd, GroupId, Output, PeerId, Request, RequestId, RequestMethod,
    RequestPriority, Scheduler, Url,
};

use crate::fetch::{Check, Fetch};
use crate::headers::Headers;
use crate::outcome::{Event, Outcome};
use crate::progress::{Progress, Snapshot};
use crate::sink::{Sink, SinkState};
use crate::trace::Traced;
use crate::transfer::{Finished, Report, ResponseHead, Stop, Transfer};

/// Where an answer goes: usually a send on the handle's reply channel.
pub type Reply<T> = Box<dyn FnOnce(T) + Send>;

/// A subscriber: takes each event, says `false` once it is gone (its
/// receiver dropped) so the hub forgets it.
pub type Subscriber = Box<dyn FnMut(&Event) -> bool + Send>;

/// One download as a handle hands it over.
pub struct Item {
    /// What to fetch, at what priority, in which group.
    pub req: Request,
    /// Where the bytes go.
    pub sink: Sink,
    /// Headers to send and what the bytes must turn out to be.
    pub fetch: Fetch,
    /// Kept current for the download's handle.
    pub progress: Arc<Progress>,
    /// Receives the outcome, once.
    pub done: Reply<Outcome>,
}

/// What a handle asks of the downloader.
pub enum Command {
    /// A new peer with this priority.
    AddPeer(RequestPriority, Reply<PeerId>),
    /// Remove a peer: its requests end with `PeerCancel`.
    RemovePeer(PeerId),
    /// Change a peer's priority.
    SetPeerPriority(PeerId, RequestPriority),
    /// A new cancellation group of a peer.
    NewGroup(PeerId, Reply<GroupId>),
    /// Cancel a group.
    CancelGroup(GroupId),
    /// Enqueue downloads together (so they are scheduled together); the
    /// ids or refusals come back in order.
    Fetch {
        /// Whose.
        peer: PeerId,
        /// What.
        items: Vec<Item>,
        /// The answer.
        reply: Reply<Vec<Result<RequestId, EnqueueError>>>,
    },
    /// Cancel one download.
    Cancel(RequestId),
    /// Change one download's priority.
    SetPriority(RequestId, RequestPriority),
    /// Receive every event (`None`) or one peer's.
    Subscribe(Option<PeerId>, Subscriber),
    /// The progress of each live download of a peer, in id order.
    Progress(PeerId, Reply<Vec<(RequestId, Snapshot)>>),
    /// A peer's bandwidth estimate (`Scheduler::peer_bandwidth`).
    Bandwidth(PeerId, Reply<Option<u64>>),
    /// Cancel everything; the hub finishes once every sink is back.
    Shutdown,
}

/// Everything an adapter feeds the hub (one channel can carry both).
pub enum Input {
    /// From a handle.
    Command(Command),
    /// From a transfer.
    Report(Report),
}

/// How the hub builds transfers.
#[derive(Debug, Clone)]
pub struct HubOptions {
    /// Headers every download sends unless it sets its own.
    pub headers: Headers,
    /// Largest body a memory sink accepts.
    pub memory_limit: u64,
    /// Whether the adapter writes [`Sink::AsyncWriter`] sinks (the blocking
    /// one cannot: such a download fails with a clear error).
    pub async_writers: bool,
    /// Put every completed file on disk before it takes its final name
    /// (default): when its download settles ([`Settlement::needs_sync`]),
    /// never on the transfer; `false` trusts the OS as curl and wget do
    /// (see `SinkState::trusting_the_os`).
    pub durable: bool,
    /// Record every input of the scheduler from the start (feature `trace`;
    /// see [`crate::trace`]).
    #[cfg(feature = "trace")]
    pub record: Option<crate::trace::RecordTo>,
}

impl Default for HubOptions {
    fn default() -> Self {
        Self {
            headers: Headers::new(),
            memory_limit: crate::DEFAULT_MEMORY_LIMIT,
            async_writers: false,
            durable: true,
            #[cfg(feature = "trace")]
            record: None,
        }
    }
}

/// One live download.
struct Download {
    peer: PeerId,
    /// What its sink holds, read for [`Hub::progress_of`].
    progress: Arc<Progress>,
    /// The URL asked for: the origin credentials may go to.
    first: Url,
    method: RequestMethod,
    range: Option<(u64, Option<u64>)>,
    headers: Headers,
    /// The caller's verdict on a response head, given to each transfer.
    check: Option<Check>,
    /// `None` while a transfer holds it.
    sink: Option<SinkState>,
    /// The attempt the scheduler runs now, and its abort signal.
    running: Option<(u32, Stop)>,
    /// Starts decided while the sink was out, oldest first: each becomes a
    /// transfer in turn when the sink is back (one stopped meanwhile
    /// returns at once), so every start is exactly one transfer.
    waiting: VecDeque<(FetchCmd, Stop)>,
    /// The terminal event, kept while the sink is out: it settles when the sink is back.
    ended: Option<DownloaderEvent>,
    /// Whether it was fetched again from zero after its bytes turned out
    /// wrong (once at most).
    refetched: bool,
    done: Option<Reply<Outcome>>,
    /// Its `tracing` span; transfers run inside it.
    #[cfg(feature = "tracing")]
    span: tracing::Span,
}

impl Download {
    fn is_current(&self, attempt: u32) -> bool {
        self.running.as_ref().is_some_and(|(a, _)| *a == attempt)
    }

    fn settle(&mut self, sink: SinkState, event: DownloaderEvent) -> Option<Action> {
        let done = self.done.take()?;
        Some(Action::Settle(Box::new(Settlement { sink, event, done })))
    }
}

/// What the hub asks of the adapter, from [`Hub::poll`].
#[derive(Debug)]
pub enum Action {
    /// Run this transfer on a thread or task; it reports back. (Boxed: it
    /// holds the sink and the exchange, and travels through channels.)
    Spawn(Box<Transfer>),
    /// Settle a download that ended (see [`Settlement::run`]).
    Settle(Box<Settlement>),
}

/// A download that ended, with its sink: [`Settlement::run`] finishes the
/// sink (a completed file is renamed into place, a failed one removed) and
/// hands the outcome to whoever waits. Run it outside any lock: it may
/// touch the file system.
pub struct Settlement {
    sink: SinkState,
    event: DownloaderEvent,
    done: Reply<Outcome>,
}

impl std::fmt::Debug for Settlement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settlement").field("event", &self.event).finish_non_exhaustive()
    }
}

impl Settlement {
    /// The download.
    #[must_use]
    pub fn id(&self) -> RequestId {
        self.event.request_id()
    }

    /// Finish the sink and deliver the outcome.
    pub fn run(self) {
        if let Some(outcome) = self.sink.settle(&self.event) {
            (self.done)(outcome);
        }
    }

    /// Whether the completed file this settlement renames into place has
    /// still to reach the disk (a durable file sink). Run alone, it is
    /// `fsync`ed in [`Settlement::run`]; adapters instead gather such
    /// settlements off their driver and put them on disk together
    /// ([`sync_together`]).
    #[must_use]
    pub fn needs_sync(&self) -> bool {
        self.unsynced_file().is_some()
    }

    /// The completed file that has still to reach the disk, if any.
    fn unsynced_file(&self) -> Option<&std::fs::File> {
        self.completed().then(|| self.sink.unsynced_file()).flatten()
    }

    fn completed(&self) -> bool {
        matches!(self.event, DownloaderEvent::RequestCompleted { .. })
    }

    /// Whether this settlement puts a completed file in place (a rename,
    /// after a sync when [`Settlement::needs_sync`]). Adapters run these on
    /// one thread of their own, off the transfers: renames in one
    /// directory from many threads contend for its lock (measured: 7 %
    /// of `weir get`'s wall time on 5000 × 4 KiB, `benches/README.md` §5).
    #[must_use]
    pub fn places_file(&self) -> bool {
        self.completed() && self.sink.is_file()
    }
}

/// Most completed files an adapter keeps waiting for its sync thread or
/// task ([`Settlement::places_file`]). Each holds its file open (and a
/// partial file locked) until it is renamed, so a full queue makes the
/// next one wait until the sync thread takes the batch (one `syncfs` at
/// most): with the batch being synced, at most twice this many files are
/// open however fast downloads complete and however slow the disk is.
/// Measured on 5000 × 4 KiB (`weir get`, default durability): 64 cost
/// 5 % over an unbounded queue, 256 nothing measurable; syncing each file
/// alone past the bound instead of waiting cost 25 %.
pub const MOST_FILES_WAITING: usize = 256;

/// Put the files of these completed downloads on disk at once, so that
/// [`Settlement::run`] only renames them: on Linux one `syncfs` per file
/// system they are on, instead of one `fsync` per file (each a journal
/// commit and a device flush; about six times the cost for 64 KiB files,
/// `benches/README.md` §5). `syncfs` also writes back whatever else is
/// dirty on that file system, as an ext4 journal commit for an `fsync`
/// can. Where it is unavailable (other systems) or fails, the files are
/// left as they were and each is `fsync`ed alone when it settles, which
/// reports its own error.
pub fn sync_together(batch: &mut [Settlement]) {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::fs::MetadataExt;
        // Each file system once: (device, whether its sync succeeded).
        let mut synced: Vec<(u64, bool)> = Vec::new();
        for s in batch.iter_mut() {
            let Some(file) = s.unsynced_file() else { continue };
            let Ok(dev) = file.metadata().map(|m| m.dev()) else { continue };
            let ok = match synced.iter().find(|(d, _)| *d == dev) {
                Some(&(_, ok)) => ok,
                None => {
                    // Every file of the batch was written before this call.
                    let ok = rustix::fs::syncfs(file).is_ok();
                    synced.push((dev, ok));
                    ok
                }
            };
            if ok {
                s.sink.mark_synced();
            }
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = batch;
}

/// Put these completed downloads' files in place: on disk together
/// ([`sync_together`]), then each renamed and its outcome delivered. What
/// an adapter's sync thread or task runs on each batch it takes.
pub fn place_files(mut batch: Vec<Settlement>) {
    sync_together(&mut batch);
    batch.into_iter().for_each(Settlement::run);
}

/// The current attempt's accepted head, if its report carries it.
fn responded(sched: &mut Traced, id: RequestId, head: Option<ResponseHead>, now: Instant) {
    if let Some(h) = head {
        sched.on_response(id, h.status, h.total, now);
    }
}

/// The sans-IO driver. See the [module docs](self).
pub struct Hub {
    sched: Traced,
    downloads: HashMap<RequestId, Download>,
    root_subs: Vec<Subscriber>,
    peer_subs: HashMap<PeerId, Vec<Subscriber>>,
    /// Peers removed since the last drain: their subscribers go once the
    /// events of their end are published.
    retired: Vec<PeerId>,
    options: HubOptions,
    /// Transfers and settlements not yet handed out.
    ready: VecDeque<Action>,
    /// Transfers handed out whose sink has not come back.
    out: usize,
    shut: bool,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub")
            .field("downloads", &self.downloads.len())
            .field("out", &self.out)
            .field("shut", &self.shut)
            .finish_non_exhaustive()
    }
}

impl Hub {
    /// A hub driving `sched`.
    #[must_use]
    pub fn new(sched: Scheduler, options: HubOptions) -> Self {
        #[cfg_attr(not(feature = "trace"), allow(unused_mut))]
        let mut sched = Traced::new(sched);
        #[cfg(feature = "trace")]
        if let Some(to) = &options.record {
            let recorder = to.recorder(sched.config());
            sched.record(recorder);
        }
        Self {
            sched,
            downloads: HashMap::new(),
            root_subs: Vec::new(),
            peer_subs: HashMap::new(),
            retired: Vec::new(),
            options,
            ready: VecDeque::new(),
            out: 0,
            shut: false,
        }
    }

    /// The scheduler, to read (counts, the bandwidth estimate).
    #[must_use]
    pub fn scheduler(&self) -> &Scheduler {
        &self.sched
    }

    /// Record every input of the scheduler from now on (feature `trace`;
    /// see [`crate::trace`]). Start before the first command, so that the
    /// trace replays from the beginning.
    #[cfg(feature = "trace")]
    pub fn record(&mut self, recorder: crate::trace::Recorder) {
        self.sched.record(recorder);
    }

    /// Downloads not yet settled.
    #[must_use]
    pub fn live(&self) -> usize {
        self.downloads.len()
    }

    /// Transfers handed out whose sink has not come back.
    #[must_use]
    pub fn transfers_out(&self) -> usize {
        self.out
    }

    /// Shut down, every transfer has handed its sink back and every
    /// action was polled: the adapter may stop its loop once it ran the
    /// settlements it got.
    #[must_use]
    pub fn is_finished(&self) -> bool {
        self.shut && self.out == 0 && self.ready.is_empty()
    }

    /// The earliest deadline of the scheduler.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.sched.poll_timeout()
    }

    /// Time passed.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.sched.handle_timeout(now);
    }

    /// Feed one input.
    pub fn input(&mut self, input: Input, now: Instant) {
        match input {
            Input::Command(c) => self.command(c, now),
            Input::Report(r) => self.report(r, now),
        }
    }

    /// A command from a handle.
    pub fn command(&mut self, command: Command, now: Instant) {
        match command {
            Command::AddPeer(p, reply) => reply(self.add_peer(p)),
            Command::RemovePeer(p) => {
                self.sched.remove_peer(p, now);
                self.retired.push(p);
            }
            Command::SetPeerPriority(p, prio) => self.sched.set_peer_priority(p, prio, now),
            Command::NewGroup(p, reply) => reply(self.new_group(p)),
            Command::CancelGroup(g) => self.sched.cancel_group(g, now),
            Command::Fetch { peer, items, reply } => reply(self.fetch(peer, items, now)),
            Command::Cancel(id) => self.sched.cancel(id, now),
            Command::SetPriority(id, p) => self.sched.set_priority(id, p, now),
            Command::Subscribe(None, s) => self.root_subs.push(s),
            Command::Subscribe(Some(p), s) => self.peer_subs.entry(p).or_default().push(s),
            Command::Progress(p, reply) => reply(self.progress_of(p)),
            Command::Bandwidth(p, reply) => reply(self.peer_bandwidth(p)),
            Command::Shutdown => {
                self.sched.shutdown(now);
                self.shut = true;
            }
        }
    }

    /// A new peer ([`Command::AddPeer`] without the reply, for an adapter
    /// that calls the hub directly).
    pub fn add_peer(&mut self, priority: RequestPriority) -> PeerId {
        self.sched.add_peer(priority)
    }

    /// The progress of each live download of `peer` (bytes in its sink,
    /// its size once known), in id order ([`Command::Progress`] without
    /// the reply): what a UI lists for one player or job.
    #[must_use]
    pub fn progress_of(&self, peer: PeerId) -> Vec<(RequestId, Snapshot)> {
        let mut all: Vec<_> =
            self.downloads.iter().filter(|(_, d)| d.peer == peer).map(|(&id, d)| (id, d.progress.get())).collect();
        all.sort_unstable_by_key(|&(id, _)| id);
        all
    }

    /// `peer`'s bandwidth estimate, learnt while its transfers run
    /// ([`Command::Bandwidth`] without the reply; see
    /// `Scheduler::peer_bandwidth`): what an adaptive player picks its
    /// next bitrate by.
    #[must_use]
    pub fn peer_bandwidth(&self, peer: PeerId) -> Option<u64> {
        self.sched.peer_bandwidth(peer)
    }

    /// A new group of `peer` ([`Command::NewGroup`] without the reply).
    pub fn new_group(&mut self, peer: PeerId) -> GroupId {
        self.sched.new_group(peer)
    }

    /// Enqueue downloads together ([`Command::Fetch`] without the reply):
    /// ids or refusals in order.
    pub fn fetch(&mut self, peer: PeerId, items: Vec<Item>, now: Instant) -> Vec<Result<RequestId, EnqueueError>> {
        items.into_iter().map(|item| self.enqueue(peer, item, now)).collect()
    }

    fn enqueue(&mut self, peer: PeerId, item: Item, now: Instant) -> Result<RequestId, EnqueueError> {
        let Item { req, sink, fetch, progress, done } = item;
        let watch = Arc::clone(&progress);
        let (first, method, range) = (req.url().clone(), req.method(), req.range_value());
        let id = self.sched.enqueue(peer, req, now)?;
        #[cfg(feature = "tracing")]
        let first_url = first.clone();
        let mut sink = SinkState::with_progress(sink, self.options.memory_limit, progress).expecting(fetch.expect);
        if !self.options.async_writers {
            sink = sink.refusing_async_writer();
        }
        if !self.options.durable {
            sink = sink.trusting_the_os();
        }
        let download = Download {
            peer,
            progress: watch,
            first,
            method,
            range,
            headers: fetch.headers,
            check: fetch.check,
            sink: Some(sink),
            running: None,
            waiting: VecDeque::new(),
            ended: None,
            refetched: false,
            done: Some(done),
            #[cfg(feature = "tracing")]
            span: crate::observe::span(id, peer, &first_url),
        };
        self.downloads.insert(id, download);
        Ok(id)
    }

    /// A report from a transfer. Of an attempt the scheduler stopped only
    /// the bytes count (they are in the sink: `Scheduler::on_late_bytes`)
    /// and the sink is taken back.
    pub fn report(&mut self, report: Report, now: Instant) {
        match report {
            Report::Bytes { id, attempt, n, head } => match self.downloads.get(&id) {
                Some(d) if d.is_current(attempt) => {
                    responded(&mut self.sched, id, head, now);
                    self.sched.on_bytes(id, n, now);
                    d.progress.set_rate(self.sched.transfer_rate(id));
                }
                Some(_) => self.sched.on_late_bytes(id, n, now),
                None => {}
            },
            Report::Alive { id, attempt, head } => {
                if self.downloads.get(&id).is_some_and(|d| d.is_current(attempt)) {
                    responded(&mut self.sched, id, head, now);
                    self.sched.on_progress(id, now);
                }
            }
            Report::Done(finished) => self.finished(*finished, now),
        }
    }

    fn finished(&mut self, f: Finished, now: Instant) {
        let Finished { id, attempt, mut sink, unreported, head, result } = f;
        let Some(d) = self.downloads.get_mut(&id) else { return };
        if d.sink.is_some() {
            // Not the transfer that holds the sink: a report no transfer of ours sent.
            return;
        }
        self.out -= 1;
        if d.is_current(attempt) {
            d.running = None;
            // Bytes that arrived whole but wrong (size, SHA-256), in a sink
            // that started over: fetched once more from zero.
            let refetch = sink.take_discarded() && !std::mem::replace(&mut d.refetched, true);
            d.progress.set_rate(None);
            d.sink = Some(sink);
            responded(&mut self.sched, id, head, now);
            self.sched.on_bytes(id, unreported, now);
            match result {
                Ok(None) => self.sched.on_complete(id, now),
                Ok(Some(url)) => self.sched.on_redirect(id, url, now),
                Err(e) if refetch => self.sched.on_discarded(id, e, now),
                Err(e) => self.sched.on_failed(id, e, now),
            }
            return;
        }
        self.sched.on_late_bytes(id, unreported, now);
        if let Some((cmd, stop)) = d.waiting.pop_front() {
            self.spawn(id, cmd, sink, stop);
        } else if let Some(ev) = d.ended.take() {
            self.ready.extend(d.settle(sink, ev));
            self.downloads.remove(&id);
        } else {
            d.sink = Some(sink);
        }
    }

    /// The next transfer to run or download to settle, after acting on
    /// everything the scheduler decided (aborts raised, events published).
    #[must_use]
    pub fn poll(&mut self) -> Option<Action> {
        loop {
            if let Some(a) = self.ready.pop_front() {
                return Some(a);
            }
            let Some(out) = self.sched.poll_output() else {
                for p in self.retired.drain(..) {
                    self.peer_subs.remove(&p);
                }
                if self.is_finished() {
                    // Every event is out: the subscribers' streams end here,
                    // and a trace is complete (flushed and closed).
                    self.root_subs.clear();
                    self.peer_subs.clear();
                    self.sched.end_recording();
                }
                return None;
            };
            match out {
                Output::Start(cmd) => self.start(cmd),
                Output::Abort(id) => {
                    if let Some((_, stop)) = self.downloads.get_mut(&id).and_then(|d| d.running.take()) {
                        stop.stop();
                    }
                }
                Output::Event(peer, ev) => {
                    #[cfg(feature = "tracing")]
                    if let Some(d) = self.downloads.get(&ev.request_id()) {
                        crate::observe::event(&d.span, &ev);
                    }
                    if ev.is_terminal() {
                        self.end(&ev);
                    }
                    self.publish(peer, ev);
                }
            }
        }
    }

    fn start(&mut self, cmd: FetchCmd) {
        let Some(d) = self.downloads.get_mut(&cmd.id) else { return };
        let stop = Stop::default();
        d.running = Some((cmd.attempt, stop.clone()));
        match d.sink.take() {
            Some(sink) => self.spawn(cmd.id, cmd, sink, stop),
            // An aborted transfer still holds the sink: begin when it is back.
            None => d.waiting.push_back((cmd, stop)),
        }
    }

    /// Hand `sink` to a new transfer for `cmd`.
    fn spawn(&mut self, id: RequestId, cmd: FetchCmd, sink: SinkState, stop: Stop) {
        let Some(d) = self.downloads.get(&id) else { return };
        let headers = Headers::for_attempt(&d.headers, &self.options.headers, &d.first, &cmd.url);
        let FetchCmd { attempt, url, .. } = cmd;
        let mut t = Transfer::new((id, attempt), (url, d.method, d.range), headers, sink, stop);
        t.check = d.check.clone();
        #[cfg(feature = "tracing")]
        {
            t.span = d.span.clone();
        }
        self.ready.push_back(Action::Spawn(Box::new(t)));
        self.out += 1;
    }

    /// A download ended: settle it now, or when its sink comes back.
    fn end(&mut self, ev: &DownloaderEvent) {
        let id = ev.request_id();
        let Some(d) = self.downloads.get_mut(&id) else { return };
        if let Some((_, stop)) = d.running.take() {
            stop.stop();
        }
        match d.sink.take() {
            Some(sink) => {
                self.ready.extend(d.settle(sink, ev.clone()));
                self.downloads.remove(&id);
            }
            None => d.ended = Some(ev.clone()),
        }
    }

    fn publish(&mut self, peer: PeerId, ev: DownloaderEvent) {
        let item = (peer, ev);
        self.root_subs.retain_mut(|s| s(&item));
        if let Some(subs) = self.peer_subs.get_mut(&peer) {
            subs.retain_mut(|s| s(&item));
        }
    }
}
