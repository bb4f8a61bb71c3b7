//! weir-async does not depend on a particular runtime: the same downloads
//! on an `async-executor` `Executor`, from inside a tokio runtime, and on a
//! background driver thread. Alone in its binary so the thread count is the
//! adapter's.

use std::time::{Duration, Instant};

use futures_lite::future;
use weir_async::Downloader;
use weir_tests::server::{content, FaultServer};
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
fn runs_on_async_executor_tokio_and_a_background_thread() {
    let server = FaultServer::start();
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
}
