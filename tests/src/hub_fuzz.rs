//! The hub's invariants under random commands, transfer steps and time,
//! decoded from bytes (shared by the `hub` fuzz target and a proptest):
//!
//! * every `RequestStarted` is exactly one transfer handed out;
//! * every transfer ends in one report (the scene's workers always do);
//! * every accepted download settles exactly once, and only after its
//!   terminal event; nothing is published for it after that event;
//! * a completed download's bytes are the resource, byte-exact, and its
//!   `bytes_transferred` equals what the sink holds;
//! * a download expecting a SHA-256 the resource does not have never
//!   completes (its wrong bytes are fetched once more, then it fails); one
//!   expecting the right one never fails an integrity check;
//! * after shutdown the hub finishes once every transfer is back;
//! * a download into a file (a private temporary file, or a resumable
//!   partial file) is put in place only by its settlement, which the scene
//!   holds as an adapter's sync thread does and runs at random moments: a
//!   completed one is byte-exact under its final name, any other leaves
//!   nothing there.

use std::time::Duration;

use sha2::Digest;
use weir::{Config, DownloaderEvent, PeerId, Request, RequestPriority, RetryPolicy, Url};
use weir_http::{Command, Fetch, FetchError, HubOptions, Sink};

use crate::hub::{resource, Scene};

fn prio(b: u8) -> RequestPriority {
    if b & 1 == 0 {
        RequestPriority::High
    } else {
        RequestPriority::Low
    }
}

/// Decode `data` into a run of the hub and check every invariant.
///
/// # Panics
/// When an invariant breaks.
pub fn run(data: &[u8]) {
    let mut bytes = data.iter().copied();
    let mut next = move || bytes.next();
    let Some(c) = next() else { return };
    let cfg = Config {
        max_concurrent: 1 + usize::from(c % 3),
        max_per_host: (c & 4 != 0).then_some(1),
        idle_timeout: Some(Duration::from_millis(50)),
        preempt_low: c & 8 != 0,
        retry: RetryPolicy {
            max_retries: 2,
            base: Duration::from_millis(if c & 16 != 0 { 0 } else { 10 }),
            jitter: false,
            ..RetryPolicy::default()
        },
        ..Config::default()
    };
    // Files are not synced (trusted to the OS): a `syncfs` per batch would
    // cost the fuzzer most of its speed and decides nothing the scene
    // checks; where the settlement is held and run is the same.
    let mut s = Scene::with_options(cfg, HubOptions { durable: false, ..HubOptions::default() });
    let dir = Scratch::new();
    let mut peers: Vec<PeerId> = vec![s.peer(RequestPriority::High)];
    let mut sizes = Vec::new();
    // Per download: the SHA-256 expected (None: nothing) and whether it is the resource's.
    let mut digests: Vec<Option<bool>> = Vec::new();
    // Per download: the file it goes to, if any.
    let mut files: Vec<Option<std::path::PathBuf>> = Vec::new();
    while let Some(op) = next() {
        let arg = next().unwrap_or(0);
        match op % 10 {
            0 | 1 => {
                let peer = peers[usize::from(arg) % peers.len()];
                let size = [0u64, 1, 700, 5000, 20_000][usize::from(arg / 8) % 5];
                let url = Url::parse(&format!("http://h{}.test/{size}", arg % 3)).expect("a valid URL");
                let req = Request::get(url).priority(prio(arg / 2));
                let right = op & 32 == 0;
                let digest: [u8; 32] = if right { sha2::Sha256::digest(resource(size)).into() } else { [7; 32] };
                let expect = (op & 16 != 0).then_some(right);
                let fetch = if expect.is_some() { Fetch::new().sha256(digest) } else { Fetch::new() };
                let file = (op & 64 != 0).then(|| dir.0.join(format!("d{}", sizes.len())));
                let sink = match &file {
                    None => Sink::Memory,
                    Some(p) if op & 128 != 0 => Sink::Resumable(p.clone()),
                    Some(p) => Sink::File(p.clone()),
                };
                s.fetch_with(peer, req, sink, fetch);
                sizes.push(size);
                digests.push(expect);
                files.push(file);
            }
            2 => {
                if let Some(Ok(id)) = s.ids.get(usize::from(arg) % s.ids.len().max(1)).cloned() {
                    s.command(Command::Cancel(id));
                }
            }
            3 => {
                if let Some(Ok(id)) = s.ids.get(usize::from(arg) % s.ids.len().max(1)).cloned() {
                    s.command(Command::SetPriority(id, prio(arg)));
                }
            }
            4 if arg % 4 == 0 && peers.len() > 1 => {
                let p = peers.remove(usize::from(arg / 4) % peers.len());
                s.command(Command::RemovePeer(p));
            }
            4 => peers.push(s.peer(prio(arg))),
            5..=7 if !s.workers.is_empty() => {
                let i = usize::from(arg) % s.workers.len();
                s.step(i, 1 + usize::from(arg) * 37);
            }
            8 if !s.workers.is_empty() => {
                let i = usize::from(arg) % s.workers.len();
                s.end(i, Err(weir::NetError::Reset("cut".into())));
            }
            9 if arg == 0 => s.command(Command::Shutdown),
            9 if arg == 1 => {
                s.sync();
            }
            _ => s.advance(Duration::from_millis(u64::from(arg % 64))),
        }
    }
    s.command(Command::Shutdown);
    s.finish_all();
    s.sync();
    assert!(s.hub.is_finished(), "every sink is back after shutdown: {:?}", s.hub);
    check(&s, &sizes, &digests, &files);
}

