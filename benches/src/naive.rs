//! The baseline of the steady-state cycle bench: the same contract as
//! `weir::Scheduler` for the inputs that cycle uses (enqueue, bytes,
//! complete, set_priority, cancel, starts in slot order with round-robin
//! over peers and FIFO per peer, soft and idle deadlines), written the
//! naive way: one `Vec` scanned for everything. It emits the same outputs
//! and events (same types), so the two cost the same to drain.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use weir::{CancelReason, DownloaderEvent, FetchCmd, Output, PeerId, Request, RequestId, RequestPriority, Url};

struct Entry {
    id: RequestId,
    peer: usize,
    url: Url,
    priority: RequestPriority,
    order: u64,
    enqueued_at: Instant,
    /// Soft and idle deadlines while running.
    running: Option<(Instant, Instant, Instant)>,
    bytes: u64,
}

/// A scheduler that keeps every live request in one `Vec`.
pub struct Naive {
    peers: Vec<(PeerId, RequestPriority)>,
    entries: Vec<Entry>,
    out: VecDeque<Output>,
    max_concurrent: usize,
    soft: Duration,
    idle: Duration,
    next: u64,
    cursor: [usize; 4],
    now: Instant,
}

impl Naive {
    /// `peers`: the ids to publish on and their priorities.
    pub fn new(peers: Vec<(PeerId, RequestPriority)>, max_concurrent: usize, soft: Duration, idle: Duration) -> Self {
        let now = Instant::now();
        Self {
            peers,
            entries: Vec::new(),
            out: VecDeque::new(),
            max_concurrent,
            soft,
            idle,
            next: 1,
            cursor: [0; 4],
            now,
        }
    }

    /// Accept a request of peer number `peer`.
    pub fn enqueue(&mut self, peer: usize, req: Request, now: Instant) -> RequestId {
        self.now = now;
        let id = RequestId::new(std::num::NonZeroU64::new(self.next).expect("non-zero"));
        self.next += 1;
        let url = req.url().clone();
        let priority = req.priority_value();
        let ev = DownloaderEvent::RequestEnqueued { request_id: id, url: url.clone(), method: req.method(), priority };
        self.out.push_back(Output::Event(self.peers[peer].0, ev));
        self.entries.push(Entry {
            id,
            peer,
            url,
            priority,
            order: id.get(),
            enqueued_at: now,
            running: None,
            bytes: 0,
        });
        id
    }

    fn find(&self, id: RequestId) -> Option<usize> {
        self.entries.iter().position(|e| e.id == id)
    }

    /// Bytes of a running request.
    pub fn on_bytes(&mut self, id: RequestId, n: u64, now: Instant) {
        let idle = self.idle;
        let Some(i) = self.find(id) else { return };
        let e = &mut self.entries[i];
        if let Some((_, soft, _)) = e.running {
            e.running = Some((e.running.unwrap().0, soft, now + idle));
            let first = e.bytes == 0;
            e.bytes += n;
            if first {
                let latency = now - e.running.unwrap().0;
                self.out.push_back(Output::Event(
                    self.peers[e.peer].0,
                    DownloaderEvent::FirstByte { request_id: id, latency },
                ));
            }
        }
    }

    /// A running request completed.
    pub fn on_complete(&mut self, id: RequestId, now: Instant) {
        let Some(i) = self.find(id) else { return };
        let e = self.entries.remove(i);
        let Some((start, _, _)) = e.running else { return };
        let ev = DownloaderEvent::RequestCompleted {
            request_id: id,
            bytes_transferred: e.bytes,
            duration: now - start,
            bandwidth_bps: 0,
        };
        self.out.push_back(Output::Event(self.peers[e.peer].0, ev));
    }

    /// Change a waiting request's priority.
    pub fn set_priority(&mut self, id: RequestId, p: RequestPriority) {
        let Some(i) = self.find(id) else { return };
        let e = &mut self.entries[i];
        if e.priority != p {
            let ev = DownloaderEvent::PriorityChanged { request_id: id, from: e.priority, to: p };
            e.priority = p;
            self.out.push_back(Output::Event(self.peers[e.peer].0, ev));
        }
    }

    /// Cancel a waiting request.
    pub fn cancel(&mut self, id: RequestId) {
        let Some(i) = self.find(id) else { return };
        let e = self.entries.remove(i);
        let ev =
            DownloaderEvent::RequestCancelled { request_id: id, reason: CancelReason::Explicit, bytes_transferred: 0 };
        self.out.push_back(Output::Event(self.peers[e.peer].0, ev));
    }

    /// The earliest deadline of a running request.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.entries.iter().filter_map(|e| e.running.map(|(_, s, i)| s.min(i))).min()
    }

    /// The next output; fills free slots first when none is pending.
    pub fn poll_output(&mut self) -> Option<Output> {
        if self.out.is_empty() {
            while self.entries.iter().filter(|e| e.running.is_some()).count() < self.max_concurrent {
                let Some(i) = self.pick() else { break };
                self.start(i);
            }
        }
        self.out.pop_front()
    }

    fn class(&self, e: &Entry) -> usize {
        self.peers[e.peer].1 as usize * 2 + e.priority as usize
    }

    /// Best slot first, then the peer nearest after the slot's cursor, then FIFO.
    fn pick(&mut self) -> Option<usize> {
        let n = self.peers.len();
        let best = (0..self.entries.len()).filter(|&i| self.entries[i].running.is_none()).min_by_key(|&i| {
            let e = &self.entries[i];
            let c = self.class(e);
            (c, (e.peer + n - self.cursor[c]) % n, e.order)
        })?;
        let c = self.class(&self.entries[best]);
        self.cursor[c] = (self.entries[best].peer + 1) % n;
        Some(best)
    }

    fn start(&mut self, i: usize) {
        let now = self.now;
        let e = &mut self.entries[i];
        e.running = Some((now, now + self.soft, now + self.idle));
        let cmd = FetchCmd {
            id: e.id,
            peer: self.peers[e.peer].0,
            url: e.url.clone(),
            method: weir::RequestMethod::Get,
            range: None,
            attempt: 1,
        };
        let ev = DownloaderEvent::RequestStarted { request_id: e.id, wait_in_queue: now - e.enqueued_at, attempt: 1 };
        let peer = self.peers[e.peer].0;
        self.out.push_back(Output::Start(cmd));
        self.out.push_back(Output::Event(peer, ev));
    }
}
