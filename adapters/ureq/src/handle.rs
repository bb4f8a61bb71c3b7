//! The handles: a peer's and a download's. Each calls the shared hub
//! directly; a download's outcome comes back on a channel of its own.

use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::Duration;

use weir::{EnqueueError, GroupId, PeerId, Request, RequestId, RequestPriority};
use weir_http::{Command, Event, Fetch, FetchError, Item, Outcome, Progress, Sink, Snapshot};

use crate::shared::Shared;

/// A channel of events of one peer (`Some`) or all (`None`).
pub(crate) fn subscribe(shared: &Shared, peer: Option<PeerId>) -> Receiver<Event> {
    let (events, rx) = mpsc::channel();
    let sub: weir_http::Subscriber = Box::new(move |e| events.send(e.clone()).is_ok());
    shared.with(|hub, now| hub.command(Command::Subscribe(peer, sub), now));
    rx
}

struct PeerInner {
    id: PeerId,
    shared: Arc<Shared>,
}

impl Drop for PeerInner {
    fn drop(&mut self) {
        let id = self.id;
        self.shared.with(|hub, now| hub.command(Command::RemovePeer(id), now));
    }
}

/// A peer: a scope with its own priority, groups and event stream. Clones
/// share the peer; dropping the last one removes it.
#[derive(Clone)]
pub struct PeerHandle {
    inner: Arc<PeerInner>,
}

impl std::fmt::Debug for PeerHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("PeerHandle").field(&self.inner.id).finish()
    }
}

impl PeerHandle {
    pub(crate) fn new(id: PeerId, shared: Arc<Shared>) -> Self {
        Self { inner: Arc::new(PeerInner { id, shared }) }
    }

    /// The peer's id, as events name it.
    #[must_use]
    pub fn id(&self) -> PeerId {
        self.inner.id
    }

    /// Schedule a download into `sink`.
    ///
    /// # Errors
    /// The scheduler's [`EnqueueError`] (bad URL, full queue, shut down, …).
    pub fn fetch(&self, req: Request, sink: Sink) -> Result<Download, EnqueueError> {
        self.fetch_with(req, sink, Fetch::new())
    }

    /// Schedule a download into `sink` with its HTTP side: headers to
    /// send too (auth tokens, cookies, `Accept`, ...; a [`weir_http::Headers`] alone
    /// will do) and the size and SHA-256 its bytes must have. Credentials
    /// (`Authorization`, `Cookie`, `Proxy-Authorization`) are not sent to
    /// another origin after a redirect; a size or digest mismatch fails the
    /// download with [`weir::NetError::Integrity`] instead of completing it.
    ///
    /// # Errors
    /// As [`PeerHandle::fetch`].
    pub fn fetch_with(&self, req: Request, sink: Sink, fetch: impl Into<Fetch>) -> Result<Download, EnqueueError> {
        self.fetch_all_with(vec![(req, sink, fetch.into())]).pop().unwrap_or(Err(EnqueueError::ShutDown))
    }

    /// Schedule many downloads in one call to the hub: they are
    /// enqueued together, so they are also scheduled together (a High one
    /// among them starts first). Results in input order.
    #[must_use]
    pub fn fetch_all(&self, items: Vec<(Request, Sink)>) -> Vec<Result<Download, EnqueueError>> {
        self.fetch_all_with(items.into_iter().map(|(r, s)| (r, s, Fetch::new())).collect())
    }

    /// [`PeerHandle::fetch_all`] with headers per download (see [`PeerHandle::fetch_with`]).
    #[must_use]
    pub fn fetch_all_with(&self, items: Vec<(Request, Sink, Fetch)>) -> Vec<Result<Download, EnqueueError>> {
        let n = items.len();
        let mut outcomes = Vec::with_capacity(n);
        let items: Vec<_> = items
            .into_iter()
            .map(|(req, sink, fetch)| {
                let (done, done_rx) = mpsc::channel();
                let progress = Arc::new(Progress::default());
                outcomes.push((done_rx, Arc::clone(&progress)));
                let done: weir_http::Reply<Outcome> = Box::new(move |o| {
                    let _ = done.send(o);
                });
                Item { req, sink, fetch, done, progress }
            })
            .collect();
        let peer = self.inner.id;
        let ids = self.inner.shared.with(|hub, now| hub.fetch(peer, items, now));
        debug_assert_eq!(ids.len(), n);
        ids.into_iter()
            .zip(outcomes)
            .map(|(id, (rx, progress))| {
                id.map(|id| Download { id, rx, shared: Arc::clone(&self.inner.shared), progress, finished: false })
            })
            .collect()
    }

