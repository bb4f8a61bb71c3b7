//! The core's cost per operation with 10², 10⁴ and 10⁶ requests queued
//! across 8 peers and 16 hosts, next to the `priority-queue` crate doing the
//! comparable subset (push, pop best, change priority, remove) at the same
//! sizes in the same run.
//!
//! `cargo bench -p weir-benches --bench core`; `-- --test` runs each once.
#![allow(missing_docs, clippy::disallowed_methods)]

use std::cmp::Reverse;
use std::collections::VecDeque;
use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use priority_queue::PriorityQueue;
use weir::{Config, Output, PeerId, Request, RequestId, RequestPriority, Scheduler, Url};

const SIZES: [usize; 3] = [100, 10_000, 1_000_000];

/// A tiny deterministic PRNG for picking requests.
struct Rng(u64);
impl Rng {
    fn next(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

struct World {
    s: Scheduler,
    peers: Vec<PeerId>,
    urls: Vec<Url>,
    queued: Vec<RequestId>,
    running: VecDeque<RequestId>,
    now: Instant,
    rng: Rng,
}

fn prio(i: usize) -> RequestPriority {
    if i.is_multiple_of(4) {
        RequestPriority::High
    } else {
        RequestPriority::Low
    }
}

impl World {
    fn new(n: usize, cfg: Config) -> Self {
        let mut s = Scheduler::new(cfg);
        let peers: Vec<_> = (0..8).map(|i| s.add_peer(prio(i * 2))).collect();
        let urls: Vec<_> = (0..16)
            .map(|h| Url::parse(&format!("https://cdn{h}.example.org/media/track/segment-000000.ts")).unwrap())
            .collect();
        let mut w =
            World { s, peers, urls, queued: Vec::new(), running: VecDeque::new(), now: Instant::now(), rng: Rng(7) };
        for i in 0..n {
            let id = w.enqueue(i);
            w.queued.push(id);
        }
        w.drain();
        w
    }

    fn enqueue(&mut self, i: usize) -> RequestId {
        let req = Request::get(self.urls[i % 16].clone()).priority(prio(i / 3));
        self.s.enqueue(self.peers[i % 8], req, self.now).unwrap()
    }

    fn drain(&mut self) {
        while let Some(o) = self.s.poll_output() {
            if let Output::Start(c) = o {
                self.running.push_back(c.id);
            }
        }
    }
}

fn quiet(max_concurrent: usize) -> Config {
    Config { max_concurrent, soft_timeout: None, idle_timeout: None, ..Config::default() }
}

/// Whether this run includes the group family `name`: all unless
/// `WEIR_BENCH_GROUPS` lists others (comma-separated: `ops`, `priority_queue`,
/// `cycle`). Criterion's filter skips a bench's measurement, not the set-up
/// around it; this skips the set-up too, so a profile shows one bench only.
fn wanted(name: &str) -> bool {
    std::env::var("WEIR_BENCH_GROUPS").map_or(true, |v| v.split(',').any(|g| g.trim() == name))
}

fn bench_weir(c: &mut Criterion) {
    if !wanted("ops") {
        return;
    }
    let mut g = c.benchmark_group("weir");
    g.sample_size(20).warm_up_time(Duration::from_millis(300)).measurement_time(Duration::from_secs(2));
    for n in SIZES {
        let mut w = World::new(n, quiet(8));
        g.bench_function(BenchmarkId::new("enqueue", n), |b| {
            b.iter_custom(|iters| {
                let t = Instant::now();
                let ids: Vec<_> = (0..iters as usize).map(|i| w.enqueue(i)).collect();
                let el = t.elapsed();
                for id in ids {
                    w.s.cancel(id, w.now);
                }
                w.drain();
                el
            });
        });
        g.bench_function(BenchmarkId::new("cancel_queued", n), |b| {
            b.iter_custom(|iters| {
                let ids: Vec<_> = (0..iters as usize).map(|i| w.enqueue(i)).collect();
                w.drain();
                let t = Instant::now();
                for id in ids {
                    w.s.cancel(id, w.now);
                }
                let el = t.elapsed();
                w.drain();
                el
            });
        });
        g.bench_function(BenchmarkId::new("set_priority_queued", n), |b| {
            // Every call really moves a request to the other slot.
            let mut high: Vec<bool> = (0..w.queued.len()).map(|i| prio(i / 3) == RequestPriority::High).collect();
            b.iter_custom(|iters| {
                let picks: Vec<_> = (0..iters).map(|_| w.rng.next(w.queued.len())).collect();
                let t = Instant::now();
                for i in picks {
                    high[i] = !high[i];
                    let p = if high[i] { RequestPriority::High } else { RequestPriority::Low };
                    w.s.set_priority(w.queued[i], p, w.now);
                }
                let el = t.elapsed();
                w.drain();
                el
            });
        });
        g.bench_function(BenchmarkId::new("start_complete_cycle", n), |b| {
            // enqueue → Start → bytes → complete → terminal event drained, queue size steady.
            let mut i = 0;
            b.iter(|| {
                let id = w.running.pop_front().expect("a running request");
                w.s.on_bytes(id, 64 * 1024, w.now);
                w.s.on_complete(id, w.now);
                i += 1;
                w.enqueue(i);
                w.drain();
            });
        });
        drop(w);

        let aged = Config { promote_after: Some(Duration::from_secs(3600)), ..quiet(8) };
        let w = World::new(n, aged);
        g.bench_function(BenchmarkId::new("poll_timeout", n), |b| b.iter(|| black_box(w.s.poll_timeout())));
    }
    g.finish();

    // handle_timeout with 10⁵ armed deadlines, each call firing one.
    let mut g = c.benchmark_group("weir_timers");
    g.sample_size(20).warm_up_time(Duration::from_millis(300)).measurement_time(Duration::from_secs(2));
    g.bench_function("handle_timeout_fire_one_of_100000", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            let mut left = iters;
            while left > 0 {
                let k = left.min(100_000);
                let cfg = Config { promote_after: Some(Duration::from_secs(1)), ..quiet(1) };
                let mut w = World::new(0, cfg);
                let t0 = w.now;
                w.enqueue(0);
                w.drain(); // one running blocker; the rest wait and age
                for i in 0..100_000u64 {
                    w.now = t0 + Duration::from_nanos(i);
                    w.enqueue(i as usize + 1);
                }
                w.drain();
                let t = Instant::now();
                for i in 0..k {
                    w.s.handle_timeout(t0 + Duration::from_secs(1) + Duration::from_nanos(i));
                    while let Some(o) = w.s.poll_output() {
                        black_box(o);
                    }
                }
                total += t.elapsed();
                left -= k;
            }
            total
        });
    });
    g.bench_function("handle_timeout_nothing_due_of_100000", |b| {
        let cfg = Config { promote_after: Some(Duration::from_secs(3600)), ..quiet(1) };
        let mut w = World::new(100_000, cfg);
        let now = w.now;
        b.iter(|| {
            w.s.handle_timeout(now);
            black_box(w.s.poll_output())
        });
    });
    g.finish();
}

