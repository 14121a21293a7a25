//! Where the delivery hooks send each recipient: a folder, a redirect, a copy, a relay, a
//! discard, a rejection or a deferral, applied to the envelope.

use std::sync::Arc;

use wasmail_proto::reply::codes;

use super::spool::{Envelope, Mailbox, Recipient, State};
use super::Queue;
use crate::plugin::delivery::{MessageInfo, RecipientInfo, Route, RouteOutcome};
use crate::plugin::SessionPlugins;

impl Queue {
    /// Asks the delivery hooks where each recipient not routed yet goes, and applies it.
    pub(super) async fn route_recipients(&self, plugins: &mut SessionPlugins, envelope: &mut Envelope, message: &MessageInfo) {
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
                    r.status = Some(codes::TEMP_SYSTEM);
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
                Route::Relay(hop) if crate::config::split_route(&hop).is_ok() => {
                    let r = &mut envelope.recipients[i];
                    r.mailboxes.clear();
                    r.remote = true;
                    r.route = Some(hop);
                }
                Route::Relay(hop) => tracing::warn!(queue_id = envelope.id, to = original, hop, plugin = by, "relay route ignored: not host:port"),
                Route::Reject(text) => {
                    let r = &mut envelope.recipients[i];
                    r.state = State::Failed;
                    r.status = Some(codes::POLICY);
                    r.detail = Some(text.chars().filter(|c| !c.is_control()).take(300).collect());
                }
                Route::Defer(text) => {
                    let r = &mut envelope.recipients[i];
                    r.status = Some(codes::TEMP_ABUSE);
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
    pub(super) fn add_recipient(&self, envelope: &mut Envelope, address: &str, notify: Option<Vec<String>>, orcpt: Option<String>) {
        let parsed = wasmail_proto::address::parse_mailbox(address.trim());
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
            status: unknown.then_some(codes::BAD_DEST_MAILBOX),
            routed: true,
            forwarded: remote,
            ..Recipient::new(address)
        });
    }
}

/// The index of the mailbox entry for (user, folder), added if missing.
fn mailbox_index(envelope: &mut Envelope, user: &str, folder: Option<&str>, tag: Option<String>) -> usize {
    if let Some(i) = envelope.mailboxes.iter().position(|m| m.user == user && m.folder.as_deref() == folder) {
        return i;
    }
    envelope.mailboxes.push(Mailbox { user: user.to_string(), folder: folder.map(str::to_string), tag, delivered: false });
    envelope.mailboxes.len() - 1
}
