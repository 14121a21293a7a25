//! Wasmail: an SMTP, POP3 and IMAP server that stores mail in Maildir and is extended per
//! deployment by sandboxed WebAssembly plugins.
//!
//! The modules, in the order mail flows through them (each uses only those below it; the
//! wire protocols without IO are the `wasmail-proto` crate, the MIME parser and rewriter
//! `wasmail-mime`):
//! - [`server`]: `wasmail serve` — loads what the config names, binds the listeners, reloads
//!   on SIGHUP, shuts down in stages; [`lifecycle`]: the shutdown stages and the pid file.
//! - [`connection`]: the accept loop (connection caps per listener and per address) and what
//!   every session reads and writes through: bounded buffers, back-pressure, deadlines,
//!   STARTTLS; [`tls`]: certificates and the plain-or-TLS stream.
//! - [`smtp`], [`pop3`], [`imap`]: the listeners and sessions, one file per verb family.
//! - [`sasl`]: what the protocols share of authentication (PLAIN/LOGIN, password checks, the
//!   penalty for failed logins); [`abuse`]: per-address SMTP rates and blocks.
//! - [`authenticity`]: DKIM signing of mail sent, SPF/DKIM/DMARC/ARC checks of mail received.
//! - [`directory`]: where an address goes (local domains, [`users`], [`aliases`], +tags).
//! - [`plugin`]: the wasm plugin host — the hooks sessions and deliveries call.
//! - [`queue`]: the durable spool and the delivery that runs from it (local, relayed, DSN).
//! - [`store`]: the mailbox store trait and its Maildir backend.
//! - [`config`]: the TOML configuration with embedded defaults (read by all, imports none of
//!   the above); [`metrics`]: Prometheus counters and `/metrics`; [`logging`]: JSON log
//!   lines; [`ids`]: queue and session identifiers; [`dns`]: the one resolver.

#![forbid(unsafe_code)]

// Serving: the command, its stages.
pub mod lifecycle;
pub mod server;

// Connections and the sessions on them.
pub mod abuse;
pub mod connection;
pub mod imap;
pub mod pop3;
pub mod sasl;
pub mod smtp;
pub mod tls;

// Where mail goes, what runs on it, where it waits and where it is kept.
pub mod aliases;
pub mod authenticity;
pub mod directory;
pub mod plugin;
pub mod queue;
pub mod store;
pub mod users;

// Read by all.
pub mod config;
pub mod dns;
pub mod ids;
pub mod logging;
pub mod metrics;

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
    /// The DNS resolver (`[dns]`): the queue's and the authentication checks'.
    pub dns: Arc<dns::Dns>,
    /// The DKIM signers (`[[dkim.signer]]`), possibly none.
    pub dkim: Arc<authenticity::signing::Signers>,
    /// SRS for forwarded mail (`[srs]`), when on.
    pub srs: Option<Arc<authenticity::srs::Srs>>,
    /// Failed logins, shared by every protocol.
    pub penalty: Arc<sasl::Penalty>,
    /// Per-address SMTP rates and blocks.
    pub abuse: Arc<abuse::Abuse>,
    /// Shutdown stages and the count of open sessions (one for the process).
    pub shutdown: Arc<lifecycle::Shutdown>,
}
