//! The HTTP accept loop, plain or TLS. Connections are owned by a `JoinSet`, so dropping the
//! server (a crash in tests) ends every connection at once, and a graceful stop drains them with
//! a deadline.

use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use hyper_util::service::TowerToHyperService;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

/// How long a graceful stop waits for in-flight requests (long polls included).
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a client has to send its first byte and finish the TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves `app` on `listener` until `stop` is cancelled, then drains connections. With `tls`,
/// every connection must start with a TLS handshake; a plain-HTTP request gets a `400` that
/// says to use `https://`, and the connection is closed.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    tls: Option<TlsAcceptor>,
    stop: CancellationToken,
) {
    let builder = Builder::new(TokioExecutor::new());
    let graceful = GracefulShutdown::new();
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            accepted = listener.accept() => {
                let stream = match accepted {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        // Out of file descriptors and the like: back off instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                conns.spawn(connection(
                    stream,
                    app.clone(),
                    builder.clone(),
                    tls.clone(),
                    graceful.watcher(),
                ));
            }
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
    drop(listener);
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(DRAIN_TIMEOUT) => tracing::warn!("drain timed out; closing connections"),
    }
    conns.abort_all();
}

/// Serves one connection: HTTP/1.1 or HTTP/2, over TLS when `tls` is set.
async fn connection(
    stream: TcpStream,
    app: Router,
    builder: Builder<TokioExecutor>,
    tls: Option<TlsAcceptor>,
    watcher: Watcher,
) {
    let service = TowerToHyperService::new(app);
    let Some(acceptor) = tls else {
        let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
        let _ = watcher.watch(conn.into_owned()).await;
        return;
    };
    let peer = stream.peer_addr().ok();
    let handshake = async {
        if !starts_with_tls(&stream).await? {
            let mut stream = stream;
            let _ = stream.write_all(&crate::tls::plain_http_reply()).await;
            let _ = stream.shutdown().await;
            return Ok(None);
        }
        acceptor.accept(stream).await.map(Some)
    };
    let stream = match tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake).await {
        Ok(Ok(Some(stream))) => stream,
        Ok(Ok(None)) => {
            tracing::debug!(?peer, "plain HTTP on the TLS port; answered 400");
            return;
        }
        Ok(Err(e)) => {
            tracing::debug!(?peer, error = %e, "TLS handshake failed");
            return;
        }
        Err(_) => {
            tracing::debug!(?peer, "TLS handshake timed out");
            return;
        }
    };
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
    let _ = watcher.watch(conn.into_owned()).await;
}

/// Whether the client's first byte opens a TLS handshake (waits for it; `false` at once when
/// the client closes without sending anything).
async fn starts_with_tls(stream: &TcpStream) -> std::io::Result<bool> {
    let mut first = [0u8; 1];
    let n = stream.peek(&mut first).await?;
    Ok(n == 1 && first[0] == crate::tls::HANDSHAKE_RECORD)
}
