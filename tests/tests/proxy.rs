//! Both adapters through an HTTP CONNECT proxy on loopback: the proxy
//! records one tunnel, to the server, and the server sees the request;
//! weir's own transport layers (abort, reset detection) stay on top.

use weir_tests::both::{fetch_via_proxy, ADAPTERS};
use weir_tests::proxy::ConnectProxy;
use weir_tests::server::{content, FaultServer};
use weir_tests::url;

#[test]
fn downloads_go_through_the_configured_proxy() {
    for adapter in ADAPTERS {
        let server = FaultServer::start();
        let proxy = ConnectProxy::start();
        let got = fetch_via_proxy(adapter, &format!("http://127.0.0.3:{}", proxy.port), url(&server.url("/file/3000")));
        let got = got.unwrap_or_else(|e| panic!("{adapter:?}: {e}"));
        assert_eq!(got.body.as_deref(), Some(&content(3000, 3000)[..]), "{adapter:?}");
        assert_eq!(proxy.targets(), vec![server.addr().to_string()], "{adapter:?}: one tunnel, to the server");
        assert_eq!(server.hits("/file/3000"), 1, "{adapter:?}: the server saw it through the tunnel");
    }
}

#[test]
fn credentials_in_the_proxy_url_reach_the_proxy() {
    for adapter in ADAPTERS {
        let server = FaultServer::start();
        let proxy = ConnectProxy::start();
        let at = format!("http://weir:s3cret@127.0.0.3:{}", proxy.port);
        let got = fetch_via_proxy(adapter, &at, url(&server.url("/file/300")));
        assert!(got.is_ok(), "{adapter:?}: {got:?}");
        // base64("weir:s3cret")
        assert_eq!(proxy.credentials(), vec![Some("Basic d2VpcjpzM2NyZXQ=".to_owned())], "{adapter:?}");
    }
}

#[test]
fn a_proxy_that_refuses_the_tunnel_fails_the_download_clearly() {
    // A "proxy" that is the fault server itself: it answers CONNECT with a 404.
    for adapter in ADAPTERS {
        let server = FaultServer::start();
        let got = fetch_via_proxy(adapter, &format!("http://{}", server.addr()), url("http://127.0.0.1:9/x"));
        // ureq: "CONNECT proxy failed: proxy server responded 404/404";
        // weir-async: "the proxy refused the tunnel to 127.0.0.1:9: HTTP/1.1 404 Not Found".
        let err = got.expect_err("no tunnel, no download").to_string();
        assert!(err.contains("proxy") && err.contains("404"), "{adapter:?}: {err}");
    }
}
