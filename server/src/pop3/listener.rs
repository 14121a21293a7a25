//! Accepts POP3 connections (the shared accept loop): a connection beyond `max_connections`
//! is answered `-ERR [SYS/TEMP]` and closed at once.

use std::sync::Arc;

use tokio::net::TcpListener;

use super::session::Session;
use super::Locks;
use crate::connection::accept::Contexts;
use crate::Context;

/// Runs one POP3 listener until the process ends; with `implicit_tls` (pop3s) every
/// connection starts with the TLS handshake.
pub async fn serve(listener: TcpListener, live: Arc<dyn Contexts>, locks: Arc<Locks>, implicit_tls: bool) {
    let ctx = live.current();
    let caps = crate::connection::accept::Caps {
        max: ctx.config.pop3.max_connections,
        per_address: ctx.config.pop3.max_connections_per_address,
        refusal: b"-ERR [SYS/TEMP] Too many connections, try again later\r\n".to_vec(),
        address_refusal: b"-ERR [SYS/TEMP] Too many connections from your address, try again later\r\n".to_vec(),
    };
    let protocol = if implicit_tls { "pop3s" } else { "pop3" };
    crate::connection::accept::serve(listener, protocol, live, caps, move |socket, peer, _session, ctx: Arc<Context>| {
        let locks = Arc::clone(&locks);
        async move {
            let stream = Box::pin(crate::tls::open(socket, ctx.tls.as_deref(), implicit_tls)).await?;
            Box::new(Session::new(stream, ctx, locks, peer)).run().await
        }
    })
    .await
}
