//! QUOTA (RFC 9208): one quota root per user, `""`, over all of its mailboxes, with the limits
//! of `[quota]` — STORAGE (in units of 1024 octets) and MESSAGE. GETQUOTA and GETQUOTAROOT
//! report usage; SETQUOTA is refused (limits are the operator's, in the configuration);
//! APPEND and COPY that would pass a limit answer `NO [OVERQUOTA]`.

use std::sync::Arc;

use super::session::{blocking, store_error, Outcome, Session};
use crate::store::Usage;

impl Session {
    pub(super) async fn get_quota(&mut self, root: &str) -> Outcome {
        if !root.is_empty() {
            return Outcome::no_code("NONEXISTENT", "The only quota root is \"\"");
        }
        match self.usage().await {
            Ok(usage) => {
                let line = self.quota_line(&usage);
                self.untagged(&line);
                Outcome::ok("GETQUOTA completed")
            }
            Err(e) => store_error(&e, "GETQUOTA"),
        }
    }

    pub(super) async fn get_quota_root(&mut self, mailbox: &str) -> Outcome {
        let (store, user, name) = (Arc::clone(&self.ctx.store), self.user(), mailbox.to_string());
        if let Err(e) = blocking(move || store.sync(&user, &name, false)).await {
            return store_error(&e, "GETQUOTAROOT");
        }
        match self.usage().await {
            Ok(usage) => {
                let line = format!("QUOTAROOT {} \"\"", self.wire_name(mailbox));
                self.untagged(&line);
                let line = self.quota_line(&usage);
                self.untagged(&line);
                Outcome::ok("GETQUOTAROOT completed")
            }
            Err(e) => store_error(&e, "GETQUOTAROOT"),
        }
    }

    /// `NO [OVERQUOTA]` if storing `octets` more in `messages` more messages would pass a
    /// limit; None if it may go ahead (or the usage cannot be read: the store will say).
    pub(super) async fn over_quota(&mut self, octets: u64, messages: u64) -> Option<Outcome> {
        let quota = self.ctx.config.quota.clone();
        if !quota.is_set() {
            return None;
        }
        let usage = self.usage().await.ok()?;
        (!quota.allows((usage.octets, usage.messages), (octets, messages)))
            .then(|| Outcome::no_code("OVERQUOTA", "The mailbox is over its quota; delete some mail first"))
    }

    async fn usage(&mut self) -> std::io::Result<Usage> {
        let (store, user) = (Arc::clone(&self.ctx.store), self.user());
        blocking(move || store.usage(&user)).await
    }

    /// `QUOTA "" (STORAGE used limit MESSAGE used limit)`, the resources with a limit.
    fn quota_line(&self, usage: &Usage) -> String {
        let quota = &self.ctx.config.quota;
        let mut resources = Vec::new();
        if quota.storage.0 > 0 {
            resources.push(format!("STORAGE {} {}", usage.octets.div_ceil(1024), quota.storage.0 / 1024));
        }
        if quota.messages > 0 {
            resources.push(format!("MESSAGE {} {}", usage.messages, quota.messages));
        }
        format!("QUOTA \"\" ({})", resources.join(" "))
    }
}
