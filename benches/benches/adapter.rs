//! Adapter throughput and demand latency on loopback, each next to a
//! baseline measured in the same run.
//!
//! * Throughput: 5000 files of 4 KiB, 2000 of 64 KiB and 200 of 4 MiB from nginx,
//!   `max_concurrent` 8: `weir-ureq` versus 8 plain `ureq` workers pulling
//!   from a shared queue (the practical limit).
//! * Demand latency: 8 slow Low downloads fill every slot, then a High
//!   request arrives; arrival → first byte of the High request, for weir
//!   with `preempt_low`, with `max_low_in_flight` 7, with neither, and for a
//!   plain FIFO pool of 8 workers.
//!
//! `cargo bench -p weir-benches --bench adapter` (`-- --test`: one quick round).
#![forbid(unsafe_code)]
#![allow(clippy::disallowed_methods)]

use std::collections::VecDeque;
use std::io::Read;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use weir::{Config, DownloaderEvent, Request, RequestPriority, Url};
use weir_tests::nginx::Nginx;
use weir_tests::server::{content, FaultServer};
use weir_ureq::{Downloader, Sink};

const WORKERS: usize = 8;

fn agent() -> ureq::Agent {
    ureq::Agent::new_with_config(ureq::Agent::config_builder().http_status_as_error(false).build())
}

/// 8 plain ureq workers draining a shared queue; returns the wall time.
fn plain_pool(urls: &[String]) -> Duration {
    let queue = Arc::new(Mutex::new(urls.iter().cloned().collect::<VecDeque<_>>()));
    let t = Instant::now();
    let threads: Vec<_> = (0..WORKERS)
        .map(|_| {
            let q = Arc::clone(&queue);
            std::thread::spawn(move || {
                let a = agent();
                let mut buf = vec![0u8; 64 * 1024];
                loop {
                    let Some(u) = q.lock().unwrap().pop_front() else { return };
                    let mut r = a.get(&u).call().expect("plain GET").into_body().into_reader();
                    while r.read(&mut buf).expect("read") > 0 {}
                }
            })
        })
        .collect();
    for th in threads {
        th.join().unwrap();
    }
    t.elapsed()
}

/// The same through weir-ureq into a discarding writer.
fn weir_pool(urls: &[String]) -> Duration {
    weir_pool_recording(urls, false)
}

/// [`weir_pool`], recording a trace with outputs to a temporary file when `record`.
fn weir_pool_recording(urls: &[String], record: bool) -> Duration {
    let config = Config { max_concurrent: WORKERS, ..Config::default() };
    let trace = std::env::temp_dir().join(format!("weir-bench-{}.trace", std::process::id()));
    let record = record.then(|| weir_ureq::RecordTo::file(std::fs::File::create(&trace).expect("a trace file"), true));
    let dl = Downloader::try_new(config, weir_ureq::Options { record, ..weir_ureq::Options::default() })
        .expect("a downloader");
    let peer = dl.peer(RequestPriority::Low);
    let t = Instant::now();
    let items =
        urls.iter().map(|u| (Request::get(Url::parse(u).unwrap()), Sink::Writer(Box::new(std::io::sink())))).collect();
    let downloads: Vec<_> = peer.fetch_all(items).into_iter().map(Result::unwrap).collect();
    if std::env::var_os("WEIR_BENCH_DEBUG").is_some() {
        eprintln!("enqueued {} in {:?}", urls.len(), t.elapsed());
    }
    let _ = std::fs::remove_file(&trace);
    if std::env::var_os("WEIR_BENCH_REVERSE").is_some() {
        for d in downloads.into_iter().rev() {
            d.wait().expect("download");
        }
    } else {
        for d in downloads {
            d.wait().expect("download");
        }
    }
    t.elapsed()
}