/// The baseline: a `PriorityQueue` keyed by request, ordered by
/// (slot, enqueue order) like the scheduler's queues.
fn bench_priority_queue(c: &mut Criterion) {
    type Pq = PriorityQueue<u64, (Reverse<u8>, Reverse<u64>)>;
    if !wanted("priority_queue") {
        return;
    }
    let mut g = c.benchmark_group("priority_queue");
    g.sample_size(20).warm_up_time(Duration::from_millis(300)).measurement_time(Duration::from_secs(2));
    let slot = |i: u64| Reverse((i % 4) as u8);
    for n in SIZES {
        let mut pq: Pq = PriorityQueue::with_capacity(n);
        for i in 0..n as u64 {
            pq.push(i, (slot(i), Reverse(i)));
        }
        let mut next = n as u64;
        let mut rng = Rng(7);
        g.bench_function(BenchmarkId::new("push", n), |b| {
            b.iter_custom(|iters| {
                let t = Instant::now();
                for k in 0..iters {
                    pq.push(next + k, (slot(k), Reverse(next + k)));
                }
                let el = t.elapsed();
                for k in 0..iters {
                    pq.remove(&(next + k));
                }
                next += iters;
                el
            });
        });
        g.bench_function(BenchmarkId::new("remove", n), |b| {
            b.iter_custom(|iters| {
                for k in 0..iters {
                    pq.push(next + k, (slot(k), Reverse(next + k)));
                }
                let t = Instant::now();
                for k in 0..iters {
                    pq.remove(&(next + k));
                }
                let el = t.elapsed();
                next += iters;
                el
            });
        });
        g.bench_function(BenchmarkId::new("change_priority", n), |b| {
            b.iter(|| {
                let k = rng.next(n) as u64;
                let s = (rng.next(4)) as u8;
                pq.change_priority(&k, (Reverse(s), Reverse(k)));
            });
        });
        g.bench_function(BenchmarkId::new("pop_push_cycle", n), |b| {
            b.iter(|| {
                let (k, _) = pq.pop().expect("non-empty");
                black_box(k);
                next += 1;
                pq.push(next, (slot(next), Reverse(next)));
            });
        });
        g.bench_function(BenchmarkId::new("peek", n), |b| b.iter(|| black_box(pq.peek())));
    }
    g.finish();
}

