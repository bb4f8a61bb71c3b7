//! Drive the scheduler over a simulated network: a fake clock, a media
//! player peer with demand (High) and prefetch (Low) requests, a background
//! peer, a flaky host that resets mid-body, a server that answers 503 with
//! Retry-After, and a seek that cancels a group. Prints the event log and a
//! summary. No sockets, no threads, no sleeping: it runs in milliseconds.
//!
//! Run it with `cargo run -p weir --example simulate`.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use weir::{
    Config, DownloaderEvent, FetchCmd, NetError, Output, PeerId, Request, RequestId, RequestPriority, Scheduler, Url,
};

/// Bytes per 10 ms tick a host delivers, and how it misbehaves.
fn host_rate(host: &str) -> u64 {
    match host {
        "cdn.example" => 400_000,
        "slow.example" => 20_000,
        _ => 100_000,
    }
}

/// A transfer in the fake network.
struct Transfer {
    cmd: FetchCmd,
    left: u64,
    sent: u64,
}

const TICK: Duration = Duration::from_millis(10);

fn main() {
    let cfg = Config {
        max_concurrent: 3,
        max_per_host: Some(2),
        soft_timeout: Some(Duration::from_millis(800)),
        idle_timeout: Some(Duration::from_secs(5)),
        seed: 7,
        ..Config::default()
    };
    let mut sched = Scheduler::new(cfg);
    // The driver (not the core) picks the origin of its fake clock; the
    // scheduler only ever sees the times it is given.
    #[allow(clippy::disallowed_methods)]
    let t0 = Instant::now();
    let mut now = t0;
    let u = |s: &str| Url::parse(s).expect("valid URL");

    let player = sched.add_peer(RequestPriority::High);
    let background = sched.add_peer(RequestPriority::Low);
    let mut names: BTreeMap<PeerId, &str> = BTreeMap::new();
    names.insert(player, "player");
    names.insert(background, "background");
    let mut sizes: BTreeMap<RequestId, u64> = BTreeMap::new();
    let mut enqueue = |sched: &mut Scheduler, peer, req: Request, size: u64, now| {
        let id = sched.enqueue(peer, req, now).expect("accepted");
        sizes.insert(id, size);
        id
    };

    // The background peer syncs a catalogue; one host is flaky, one says 503.
    for i in 0..4 {
        enqueue(&mut sched, background, Request::get(u(&format!("http://mirror.example/pkg/{i}.tar"))), 600_000, now);
    }
    enqueue(&mut sched, background, Request::get(u("http://flaky.example/index.json")), 300_000, now);
    let busy = enqueue(&mut sched, background, Request::get(u("http://busy.example/feed.xml")), 50_000, now);
    // The player prefetches segments of the current epoch, then needs one now.
    let epoch = sched.new_group(player);
    for i in 2..6 {
        let r = Request::get(u(&format!("http://cdn.example/seg/{i}.ts"))).group(epoch);
        enqueue(&mut sched, player, r, 6_000_000, now);
    }
    enqueue(
        &mut sched,
        player,
        Request::get(u("http://cdn.example/seg/1.ts")).priority(RequestPriority::High),
        1_000_000,
        now,
    );
    let subs = enqueue(&mut sched, player, Request::get(u("http://slow.example/subtitles.vtt")), 120_000, now);
    // The subtitles turn out to be needed right away.
    sched.set_priority(subs, RequestPriority::High, now);

    let mut running: BTreeMap<RequestId, Transfer> = BTreeMap::new();
    let mut failed_once: Vec<RequestId> = Vec::new();
    let mut summary: BTreeMap<&str, [u64; 4]> = BTreeMap::new(); // completed, failed, cancelled, retries
    let mut seeked = false;

    for _tick in 0..10_000 {
        while let Some(out) = sched.poll_output() {
            let at = now - t0;
            match out {
                Output::Start(cmd) => {
                    let size = sizes[&cmd.id];
                    let offset = cmd.range.map_or(0, |(s, _)| s);
                    println!(
                        "{:>6} ms  START  {} {} attempt {} from byte {offset}",
                        at.as_millis(),
                        cmd.id,
                        cmd.url,
                        cmd.attempt
                    );
                    running.insert(cmd.id, Transfer { left: size - offset, sent: 0, cmd });
                }
                Output::Abort(id) => {
                    println!("{:>6} ms  ABORT  {id}", at.as_millis());
                    running.remove(&id);
                }
                Output::Event(peer, ev) => {
                    let who = names[&peer];
                    let row = summary.entry(who).or_default();
                    match &ev {
                        DownloaderEvent::RequestCompleted { .. } => row[0] += 1,
                        DownloaderEvent::RequestFailed { .. } => row[1] += 1,
                        DownloaderEvent::RequestCancelled { .. } => row[2] += 1,
                        DownloaderEvent::RequestRetrying { .. } => row[3] += 1,
                        _ => {}
                    }
                    match &ev {
                        DownloaderEvent::RequestEnqueued { request_id, url, priority, .. } => {
                            println!("{:>6} ms  {who:<10} Enqueued {request_id} {url} {priority:?}", at.as_millis());
                        }
                        _ => println!("{:>6} ms  {who:<10} {ev:?}", at.as_millis()),
                    }
                }
            }
        }
        if running.is_empty() && sched.queued() == 0 {
            break;
        }

        // Time passes: to the next tick or the next deadline, whichever is first.
        let next_tick = now + TICK;
        now = match sched.poll_timeout() {
            Some(d) if d < next_tick && running.is_empty() => d,
            _ => next_tick,
        };
        sched.handle_timeout(now);

        // The user seeks after 300 ms: the prefetched epoch is obsolete.
        if !seeked && now - t0 >= Duration::from_millis(300) {
            seeked = true;
            println!("{:>6} ms  -- seek: cancel the prefetch epoch --", (now - t0).as_millis());
            sched.cancel_group(epoch, now);
            continue;
        }

        // The network moves bytes.
        let ids: Vec<RequestId> = running.keys().copied().collect();
        for id in ids {
            let t = running.get_mut(&id).expect("running");
            let host = t.cmd.url.host_str().unwrap_or("").to_owned();
            if id == busy && t.cmd.attempt == 1 {
                running.remove(&id);
                let e = NetError::Status { status: 503, retry_after: Some(Duration::from_millis(400)) };
                sched.on_failed(id, e, now);
                continue;
            }
            let n = host_rate(&host).min(t.left);
            t.left -= n;
            t.sent += n;
            sched.on_bytes(id, n, now);
            if host == "flaky.example" && !failed_once.contains(&id) && t.sent >= 100_000 {
                failed_once.push(id);
                running.remove(&id);
                sched.on_failed(id, NetError::Reset("connection reset by peer".into()), now);
            } else if t.left == 0 {
                running.remove(&id);
                sched.on_complete(id, now);
            }
        }
    }

    println!("\nsummary after {} ms of simulated time", (now - t0).as_millis());
    println!("{:<12}{:>10}{:>8}{:>11}{:>9}", "peer", "completed", "failed", "cancelled", "retries");
    for (who, [c, f, x, r]) in &summary {
        println!("{who:<12}{c:>10}{f:>8}{x:>11}{r:>9}");
    }
    let bw = sched.bandwidth_estimate().map_or("n/a".to_owned(), |b| format!("{:.1} Mbit/s", b as f64 / 1e6));
    println!("bandwidth estimate: {bw}");
    assert_eq!(sched.in_flight() + sched.queued(), 0, "everything ended");
}
