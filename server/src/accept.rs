//! The accept loop both client front-ends share: accept, admit (connection limits in
//! total and per address, [`crate::limits::Admission`]), complete the TLS handshake on
//! a TLS port ([`crate::tls`]), spawn one task per connection, stop on shutdown.

use crate::core::Core;
use crate::tls::Io;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tracing::warn;

/// How long a TLS client may take to finish its handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// An accepted, admitted client connection.
pub struct Accepted {
    pub stream: Box<dyn Io>,
    pub peer: SocketAddr,
    /// Subject DN of the client's verified TLS certificate (the `x509` auth id).
    pub x509: Option<String>,
}

/// Accepts connections on `listener` until `shutdown`, running `handle` for each
/// admitted one on its own task; with `tls`, after the handshake. `port` names the
/// front-end in log lines.
pub async fn accept_loop<F, Fut>(
    listener: TcpListener,
    core: Arc<Core>,
    shutdown: CancellationToken,
    port: &'static str,
    tls: Option<TlsAcceptor>,
    handle: F,
) where
    F: Fn(Accepted) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let handle = Arc::new(handle);
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => break,
            a = listener.accept() => a,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning.
                warn!(port, error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let admitted = match core.admission.admit(peer.ip()) {
            Ok(a) => a,
            Err(refusal) => {
                warn!(port, %peer, "connection refused: {refusal}");
                drop(stream);
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let handle = handle.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            let accepted = match tls {
                None => Accepted {
                    stream: Box::new(stream),
                    peer,
                    x509: None,
                },
                Some(tls) => {
                    match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, tls.accept(stream)).await {
                        Ok(Ok(s)) => Accepted {
                            x509: crate::tls::peer_dn(&s),
                            stream: Box::new(s),
                            peer,
                        },
                        Ok(Err(e)) => {
                            warn!(port, %peer, error = %e, "TLS handshake failed, closing");
                            return;
                        }
                        Err(_) => {
                            warn!(port, %peer, "no TLS handshake in time, closing");
                            return;
                        }
                    }
                }
            };
            handle(accepted).await;
            drop(admitted);
        });
    }
}
