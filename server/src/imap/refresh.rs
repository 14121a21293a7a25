//! Bringing the selected mailbox's view up to date after each command (RFC 3501 7): EXPUNGE
//! (or, with QRESYNC, VANISHED) when the RFC allows it, EXISTS and RECENT for new mail, and
//! FETCH for flags changed elsewhere — with UID and MODSEQ once CONDSTORE is on (RFC 7162
//! 3.1.4, 3.2.10).

use std::collections::HashMap;
use std::sync::Arc;

use wasmail_proto::imap::sequence;

use super::session::{Selected, Session};
use crate::store::MessageInfo;

impl Session {
    /// Brings the selected mailbox's view up to date and tells the client what changed.
    pub(super) async fn refresh(&mut self, expunge_allowed: bool) {
        let (Some(user), Some(selected)) = (self.user.clone(), self.selected.as_ref()) else { return };
        let (store, name, claim) = (Arc::clone(&self.ctx.store), selected.name.clone(), !selected.read_only);
        // Two `stat`s answer most refreshes (nothing changed); the blocking pool, and its two
        // thread switches, only the rest.
        let unchanged = store.sync_unchanged(&user, &name, claim);
        let synced = match unchanged {
            Some(synced) => Ok(Ok(synced)),
            None => tokio::task::spawn_blocking(move || store.sync(&user, &name, claim)).await,
        };
        let synced = match synced {
            Ok(Ok(synced)) => synced,
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::NotFound => {
                // The mailbox was deleted or renamed under us: nothing of it is left.
                self.untagged("BYE The selected mailbox no longer exists");
                self.logout = true;
                return;
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "cannot sync the selected mailbox");
                return;
            }
            Err(e) => {
                tracing::error!(error = %e, "mailbox sync failed");
                return;
            }
        };
        let (condstore, qresync) = (self.condstore, self.qresync);
        let selected = self.selected.as_mut().expect("checked above");
        if synced.uid_validity != selected.uid_validity {
            // The index was rebuilt: the client must start over (RFC 3501 2.3.1.1).
            self.untagged("BYE The mailbox's UIDVALIDITY changed; select it again");
            self.logout = true;
            return;
        }
        let recent_before = selected.recent.len();
        selected.recent.extend(synced.claimed.iter().copied());
        if selected.read_only {
            selected.recent.extend(synced.messages.iter().filter(|m| m.unseen_by_any).map(|m| m.uid));
        }
        let unchanged = Arc::ptr_eq(&synced.messages, &selected.snapshot);
        let mut lines = Vec::new();
        let mut arrived = false;
        // Nothing gone, nothing waiting to be reported: the view's messages are the first of
        // the store's, and after this the view is the store's list itself (no copy, and the
        // next refresh finds it unchanged by a pointer).
        let in_step = !unchanged
            && selected.gone.is_empty()
            && synced.messages.len() >= selected.messages.len()
            && selected.messages.iter().zip(synced.messages.iter()).all(|(seen, now)| seen.uid == now.uid);
        if in_step {
            let told = std::mem::replace(&mut selected.messages, Arc::clone(&synced.messages));
            for (i, (seen, now)) in told.iter().zip(synced.messages.iter()).enumerate() {
                let flags_changed = now.flags != seen.flags;
                if flags_changed || now.modseq != seen.modseq {
                    lines.extend(selected.announce(&now.flags));
                    // A change the client cannot see (a letter this server does not manage) is
                    // news only to a client that follows mod-sequences.
                    if flags_changed || condstore {
                        lines.push(selected.flags_response(i, condstore, condstore));
                    }
                }
            }
            for message in &synced.messages[told.len()..] {
                lines.extend(selected.announce(&message.flags));
            }
            if synced.messages.len() != told.len() {
                lines.push(format!("{} EXISTS", synced.messages.len()));
                arrived = true;
            }
            selected.snapshot = synced.messages;
        } else if !unchanged || !selected.gone.is_empty() {
            let current: HashMap<u32, &MessageInfo> = synced.messages.iter().map(|m| (m.uid, m)).collect();
            for message in selected.messages.iter() {
                if !current.contains_key(&message.uid) {
                    selected.gone.insert(message.uid);
                }
            }
            if expunge_allowed && !selected.gone.is_empty() {
                lines.extend(report_gone(selected, qresync));
            }
            for i in 0..selected.messages.len() {
                let Some(now) = current.get(&selected.messages[i].uid) else { continue };
                let flags_changed = now.flags != selected.messages[i].flags;
                if flags_changed || now.modseq != selected.messages[i].modseq {
                    lines.extend(selected.announce(&now.flags));
                    Arc::make_mut(&mut selected.messages)[i].flags = now.flags.clone();
                    Arc::make_mut(&mut selected.messages)[i].modseq = now.modseq;
                    // A change the client cannot see (a letter this server does not manage) is
                    // news only to a client that follows mod-sequences.
                    if flags_changed || condstore {
                        lines.push(selected.flags_response(i, condstore, condstore));
                    }
                }
                if selected.messages[i].location != now.location {
                    Arc::make_mut(&mut selected.messages)[i].location = now.location.clone();
                }
            }
            let last = selected.messages.last().map(|m| m.uid).unwrap_or(0);
            let before = selected.messages.len();
            let new = synced.messages.partition_point(|m| m.uid <= last);
            for message in &synced.messages[new..] {
                lines.extend(selected.announce(&message.flags));
            }
            if new < synced.messages.len() {
                Arc::make_mut(&mut selected.messages).extend_from_slice(&synced.messages[new..]);
            }
            if selected.messages.len() != before {
                lines.push(format!("{} EXISTS", selected.messages.len()));
                arrived = true;
            }
            selected.snapshot = synced.messages;
        }
        // The client has been told everything up to the mailbox's HIGHESTMODSEQ only once no
        // expunge waits to be reported (RFC 7162 3.1.2.1).
        if selected.gone.is_empty() {
            selected.highest_modseq = synced.highest_modseq;
        }
        // RECENT goes with every EXISTS for new mail, as clients expect, and whenever it changed.
        if !selected.rev2 && (arrived || selected.recent.len() != recent_before) {
            lines.push(format!("{} RECENT", selected.recent.len()));
        }
        for line in lines {
            self.untagged(&line);
        }
        if self.selected.as_ref().is_some_and(|s| !s.contexts.is_empty()) {
            self.update_contexts().await;
        }
    }
}

