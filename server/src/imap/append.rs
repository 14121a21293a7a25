//! APPEND (RFC 3501 6.3.11) with flags and an internal date, several messages at once (RFC
//! 3502 MULTIAPPEND: all or none), messages joined from parts (RFC 4469 CATENATE, see
//! `catenate`), answered with APPENDUID (RFC 4315). A message sent as a literal8 (RFC 3516)
//! or holding NULs has its binary parts re-encoded (base64, or quoted-printable for text)
//! before it is stored: Maildir keeps lines, and every reader expects them; BINARY gives the
//! octets back.

use std::sync::Arc;

use wasmail_proto::imap::{sequence, AppendMessage};

use super::session::{apply_flag, blocking, store_error, Outcome, Session};
use crate::store::{Flags, NewMessage};

impl Session {
    pub(super) async fn append(&mut self, name: &str, messages: Vec<AppendMessage>) -> Outcome {
        if messages.iter().any(|m| m.catenate.is_some()) {
            // A mailbox that is not there is the first thing to say (TRYCREATE), before any
            // URL is looked at.
            let (store, user, mailbox) = (Arc::clone(&self.ctx.store), self.user(), name.to_string());
            match blocking(move || store.sync(&user, &mailbox, false)).await {
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Outcome::no_code("TRYCREATE", "No such mailbox"),
                Err(e) => return store_error(&e, "APPEND"),
            }
        }
        let mut new = Vec::with_capacity(messages.len());
        for m in messages {
            let mut flags = Flags::default();
            for flag in &m.flags {
                apply_flag(&mut flags, flag, true);
            }
            let (content, binary) = match m.catenate {
                Some(parts) => match self.catenated(parts).await {
                    Ok(content) => (content, false),
                    Err(refused) => return refused,
                },
                None => (m.message, m.binary),
            };
            if content.is_empty() {
                return Outcome::no("An empty message cannot be appended");
            }
            let content = if binary || content.contains(&0) { wasmail_mime::rewrite::encode_binary_parts(&content) } else { content };
            new.push(NewMessage { content, flags, date: m.date.map(|d| d.timestamp()) });
        }
        let messages = new;
        if let Some(refused) = self.over_quota(messages.iter().map(|m| m.content.len() as u64).sum(), messages.len() as u64).await {
            return refused;
        }
        let (store, user, mailbox) = (Arc::clone(&self.ctx.store), self.user(), name.to_string());
        match blocking(move || store.append(&user, &mailbox, &messages)).await {
            Ok((validity, uids)) => Outcome::ok_code(format!("APPENDUID {validity} {}", sequence::compact(&uids)), "APPEND completed"),
            // RFC 3501 6.3.11: a mailbox that does not exist is TRYCREATE.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Outcome::no_code("TRYCREATE", "No such mailbox"),
            Err(e) if e.kind() == std::io::ErrorKind::InvalidInput => Outcome::no_code("LIMIT", e.to_string()),
            Err(e) => store_error(&e, "APPEND"),
        }
    }
}
