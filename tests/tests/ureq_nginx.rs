//! End to end against a real nginx on a random loopback port: many files,
//! range requests, HEAD, file sinks. `.ci/run` installs nginx when missing
//! (`apt-get install -y nginx`); this test starts its own with a config in a
//! temporary directory and stops it at the end, even when it fails.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use weir_tests::server::{content, fnv};
use weir_tests::*;
use weir_ureq::{Downloader, Sink};

struct Nginx {
    bin: &'static str,
    dir: PathBuf,
    conf: PathBuf,
    port: u16,
    child: Child,
}

impl Nginx {
    fn start(files: &[(String, Vec<u8>)]) -> Nginx {
        let dir = std::env::temp_dir().join(format!("weir-nginx-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("www")).unwrap();
        for (name, body) in files {
            std::fs::write(dir.join("www").join(name), body).unwrap();
        }
        // A free port: bind, read it, release it.
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let d = dir.display();
        let conf = dir.join("nginx.conf");
        std::fs::write(
            &conf,
            format!(
                "worker_processes 1;\ndaemon off;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\n\
                 events {{ worker_connections 256; }}\n\
                 http {{\n  access_log {d}/access.log;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n\
                 fastcgi_temp_path {d}/fcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n\
                 server {{ listen 127.0.0.1:{port}; root {d}/www; }}\n}}\n"
            ),
        )
        .unwrap();
        let bin = ["/usr/sbin/nginx", "/usr/bin/nginx", "nginx"]
            .into_iter()
            .find(|b| !b.contains('/') || Path::new(b).exists())
            .unwrap();
        let child = Command::new(bin)
            .arg("-c")
            .arg(&conf)
            .arg("-p")
            .arg(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nginx is installed (apt-get install -y nginx; .ci/run does this)");
        let n = Nginx { bin, dir, conf, port, child };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "nginx did not start; see {}/error.log", n.dir.display());
            std::thread::sleep(Duration::from_millis(20));
        }
        n
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}/{path}", self.port)
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ =
            Command::new(self.bin).arg("-c").arg(&self.conf).arg("-p").arg(&self.dir).arg("-s").arg("stop").status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

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
