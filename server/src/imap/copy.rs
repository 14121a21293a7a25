//! COPY and MOVE (RFC 3501 6.4.7, RFC 6851), by sequence number or UID, answered with
//! COPYUID (RFC 4315).

use std::sync::Arc;

use wasmail_proto::imap::SequenceSet;

use super::session::{blocking, store_error, Outcome, Session};

impl Session {
    pub(super) async fn copy(&mut self, uid: bool, set: &SequenceSet, target: &str, remove: bool) -> Outcome {
        let verb = if remove { "MOVE" } else { "COPY" };
        let selected = self.selected.as_ref().expect("selected");
        if remove && selected.read_only {
            return Outcome::no_code("READ-ONLY", "The mailbox is read-only");
        }
        let indexes = match selected.resolve(set, uid) {
            Ok(indexes) => indexes,
            Err(e) => return Outcome::bad(e),
        };
        let uids: Vec<u32> = indexes.iter().map(|&i| selected.messages[i].uid).filter(|u| !selected.gone.contains(u)).collect();
        if uids.is_empty() {
            return Outcome::ok(format!("{verb} completed (nothing to do)"));
        }
        if !remove {
            // A MOVE keeps the user's usage as it was; a COPY adds to it.
            let octets = indexes.iter().map(|&i| selected.messages[i].size).sum();
            if let Some(refused) = self.over_quota(octets, uids.len() as u64).await {
                return refused;
            }
        }
        let selected = self.selected.as_ref().expect("selected");
        let (store, user, from, to) = (Arc::clone(&self.ctx.store), self.user(), selected.name.clone(), target.to_string());
        let result = blocking(move || {
            let copied = store.copy(&user, &from, &uids, &to)?;
            if remove {
                // Only what was copied is removed: a message that vanished meanwhile is not lost twice.
                let done: Vec<u32> = copied.1.iter().map(|(old, _)| *old).collect();
                store.expunge(&user, &from, &done)?;
            }
            Ok(copied)
        })
        .await;
        let (validity, pairs) = match result {
            Ok(copied) => copied,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Outcome::no_code("TRYCREATE", "No such mailbox"),
            Err(e) if e.kind() == std::io::ErrorKind::InvalidInput => return Outcome::no_code("LIMIT", e.to_string()),
            Err(e) => return store_error(&e, verb),
        };
        if pairs.is_empty() {
            return Outcome::ok(format!("{verb} completed (nothing to do)"));
        }
        let source: Vec<String> = pairs.iter().map(|(old, _)| old.to_string()).collect();
        let target: Vec<String> = pairs.iter().map(|(_, new)| new.to_string()).collect();
        let code = format!("COPYUID {validity} {} {}", source.join(","), target.join(","));
        if remove {
            // RFC 6851 4.3: COPYUID comes untagged, before the EXPUNGEs of the refresh.
            self.untagged(&format!("OK [{code}] Moved"));
            return Outcome::ok("MOVE completed");
        }
        Outcome::ok_code(code, "COPY completed")
    }
}
