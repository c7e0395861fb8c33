//! One port for both HTTPS (what kube-apiserver serves, and what client-go needs before it
//! sends a token) and plain HTTP (kube-rs test clients and the lab): a connection whose first
//! byte starts a TLS handshake (0x16) is served over TLS, any other over plain HTTP.
//! Handshakes run in their own tasks, so a slow client never holds up the others.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_util::either::Either;

use super::tls::TlsIdentity;

/// A connection of either kind.
pub type Connection = Either<TlsStream<TcpStream>, TcpStream>;

/// The first byte of a TLS record carrying a handshake.
const TLS_HANDSHAKE: u8 = 0x16;
/// A client that sends nothing (or no complete handshake) for this long is dropped.
const FIRST_BYTES_TIMEOUT: Duration = Duration::from_secs(10);

/// Accepts TCP connections and hands them to axum once their protocol is known.
pub struct DualListener {
    ready: mpsc::Receiver<(Connection, SocketAddr)>,
    local: SocketAddr,
    acceptor_task: JoinHandle<()>,
}

async fn classify(
    tcp: TcpStream,
    tls: TlsAcceptor,
) -> Result<Connection, Box<dyn std::error::Error + Send + Sync>> {
    let mut first = [0u8; 1];
    let n = tokio::time::timeout(FIRST_BYTES_TIMEOUT, tcp.peek(&mut first)).await??;
    if n == 1 && first[0] == TLS_HANDSHAKE {
        let stream = tokio::time::timeout(FIRST_BYTES_TIMEOUT, tls.accept(tcp)).await??;
        Ok(Either::Left(stream))
    } else {
        Ok(Either::Right(tcp))
    }
}

impl DualListener {
    pub fn new(listener: TcpListener, local: SocketAddr, identity: &TlsIdentity) -> Self {
        let (tx, ready) = mpsc::channel(64);
        let tls = TlsAcceptor::from(identity.server_config.clone());
        let acceptor_task = tokio::spawn(async move {
            loop {
                let (tcp, peer) = match listener.accept().await {
                    Ok(c) => c,
                    Err(e) => {
                        // Out of file descriptors and the like: wait instead of spinning.
                        tracing::debug!("apiserver accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let (tx, tls) = (tx.clone(), tls.clone());
                tokio::spawn(async move {
                    match classify(tcp, tls).await {
                        Ok(conn) => {
                            let _ = tx.send((conn, peer)).await;
                        }
                        Err(e) => tracing::debug!(%peer, "apiserver connection dropped: {e}"),
                    }
                });
            }
        });
        DualListener {
            ready,
            local,
            acceptor_task,
        }
    }
}

impl Drop for DualListener {
    fn drop(&mut self) {
        // Releases the port at once (a restart binds it again).
        self.acceptor_task.abort();
    }
}

impl axum::serve::Listener for DualListener {
    type Io = Connection;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(c) => c,
            // The acceptor task only ends when this listener is dropped.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}
