//! CATENATE (RFC 4469): an APPENDed message made of text and of parts of stored messages,
//! named by IMAP URLs (RFC 5092) relative to this server and the logged-in user. A URL that
//! names nothing — another UIDVALIDITY, a UID or section that is not there, an absolute URL —
//! fails the whole APPEND with `NO [BADURL "url"]`; a message over `[imap] max_literal` with
//! `NO [TOOBIG]`, checked as the parts are joined.

use std::sync::Arc;

use wasmail_proto::imap::url::MessageUrl;
use wasmail_proto::imap::{parse_section, CatPart};

use super::session::{blocking, store_error, Outcome, Session};
use super::structure::Parsed;

/// Why a URL gave no octets.
enum Failed {
    BadUrl,
    Store(std::io::Error),
}

impl Session {
    /// The message the parts make, or the tagged reply that refuses the APPEND.
    pub(super) async fn catenated(&mut self, parts: Vec<CatPart>) -> Result<Vec<u8>, Outcome> {
        let limit = self.ctx.config.imap.max_literal.0 as usize;
        let mut message = Vec::new();
        for part in parts {
            let octets = match part {
                CatPart::Text(text) => text,
                CatPart::Url(url) => match self.resolve(&url).await {
                    Ok(octets) => octets,
                    Err(Failed::BadUrl) => {
                        // RFC 4469 6: the URL in the code, as a quoted string (one too long to
                        // be one is left out rather than sent as a literal in a status line).
                        let mut quoted = Vec::new();
                        wasmail_proto::imap::response::string_into(&mut quoted, url.as_bytes());
                        let code =
                            if quoted.starts_with(b"\"") { format!("BADURL {}", String::from_utf8_lossy(&quoted)) } else { "BADURL".to_string() };
                        return Err(Outcome::no_code(code, "The URL names no message part"));
                    }
                    Err(Failed::Store(e)) => return Err(store_error(&e, "APPEND")),
                },
            };
            if message.len() + octets.len() > limit {
                return Err(Outcome::no_code("TOOBIG", format!("The message would be over the limit of {limit} octets")));
            }
            message.extend_from_slice(&octets);
        }
        Ok(message)
    }

    /// The octets a URL names: the message, or its section, perhaps a range of them.
    async fn resolve(&mut self, url: &str) -> Result<Vec<u8>, Failed> {
        let url = MessageUrl::parse(url).ok_or(Failed::BadUrl)?;
        let section = match &url.section {
            Some(text) => Some(parse_section(text).map_err(|_| Failed::BadUrl)?),
            None => None,
        };
        let (store, user) = (Arc::clone(&self.ctx.store), self.user());
        let found = blocking(move || {
            let synced = match store.sync(&user, &url.mailbox, false) {
                Ok(synced) => synced,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound || e.kind() == std::io::ErrorKind::InvalidInput => return Ok(None),
                Err(e) => return Err(e),
            };
            if url.uid_validity.is_some_and(|v| v != synced.uid_validity) {
                return Ok(None);
            }
            let Some(message) = synced.messages.iter().find(|m| m.uid == url.uid) else { return Ok(None) };
            let content = match store.fetch(&user, &url.mailbox, message) {
                Ok(content) => content,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(e),
            };
            let octets = match &section {
                Some(section) => match Parsed::new(&content).section(section) {
                    Some(octets) => octets,
                    None => return Ok(None),
                },
                None => content,
            };
            Ok(Some(match url.partial {
                Some((start, length)) => {
                    let start = (start as usize).min(octets.len());
                    let end = length.map_or(octets.len(), |l| start.saturating_add(l as usize).min(octets.len()));
                    octets[start..end].to_vec()
                }
                None => octets,
            }))
        })
        .await;
        match found {
            Ok(Some(octets)) => Ok(octets),
            Ok(None) => Err(Failed::BadUrl),
            Err(e) => Err(Failed::Store(e)),
        }
    }
}
