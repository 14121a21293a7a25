//! IMAP4rev1 (RFC 3501) with IDLE, UIDPLUS, MOVE, LITERAL+, NAMESPACE, ID, ENABLE, SPECIAL-USE,
//! UNSELECT, CHILDREN and SASL-IR, over the same mailboxes as SMTP delivers to and POP3 reads.
//!
//! Layout:
//! - `proto`: sans-IO framing (lines and literals, with limits) and command parsing.
//! - `session`: the connection, the state machine and the selected mailbox's view.
//! - one file per command family: `auth` (LOGIN, AUTHENTICATE), `mailbox` (SELECT, CREATE,
//!   LIST, STATUS, ...), `append`, `fetch`, `flags` (STORE), `copy` (COPY, MOVE), `expunge`
//!   (EXPUNGE, CLOSE, UNSELECT), `search`, `idle`.
//! - `structure`: ENVELOPE, BODYSTRUCTURE and body sections from the MIME parser; `cache`
//!   keeps the rendered structures.
//! - this file: the listener.

mod append;
mod auth;
mod cache;
mod copy;
mod expunge;
mod fetch;
mod flags;
mod idle;
mod mailbox;
pub mod proto;
mod search;
mod session;
pub mod structure;

use std::sync::Arc;

use tokio::net::TcpListener;

use crate::connection::accept::Contexts;
use crate::Context;

pub use cache::StructureCache;

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
            let stream = crate::tls::open(socket, ctx.tls.as_deref(), implicit_tls).await?;
            session::Session::new(stream, ctx, cache, peer).run().await
        }
    })
    .await
}
