//! Bytes per queued request at 10⁶ queued (a ~67-character URL each, 64
//! hosts), and
//! whether memory returns to baseline once every request ended. A counting
//! global allocator (`stats_alloc`) measures live heap bytes.
//!
//! `cargo bench -p weir-benches --bench memory` (`-- --test`: 10⁴ requests).
#![forbid(unsafe_code)]
#![allow(clippy::disallowed_methods)]

use std::alloc::System;
use std::time::Instant;

use stats_alloc::{Region, StatsAlloc, INSTRUMENTED_SYSTEM};
use weir::{Config, Output, Request, RequestPriority, Scheduler, Url};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

fn live(region: &Region<'_, System>) -> i64 {
    let s = region.change();
    s.bytes_allocated as i64 - s.bytes_deallocated as i64
}

fn main() {
    let quick = std::env::args().any(|a| a == "--test");
    let n: usize = if quick { 10_000 } else { 1_000_000 };
    let cfg = Config { max_concurrent: 1000, soft_timeout: None, idle_timeout: None, ..Config::default() };
    let mut s = Scheduler::new(cfg);
    let peers: Vec<_> = (0..8).map(|_| s.add_peer(RequestPriority::Low)).collect();
    let now = Instant::now();
    // Warm the interned hosts and the output queue, then measure from here.
    let urls: Vec<String> = (0..n)
        .map(|i| format!("https://cdn{}.media.example.com/segments/track-{:04}/seg-{i:08}.m4s", i % 64, i % 997))
        .collect();
    let url_len = urls.iter().map(String::len).sum::<usize>() / n;
    let region = Region::new(GLOBAL);
    let base = live(&region);
    // The RequestEnqueued events each hold a URL too: drain them as an
    // adapter does, every 1024 enqueues.
    let mut running = Vec::new();
    let drain = |s: &mut Scheduler, running: &mut Vec<weir::RequestId>| {
        while let Some(o) = s.poll_output() {
            if let Output::Start(c) = o {
                running.push(c.id);
            }
        }
    };
    for (i, u) in urls.iter().enumerate() {
        let req = Request::get(Url::parse(u).expect("url"));
        s.enqueue(peers[i % 8], req, now).expect("accepted");
        if i % 1024 == 1023 {
            drain(&mut s, &mut running);
        }
    }
    drain(&mut s, &mut running);
    let queued = live(&region) - base;
    let per = queued as f64 / n as f64;
    println!("requests queued: {n} (average URL {url_len} chars)");
    println!("live heap for them: {queued} bytes = {per:.1} bytes per queued request");

    // Complete everything, 1000 at a time.
    let mut done = 0usize;
    while let Some(id) = running.pop() {
        s.on_bytes(id, 1, now);
        s.on_complete(id, now);
        done += 1;
        if running.is_empty() {
            while let Some(o) = s.poll_output() {
                if let Output::Start(c) = o {
                    running.push(c.id);
                }
            }
        }
    }
    assert_eq!(done, n, "every request completed");
    assert_eq!(s.in_flight() + s.queued(), 0);
    let after = live(&region) - base;
    let fp = s.footprint();
    println!(
        "after all completed: {after} bytes still live ({:.1} per request served: spare capacity), tables {fp:?}",
        after as f64 / n as f64
    );
    s.shrink_to_fit();
    let shrunk = live(&region) - base;
    println!("after shrink_to_fit: {shrunk} bytes");
    assert!(shrunk < 64 * 1024, "memory returns to baseline");
    drop(s);
    println!("after dropping the scheduler: {} bytes", live(&region) - base);
    println!("goal: < 300 bytes per queued request -> {}", if per < 300.0 { "met" } else { "MISSED" });
}
