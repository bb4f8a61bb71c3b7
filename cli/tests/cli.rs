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
    let dir = tempdir("demo");
    let trace = dir.join("demo.trace");
    let out = weir(&["demo", "--record", trace.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let replayed = weir(&["replay", "--diff", trace.to_str().unwrap()]);
    assert!(text(&replayed.stdout).starts_with("identical: "), "{}{}", text(&replayed.stdout), text(&replayed.stderr));
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

fn get_in(dir: &Path, extra: &[&str], urls: &[String]) -> Output {
    let mut args = vec!["get", "-o", dir.to_str().unwrap()];
    args.extend_from_slice(extra);
    args.extend(urls.iter().map(String::as_str));
    weir(&args)
}

#[test]
fn get_resumes_a_partial_file_of_an_earlier_run_with_if_range() {
    let server = FaultServer::start();
    let dir = tempdir("resume");
    let url = server.url("/stall/100000/40000");
    // Run 1 stalls after 40 000 bytes and gives up.
    let out = get_in(&dir, &["--timeout", "0.3", "--retries", "0"], std::slice::from_ref(&url));
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    // The file is named after the URL's last segment.
    assert_eq!(std::fs::read(dir.join("40000.part")).unwrap(), content(100_000, 100_000)[..40_000]);
    // Run 2 continues where it stopped, guarded by the validator.
    let out = get_in(&dir, &[], &[url]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(std::fs::read(dir.join("40000")).unwrap() == content(100_000, 100_000));
    assert!(!dir.join("40000.part").exists() && !dir.join("40000.part.meta").exists());
    let last = server.seen().pop().unwrap();
    assert_eq!((last.range.as_deref(), last.if_range.as_deref()), (Some("bytes=40000-"), Some("\"v1-100000\"")));
    assert!(text(&out.stdout).contains("(100000 bytes)"), "saved reports the file's size: {}", text(&out.stdout));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn get_never_splices_a_file_that_changed_between_runs() {
    let server = FaultServer::start();
    let dir = tempdir("changed");
    let url = server.url("/etag/60000/20000");
    let out = get_in(&dir, &["--retries", "0"], std::slice::from_ref(&url));
    assert_eq!(out.status.code(), Some(1), "run 1 is cut short: {}", text(&out.stderr));
    let out = get_in(&dir, &[], &[url]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(std::fs::read(dir.join("20000")).unwrap() == content(60_000, 2), "exactly version 2");
    // Within one run: the retry meets version 2 and starts over instead of failing.
    let once = tempdir("changed-once");
    let out = get_in(&once, &[], &[server.url("/etag/60000/30000")]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(std::fs::read(once.join("30000")).unwrap() == content(60_000, 2), "exactly version 2");
    std::fs::remove_dir_all(&once).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn get_restarts_an_unverifiable_partial_file_and_finishes_a_complete_one() {
    let server = FaultServer::start();
    let dir = tempdir("partials");
    let body = content(100_000, 100_000);
    // A bare .part with no record of its version: fetched again from zero.
    std::fs::write(dir.join("100000.part"), &body[..40_000]).unwrap();
    let out = get_in(&dir, &[], &[server.url("/file/100000")]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(std::fs::read(dir.join("100000")).unwrap() == body);
    assert_eq!(server.seen()[0].range, None, "no resume of bytes nothing vouches for");
    // A .part already holding the whole file (stopped before the rename): finished.
    let url = server.url("/stall/50000/50000");
    let _ = server.hits("/stall/50000/50000");
    let out = get_in(&dir, &["--timeout", "0.3", "--retries", "0"], std::slice::from_ref(&url));
    assert_eq!(out.status.code(), Some(0), "all bytes arrived before the stall: {}", text(&out.stderr));
    std::fs::rename(dir.join("50000"), dir.join("50000.part")).unwrap();
    std::fs::write(dir.join("50000.part.meta"), "weir-partial 1\nvalidator=\"v1-50000\"\ntotal=50000\n").unwrap();
    let out = get_in(&dir, &[], &[url]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(std::fs::read(dir.join("50000")).unwrap() == content(50_000, 50_000));
    assert_eq!(server.seen().pop().unwrap().range.as_deref(), Some("bytes=50000-"), "answered 416, and done");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn get_never_writes_through_a_planted_symlink() {
    let server = FaultServer::start();
    let dir = tempdir("symlink");
    let victim = dir.join("victim");
    std::fs::write(&victim, b"precious").unwrap();
    std::os::unix::fs::symlink(&victim, dir.join("1000.part")).unwrap();
    std::os::unix::fs::symlink(dir.join("nowhere"), dir.join("2000.part")).unwrap();
    let out = get_in(&dir, &[], &[server.url("/file/1000"), server.url("/file/2000")]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("symlink"), "{}", text(&out.stderr));
    assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
    assert!(!dir.join("nowhere").exists() && !dir.join("1000").exists() && !dir.join("2000").exists());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn get_gives_distinct_files_to_names_that_collide_with_partial_files() {
    let server = FaultServer::start();
    let dir = tempdir("collide");
    let out =
        get_in(&dir, &[], &[server.url("/named/300/x.part"), server.url("/named/400/x"), server.url("/named/500/x")]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let mut sizes: Vec<u64> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().metadata().unwrap().len()).collect();
    sizes.sort_unstable();
    assert_eq!(sizes, [300, 400, 500], "three files, none overwritten by another");
    // A refused URL leaves nothing behind.
    let out = get_in(&dir, &[], &["ftp://127.0.0.1/nothing".to_owned()]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 3, "no .part for a refused URL");
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
fn numeric_flags_out_of_range_are_refused_clearly_never_a_panic_or_a_hang() {
    for args in [
        ["--timeout", "inf"],
        ["--timeout", "NaN"],
        ["--timeout", "1e-12"],
        ["--timeout", "-1"],
        ["--timeout", "1e300"],
        ["--max-concurrent", "100000"],
        ["--max-concurrent", "18446744073709551615"],
        ["--max-concurrent", "-3"],
        ["--per-host", "0"],
        ["--retries", "99999999999"],
    ] {
        let started = std::time::Instant::now();
        let out = weir(&["get", args[0], args[1], "http://127.0.0.1:9/x"]);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(args[0]) || err.contains("invalid value"), "{args:?} names the flag: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert!(started.elapsed() < std::time::Duration::from_secs(10), "{args:?} returned at once");
    }
    // 0 is documented: no idle timeout (never silently 30 s).
    let server = FaultServer::start();
    let dir = tempdir("timeout0");
    let out = get_in(&dir, &["--timeout", "0"], &[server.url("/file/10")]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let help = text(&weir(&["get", "--help"]).stdout);
    assert!(help.contains("0 waits forever"), "{help}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn head_shows_status_size_and_headers() {
    let server = FaultServer::start();
    let out = weir(&["head", &server.url("/file/4321")]);
    assert!(out.status.success());
    let s = text(&out.stdout);
    assert!(s.contains("status: 200") && s.contains("size:   4321") && s.to_lowercase().contains("etag"), "{s}");
    // Header values never reach the terminal raw: C1 controls and bidi overrides are escaped.
    let out = weir(&["head", &server.url("/evilheader")]);
    let s = text(&out.stdout);
    assert!(s.contains("\\u{9b}") && s.contains("\\u{202e}"), "{s}");
    assert!(!s.contains('\u{9b}') && !s.contains('\u{202e}'), "{s}");
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

#[test]
fn get_sends_headers_and_a_user_agent_and_refuses_bad_ones() {
    let server = FaultServer::start();
    let dir = tempdir("headers");
    let out = get_in(&dir, &["-H", "Authorization: Bearer t0k", "--header", "Accept: */*"], &[server.url("/file/10")]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let seen = server.seen().pop().unwrap().headers;
    assert_eq!(seen.get("authorization").map(String::as_str), Some("Bearer t0k"));
    assert_eq!(seen.get("accept").map(String::as_str), Some("*/*"));
    assert!(seen.get("user-agent").is_some_and(|ua| ua.starts_with("weir/")), "{seen:?}");
    let out = get_in(&dir, &["--user-agent", "tester/1"], &[server.url("/file/11")]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(server.seen().pop().unwrap().headers.get("user-agent").map(String::as_str), Some("tester/1"));
    for bad in ["no colon", "Bad Name: x", "Range: bytes=0-"] {
        let out = get_in(&dir, &["-H", bad], &[server.url("/file/12")]);
        assert_eq!(out.status.code(), Some(2), "{bad}: {}", text(&out.stderr));
        assert!(text(&out.stderr).contains("--header"), "{bad}: {}", text(&out.stderr));
    }
    assert_eq!(server.hits("/file/12"), 0, "refused before any request");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_second_run_leaves_a_partial_file_another_run_is_writing_alone() {
    let server = FaultServer::start();
    let dir = tempdir("locked");
    let url = server.url("/drip/200000/10000/20"); // 20 chunks, 20 ms apart; saved as "20"
    let mut first = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["get", "-q", "-o", dir.to_str().unwrap(), &url])
        .spawn()
        .expect("run weir");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::fs::metadata(dir.join("20.part")).map_or(true, |m| m.len() == 0) {
        assert!(std::time::Instant::now() < deadline, "the first run started writing");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let second = get_in(&dir, &[], std::slice::from_ref(&url));
    assert_eq!(second.status.code(), Some(1), "{}", text(&second.stderr));
    assert!(text(&second.stderr).contains("another download"), "{}", text(&second.stderr));
    assert!(first.wait().expect("first run ends").success());
    assert!(std::fs::read(dir.join("20")).unwrap() == content(200_000, 200_000), "the first run's file is whole");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn max_time_https_only_and_no_clobber_do_what_they_say() {
    let server = FaultServer::start();
    let dir = tempdir("flags");
    // Bytes flow all along (no idle timeout), but the attempt runs too long.
    let started = std::time::Instant::now();
    let out = get_in(&dir, &["--max-time", "0.3", "--retries", "0"], &[server.url("/drip/100000/1000/20")]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("timed out"), "{}", text(&out.stderr));
    assert!(started.elapsed() < std::time::Duration::from_millis(1500), "cut at 0.3 s, not after 2 s");

    let out = get_in(&dir, &["--https-only"], &[server.url("/file/10")]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("https"), "{}", text(&out.stderr));
    assert_eq!(server.hits("/file/10"), 0, "refused before any request");

    std::fs::write(dir.join("11"), b"mine").unwrap();
    let out = get_in(&dir, &["--no-clobber"], &[server.url("/file/11")]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("exists, skipped"), "{}", text(&out.stdout));
    assert_eq!(std::fs::read(dir.join("11")).unwrap(), b"mine");
    assert_eq!(server.hits("/file/11"), 0);
    let out = get_in(&dir, &[], &[server.url("/file/11")]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(std::fs::read(dir.join("11")).unwrap(), content(11, 11), "replaced without --no-clobber");
    // --no-fsync changes when bytes reach the disk, not which bytes: a
    // resumed file is still exact.
    let out = get_in(&dir, &["--no-fsync", "--timeout", "0.3", "--retries", "1"], &[server.url("/stall/90000/30000")]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(std::fs::read(dir.join("30000")).unwrap(), content(90_000, 90_000));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn checksums_from_the_flag_and_the_list_are_checked_and_a_mismatch_leaves_nothing() {
    use sha2::Digest;
    let hex = |b: &[u8]| sha2::Sha256::digest(b).iter().map(|x| format!("{x:02x}")).collect::<String>();
    let server = FaultServer::start();
    let dir = tempdir("checksum");
    let good = format!("sha256={}", hex(&content(5000, 5000)));
    let out = get_in(&dir, &["--checksum", &good], &[server.url("/file/5000")]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let bad = format!("sha256={}", hex(b"not it"));
    let out = get_in(&dir, &["--checksum", &bad], &[server.url("/named/6000/six.bin")]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("integrity check failed"), "{}", text(&out.stderr));
    assert!(!dir.join("six.bin").exists() && !dir.join("six.bin.part").exists(), "nothing left of a wrong file");
    // In a list: per line.
    let list = dir.join("list.txt");
    std::fs::write(
        &list,
        format!(
            "{} sha256={}\n{} {bad}\n{}\n",
            server.url("/named/7000/seven.bin"),
            hex(&content(7000, 7000)),
            server.url("/named/8000/eight.bin"),
            server.url("/named/9000/nine.bin"),
        ),
    )
    .unwrap();
    let out = get_in(&dir, &["-i", list.to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(dir.join("seven.bin").exists() && dir.join("nine.bin").exists() && !dir.join("eight.bin").exists());
    // Usage errors: a malformed checksum, or --checksum for many URLs.
    assert_eq!(get_in(&dir, &["--checksum", "md5=abc"], &[server.url("/file/1")]).status.code(), Some(2));
    let two = [server.url("/file/1"), server.url("/file/2")];
    assert_eq!(get_in(&dir, &["--checksum", &good], &two).status.code(), Some(2));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn mirrors_from_the_flag_and_the_list_take_over_and_a_deadline_ends_a_download() {
    use sha2::Digest;
    let hex = |b: &[u8]| sha2::Sha256::digest(b).iter().map(|x| format!("{x:02x}")).collect::<String>();
    let (a, b) = (FaultServer::start_on("127.0.0.1"), FaultServer::start_on("127.0.0.2"));
    let dir = tempdir("mirror");
    // The first server has no such file (404); the mirror has it.
    let out = get_in(&dir, &["--mirror", &b.url("/named/5000/pkg.tar")], &[a.url("/gone/pkg.tar")]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(std::fs::read(dir.join("pkg.tar")).unwrap(), content(5000, 5000));
    assert_eq!((a.hits("/gone/pkg.tar"), b.hits("/named/5000/pkg.tar")), (1, 1));
    // In a list: URL MIRROR... sha256=HEX.
    let list = dir.join("list.txt");
    let line = format!(
        "{} {} {} sha256={}\n",
        a.url("/gone/lib.so"),
        a.url("/gone/again/lib.so"),
        b.url("/named/7000/lib.so"),
        hex(&content(7000, 7000))
    );
    std::fs::write(&list, line).unwrap();
    let out = get_in(&dir, &["-i", list.to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(std::fs::read(dir.join("lib.so")).unwrap(), content(7000, 7000));
    // Usage: --mirror with two URLs; a bad mirror URL fails that download.
    let two = [a.url("/file/1"), a.url("/file/2")];
    assert_eq!(get_in(&dir, &["--mirror", &b.url("/file/1")], &two).status.code(), Some(2));
    let out = get_in(&dir, &["--mirror", "not a url"], &[a.url("/gone/x")]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("invalid mirror URL"), "{}", text(&out.stderr));
    // A deadline for the whole download, retries included: the stall would
    // last 10 s, the idle timeout is off.
    let started = std::time::Instant::now();
    let out = get_in(&dir, &["--deadline", "0.4", "--timeout", "0", "--retries", "5"], &[a.url("/stall/100000/1000")]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("timed out"), "{}", text(&out.stderr));
    assert!(started.elapsed() < std::time::Duration::from_secs(3), "ended at 0.4 s, not after the 10 s stall");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_run_recorded_by_get_replays_identically_and_a_broken_trace_is_refused() {
    let server = FaultServer::start();
    let dir = tempdir("record");
    let trace = dir.join("run.trace");
    let urls: Vec<String> =
        ["/file/3000", "/reset/20000/5000", "/status/503/1/0"].iter().map(|p| server.url(p)).collect();
    let out = get_in(&dir, &["-q", "--record", trace.to_str().unwrap()], &urls);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = weir(&["replay", "--diff", trace.to_str().unwrap()]);
    assert!(out.status.success(), "{}{}", text(&out.stdout), text(&out.stderr));
    assert!(text(&out.stdout).starts_with("identical: "), "{}", text(&out.stdout));
    let out = weir(&["replay", trace.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let lines = text(&out.stdout);
    assert!(lines.lines().count() > 10 && lines.lines().all(|l| serde_json::from_str::<serde_json::Value>(l).is_ok()));
    let summary = text(&out.stderr);
    assert!(summary.contains("completed") && summary.contains("peer#"), "a summary per peer: {summary}");
    // Cut in the middle of a line: refused, naming the line.
    let bytes = std::fs::read(&trace).unwrap();
    let cut = dir.join("cut.trace");
    let at = bytes.iter().enumerate().filter(|(_, b)| **b == b'\n').nth(4).map(|(i, _)| i).unwrap();
    std::fs::write(&cut, &bytes[..at - 3]).unwrap();
    let out = weir(&["replay", cut.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("trace line 5"), "{}", text(&out.stderr));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `-x/--proxy` sends every request through that CONNECT proxy; without
/// it `HTTP_PROXY` from the environment does, unless `--no-proxy`; a
/// proxy URL that does not parse is a usage error.
#[test]
fn get_goes_through_the_proxy_it_is_told_or_the_environment_names() {
    use weir_tests::proxy::ConnectProxy;
    let server = FaultServer::start();
    let url = server.url("/named/2000/p.bin");
    let proxy_url = |p: &ConnectProxy| format!("http://127.0.0.3:{}", p.port);

    let dir = tempdir("proxy-flag");
    let proxy = ConnectProxy::start();
    let out = weir(&["get", "-q", "-x", &proxy_url(&proxy), "-o", dir.to_str().unwrap(), &url]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(std::fs::read(dir.join("p.bin")).unwrap(), content(2000, 2000));
    assert_eq!(proxy.targets(), vec![server.addr().to_string()], "through the proxy");

    let dir = tempdir("proxy-env");
    let proxy = ConnectProxy::start();
    let env_get = |extra: &[&str]| {
        let mut args = vec!["get", "-q", "-o", dir.to_str().unwrap()];
        args.extend_from_slice(extra);
        args.push(&url);
        Command::new(env!("CARGO_BIN_EXE_weir"))
            .args(&args)
            .env("HTTP_PROXY", proxy_url(&proxy))
            .env_remove("NO_PROXY")
            .env_remove("no_proxy")
            .output()
            .expect("run weir")
    };
    let out = env_get(&[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(proxy.targets().len(), 1, "HTTP_PROXY is used");
    let out = env_get(&["--no-proxy"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(proxy.targets().len(), 1, "--no-proxy connects directly");
    assert_eq!(server.hits("/named/2000/p.bin"), 3);

    let out = weir(&["get", "-x", "http://[bad", &url]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("--proxy"), "{}", text(&out.stderr));
}

#[test]
fn a_list_far_longer_than_the_open_file_limit_is_fetched_whole() {
    let server = FaultServer::start();
    let dir = tempdir("fds");
    let list = dir.join("urls.txt");
    let urls: Vec<String> = (1..=1000).map(|k| server.url(&format!("/named/{}/f{k}", 100 + k))).collect();
    std::fs::write(&list, urls.join("\n")).unwrap();
    let out_dir = dir.join("out");
    // 600 open files at most: a run that opened a file per URL up front,
    // or kept every completed file open until a late sync (more than twice
    // weir_http::MOST_FILES_WAITING), would fail.
    let out = Command::new("sh")
        .args(["-c", "ulimit -n 600 && exec \"$0\" \"$@\"", env!("CARGO_BIN_EXE_weir")])
        .args(["get", "-q", "--max-concurrent", "16", "-i", list.to_str().unwrap(), "-o", out_dir.to_str().unwrap()])
        .output()
        .expect("run weir under sh");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    for k in [1usize, 500, 1000] {
        assert_eq!(std::fs::read(out_dir.join(format!("f{k}"))).unwrap(), content(100 + k, 100 + k as u64));
    }
    assert_eq!(std::fs::read_dir(&out_dir).unwrap().count(), 1000, "every file, and nothing else");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn names_are_cut_by_bytes_and_keep_no_control_or_bidi_character() {
    let server = FaultServer::start();
    let dir = tempdir("names");
    // 200 three-byte characters (600 bytes) and a right-to-left override.
    let long = server.url(&format!("/named/50/{}", "%E2%82%AC".repeat(200)));
    let bidi = server.url("/named/60/evil%E2%80%AEgnp.exe");
    let out = get_in(&dir, &["-q"], &[long, bidi]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    // 243 bytes: `NAME.part.meta` (10 bytes more) still fits in 255.
    let cut = "\u{20AC}".repeat(81);
    assert_eq!(std::fs::read(dir.join(&cut)).unwrap(), content(50, 50));
    assert_eq!(std::fs::read(dir.join("evil_gnp.exe")).unwrap(), content(60, 60));
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 2, "those two files only");
    std::fs::remove_dir_all(&dir).unwrap();
}
