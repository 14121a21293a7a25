//! The accept loop every listener shares: a cap on concurrent sessions (one more connection is
//! sent the protocol's refusal and closed at once, instead of waiting unserved), back-off when
//! accept fails (typically EMFILE), and one task per session in its own log span.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tracing::{Instrument, Span};

/// Runs `listener` until the process ends. `span` makes a session's log span from its id and
/// peer; `refusal` is what a connection over `max` gets; `session` serves one connection.
pub async fn serve<F, Fut>(listener: TcpListener, max: usize, span: fn(&str, SocketAddr) -> Span, refusal: Vec<u8>, session: F)
where
    F: Fn(TcpStream, SocketAddr, String) -> Fut,
    Fut: Future<Output = std::io::Result<()>> + Send + 'static,
{
    let limit = Arc::new(Semaphore::new(max));
    let refusal: Arc<[u8]> = refusal.into();
    loop {
        let (mut socket, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::error!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let _ = socket.set_nodelay(true);
        let session_id = crate::ids::session_id();
        let span = span(&session_id, peer);
        let Ok(permit) = Arc::clone(&limit).try_acquire_owned() else {
            let refusal = Arc::clone(&refusal);
            tokio::spawn(
                async move {
                    tracing::warn!("connection limit reached, refusing");
                    let _ = socket.write_all(&refusal).await;
                    let _ = socket.shutdown().await;
                }
                .instrument(span),
            );
            continue;
        };
        let served = session(socket, peer, session_id);
        tokio::spawn(
            async move {
                tracing::debug!("connected");
                if let Err(e) = served.await {
                    tracing::debug!(error = %e, "session ended with an IO error");
                }
                tracing::debug!("disconnected");
                drop(permit);
            }
            .instrument(span),
        );
    }
}
