//! The HTTP client behind the adapter: a [`Transport`] trait users can
//! implement, and the default [`HyperTransport`]: hyper-util's pooled
//! client (HTTP/1.1, and HTTP/2 where TLS negotiates it) on the smol
//! runtime traits of `smol-hyper`, over `async-net` TCP and
//! `futures-rustls`.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use async_executor::Executor;
use futures_lite::{AsyncReadExt, AsyncWriteExt, Stream};
use futures_rustls::client::TlsStream;
use futures_rustls::rustls::pki_types::ServerName;
use futures_rustls::rustls::{ClientConfig, RootCertStore};
use http_body_util::Empty;
use hyper::body::{Body, Bytes, Incoming};
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::client::legacy::Client;
use smol_hyper::rt::{FuturesIo, SmolTimer};
use weir::{NetError, RequestMethod, Url};

use weir_http::proxy::{Proxies, Tunnel};

/// One HTTP request of an attempt (redirects are followed by the adapter,
/// so a transport sends exactly one request).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRequest {
    /// GET or HEAD.
    pub method: RequestMethod,
    /// Where to.
    pub url: Url,
    /// Extra headers (`Range`, `If-Range`).
    pub headers: Vec<(String, String)>,
}

/// A body: chunks until the end, or an error.
pub type BodyStream = Pin<Box<dyn Stream<Item = Result<Vec<u8>, NetError>> + Send>>;

/// The head of an answer and its body.
pub struct HttpResponse {
    /// Status code.
    pub status: u16,
    /// Headers in order, names lower-cased.
    pub headers: Vec<(String, String)>,
    /// The body (empty for HEAD).
    pub body: BodyStream,
}

impl HttpResponse {
    /// The first header named `name` (case-insensitive).
    #[must_use]
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// A pending answer.
pub type ResponseFuture = Pin<Box<dyn Future<Output = Result<HttpResponse, NetError>> + Send>>;

/// An HTTP client the adapter drives. Dropping the returned future or the
/// body stream must abort the transfer (that is how the scheduler's aborts
/// take effect). Errors are mapped to the [`NetError`] the core decides on.
///
/// ```
/// use weir::NetError;
/// use weir_async::{HttpRequest, HttpResponse, ResponseFuture, Transport};
///
/// /// Answers every request with the same bytes, without a network.
/// struct Canned(Vec<u8>);
///
/// impl Transport for Canned {
///     fn send(&self, _req: HttpRequest) -> ResponseFuture {
///         let body = self.0.clone();
///         Box::pin(async move {
///             let len = body.len().to_string();
///             Ok(HttpResponse {
///                 status: 200,
///                 headers: vec![("content-length".into(), len)],
///                 body: Box::pin(futures_lite::stream::once(Ok::<_, NetError>(body))),
///             })
///         })
///     }
/// }
///
/// let (dl, driver) = weir_async::Downloader::with_transport(weir::Config::default(), std::sync::Arc::new(Canned(b"hi".to_vec()))).unwrap();
/// futures_lite::future::block_on(futures_lite::future::or(driver, async {
///     let peer = dl.peer(weir::RequestPriority::High).await;
///     let url = weir::Url::parse("http://anywhere.example/x").unwrap();
///     let resp = peer.execute(weir::Request::get(url)).await.unwrap();
///     assert_eq!(resp.body.as_deref(), Some(&b"hi"[..]));
/// }));
/// ```
pub trait Transport: Send + Sync + 'static {
    /// Send one request.
    fn send(&self, req: HttpRequest) -> ResponseFuture;
}

/// The default transport: hyper-util's client with its connection pool
/// (keep-alive connections per scheme, host and port; idle ones closed
/// after 30 s), HTTP/2 over TLS when the server's ALPN picks it (many
/// requests as streams of one connection), TLS by `futures-rustls`
/// (ring), CONNECT proxies from the environment (see
/// [`HyperTransport::with_proxies`]).
///
/// Under HTTP/2, `max_per_host` bounds the requests (streams) running at
/// once to a host, not connections: they usually share one.
///
/// hyper's connection tasks run on the executor of the downloader whose
/// transfer opened the connection (on the driver's thread, next to the
/// transfer that reads it); opened anywhere else, on one `weir-hyper`
/// thread shared by the process, started when first needed.
#[derive(Debug, Clone)]
pub struct HyperTransport {
    connector: Connector,
    client: Client<Connector, Empty<Bytes>>,
}

