//! APPEND (RFC 3501 6.3.11) with flags and an internal date, answered with APPENDUID
//! (RFC 4315).

use std::sync::Arc;

use wasmail_proto::imap::Flag;

use super::session::{apply_flag, blocking, store_error, Outcome, Session};
use crate::store::Flags;

impl Session {
    pub(super) async fn append(
        &mut self,
        name: &str,
        flags: &[Flag],
        date: Option<chrono::DateTime<chrono::FixedOffset>>,
        message: Vec<u8>,
    ) -> Outcome {
        if message.is_empty() {
            return Outcome::no("An empty message cannot be appended");
        }
        let mut stored = Flags::default();
        for flag in flags {
            apply_flag(&mut stored, flag, true);
        }
        let (store, user, mailbox) = (Arc::clone(&self.ctx.store), self.user(), name.to_string());
        let date = date.map(|d| d.timestamp());
        match blocking(move || store.append(&user, &mailbox, &message, &stored, date)).await {
            Ok((validity, uid)) => Outcome::ok_code(format!("APPENDUID {validity} {uid}"), "APPEND completed"),
            // RFC 3501 6.3.11: a mailbox that does not exist is TRYCREATE.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Outcome::no_code("TRYCREATE", "No such mailbox"),
            Err(e) if e.kind() == std::io::ErrorKind::InvalidInput => Outcome::no_code("LIMIT", e.to_string()),
            Err(e) => store_error(&e, "APPEND"),
        }
    }
}