/// The steady-state cycle (issue #15's probe): 8 peers (half High), 64
/// hosts, ~68-character URLs, a fifth of the requests High,
/// `max_concurrent` 8, soft and idle timeouts on. One cycle = `on_bytes` +
/// `on_complete` of the oldest running request + `enqueue` of a new one +
/// draining the outputs (which starts one). Separately, `set_priority` +
/// `cancel` of queued requests picked at random (so from the middle). The
/// baseline is [`weir_benches::naive::Naive`], the same contract on one
/// scanned `Vec`, in the same run. The caller's URLs are parsed once up
/// front; each enqueue clones one, in both.
mod cycle {
    use super::*;
    use weir_benches::naive::Naive;

    pub const DEPTHS: [usize; 2] = [1_000, 1_000_000];

    pub fn urls() -> Vec<Url> {
        (0..4096)
            .map(|i| {
                let s =
                    format!("https://cdn{}.media.example.com/segments/track-{:04}/seg-{:08}.m4s", i % 64, i % 997, i);
                Url::parse(&s).expect("url")
            })
            .collect()
    }

    pub fn prio(i: usize) -> RequestPriority {
        if i.is_multiple_of(5) {
            RequestPriority::High
        } else {
            RequestPriority::Low
        }
    }

    pub fn config() -> Config {
        Config {
            max_concurrent: 8,
            soft_timeout: Some(Duration::from_secs(10)),
            idle_timeout: Some(Duration::from_secs(30)),
            ..Config::default()
        }
    }

    /// The scheduler under test, or the naive one, behind the same calls.
    pub trait Sched {
        fn enqueue(&mut self, i: usize, url: Url, now: Instant) -> RequestId;
        fn bytes_then_complete(&mut self, id: RequestId, now: Instant);
        fn set_priority(&mut self, id: RequestId, p: RequestPriority, now: Instant);
        fn cancel(&mut self, id: RequestId, now: Instant);
        /// Drain the outputs; returns the started ids.
        fn drain(&mut self, started: &mut VecDeque<RequestId>);
    }

    pub struct Weir(pub Scheduler, pub Vec<PeerId>);
    impl Sched for Weir {
        fn enqueue(&mut self, i: usize, url: Url, now: Instant) -> RequestId {
            self.0.enqueue(self.1[i % 8], Request::get(url).priority(prio(i)), now).expect("accepted")
        }
        fn bytes_then_complete(&mut self, id: RequestId, now: Instant) {
            self.0.on_bytes(id, 64 * 1024, now);
            self.0.on_complete(id, now);
        }
        fn set_priority(&mut self, id: RequestId, p: RequestPriority, now: Instant) {
            self.0.set_priority(id, p, now);
        }
        fn cancel(&mut self, id: RequestId, now: Instant) {
            self.0.cancel(id, now);
        }
        fn drain(&mut self, started: &mut VecDeque<RequestId>) {
            while let Some(o) = self.0.poll_output() {
                if let Output::Start(c) = o {
                    started.push_back(c.id);
                }
            }
        }
    }