/// Opens connections for the client: TCP (through a CONNECT tunnel when a
/// proxy applies), then TLS offering `h2` and `http/1.1` for https.
#[derive(Debug, Clone)]
struct Connector {
    tls: Arc<ClientConfig>,
    proxies: Proxies,
}

/// Where hyper's connection tasks go: the executor of the driver polling
/// now, if any (see [`within`]), else the process's `weir-hyper` thread.
#[derive(Debug, Clone, Copy, Default)]
struct Spawn;

std::thread_local! {
    /// The executor of the driver being polled on this thread.
    static LOCAL: std::cell::RefCell<Option<Arc<Executor<'static>>>> = const { std::cell::RefCell::new(None) };
}

impl<F: Future<Output = ()> + Send + 'static> hyper::rt::Executor<F> for Spawn {
    fn execute(&self, fut: F) {
        match LOCAL.with(|l| l.borrow().clone()) {
            Some(ex) => ex.spawn(fut).detach(),
            None => shared_executor().spawn(fut).detach(),
        }
    }
}

/// Poll `f` with `ex` as the executor of the connections opened meanwhile
/// (the driver runs its loop this way, so a connection's task runs on the
/// thread of the transfer that reads it: no hop between threads per chunk).
pub(crate) async fn within<F: Future>(ex: Arc<Executor<'static>>, f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    futures_lite::future::poll_fn(|cx| {
        let previous = LOCAL.with(|l| l.replace(Some(Arc::clone(&ex))));
        let polled = f.as_mut().poll(cx);
        LOCAL.with(|l| *l.borrow_mut() = previous);
        polled
    })
    .await
}

/// The executor of connections opened outside any driver: one thread per process.
fn shared_executor() -> Arc<Executor<'static>> {
    static EXECUTOR: OnceLock<Arc<Executor<'static>>> = OnceLock::new();
    Arc::clone(EXECUTOR.get_or_init(|| {
        let ex = Arc::new(Executor::new());
        let run = Arc::clone(&ex);
        // Without the thread, connections would never be driven: say so at once.
        std::thread::Builder::new()
            .name("weir-hyper".into())
            .spawn(move || async_io::block_on(run.run(futures_lite::future::pending::<()>())))
            .expect("the weir-hyper executor thread starts");
        ex
    }))
}

impl Default for HyperTransport {
    fn default() -> Self {
        Self::new()
    }
}

impl HyperTransport {
    /// Trusting the Mozilla root certificates (`webpki-roots`).
    ///
    /// # Panics
    /// Never in practice: the ring provider supports the default protocol versions.
    #[must_use]
    pub fn new() -> Self {
        let mut roots = RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        Self::with_roots(roots)
    }

    /// Trusting exactly `roots` (e.g. a private CA, or a test's self-signed certificate).
    ///
    /// # Panics
    /// Never in practice: the ring provider supports the default protocol versions.
    #[must_use]
    pub fn with_roots(roots: RootCertStore) -> Self {
        let provider = Arc::new(futures_rustls::rustls::crypto::ring::default_provider());
        let tls = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("ring supports TLS 1.2 and 1.3")
            .with_root_certificates(roots)
            .with_no_client_auth();
        Self::with_tls_config(Arc::new(tls))
    }

    /// With a complete rustls client configuration. Its ALPN list, when
    /// empty, becomes `h2`, `http/1.1`.
    #[must_use]
    pub fn with_tls_config(tls: Arc<ClientConfig>) -> Self {
        let tls = if tls.alpn_protocols.is_empty() {
            let mut own = (*tls).clone();
            own.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
            Arc::new(own)
        } else {
            tls
        };
        Self::build(Connector { tls, proxies: Proxies::from_env() })
    }

