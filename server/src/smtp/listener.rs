//! Accepts SMTP connections (the shared accept loop): a connection beyond `max_connections` is
//! answered 421 4.3.2 and closed at once (RFC 5321 3.8), instead of waiting unserved.

use std::sync::Arc;

use tokio::net::TcpListener;
use wasmail_proto::smtp::{codes, Reply};

use super::session::{Port, Session};
use crate::connection::accept::Contexts;
use crate::Context;

/// Runs one listener until the process ends. On a submissions (implicit TLS) listener the TLS
/// handshake comes first; the server checked at start that it has a certificate.
pub async fn serve(listener: TcpListener, live: Arc<dyn Contexts>, port: Port, protocol: &'static str) {
    let ctx = live.current();
    let smtp = &ctx.config.smtp;
    let caps = crate::connection::accept::Caps {
        max: smtp.max_connections,
        per_address: smtp.max_connections_per_address,
        refusal: Reply::new(421, codes::TEMP_OVERLOAD, format!("{} Too many connections, try again later", ctx.config.hostname)).to_bytes(),
        address_refusal: Reply::new(
            421,
            codes::TEMP_ABUSE,
            format!("{} Too many connections from your address, try again later", ctx.config.hostname),
        )
        .to_bytes(),
    };
    crate::connection::accept::serve(listener, protocol, live, caps, move |socket, peer, session, ctx: Arc<Context>| async move {
        let stream = Box::pin(crate::tls::open(socket, ctx.tls.as_deref(), port == Port::Submissions)).await?;
        Box::new(Session::new(stream, ctx, peer, session, port)).run().await
    })
    .await
}
