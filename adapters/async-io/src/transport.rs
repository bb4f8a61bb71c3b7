//! The HTTP client behind the adapter: a [`Transport`] trait users can
//! implement, and the default [`HyperTransport`] (hyper 1's HTTP/1.1 client
//! connection over an `async-net` TCP stream, via `smol-hyper`).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures_lite::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, Stream};
use futures_rustls::rustls::pki_types::ServerName;
use futures_rustls::rustls::{ClientConfig, RootCertStore};
use http_body_util::Empty;
use hyper::body::{Body, Bytes, Incoming};
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

/// The default transport: HTTP/1.1 with hyper over `async-net`, TLS with
/// `futures-rustls` (ring), keep-alive connections pooled per (scheme, host,
/// port) for reuse by later requests.
#[derive(Debug, Clone)]
pub struct HyperTransport {
    tls: Arc<ClientConfig>,
    pool: Pool,
    proxies: Proxies,
}

/// (https, host, port).
type Key = (bool, String, u16);
type Sender = hyper::client::conn::http1::SendRequest<Empty<Bytes>>;

/// A connection ready for another request, and the future that drives it.
struct Idle {
    sender: Sender,
    conn: Conn,
}

/// Idle keep-alive connections. Idle connections are not driven, so one the
/// server closed meanwhile is noticed at reuse, and the request then goes
/// out on a fresh connection.
#[derive(Clone, Default)]
struct Pool(Arc<Mutex<HashMap<Key, Vec<Idle>>>>);

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pool")
    }
}

/// Idle connections kept per (scheme, host, port).
const IDLE_PER_HOST: usize = 16;

impl Pool {
    fn take(&self, key: &Key) -> Option<Idle> {
        let mut map = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let idle = map.get_mut(key)?;
        while let Some(i) = idle.pop() {
            if !i.sender.is_closed() {
                return Some(i);
            }
        }
        None
    }

    fn put(&self, key: Key, idle: Idle) {
        let mut map = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let v = map.entry(key).or_default();
        if v.len() < IDLE_PER_HOST {
            v.push(idle);
        }
    }
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
        Self { tls: Arc::new(tls), pool: Pool::default(), proxies: Proxies::from_env() }
    }

    /// With a complete rustls client configuration.
    #[must_use]
    pub fn with_tls_config(tls: Arc<ClientConfig>) -> Self {
        Self { tls, pool: Pool::default(), proxies: Proxies::from_env() }
    }

    /// Through these proxies instead of the environment's (which every
    /// constructor reads: see [`Proxies::from_env`]); [`Proxies::none`]
    /// for direct connections only.
    #[must_use]
    pub fn with_proxies(mut self, proxies: Proxies) -> Self {
        self.proxies = proxies;
        self
    }
}

type Conn = Pin<Box<dyn Future<Output = hyper::Result<()>> + Send>>;

fn map_hyper(e: &hyper::Error) -> NetError {
    if e.is_timeout() {
        NetError::Timeout
    } else if e.is_parse() {
        NetError::Protocol(e.to_string())
    } else {
        NetError::Reset(e.to_string())
    }
}

/// A body that keeps driving its connection while it is read, and hands
/// the connection back to the pool once the body is complete.
struct HyperBody {
    conn: Option<Conn>,
    body: Incoming,
    reuse: Option<(Sender, Pool, Key)>,
}

impl Stream for HyperBody {
    type Item = Result<Vec<u8>, NetError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if let Some(c) = this.conn.as_mut() {
            if c.as_mut().poll(cx).is_ready() {
                this.conn = None;
            }
        }
        loop {
            return match Pin::new(&mut this.body).poll_frame(cx) {
                Poll::Pending => Poll::Pending,
                Poll::Ready(None) => {
                    if let (Some(conn), Some((sender, pool, key))) = (this.conn.take(), this.reuse.take()) {
                        if !sender.is_closed() {
                            pool.put(key, Idle { sender, conn });
                        }
                    }
                    Poll::Ready(None)
                }
                Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(map_hyper(&e)))),
                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    Ok(data) => Poll::Ready(Some(Ok(data.to_vec()))),
                    Err(_trailers) => continue,
                },
            };
        }
    }
}

