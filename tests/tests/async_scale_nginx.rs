//! weir-async runs 1000 slow downloads at once on a handful of OS threads
//! (nginx's `limit_rate`). Alone in its binary so the thread count is the
//! adapter's. Opt-in: compiled only with `WEIR_NGINX=1` (see `tests/build.rs`).
#![cfg(weir_nginx)]

use std::time::{Duration, Instant};

use futures_lite::future;
use weir_async::{Downloader, Sink};
use weir_tests::nginx::Nginx;
use weir_tests::server::content;
use weir_tests::*;

fn threads() -> usize {
    std::fs::read_dir("/proc/self/task").map(|d| d.count()).unwrap_or(0)
}

#[test]
fn scales_to_1000_slow_downloads_on_a_handful_of_threads() {
    let before = threads();
    // 1000 slow downloads at once from nginx (limit_rate: ~2 s each, so
    //    one after another they would take half an hour).
    let body = content(64 * 1024, 9);
    let files: Vec<_> = (0..1000).map(|i| (format!("d{i}"), body.clone())).collect();
    let nginx = Nginx::start_with(&files, "limit_rate 32k;");
    let dl = Downloader::spawn(Config { max_concurrent: 1000, ..Config::default() });
    let t = Instant::now();
    let peak = future::block_on(async {
        let peer = dl.peer(RequestPriority::Low).await;
        let items = (0..1000).map(|i| (get(&nginx.url(&format!("d{i}"))), Sink::Memory)).collect();
        let downloads = peer.fetch_all(items).await;
        let mut peak = 0;
        let mut ok = 0;
        for d in downloads {
            peak = peak.max(threads());
            let r = d.unwrap().await.expect("a drip download");
            assert_eq!(r.body.as_deref(), Some(&body[..]));
            ok += 1;
        }
        assert_eq!(ok, 1000);
        peak
    });
    let took = t.elapsed();
    drop(dl);
    println!("1000 slow downloads: {took:?}, peak threads {peak} (test harness included)");
    assert!(peak <= before + 4, "peak {peak} threads with {before} before: transfers must not take threads");
    assert!(took >= Duration::from_secs(1), "the downloads were slow ({took:?})");
    assert!(took < Duration::from_secs(30), "1000 slow downloads ran concurrently ({took:?})");
}
