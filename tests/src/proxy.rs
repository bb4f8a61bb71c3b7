//! A loopback HTTP CONNECT proxy that records its tunnels, for testing
//! that downloads go through a configured proxy.

use std::io::{BufRead, BufReader, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

/// One tunnel asked for: its target and `Proxy-Authorization`.
type Asked = (String, Option<String>);

/// A CONNECT proxy on 127.0.0.3 that tunnels to loopback targets only and
/// records each target. Dropping it stops its threads.
pub struct ConnectProxy {
    /// Its port.
    pub port: u16,
    targets: Arc<Mutex<Vec<Asked>>>,
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
}

impl ConnectProxy {
    /// Start it on a free port of 127.0.0.3.
    ///
    /// # Panics
    /// When binding fails.
    #[must_use]
    pub fn start() -> Self {
        let listener = TcpListener::bind(("127.0.0.3", 0)).expect("bind a loopback port");
        listener.set_nonblocking(true).expect("nonblocking");
        let port = listener.local_addr().expect("addr").port();
        let targets = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (t, s) = (Arc::clone(&targets), Arc::clone(&stop));
        let accept = std::thread::spawn(move || {
            // Bounded: at most 10 s of waiting for clients, then it stops by itself.
            for _ in 0..5000 {
                if s.load(Ordering::SeqCst) {
                    return;
                }
                match listener.accept() {
                    Ok((client, _)) => {
                        let t = Arc::clone(&t);
                        std::thread::spawn(move || tunnel(client, &t));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(2)),
                }
            }
        });
        ConnectProxy { port, targets, stop, accept: Some(accept) }
    }

    /// The `CONNECT` targets asked for so far, in order.
    #[must_use]
    pub fn targets(&self) -> Vec<String> {
        self.targets.lock().unwrap_or_else(PoisonError::into_inner).iter().map(|(t, _)| t.clone()).collect()
    }

    /// The `Proxy-Authorization` of each tunnel asked for so far, in order.
    #[must_use]
    pub fn credentials(&self) -> Vec<Option<String>> {
        self.targets.lock().unwrap_or_else(PoisonError::into_inner).iter().map(|(_, a)| a.clone()).collect()
    }
}

impl Drop for ConnectProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(a) = self.accept.take() {
            let _ = a.join();
        }
    }
}

/// Read `CONNECT host:port`, open the tunnel (loopback only), pump bytes
/// both ways until either side closes (reads time out after 5 s).
fn tunnel(client: TcpStream, targets: &Mutex<Vec<Asked>>) {
    client.set_nonblocking(false).expect("blocking");
    client.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
    let mut head = BufReader::new(client.try_clone().expect("clone"));
    let mut line = String::new();
    if head.read_line(&mut line).is_err() {
        return;
    }
    let target = match line.split_whitespace().collect::<Vec<_>>()[..] {
        ["CONNECT", target, _] => target.to_owned(),
        _ => return,
    };
    // The rest of the head, bounded.
    let mut auth = None;
    for _ in 0..100 {
        let mut l = String::new();
        if head.read_line(&mut l).map_or(true, |n| n == 0) || l == "\r\n" {
            break;
        }
        if let Some((name, value)) = l.split_once(':') {
            if name.eq_ignore_ascii_case("proxy-authorization") {
                auth = Some(value.trim().to_owned());
            }
        }
    }
    targets.lock().unwrap_or_else(PoisonError::into_inner).push((target.clone(), auth));
    let addr: std::net::SocketAddr = target.parse().expect("an IP:port target");
    assert!(addr.ip().is_loopback(), "the proxy tunnels to loopback only");
    let Ok(server) = TcpStream::connect(addr) else { return };
    server.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
    let mut client = client;
    if client.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n").is_err() {
        return;
    }
    let (mut c_read, mut s_write) = (head, server.try_clone().expect("clone"));
    let up = std::thread::spawn(move || {
        let _ = std::io::copy(&mut c_read, &mut s_write);
        let _ = s_write.shutdown(Shutdown::Write);
    });
    let mut s_read = server;
    let _ = std::io::copy(&mut s_read, &mut client);
    let _ = client.shutdown(Shutdown::Both);
    let _ = up.join();
}
