//! NOTIFY (RFC 5465): the client names mailboxes and events once, and hears of them as they
//! happen — between commands and during IDLE, without polling each mailbox with STATUS.
//!
//! - Other mailboxes: new, expunged and re-flagged messages are told with STATUS (MESSAGES,
//!   UIDNEXT, UNSEEN; HIGHESTMODSEQ once CONDSTORE is on), created, deleted and renamed
//!   mailboxes with LIST (`\NonExistent`, `OLDNAME`), subscriptions with LIST (`\Subscribed`).
//!   Events come from the store's per-user channel ([`MailStore::events`]); those queued
//!   while a command ran are told after it, one STATUS per mailbox however many deliveries
//!   there were. A session so far behind that the channel dropped events is told
//!   `NOTIFICATIONOVERFLOW` and NOTIFY is off (RFC 5465 5.8), as it must re-list anyway.
//! - The selected mailbox (`selected`, `selected-delayed`): EXISTS, EXPUNGE (not with
//!   `selected-delayed`) and FETCH are sent as the mailbox changes, not only after the
//!   client's next command; `MessageNew (items)` adds a FETCH of each new message.
//!
//! `inboxes` is taken as `personal`: delivery plugins can file mail into any folder. The
//! events Wasmail has nothing behind (annotations, METADATA) are refused with BADEVENT.
//!
//! [`MailStore::events`]: crate::store::MailStore::events

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use tokio::sync::{broadcast, watch};
use tokio::time::Instant;
use wasmail_proto::imap::notify::{EventGroup, Events, Filter, NotifySet, SelectedEvents};
use wasmail_proto::imap::{SequenceSet, StatusItem};

use super::session::{blocking, Next, Outcome, Session, Status};
use crate::store::MailboxEvent;

/// The events Wasmail tells of; BADEVENT lists them (RFC 5465 5.7).
const SUPPORTED: u16 = Events::MESSAGE_NEW | Events::MESSAGE_EXPUNGE | Events::FLAG_CHANGE | Events::MAILBOX_NAME | Events::SUBSCRIPTION_CHANGE;

/// Mailbox names one NOTIFY command may give in all, so that matching an event against the
/// groups stays cheap (answered `NO [NOTIFICATIONOVERFLOW]` above it; Dovecot's bound too).
pub(super) const MAX_NAMES: usize = 100;

/// What a session follows, after NOTIFY SET.
pub(super) struct Notify {
    set: NotifySet,
    /// The store's events for the user; a wait takes it out while it listens.
    events: Option<broadcast::Receiver<MailboxEvent>>,
    /// The user's subscriptions, kept when a group follows them.
    subscribed: Option<HashSet<String>>,
}

impl Notify {
    /// The events of the first group that names `mailbox` (none, if no group does).
    fn events_for(&self, mailbox: &str) -> Events {
        self.set.groups.iter().find(|group| self.names(group, mailbox)).map(|group| group.events).unwrap_or_default()
    }

    fn names(&self, group: &EventGroup, mailbox: &str) -> bool {
        match &group.filter {
            Filter::Inboxes | Filter::Personal => true,
            Filter::Subscribed => self.subscribed.as_ref().is_some_and(|names| names.contains(mailbox)),
            Filter::Subtree(roots) => {
                roots.iter().any(|root| mailbox.strip_prefix(root.as_str()).is_some_and(|rest| rest.is_empty() || rest.starts_with('/')))
            }
            Filter::Mailboxes(names) => names.iter().any(|name| name == mailbox),
        }
    }

    /// The selected mailbox's events, when the client asked for any.
    fn selected(&self) -> Option<&SelectedEvents> {
        self.set.selected.as_ref().filter(|selected| selected.events != Events::default())
    }
}

/// What woke a waiting session.
enum Woke {
    Read(std::io::Result<crate::connection::Read>),
    Event(Result<MailboxEvent, broadcast::error::RecvError>),
    Selected,
}

