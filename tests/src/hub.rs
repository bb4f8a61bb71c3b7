//! A scenario harness for [`weir_http::Hub`]: the hub on a fake clock, with
//! transfers run by hand against an in-memory server that honours `Range`
//! and `If-Range`. No sockets, no threads; every step is an explicit call.
//!
//! Resources are named by their size: `http://h1.test/300` is 300 bytes,
//! byte `o` being [`byte_at`]`(300, o)`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use weir::{Config, EnqueueError, PeerId, Request, RequestId, RequestPriority, Scheduler};
use weir_http::attempt::{Ask, End};
use weir_http::{
    Action, Command, Event, Fetch, Hub, HubOptions, Item, Outcome, Progress, Report, Settlement, Sink, Transfer,
};

/// Byte `offset` of the resource of `size` bytes.
#[must_use]
pub fn byte_at(size: u64, offset: u64) -> u8 {
    (offset.wrapping_mul(7).wrapping_add(size) % 251) as u8
}

/// The whole resource of `size` bytes.
#[must_use]
pub fn resource(size: u64) -> Vec<u8> {
    (0..size).map(|o| byte_at(size, o)).collect()
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The answer of the in-memory server to `ask`: status, headers, body.
#[must_use]
pub fn answer(ask: &Ask) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let size: u64 = ask.url.path().trim_start_matches('/').parse().unwrap_or(0);
    let etag = format!("\"v{size}\"");
    let range = ask.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case("range")).map(|(_, v)| v.as_str());
    let if_range = ask.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case("if-range")).map(|(_, v)| v.as_str());
    let honoured = range.filter(|_| if_range.is_none_or(|v| v == etag));
    let span = honoured.and_then(|r| {
        let (a, b) = r.strip_prefix("bytes=")?.split_once('-')?;
        let start: u64 = a.parse().ok()?;
        let end = if b.is_empty() { size.checked_sub(1)? } else { b.parse::<u64>().ok()?.min(size.checked_sub(1)?) };
        (start <= end).then_some((start, end))
    });
    match span {
        Some((start, end)) => {
            let body: Vec<u8> = (start..=end).map(|o| byte_at(size, o)).collect();
            let headers = vec![
                ("Content-Range".to_owned(), format!("bytes {start}-{end}/{size}")),
                ("Content-Length".to_owned(), body.len().to_string()),
                ("ETag".to_owned(), etag),
            ];
            (206, headers, body)
        }
        None => {
            let headers = vec![("Content-Length".to_owned(), size.to_string()), ("ETag".to_owned(), etag)];
            (200, headers, resource(size))
        }
    }
}

/// A transfer the scene runs by hand.
#[derive(Debug)]
pub struct Worker {
    /// The transfer (taken when it ends).
    pub t: Transfer,
    /// The answer's body and how far it was read; `None` before the exchange began.
    body: Option<(Vec<u8>, usize)>,
}

/// What a step of a worker did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stepped {
    /// Still running.
    Running,
    /// It ended and reported `Done`.
    Ended,
}

/// The hub, a fake clock and the transfers it handed out.
pub struct Scene {
    /// The hub under test.
    pub hub: Hub,
    /// The fake clock.
    pub now: Instant,
    /// Every event published to a root subscriber, in order.
    pub log: Arc<Mutex<Vec<Event>>>,
    /// Outcomes by download index (the order of [`Scene::fetch`]); more than
    /// one would be a bug.
    pub settled: Arc<Mutex<BTreeMap<usize, Vec<Outcome>>>>,
    /// The id of each download index, or why it was refused.
    pub ids: Vec<Result<RequestId, EnqueueError>>,
    /// Transfers handed out and not yet ended, in spawn order.
    pub workers: Vec<Worker>,
    /// Transfers handed out per request.
    pub spawned: BTreeMap<RequestId, u32>,
    /// Settlements that put a completed file in place, held as an adapter
    /// hands them to its sync thread; [`Scene::sync`] runs them.
    pub syncing: Vec<Settlement>,
}

impl Scene {
    /// A hub over a scheduler with `cfg`, with a root subscriber logging events.
    #[must_use]
    pub fn new(cfg: Config) -> Self {
        Self::with_options(cfg, HubOptions::default())
    }

