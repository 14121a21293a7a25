//! Commands on mailboxes (RFC 3501 6.3): SELECT, EXAMINE, CREATE, DELETE, RENAME, SUBSCRIBE,
//! UNSUBSCRIBE, STATUS. (LIST and LSUB are in `list`.)

use std::collections::HashSet;
use std::sync::Arc;

use wasmail_proto::imap::{SelectParams, StatusItem};

use super::session::{blocking, flags_lines, learn_keywords, store_error, Outcome, Selected, Session};
use crate::store::{valid_mailbox_name, Flags};

impl Session {
    /// SELECT and EXAMINE, with CONDSTORE or QRESYNC (RFC 7162 3.1.8, 3.2.5) if asked.
    pub(super) async fn select(&mut self, name: &str, read_only: bool, params: SelectParams) -> Outcome {
        if params.qresync.is_some() && !self.qresync {
            return Outcome::bad("QRESYNC must be enabled first (RFC 7162 3.2.5)");
        }
        // RFC 3501 6.3.1: selecting deselects first, even if the new SELECT fails; RFC 7162
        // 3.2.11 says so with CLOSED, so that the responses that follow are not taken for the
        // old mailbox's.
        if self.selected.take().is_some() {
            self.untagged("OK [CLOSED] Previous mailbox closed");
        }
        if params.condstore {
            self.condstore = true;
        }
        let (store, user, mailbox) = (Arc::clone(&self.ctx.store), self.user(), name.to_string());
        let changes = self.ctx.store.changes(&user, name);
        let synced = match blocking(move || store.sync(&user, &mailbox, !read_only)).await {
            Ok(synced) => synced,
            Err(e) => return store_error(&e, "SELECT"),
        };
        let mut recent: HashSet<u32> = synced.claimed.iter().copied().collect();
        if read_only {
            recent.extend(synced.messages.iter().filter(|m| m.unseen_by_any).map(|m| m.uid));
        }
        let mut keywords: Vec<String> = Vec::new();
        for message in synced.messages.iter() {
            learn_keywords(&mut keywords, &message.flags);
        }
        let first_unseen = synced.messages.iter().position(|m| !m.flags.has(Flags::SEEN));
        for line in flags_lines(&keywords, read_only) {
            self.untagged(&line);
        }
        self.untagged(&format!("{} EXISTS", synced.messages.len()));
        if self.rev2 {
            // RFC 9051 6.3.2: no RECENT or UNSEEN; the mailbox's LIST, with its name as the
            // server has it.
            let line = format!("LIST () \"/\" {}", self.wire_name(name));
            self.untagged(&line);
        } else {
            self.untagged(&format!("{} RECENT", recent.len()));
            if let Some(i) = first_unseen {
                self.untagged(&format!("OK [UNSEEN {}] First unseen message", i + 1));
            }
        }
        self.untagged(&format!("OK [UIDVALIDITY {}] UIDs valid", synced.uid_validity));
        self.untagged(&format!("OK [UIDNEXT {}] Predicted next UID", synced.uid_next));
        // RFC 7162 3.1.2.1: with every SELECT, as mod-sequences are always kept here.
        self.untagged(&format!("OK [HIGHESTMODSEQ {}] Highest", synced.highest_modseq));
        self.selected = Some(Selected {
            name: name.to_string(),
            read_only,
            uid_validity: synced.uid_validity,
            messages: Arc::clone(&synced.messages),
            gone: HashSet::new(),
            recent,
            keywords,
            snapshot: synced.messages,
            highest_modseq: synced.highest_modseq,
            saved: Vec::new(),
            rev2: self.rev2,
            contexts: Vec::new(),
            changes,
        });
        if let Some(known) = &params.qresync {
            self.resync(known).await;
        }
        if read_only {
            Outcome::ok_code("READ-ONLY", "EXAMINE completed")
        } else {
            Outcome::ok_code("READ-WRITE", "SELECT completed")
        }
    }

    pub(super) async fn create(&mut self, name: &str) -> Outcome {
        // RFC 3501 6.3.3: a trailing separator only says inferiors will follow.
        let name = name.strip_suffix('/').unwrap_or(name).to_string();
        if name == "INBOX" {
            return Outcome::no_code("ALREADYEXISTS", "INBOX always exists");
        }
        if !valid_mailbox_name(&name) {
            return Outcome::no_code("CANNOT", "Mailbox names may not contain '.', '%', '*', control characters or empty levels");
        }
        let (store, user) = (Arc::clone(&self.ctx.store), self.user());
        match blocking(move || store.create_mailbox(&user, &name)).await {
            Ok(()) => Outcome::ok("CREATE completed"),
            Err(e) => store_error(&e, "CREATE"),
        }
    }