/// The next event, or never (no channel).
pub(super) async fn next_event(events: &mut Option<broadcast::Receiver<MailboxEvent>>) -> Result<MailboxEvent, broadcast::error::RecvError> {
    match events {
        Some(events) => events.recv().await,
        None => std::future::pending().await,
    }
}

/// The next change of the selected mailbox, or never.
async fn next_change(changes: &mut Option<watch::Receiver<u64>>) {
    if let Some(changes) = changes {
        if changes.changed().await.is_ok() {
            return;
        }
    }
    std::future::pending().await
}

impl Session {
    /// NOTIFY SET / NOTIFY NONE.
    pub(super) async fn notify(&mut self, set: Option<NotifySet>) -> Outcome {
        let Some(set) = set else {
            self.notify = None;
            return Outcome::ok("NOTIFY completed");
        };
        let asked = set.groups.iter().fold(set.selected.as_ref().map_or(0, |s| s.events.0), |all, group| all | group.events.0);
        if asked & !SUPPORTED != 0 {
            // RFC 5465 5.7: the code lists the events the server supports.
            return Outcome::no_code(format!("BADEVENT ({})", Events::names(SUPPORTED).join(" ")), "Unsupported NOTIFY events");
        }
        let names: usize = set
            .groups
            .iter()
            .map(|group| match &group.filter {
                Filter::Subtree(names) | Filter::Mailboxes(names) => names.len(),
                _ => 0,
            })
            .sum();
        if names > MAX_NAMES {
            return Outcome::no_code("NOTIFICATIONOVERFLOW", format!("NOTIFY may name at most {MAX_NAMES} mailboxes"));
        }
        let user = self.user();
        // Subscribed before the STATUS below is taken, so that nothing falls between.
        let events = self.ctx.store.events(&user);
        let subscribed = match set.groups.iter().any(|group| group.filter == Filter::Subscribed) {
            true => {
                let (store, user) = (Arc::clone(&self.ctx.store), user.clone());
                match blocking(move || store.subscriptions(&user)).await {
                    Ok(names) => Some(names.into_iter().collect()),
                    Err(e) => return super::session::store_error(&e, "NOTIFY"),
                }
            }
            false => None,
        };
        let notify = Notify { set, events: Some(events), subscribed };
        if notify.set.status {
            // RFC 5465 3.1: the STATUS of every mailbox whose message events are followed.
            let (store, user) = (Arc::clone(&self.ctx.store), user.clone());
            let mailboxes = match blocking(move || store.mailboxes(&user)).await {
                Ok(names) => names,
                Err(e) => return super::session::store_error(&e, "NOTIFY"),
            };
            for name in mailboxes {
                let events = notify.events_for(&name);
                if !events.has(Events::MESSAGE_NEW | Events::MESSAGE_EXPUNGE | Events::FLAG_CHANGE) || self.is_selected(&name) {
                    continue;
                }
                let mut items = vec![StatusItem::UidValidity, StatusItem::UidNext, StatusItem::Messages, StatusItem::Unseen];
                if events.has(Events::FLAG_CHANGE) {
                    items.push(StatusItem::HighestModSeq);
                }
                self.status_notice(&name, &items).await;
            }
        }
        self.notify = Some(notify);
        Outcome::ok("NOTIFY completed")
    }

    fn is_selected(&self, name: &str) -> bool {
        self.selected.as_ref().is_some_and(|selected| selected.name == name)
    }

    /// `* STATUS name (...)`, unless the mailbox went away meanwhile.
    async fn status_notice(&mut self, name: &str, items: &[StatusItem]) {
        match self.status_line(name, items).await {
            Ok(line) => self.untagged(&line),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => tracing::warn!(error = %e, mailbox = name, "cannot tell a NOTIFY STATUS"),
        }
    }

