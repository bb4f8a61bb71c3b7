//! `weir demo`: an embedded loopback server with good and bad files, and a
//! media-player-like workload through `weir-ureq`.

use std::io::IsTerminal;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use weir::{Config, PeerId, Request, RequestPriority, RetryPolicy, Url};
use weir_ureq::{Download, Downloader, Sink};

use crate::ui::{event_json, peer_name, say, Bars, Summary};
use weir_faultserver::FaultServer;

fn fetch(peer: &weir_ureq::PeerHandle, bars: &Bars, url: &str, req: Request, label: &str) -> Option<Download> {
    match peer.fetch(req, Sink::Writer(Box::new(std::io::sink()))) {
        Ok(d) => {
            bars.track(d.id(), format!("{label} {url}"), d.progress_handle());
            Some(d)
        }
        Err(e) => {
            eprintln!("refused {url}: {e}");
            None
        }
    }
}

/// Run the demo; returns the exit code.
pub fn demo(events: bool, record: Option<&std::path::Path>) -> i32 {
    let record = match record.map(std::fs::File::create).transpose() {
        Ok(f) => f.map(|f| weir_ureq::RecordTo::file(f, true)),
        Err(e) => {
            eprintln!("weir: cannot create the trace: {e}");
            return 2;
        }
    };
    let server = FaultServer::start();
    let t0 = Instant::now();
    let cfg = Config {
        max_concurrent: 4,
        preempt_low: true,
        soft_timeout: Some(Duration::from_millis(800)),
        idle_timeout: Some(Duration::from_secs(2)),
        retry: RetryPolicy { base: Duration::from_millis(100), ..RetryPolicy::default() },
        ..Config::default()
    };
    let dl = match Downloader::try_new(cfg, weir_ureq::Options { record, ..weir_ureq::Options::default() }) {
        Ok(dl) => dl,
        Err(e) => {
            eprintln!("weir: cannot start: {e}");
            return 1;
        }
    };
    let all = dl.subscribe();
    let player = dl.peer(RequestPriority::High);
    let background = dl.peer(RequestPriority::Low);
    let names: Vec<(PeerId, String)> = vec![(player.id(), "player".into()), (background.id(), "background".into())];
    let bars = Bars::new(!events && std::io::stderr().is_terminal());
    if !events {
        bars.println(&format!("weir demo: serving synthetic files on {}", server.addr()));
    }
    let summary = Arc::new(Mutex::new(Summary::default()));
    let printer = {
        let (bars, summary, names) = (bars.clone(), Arc::clone(&summary), names.clone());
        std::thread::spawn(move || {
            let mut running = std::collections::HashSet::new();
            let (mut enqueued, mut ended) = (0usize, 0usize);
            for (p, e) in all {
                let who = peer_name(&names, p);
                if events {
                    say(format_args!("{}", event_json(&who, &e)));
                }
                let id = e.request_id();
                match &e {
                    weir::DownloaderEvent::RequestEnqueued { .. } => enqueued += 1,
                    weir::DownloaderEvent::RequestStarted { .. } => {
                        running.insert(id);
                    }
                    weir::DownloaderEvent::RequestRetrying { .. } | weir::DownloaderEvent::RequestPreempted { .. } => {
                        running.remove(&id);
                    }
                    e if e.is_terminal() => {
                        running.remove(&id);
                        ended += 1;
                    }
                    _ => {}
                }
                let queued = enqueued - ended - running.len();
                bars.status(format!("queued {queued:>2}   running {}   ended {ended:>2}", running.len()));
                bars.event(&e);
                summary.lock().expect("summary").add(&who, &e);
            }
        })
    };

    let url = |p: &str| server.url(p);
    let get = |p: &str| Request::get(Url::parse(&url(p)).expect("url"));
    let mut downloads = Vec::new();

    // The background peer syncs a catalogue: plain files, a flaky host that
    // resets mid-body once, one that answers 503 + Retry-After once, a slow one.
    for i in 0..6 {
        let p = format!("/drip/{}/32768/30", 800_000 + i * 1000);
        downloads.extend(fetch(&background, &bars, &p, get(&p), "bg"));
    }
    for p in ["/reset/900000/300000", "/status/503/1/1", "/drip/200000/4000/40"] {
        downloads.extend(fetch(&background, &bars, p, get(p), "bg"));
    }
    // The player prefetches the next segments of the current epoch...
    let epoch = player.new_group();
    for i in 0..5 {
        let p = format!("/drip/{}/16384/40", 600_000 + i);
        downloads.extend(fetch(&player, &bars, &p, get(&p).group(epoch), "prefetch"));
    }
    // ...and needs the current one now.
    let p = "/file/1500000";
    downloads.extend(fetch(&player, &bars, p, get(p).priority(RequestPriority::High), "demand"));
    std::thread::sleep(Duration::from_millis(700));

    // The user seeks: the old epoch's prefetch is obsolete.
    let narrate = |line: String| {
        if !events {
            bars.println(&line);
        }
    };
    narrate(format!("{:>6} ms  seek: cancel the prefetch epoch", t0.elapsed().as_millis()));
    player.cancel_group(epoch);
    let epoch2 = player.new_group();
    let p = "/file/1200000";
    downloads.extend(fetch(&player, &bars, p, get(p).priority(RequestPriority::High).group(epoch2), "demand"));
    for i in 0..3 {
        let p = format!("/drip/{}/16384/20", 200_000 + i);
        downloads.extend(fetch(&player, &bars, &p, get(&p).group(epoch2), "prefetch"));
    }
    // The catalogue's index turns out to be urgent.
    if let Some(d) = downloads.get(8) {
        narrate(format!("{:>6} ms  priority change: {} -> High", t0.elapsed().as_millis(), d.id()));
        d.set_priority(RequestPriority::High);
    }

    for mut d in downloads {
        let _ = d.wait_timeout(Duration::from_secs(25));
    }
    bars.finish();
    drop(player);
    drop(background);
    drop(dl);
    let _ = printer.join();
    if !events {
        say(format_args!("weir demo finished in {:.1} s\n", t0.elapsed().as_secs_f64()));
        print!("{}", summary.lock().expect("summary").table());
    }
    0
}
