//! STORE (RFC 3501 6.4.6): FLAGS, +FLAGS, -FLAGS and their .SILENT forms.

use std::sync::Arc;

use wasmail_proto::imap::{Flag, SequenceSet, StoreMode};

use super::session::{apply_flag, blocking, store_error, Outcome, Session};

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
        let mut changes = Vec::new();
        let mut updated = Vec::new();
        for &i in &indexes {
            let message = &selected.messages[i];
            if selected.gone.contains(&message.uid) {
                continue;
            }
            let mut new = match mode {
                StoreMode::Replace => crate::store::Flags::default(),
                _ => message.flags.clone(),
            };
            for flag in flags {
                apply_flag(&mut new, flag, mode != StoreMode::Remove);
            }
            if new != message.flags {
                changes.push((message.uid, new.clone()));
            }
            updated.push((i, new));
        }
        if !changes.is_empty() {
            let (store, user, name) = (Arc::clone(&self.ctx.store), self.user(), selected.name.clone());
            if let Err(e) = blocking(move || store.set_flags(&user, &name, &changes)).await {
                if e.kind() == std::io::ErrorKind::InvalidInput {
                    return Outcome::no_code("LIMIT", e.to_string());
                }
                return store_error(&e, "STORE");
            }
        }
        let selected = self.selected.as_mut().expect("selected");
        let mut lines = Vec::new();
        for (i, flags) in updated {
            selected.messages[i].flags = flags;
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