/// The same through weir-async (driver on a background thread, default hyper transport).
fn weir_async_pool(urls: &[String]) -> Duration {
    let dl = weir_async::Downloader::spawn(Config { max_concurrent: WORKERS, ..Config::default() });
    futures_lite::future::block_on(async {
        let peer = dl.peer(RequestPriority::Low).await;
        let t = Instant::now();
        let items = urls
            .iter()
            .map(|u| {
                let sink = weir_async::Sink::Writer(Box::new(std::io::sink()));
                (Request::get(Url::parse(u).unwrap()), sink)
            })
            .collect();
        let downloads = peer.fetch_all(items).await;
        for d in downloads {
            d.unwrap().await.expect("download");
        }
        t.elapsed()
    })
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn throughput(quick: bool) {
    let (n_tiny, n_small, n_big) = if quick { (50, 50, 4) } else { (5000, 2000, 200) };
    let mut files: Vec<(String, Vec<u8>)> = Vec::new();
    let tiny = content(4 * 1024, 3);
    let small = content(64 * 1024, 1);
    let big = content(4 * 1024 * 1024, 2);
    files.extend((0..n_tiny).map(|i| (format!("t{i}"), tiny.clone())));
    files.extend((0..n_small).map(|i| (format!("s{i}"), small.clone())));
    files.extend((0..n_big).map(|i| (format!("b{i}"), big.clone())));
    let nginx = Nginx::start(&files);
    let rounds = if quick { 1 } else { 5 };
    println!("throughput, {WORKERS} concurrent, nginx on 127.0.0.1, median of {rounds} rounds (alternating)");
    println!("| workload | plain ureq pool | weir-ureq | weir-ureq / plain | weir-async | weir-async / plain |");
    println!("|---|---|---|---|---|---|");
    let workloads = [
        ("4 KiB files", "t", n_tiny, 4 * 1024u64),
        ("64 KiB files", "s", n_small, 64 * 1024),
        ("4 MiB files", "b", n_big, 4 << 20),
    ];
    let tiny_urls: Vec<String> = (0..n_tiny).map(|i| nginx.url(&format!("t{i}"))).collect();
    for (label, prefix, n, size) in workloads {
        let urls: Vec<String> = (0..n).map(|i| nginx.url(&format!("{prefix}{i}"))).collect();
        let (mut p, mut w, mut a) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..rounds {
            p.push(plain_pool(&urls));
            w.push(weir_pool(&urls));
            a.push(weir_async_pool(&urls));
        }
        let (p, w, a) = (median(p), median(w), median(a));
        let mbps = |d: Duration| (n as u64 * size) as f64 / d.as_secs_f64() / 1e6;
        let cell = |d: Duration| format!("{:.0} MB/s ({:.0} ms)", mbps(d), d.as_secs_f64() * 1e3);
        println!(
            "| {n} × {label} | {} | {} | {:.3} | {} | {:.3} |",
            cell(p),
            cell(w),
            mbps(w) / mbps(p),
            cell(a),
            mbps(a) / mbps(p)
        );
    }
    recording_overhead(&tiny_urls, rounds);
}

/// weir-ureq on the 4 KiB files with and without recording a trace (with
/// outputs), alternating rounds.
fn recording_overhead(urls: &[String], rounds: usize) {
    let (mut off, mut on) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        off.push(weir_pool_recording(urls, false));
        on.push(weir_pool_recording(urls, true));
    }
    let (off, on) = (median(off), median(on));
    println!("recording a trace, weir-ureq, {} × 4 KiB files, median of {rounds}", urls.len());
    println!("| recording | time | / off |");
    println!("|---|---|---|");
    println!("| off | {:.0} ms | 1.000 |", off.as_secs_f64() * 1e3);
    println!(
        "| on (inputs and outputs) | {:.0} ms | {:.3} |",
        on.as_secs_f64() * 1e3,
        on.as_secs_f64() / off.as_secs_f64()
    );
}

/// Arrival → first byte of a High request while 8 slow Low downloads run.
fn weir_demand(server: &FaultServer, cfg: Config, slow: &str) -> Duration {
    let dl = Downloader::new(cfg);
    let events = dl.subscribe();
    let peer = dl.peer(RequestPriority::High);
    let lows: Vec<_> = (0..WORKERS * 2)
        .map(|_| peer.fetch(Request::get(Url::parse(&server.url(slow)).unwrap()), Sink::Memory).unwrap())
        .collect();
    // Wait until the slots are busy delivering (7 of them under the Low reserve).
    let mut busy = 0;
    while busy < WORKERS - 1 {
        if let Ok((_, DownloaderEvent::FirstByte { .. })) = events.recv_timeout(Duration::from_secs(10)) {
            busy += 1;
        }
    }
    std::thread::sleep(Duration::from_millis(50));
    let t = Instant::now();
    let d = peer
        .fetch(
            Request::get(Url::parse(&server.url("/file/1000")).unwrap()).priority(RequestPriority::High),
            Sink::Memory,
        )
        .unwrap();
    let id = d.id();
    loop {
        match events.recv_timeout(Duration::from_secs(30)) {
            Ok((_, DownloaderEvent::FirstByte { request_id, .. })) if request_id == id => break,
            Ok(_) => {}
            Err(e) => panic!("no first byte: {e}"),
        }
    }
    let latency = t.elapsed();
    for l in lows {
        l.detach();
    }
    drop(d);
    latency
}

