//! CONDSTORE and QRESYNC (RFC 7162) where they are not part of one command's work (FETCH,
//! STORE, SEARCH and STATUS handle MODSEQ, CHANGEDSINCE and UNCHANGEDSINCE themselves): ENABLE
//! (RFC 5161), turning CONDSTORE on at the first command that uses it, and the
//! resynchronisation that SELECT ... (QRESYNC (...)) asks for.

use std::sync::Arc;

use wasmail_proto::imap::{sequence, Qresync, SequenceSet};

use super::session::{blocking, Outcome, Session};

impl Session {
    /// ENABLE: CONDSTORE, QRESYNC, which implies it (RFC 7162 3.2.3), and IMAP4rev2 (RFC
    /// 9051). Nothing else offered here needs enabling, so nothing else is listed as enabled.
    pub(super) fn enable(&mut self, capabilities: &[String]) -> Outcome {
        let mut enabled = String::new();
        let condstore_before = self.condstore;
        for capability in capabilities {
            match capability.as_str() {
                "CONDSTORE" if !condstore_before && !enabled.contains(" CONDSTORE") => {
                    self.condstore = true;
                    enabled.push_str(" CONDSTORE");
                }
                "IMAP4REV2" if !self.rev2 => {
                    self.rev2 = true;
                    enabled.push_str(" IMAP4rev2");
                }
                "QRESYNC" if !self.qresync => {
                    self.qresync = true;
                    self.condstore = true;
                    enabled.push_str(" QRESYNC");
                }
                _ => {}
            }
        }
        self.untagged(&format!("ENABLED{enabled}"));
        Outcome::ok("ENABLE completed")
    }

    /// Turns CONDSTORE on for a command that uses it (RFC 7162 3.1): MODSEQ in FETCH or
    /// SEARCH, CHANGEDSINCE, UNCHANGEDSINCE, STATUS HIGHESTMODSEQ. The first one with a
    /// mailbox selected also tells its HIGHESTMODSEQ.
    pub(super) fn use_condstore(&mut self) {
        if self.condstore {
            return;
        }
        self.condstore = true;
        if let Some(selected) = &self.selected {
            let line = format!("OK [HIGHESTMODSEQ {}] Highest", selected.highest_modseq);
            self.untagged(&line);
        }
    }

    /// What changed in the just selected mailbox since the client's last visit (RFC 7162
    /// 3.2.5.1): VANISHED (EARLIER) with the UIDs it knew that were expunged since its
    /// mod-sequence, then the flags of every message changed since. Nothing if the
    /// UIDVALIDITY changed: the client must start over.
    pub(super) async fn resync(&mut self, known: &Qresync) {
        let selected = self.selected.as_ref().expect("selected");
        if known.uid_validity != selected.uid_validity {
            return;
        }
        self.vanished_earlier(known.known_uids.as_ref(), known.modseq).await;
        let selected = self.selected.as_ref().expect("selected");
        let changed: Vec<String> = (0..selected.messages.len())
            .filter(|&i| selected.messages[i].modseq > known.modseq)
            .map(|i| selected.flags_response(i, true, true))
            .collect();
        for line in changed {
            self.untagged(&line);
        }
    }

    /// `* VANISHED (EARLIER)` with the UIDs of `set` (all if None) expunged after `since`
    /// that the view does not show (RFC 7162 3.2.5.1, 3.2.6): one it still shows was expunged
    /// by another session since the view was made, and is told with the next command, as
    /// VANISHED. `*` reaches every UID ever given: the client means all it knew, and the
    /// mailbox's largest UID now may be below an expunged one.
    pub(super) async fn vanished_earlier(&mut self, set: Option<&SequenceSet>, since: u64) {
        let selected = self.selected.as_ref().expect("selected");
        let (store, user, name) = (Arc::clone(&self.ctx.store), self.user(), selected.name.clone());
        match blocking(move || store.expunged_since(&user, &name, since)).await {
            Ok(expunged) => {
                let selected = self.selected.as_ref().expect("selected");
                let live: Vec<u32> = selected.messages.iter().map(|m| m.uid).collect();
                let vanished = sequence::narrow(&expunged, set, u32::MAX, &live);
                if !vanished.is_empty() {
                    self.untagged(&format!("VANISHED (EARLIER) {}", sequence::write(&vanished)));
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot read the expunged UIDs"),
        }
    }
}
