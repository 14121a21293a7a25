//! STORE (RFC 3501 6.4.6): FLAGS, +FLAGS, -FLAGS and their .SILENT forms, and the conditional
//! STORE of CONDSTORE (RFC 7162 3.1.3): UNCHANGEDSINCE, answered with MODIFIED.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use wasmail_proto::imap::{sequence, Flag, SequenceSet, StoreMode};

use super::session::{apply_flag, blocking, store_error, Outcome, Session};
use crate::store::{FlagChange, Flags};

impl Session {
    pub(super) async fn store(
        &mut self,
        uid: bool,
        set: &SequenceSet,
        mode: StoreMode,
        silent: bool,
        flags: &[Flag],
        unchanged_since: Option<u64>,
    ) -> Outcome {
        if unchanged_since.is_some() {
            self.use_condstore();
        }
        let selected = self.selected.as_ref().expect("selected");
        if selected.read_only {
            return Outcome::no_code("READ-ONLY", "The mailbox is read-only");
        }
        let indexes = match selected.resolve(set, uid) {
            Ok(indexes) => indexes,
            Err(e) => return Outcome::bad(e),
        };
        let present: Vec<usize> = indexes.into_iter().filter(|&i| !selected.gone.contains(&selected.messages[i].uid)).collect();
        let uids: Vec<u32> = present.iter().map(|&i| selected.messages[i].uid).collect();
        let mut wanted = Flags::default();
        for flag in flags {
            apply_flag(&mut wanted, flag, true);
        }
        let change = match mode {
            StoreMode::Replace => FlagChange::Replace,
            StoreMode::Add => FlagChange::Add,
            StoreMode::Remove => FlagChange::Remove,
        };
        // The store applies the change to the flags as they are now, whatever this session
        // last saw, and says what each message has after it.
        let (store, user, name) = (Arc::clone(&self.ctx.store), self.user(), selected.name.clone());
        let result = match blocking(move || store.change_flags(&user, &name, &uids, change, &wanted, unchanged_since)).await {
            Ok(result) => result,
            Err(e) if e.kind() == std::io::ErrorKind::InvalidInput => return Outcome::no_code("LIMIT", e.to_string()),
            Err(e) => return store_error(&e, "STORE"),
        };
        let stored: HashMap<u32, (Flags, u64)> = result.stored.into_iter().map(|(uid, flags, modseq)| (uid, (flags, modseq))).collect();
        let refused: HashSet<u32> = result.modified.into_iter().collect();
        let condstore = self.condstore;
        // Once QRESYNC is on, every FETCH response names the UID (RFC 7162 3.2.4).
        let with_uid = uid || self.qresync;
        let selected = self.selected.as_mut().expect("selected");
        let mut lines = Vec::new();
        let mut modified = Vec::new();
        for i in present {
            let message_uid = selected.messages[i].uid;
            if refused.contains(&message_uid) {
                modified.push(if uid { message_uid } else { i as u32 + 1 });
                continue;
            }
            let Some((flags, modseq)) = stored.get(&message_uid) else { continue };
            lines.extend(selected.announce(flags));
            let changed = *modseq != selected.messages[i].modseq;
            Arc::make_mut(&mut selected.messages)[i].flags = flags.clone();
            Arc::make_mut(&mut selected.messages)[i].modseq = *modseq;
            if !silent {
                lines.push(selected.flags_response(i, with_uid, condstore));
            } else if condstore && changed {
                // RFC 7162 3.1.3: even a silent STORE tells the new mod-sequence.
                let message = &selected.messages[i];
                let uid_item = if with_uid { format!("UID {} ", message.uid) } else { String::new() };
                lines.push(format!("{} FETCH ({uid_item}MODSEQ ({}))", i + 1, message.modseq));
            }
        }
        for line in lines {
            self.untagged(&line);
        }
        if modified.is_empty() {
            return Outcome::ok("STORE completed");
        }
        modified.sort_unstable();
        Outcome::ok_code(format!("MODIFIED {}", sequence::compact(&modified)), "Conditional STORE failed for some messages")
    }
}