/// A plain FIFO pool: 8 workers, the High request queued behind the Low ones.
fn fifo_demand(server: &FaultServer, slow: &str) -> Duration {
    let (tx, rx) = mpsc::channel::<(String, Option<mpsc::Sender<Instant>>)>();
    let rx = Arc::new(Mutex::new(rx));
    let threads: Vec<_> = (0..WORKERS)
        .map(|_| {
            let rx = Arc::clone(&rx);
            std::thread::spawn(move || {
                let a = agent();
                let mut buf = vec![0u8; 16 * 1024];
                loop {
                    let Ok((u, first)) = rx.lock().unwrap().recv() else { return };
                    let mut r = a.get(&u).call().expect("GET").into_body().into_reader();
                    let mut told = first;
                    while r.read(&mut buf).expect("read") > 0 {
                        if let Some(t) = told.take() {
                            let _ = t.send(Instant::now());
                        }
                    }
                }
            })
        })
        .collect();
    for _ in 0..WORKERS * 2 {
        tx.send((server.url(slow), None)).unwrap();
    }
    std::thread::sleep(Duration::from_millis(300));
    let (ftx, frx) = mpsc::channel();
    let t = Instant::now();
    tx.send((server.url("/file/1000"), Some(ftx))).unwrap();
    let at = frx.recv_timeout(Duration::from_secs(60)).expect("the demand request ran");
    drop(tx);
    for th in threads {
        th.join().unwrap();
    }
    at - t
}

fn demand_latency(quick: bool) {
    let server = FaultServer::start();
    // Each Low download drips 40 KiB in 2 KiB chunks every 25 ms: ~0.5 s.
    let slow = "/drip/40960/2048/25";
    let base = Config { max_concurrent: WORKERS, ..Config::default() };
    let rounds = if quick { 1 } else { 5 };
    let mut rows = Vec::new();
    for (label, cfg) in [
        ("weir, preempt_low", Config { preempt_low: true, ..base.clone() }),
        ("weir, max_low_in_flight 7", Config { max_low_in_flight: Some(WORKERS - 1), ..base.clone() }),
        ("weir, neither", base.clone()),
    ] {
        let v: Vec<_> = (0..rounds).map(|_| weir_demand(&server, cfg.clone(), slow)).collect();
        rows.push((label, median(v)));
    }
    let fifo = median((0..rounds).map(|_| fifo_demand(&server, slow)).collect());
    println!("\ndemand latency (arrival → first byte of a High request, all {WORKERS} slots busy with slow Low downloads), median of {rounds}");
    println!("| scheduler | latency | / FIFO |");
    println!("|---|---|---|");
    for (label, d) in rows {
        println!("| {label} | {:.1} ms | {:.3} |", d.as_secs_f64() * 1e3, d.as_secs_f64() / fifo.as_secs_f64());
    }
    println!("| plain FIFO pool | {:.1} ms | 1.000 |", fifo.as_secs_f64() * 1e3);
}

/// `WEIR_BENCH_PROFILE=ureq|async|plain`: only that pool on the 4 KiB files,
/// 20 rounds, for `perf record`.
fn profile(which: &str) {
    let files: Vec<(String, Vec<u8>)> = (0..5000).map(|i| (format!("t{i}"), content(4 * 1024, 3))).collect();
    let nginx = Nginx::start(&files);
    let urls: Vec<String> = (0..5000).map(|i| nginx.url(&format!("t{i}"))).collect();
    let run: fn(&[String]) -> Duration = match which {
        "ureq" => weir_pool,
        "async" => weir_async_pool,
        _ => plain_pool,
    };
    let rounds = std::env::var("WEIR_BENCH_ROUNDS").ok().and_then(|r| r.parse().ok()).unwrap_or(20);
    let times: Vec<Duration> = (0..rounds).map(|_| run(&urls)).collect();
    println!("{which}: median {:?}", median(times));
}

fn main() {
    if let Ok(which) = std::env::var("WEIR_BENCH_PROFILE") {
        return profile(&which);
    }
    let quick = std::env::args().any(|a| a == "--test");
    throughput(quick);
    demand_latency(quick);
}
