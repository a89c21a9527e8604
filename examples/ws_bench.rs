//! The proxied-WebSocket echo benchmark's two ends (benches/load/ws.sh):
//!
//! ```text
//! ws_bench echo ADDR                      an echo backend (tokio-tungstenite)
//! ws_bench client URL [CONNS] [SECS] [WINDOW] [BYTES]
//!     CONNS sockets (default 50), each keeping WINDOW messages of BYTES
//!     bytes in flight (16, 32) for SECS seconds (5); prints
//!     `messages_per_second=N` (echoes received, over all sockets).
//! ```

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;

fn arg<T: std::str::FromStr>(args: &[String], i: usize, default: T) -> T {
    args.get(i).and_then(|a| a.parse().ok()).unwrap_or(default)
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("echo") => echo(args.get(2).map_or("127.0.0.1:18600", String::as_str)).await,
        Some("client") if args.len() > 2 => {
            client(
                &args[2],
                arg(&args, 3, 50),
                arg(&args, 4, 5),
                arg(&args, 5, 16),
                arg(&args, 6, 32),
            )
            .await
        }
        _ => {
            eprintln!("usage: ws_bench echo ADDR | client URL [CONNS] [SECS] [WINDOW] [BYTES]");
            std::process::exit(2);
        }
    }
}

async fn echo(addr: &str) {
    let listener = TcpListener::bind(addr).await.expect("bind");
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            continue;
        };
        let _ = tcp.set_nodelay(true);
        tokio::spawn(async move {
            let Ok(ws) = tokio_tungstenite::accept_async(tcp).await else {
                return;
            };
            let (mut tx, mut rx) = ws.split();
            while let Some(Ok(msg)) = rx.next().await {
                if (msg.is_text() || msg.is_binary()) && tx.send(msg).await.is_err() {
                    return;
                }
            }
        });
    }
}

async fn client(url: &str, conns: usize, secs: u64, window: usize, bytes: usize) {
    let received = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut sockets = Vec::new();
    for _ in 0..conns {
        let (ws, _) = tokio_tungstenite::connect_async(url)
            .await
            .unwrap_or_else(|e| panic!("connect {url}: {e}"));
        sockets.push(ws);
    }
    let payload = Message::binary(vec![b'x'; bytes]);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for ws in sockets {
        let (received, stop, payload) = (received.clone(), stop.clone(), payload.clone());
        tasks.push(tokio::spawn(async move {
            let (mut tx, mut rx) = ws.split();
            for _ in 0..window {
                tx.send(payload.clone()).await.expect("send");
            }
            // Each echo sends the next message: WINDOW always in flight.
            while let Some(Ok(msg)) = rx.next().await {
                if !msg.is_binary() {
                    continue;
                }
                received.fetch_add(1, Ordering::Relaxed);
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                if tx.send(payload.clone()).await.is_err() {
                    break;
                }
            }
            let _ = tx.close().await;
        }));
    }
    tokio::time::sleep(Duration::from_secs(secs)).await;
    let n = received.load(Ordering::Relaxed);
    let took = started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(2), t).await;
    }
    println!(
        "messages_per_second={:.0} messages={n} seconds={took:.2}",
        n as f64 / took
    );
}
