//! The durable queue: every accepted message is written to the spool and fsync'd before the
//! `250`, and delivery runs from there, after the reply, in its own tasks.
//!
//! Layout:
//! - `spool`: the files (`DATA_DIR/queue/ID.msg` and `ID.env`) and the lock that makes the
//!   running server their only writer.
//! - `admin`: `wasmail queue list|flush|remove`, and the request files through which the
//!   last two reach a running server.
//! - this file: the scheduler — one task per entry, which makes an attempt when a worker slot
//!   is free and then sleeps until its next retry, a flush or an operator's removal.
//! - `attempt`: one delivery attempt (local mailboxes and the relay), `routing`: what the
//!   delivery hooks decide per recipient, `notices`: the notices owed, retries and the end of
//!   an entry.
//! - `dsn`: the notices' content (bounces, delay warnings, success notices).
//! - `route`, `client`: the next hop of a remote domain, and the SMTP client that relays.
//!
//! Exactly once: each local delivery is keyed by the entry and the mailbox's place in it. An
//! attempt records what it delivered in the envelope; a crash between a delivery and that
//! record leaves the key in the mailbox, and the first attempt after a restart asks the store
//! to look for it before storing (`check`), so the retry makes no second copy.
//!
//! Nothing is lost: an entry leaves the spool only when every recipient is final and every
//! notice owed is queued, or when an operator removes it — and only its own task removes it,
//! between attempts, so an attempt in flight never writes back an entry that was removed.

pub mod admin;
mod attempt;
pub mod client;
pub mod dane;
pub mod dsn;
mod journal;
mod notices;
pub mod route;
mod routing;
pub mod spool;
pub mod sts;
pub mod tlsrpt;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::{broadcast, Notify, Semaphore};

pub use spool::{Envelope, Mailbox, Recipient, Spool, SpoolLock, State};

use crate::config::QueueConfig;
use crate::lifecycle::{Shutdown, Stage};
use crate::plugin::Registry;
use crate::store::MailStore;

/// Where an address is delivered locally: the queue needs it for the notices it sends.
pub trait Router: Send + Sync {
    /// The mailboxes of a local address, or None if it is not local.
    fn local_mailboxes(&self, address: &str) -> Option<Vec<String>>;

    /// Whether mail for `domain` is delivered here.
    fn is_local(&self, domain: &str) -> bool;
}

/// How long a flush of one domain stands for the next identical one (see `Queue::last_flush`).
const FLUSH_COALESCE: Duration = Duration::from_secs(1);

pub struct Queue {
    /// The files.
    spool: Spool,
    /// Held for the server's life: no admin command changes the spool behind its back.
    _lock: SpoolLock,
    /// The name in notices (Reporting-MTA, MAILER-DAEMON@) and in EHLO when relaying.
    hostname: String,
    /// Where local recipients' mail goes.
    store: Arc<dyn MailStore>,
    /// What a reload may change: each attempt takes the set current when it starts.
    settings: RwLock<Arc<Settings>>,
    /// Free local delivery slots (`[queue] workers`).
    slots: Arc<Semaphore>,
    /// Free relay session slots (`[queue] relay_workers`).
    relay_slots: Arc<Semaphore>,
    /// Delivery attempts in flight: zero means none (shutdown waits for it).
    in_flight: tokio::sync::watch::Sender<usize>,
    /// Flush requests: every waiting entry whose recipients match (None: all) tries now.
    flush: broadcast::Sender<Option<String>>,
    /// The last flush and when it was sent: the same flush again within
    /// [`FLUSH_COALESCE`] is already under way, so a client looping on ETRN costs no
    /// wake-ups of every entry and no log line per command.
    last_flush: Mutex<Option<(Option<String>, std::time::Instant)>>,
    /// Once the server drains, no new attempt starts.
    shutdown: Arc<Shutdown>,
    /// Every entry of the spool this server knows, from the moment its files are written to
    /// the moment they are removed: for metrics, ETRN and removal requests.
    entries: Mutex<HashMap<String, Entry>>,
    /// Domains' MTA-STS policies, cached (kept across reloads and, on disk, restarts).
    sts: sts::Sts,
    /// Where the relay's TLS sessions are recorded for RFC 8460 reports.
    tlsrpt_dir: std::path::PathBuf,
}

/// What the scheduler keeps in memory about one entry.
struct Entry {
    /// Arrival, seconds since the epoch: the queue's age for metrics.
    arrived: u64,
    /// The domains of the recipients still pending, lower case: ETRN counts without reading
    /// the spool.
    pending: Vec<String>,
    /// Set by an operator's `wasmail queue remove`; the entry's task removes it between
    /// attempts and writes each answer file.
    removal: Option<Vec<std::path::PathBuf>>,
    /// Wakes the entry's task (sleeping until its next retry) for a removal.
    wake: Arc<Notify>,
}