/// Handshake over a fresh connection (plain or TLS).
async fn handshake<I>(io: I) -> Result<Idle, NetError>
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (sender, conn) =
        hyper::client::conn::http1::handshake(smol_hyper::rt::FuturesIo::new(io)).await.map_err(|e| map_hyper(&e))?;
    Ok(Idle { sender, conn: Box::pin(conn) })
}

/// One request over a connection; the body returns it to `pool` when done.
async fn exchange(
    idle: Idle,
    req: &HttpRequest,
    authority: String,
    pool: Pool,
    key: Key,
) -> Result<HttpResponse, NetError> {
    let Idle { mut sender, conn } = idle;
    let mut conn = Some(conn);
    let drive = |conn: &mut Option<Conn>, cx: &mut Context<'_>| {
        if let Some(c) = conn.as_mut() {
            if c.as_mut().poll(cx).is_ready() {
                *conn = None;
            }
        }
    };
    futures_lite::future::poll_fn(|cx| {
        drive(&mut conn, cx);
        sender.poll_ready(cx)
    })
    .await
    .map_err(|e| map_hyper(&e))?;
    let path = &req.url[url::Position::BeforePath..url::Position::AfterQuery];
    let method = match req.method {
        RequestMethod::Get => hyper::Method::GET,
        RequestMethod::Head => hyper::Method::HEAD,
    };
    let mut builder = hyper::Request::builder().method(method).uri(path).header("host", authority);
    for (k, v) in &req.headers {
        builder = builder.header(k.as_str(), v.as_str());
    }
    let request = builder.body(Empty::<Bytes>::new()).map_err(|e| NetError::InvalidUrl(e.to_string()))?;
    let resp = {
        let mut send = std::pin::pin!(sender.send_request(request));
        futures_lite::future::poll_fn(|cx| {
            drive(&mut conn, cx);
            send.as_mut().poll(cx)
        })
        .await
        .map_err(|e| map_hyper(&e))?
    };
    let status = resp.status().as_u16();
    let headers = resp
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
        .collect();
    let body: BodyStream = Box::pin(HyperBody { conn, body: resp.into_body(), reuse: Some((sender, pool, key)) });
    Ok(HttpResponse { status, headers, body })
}

impl Transport for HyperTransport {
    fn send(&self, req: HttpRequest) -> ResponseFuture {
        let (tls, pool, proxies) = (Arc::clone(&self.tls), self.pool.clone(), self.proxies.clone());
        Box::pin(async move {
            let https = match req.url.scheme() {
                "http" => false,
                "https" => true,
                other => return Err(NetError::InvalidUrl(format!("unsupported scheme {other}"))),
            };
            let host = req.url.host_str().ok_or_else(|| NetError::InvalidUrl("no host".into()))?.to_owned();
            let port = req.url.port_or_known_default().unwrap_or(80);
            let authority = match req.url.port() {
                Some(p) => format!("{host}:{p}"),
                None => host.clone(),
            };
            let key: Key = (https, host.clone(), port);
            // A pooled connection first; if it turns out dead, a fresh one (GET and HEAD are idempotent).
            if let Some(idle) = pool.take(&key) {
                if let Ok(resp) = exchange(idle, &req, authority.clone(), pool.clone(), key.clone()).await {
                    return Ok(resp);
                }
            }
            let bare = host.trim_start_matches('[').trim_end_matches(']').to_owned();
            let stream = connect(&proxies, https, &host, port).await?;
            let idle = if https {
                let name = ServerName::try_from(bare).map_err(|e| NetError::Tls(e.to_string()))?;
                let tls = futures_rustls::TlsConnector::from(tls)
                    .connect(name, stream)
                    .await
                    .map_err(|e| NetError::Tls(e.to_string()))?;
                handshake(tls).await?
            } else {
                handshake(stream).await?
            };
            exchange(idle, &req, authority, pool, key).await
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