/// A directory of its own for one run's files, removed after it.
struct Scratch(std::path::PathBuf);

impl Scratch {
    fn new() -> Self {
        static RUNS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Scratch(crate::fresh_dir(&format!("hub-fuzz-{n}")))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn check(s: &Scene, sizes: &[u64], digests: &[Option<bool>], files: &[Option<std::path::PathBuf>]) {
    for (k, id) in s.ids.iter().enumerate() {
        let Ok(id) = *id else {
            assert!(s.outcomes(k).is_empty(), "a refused download never settles");
            continue;
        };
        let events = s.events_for(id);
        let terminals: Vec<_> = events.iter().filter(|e| e.is_terminal()).collect();
        assert_eq!(terminals.len(), 1, "one terminal event for {id:?}: {events:?}");
        assert!(
            events.last().is_some_and(DownloaderEvent::is_terminal),
            "nothing after the terminal event: {events:?}"
        );
        let started = events.iter().filter(|e| matches!(e, DownloaderEvent::RequestStarted { .. })).count();
        let spawned = s.spawned.get(&id).copied().unwrap_or(0) as usize;
        assert_eq!(started, spawned, "every start is one transfer, for {id:?}: {events:?}");
        let outcomes = s.outcomes(k);
        assert_eq!(outcomes.len(), 1, "settled exactly once: {id:?}");
        match (digests[k], terminals[0]) {
            (Some(false), DownloaderEvent::RequestCompleted { .. }) => panic!("wrong bytes completed: {events:?}"),
            (Some(true), DownloaderEvent::RequestFailed { error: weir::NetError::Integrity(m), .. }) => {
                panic!("the right bytes failed their check ({m}): {events:?}")
            }
            _ => {}
        }
        let refetches = events
            .iter()
            .filter(|e| matches!(e, DownloaderEvent::RequestRetrying { error: weir::NetError::Integrity(_), .. }))
            .count();
        assert!(refetches <= 1, "fetched again from zero at most once: {events:?}");
        let want = resource(sizes[k]);
        match &files[k] {
            Some(dest) if outcomes[0].is_ok() => {
                let got = std::fs::read(dest).expect("a completed file is in place");
                assert!(got == want, "byte-exact under its final name: {id:?}");
            }
            Some(dest) => assert!(!dest.exists(), "nothing under the final name of {id:?}: {events:?}"),
            None => {}
        }
        match (terminals[0], &outcomes[0]) {
            (DownloaderEvent::RequestCompleted { bytes_transferred, .. }, Ok(resp)) => {
                match &files[k] {
                    None => assert_eq!(resp.body.as_deref(), Some(&want[..]), "byte-exact: {id:?}"),
                    Some(dest) => assert_eq!(resp.path.as_ref(), Some(dest), "{id:?}"),
                }
                assert_eq!(*bytes_transferred, resp.bytes, "one byte count: {id:?} {events:?}");
            }
            (DownloaderEvent::RequestFailed { error, .. }, Err(FetchError::Failed(e))) => assert_eq!(error, e),
            (DownloaderEvent::RequestCancelled { reason, .. }, Err(FetchError::Cancelled(r))) => {
                assert_eq!(reason, r);
            }
            (DownloaderEvent::RequestCompleted { .. }, Err(FetchError::Failed(e))) => {
                panic!("a completed download failed to settle ({e}): {id:?}")
            }
            (t, o) => panic!("the outcome {o:?} does not match the terminal event {t:?}"),
        }
    }
}