    /// The next frame, as [`Session::next_frame`] reads it, telling the client meanwhile of
    /// what NOTIFY follows (not while a command is half received: only whole ones are
    /// interrupted by nothing). The idle timeout counts from the call, not from each event.
    pub(super) async fn next_frame_notifying(&mut self) -> std::io::Result<Next> {
        let idle = self.ctx.config.imap.idle_timeout.0;
        let deadline = Instant::now() + idle;
        loop {
            self.tell_pending().await;
            self.flush().await?;
            if let Some(frame) = self.take_frame() {
                self.conn.command_done();
                return Ok(Next::Frame(frame));
            }
            let Some(notify) = self.notify.as_mut() else { return self.next_frame().await };
            let listening = self.receiver.is_idle();
            let mut events = if listening { notify.events.take() } else { None };
            let follows_selected = notify.selected().is_some();
            let mut changes = match (listening && follows_selected, self.selected.as_ref()) {
                (true, Some(selected)) => Some(selected.changes.clone()),
                _ => None,
            };
            let wait = deadline.saturating_duration_since(Instant::now());
            let woke = tokio::select! {
                read = self.conn.read_command(wait, idle, !listening) => Woke::Read(read),
                event = next_event(&mut events) => Woke::Event(event),
                () = next_change(&mut changes) => Woke::Selected,
            };
            self.restore_events(events);
            match woke {
                Woke::Read(read) => {
                    if let Some(end) = self.framed(read?) {
                        return Ok(end);
                    }
                }
                Woke::Event(event) => self.received(event).await,
                Woke::Selected => {
                    if let Some(selected) = self.selected.as_mut() {
                        selected.changes.borrow_and_update();
                    }
                    self.tell_selected().await?;
                }
            }
        }
    }

    /// Takes the event channel out for a wait (IDLE's) to listen to.
    pub(super) fn take_events(&mut self) -> Option<broadcast::Receiver<MailboxEvent>> {
        self.notify.as_mut().and_then(|notify| notify.events.take())
    }

    /// Gives back what [`Session::take_events`] took.
    pub(super) fn restore_events(&mut self, events: Option<broadcast::Receiver<MailboxEvent>>) {
        if let (Some(notify), Some(events)) = (self.notify.as_mut(), events) {
            notify.events = Some(events);
        }
    }

    /// Tells of an event a wait received, and of those queued behind it.
    pub(super) async fn received(&mut self, event: Result<MailboxEvent, broadcast::error::RecvError>) {
        match event {
            Ok(event) => self.tell(vec![event]).await,
            Err(broadcast::error::RecvError::Lagged(_)) => self.overflow(),
            Err(broadcast::error::RecvError::Closed) => {}
        }
        self.tell_pending().await;
    }

    /// Tells of the events queued since the last look.
    pub(super) async fn tell_pending(&mut self) {
        let mut batch = Vec::new();
        while let Some(events) = self.notify.as_mut().and_then(|notify| notify.events.as_mut()) {
            match events.try_recv() {
                Ok(event) => batch.push(event),
                Err(broadcast::error::TryRecvError::Lagged(_)) => {
                    self.overflow();
                    return;
                }
                Err(_) => break,
            }
        }
        if !batch.is_empty() {
            self.tell(batch).await;
        }
    }

    /// RFC 5465 5.8: events were lost; NOTIFY is off until the client sets it again.
    fn overflow(&mut self) {
        self.notify = None;
        self.untagged("OK [NOTIFICATIONOVERFLOW] Too many events to follow; NOTIFY is off");
    }