/// Forgets an entry when its task ends.
struct Tracked<'a>(&'a Queue, String);

impl Drop for Tracked<'_> {
    fn drop(&mut self) {
        let entry = self.0.entries.lock().expect("queue entries").remove(&self.1);
        // The entry left the queue (delivered or bounced) before its removal was due.
        for answer in entry.and_then(|e| e.removal).unwrap_or_default() {
            admin::answer(&answer, &Ok(false));
        }
    }
}

/// The part of the queue a reload replaces.
pub struct Settings {
    /// For the recipients of notices.
    pub router: Arc<dyn Router>,
    /// Next hops for remote domains.
    pub hops: route::Router,
    /// The plugins, for the delivery hooks.
    pub plugins: Arc<Registry>,
    /// Retry schedule, expiry.
    pub config: QueueConfig,
    /// How much of a message's header the delivery hooks see (`[mime]` header limits).
    pub header_limits: wasmail_mime::Limits,
    /// Per-user limits a local delivery must keep within.
    pub quota: crate::config::QuotaConfig,
    /// The envelope sender of forwarded mail is rewritten with it (`[srs]`).
    pub srs: Option<Arc<crate::authenticity::srs::Srs>>,
    /// The signer of the hostname's domain seals forwarded mail (ARC).
    pub dkim: Arc<crate::authenticity::signing::Signers>,
    /// The resolver, for the checks an ARC seal records and MTA-STS.
    pub dns: Arc<crate::dns::Dns>,
    /// The client TLS that checks certificates (MTA-STS); None turns MTA-STS off.
    pub verified_tls: Option<Arc<rustls::ClientConfig>>,
}

impl Settings {
    pub fn new(
        router: Arc<dyn Router>,
        plugins: Arc<Registry>,
        config: QueueConfig,
        routes: &std::collections::BTreeMap<String, String>,
        dns: Arc<crate::dns::Dns>,
    ) -> Settings {
        let hops = route::Router::new(routes, Arc::clone(&dns), config.mx_port);
        Settings {
            router,
            hops,
            plugins,
            config,
            header_limits: wasmail_mime::Limits::default(),
            quota: Default::default(),
            srs: None,
            dkim: Default::default(),
            dns,
            verified_tls: None,
        }
    }
}

/// Seconds since the epoch.
pub fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs()
}

impl Queue {
    /// Opens the spool and takes its lock: fails if another process holds it (a running
    /// server, or an admin command removing an entry).
    pub fn open(
        data_dir: &std::path::Path,
        hostname: &str,
        store: Arc<dyn MailStore>,
        settings: Settings,
        shutdown: Arc<Shutdown>,
    ) -> std::io::Result<Queue> {
        let slots = Arc::new(Semaphore::new(settings.config.workers.max(1)));
        let relay_slots = Arc::new(Semaphore::new(settings.config.relay_workers.max(1)));
        let (flush, _) = broadcast::channel(16);
        let spool = Spool::open(data_dir)?;
        let Some(lock) = spool.lock()? else {
            return Err(std::io::Error::other(format!("{} is locked by another process", spool.dir().join("lock").display())));
        };
        Ok(Queue {
            spool,
            _lock: lock,
            hostname: hostname.to_string(),
            store,
            settings: RwLock::new(Arc::new(settings)),
            slots,
            relay_slots,
            in_flight: tokio::sync::watch::Sender::new(0),
            flush,
            last_flush: Mutex::default(),
            shutdown,
            entries: Mutex::default(),
            sts: sts::Sts::open(data_dir.join("mta-sts")),
            tlsrpt_dir: data_dir.join("tlsrpt"),
        })
    }

    /// Entries in the queue, and the age in seconds of the oldest.
    pub fn size_and_age(&self) -> (usize, u64) {
        let entries = self.entries.lock().expect("queue entries");
        let oldest = entries.values().map(|e| e.arrived).min().map(|arrived| now().saturating_sub(arrived)).unwrap_or(0);
        (entries.len(), oldest)
    }

    /// The settings attempts starting now use.
    fn settings(&self) -> Arc<Settings> {
        Arc::clone(&self.settings.read().expect("queue settings"))
    }

    /// Replaces the settings (a reload): attempts in flight finish with the old ones.
    pub fn reconfigure(&self, settings: Settings) {
        *self.settings.write().expect("queue settings") = Arc::new(settings);
    }

