//! Accepts SMTP connections (the shared accept loop): a connection beyond `max_connections` is
//! answered 421 4.3.2 and closed at once (RFC 5321 3.8), instead of waiting unserved.

use std::sync::Arc;

use tokio::net::TcpListener;

use super::proto::{codes, Reply};
use super::session::Session;
use crate::Context;

/// Runs one listener until the process ends.
pub async fn serve(listener: TcpListener, ctx: Arc<Context>) {
    let reply = Reply::new(421, codes::TEMP_OVERLOAD, format!("{} Too many connections, try again later", ctx.config.hostname));
    let max = ctx.config.smtp.max_connections;
    crate::accept::serve(
        listener,
        max,
        |session, peer| tracing::info_span!("smtp", session = %session, peer = %peer),
        reply.to_bytes(),
        move |socket, peer, session| Session::new(socket, Arc::clone(&ctx), peer, session).run(),
    )
    .await
}
