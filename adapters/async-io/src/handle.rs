//! The handles: a peer's and a download's (a future of its outcome). Each
//! is a sender of commands to the driver; replies come back on channels of
//! their own.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use async_channel::{Receiver, Sender};
use futures_lite::StreamExt;
use weir::{EnqueueError, GroupId, PeerId, Request, RequestId, RequestPriority};
use weir_http::{Command, Event, Fetch, FetchError, Input, Item, Outcome, Progress, Sink, Snapshot};

/// A reply that goes back over a channel (a handle awaiting it).
pub(crate) fn reply<T: Send + 'static>(tx: Sender<T>) -> weir_http::Reply<T> {
    Box::new(move |v| {
        let _ = tx.try_send(v);
    })
}

/// Send the command `ask` makes around a reply, and await the answer;
/// `None` once the driver is gone.
pub(crate) async fn ask<T: Send + 'static>(
    tx: &Sender<Input>,
    ask: impl FnOnce(weir_http::Reply<T>) -> Command,
) -> Option<T> {
    let (answer, rx) = async_channel::bounded(1);
    tx.send(Input::Command(ask(reply(answer)))).await.ok()?;
    rx.recv().await.ok()
}

/// A stream of events of one peer (`Some`) or all (`None`).
pub(crate) fn subscribe(tx: &Sender<Input>, peer: Option<PeerId>) -> Receiver<Event> {
    let (events, rx) = async_channel::unbounded();
    let sub: weir_http::Subscriber = Box::new(move |e| events.try_send(e.clone()).is_ok());
    let _ = tx.try_send(Input::Command(Command::Subscribe(peer, sub)));
    rx
}

struct PeerInner {
    id: PeerId,
    tx: Sender<Input>,
}

impl Drop for PeerInner {
    fn drop(&mut self) {
        let _ = self.tx.try_send(Input::Command(Command::RemovePeer(self.id)));
    }
}