    /// [`Scene::new`] with the hub's options.
    #[must_use]
    pub fn with_options(cfg: Config, options: HubOptions) -> Self {
        let mut hub = Hub::new(Scheduler::new(cfg), options);
        let log = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&log);
        let sub: weir_http::Subscriber = Box::new(move |e| {
            lock(&sink).push(e.clone());
            true
        });
        let now = Instant::now();
        hub.command(Command::Subscribe(None, sub), now);
        Self {
            hub,
            now,
            log,
            settled: Arc::default(),
            ids: Vec::new(),
            workers: Vec::new(),
            spawned: BTreeMap::new(),
            syncing: Vec::new(),
        }
    }

    /// Take every transfer the hub has ready; run every settlement.
    pub fn poll(&mut self) -> usize {
        let mut n = 0;
        while let Some(action) = self.hub.poll() {
            match action {
                Action::Spawn(t) => {
                    *self.spawned.entry(t.id()).or_default() += 1;
                    self.workers.push(Worker { t: *t, body: None });
                    n += 1;
                }
                Action::Settle(x) if x.places_file() => self.syncing.push(*x),
                Action::Settle(x) => x.run(),
            }
        }
        n
    }

    /// Put the held files on disk together, as an adapter's sync thread
    /// does, then settle them; returns how many still needed their own
    /// `fsync` when they settled.
    pub fn sync(&mut self) -> usize {
        let mut batch = std::mem::take(&mut self.syncing);
        weir_http::sync_together(&mut batch);
        let alone = batch.iter().filter(|x| x.needs_sync()).count();
        batch.into_iter().for_each(Settlement::run);
        alone
    }

    /// Feed a command at the current time, then poll.
    pub fn command(&mut self, c: Command) {
        self.hub.command(c, self.now);
        self.poll();
    }

    /// A new peer.
    pub fn peer(&mut self, p: RequestPriority) -> PeerId {
        let got = Arc::new(Mutex::new(None));
        let slot = Arc::clone(&got);
        self.command(Command::AddPeer(p, Box::new(move |id| *lock(&slot) = Some(id))));
        let id = lock(&got).take();
        id.expect("the hub answers at once")
    }

    /// Fetch `req` into `sink`; returns the download's index.
    pub fn fetch(&mut self, peer: PeerId, req: Request, sink: Sink) -> usize {
        self.fetch_with(peer, req, sink, Fetch::new())
    }

    /// Fetch `req` into `sink` expecting what `fetch` says; returns the download's index.
    pub fn fetch_with(&mut self, peer: PeerId, req: Request, sink: Sink, fetch: Fetch) -> usize {
        let k = self.ids.len();
        let settled = Arc::clone(&self.settled);
        let done: weir_http::Reply<Outcome> = Box::new(move |o| lock(&settled).entry(k).or_default().push(o));
        let item = Item { req, sink, fetch, progress: Arc::new(Progress::default()), done };
        let got = Arc::new(Mutex::new(Vec::new()));
        let slot = Arc::clone(&got);
        let reply: weir_http::Reply<Vec<Result<RequestId, EnqueueError>>> = Box::new(move |ids| *lock(&slot) = ids);
        self.command(Command::Fetch { peer, items: vec![item], reply });
        let id = lock(&got).pop().unwrap_or(Err(EnqueueError::ShutDown));
        self.ids.push(id);
        k
    }

    /// The id of download `k`.
    #[must_use]
    pub fn id(&self, k: usize) -> RequestId {
        self.ids[k].clone().expect("accepted")
    }

    /// Advance the fake clock, fire deadlines, poll.
    pub fn advance(&mut self, d: Duration) {
        self.now += d;
        self.hub.handle_timeout(self.now);
        self.poll();
    }

    fn report(&mut self, r: Report) {
        self.hub.report(r, self.now);
        self.poll();
    }

    /// The worker running `id`'s transfer now, if any.
    #[must_use]
    pub fn worker_of(&self, id: RequestId) -> Option<usize> {
        self.workers.iter().position(|w| w.t.id() == id)
    }

    /// Run worker `i` for up to `n` body bytes (a stopped worker ends
    /// instead, as a real one notices its stop at its next read).
    pub fn step(&mut self, i: usize, n: usize) -> Stepped {
        let w = &mut self.workers[i];
        if w.t.stop().is_stopped() {
            return self.end(i, Ok(None));
        }
        let Some((body, pos)) = &mut w.body else {
            return match w.t.begin() {
                Err(e) => self.end(i, Err(e)),
                Ok(None) => self.end(i, Ok(None)),
                Ok(Some(ask)) => {
                    let (status, headers, body) = answer(&ask);
                    match w.t.on_head(status, headers) {
                        Err(e) => self.end(i, Err(e)),
                        Ok(Some(url)) => self.end(i, Ok(Some(url))),
                        Ok(None) => {
                            w.body = Some((body, 0));
                            Stepped::Running
                        }
                    }
                }
            };
        };
        if !w.t.wants_more() || *pos >= body.len() {
            let result = w.t.end(End::Clean).map(|()| None);
            return self.end(i, result);
        }
        let upto = (*pos + n.max(1)).min(body.len());
        let chunk = body[*pos..upto].to_vec();
        *pos = upto;
        let written = w.t.body(&chunk).and_then(|(part, alive)| Ok((alive, w.t.write(part)?)));
        match written {
            Err(e) => self.end(i, Err(e)),
            Ok((alive, due)) => {
                for r in [alive, due].into_iter().flatten() {
                    self.report(r);
                }
                Stepped::Running
            }
        }
    }

    /// End worker `i` with `result` (its sink goes back to the hub).
    pub fn end(&mut self, i: usize, result: Result<Option<url::Url>, weir::NetError>) -> Stepped {
        let w = self.workers.remove(i);
        self.report(w.t.done(result));
        Stepped::Ended
    }

    /// Run worker `i` to its end (bounded).
    pub fn finish(&mut self, i: usize) {
        for _ in 0..100_000 {
            if self.step(i, 4096) == Stepped::Ended {
                return;
            }
        }
        panic!("worker {i} never ended");
    }

    /// Run every worker to its end, the new ones too, until none is left
    /// (bounded).
    pub fn finish_all(&mut self) {
        for _ in 0..10_000 {
            if self.workers.is_empty() {
                return;
            }
            self.finish(0);
        }
        panic!("transfers kept coming");
    }

    /// Every event of request `id`, in order.
    #[must_use]
    pub fn events_for(&self, id: RequestId) -> Vec<weir::DownloaderEvent> {
        lock(&self.log).iter().filter(|(_, e)| e.request_id() == id).map(|(_, e)| e.clone()).collect()
    }

    /// The outcomes download `k` settled with (one, once it settled).
    #[must_use]
    pub fn outcomes(&self, k: usize) -> Vec<Outcome> {
        lock(&self.settled).get(&k).cloned().unwrap_or_default()
    }
}
