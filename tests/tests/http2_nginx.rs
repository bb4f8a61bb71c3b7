//! weir-async speaks HTTP/2 where TLS negotiates it: many concurrent
//! small downloads go as streams of one connection, counted by nginx
//! (`listen ... ssl http2`; its access log names each request's
//! connection and protocol). weir-ureq speaks HTTP/1.1 only (ureq 3 has
//! no HTTP/2), so this is weir-async's. Opt-in: compiled only with
//! `WEIR_NGINX=1` (see `tests/build.rs`).
#![cfg(weir_nginx)]

use std::collections::BTreeSet;
use std::sync::Arc;

use futures_lite::future;
use weir_async::rustls::pki_types::{pem::PemObject, CertificateDer};
use weir_async::{rustls::RootCertStore, Downloader, HyperTransport, Sink};
use weir_tests::nginx::Nginx;
use weir_tests::server::content;
use weir_tests::*;

const FILES: usize = 200;

/// Fetch every file at once (32 running) over `transport`; the bodies in order.
fn fetch_all(nginx: &Nginx, transport: HyperTransport) -> Vec<Vec<u8>> {
    let config = Config { max_concurrent: 32, ..Config::default() };
    let (dl, driver) = Downloader::with_transport(config, Arc::new(transport)).expect("a downloader");
    async_io::block_on(future::or(
        async {
            let peer = dl.peer(RequestPriority::High).await;
            let items = (0..FILES)
                .map(|i| (get(&nginx.url(&format!("f{i}.bin")).replacen("http://", "https://", 1)), Sink::Memory))
                .collect();
            let mut bodies = Vec::new();
            for d in peer.fetch_all(items).await {
                let resp = d.expect("accepted").await.expect("downloaded");
                bodies.push(resp.body.expect("a memory body"));
            }
            bodies
        },
        async {
            driver.await;
            panic!("the driver ended first")
        },
    ))
}

/// (connections, protocols) of the access log's lines.
fn connections_and_protocols(log: &[String]) -> (BTreeSet<String>, BTreeSet<String>) {
    let field = |l: &String, i: usize| l.split(' ').nth(i).unwrap_or_default().to_owned();
    (log.iter().map(|l| field(l, 0)).collect(), log.iter().map(|l| field(l, 1)).collect())
}

#[test]
fn many_small_downloads_share_one_http2_connection() {
    let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).expect("a certificate");
    let (cert_pem, key_pem) = (cert.cert.pem(), cert.key_pair.serialize_pem());
    let files: Vec<(String, Vec<u8>)> =
        (0..FILES).map(|i| (format!("f{i}.bin"), content(4096, i as u64 + 1))).collect();
    let nginx = Nginx::start_h2(&files, &cert_pem, &key_pem);
    let mut roots = RootCertStore::empty();
    roots.add(CertificateDer::from_pem_slice(cert_pem.as_bytes()).expect("pem")).expect("a root");

    let bodies = fetch_all(&nginx, HyperTransport::with_roots(roots.clone()));
    for (i, body) in bodies.iter().enumerate() {
        assert!(body == &files[i].1, "file {i} byte-exact");
    }
    let log = nginx.access_log();
    assert_eq!(log.len(), FILES, "one request per file");
    let (connections, protocols) = connections_and_protocols(&log);
    assert_eq!(protocols, BTreeSet::from(["HTTP/2.0".to_owned()]));
    assert_eq!(connections.len(), 1, "32 at once, one connection: {connections:?}");

    // Without h2 in ALPN the same downloads use HTTP/1.1 and more connections.
    let bodies = fetch_all(&nginx, HyperTransport::with_roots(roots).http1_only());
    assert!(bodies.iter().zip(&files).all(|(b, f)| b == &f.1));
    let log = nginx.access_log();
    let (connections, protocols) = connections_and_protocols(&log[FILES..]);
    assert_eq!(protocols, BTreeSet::from(["HTTP/1.1".to_owned()]));
    assert!(connections.len() > 1, "HTTP/1.1 runs one request per connection at a time");
}
