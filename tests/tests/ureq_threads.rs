//! Dropping the downloader mid-transfer: nothing hangs, the shutdown reason
//! arrives, and every thread it started is gone. Alone in its own test
//! binary so that other tests' threads do not disturb the count.

use std::time::{Duration, Instant};

use weir_tests::server::FaultServer;
use weir_tests::*;
use weir_ureq::{Downloader, FetchError, Sink};

fn threads() -> usize {
    std::fs::read_dir("/proc/self/task").map(|d| d.count()).unwrap_or(0)
}

#[test]
fn dropping_the_downloader_mid_transfer_cancels_and_joins_every_thread() {
    let server = FaultServer::start();
    let before = threads();
    let dl = Downloader::new(Config { max_concurrent: 4, ..Config::default() });
    assert_eq!(threads(), before + 7, "a timer, a sync thread, four workers and a spare one");
    let all = dl.subscribe();
    let peer = dl.peer(RequestPriority::Low);
    let stalled = peer.fetch(get(&server.url("/stall/100000/1000")), Sink::Memory).unwrap();
    let queued: Vec<_> =
        (0..6).map(|_| peer.fetch(get(&server.url("/drip/5000/100/50")), Sink::Memory).unwrap()).collect();
    std::thread::sleep(Duration::from_millis(100));
    let t = Instant::now();
    drop(dl);
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "shutdown took {:?}: a worker stayed blocked on a socket",
        t.elapsed()
    );
    assert_eq!(stalled.wait(), Err(FetchError::Cancelled(CancelReason::DownloaderShutdown)));
    for d in queued {
        assert_eq!(d.wait(), Err(FetchError::Cancelled(CancelReason::DownloaderShutdown)));
    }
    let reasons: Vec<_> = all.try_iter().filter(|(_, e)| e.is_terminal()).collect();
    assert_eq!(reasons.len(), 7);
    // A handle outliving the downloader gets clear errors, not a hang.
    assert_eq!(peer.fetch(get(&server.url("/file/1")), Sink::Memory).unwrap_err(), EnqueueError::ShutDown);
    drop(peer);
    let deadline = Instant::now() + Duration::from_secs(5);
    while threads() != before && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(threads(), before, "every thread the downloader started is gone");
}