    /// Tells the client of `events`, in order, as NOTIFY asked: one STATUS per mailbox, at the
    /// place of its last message event, with what all of them changed.
    async fn tell(&mut self, events: Vec<MailboxEvent>) {
        let mut last: HashMap<&str, (usize, u16)> = HashMap::new();
        for (i, event) in events.iter().enumerate() {
            if let Some((name, kind)) = message_event(event) {
                let entry = last.entry(name).or_insert((i, 0));
                *entry = (i, entry.1 | kind);
            }
        }
        let statuses: HashMap<usize, (String, u16)> = last.into_iter().map(|(name, (i, kinds))| (i, (name.to_string(), kinds))).collect();
        for (i, event) in events.iter().enumerate() {
            if let Some((name, kinds)) = statuses.get(&i) {
                self.tell_status(name, *kinds).await;
                continue;
            }
            let Some(notify) = self.notify.as_mut() else { return };
            // (attributes, name, old name) of a LIST notice.
            let notice = match event {
                MailboxEvent::Created(name) => notify.events_for(name).has(Events::MAILBOX_NAME).then_some(("", name, None)),
                MailboxEvent::Deleted(name) => notify.events_for(name).has(Events::MAILBOX_NAME).then_some(("\\NonExistent", name, None)),
                MailboxEvent::Renamed { from, to } => {
                    let followed = notify.events_for(from).has(Events::MAILBOX_NAME) || notify.events_for(to).has(Events::MAILBOX_NAME);
                    followed.then_some(("", to, Some(from)))
                }
                MailboxEvent::Subscribed { name, subscribed } => {
                    // Told if the mailbox is followed before or after the change.
                    let before = notify.events_for(name);
                    if let Some(names) = notify.subscribed.as_mut() {
                        if *subscribed {
                            names.insert(name.clone());
                        } else {
                            names.remove(name);
                        }
                    }
                    let after = notify.events_for(name);
                    let followed = before.has(Events::SUBSCRIPTION_CHANGE) || after.has(Events::SUBSCRIPTION_CHANGE);
                    followed.then_some((if *subscribed { "\\Subscribed" } else { "" }, name, None))
                }
                _ => None,
            };
            if let Some((attributes, name, old)) = notice {
                let mut line = format!("LIST ({attributes}) \"/\" {}", self.wire_name(name));
                if let Some(old) = old {
                    line.push_str(&format!(" (\"OLDNAME\" ({}))", self.wire_name(old)));
                }
                self.untagged(&line);
            }
        }
    }

    /// STATUS for message events (`kinds`: the [`Events`] bits) of a mailbox other than the
    /// selected one (told through EXISTS, EXPUNGE and FETCH).
    async fn tell_status(&mut self, name: &str, kinds: u16) {
        let Some(notify) = self.notify.as_ref() else { return };
        let wanted = notify.events_for(name).0 & kinds;
        if wanted == 0 || self.is_selected(name) {
            return;
        }
        let mut items = Vec::new();
        if wanted & (Events::MESSAGE_NEW | Events::MESSAGE_EXPUNGE) != 0 {
            items.extend([StatusItem::Messages, StatusItem::UidNext]);
        }
        items.push(StatusItem::Unseen);
        if self.condstore {
            items.push(StatusItem::HighestModSeq);
        }
        self.status_notice(name, &items).await;
    }

    /// The selected mailbox changed while the client waits: EXISTS, EXPUNGE and FETCH now
    /// (RFC 5465 5.1), and the FETCH of new messages that `MessageNew (items)` asked for.
    async fn tell_selected(&mut self) -> std::io::Result<()> {
        let Some(events) = self.notify.as_ref().and_then(|notify| notify.selected().cloned()) else { return Ok(()) };
        let last = self.selected.as_ref().and_then(|selected| selected.messages.last()).map_or(0, |m| m.uid);
        self.refresh(!events.delayed).await;
        let Some(items) = events.fetch else { return Ok(()) };
        let Some(selected) = self.selected.as_ref() else { return Ok(()) };
        let new: Vec<u32> = selected.messages.iter().map(|m| m.uid).filter(|&uid| uid > last).collect();
        if !new.is_empty() {
            let outcome = self.fetch(true, &SequenceSet::of(&new), items, None, false).await?;
            if !matches!(outcome.status, Status::Ok) {
                tracing::info!(text = outcome.text, "NOTIFY's FETCH of new messages failed");
            }
        }
        Ok(())
    }
}

/// The mailbox and [`Events`] bit of a message event.
fn message_event(event: &MailboxEvent) -> Option<(&str, u16)> {
    match event {
        MailboxEvent::New(name) => Some((name, Events::MESSAGE_NEW)),
        MailboxEvent::Expunged(name) => Some((name, Events::MESSAGE_EXPUNGE)),
        MailboxEvent::Flags(name) => Some((name, Events::FLAG_CHANGE)),
        _ => None,
    }
}
