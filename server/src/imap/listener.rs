//! Accepts IMAP connections (the shared accept loop): a connection beyond `max_connections`
//! is answered `* BYE` and closed at once.

use std::sync::Arc;

use tokio::net::TcpListener;

use super::cache::StructureCache;
use super::session::Session;
use crate::connection::accept::Contexts;
use crate::Context;

/// Runs one IMAP listener until the process ends; `cache` is shared by every listener. With
/// `implicit_tls` (imaps) every connection starts with the TLS handshake.
pub async fn serve(listener: TcpListener, live: Arc<dyn Contexts>, cache: Arc<StructureCache>, implicit_tls: bool) {
    let ctx = live.current();
    let caps = crate::connection::accept::Caps {
        max: ctx.config.imap.max_connections,
        per_address: ctx.config.imap.max_connections_per_address,
        refusal: b"* BYE Too many connections, try again later\r\n".to_vec(),
        address_refusal: b"* BYE Too many connections from your address, try again later\r\n".to_vec(),
    };
    let protocol = if implicit_tls { "imaps" } else { "imap" };
    crate::connection::accept::serve(listener, protocol, live, caps, move |socket, peer, _session, ctx: Arc<Context>| {
        let cache = Arc::clone(&cache);
        async move {
            let stream = Box::pin(crate::tls::open(socket, ctx.tls.as_deref(), implicit_tls)).await?;
            Box::new(Session::new(stream, ctx, cache, peer)).run().await
        }
    })
    .await
}