/// A peer: a scope with its own priority, groups and events.
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
    pub(crate) fn new(id: PeerId, tx: Sender<Input>) -> Self {
        Self { inner: Arc::new(PeerInner { id, tx }) }
    }

    /// The peer's id, as events name it.
    #[must_use]
    pub fn id(&self) -> PeerId {
        self.inner.id
    }

    /// Schedule a download into `sink`.
    ///
    /// # Errors
    /// The scheduler's [`EnqueueError`].
    pub async fn fetch(&self, req: Request, sink: Sink) -> Result<Download, EnqueueError> {
        self.fetch_all(vec![(req, sink)]).await.pop().unwrap_or(Err(EnqueueError::ShutDown))
    }

    /// Schedule many downloads together (one round trip); results in input order.
    pub async fn fetch_all(&self, items: Vec<(Request, Sink)>) -> Vec<Result<Download, EnqueueError>> {
        self.fetch_all_with(items.into_iter().map(|(r, s)| (r, s, Fetch::new())).collect()).await
    }

    /// Schedule a download into `sink` with its HTTP side: headers to
    /// send too (auth tokens, cookies, `Accept`, ...; a [`weir_http::Headers`] alone
    /// will do) and the size and SHA-256 its bytes must have. Credentials
    /// (`Authorization`, `Cookie`, `Proxy-Authorization`) are not sent to
    /// another origin after a redirect; a size or digest mismatch fails the
    /// download with [`weir::NetError::Integrity`] instead of completing it.
    ///
    /// # Errors
    /// The scheduler's [`EnqueueError`].
    pub async fn fetch_with(
        &self,
        req: Request,
        sink: Sink,
        fetch: impl Into<Fetch>,
    ) -> Result<Download, EnqueueError> {
        self.fetch_all_with(vec![(req, sink, fetch.into())]).await.pop().unwrap_or(Err(EnqueueError::ShutDown))
    }

    /// [`PeerHandle::fetch_all`] with headers per download (see [`PeerHandle::fetch_with`]).
    pub async fn fetch_all_with(&self, items: Vec<(Request, Sink, Fetch)>) -> Vec<Result<Download, EnqueueError>> {
        let n = items.len();
        let mut outcomes = Vec::with_capacity(n);
        let items: Vec<_> = items
            .into_iter()
            .map(|(req, sink, fetch)| {
                let (done, rx) = async_channel::bounded(1);
                let progress = Arc::new(Progress::default());
                outcomes.push((rx, Arc::clone(&progress)));
                Item { req, sink, fetch, done: reply(done), progress }
            })
            .collect();
        let peer = self.inner.id;
        let ids = ask(&self.inner.tx, |reply| Command::Fetch { peer, items, reply })
            .await
            .unwrap_or_else(|| vec![Err(EnqueueError::ShutDown); n]);
        ids.into_iter()
            .zip(outcomes)
            .map(|(id, (rx, progress))| {
                id.map(|id| Download { id, rx: Box::pin(rx), tx: self.inner.tx.clone(), progress, finished: false })
            })
            .collect()
    }

    /// Download into memory and wait.
    ///
    /// # Errors
    /// Why it did not complete.
    pub async fn execute(&self, req: Request) -> Outcome {
        self.fetch(req, Sink::Memory).await.map_err(FetchError::Refused)?.await
    }

    /// Download all into memory; outcomes in input order.
    pub async fn batch(&self, reqs: Vec<Request>) -> Vec<Outcome> {
        let downloads = self.fetch_all(reqs.into_iter().map(|r| (r, Sink::Memory)).collect()).await;
        let mut out = Vec::with_capacity(downloads.len());
        for d in downloads {
            out.push(match d {
                Ok(d) => d.await,
                Err(e) => Err(FetchError::Refused(e)),
            });
        }
        out
    }

    /// Open a cancellation group (an epoch).
    ///
    /// # Panics
    /// When the driver is gone.
    pub async fn new_group(&self) -> GroupId {
        ask(&self.inner.tx, |r| Command::NewGroup(self.inner.id, r)).await.expect("the driver is running")
    }

    /// Cancel a group ([`CancelReason::EpochCancel`](weir::CancelReason::EpochCancel)).
    pub fn cancel_group(&self, g: GroupId) {
        let _ = self.inner.tx.try_send(Input::Command(Command::CancelGroup(g)));
    }

    /// Change the peer's priority.
    pub fn set_priority(&self, p: RequestPriority) {
        let _ = self.inner.tx.try_send(Input::Command(Command::SetPeerPriority(self.inner.id, p)));
    }

    /// This peer's events, as a `Stream`.
    #[must_use]
    pub fn subscribe(&self) -> Receiver<Event> {
        subscribe(&self.inner.tx, Some(self.inner.id))
    }

    /// Each live download of this peer with its progress (bytes in its
    /// sink, its size once a response told), in id order: the list a UI
    /// shows for one player or job, without a handle per download. Empty
    /// once the downloader is gone.
    pub async fn downloads(&self) -> Vec<(RequestId, Snapshot)> {
        ask(&self.inner.tx, |r| Command::Progress(self.inner.id, r)).await.unwrap_or_default()
    }

    /// This peer's bandwidth in bits per second, learnt while its
    /// transfers run (windows of 16 KiB and 100 ms; see
    /// [`weir::Scheduler::peer_bandwidth`]): what an adaptive player picks
    /// its next bitrate by. `None` before the first window, or once the
    /// downloader is gone.
    pub async fn bandwidth(&self) -> Option<u64> {
        ask(&self.inner.tx, |r| Command::Bandwidth(self.inner.id, r)).await.flatten()
    }
}

/// A scheduled download: a future of its [`Outcome`]. Dropping it before it
/// finished cancels the request ([`CancelReason::Explicit`](weir::CancelReason::Explicit)): cancel-safe.
#[derive(Debug)]
pub struct Download {
    id: RequestId,
    rx: Pin<Box<Receiver<Outcome>>>,
    tx: Sender<Input>,
    progress: Arc<Progress>,
    finished: bool,
}

impl Download {
    /// Bytes in the sink now and the size it will have, when known: a
    /// cheap read at any moment (no message to the driver).
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

    /// The request's id.
    #[must_use]
    pub fn id(&self) -> RequestId {
        self.id
    }

    /// Cancel it.
    pub fn cancel(&self) {
        let _ = self.tx.try_send(Input::Command(Command::Cancel(self.id)));
    }

    /// Change its priority.
    pub fn set_priority(&self, p: RequestPriority) {
        let _ = self.tx.try_send(Input::Command(Command::SetPriority(self.id, p)));
    }

    /// Let it run without anyone awaiting it.
    pub fn detach(mut self) {
        self.finished = true;
    }
}

impl Future for Download {
    type Output = Outcome;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Outcome> {
        match self.rx.as_mut().poll_next(cx) {
            Poll::Ready(o) => {
                self.finished = true;
                Poll::Ready(o.unwrap_or(Err(FetchError::Gone)))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl Drop for Download {
    fn drop(&mut self) {
        if !self.finished {
            self.cancel();
        }
    }
}