    fn build(connector: Connector) -> Self {
        let client = Client::builder(Spawn)
            .pool_timer(SmolTimer::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(16)
            .build(connector.clone());
        Self { connector, client }
    }

    /// Through these proxies instead of the environment's (which every
    /// constructor reads: see [`Proxies::from_env`]); [`Proxies::none`]
    /// for direct connections only.
    #[must_use]
    pub fn with_proxies(self, proxies: Proxies) -> Self {
        Self::build(Connector { proxies, ..self.connector })
    }

    /// HTTP/1.1 only: TLS no longer offers `h2`.
    #[must_use]
    pub fn http1_only(self) -> Self {
        let mut tls = (*self.connector.tls).clone();
        tls.alpn_protocols = vec![b"http/1.1".to_vec()];
        Self::build(Connector { tls: Arc::new(tls), ..self.connector })
    }
}

/// A connection the client speaks HTTP over.
enum Io {
    Plain(FuturesIo<async_net::TcpStream>),
    Tls(Box<FuturesIo<TlsStream<async_net::TcpStream>>>, bool),
}

impl Connection for Io {
    fn connected(&self) -> Connected {
        match self {
            Io::Tls(_, true) => Connected::new().negotiated_h2(),
            _ => Connected::new(),
        }
    }
}

impl hyper::rt::Read for Io {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Io::Plain(io) => Pin::new(io).poll_read(cx, buf),
            Io::Tls(io, _) => Pin::new(&mut **io).poll_read(cx, buf),
        }
    }
}

impl hyper::rt::Write for Io {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Io::Plain(io) => Pin::new(io).poll_write(cx, buf),
            Io::Tls(io, _) => Pin::new(&mut **io).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Io::Plain(io) => Pin::new(io).poll_flush(cx),
            Io::Tls(io, _) => Pin::new(&mut **io).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Io::Plain(io) => Pin::new(io).poll_shutdown(cx),
            Io::Tls(io, _) => Pin::new(&mut **io).poll_shutdown(cx),
        }
    }
}

/// Why a connection could not be opened: the [`NetError`] weir reports,
/// carried through hyper-util's error to [`net_error`].
#[derive(Debug)]
struct ConnectError(NetError);

impl std::fmt::Display for ConnectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for ConnectError {}

impl tower_service::Service<hyper::Uri> for Connector {
    type Response = Io;
    type Error = ConnectError;
    type Future = Pin<Box<dyn Future<Output = Result<Io, ConnectError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), ConnectError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: hyper::Uri) -> Self::Future {
        let Connector { tls, proxies } = self.clone();
        Box::pin(async move {
            let https = uri.scheme_str() == Some("https");
            let host = uri.host().ok_or_else(|| ConnectError(NetError::InvalidUrl("no host".into())))?.to_owned();
            let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
            let stream = connect(&proxies, https, &host, port).await.map_err(ConnectError)?;
            if !https {
                return Ok(Io::Plain(FuturesIo::new(stream)));
            }
            let bare = host.trim_start_matches('[').trim_end_matches(']').to_owned();
            let name = ServerName::try_from(bare).map_err(|e| ConnectError(NetError::Tls(e.to_string())))?;
            let stream = futures_rustls::TlsConnector::from(tls)
                .connect(name, stream)
                .await
                .map_err(|e| ConnectError(NetError::Tls(e.to_string())))?;
            let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
            Ok(Io::Tls(Box::new(FuturesIo::new(stream)), h2))
        })
    }
}

fn map_hyper(e: &hyper::Error) -> NetError {
    if e.is_timeout() {
        NetError::Timeout
    } else if e.is_parse() {
        NetError::Protocol(e.to_string())
    } else {
        NetError::Reset(e.to_string())
    }
}

/// The [`NetError`] behind a client error: the connector's own, else the
/// connection's (`Reset`, `Protocol`, `Timeout`).
fn net_error(e: &hyper_util::client::legacy::Error) -> NetError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if let Some(c) = s.downcast_ref::<ConnectError>() {
            return c.0.clone();
        }
        if let Some(h) = s.downcast_ref::<hyper::Error>() {
            return map_hyper(h);
        }
        source = s.source();
    }
    if e.is_connect() {
        NetError::Connect(e.to_string())
    } else {
        NetError::Reset(e.to_string())
    }
}

