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
    s.hub.record(Recorder::new(buf.clone(), &cfg, true).expect("a recorder"));
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
    assert!(replayed.first_divergence().is_some(), "a later timeout changes what happens");
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