/// Removes the messages gone from the view and says so: EXPUNGE per message, highest first so
/// that each number is still right when the client reads it (RFC 3501 7.4.1), or one VANISHED
/// with their UIDs once QRESYNC is on (RFC 7162 3.2.10).
fn report_gone(selected: &mut Selected, qresync: bool) -> Vec<String> {
    // Kept searches first lose them (RFC 5267), in the numbers the client still has.
    let numbered: Vec<(u32, u32)> =
        selected.messages.iter().enumerate().filter(|(_, m)| selected.gone.contains(&m.uid)).map(|(i, m)| (i as u32 + 1, m.uid)).collect();
    let mut lines = super::context::expunged(selected, &numbered);
    let mut uids = Vec::new();
    for i in (0..selected.messages.len()).rev() {
        if selected.gone.contains(&selected.messages[i].uid) {
            if !qresync {
                lines.push(format!("{} EXPUNGE", i + 1));
            }
            let uid = Arc::make_mut(&mut selected.messages).remove(i).uid;
            selected.recent.remove(&uid);
            uids.push(uid);
        }
    }
    selected.gone.clear();
    if qresync && !uids.is_empty() {
        uids.reverse();
        lines.push(format!("VANISHED {}", sequence::compact(&uids)));
    }
    lines
}