    impl Sched for Naive {
        fn enqueue(&mut self, i: usize, url: Url, now: Instant) -> RequestId {
            Naive::enqueue(self, i % 8, Request::get(url).priority(prio(i)), now)
        }
        fn bytes_then_complete(&mut self, id: RequestId, now: Instant) {
            self.on_bytes(id, 64 * 1024, now);
            self.on_complete(id, now);
        }
        fn set_priority(&mut self, id: RequestId, p: RequestPriority, _now: Instant) {
            Naive::set_priority(self, id, p);
        }
        fn cancel(&mut self, id: RequestId, _now: Instant) {
            Naive::cancel(self, id);
        }
        fn drain(&mut self, started: &mut VecDeque<RequestId>) {
            while let Some(o) = self.poll_output() {
                if let Output::Start(c) = o {
                    started.push_back(c.id);
                }
            }
        }
    }

    pub fn weir() -> Weir {
        let mut s = Scheduler::new(config());
        let peers =
            (0..8).map(|p| s.add_peer(if p % 2 == 0 { RequestPriority::High } else { RequestPriority::Low })).collect();
        Weir(s, peers)
    }

    pub fn naive() -> Naive {
        // Peer ids to publish on, from a scheduler (they have no public constructor).
        let mut ids = Scheduler::new(config());
        let peers = (0..8)
            .map(|p| {
                let pr = if p % 2 == 0 { RequestPriority::High } else { RequestPriority::Low };
                (ids.add_peer(pr), pr)
            })
            .collect();
        Naive::new(peers, 8, Duration::from_secs(10), Duration::from_secs(30))
    }

    pub fn run<S: Sched>(c: &mut Criterion, name: &str, make: fn() -> S) {
        let mut g = c.benchmark_group(format!("cycle_{name}"));
        g.sample_size(20).warm_up_time(Duration::from_millis(300)).measurement_time(Duration::from_secs(2));
        let urls = urls();
        for depth in DEPTHS {
            let now = Instant::now();
            // Fill a scheduler to `depth` queued; returns the queued ids
            // with their priorities and the running ones.
            let fill = |s: &mut S| {
                let mut queued = Vec::with_capacity(depth);
                let mut running = VecDeque::new();
                for i in 0..depth + 8 {
                    queued.push((s.enqueue(i, urls[i % urls.len()].clone(), now), prio(i)));
                    if i % 1024 == 1023 {
                        s.drain(&mut running);
                    }
                }
                s.drain(&mut running);
                queued.retain(|(id, _)| !running.contains(id));
                (queued, running)
            };
            // Set up at the first call (criterion calls the closure once per
            // sample), so a filtered-out bench costs nothing.
            let mut next = depth + 8;
            let mut state = None;
            g.bench_function(BenchmarkId::new("cycle", depth), |b| {
                let (s, running) = state.get_or_insert_with(|| {
                    let mut s = make();
                    let (_, running) = fill(&mut s);
                    (s, running)
                });
                b.iter(|| {
                    let id = running.pop_front().expect("a running request");
                    s.bytes_then_complete(id, now);
                    next += 1;
                    s.enqueue(next, urls[next % urls.len()].clone(), now);
                    s.drain(running);
                });
            });
            drop(state);
            let mut state = None;
            let mut rng = Rng(11);
            g.bench_function(BenchmarkId::new("set_priority_cancel", depth), |b| {
                let (s, queued, running) = state.get_or_insert_with(|| {
                    let mut s = make();
                    let (queued, running) = fill(&mut s);
                    (s, queued, running)
                });
                b.iter_custom(|iters| {
                    // Per loop: one queued request picked at random changes
                    // priority (always a real move), another is cancelled;
                    // the cancelled ones are replaced and the outputs
                    // drained outside the timing, every 100 loops (an
                    // adapter drains after each batch of inputs).
                    let mut total = Duration::ZERO;
                    let mut left = iters as usize;
                    while left > 0 {
                        let k = left.min(100);
                        left -= k;
                        let picks: Vec<_> = (0..k)
                            .map(|_| {
                                let i = rng.next(queued.len());
                                let (a, pa) = &mut queued[i];
                                *pa = if *pa == RequestPriority::High {
                                    RequestPriority::Low
                                } else {
                                    RequestPriority::High
                                };
                                let moved = (*a, *pa);
                                let (b, _) = queued.swap_remove(rng.next(queued.len()));
                                (moved, b)
                            })
                            .collect();
                        let t = Instant::now();
                        for &((a, p), b) in &picks {
                            s.set_priority(a, p, now);
                            s.cancel(b, now);
                        }
                        total += t.elapsed();
                        for _ in 0..k {
                            next += 1;
                            queued.push((s.enqueue(next, urls[next % urls.len()].clone(), now), prio(next)));
                        }
                        s.drain(running);
                    }
                    total
                });
            });
        }
        g.finish();
    }
}

