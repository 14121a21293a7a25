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

/// Names one delivery so that it happens once: the queue entry and the mailbox's place in
/// it, and the time the message arrived.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryKey {
    /// Letters, digits and `-`: unique for the delivery.
    pub key: String,
    /// Arrival, in seconds since the epoch (Maildir puts it first in the name).
    pub time: u64,
}

/// A mailbox store. Calls block (they fsync); async callers run them on the blocking pool.
pub trait MailStore: Send + Sync + 'static {
    /// Stores a message in `user`'s inbox, durably: when this returns Ok the message survives
    /// a crash or power loss, and when it returns Err nothing of it is visible. The message is
    /// given as pieces in SMTP's CRLF form.
    ///
    /// With `check`, the store first looks for a message already stored under `key` and, if
    /// there is one, returns it without storing again: after a crash between a delivery and
    /// the queue's record of it, the retry must not make a second copy.
    /// `folder`: a folder of the mailbox (`Lists/rust`, levels separated by `/`), created if
    /// missing; None is the inbox.
    fn deliver(&self, user: &str, folder: Option<&str>, key: &DeliveryKey, pieces: &[&[u8]], check: bool) -> std::io::Result<Delivered>;

    /// The messages of `user`'s inbox, oldest first (none if the mailbox does not exist yet).
    fn list(&self, user: &str) -> std::io::Result<Vec<Listed>>;

    /// A message, in CRLF form.
    fn read(&self, user: &str, message: &Listed) -> std::io::Result<Vec<u8>>;

    /// Removes messages durably; messages already gone are not an error.
    fn remove(&self, user: &str, messages: &[Listed]) -> std::io::Result<()>;
}

/// A message in a mailbox's inbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    /// Stable and unique in the mailbox (for Maildir, the file's base name): POP3's UIDL.
    pub id: String,
    /// Octets in CRLF form, what POP3 and IMAP send.
    pub size: u64,
    /// Where the store found it (for Maildir, `cur/NAME:2,S`): a hint that makes reading it
    /// quick; if the message moved since, the store looks it up by `id`.
    pub location: String,
}

/// Whether a folder name is one a store can take: levels of letters, digits, `-`, `_` and
/// spaces, separated by `/`, none empty or starting with a space.
pub fn valid_folder(folder: &str) -> bool {
    !folder.is_empty()
        && folder.len() <= 200
        && folder.split('/').all(|level| {
            !level.is_empty() && !level.starts_with(' ') && level.chars().all(|c| c.is_alphanumeric() || c == '-' || c == '_' || c == ' ')
        })
}
