//! WebSocket pieces for the proxy tests: an echo backend (tokio-tungstenite
//! on loopback) and clients over HTTP/1.1 and over HTTP/2 (RFC 8441
//! extended CONNECT through hyper's client).
//!
//! The backend echoes every text and binary message; it answers the
//! handshake with the first `Sec-WebSocket-Protocol` the client offered,
//! refuses it with 403 when made with `refuse`, and records each
//! handshake's headers (`name: value` lines) for the tests to read.

use std::{
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use futures_util::{SinkExt, StreamExt};
use http::{HeaderValue, Method, Request, StatusCode};
use http_body_util::Empty;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::{
    WebSocketStream,
    tungstenite::{
        Message,
        handshake::server::{ErrorResponse, Request as WsRequest, Response as WsResponse},
        protocol::Role,
    },
};

/// A running echo backend; dropped, it stops accepting (open sockets
/// run on until their clients close them).
pub struct EchoBackend {
    pub addr: SocketAddr,
    /// Handshakes it completed.
    pub accepted: Arc<AtomicU64>,
    /// Each handshake's request headers, one `name: value` a line.
    pub seen: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for EchoBackend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl EchoBackend {
    /// Starts one on a free loopback port; `refuse` answers every
    /// handshake 403.
    pub async fn start(refuse: bool) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let accepted = Arc::new(AtomicU64::new(0));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (acc, se) = (accepted.clone(), seen.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let _ = tcp.set_nodelay(true);
                let (acc, se) = (acc.clone(), se.clone());
                tokio::spawn(async move {
                    // tungstenite's callback type returns its error response by value.
                    #[allow(clippy::result_large_err)]
                    let callback = |req: &WsRequest, mut resp: WsResponse| {
                        let head: Vec<String> = req
                            .headers()
                            .iter()
                            .map(|(k, v)| format!("{k}: {}", v.to_str().unwrap_or("?")))
                            .collect();
                        se.lock().expect("lock").push(head.join("\n"));
                        if refuse {
                            let mut no = ErrorResponse::new(Some("no".into()));
                            *no.status_mut() = StatusCode::FORBIDDEN;
                            return Err(no);
                        }
                        if let Some(first) = req
                            .headers()
                            .get("sec-websocket-protocol")
                            .and_then(|v| v.to_str().ok())
                            .and_then(|v| v.split(',').next())
                            && let Ok(v) = HeaderValue::from_str(first.trim())
                        {
                            resp.headers_mut().insert("sec-websocket-protocol", v);
                        }
                        Ok(resp)
                    };
                    let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(tcp, callback).await
                    else {
                        return;
                    };
                    acc.fetch_add(1, Ordering::Relaxed);
                    while let Some(Ok(msg)) = ws.next().await {
                        if (msg.is_text() || msg.is_binary()) && ws.send(msg).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        Self {
            addr,
            accepted,
            seen,
            task,
        }
    }

    /// The headers of the `i`th handshake.
    pub fn handshake(&self, i: usize) -> String {
        self.seen.lock().expect("lock")[i].to_ascii_lowercase()
    }
}

/// A WebSocket over HTTP/1.1, on any byte stream.
pub type Ws = WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>;

/// A WebSocket over one HTTP/2 stream.
pub type H2Ws = WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>;

/// Opens a WebSocket to `url` (`ws://…`) over HTTP/1.1, offering the
/// `chat` subprotocol; returns it with the handshake's answer.
pub async fn connect(url: &str) -> Result<(Ws, http::Response<Option<Vec<u8>>>), String> {
    let mut req =
        tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(url)
            .map_err(|e| e.to_string())?;
    req.headers_mut()
        .insert("sec-websocket-protocol", HeaderValue::from_static("chat"));
    handshake(req).await
}

/// Opens a WebSocket for `req` over HTTP/1.1, within 10 s: the socket and
/// the handshake's answer, or `refused: STATUS`, or why it failed.
pub async fn handshake(
    req: impl tokio_tungstenite::tungstenite::client::IntoClientRequest + Unpin,
) -> Result<(Ws, http::Response<Option<Vec<u8>>>), String> {
    match tokio::time::timeout(
        Duration::from_secs(10),
        tokio_tungstenite::connect_async(req),
    )
    .await
    {
        Err(_) => Err("handshake timed out".into()),
        Ok(Ok(pair)) => Ok(pair),
        Ok(Err(tokio_tungstenite::tungstenite::Error::Http(resp))) => {
            Err(format!("refused: {}", resp.status().as_u16()))
        }
        Ok(Err(e)) => Err(e.to_string()),
    }
}

/// Opens a WebSocket to `path` on `addr` the way a browser does over
/// HTTP/2 (h2c with prior knowledge here): a CONNECT with `:protocol
/// websocket`. Returns the socket, or the status it was refused with.
pub async fn connect_h2(addr: SocketAddr, path: &str) -> Result<(H2Ws, http::HeaderMap), u16> {
    let mut send = h2_sender(addr).await;
    let mut resp = send
        .send_request(h2_connect(addr, path))
        .await
        .expect("CONNECT sent");
    if resp.status() != StatusCode::OK {
        return Err(resp.status().as_u16());
    }
    let headers = resp.headers().clone();
    let upgraded = hyper::upgrade::on(&mut resp).await.expect("upgraded");
    let ws = WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Client, None).await;
    Ok((ws, headers))
}

/// Sends an HTTP/2 extended CONNECT for `path` and cancels it
/// (RST_STREAM) before the answer; the returned sender keeps the
/// connection open.
pub async fn cancel_h2(addr: SocketAddr, path: &str) -> H2Sender {
    let mut send = h2_sender(addr).await;
    let asked = send.send_request(h2_connect(addr, path));
    // Dropping the response future resets the stream.
    let _ = tokio::time::timeout(Duration::from_millis(5), asked).await;
    send
}

/// The sending half of an HTTP/2 client connection.
pub type H2Sender = hyper::client::conn::http2::SendRequest<Empty<bytes::Bytes>>;

/// An HTTP/2 client connection to `addr`, driven by a task of its own.
async fn h2_sender(addr: SocketAddr) -> H2Sender {
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let (send, conn) = hyper::client::conn::http2::handshake::<_, _, Empty<bytes::Bytes>>(
        TokioExecutor::new(),
        TokioIo::new(tcp),
    )
    .await
    .expect("h2 handshake");
    tokio::spawn(conn);
    send
}

/// A WebSocket's extended CONNECT (RFC 8441) for `path`.
fn h2_connect(addr: SocketAddr, path: &str) -> Request<Empty<bytes::Bytes>> {
    let mut req = Request::builder()
        .method(Method::CONNECT)
        .uri(format!("http://{addr}{path}"))
        .header("sec-websocket-version", "13")
        .header("sec-websocket-protocol", "chat")
        .body(Empty::new())
        .expect("request");
    req.extensions_mut()
        .insert(hyper::ext::Protocol::from_static("websocket"));
    req
}

/// Sends `n` numbered text messages on `ws` one by one, each answered
/// before the next: panics on a lost, altered or reordered echo.
pub async fn echo_n<S>(ws: &mut WebSocketStream<S>, tag: &str, n: usize)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    for i in 0..n {
        let text = format!("{tag} {i}");
        ws.send(Message::text(text.clone())).await.expect("send");
        let got = tokio::time::timeout(Duration::from_secs(10), next_data(ws))
            .await
            .unwrap_or_else(|_| panic!("{tag}: no echo of message {i}"));
        assert_eq!(got, Some(Message::text(text)), "{tag}: message {i}");
    }
}

/// The next text or binary message; `None` when the socket closed.
pub async fn next_data<S>(ws: &mut WebSocketStream<S>) -> Option<Message>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    loop {
        match ws.next().await {
            None | Some(Err(_)) => return None,
            Some(Ok(m)) if m.is_text() || m.is_binary() => return Some(m),
            Some(Ok(m)) if m.is_close() => return None,
            Some(Ok(_)) => {}
        }
    }
}

/// A WebSocket over either protocol (the reload test mixes them).
pub enum AnyWs {
    H1(Ws),
    H2(H2Ws),
}

impl AnyWs {
    /// Sends `text` and checks that it comes back.
    pub async fn echo(&mut self, text: &str) {
        let msg = Message::text(text.to_owned());
        let got = match self {
            AnyWs::H1(ws) => send_and_read(ws, msg.clone()).await,
            AnyWs::H2(ws) => send_and_read(ws, msg.clone()).await,
        };
        assert_eq!(got, Some(msg), "echo of {text:?}");
    }

    /// Sends `text`.
    pub async fn send(&mut self, text: &str) {
        let msg = Message::text(text.to_owned());
        match self {
            AnyWs::H1(ws) => ws.send(msg).await.expect("send"),
            AnyWs::H2(ws) => ws.send(msg).await.expect("send"),
        }
    }

    /// The next text message (10 s at most); `None` when closed.
    pub async fn next_text(&mut self) -> Option<String> {
        let next = async {
            match self {
                AnyWs::H1(ws) => next_data(ws).await,
                AnyWs::H2(ws) => next_data(ws).await,
            }
        };
        match tokio::time::timeout(Duration::from_secs(10), next).await {
            Ok(Some(Message::Text(t))) => Some(t.to_string()),
            _ => None,
        }
    }
}

async fn send_and_read<S>(ws: &mut WebSocketStream<S>, msg: Message) -> Option<Message>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    ws.send(msg).await.ok()?;
    tokio::time::timeout(Duration::from_secs(10), next_data(ws))
        .await
        .ok()
        .flatten()
}

/// Reads until the server's close frame: its code (`None`: the
/// connection ended without one).
pub async fn close_code<S>(ws: &mut WebSocketStream<S>, within: Duration) -> Option<u16>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let read = async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Close(frame))) => {
                    // Reading on sends tungstenite's reply, as a client should.
                    while let Some(Ok(_)) = ws.next().await {}
                    return frame.map(|f| u16::from(f.code));
                }
                Some(Ok(_)) => {}
                None | Some(Err(_)) => return None,
            }
        }
    };
    tokio::time::timeout(within, read)
        .await
        .expect("no close frame in time")
}