/// What the contract's types alone cost per cycle, with no scheduling: the
/// caller's URL copy and `Request`, the stored copy, the `FetchCmd`'s copy,
/// and the cycle's six outputs (Enqueued, Start, Started, FirstByte,
/// Completed; 144 bytes each) pushed through a queue, drained and dropped.
fn bench_cycle_floor(c: &mut Criterion) {
    use weir::{DownloaderEvent, FetchCmd, RequestMethod};
    let mut g = c.benchmark_group("cycle_floor");
    g.sample_size(20).warm_up_time(Duration::from_millis(300)).measurement_time(Duration::from_secs(2));
    let urls = cycle::urls();
    let mut s = Scheduler::new(cycle::config());
    let peer = s.add_peer(RequestPriority::High);
    let id = s.enqueue(peer, Request::get(urls[0].clone()), Instant::now()).expect("accepted");
    let mut out = VecDeque::new();
    let mut started = VecDeque::new();
    let mut i = 0;
    g.bench_function("types_only", |b| {
        b.iter(|| {
            i += 1;
            let req = Request::get(urls[i % urls.len()].clone()).priority(cycle::prio(i));
            let stored = black_box(req.url().clone());
            let url = req.url().clone();
            out.push_back(Output::Event(
                peer,
                DownloaderEvent::RequestEnqueued {
                    request_id: id,
                    url,
                    method: RequestMethod::Get,
                    priority: RequestPriority::Low,
                },
            ));
            let cmd = FetchCmd { id, peer, url: stored.clone(), method: RequestMethod::Get, range: None, attempt: 1 };
            out.push_back(Output::Start(cmd));
            out.push_back(Output::Event(
                peer,
                DownloaderEvent::RequestStarted { request_id: id, wait_in_queue: Duration::ZERO, attempt: 1 },
            ));
            out.push_back(Output::Event(peer, DownloaderEvent::FirstByte { request_id: id, latency: Duration::ZERO }));
            out.push_back(Output::Event(
                peer,
                DownloaderEvent::RequestCompleted {
                    request_id: id,
                    bytes_transferred: 1,
                    duration: Duration::ZERO,
                    bandwidth_bps: 1,
                },
            ));
            drop(stored);
            while let Some(o) = out.pop_front() {
                if let Output::Start(c) = o {
                    started.push_back(c.id);
                }
            }
            started.pop_front();
        });
    });
    g.finish();
}

fn bench_cycle(c: &mut Criterion) {
    if !wanted("cycle") {
        return;
    }
    bench_cycle_floor(c);
    cycle::run(c, "weir", cycle::weir);
    cycle::run(c, "naive", cycle::naive);
}

criterion_group!(benches, bench_weir, bench_priority_queue, bench_cycle);
criterion_main!(benches);
