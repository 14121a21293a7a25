//! Wasmail: an SMTP, POP3 and IMAP server that stores mail in Maildir and is
//! extended per deployment by sandboxed WebAssembly plugins.
//!
//! Layout:
//! - [`config`]: the TOML configuration with embedded defaults.
//! - [`users`], [`aliases`], [`directory`]: who has a mailbox, and where an address goes.
//! - [`smtp`]: the SMTP listener and sessions; [`smtp::proto`] is the sans-IO protocol.
//! - [`pop3`]: the POP3 listener and sessions over the same mailboxes.
//! - [`store`]: the mailbox store trait and its Maildir backend.
//! - [`queue`]: the durable spool and the delivery that runs from it.
//! - [`plugin`]: the wasm plugin host (wasmtime), and the hooks the SMTP session calls.
//! - [`ids`]: queue and session identifiers.
//! - [`tls`]: certificates, the TLS acceptor and the stream sessions use; [`connection`]: the
//!   accept loop and the buffers, deadlines and STARTTLS every session reads and writes
//!   through; [`sasl`]: what the protocols share of authentication.
//! - [`server`]: wiring it together for `wasmail serve`, and reload; [`lifecycle`]: the
//!   shutdown stages and the pid file; [`metrics`]: Prometheus counters and `/metrics`.

#![forbid(unsafe_code)]

pub mod abuse;
pub mod aliases;
pub mod config;
pub mod connection;
pub mod directory;
pub mod ids;
pub mod imap;
pub mod lifecycle;
pub mod logging;
pub mod metrics;
pub mod mime;
pub mod plugin;
pub mod pop3;
pub mod queue;
pub mod sasl;
pub mod server;
pub mod smtp;
pub mod store;
pub mod tls;
pub mod users;

use std::sync::Arc;

/// What every session shares: the configuration, the directory of users and the store.
pub struct Context {
    /// The configuration, after command-line overrides.
    pub config: config::Config,
    /// Local domains, users and aliases.
    pub directory: Arc<directory::Directory>,
    /// Where mail is stored.
    pub store: Arc<dyn store::MailStore>,
    /// Where accepted mail waits for delivery.
    pub queue: Arc<queue::Queue>,
    /// The loaded plugins (possibly none).
    pub plugins: Arc<plugin::Registry>,
    /// The certificate and key, when `[tls]` names files that exist: STARTTLS, STLS and the
    /// TLS listeners need it.
    pub tls: Option<Arc<tls::Tls>>,
    /// Failed logins, shared by every protocol.
    pub penalty: Arc<sasl::Penalty>,
    /// Per-address SMTP rates and blocks.
    pub abuse: Arc<abuse::Abuse>,
    /// Shutdown stages and the count of open sessions (one for the process).
    pub shutdown: Arc<lifecycle::Shutdown>,
}
