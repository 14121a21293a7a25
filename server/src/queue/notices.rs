//! What an attempt leads to: the notices owed to the sender (queued before the entry may go),
//! the next retry or the expiry, and the end of the entry.

use std::sync::Arc;

use wasmail_proto::reply::codes;

use super::spool::{self, Envelope, Mailbox, Recipient, State};
use super::{dsn, now, Queue};

impl Queue {
    /// Queues every notice owed (`notice_due`), one per action, and clears what was
    /// queued. On an error the rest stays owed, and the entry with it: the caller keeps the
    /// entry and the next attempt tries again.
    pub(super) fn send_due_notices(self: &Arc<Self>, envelope: &mut Envelope, content: &[u8]) -> std::io::Result<()> {
        for action in [dsn::Action::Delivered, dsn::Action::Relayed, dsn::Action::Failed] {
            let indexes: Vec<usize> = (0..envelope.recipients.len()).filter(|&i| envelope.recipients[i].notice_due == Some(action)).collect();
            if indexes.is_empty() {
                continue;
            }
            let recipients: Vec<&Recipient> = indexes.iter().map(|&i| &envelope.recipients[i]).collect();
            self.notice(envelope, &recipients, action, content)?;
            for i in indexes {
                envelope.recipients[i].notice_due = None;
            }
        }
        Ok(())
    }

    /// Queues a notice about `recipients` to the sender of `envelope`.
    fn notice(self: &Arc<Self>, envelope: &Envelope, recipients: &[&Recipient], action: dsn::Action, content: &[u8]) -> std::io::Result<()> {
        if recipients.is_empty() {
            return Ok(());
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
        if let Err(e) = self.enqueue(&notice, &[&message]) {
            tracing::error!(queue_id = envelope.id, error = %e, action = ?action, "cannot queue a delivery status notice; the entry is kept until it can");
            return Err(e);
        }
        tracing::info!(queue_id = envelope.id, notice = id, action = ?action, to = envelope.sender, "delivery status notice queued");
        let queue = Arc::clone(self);
        tokio::runtime::Handle::current().spawn(queue.drive(notice, false));
        Ok(())
    }

    /// After a failed attempt: the next one on the schedule, or failure past `max_age`.
    pub(super) fn reschedule(self: &Arc<Self>, mut envelope: Envelope, error: &str, content: &[u8]) -> Option<Envelope> {
        let now = now();
        let settings = self.settings();
        if now >= envelope.arrived + settings.config.max_age.0.as_secs() && envelope.recipients.iter().any(|r| r.state == State::Pending) {
            let before: Vec<State> = envelope.recipients.iter().map(|r| r.state).collect();
            for recipient in envelope.recipients.iter_mut().filter(|r| r.state == State::Pending) {
                recipient.state = State::Failed;
                recipient.detail = Some(format!("gave up after {} attempts: {error}", envelope.attempts));
                // RFC 3463: delivery time expired.
                recipient.status = Some(codes::TEMP_EXPIRED);
            }
            mark_due(&mut envelope, &before);
            if self.send_due_notices(&mut envelope, content).is_ok() {
                return self.finish(envelope);
            }
        }
        if !envelope.delay_warned && now >= envelope.arrived + settings.config.delay_warning.0.as_secs() {
            let delayed: Vec<&Recipient> =
                envelope.recipients.iter().filter(|r| r.state == State::Pending && dsn::wanted(&envelope, r, dsn::Action::Delayed)).collect();
            // Not queued: the warning is tried again after the next attempt.
            envelope.delay_warned = self.notice(&envelope, &delayed, dsn::Action::Delayed, content).is_ok();
        }
        let intervals = &settings.config.retry_intervals;
        let index = (envelope.attempts.max(1) as usize - 1).min(intervals.len().saturating_sub(1));
        let wait = intervals.get(index).map(|d| d.0.as_secs()).unwrap_or(300).max(1);
        envelope.next_attempt = now + wait;
        if let Err(e) = self.spool.write_envelope(&envelope) {
            // The attempt's results stay in memory; after a crash the check finds them.
            tracing::error!(queue_id = envelope.id, error = %e, "cannot update the queue entry");
        }
        tracing::info!(queue_id = envelope.id, attempts = envelope.attempts, retry_in = wait, "delivery deferred");
        Some(envelope)
    }

    /// An entry whose message cannot be read: kept as it is (no expiry, no notice: there is
    /// nothing to deliver or return), retried at the last interval until an operator repairs
    /// or removes it.
    pub(super) fn hold(&self, mut envelope: Envelope, error: &str) -> Option<Envelope> {
        let settings = self.settings();
        let wait = settings.config.retry_intervals.last().map(|d| d.0.as_secs()).unwrap_or(300).max(1);
        envelope.next_attempt = now() + wait;
        for r in envelope.recipients.iter_mut().filter(|r| r.state == State::Pending) {
            r.detail = Some(error.to_string());
        }
        if let Err(e) = self.spool.write_envelope(&envelope) {
            tracing::error!(queue_id = envelope.id, error = %e, "cannot update the queue entry");
        }
        Some(envelope)
    }

    /// Every recipient is final and every notice queued: the entry leaves the queue.
    pub(super) fn finish(&self, envelope: Envelope) -> Option<Envelope> {
        for r in &envelope.recipients {
            tracing::info!(
                queue_id = envelope.id,
                to = r.address,
                status = r.state.as_str(),
                detail = r.detail.as_deref().unwrap_or(""),
                "recipient done"
            );
        }
        if let Err(e) = self.spool.finished(&envelope.id) {
            // Left in the spool, the entry is retried at the next start and the check finds
            // the copies already stored.
            tracing::error!(queue_id = envelope.id, error = %e, "cannot remove the finished queue entry");
        }
        None
    }
}

/// Marks the notices owed for recipients that became final (delivered or failed) since
/// `before`: the ones the sender asked for (or gets by default), not for a discarded
/// recipient, and none from here for a recipient a peer with DSN took (it reports).
pub(super) fn mark_due(envelope: &mut Envelope, before: &[State]) {
    for i in 0..envelope.recipients.len() {
        let r = &envelope.recipients[i];
        // Recipients added in this attempt (redirects, copies) were pending before it.
        if before.get(i).is_some_and(|was| *was != State::Pending) || r.discarded {
            continue;
        }
        let action = match (r.state, r.relayed) {
            (State::Failed, _) => dsn::Action::Failed,
            (State::Delivered, None) => dsn::Action::Delivered,
            (State::Delivered, Some(spool::RelayedTo::Plain)) => dsn::Action::Relayed,
            _ => continue,
        };
        if dsn::wanted(envelope, r, action) {
            envelope.recipients[i].notice_due = Some(action);
        }
    }
}
