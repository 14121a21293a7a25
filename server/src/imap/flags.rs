//! STORE (RFC 3501 6.4.6): FLAGS, +FLAGS, -FLAGS and their .SILENT forms.

use std::collections::HashMap;
use std::sync::Arc;

use wasmail_proto::imap::{Flag, SequenceSet, StoreMode};

use super::session::{apply_flag, blocking, store_error, Outcome, Session};
use crate::store::{FlagChange, Flags};

impl Session {
    pub(super) async fn store(&mut self, uid: bool, set: &SequenceSet, mode: StoreMode, silent: bool, flags: &[Flag]) -> Outcome {
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
        let changed: HashMap<u32, Flags> = match blocking(move || store.change_flags(&user, &name, &uids, change, &wanted)).await {
            Ok(changed) => changed.into_iter().collect(),
            Err(e) if e.kind() == std::io::ErrorKind::InvalidInput => return Outcome::no_code("LIMIT", e.to_string()),
            Err(e) => return store_error(&e, "STORE"),
        };
        let selected = self.selected.as_mut().expect("selected");
        let mut lines = Vec::new();
        for i in present {
            let Some(flags) = changed.get(&selected.messages[i].uid) else { continue };
            lines.extend(selected.announce(flags));
            selected.messages[i].flags = flags.clone();
            if !silent {
                let message = &selected.messages[i];
                let uid_item = if uid { format!(" UID {}", message.uid) } else { String::new() };
                lines.push(format!("{} FETCH (FLAGS {}{uid_item})", i + 1, selected.flags_text(message)));
            }
        }
        for line in lines {
            self.untagged(&line);
        }
        Outcome::ok("STORE completed")
    }
}
