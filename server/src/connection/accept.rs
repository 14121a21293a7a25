//! The accept loop every listener shares: a cap on concurrent sessions and another on
//! concurrent sessions from one client address (one more connection is sent the protocol's
//! refusal and closed at once, instead of waiting unserved), back-off when accept fails
//! (typically EMFILE), and one task per session in its own log span. Each session is served
//! with the context current when it was accepted (a reload changes it for later sessions
//! only), and is counted so that shutdown can wait for it. When the server drains, the loop
//! ends and the listening socket is closed.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tracing::{Instrument, Span};

use crate::lifecycle::{reached, Stage};
use crate::Context;

/// Where a listener gets the context each session is served with: the running set, which a
/// reload replaces for later sessions. `server` implements it; listeners need nothing else
/// of the server.
pub trait Contexts: Send + Sync + 'static {
    fn current(&self) -> Arc<Context>;
}

/// How many sessions a listener serves, and what the others hear.
pub struct Caps {
    /// Concurrent sessions on the listener.
    pub max: usize,
    /// Concurrent sessions from one client address.
    pub per_address: usize,
    /// What a connection over `max` is sent before it is closed.
    pub refusal: Vec<u8>,
    /// What a connection over `per_address` is sent.
    pub address_refusal: Vec<u8>,
}

/// Counts one address's sessions while it lives.
struct AddressSlot {
    counts: Arc<Mutex<HashMap<IpAddr, usize>>>,
    ip: IpAddr,
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let mut counts = self.counts.lock().expect("address counts");
        if let Some(n) = counts.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                counts.remove(&self.ip);
            }
        }
    }
}

/// Sends `bytes` to a connection that will not be served, and closes it.
fn refuse(mut socket: TcpStream, bytes: Arc<[u8]>, span: Span, why: &'static str) {
    tokio::spawn(
        async move {
            tracing::warn!("{why}, refusing");
            let _ = socket.write_all(&bytes).await;
            let _ = socket.shutdown().await;
        }
        .instrument(span),
    );
}

/// Runs `listener` until the server drains. `protocol` names it in logs and metrics; `caps`
/// bounds the sessions; `session` serves one connection with the context it is given.
pub async fn serve<F, Fut>(listener: TcpListener, protocol: &'static str, live: Arc<dyn Contexts>, caps: Caps, session: F)
where
    F: Fn(TcpStream, SocketAddr, String, Arc<Context>) -> Fut,
    Fut: Future<Output = std::io::Result<()>> + Send + 'static,
{
    let limit = Arc::new(Semaphore::new(caps.max));
    let refusal: Arc<[u8]> = caps.refusal.into();
    let address_refusal: Arc<[u8]> = caps.address_refusal.into();
    let counts: Arc<Mutex<HashMap<IpAddr, usize>>> = Arc::default();
    let shutdown = Arc::clone(&live.current().shutdown);
    let mut stage = shutdown.watch();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = reached(&mut stage, Stage::Draining) => {
                tracing::info!(protocol, "listener closed");
                return;
            }
        };
        let (socket, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::error!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        crate::metrics::get().connection(protocol);
        let _ = socket.set_nodelay(true);
        let session_id = crate::ids::session_id();
        let span = tracing::info_span!("session", protocol, session = %session_id, peer = %peer);
        let slot = {
            let mut map = counts.lock().expect("address counts");
            let n = map.entry(peer.ip()).or_insert(0);
            if *n >= caps.per_address {
                None
            } else {
                *n += 1;
                Some(AddressSlot { counts: Arc::clone(&counts), ip: peer.ip() })
            }
        };
        let Some(slot) = slot else {
            refuse(socket, Arc::clone(&address_refusal), span, "too many connections from this address");
            continue;
        };
        let Ok(permit) = Arc::clone(&limit).try_acquire_owned() else {
            refuse(socket, Arc::clone(&refusal), span, "connection limit reached");
            continue;
        };
        let counted = shutdown.session();
        // Boxed: a future that an async block captures and then awaits is laid out twice in
        // the block's state (as the captured value and as the awaited one); measured, that
        // doubled every idle SMTP session's task to 6.5 KB.
        let served = Box::pin(session(socket, peer, session_id, live.current()));
        tokio::spawn(
            async move {
                tracing::debug!("connected");
                if let Err(e) = served.await {
                    tracing::debug!(error = %e, "session ended with an IO error");
                }
                tracing::debug!("disconnected");
                drop(permit);
                drop(slot);
                drop(counted);
            }
            .instrument(span),
        );
    }
}
