//! The durable queue: every accepted message is written to the spool and fsync'd before the
//! `250`, and delivery runs from there, after the reply, in its own tasks.
//!
//! Layout:
//! - `spool`: the files (`DATA_DIR/queue/ID.msg` and `ID.env`).
//! - `admin`: `wasmail queue list|flush|remove`.
//! - `dsn`: delivery status notifications (bounces, delay warnings, success notices).
//! - `route`, `client`: the next hop of a remote domain, and the SMTP client that relays.
//! - this file: the scheduler — one task per entry, which makes an attempt when a worker slot
//!   is free and then sleeps until its next retry or a flush.
//!
//! Exactly once: each local delivery is keyed by the entry and the mailbox's place in it. An
//! attempt records what it delivered in the envelope; a crash between a delivery and that
//! record leaves the key in the mailbox, and the first attempt after a restart asks the store
//! to look for it before storing (`check`), so the retry makes no second copy.

pub mod admin;
pub mod client;
pub mod dsn;
pub mod route;
pub mod spool;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use std::collections::HashMap;
use std::sync::{Mutex, RwLock};

use tokio::sync::{broadcast, Semaphore};

pub use spool::{Envelope, Mailbox, Recipient, Spool, State};

use crate::config::QueueConfig;
use crate::lifecycle::{Shutdown, Stage};
use crate::plugin::delivery::{MessageInfo, RecipientInfo, Route, RouteOutcome};
use crate::plugin::{Hook, Registry, SessionPlugins};
use crate::store::{DeliveryKey, MailStore};

/// Where an address is delivered locally: the queue needs it for the notices it sends.
pub trait Router: Send + Sync {
    /// The mailboxes of a local address, or None if it is not local.
    fn local_mailboxes(&self, address: &str) -> Option<Vec<String>>;

    /// Whether mail for `domain` is delivered here.
    fn is_local(&self, domain: &str) -> bool;
}

pub struct Queue {
    /// The files.
    spool: Spool,
    /// The name in notices (Reporting-MTA, MAILER-DAEMON@) and in EHLO when relaying.
    hostname: String,
    /// Where local recipients' mail goes.
    store: Arc<dyn MailStore>,
    /// What a reload may change: each attempt takes the set current when it starts.
    settings: RwLock<Arc<Settings>>,
    /// Free delivery slots (`[queue] workers`).
    slots: Arc<Semaphore>,
    /// `[queue] workers`: all of them free means no attempt is in flight.
    workers: u32,
    /// Flush requests: every waiting entry whose recipients match (None: all) tries now.
    flush: broadcast::Sender<Option<String>>,
    /// Once the server drains, no new attempt starts.
    shutdown: Arc<Shutdown>,
    /// The entries being driven and when each arrived: the queue's size and age for metrics.
    entries: Mutex<HashMap<String, u64>>,
}

/// Counts an entry in [`Queue::size_and_age`] while its task drives it.
struct Tracked<'a>(&'a Queue, String);

impl Drop for Tracked<'_> {
    fn drop(&mut self) {
        self.0.entries.lock().expect("queue entries").remove(&self.1);
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
}

impl Settings {
    pub fn new(
        router: Arc<dyn Router>,
        plugins: Arc<Registry>,
        config: QueueConfig,
        routes: &std::collections::BTreeMap<String, String>,
    ) -> Settings {
        Settings { router, hops: route::Router::new(routes, &config.nameservers, config.mx_port), plugins, config }
    }
}

/// Seconds since the epoch.
pub fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs()
}

impl Queue {
    pub fn open(
        data_dir: &std::path::Path,
        hostname: &str,
        store: Arc<dyn MailStore>,
        settings: Settings,
        shutdown: Arc<Shutdown>,
    ) -> std::io::Result<Queue> {
        let workers = settings.config.workers.max(1);
        let slots = Arc::new(Semaphore::new(workers));
        let (flush, _) = broadcast::channel(16);
        Ok(Queue {
            spool: Spool::open(data_dir)?,
            hostname: hostname.to_string(),
            store,
            settings: RwLock::new(Arc::new(settings)),
            slots,
            workers: workers as u32,
            flush,
            shutdown,
            entries: Mutex::default(),
        })
    }

