//! Record and replay: a hub run recorded as a trace replays into a fresh
//! scheduler to the same outputs; bad traces get a clear error at the line
//! that is wrong, never a panic.

use std::io::Write;
use std::sync::{Arc, Mutex};

use proptest::prelude::*;
use weir_http::trace::{replay, Recorder, FORMAT};
use weir_http::{Command, Sink};
use weir_tests::hub::Scene;
use weir_tests::*;

/// A writer the test reads back.
#[derive(Clone, Default)]
struct Buf(Arc<Mutex<Vec<u8>>>);

impl Write for Buf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("buffer").extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A hub run with most of what happens in the field: two peers, priorities,
/// a group cancelled (a seek), a 503 with Retry-After, an idle timeout, a
/// cut transfer, completions; recorded with its outputs.
fn recorded_run() -> Vec<u8> {
    let cfg = Config {
        max_concurrent: 2,
        idle_timeout: Some(ms(300)),
        retry: RetryPolicy { base: ms(20), jitter: true, ..RetryPolicy::default() },
        seed: 7,
        ..Config::default()
    };
    let buf = Buf::default();
    let mut s = Scene::new(cfg.clone());
    s.hub.record(Recorder::new(buf.clone(), &cfg, true));
    let player = s.peer(RequestPriority::High);
    let prefetch = s.peer(RequestPriority::Low);
    let seek = s.hub.new_group(player);
    for i in 0..4 {
        s.fetch(player, get(&format!("http://a.test/{}", 1000 + i)).group(seek), Sink::Memory);
        s.fetch(prefetch, get(&format!("http://b.test/{}", 3000 + i)), Sink::Memory);
    }
    let k = s.fetch(player, high("http://a.test/5000"), Sink::Memory);
    s.step(0, 0);
    s.step(0, 400);
    s.end(0, Err(NetError::Status { status: 503, retry_after: Some(ms(150)) }));
    s.command(Command::CancelGroup(seek));
    s.command(Command::SetPriority(s.id(k), RequestPriority::Low));
    s.advance(ms(100));
    s.step(0, 100);
    s.advance(ms(400)); // idle
    for _ in 0..40 {
        if s.workers.is_empty() {
            break;
        }
        s.step(0, 700);
        s.advance(ms(10));
    }
    s.command(Command::Shutdown);
    s.finish_all();
    drop(s); // flushes the recorder
    let out = buf.0.lock().expect("buffer").clone();
    out
}

#[test]
fn a_recorded_hub_run_replays_to_the_same_outputs() {
    let trace = recorded_run();
    let text = String::from_utf8(trace.clone()).expect("JSON lines");
    assert!(text.starts_with(&format!("{{\"weir_trace\":{FORMAT},")), "{}", &text[..80.min(text.len())]);
    for op in ["\"enqueue\"", "\"cancel_group\"", "\"failed\"", "\"timeout\"", "\"drain\"", "\"shutdown\""] {
        assert!(text.contains(op), "the trace holds {op}");
    }
    let replayed = replay(&trace[..]).expect("a trace replays");
    assert!(replayed.outputs.len() > 40, "the run did something: {} outputs", replayed.outputs.len());
    assert_eq!(replayed.first_divergence(), None);
    assert_eq!(replayed.outputs, replayed.recorded, "byte for byte, with the times");
    assert_eq!(replay(&trace[..]).expect("again"), replayed, "and again");
}

#[test]
fn a_diff_points_at_the_first_output_that_differs() {
    let text = String::from_utf8(recorded_run()).expect("JSON lines");
    // Change the recorded time of one timeout: the replay diverges there.
    let lines: Vec<&str> = text.lines().collect();
    let i = lines.iter().position(|l| l.contains("\"timeout\"") && !l.contains("\"at_ns\":0,")).expect("a timeout");
    let mut edited: Vec<String> = lines.iter().map(|l| (*l).to_owned()).collect();
    edited[i] = edited[i].replacen("\"at_ns\":", "\"at_ns\":1", 1);
    let replayed = replay(edited.join("\n").as_bytes()).expect("still a trace");
    let d = replayed.first_divergence().expect("a later timeout changes what happens");
    assert!(replayed.after_line[d] > i, "the divergence comes at or after the edited input (line {})", i + 1);
}

#[test]
fn bad_traces_are_refused_at_the_line_that_is_wrong() {
    let trace = String::from_utf8(recorded_run()).expect("JSON lines");
    let newer = trace.replacen(&format!("{{\"weir_trace\":{FORMAT},"), "{\"weir_trace\":99,", 1);
    let e = replay(newer.as_bytes()).unwrap_err();
    assert_eq!(e.line, 1);
    assert!(e.why.contains("format 99"), "{e}");
    assert_eq!(replay(&b""[..]).unwrap_err().line, 1);
    assert_eq!(replay(&b"{\"hello\":1}\n"[..]).unwrap_err().line, 1);
    let mut lines: Vec<&str> = trace.lines().collect();
    lines[3] = "{\"at_ns\":5,\"op\":{\"no_such_input\":{}}}";
    let e = replay(lines.join("\n").as_bytes()).unwrap_err();
    assert_eq!(e.line, 4, "{e}");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]
    #[test]
    fn a_cut_or_corrupted_trace_never_panics(cut in 0usize..100_000, flips in proptest::collection::vec((0usize..100_000, any::<u8>()), 0..4)) {
        let mut trace = TRACE.with(Clone::clone);
        trace.truncate(cut % (trace.len() + 1));
        for (at, b) in flips {
            if !trace.is_empty() {
                let n = trace.len();
                trace[at % n] = b;
            }
        }
        if let Err(e) = replay(&trace[..]) {
            prop_assert!(e.line >= 1 && !e.why.is_empty());
        }
    }
}