    /// Waits until no delivery attempt is in flight (at shutdown, after draining).
    pub async fn attempts_finished(&self) {
        let _ = self.in_flight.subscribe().wait_for(|n| *n == 0).await;
    }

    pub fn spool(&self) -> &Spool {
        &self.spool
    }

    /// Starts knowing an entry (before its files are written, so that a removal request
    /// never finds files the scheduler does not know).
    fn track(&self, envelope: &Envelope) {
        let entry = Entry { arrived: envelope.arrived, pending: pending_domains(envelope), removal: None, wake: Arc::default() };
        self.entries.lock().expect("queue entries").insert(envelope.id.clone(), entry);
    }

    /// Writes an accepted message durably (blocking: call it on the blocking pool). When this
    /// returns Ok, the `250` may be sent; then hand the envelope to [`Queue::submitted`].
    pub fn enqueue(&self, envelope: &Envelope, pieces: &[&[u8]]) -> std::io::Result<()> {
        self.track(envelope);
        let written = self.spool.enqueue(envelope, pieces);
        if written.is_err() {
            self.entries.lock().expect("queue entries").remove(&envelope.id);
        }
        written
    }

    /// Starts delivering a freshly queued entry.
    pub fn submitted(self: &Arc<Self>, envelope: Envelope) {
        tokio::spawn(Arc::clone(self).drive(envelope, false));
    }

    /// At start, before any session runs: removes what interrupted writes left, then starts
    /// delivering what the spool holds from before (after a restart or a crash). Each entry's
    /// first attempt checks the mailboxes for copies already stored.
    pub fn recover(self: &Arc<Self>) -> std::io::Result<usize> {
        self.spool.clean_leftovers(&self._lock)?;
        let store = Arc::clone(&self.store);
        let mut entries = self.spool.start_log(&self._lock, Box::new(move || store.sync_deliveries()))?;
        entries.extend(self.spool.scan_files()?);
        entries.sort_by(|a, b| (a.arrived, &a.id).cmp(&(b.arrived, &b.id)));
        let n = entries.len();
        for envelope in entries {
            self.track(&envelope);
            tokio::spawn(Arc::clone(self).drive(envelope, true));
        }
        Ok(n)
    }

    /// Asks every waiting entry with a recipient in `domain` (all, for None) to try now.
    pub fn flush(&self, domain: Option<String>) {
        {
            let mut last = self.last_flush.lock().expect("last flush");
            let now = std::time::Instant::now();
            if matches!(&*last, Some((previous, at)) if *previous == domain && now.duration_since(*at) < FLUSH_COALESCE) {
                return;
            }
            *last = Some((domain.clone(), now));
        }
        tracing::info!(domain = domain.as_deref().unwrap_or("(all)"), "queue flush");
        let _ = self.flush.send(domain);
    }

    /// Queue entries with a pending recipient in `domain` (or, with `subdomains`, below it).
    pub fn pending_for(&self, domain: &str, subdomains: bool) -> usize {
        let entries = self.entries.lock().expect("queue entries");
        entries.values().filter(|e| e.pending.iter().any(|d| domain_matches(d, domain, subdomains))).count()
    }

    /// Like [`Queue::flush`], for ETRN's `@domain` form too.
    pub fn flush_matching(&self, domain: String, subdomains: bool) {
        self.flush(Some(if subdomains { format!("@{domain}") } else { domain }));
    }

