//! A real nginx for end-to-end tests and benchmarks. `.ci/run` installs
//! the Debian package when it is missing.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A real nginx serving `files` from a temporary directory on a free
/// loopback port; stopped (and the directory removed) on drop.
pub struct Nginx {
    bin: &'static str,
    dir: PathBuf,
    conf: PathBuf,
    port: u16,
    child: Child,
}

impl Nginx {
    /// Start nginx serving `files` (name, body).
    ///
    /// # Panics
    /// When nginx is not installed or does not come up within 10 s.
    #[must_use]
    pub fn start(files: &[(String, Vec<u8>)]) -> Nginx {
        Self::start_with(files, "")
    }

    /// Start nginx with extra directives in its `server` block (e.g. `limit_rate 20k;`).
    ///
    /// # Panics
    /// As [`Nginx::start`].
    #[must_use]
    pub fn start_with(files: &[(String, Vec<u8>)], server_extra: &str) -> Nginx {
        Self::start_full(files, "", server_extra, None)
    }

    /// Start nginx serving HTTPS with this certificate and key (PEM).
    ///
    /// # Panics
    /// As [`Nginx::start`].
    #[must_use]
    pub fn start_tls(files: &[(String, Vec<u8>)], cert_pem: &str, key_pem: &str) -> Nginx {
        Self::start_full(
            files,
            " ssl",
            "ssl_certificate cert.pem; ssl_certificate_key key.pem;",
            Some((cert_pem, key_pem)),
        )
    }

    /// Start nginx serving HTTPS and HTTP/2 (`listen ... ssl http2`; ALPN
    /// picks `h2` for a client that offers it) with this certificate and key.
    ///
    /// # Panics
    /// As [`Nginx::start`].
    #[must_use]
    pub fn start_h2(files: &[(String, Vec<u8>)], cert_pem: &str, key_pem: &str) -> Nginx {
        Self::start_full(
            files,
            " ssl http2",
            "ssl_certificate cert.pem; ssl_certificate_key key.pem;",
            Some((cert_pem, key_pem)),
        )
    }

    /// The access log so far, a line per request: the connection's serial
    /// number, the protocol, the status and the URI (e.g.
    /// `3 HTTP/2.0 200 /a.bin`). nginx writes each line when the request
    /// ends.
    #[must_use]
    pub fn access_log(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.join("access.log")).unwrap_or_default().lines().map(str::to_owned).collect()
    }

    fn start_full(
        files: &[(String, Vec<u8>)],
        listen_extra: &str,
        server_extra: &str,
        tls: Option<(&str, &str)>,
    ) -> Nginx {
        let dir = std::env::temp_dir().join(format!("weir-nginx-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("www")).unwrap();
        for (name, body) in files {
            std::fs::write(dir.join("www").join(name), body).unwrap();
        }
        if let Some((cert, key)) = tls {
            std::fs::write(dir.join("cert.pem"), cert).unwrap();
            std::fs::write(dir.join("key.pem"), key).unwrap();
        }
        // A free port: bind, read it, release it.
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let d = dir.display();
        let conf = dir.join("nginx.conf");
        std::fs::write(
            &conf,
            format!(
                "worker_processes 1;\ndaemon off;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\n\
                 events {{ worker_connections 4096; }}\n\
                 http {{\n  log_format weir '$connection $server_protocol $status $request_uri';\n  access_log {d}/access.log weir;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n\
                 fastcgi_temp_path {d}/fcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n\
                 server {{ listen 127.0.0.1:{port}{listen_extra} backlog=4096; root {d}/www; {server_extra} }}\n}}\n"
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

    /// `http://127.0.0.1:port/{path}`.
    #[must_use]
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}/{path}", self.port)
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = Command::new(self.bin)
            .arg("-c")
            .arg(&self.conf)
            .arg("-p")
            .arg(&self.dir)
            .arg("-s")
            .arg("stop")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