    /// Entries in the queue, and the age in seconds of the oldest.
    pub fn size_and_age(&self) -> (usize, u64) {
        let entries = self.entries.lock().expect("queue entries");
        let oldest = entries.values().min().map(|&arrived| now().saturating_sub(arrived)).unwrap_or(0);
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
        let _ = self.slots.acquire_many(self.workers).await;
    }

    pub fn spool(&self) -> &Spool {
        &self.spool
    }

    /// Writes an accepted message durably (blocking: call it on the blocking pool). When this
    /// returns Ok, the `250` may be sent; then hand the envelope to [`Queue::submitted`].
    pub fn enqueue(&self, envelope: &Envelope, pieces: &[&[u8]]) -> std::io::Result<()> {
        self.spool.enqueue(envelope, pieces)
    }

    /// Starts delivering a freshly queued entry.
    pub fn submitted(self: &Arc<Self>, envelope: Envelope) {
        tokio::spawn(Arc::clone(self).drive(envelope, false));
    }

    /// Starts delivering what the spool holds from before (after a restart or a crash). Each
    /// entry's first attempt checks the mailboxes for copies already stored.
    pub fn recover(self: &Arc<Self>) -> std::io::Result<usize> {
        let entries = self.spool.load_all()?;
        let n = entries.len();
        for envelope in entries {
            tokio::spawn(Arc::clone(self).drive(envelope, true));
        }
        Ok(n)
    }

    /// Asks every waiting entry with a recipient in `domain` (all, for None) to try now.
    pub fn flush(&self, domain: Option<String>) {
        tracing::info!(domain = domain.as_deref().unwrap_or("(all)"), "queue flush");
        let _ = self.flush.send(domain);
    }

    /// Queue entries with a pending recipient in `domain` (or, with `subdomains`, below it).
    /// Blocking: reads the spool.
    pub fn pending_for(&self, domain: &str, subdomains: bool) -> std::io::Result<usize> {
        Ok(self.spool.load_all()?.iter().filter(|e| has_pending_matching(e, domain, subdomains)).count())
    }

    /// Like [`Queue::flush`], for ETRN's `@domain` form too.
    pub fn flush_matching(&self, domain: String, subdomains: bool) {
        self.flush(Some(if subdomains { format!("@{domain}") } else { domain }));
    }