    /// Picks up `wasmail queue flush` and `queue remove` requests, once a second, for as long
    /// as the server runs.
    pub async fn watch_requests(self: Arc<Self>) {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tick.tick().await;
            let spool = self.spool.clone();
            let Ok(requests) = tokio::task::spawn_blocking(move || admin::take_requests(&spool)).await else { continue };
            for request in requests {
                match request {
                    admin::Request::Flush(domain) => self.flush(domain),
                    admin::Request::Remove { id, answer } => self.request_removal(id, answer).await,
                }
            }
        }
    }

    /// An operator's removal: the entry's task does it between attempts; an entry no task
    /// drives (an envelope that cannot be read) is removed here.
    async fn request_removal(self: &Arc<Self>, id: String, answer: std::path::PathBuf) {
        {
            let mut entries = self.entries.lock().expect("queue entries");
            if let Some(entry) = entries.get_mut(&id) {
                tracing::info!(queue_id = id, "removal requested by the operator");
                entry.removal.get_or_insert_with(Vec::new).push(answer);
                entry.wake.notify_one();
                return;
            }
        }
        let queue = Arc::clone(self);
        let removed = tokio::task::spawn_blocking(move || {
            let removed = queue.spool.remove(&id);
            if let Ok(true) = removed {
                tracing::info!(queue_id = id, "queue entry removed by the operator");
            }
            removed
        })
        .await;
        admin::answer(&answer, &removed.unwrap_or_else(|e| Err(std::io::Error::other(e))));
    }

    /// Removes the entry if an operator asked for it (in its task, between attempts);
    /// true if it is gone.
    async fn removed_by_operator(self: &Arc<Self>, id: &str) -> bool {
        let answers = self.entries.lock().expect("queue entries").get_mut(id).and_then(|e| e.removal.take());
        let Some(answers) = answers else { return false };
        let queue = Arc::clone(self);
        let key = id.to_string();
        let removed = tokio::task::spawn_blocking(move || queue.spool.remove(&key)).await.unwrap_or_else(|e| Err(std::io::Error::other(e)));
        match &removed {
            Ok(_) => tracing::info!(queue_id = id, "queue entry removed by the operator"),
            Err(e) => tracing::error!(queue_id = id, error = %e, "cannot remove the queue entry the operator named"),
        }
        for answer in answers {
            admin::answer(&answer, &removed);
        }
        removed.is_ok()
    }

    /// The life of one entry: attempts until it is done, sleeping between them.
    async fn drive(self: Arc<Self>, mut envelope: Envelope, mut check: bool) {
        let _tracked = Tracked(&self, envelope.id.clone());
        let wake = match self.entries.lock().expect("queue entries").get(&envelope.id) {
            Some(entry) => Arc::clone(&entry.wake),
            None => return,
        };
        let mut flushes = self.flush.subscribe();
        let mut stage = self.shutdown.watch();
        loop {
            if self.removed_by_operator(&envelope.id).await {
                return;
            }
            // Draining: the entry waits in the spool for the next start.
            if self.shutdown.stage() != Stage::Running {
                return;
            }
            self.in_flight.send_modify(|n| *n += 1);
            let attempt = tokio::spawn(Arc::clone(&self).attempt(envelope, check)).await;
            self.in_flight.send_modify(|n| *n -= 1);
            envelope = match attempt {
                Ok(Some(envelope)) => envelope,
                Ok(None) => return,
                Err(e) => {
                    // A panic in an attempt: the entry stays in the spool for the next start.
                    tracing::error!(error = %e, "a delivery attempt failed unexpectedly; entry left for the next start");
                    return;
                }
            };
            if let Some(entry) = self.entries.lock().expect("queue entries").get_mut(&envelope.id) {
                entry.pending = pending_domains(&envelope);
            }
            check = false;
            let wait = Duration::from_secs(envelope.next_attempt.saturating_sub(now()));
            let sleep = tokio::time::sleep(wait);
            tokio::pin!(sleep);
            loop {
                tokio::select! {
                    _ = &mut sleep => break,
                    _ = wake.notified() => break,
                    _ = crate::lifecycle::reached(&mut stage, Stage::Draining) => return,
                    request = flushes.recv() => match request {
                        Ok(Some(node)) if !matches_node(&envelope, &node) => continue,
                        Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => break,
                        Err(broadcast::error::RecvError::Closed) => return,
                    },
                }
            }
        }
    }
}

/// The domains of the pending recipients, lower case, each once.
fn pending_domains(envelope: &Envelope) -> Vec<String> {
    let mut domains: Vec<String> = envelope
        .recipients
        .iter()
        .filter(|r| r.state == State::Pending)
        .filter_map(|r| r.address.rsplit_once('@').map(|(_, d)| d.to_ascii_lowercase()))
        .collect();
    domains.sort();
    domains.dedup();
    domains
}

/// Whether `domain` (lower case) is `node`, or below it with `subdomains`.
fn domain_matches(domain: &str, node: &str, subdomains: bool) -> bool {
    domain == node || (subdomains && domain.strip_suffix(node).is_some_and(|rest| rest.ends_with('.')))
}

/// Whether a pending recipient of `envelope` is in the flush request's node: `domain`, or
/// `@domain` for the domain and its subdomains (ETRN, RFC 1985).
fn matches_node(envelope: &Envelope, node: &str) -> bool {
    match node.strip_prefix('@') {
        Some(domain) => has_pending_matching(envelope, domain, true),
        None => has_pending_matching(envelope, node, false),
    }
}

fn has_pending_matching(envelope: &Envelope, domain: &str, subdomains: bool) -> bool {
    pending_domains(envelope).iter().any(|d| domain_matches(d, domain, subdomains))
}