/// A response body as a stream of chunks.
struct HyperBody(Incoming);

impl Stream for HyperBody {
    type Item = Result<Vec<u8>, NetError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            return match Pin::new(&mut self.0).poll_frame(cx) {
                Poll::Pending => Poll::Pending,
                Poll::Ready(None) => Poll::Ready(None),
                Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(map_hyper(&e)))),
                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    Ok(data) => Poll::Ready(Some(Ok(data.to_vec()))),
                    Err(_trailers) => continue,
                },
            };
        }
    }
}

impl Transport for HyperTransport {
    fn send(&self, req: HttpRequest) -> ResponseFuture {
        let client = self.client.clone();
        Box::pin(async move {
            let scheme = req.url.scheme();
            if scheme != "http" && scheme != "https" {
                return Err(NetError::InvalidUrl(format!("unsupported scheme {scheme}")));
            }
            let host = req.url.host_str().ok_or_else(|| NetError::InvalidUrl("no host".into()))?;
            let authority = match req.url.port() {
                Some(p) => format!("{host}:{p}"),
                None => host.to_owned(),
            };
            // No user info, no fragment: what goes on the wire.
            let path = &req.url[url::Position::BeforePath..url::Position::AfterQuery];
            let uri = format!("{scheme}://{authority}{path}");
            let method = match req.method {
                RequestMethod::Get => hyper::Method::GET,
                RequestMethod::Head => hyper::Method::HEAD,
            };
            let mut builder = hyper::Request::builder().method(method).uri(uri);
            for (k, v) in &req.headers {
                builder = builder.header(k.as_str(), v.as_str());
            }
            let request = builder.body(Empty::<Bytes>::new()).map_err(|e| NetError::InvalidUrl(e.to_string()))?;
            let resp = client.request(request).await.map_err(|e| net_error(&e))?;
            let status = resp.status().as_u16();
            let headers = weir_http::response_headers(resp.headers().iter().map(|(k, v)| (k.as_str(), v.as_bytes())));
            Ok(HttpResponse { status, headers, body: Box::pin(HyperBody(resp.into_body())) })
        })
    }
}

/// Open a TCP stream to `host:port`, through the CONNECT tunnel `proxies`
/// choose for it, if any.
async fn connect(proxies: &Proxies, https: bool, host: &str, port: u16) -> Result<async_net::TcpStream, NetError> {
    let Some(tunnel) = proxies.tunnel_for(https, host, port) else { return direct(host, port).await };
    let proxy_error = |e: std::io::Error| NetError::Connect(format!("proxy: {e}"));
    let mut stream = direct(&tunnel.host, tunnel.port).await?;
    stream.write_all(tunnel.ask.as_bytes()).await.map_err(proxy_error)?;
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() > Tunnel::MAX_ANSWER {
            return Err(NetError::Protocol("the proxy's answer to CONNECT is too long".into()));
        }
        let mut byte = [0u8];
        match stream.read(&mut byte).await.map_err(proxy_error)? {
            1 => head.push(byte[0]),
            _ => return Err(NetError::Connect("the proxy closed the connection during CONNECT".into())),
        }
    }
    tunnel.opened(&head)?;
    Ok(stream)
}

/// A direct TCP connection; a refused one is `Connect`, a failed lookup `Dns`.
async fn direct(host: &str, port: u16) -> Result<async_net::TcpStream, NetError> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let refused = |e: &std::io::Error| NetError::Connect(e.to_string());
    let stream = match bare.parse::<std::net::IpAddr>() {
        Ok(ip) => async_net::TcpStream::connect((ip, port)).await.map_err(|e| refused(&e))?,
        Err(_) => async_net::TcpStream::connect((bare, port)).await.map_err(|e| {
            if e.kind() == std::io::ErrorKind::ConnectionRefused {
                refused(&e)
            } else {
                NetError::Dns(e.to_string())
            }
        })?,
    };
    let _ = stream.set_nodelay(true);
    Ok(stream)
}
