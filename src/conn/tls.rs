//! A connection on a `tls` listen address: the handshake (under its
//! timeout, given up on drain), then the same serving as plain HTTP with
//! the session kept for the pipeline. The socket is counted under TLS and
//! sniffed above it (`activity.rs`: `Tracked`, `Sniffed`). A failed handshake is the client's
//! business: logged at debug, counted, and the socket closed.

use std::{net::SocketAddr, sync::Arc};

use tokio::net::TcpStream;
use troupe_actors::ConnShutdown;

use super::{Activity, ConnConfig, Sniffed, Tracked, run};
use crate::{
    observe::metrics::HandshakeOutcome,
    pipeline::Pipeline,
    tls::{HandshakeError, Tls},
};

/// Serves one TLS connection: handshake, then HTTP/1.1 or HTTP/2 by ALPN.
pub async fn serve_tls(
    pipeline: Arc<Pipeline>,
    cfg: Arc<ConnConfig>,
    tls: Arc<Tls>,
    stream: TcpStream,
    peer: SocketAddr,
    shutdown: ConnShutdown,
) {
    // Counted on the wire, under TLS: the watchdog sees a client that
    // trickles records after the handshake (header timeout), and the
    // byte counts are what crossed the network.
    let activity = Arc::new(Activity::default());
    let tcp = Tracked::<false>::new(stream, activity.clone(), pipeline.metrics().clone());
    let (stream, session) = match tls
        .accept(tcp, cfg.handshake_timeout, &shutdown.drain)
        .await
    {
        Ok(done) => done,
        Err(err) => {
            tls.metrics.handshake(match &err {
                HandshakeError::Timeout => HandshakeOutcome::Timeout,
                HandshakeError::Draining => HandshakeOutcome::Draining,
                HandshakeError::Failed(_) => HandshakeOutcome::Failed,
                HandshakeError::AcmeValidation => HandshakeOutcome::Ok,
            });
            tracing::debug!(%peer, error = %err, "TLS handshake did not finish; connection closed");
            return;
        }
    };
    tls.metrics.handshake(HandshakeOutcome::Ok);
    let io = Sniffed::new(stream, activity.clone());
    run(pipeline, cfg, io, activity, peer, shutdown, session).await;
}
