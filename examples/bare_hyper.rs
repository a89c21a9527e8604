//! The floor for `benches/load`: a bare hyper hello-world on the same
//! runtime shape as troupe with `workers: 1` (multi-thread runtime, one
//! worker, hyper-util auto builder). BENCHMARKS.md compares both to nginx.
//!
//! `cargo run --release --example bare_hyper -- 127.0.0.1:18481`

use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Response, service::service_fn};
use hyper_util::{
    rt::{TokioExecutor, TokioIo},
    server::conn::auto,
};

fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:18481".into());
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?
        .block_on(async move {
            let listener = tokio::net::TcpListener::bind(&addr).await?;
            loop {
                let (stream, _) = listener.accept().await?;
                let _ = stream.set_nodelay(true);
                tokio::spawn(async move {
                    let svc = service_fn(|_req| async {
                        let mut resp =
                            Response::new(Full::new(Bytes::from_static(b"Hello, World!\n")));
                        resp.headers_mut()
                            .insert("content-type", "text/plain".parse().expect("static"));
                        Ok::<_, Infallible>(resp)
                    });
                    let _ = auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        })
}
