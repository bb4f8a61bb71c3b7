//! The `weir` binary run as a process against the loopback test server.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use weir_tests::server::{content, FaultServer};

fn weir(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_weir")).args(args).output().expect("run weir")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn tempdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("weir-cli-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn demo_runs_and_prints_the_summary() {
    let out = weir(&["demo"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let s = text(&out.stdout);
    assert!(s.contains("weir demo finished"), "{s}");
    for word in ["peer", "wait p50", "player", "background", "High", "Low"] {
        assert!(s.contains(word), "summary lacks {word}: {s}");
    }
    // The seek cancelled prefetches: the player's Low row has cancellations.
    let player_low = s.lines().find(|l| l.starts_with("player") && l.contains(" Low ")).expect("a player Low row");
    let cancelled: u32 = player_low.split_whitespace().nth(5).unwrap().parse().unwrap();
    assert!(cancelled > 0, "{player_low}");
}

#[test]
fn demo_events_are_json_lines() {
    let out = weir(&["demo", "--events"]);
    assert!(out.status.success());
    let s = text(&out.stdout);
    let lines: Vec<_> = s.lines().collect();
    assert!(lines.len() > 40, "{} lines", lines.len());
    let mut kinds = std::collections::BTreeSet::new();
    for l in &lines {
        let v: serde_json::Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"));
        assert!(v["peer"].is_string() && v["request_id"].is_u64(), "{l}");
        // The rest of the line is exactly the library's serialization of the event.
        let mut event = v.clone();
        event.as_object_mut().unwrap().remove("peer");
        let parsed: weir::DownloaderEvent = serde_json::from_value(event).unwrap_or_else(|e| panic!("{e}: {l}"));
        assert_eq!(parsed.request_id().get(), v["request_id"].as_u64().unwrap());
        kinds.insert(v["event"].as_str().unwrap().to_owned());
    }
    for kind in [
        "request_enqueued",
        "request_started",
        "first_byte",
        "request_completed",
        "request_cancelled",
        "request_retrying",
        "priority_changed",
    ] {
        assert!(kinds.contains(kind), "no {kind} event in {kinds:?}");
    }
}

#[test]
fn get_downloads_byte_exact_files_and_lists_failures() {
    let server = FaultServer::start();
    let dir = tempdir("get");
    let d = dir.to_str().unwrap();
    let out = weir(&["get", "-o", d, &server.url("/file/70000"), &server.url("/named/1234/data.bin")]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(std::fs::read(dir.join("70000")).unwrap(), content(70_000, 70_000));
    assert_eq!(std::fs::read(dir.join("data.bin")).unwrap(), content(1234, 1234));
    assert!(text(&out.stdout).contains("saved"), "plain lines when not a terminal");

    let missing = server.url("/nothing/here.txt");
    let out = weir(&["get", "-q", "-o", d, &missing, &server.url("/file/10")]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains(&format!("failed: {missing}")) && err.contains("404"), "{err}");
    assert!(!dir.join("here.txt").exists() && !dir.join("here.txt.part").exists());
    assert!(dir.join("10").exists(), "the good download still completed");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn get_refuses_path_traversal() {
    let server = FaultServer::start();
    let root = tempdir("traversal");
    let dir = root.join("a").join("b");
    std::fs::create_dir_all(&dir).unwrap();
    let out = weir(&["get", "-o", dir.to_str().unwrap(), &server.url("/named/50/..%2F..%2Fevil.txt")]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(!root.join("evil.txt").exists(), "escaped the output directory");
    let names: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names, vec![std::ffi::OsString::from("_.._evil.txt")]);
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn get_resumes_a_partial_file_from_an_earlier_run() {
    let server = FaultServer::start();
    let dir = tempdir("resume");
    let body = content(100_000, 100_000);
    std::fs::write(dir.join("100000.part"), &body[..40_000]).unwrap();
    let out = weir(&["get", "-o", dir.to_str().unwrap(), &server.url("/file/100000")]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(std::fs::read(dir.join("100000")).unwrap(), body);
    assert!(!dir.join("100000.part").exists());
    assert_eq!(server.seen()[0].range.as_deref(), Some("bytes=40000-"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn get_reads_urls_from_a_file_and_stdin() {
    let server = FaultServer::start();
    let dir = tempdir("list");
    let list = dir.join("urls.txt");
    std::fs::write(&list, format!("# a comment\n{}\n\n{}\n", server.url("/file/11"), server.url("/file/12"))).unwrap();
    let out_dir = dir.join("out");
    let out = weir(&["get", "-q", "-i", list.to_str().unwrap(), "-o", out_dir.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(out_dir.join("11").exists() && out_dir.join("12").exists());

    let mut child = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["get", "-q", "-i", "-", "-o", out_dir.to_str().unwrap()])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    writeln!(child.stdin.take().unwrap(), "{}", server.url("/file/13")).unwrap();
    assert!(child.wait().unwrap().success());
    assert_eq!(std::fs::read(out_dir.join("13")).unwrap(), content(13, 13));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn usage_errors_exit_2() {
    assert_eq!(weir(&[]).status.code(), Some(2));
    assert_eq!(weir(&["bogus"]).status.code(), Some(2));
    assert_eq!(weir(&["get"]).status.code(), Some(2), "no URL");
    assert_eq!(weir(&["get", "--max-concurrent", "x", "http://127.0.0.1/"]).status.code(), Some(2));
    assert_eq!(weir(&["get", "--max-concurrent", "0", "http://127.0.0.1/"]).status.code(), Some(2));
    assert_eq!(weir(&["get", "-i", "/nonexistent/list"]).status.code(), Some(2));
    assert!(weir(&["--help"]).status.success());
}

#[test]
fn head_shows_status_size_and_headers() {
    let server = FaultServer::start();
    let out = weir(&["head", &server.url("/file/4321")]);
    assert!(out.status.success());
    let s = text(&out.stdout);
    assert!(s.contains("status: 200") && s.contains("size:   4321") && s.to_lowercase().contains("etag"), "{s}");
    let out = weir(&["head", &server.url("/nope")]);
    assert_eq!(out.status.code(), Some(1));
    let _ = Path::new("");
}

#[test]
fn a_closed_stdout_pipe_is_not_a_panic() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    let mut child = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["demo", "--events"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run weir");
    let mut first = String::new();
    BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut first).expect("one line");
    assert!(first.starts_with('{'), "{first}");
    // The reader is gone: every later line hits a closed pipe (like `| head -1`).
    let out = child.wait_with_output().expect("weir ends");
    assert!(out.status.success(), "{:?}: {}", out.status, text(&out.stderr));
    assert!(!text(&out.stderr).contains("panicked"), "{}", text(&out.stderr));
}