thread_local! {
    static TRACE: Vec<u8> = recorded_run();
}

/// A real run of `adapter` against the fault server, recorded with its
/// outputs into a file: a reset resumed, a 503, a stall ended by the idle
/// timeout and resumed, a seek cancelling a group, a priority change,
/// completions.
fn record_adapter_run(adapter: weir_tests::both::Adapter) -> Vec<u8> {
    use weir_tests::both::Adapter;
    let server = weir_tests::server::FaultServer::start();
    let path = std::env::temp_dir().join(format!("weir-trace-{}-{adapter:?}.jsonl", std::process::id()));
    let file = std::fs::File::create(&path).expect("a trace file");
    let record = Some(weir_http::trace::RecordTo::file(file, true));
    let cfg = Config {
        max_concurrent: 2,
        idle_timeout: Some(ms(300)),
        retry: RetryPolicy { base: ms(10), ..RetryPolicy::default() },
        ..Config::default()
    };
    let urls = ["/reset/20000/5000", "/status/503/1/0", "/stall/10000/2000", "/file/4000"].map(|p| server.url(p));
    let slow = server.url("/drip/40000/1000/20");
    match adapter {
        Adapter::Ureq => {
            let options = weir_ureq::Options { record, ..weir_ureq::Options::default() };
            let dl = weir_ureq::Downloader::try_new(cfg, options).expect("a downloader");
            let peer = dl.peer(RequestPriority::High);
            let seek = peer.new_group();
            let slow: Vec<_> =
                (0..2).map(|_| peer.fetch(get(&slow).group(seek), Sink::Memory).expect("accepted")).collect();
            let rest: Vec<_> = urls.iter().map(|u| peer.fetch(get(u), Sink::Memory).expect("accepted")).collect();
            rest[3].set_priority(RequestPriority::High);
            peer.cancel_group(seek);
            for d in rest {
                d.wait().expect("complete");
            }
            for d in slow {
                assert!(d.wait().is_err(), "cancelled by the seek");
            }
            drop(peer);
            drop(dl);
        }
        Adapter::Async => {
            let options = weir_async::Options { record, ..weir_async::Options::default() };
            let transport = Arc::new(weir_async::HyperTransport::new());
            let dl = weir_async::Downloader::try_spawn(cfg, transport, options).expect("a downloader");
            futures_lite::future::block_on(async {
                let peer = dl.peer(RequestPriority::High).await;
                let seek = peer.new_group().await;
                let mut slow_ds = Vec::new();
                for _ in 0..2 {
                    slow_ds.push(peer.fetch(get(&slow).group(seek), Sink::Memory).await.expect("accepted"));
                }
                let mut rest = Vec::new();
                for u in &urls {
                    rest.push(peer.fetch(get(u), Sink::Memory).await.expect("accepted"));
                }
                rest[3].set_priority(RequestPriority::High);
                peer.cancel_group(seek);
                for d in rest {
                    d.await.expect("complete");
                }
                for d in slow_ds {
                    assert!(d.await.is_err(), "cancelled by the seek");
                }
            });
            drop(dl);
        }
    }
    let trace = std::fs::read(&path).expect("the trace");
    let _ = std::fs::remove_file(&path);
    trace
}

#[test]
fn a_recorded_adapter_run_replays_to_the_same_outputs() {
    for adapter in weir_tests::both::ADAPTERS {
        let trace = record_adapter_run(adapter);
        let replayed = replay(&trace[..]).unwrap_or_else(|e| panic!("{adapter:?}: {e}"));
        assert!(replayed.outputs.len() > 30, "{adapter:?}: {} outputs", replayed.outputs.len());
        assert_eq!(replayed.first_divergence(), None, "{adapter:?}");
        assert_eq!(replayed.outputs, replayed.recorded, "{adapter:?}");
        let idle = replayed.outputs.iter().any(|(_, o)| {
            matches!(o, Output::Event(_, DownloaderEvent::RequestRetrying { error: NetError::Timeout, .. }))
        });
        assert!(idle, "{adapter:?}: the stall ended in an idle timeout and a retry");
        let text = String::from_utf8(trace).expect("JSON lines");
        for op in ["\"failed\"", "\"cancel_group\"", "\"set_priority\"", "\"complete\"", "\"timeout\""] {
            assert!(text.contains(op), "{adapter:?}: the trace holds {op}");
        }
    }
}
