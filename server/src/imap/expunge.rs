//! EXPUNGE, UID EXPUNGE (RFC 4315), CLOSE and UNSELECT (RFC 3691).

use std::sync::Arc;

use wasmail_proto::imap::SequenceSet;

use super::session::{blocking, store_error, Outcome, Session};
use crate::store::Flags;

impl Session {
    /// EXPUNGE (all \Deleted) or UID EXPUNGE (those of them in `set`). The untagged EXPUNGE
    /// responses come from the refresh that follows every command.
    pub(super) async fn expunge(&mut self, set: Option<SequenceSet>) -> Outcome {
        let selected = self.selected.as_ref().expect("selected");
        if selected.read_only {
            return Outcome::no_code("READ-ONLY", "The mailbox is read-only");
        }
        let in_set = match &set {
            Some(set) => match selected.resolve(set, true) {
                Ok(indexes) => indexes,
                Err(e) => return Outcome::bad(e),
            },
            None => (0..selected.messages.len()).collect(),
        };
        let uids: Vec<u32> = in_set.into_iter().map(|i| &selected.messages[i]).filter(|m| m.flags.has(Flags::DELETED)).map(|m| m.uid).collect();
        if !uids.is_empty() {
            let (store, user, name) = (Arc::clone(&self.ctx.store), self.user(), selected.name.clone());
            if let Err(e) = blocking(move || store.expunge(&user, &name, &uids)).await {
                return store_error(&e, "EXPUNGE");
            }
        }
        Outcome::ok("EXPUNGE completed")
    }

    /// CLOSE (`expunge`: removes \Deleted messages silently, RFC 3501 6.4.2) or UNSELECT.
    pub(super) async fn close(&mut self, expunge: bool) -> Outcome {
        let selected = self.selected.take().expect("selected");
        if expunge && !selected.read_only {
            let uids: Vec<u32> = selected.messages.iter().filter(|m| m.flags.has(Flags::DELETED)).map(|m| m.uid).collect();
            if !uids.is_empty() {
                let (store, user, name) = (Arc::clone(&self.ctx.store), self.user(), selected.name.clone());
                if let Err(e) = blocking(move || store.expunge(&user, &name, &uids)).await {
                    return store_error(&e, "CLOSE");
                }
            }
        }
        Outcome::ok(if expunge { "CLOSE completed" } else { "UNSELECT completed" })
    }
}