    /// Picks up `wasmail queue flush` requests, once a second, for as long as the server runs.
    pub async fn watch_flush_requests(self: Arc<Self>) {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tick.tick().await;
            let spool = self.spool.clone();
            let Ok(requests) = tokio::task::spawn_blocking(move || admin::take_flush_requests(&spool)).await else { continue };
            for domain in requests {
                self.flush(domain);
            }
        }
    }

    /// The life of one entry: attempts until it is done, sleeping between them.
    async fn drive(self: Arc<Self>, mut envelope: Envelope, mut check: bool) {
        self.entries.lock().expect("queue entries").insert(envelope.id.clone(), envelope.arrived);
        let _tracked = Tracked(&self, envelope.id.clone());
        let mut flushes = self.flush.subscribe();
        let mut stage = self.shutdown.watch();
        loop {
            // Draining: the entry waits in the spool for the next start.
            let slot = tokio::select! {
                slot = Arc::clone(&self.slots).acquire_owned() => slot,
                _ = crate::lifecycle::reached(&mut stage, Stage::Draining) => return,
            };
            let Ok(slot) = slot else { return };
            if self.shutdown.stage() != Stage::Running {
                return;
            }
            let attempt = tokio::spawn(Arc::clone(&self).attempt(envelope, check)).await;
            drop(slot);
            envelope = match attempt {
                Ok(Some(envelope)) => envelope,
                Ok(None) => return,
                Err(e) => {
                    // A panic in an attempt: the entry stays in the spool for the next start.
                    tracing::error!(error = %e, "a delivery attempt failed unexpectedly; entry left for the next start");
                    return;
                }
            };
            check = false;
            let wait = Duration::from_secs(envelope.next_attempt.saturating_sub(now()));
            let sleep = tokio::time::sleep(wait);
            tokio::pin!(sleep);
            loop {
                tokio::select! {
                    _ = &mut sleep => break,
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

    /// One delivery attempt: the message is read, the delivery hooks route the recipients
    /// not routed yet, local mailboxes are written on the blocking pool, remote recipients go
    /// through the relay client, the hooks hear the results, and the entry is updated.
    /// Returns the envelope if the entry stays queued.
    async fn attempt(self: Arc<Self>, mut envelope: Envelope, check: bool) -> Option<Envelope> {
        let before: Vec<State> = envelope.recipients.iter().map(|r| r.state).collect();
        let queue = Arc::clone(&self);
        let id = envelope.id.clone();
        let content = match tokio::task::spawn_blocking(move || queue.read_message(&id)).await.ok()? {
            Read::Removed => return None,
            Read::Failed(error) => {
                let queue = Arc::clone(&self);
                return tokio::task::spawn_blocking(move || queue.reschedule(envelope, &error, &[])).await.ok()?;
            }
            Read::Content(content) => Arc::new(content),
        };
        let settings = self.settings();
        let hooks = settings.plugins.plugins_with(Hook::Route) || settings.plugins.plugins_with(Hook::DeliveryResult);
        let mut plugins = hooks.then(|| SessionPlugins::new(Arc::clone(&settings.plugins), &envelope.id));
        let message = message_info(&envelope, &content);
        match plugins.as_mut() {
            Some(p) if p.wants_delivery(Hook::Route) => self.route_recipients(p, &mut envelope, &message).await,
            _ => envelope.recipients.iter_mut().for_each(|r| r.routed = true),
        }
        let held = settle_mailboxes(&mut envelope);
        let queue = Arc::clone(&self);
        let local_content = Arc::clone(&content);
        let (mut envelope, mut errors) =
            tokio::task::spawn_blocking(move || queue.deliver_local(envelope, check, &local_content, &held)).await.ok()?;
        errors.extend(self.relay_remote(&mut envelope, &content[..]).await);
        envelope.attempts += 1;
        for (i, r) in envelope.recipients.iter().enumerate() {
            // Recipients this attempt tried (a route hook may have added some: pending before).
            if before.get(i).is_none_or(|s| *s == State::Pending) && r.routed && !r.discarded {
                let result = match r.state {
                    State::Delivered => "delivered",
                    State::Failed => "failed",
                    State::Pending => "deferred",
                };
                crate::metrics::get().delivery(result, if r.remote { "relay" } else { "local" });
            }
        }
        if let Some(p) = plugins.as_mut().filter(|p| p.wants_delivery(Hook::DeliveryResult)) {
            for (i, r) in envelope.recipients.iter().enumerate() {
                let was_pending = before.get(i).is_none_or(|s| *s == State::Pending);
                if !was_pending || r.discarded || !r.routed {
                    continue;
                }
                let outcome = match r.state {
                    State::Delivered => "delivered",
                    State::Failed => "failed",
                    State::Pending => "deferred",
                };
                p.on_delivery_result(&message, &r.address, outcome, r.detail.as_deref().unwrap_or("")).await;
            }
        }
        drop(plugins);
        let queue = Arc::clone(&self);
        tokio::task::spawn_blocking(move || {
            queue.notify_changes(&envelope, &before, &content[..]);
            if envelope.done() {
                return queue.finish(envelope);
            }
            let last = errors.first().cloned().unwrap_or_default();
            queue.reschedule(envelope, &last, &content[..])
        })
        .await
        .ok()?
    }

    /// The queued message (blocking).
    fn read_message(&self, id: &str) -> Read {
        match self.spool.message(id) {
            Ok(content) => Read::Content(content),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                // Removed by an operator (`wasmail queue remove`).
                let _ = self.spool.remove(id);
                tracing::info!(queue_id = id, "queue entry removed");
                Read::Removed
            }
            Err(e) => {
                tracing::error!(queue_id = id, error = %e, "cannot read the queued message");
                Read::Failed(e.to_string())
            }
        }
    }

    /// Asks the delivery hooks where each recipient not routed yet goes, and applies it.
    async fn route_recipients(&self, plugins: &mut SessionPlugins, envelope: &mut Envelope, message: &MessageInfo) {
        for i in 0..envelope.recipients.len() {
            let r = &envelope.recipients[i];
            if r.routed || r.state != State::Pending {
                continue;
            }
            let first = r.mailboxes.first().and_then(|&m| envelope.mailboxes.get(m));
            let info = RecipientInfo { address: r.address.clone(), mailbox: first.map(|m| m.user.clone()), tag: first.and_then(|m| m.tag.clone()) };
            let (route, by, copies) = match plugins.on_route(message, &info).await {
                RouteOutcome::Deferred(text) => {
                    let r = &mut envelope.recipients[i];
                    r.status = Some("4.3.0".into());
                    r.detail = Some(text);
                    continue;
                }
                RouteOutcome::Decided { route, by, copies } => (route, by.unwrap_or_default(), copies),
            };
            let original = envelope.recipients[i].address.clone();
            match route {
                Route::Default => {}
                Route::Folder(folder) if crate::store::valid_folder(&folder) && !envelope.recipients[i].mailboxes.is_empty() => {
                    let indexes = envelope.recipients[i].mailboxes.clone();
                    let moved = indexes
                        .iter()
                        .map(|&m| {
                            let (user, tag) = (envelope.mailboxes[m].user.clone(), envelope.mailboxes[m].tag.clone());
                            mailbox_index(envelope, &user, Some(&folder), tag)
                        })
                        .collect();
                    envelope.recipients[i].mailboxes = moved;
                    tracing::info!(queue_id = envelope.id, to = original, folder, plugin = by, "routed into a folder");
                }
                Route::Folder(folder) => {
                    tracing::warn!(
                        queue_id = envelope.id,
                        to = original,
                        folder,
                        plugin = by,
                        "folder route ignored: a bad name, or not a local recipient"
                    )
                }
                Route::Redirect(targets) => {
                    let r = &mut envelope.recipients[i];
                    let (notify, orcpt) = (r.notify.clone(), r.orcpt.clone().or_else(|| Some(format!("rfc822;{original}"))));
                    r.mailboxes.clear();
                    r.state = State::Delivered;
                    r.discarded = true;
                    r.detail = Some(format!("redirected by {by} to {}", targets.join(", ")));
                    tracing::info!(queue_id = envelope.id, to = original, targets = targets.join(","), plugin = by, "redirected");
                    for target in targets.iter().take(100) {
                        self.add_recipient(envelope, target, notify.clone(), orcpt.clone());
                    }
                }
                Route::Discard => {
                    let r = &mut envelope.recipients[i];
                    r.mailboxes.clear();
                    r.state = State::Delivered;
                    r.discarded = true;
                    r.detail = Some(format!("discarded by {by}"));
                    tracing::info!(queue_id = envelope.id, to = original, plugin = by, "discarded by a delivery hook");
                }
                Route::Relay(hop) if route::split_route(&hop).is_ok() => {
                    let r = &mut envelope.recipients[i];
                    r.mailboxes.clear();
                    r.remote = true;
                    r.route = Some(hop);
                }
                Route::Relay(hop) => tracing::warn!(queue_id = envelope.id, to = original, hop, plugin = by, "relay route ignored: not host:port"),
                Route::Reject(text) => {
                    let r = &mut envelope.recipients[i];
                    r.state = State::Failed;
                    r.status = Some("5.7.1".into());
                    r.detail = Some(text.chars().filter(|c| !c.is_control()).take(300).collect());
                }
                Route::Defer(text) => {
                    let r = &mut envelope.recipients[i];
                    r.status = Some("4.7.0".into());
                    r.detail = Some(text.chars().filter(|c| !c.is_control()).take(300).collect());
                    continue;
                }
            }
            for copy in copies.iter() {
                self.add_recipient(envelope, copy, Some(vec!["NEVER".into()]), None);
            }
            envelope.recipients[i].routed = true;
        }
    }

    /// Adds a recipient that a delivery hook named (a redirect or a copy): local through the
    /// directory, else relayed. Its route is settled (hooks are not asked again, so they
    /// cannot loop).
    fn add_recipient(&self, envelope: &mut Envelope, address: &str, notify: Option<Vec<String>>, orcpt: Option<String>) {
        let parsed = crate::smtp::proto::address::parse_mailbox(address.trim());
        if !matches!(parsed, Ok((_, ""))) {
            tracing::warn!(queue_id = envelope.id, address, "a delivery hook named a bad address; ignored");
            return;
        }
        let address = address.trim().to_string();
        let router = Arc::clone(&self.settings().router);
        let local_domain = address.rsplit_once('@').is_some_and(|(_, d)| router.is_local(d));
        let (mailboxes, remote, state) = match router.local_mailboxes(&address) {
            Some(users) => (users.iter().map(|u| mailbox_index(envelope, u, None, None)).collect(), false, State::Pending),
            // A local address with no mailbox fails (5.1.1) rather than going out.
            None if local_domain => (Vec::new(), false, State::Failed),
            None => (Vec::new(), true, State::Pending),
        };
        let unknown = state == State::Failed;
        envelope.recipients.push(Recipient {
            orcpt,
            notify,
            mailboxes,
            remote,
            state,
            detail: unknown.then(|| "no such user here".to_string()),
            status: unknown.then(|| "5.1.1".to_string()),
            routed: true,
            ..Recipient::new(address)
        });
    }

    /// Stores the message in every local mailbox not done yet and not `held` (blocking), and
    /// settles the local recipients. Returns the errors.
    fn deliver_local(&self, mut envelope: Envelope, check: bool, content: &[u8], held: &[usize]) -> (Envelope, Vec<String>) {
        let id = envelope.id.clone();
        let mut errors: Vec<(usize, String)> = Vec::new();
        for (index, mailbox) in envelope.mailboxes.iter_mut().enumerate().filter(|(i, m)| !m.delivered && !held.contains(i)) {
            let key = DeliveryKey { key: format!("{id}-{index}"), time: envelope.arrived };
            match self.store.deliver(&mailbox.user, mailbox.folder.as_deref(), &key, &[content], check) {
                Ok(stored) => {
                    mailbox.delivered = true;
                    tracing::info!(
                        queue_id = id,
                        user = mailbox.user,
                        folder = mailbox.folder.as_deref().unwrap_or(""),
                        file = stored.id,
                        "delivered"
                    );
                }
                Err(e) => {
                    tracing::warn!(queue_id = id, user = mailbox.user, error = %e, "delivery failed; will retry");
                    errors.push((index, e.to_string()));
                }
            }
        }
        for recipient in envelope.recipients.iter_mut().filter(|r| r.state == State::Pending && !r.remote && r.routed) {
            if recipient.mailboxes.is_empty() {
                recipient.state = State::Failed;
                recipient.detail = Some("no route to this recipient".into());
                recipient.status = Some("5.4.4".into());
            } else if recipient.mailboxes.iter().all(|&i| envelope.mailboxes.get(i).is_some_and(|m| m.delivered)) {
                recipient.state = State::Delivered;
                recipient.detail = Some("delivered to the mailbox".into());
                recipient.status = Some("2.0.0".into());
            } else if let Some((_, error)) = errors.iter().find(|(i, _)| recipient.mailboxes.contains(i)) {
                recipient.detail = Some(error.clone());
                recipient.status = Some("4.2.0".into());
            }
        }
        (envelope, errors.into_iter().map(|(_, e)| e).collect())
    }

    /// Relays the pending remote recipients, domain by domain, trying each next hop in turn
    /// until one takes a session. Returns the temporary errors.
    async fn relay_remote(&self, envelope: &mut Envelope, content: &[u8]) -> Vec<String> {
        // Recipients go out in groups: one per domain, or per next hop a delivery hook chose.
        let group_of = |r: &Recipient| match &r.route {
            Some(hop) => (String::new(), Some(hop.clone())),
            None => (r.address.rsplit_once('@').map(|(_, d)| d.to_ascii_lowercase()).unwrap_or_default(), None),
        };
        let mut groups: Vec<(String, Option<String>)> = Vec::new();
        for r in envelope.recipients.iter().filter(|r| r.state == State::Pending && r.remote && r.routed) {
            let group = group_of(r);
            if !groups.contains(&group) {
                groups.push(group);
            }
        }
        let mut errors = Vec::new();
        let settings = self.settings();
        for group in groups {
            let targets: Vec<usize> = (0..envelope.recipients.len())
                .filter(|&i| {
                    let r = &envelope.recipients[i];
                    r.state == State::Pending && r.remote && r.routed && group_of(r) == group
                })
                .collect();
            let (domain, via) = group;
            let found = match &via {
                Some(hop) => settings.hops.via(hop).await,
                None => settings.hops.hops(&domain).await,
            };
            let hops = match found {
                Ok(hops) => hops,
                Err(route::NoRoute::Permanent { status, text }) => {
                    for &i in &targets {
                        let r = &mut envelope.recipients[i];
                        r.state = State::Failed;
                        r.status = Some(status.to_string());
                        r.detail = Some(text.clone());
                    }
                    continue;
                }
                Err(route::NoRoute::Temporary(text)) => {
                    for &i in &targets {
                        let r = &mut envelope.recipients[i];
                        r.status = Some("4.4.3".into());
                        r.detail = Some(text.clone());
                    }
                    errors.push(text);
                    continue;
                }
            };
            let mut last_error = format!("no address for {domain}");
            let mut done = false;
            'hops: for hop in &hops {
                for addr in &hop.addrs {
                    match client::relay(*addr, &self.hostname, envelope, &targets, content).await {
                        Ok(outcomes) => {
                            for (&i, outcome) in targets.iter().zip(outcomes) {
                                apply_outcome(&envelope.id, &mut envelope.recipients[i], &hop.name, outcome, &mut errors);
                            }
                            done = true;
                            break 'hops;
                        }
                        Err(client::SessionError(e)) => {
                            tracing::info!(queue_id = envelope.id, hop = hop.name, %addr, error = e, "relay attempt failed");
                            last_error = format!("{} ({addr}): {e}", hop.name);
                        }
                    }
                }
            }
            if !done {
                for &i in &targets {
                    let r = &mut envelope.recipients[i];
                    r.status = Some("4.4.1".into());
                    r.detail = Some(last_error.clone());
                }
                errors.push(last_error);
            }
        }
        errors
    }

    /// Sends the notices for recipients that became final (delivered or failed) since
    /// `before`.
    fn notify_changes(self: &Arc<Self>, envelope: &Envelope, before: &[State], content: &[u8]) {
        // What a recipient that became final is reported as; None: nothing from here (a
        // peer with DSN reports from then on).
        let action_of = |r: &Recipient| match (r.state, r.relayed) {
            _ if r.discarded => None,
            (State::Failed, _) => Some(dsn::Action::Failed),
            (State::Delivered, None) => Some(dsn::Action::Delivered),
            (State::Delivered, Some(spool::RelayedTo::Plain)) => Some(dsn::Action::Relayed),
            _ => None,
        };
        for action in [dsn::Action::Delivered, dsn::Action::Relayed, dsn::Action::Failed] {
            // Recipients added in this attempt (redirects, copies) were pending before it.
            let recipients: Vec<&Recipient> = envelope
                .recipients
                .iter()
                .enumerate()
                .filter(|(i, r)| {
                    before.get(*i).is_none_or(|was| *was == State::Pending) && action_of(r) == Some(action) && dsn::wanted(envelope, r, action)
                })
                .map(|(_, r)| r)
                .collect();
            self.notice(envelope, &recipients, action, content);
        }
    }

    /// Queues a notice about `recipients` to the sender of `envelope`.
    fn notice(self: &Arc<Self>, envelope: &Envelope, recipients: &[&Recipient], action: dsn::Action, content: &[u8]) {
        if recipients.is_empty() {
            return;
        }
        let id = crate::ids::queue_id();
        let settings = self.settings();
        let expiry = envelope.arrived + settings.config.max_age.0.as_secs();
        let message = dsn::build(&self.hostname, &id, envelope, recipients, action, content, expiry);
        let users = settings.router.local_mailboxes(&envelope.sender).unwrap_or_default();
        let notice = Envelope {
            id: id.clone(),
            arrived: now(),
            sender: String::new(),
            envid: None,
            ret: None,
            client_ip: String::new(),
            helo: String::new(),
            recipients: vec![Recipient {
                notify: Some(vec!["NEVER".into()]),
                // A sender elsewhere gets the notice through the relay.
                remote: users.is_empty(),
                mailboxes: (0..users.len()).collect(),
                routed: true,
                ..Recipient::new(envelope.sender.clone())
            }],
            mailboxes: users.into_iter().map(|user| Mailbox { user, folder: None, tag: None, delivered: false }).collect(),
            attempts: 0,
            next_attempt: 0,
            delay_warned: false,
        };
        match self.spool.enqueue(&notice, &[&message]) {
            Ok(()) => {
                tracing::info!(queue_id = envelope.id, notice = id, action = ?action, to = envelope.sender, "delivery status notice queued");
                let queue = Arc::clone(self);
                tokio::runtime::Handle::current().spawn(queue.drive(notice, false));
            }
            Err(e) => tracing::error!(queue_id = envelope.id, error = %e, "cannot queue a delivery status notice"),
        }
    }

    /// After a failed attempt: the next one on the schedule, or failure past `max_age`.
    fn reschedule(self: &Arc<Self>, mut envelope: Envelope, error: &str, content: &[u8]) -> Option<Envelope> {
        let now = now();
        let settings = self.settings();
        if now >= envelope.arrived + settings.config.max_age.0.as_secs() {
            let before: Vec<State> = envelope.recipients.iter().map(|r| r.state).collect();
            for recipient in envelope.recipients.iter_mut().filter(|r| r.state == State::Pending) {
                recipient.state = State::Failed;
                recipient.detail = Some(format!("gave up after {} attempts: {error}", envelope.attempts));
                // RFC 3463: delivery time expired.
                recipient.status = Some("4.4.7".into());
            }
            self.notify_changes(&envelope, &before, content);
            return self.finish(envelope);
        }
        if !envelope.delay_warned && now >= envelope.arrived + settings.config.delay_warning.0.as_secs() {
            envelope.delay_warned = true;
            let delayed: Vec<&Recipient> =
                envelope.recipients.iter().filter(|r| r.state == State::Pending && dsn::wanted(&envelope, r, dsn::Action::Delayed)).collect();
            self.notice(&envelope, &delayed, dsn::Action::Delayed, content);
        }
        let intervals = &settings.config.retry_intervals;
        let index = (envelope.attempts.max(1) as usize - 1).min(intervals.len().saturating_sub(1));
        let wait = intervals.get(index).map(|d| d.0.as_secs()).unwrap_or(300).max(1);
        envelope.next_attempt = now + wait;
        // An operator may have removed the entry meanwhile: do not bring its envelope back.
        if !self.spool.dir().join(format!("{}.msg", envelope.id)).exists() {
            let _ = self.spool.remove(&envelope.id);
            return None;
        }
        if let Err(e) = self.spool.write_envelope(&envelope) {
            // The attempt's results stay in memory; after a crash the check finds them.
            tracing::error!(queue_id = envelope.id, error = %e, "cannot update the queue entry");
        }
        tracing::info!(queue_id = envelope.id, attempts = envelope.attempts, retry_in = wait, "delivery deferred");
        Some(envelope)
    }

    /// Every recipient is final: the entry leaves the queue.
    fn finish(&self, envelope: Envelope) -> Option<Envelope> {
        for r in &envelope.recipients {
            tracing::info!(
                queue_id = envelope.id,
                to = r.address,
                status = match r.state {
                    State::Delivered => "delivered",
                    State::Failed => "failed",
                    State::Pending => "pending",
                },
                detail = r.detail.as_deref().unwrap_or(""),
                "recipient done"
            );
        }
        if let Err(e) = self.spool.remove(&envelope.id) {
            // Left in the spool, the entry is retried at the next start and the check finds
            // the copies already stored.
            tracing::error!(queue_id = envelope.id, error = %e, "cannot remove the finished queue entry");
        }
        None
    }
}

/// Reading an entry's message.
enum Read {
    Content(Vec<u8>),
    /// The entry was removed by an operator.
    Removed,
    /// The message could not be read: retry later.
    Failed(String),
}

/// The index of the mailbox entry for (user, folder), added if missing.
fn mailbox_index(envelope: &mut Envelope, user: &str, folder: Option<&str>, tag: Option<String>) -> usize {
    if let Some(i) = envelope.mailboxes.iter().position(|m| m.user == user && m.folder.as_deref() == folder) {
        return i;
    }
    envelope.mailboxes.push(Mailbox { user: user.to_string(), folder: folder.map(str::to_string), tag, delivered: false });
    envelope.mailboxes.len() - 1
}

/// After routing: mailboxes that no pending recipient needs any more (a hook moved the copy
/// into a folder, redirected or discarded it) are settled without a copy; the mailboxes of
/// recipients whose route is not decided yet are held for a later attempt (returned).
fn settle_mailboxes(envelope: &mut Envelope) -> Vec<usize> {
    let pending: Vec<&Recipient> = envelope.recipients.iter().filter(|r| r.state == State::Pending).collect();
    let needed: Vec<usize> = pending.iter().filter(|r| r.routed).flat_map(|r| r.mailboxes.clone()).collect();
    let waiting: Vec<usize> = pending.iter().filter(|r| !r.routed).flat_map(|r| r.mailboxes.clone()).filter(|m| !needed.contains(m)).collect();
    for (i, mailbox) in envelope.mailboxes.iter_mut().enumerate() {
        if !mailbox.delivered && !needed.contains(&i) && !waiting.contains(&i) {
            mailbox.delivered = true;
        }
    }
    waiting
}

/// The message as the delivery hooks see it.
fn message_info(envelope: &Envelope, content: &[u8]) -> MessageInfo {
    let (fields, _) = crate::mime::header::fields(content);
    let headers =
        fields.iter().map(|f| crate::plugin::Header { name: f.name.clone(), value: crate::mime::header::unfolded_value(content, f) }).collect();
    MessageInfo { queue_id: envelope.id.clone(), sender: envelope.sender.clone(), headers, size: content.len() as u64 }
}

/// Records what the next hop said about one recipient.
fn apply_outcome(id: &str, r: &mut Recipient, hop: &str, outcome: client::Outcome, errors: &mut Vec<String>) {
    match outcome {
        client::Outcome::Accepted { reply, dsn } => {
            r.state = State::Delivered;
            r.relayed = Some(if dsn { spool::RelayedTo::Dsn } else { spool::RelayedTo::Plain });
            r.status = Some(reply.status());
            r.detail = Some(format!("relayed to {hop}: {}", reply.text()));
            tracing::info!(queue_id = id, to = r.address, hop, reply = reply.text(), "relayed");
        }
        client::Outcome::Rejected(reply) => {
            r.state = State::Failed;
            r.status = Some(reply.status());
            r.diagnostic = Some(format!("smtp; {}", reply.text()));
            r.detail = Some(format!("{hop} said: {}", reply.text()));
            tracing::info!(queue_id = id, to = r.address, hop, reply = reply.text(), "relay refused");
        }
        client::Outcome::Deferred(text) => {
            r.status = Some("4.0.0".into());
            r.detail = Some(format!("{hop} said: {text}"));
            errors.push(text);
        }
    }
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
    envelope.recipients.iter().filter(|r| r.state == State::Pending).any(|r| {
        r.address.rsplit_once('@').is_some_and(|(_, d)| {
            let d = d.to_ascii_lowercase();
            d == domain || (subdomains && d.ends_with(&format!(".{domain}")))
        })
    })
}
