//! weir-async does not depend on a particular runtime: the same downloads
//! on an `async-executor` `Executor`, from inside a tokio runtime, and on a
//! background driver thread; and 1000 slow downloads at once with a handful
//! of OS threads. Alone in its binary so the thread count is the adapter's.

use std::time::{Duration, Instant};

use futures_lite::future;
use weir_async::{Downloader, Sink};
use weir_tests::nginx::Nginx;
use weir_tests::server::{content, TestServer};
use weir_tests::*;

fn threads() -> usize {
    std::fs::read_dir("/proc/self/task").map(|d| d.count()).unwrap_or(0)
}

async fn fetch_three(dl: &Downloader, server_url: impl Fn(&str) -> String) {
    let peer = dl.peer(RequestPriority::Low).await;
    let out = peer
        .batch(vec![get(&server_url("/file/1000")), get(&server_url("/file/2000")), get(&server_url("/nope"))])
        .await;
    assert_eq!(out[0].as_ref().unwrap().body.as_deref(), Some(&content(1000, 1000)[..]));
    assert_eq!(out[1].as_ref().unwrap().bytes, 2000);
    assert!(out[2].is_err());
}

#[test]
fn runs_on_async_executor_tokio_and_a_background_thread_and_scales_to_1000_drips() {
    let server = TestServer::start();
    let u = |p: &str| server.url(p);

    // 1. An async-executor Executor drives both the driver and the caller.
    let ex = async_executor::Executor::new();
    let (dl, driver) = Downloader::new(Config::default());
    let driver_task = ex.spawn(driver);
    future::block_on(ex.run(fetch_three(&dl, u)));
    dl.shutdown();
    future::block_on(ex.run(driver_task));

    // 2. Inside tokio: the driver is a spawned task (it is Send).
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let (dl, driver) = Downloader::new(Config::default());
    let handle = rt.spawn(driver);
    rt.block_on(fetch_three(&dl, u));
    dl.shutdown();
    rt.block_on(handle).unwrap();
    drop(rt);

    // 3. The background-thread convenience, joined on drop.
    let before = threads();
    let dl = Downloader::spawn(Config::default());
    future::block_on(fetch_three(&dl, u));
    drop(dl);
    // The loopback server's connection threads wind down on their own.
    let deadline = Instant::now() + Duration::from_secs(5);
    while threads() > before && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(threads() <= before, "the driver thread was joined");

    // 4. 1000 slow downloads at once from nginx (limit_rate: ~2 s each, so
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
