//! Accepts SMTP connections. A semaphore caps concurrent sessions: a connection beyond the cap
//! is answered 421 4.3.2 and closed at once (RFC 5321 3.8), instead of waiting unserved.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tracing::Instrument;

use super::proto::{codes, Reply};
use super::session::Session;
use crate::Context;

/// Runs one listener until the process ends.
pub async fn serve(listener: TcpListener, ctx: Arc<Context>) {
    let limit = Arc::new(Semaphore::new(ctx.config.smtp.max_connections));
    loop {
        let (mut socket, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Typically EMFILE: back off instead of spinning.
                tracing::error!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let _ = socket.set_nodelay(true);
        let session_id = crate::ids::session_id();
        let span = tracing::info_span!("smtp", session = %session_id, peer = %peer);
        let session_id = session_id.to_string();
        let Ok(permit) = Arc::clone(&limit).try_acquire_owned() else {
            let reply = Reply::new(421, codes::TEMP_OVERLOAD, format!("{} Too many connections, try again later", ctx.config.hostname));
            tokio::spawn(
                async move {
                    tracing::warn!("connection limit reached, refusing");
                    let _ = socket.write_all(&reply.to_bytes()).await;
                    let _ = socket.shutdown().await;
                }
                .instrument(span),
            );
            continue;
        };
        let ctx = Arc::clone(&ctx);
        tokio::spawn(
            async move {
                tracing::debug!("connected");
                if let Err(e) = Session::new(socket, ctx, peer, session_id).run().await {
                    tracing::debug!(error = %e, "session ended with an IO error");
                }
                tracing::debug!("disconnected");
                drop(permit);
            }
            .instrument(span),
        );
    }
}