    /// Download into memory and wait for the outcome.
    ///
    /// # Errors
    /// Why the download did not complete.
    pub fn execute(&self, req: Request) -> Outcome {
        self.fetch(req, Sink::Memory).map_err(FetchError::Refused)?.wait()
    }

    /// Download all into memory, concurrently as the scheduler allows; the
    /// outcomes come back in input order.
    #[must_use]
    pub fn batch(&self, reqs: Vec<Request>) -> Vec<Outcome> {
        let downloads = self.fetch_all(reqs.into_iter().map(|r| (r, Sink::Memory)).collect());
        downloads.into_iter().map(|d| d.map_err(FetchError::Refused).and_then(Download::wait)).collect()
    }

    /// Open a cancellation group (an epoch) for this peer.
    #[must_use]
    pub fn new_group(&self) -> GroupId {
        let peer = self.inner.id;
        self.inner.shared.with(|hub, _| hub.new_group(peer))
    }

    /// Cancel a group: its requests end with [`CancelReason::EpochCancel`](weir::CancelReason::EpochCancel).
    pub fn cancel_group(&self, group: GroupId) {
        self.inner.shared.with(|hub, now| hub.command(Command::CancelGroup(group), now));
    }

    /// Change the peer's priority.
    pub fn set_priority(&self, p: RequestPriority) {
        let peer = self.inner.id;
        self.inner.shared.with(|hub, now| hub.command(Command::SetPeerPriority(peer, p), now));
    }

    /// This peer's events.
    #[must_use]
    pub fn subscribe(&self) -> Receiver<Event> {
        subscribe(&self.inner.shared, Some(self.inner.id))
    }

    /// Each live download of this peer with its progress (bytes in its
    /// sink, its size once a response told), in id order: the list a UI
    /// shows for one player or job, without a handle per download.
    #[must_use]
    pub fn downloads(&self) -> Vec<(RequestId, Snapshot)> {
        self.inner.shared.with(|hub, _| hub.progress_of(self.inner.id))
    }

    /// This peer's bandwidth in bits per second, learnt while its
    /// transfers run (windows of 16 KiB and 100 ms; see
    /// [`weir::Scheduler::peer_bandwidth`]): what an adaptive player picks
    /// its next bitrate by. `None` before the first window.
    #[must_use]
    pub fn bandwidth(&self) -> Option<u64> {
        self.inner.shared.with(|hub, _| hub.peer_bandwidth(self.inner.id))
    }
}

/// A scheduled download. Dropping it before it finished cancels it
/// ([`CancelReason::Explicit`](weir::CancelReason::Explicit)); [`Download::detach`] lets it run instead.
#[derive(Debug)]
pub struct Download {
    id: RequestId,
    rx: Receiver<Outcome>,
    shared: Arc<Shared>,
    progress: Arc<Progress>,
    finished: bool,
}

impl Download {
    /// Bytes in the sink now and the size it will have, when known: a
    /// cheap read at any moment (no call to the hub).
    #[must_use]
    pub fn progress(&self) -> Snapshot {
        self.progress.get()
    }

    /// The live counter behind [`Download::progress`], to read from another
    /// thread (a UI's ticker) for as long as it likes.
    #[must_use]
    pub fn progress_handle(&self) -> Arc<Progress> {
        Arc::clone(&self.progress)
    }

    /// The request's id, as events name it.
    #[must_use]
    pub fn id(&self) -> RequestId {
        self.id
    }

    /// Block until the download ends.
    ///
    /// # Errors
    /// Why it did not complete.
    pub fn wait(mut self) -> Outcome {
        self.finished = true;
        self.rx.recv().unwrap_or(Err(FetchError::Gone))
    }

    /// Block at most `d`; `None` when the download is still running.
    pub fn wait_timeout(&mut self, d: Duration) -> Option<Outcome> {
        if self.finished {
            return Some(Err(FetchError::Gone));
        }
        match self.rx.recv_timeout(d) {
            Ok(o) => {
                self.finished = true;
                Some(o)
            }
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => {
                self.finished = true;
                Some(Err(FetchError::Gone))
            }
        }
    }

    /// Cancel it ([`CancelReason::Explicit`](weir::CancelReason::Explicit)).
    pub fn cancel(&self) {
        let id = self.id;
        self.shared.with(|hub, now| hub.command(Command::Cancel(id), now));
    }

    /// Change its priority.
    pub fn set_priority(&self, p: RequestPriority) {
        let id = self.id;
        self.shared.with(|hub, now| hub.command(Command::SetPriority(id, p), now));
    }

    /// Let it run to its end without anyone waiting for it.
    pub fn detach(mut self) {
        self.finished = true;
    }
}

impl Drop for Download {
    fn drop(&mut self) {
        if !self.finished {
            self.cancel();
        }
    }
}
