//! The mailbox store. Everything outside this module sees mailboxes through [`MailStore`],
//! so that a shared backend (metadata in PostgreSQL, bodies in an object store) can replace
//! the embedded Maildir one without touching the protocols.

pub mod maildir;

pub use maildir::Maildir;

/// What a store hands back for a delivered message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivered {
    /// The store's own identifier for the message (for Maildir, the file's unique name).
    pub id: String,
}

/// A mailbox store. Calls block (they fsync); async callers run them on the blocking pool.
pub trait MailStore: Send + Sync + 'static {
    /// Stores a message in `user`'s inbox, durably: when this returns Ok the message survives
    /// a crash or power loss, and when it returns Err nothing of it is visible. The message is
    /// given as pieces (trace headers, then the content) in SMTP's CRLF form.
    fn deliver(&self, user: &str, pieces: &[&[u8]]) -> std::io::Result<Delivered>;

    /// Takes back a message `deliver` stored, when the transaction it belonged to failed
    /// for another recipient: the client will send it again, and must not find it twice.
    fn discard(&self, user: &str, delivered: &Delivered) -> std::io::Result<()>;
}
