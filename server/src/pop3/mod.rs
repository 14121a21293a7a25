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
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tracing::Instrument;

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

/// Runs one POP3 listener until the process ends.
pub async fn serve(listener: TcpListener, ctx: Arc<Context>, locks: Arc<Locks>) {
    let limit = Arc::new(Semaphore::new(ctx.config.pop3.max_connections));
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
        let span = tracing::info_span!("pop3", session = %crate::ids::session_id(), peer = %peer);
        let Ok(permit) = Arc::clone(&limit).try_acquire_owned() else {
            tokio::spawn(
                async move {
                    tracing::warn!("connection limit reached, refusing");
                    let _ = socket.write_all(b"-ERR [SYS/TEMP] Too many connections, try again later\r\n").await;
                    let _ = socket.shutdown().await;
                }
                .instrument(span),
            );
            continue;
        };
        let (ctx, locks) = (Arc::clone(&ctx), Arc::clone(&locks));
        tokio::spawn(
            async move {
                if let Err(e) = session::Session::new(socket, ctx, locks, peer).run().await {
                    tracing::debug!(error = %e, "session ended with an IO error");
                }
                drop(permit);
            }
            .instrument(span),
        );
    }
}
