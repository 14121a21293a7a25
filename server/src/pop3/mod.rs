//! POP3 (RFC 1939 with RFC 2449 CAPA and RFC 5034 SASL PLAIN) over the same mailboxes as
//! SMTP delivers to.
//!
//! Layout:
//! - `proto`: sans-IO command lines and commands.
//! - `session`: the state machine, one session per connection.
//! - this file: the listener and the maildrop locks.

pub mod proto;
mod session;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use tokio::net::TcpListener;

use crate::connection::accept::Contexts;
use crate::Context;

/// The maildrops in use: one POP3 session per mailbox at a time (RFC 1939 8). One server
/// process serves a data directory, so the set lives in memory.
#[derive(Default)]
pub struct Locks {
    users: Mutex<HashSet<String>>,
}

impl Locks {
    /// Takes the lock; false if another session has it.
    pub fn acquire(&self, user: &str) -> bool {
        self.users.lock().expect("lock set").insert(user.to_string())
    }

    pub fn release(&self, user: &str) {
        self.users.lock().expect("lock set").remove(user);
    }
}

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
            let stream = crate::tls::open(socket, ctx.tls.as_deref(), implicit_tls).await?;
            session::Session::new(stream, ctx, locks, peer).run().await
        }
    })
    .await
}
