//! End to end against a real nginx on a random loopback port: many files,
//! range requests, HEAD, file sinks. `.ci/run` installs nginx when missing
//! (`apt-get install -y nginx`); this test starts its own with a config in a
//! temporary directory and stops it at the end, even when it fails.
//! Opt-in: compiled only with `WEIR_NGINX=1` (see `tests/build.rs`).
#![cfg(weir_nginx)]

use weir_tests::nginx::Nginx;
use weir_tests::server::{content, fnv};
use weir_tests::*;
use weir_ureq::{Downloader, Sink};

#[test]
fn nginx_serves_many_files_ranges_and_head_through_weir() {
    let files: Vec<(String, Vec<u8>)> =
        (0..60u64).map(|i| (format!("f{i}.bin"), content(1000 + (i as usize * 7919) % 200_000, i))).collect();
    let nginx = Nginx::start(&files);
    let dl = Downloader::new(Config { max_concurrent: 4, max_per_host: Some(3), ..Config::default() });
    let peer = dl.peer(RequestPriority::Low);

    // Many files, mixed priorities, into memory and into files.
    let out = std::env::temp_dir().join(format!("weir-nginx-out-{}", std::process::id()));
    std::fs::create_dir_all(&out).unwrap();
    let downloads: Vec<_> = files
        .iter()
        .enumerate()
        .map(|(i, (name, _))| {
            let req = if i % 3 == 0 { high(&nginx.url(name)) } else { get(&nginx.url(name)) };
            let sink = if i % 2 == 0 { Sink::Memory } else { Sink::File(out.join(name)) };
            peer.fetch(req, sink).unwrap()
        })
        .collect();
    for (d, (name, body)) in downloads.into_iter().zip(&files) {
        let r = d.wait().unwrap_or_else(|e| panic!("{name}: {e}"));
        let got = match (&r.body, &r.path) {
            (Some(b), _) if r.path.is_none() => b.clone(),
            (_, Some(p)) => std::fs::read(p).unwrap(),
            _ => panic!("no body"),
        };
        assert_eq!(fnv(&got), fnv(body), "{name}");
    }

    // Ranges: a middle slice and an open tail.
    let (name, body) = &files[5];
    let r = peer.fetch(get(&nginx.url(name)).range(100, Some(599)), Sink::Memory).unwrap().wait().unwrap();
    assert_eq!((r.status, r.body.as_deref()), (206, Some(&body[100..600])));
    let tail = body.len() as u64 - 10;
    let r = peer.fetch(get(&nginx.url(name)).range(tail, None), Sink::Memory).unwrap().wait().unwrap();
    assert_eq!(r.body.as_deref(), Some(&body[body.len() - 10..]));

    // HEAD: status and length, no body.
    let r = peer.fetch(Request::head(url(&nginx.url(name))), Sink::Memory).unwrap().wait().unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-length"), Some(body.len().to_string().as_str()));
    assert_eq!(r.bytes, 0);
    assert!(r.header("etag").is_some(), "nginx sends an ETag, which resumes use for If-Range");

    // A missing file is a clear, non-retryable failure.
    let e = peer.execute(get(&nginx.url("missing.bin"))).unwrap_err();
    assert_eq!(e, weir_ureq::FetchError::Failed(NetError::Status { status: 404, retry_after: None }));
    std::fs::remove_dir_all(&out).unwrap();
}
