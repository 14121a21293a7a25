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

use tokio::sync::{broadcast, Semaphore};

pub use spool::{Envelope, Mailbox, Recipient, Spool, State};

use crate::config::QueueConfig;
use crate::store::{DeliveryKey, MailStore};

/// Where an address is delivered locally: the queue needs it for the notices it sends.
pub trait Router: Send + Sync {
    /// The mailboxes of a local address, or None if it is not local.
    fn local_mailboxes(&self, address: &str) -> Option<Vec<String>>;
}

pub struct Queue {
    /// The files.
    spool: Spool,
    /// For the recipients of notices.
    router: Arc<dyn Router>,
    /// The name in notices (Reporting-MTA, MAILER-DAEMON@) and in EHLO when relaying.
    hostname: String,
    /// Next hops for remote domains.
    hops: route::Router,
    /// Where local recipients' mail goes.
    store: Arc<dyn MailStore>,
    /// Retry schedule, expiry, concurrency.
    config: QueueConfig,
    /// Free delivery slots (`[queue] workers`).
    slots: Arc<Semaphore>,
    /// Flush requests: every waiting entry whose recipients match (None: all) tries now.
    flush: broadcast::Sender<Option<String>>,
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
        router: Arc<dyn Router>,
        config: QueueConfig,
        routes: &std::collections::BTreeMap<String, String>,
    ) -> std::io::Result<Queue> {
        let slots = Arc::new(Semaphore::new(config.workers.max(1)));
        let (flush, _) = broadcast::channel(16);
        Ok(Queue {
            spool: Spool::open(data_dir)?,
            router,
            hostname: hostname.to_string(),
            hops: route::Router::new(routes),
            store,
            config,
            slots,
            flush,
        })
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
        let mut flushes = self.flush.subscribe();
        loop {
            let Ok(slot) = Arc::clone(&self.slots).acquire_owned().await else { return };
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
                    request = flushes.recv() => match request {
                        Ok(Some(node)) if !matches_node(&envelope, &node) => continue,
                        Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => break,
                        Err(broadcast::error::RecvError::Closed) => return,
                    },
                }
            }
        }
    }

    /// One delivery attempt: local mailboxes on the blocking pool, remote recipients through
    /// the relay client, then the bookkeeping. Returns the envelope if the entry stays queued.
    async fn attempt(self: Arc<Self>, envelope: Envelope, check: bool) -> Option<Envelope> {
        let before: Vec<State> = envelope.recipients.iter().map(|r| r.state).collect();
        let queue = Arc::clone(&self);
        let local = tokio::task::spawn_blocking(move || queue.deliver_local(envelope, check)).await.ok()?;
        let (mut envelope, content, mut errors) = match local {
            Local::Removed => return None,
            Local::Unreadable(envelope, error) => {
                let queue = Arc::clone(&self);
                return tokio::task::spawn_blocking(move || queue.reschedule(envelope, &error, &[])).await.ok()?;
            }
            Local::Done { envelope, content, errors } => (envelope, content, errors),
        };
        errors.extend(self.relay_remote(&mut envelope, &content[..]).await);
        envelope.attempts += 1;
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

    /// Reads the message and stores it in every local mailbox not done yet (blocking).
    fn deliver_local(&self, mut envelope: Envelope, check: bool) -> Local {
        let id = envelope.id.clone();
        let content = match self.spool.message(&id) {
            Ok(content) => Arc::new(content),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                // Removed by an operator (`wasmail queue remove`).
                let _ = self.spool.remove(&id);
                tracing::info!(queue_id = id, "queue entry removed");
                return Local::Removed;
            }
            Err(e) => {
                tracing::error!(queue_id = id, error = %e, "cannot read the queued message");
                return Local::Unreadable(envelope, e.to_string());
            }
        };
        let mut errors: Vec<(usize, String)> = Vec::new();
        for (index, mailbox) in envelope.mailboxes.iter_mut().enumerate().filter(|(_, m)| !m.delivered) {
            let key = DeliveryKey { key: format!("{id}-{index}"), time: envelope.arrived };
            match self.store.deliver(&mailbox.user, &key, &[&content], check) {
                Ok(stored) => {
                    mailbox.delivered = true;
                    tracing::info!(queue_id = id, user = mailbox.user, file = stored.id, "delivered");
                }
                Err(e) => {
                    tracing::warn!(queue_id = id, user = mailbox.user, error = %e, "delivery failed; will retry");
                    errors.push((index, e.to_string()));
                }
            }
        }
        for recipient in envelope.recipients.iter_mut().filter(|r| r.state == State::Pending && !r.remote) {
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
        Local::Done { envelope, content, errors: errors.into_iter().map(|(_, e)| e).collect() }
    }

    /// Relays the pending remote recipients, domain by domain, trying each next hop in turn
    /// until one takes a session. Returns the temporary errors.
    async fn relay_remote(&self, envelope: &mut Envelope, content: &[u8]) -> Vec<String> {
        let mut domains: Vec<String> = Vec::new();
        for r in envelope.recipients.iter().filter(|r| r.state == State::Pending && r.remote) {
            let domain = r.address.rsplit_once('@').map(|(_, d)| d.to_ascii_lowercase()).unwrap_or_default();
            if !domains.contains(&domain) {
                domains.push(domain);
            }
        }
        let mut errors = Vec::new();
        for domain in domains {
            let targets: Vec<usize> = (0..envelope.recipients.len())
                .filter(|&i| {
                    let r = &envelope.recipients[i];
                    r.state == State::Pending && r.remote && r.address.rsplit_once('@').is_some_and(|(_, d)| d.eq_ignore_ascii_case(&domain))
                })
                .collect();
            let hops = match self.hops.hops(&domain).await {
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
            (State::Failed, _) => Some(dsn::Action::Failed),
            (State::Delivered, None) => Some(dsn::Action::Delivered),
            (State::Delivered, Some(spool::RelayedTo::Plain)) => Some(dsn::Action::Relayed),
            _ => None,
        };
        for action in [dsn::Action::Delivered, dsn::Action::Relayed, dsn::Action::Failed] {
            let recipients: Vec<&Recipient> = envelope
                .recipients
                .iter()
                .zip(before)
                .filter(|(r, was)| **was == State::Pending && action_of(r) == Some(action) && dsn::wanted(envelope, r, action))
                .map(|(r, _)| r)
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
        let expiry = envelope.arrived + self.config.max_age.0.as_secs();
        let message = dsn::build(&self.hostname, &id, envelope, recipients, action, content, expiry);
        let users = self.router.local_mailboxes(&envelope.sender).unwrap_or_default();
        let notice = Envelope {
            id: id.clone(),
            arrived: now(),
            sender: String::new(),
            envid: None,
            ret: None,
            client_ip: String::new(),
            helo: String::new(),
            recipients: vec![Recipient {
                address: envelope.sender.clone(),
                orcpt: None,
                notify: Some(vec!["NEVER".into()]),
                // A sender elsewhere gets the notice through the relay.
                remote: users.is_empty(),
                mailboxes: (0..users.len()).collect(),
                state: State::Pending,
                detail: None,
                status: None,
                diagnostic: None,
                relayed: None,
            }],
            mailboxes: users.into_iter().map(|user| Mailbox { user, delivered: false }).collect(),
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
        if now >= envelope.arrived + self.config.max_age.0.as_secs() {
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
        if !envelope.delay_warned && now >= envelope.arrived + self.config.delay_warning.0.as_secs() {
            envelope.delay_warned = true;
            let delayed: Vec<&Recipient> =
                envelope.recipients.iter().filter(|r| r.state == State::Pending && dsn::wanted(&envelope, r, dsn::Action::Delayed)).collect();
            self.notice(&envelope, &delayed, dsn::Action::Delayed, content);
        }
        let intervals = &self.config.retry_intervals;
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

/// What the local part of an attempt found.
enum Local {
    /// The entry was removed by an operator.
    Removed,
    /// The message could not be read: retry later.
    Unreadable(Envelope, String),
    Done {
        envelope: Envelope,
        content: Arc<Vec<u8>>,
        errors: Vec<String>,
    },
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