    pub(super) async fn delete(&mut self, name: &str) -> Outcome {
        if name == "INBOX" {
            return Outcome::no_code("CANNOT", "INBOX cannot be deleted");
        }
        if self.selected.as_ref().is_some_and(|s| s.name == name) {
            return Outcome::no_code("INUSE", "Close the mailbox before deleting it");
        }
        let (store, user, name) = (Arc::clone(&self.ctx.store), self.user(), name.to_string());
        match blocking(move || store.delete_mailbox(&user, &name)).await {
            Ok(()) => Outcome::ok("DELETE completed"),
            Err(e) => store_error(&e, "DELETE"),
        }
    }

    pub(super) async fn rename(&mut self, from: &str, to: &str) -> Outcome {
        if !valid_mailbox_name(to) {
            return Outcome::no_code("CANNOT", "Bad new mailbox name");
        }
        if self.selected.as_ref().is_some_and(|s| s.name == from || s.name.starts_with(&format!("{from}/"))) {
            return Outcome::no_code("INUSE", "Close the mailbox before renaming it");
        }
        let (store, user, from, to) = (Arc::clone(&self.ctx.store), self.user(), from.to_string(), to.to_string());
        match blocking(move || store.rename_mailbox(&user, &from, &to)).await {
            Ok(()) => Outcome::ok("RENAME completed"),
            Err(e) => store_error(&e, "RENAME"),
        }
    }

    pub(super) async fn subscribe(&mut self, name: &str, subscribed: bool) -> Outcome {
        if !valid_mailbox_name(name) {
            return Outcome::no_code("CANNOT", "Bad mailbox name");
        }
        let (store, user, name) = (Arc::clone(&self.ctx.store), self.user(), name.to_string());
        let verb = if subscribed { "SUBSCRIBE" } else { "UNSUBSCRIBE" };
        match blocking(move || store.set_subscribed(&user, &name, subscribed)).await {
            Ok(()) => Outcome::ok(format!("{verb} completed")),
            Err(e) => store_error(&e, verb),
        }
    }

    pub(super) async fn status(&mut self, name: &str, items: &[StatusItem]) -> Outcome {
        if items.contains(&StatusItem::HighestModSeq) {
            self.use_condstore();
        }
        match self.status_line(name, items).await {
            Ok(line) => {
                self.untagged(&line);
                Outcome::ok("STATUS completed")
            }
            Err(e) => store_error(&e, "STATUS"),
        }
    }

    /// `STATUS name (MESSAGES 3 ...)` for a mailbox, as STATUS and LIST-STATUS answer.
    pub(super) async fn status_line(&mut self, name: &str, items: &[StatusItem]) -> std::io::Result<String> {
        let (store, user, mailbox) = (Arc::clone(&self.ctx.store), self.user(), name.to_string());
        let synced = blocking(move || store.sync(&user, &mailbox, false)).await?;
        let values: Vec<String> = items
            .iter()
            .map(|item| match item {
                StatusItem::Messages => format!("MESSAGES {}", synced.messages.len()),
                StatusItem::Recent => format!("RECENT {}", synced.messages.iter().filter(|m| m.unseen_by_any).count()),
                StatusItem::UidNext => format!("UIDNEXT {}", synced.uid_next),
                StatusItem::UidValidity => format!("UIDVALIDITY {}", synced.uid_validity),
                StatusItem::Unseen => format!("UNSEEN {}", synced.messages.iter().filter(|m| !m.flags.has(Flags::SEEN)).count()),
                StatusItem::Size => format!("SIZE {}", synced.messages.iter().map(|m| m.size).sum::<u64>()),
                StatusItem::HighestModSeq => format!("HIGHESTMODSEQ {}", synced.highest_modseq),
                StatusItem::Deleted => format!("DELETED {}", synced.messages.iter().filter(|m| m.flags.has(Flags::DELETED)).count()),
                StatusItem::DeletedStorage => {
                    format!("DELETED-STORAGE {}", synced.messages.iter().filter(|m| m.flags.has(Flags::DELETED)).map(|m| m.size).sum::<u64>())
                }
            })
            .collect();
        Ok(format!("STATUS {} ({})", self.wire_name(name), values.join(" ")))
    }
}
