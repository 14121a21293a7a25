//! The mailbox store. Everything outside this module sees mailboxes through [`MailStore`],
//! so that a shared backend (metadata in PostgreSQL, bodies in an object store) can replace
//! the embedded Maildir one without touching the protocols.

mod files;
mod folder;
mod mailboxes;
pub mod maildir;
mod names;
mod uidlist;

pub use files::lf_to_crlf;
pub use maildir::Maildir;
pub use names::{special_use, valid_mailbox_name, SPECIAL_USE};

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
    /// Stores a message in `user`'s inbox, durably (see `sync`): when this returns Ok it survives
    /// a crash or power loss, and when it returns Err nothing of it is visible. The message is
    /// given as pieces in SMTP's CRLF form.
    ///
    /// With `check`, the store first looks for a message already stored under `key` and, if
    /// there is one (whole), returns it without storing again: after a crash between a
    /// delivery and the queue's record of it, the retry must not make a second copy.
    /// `folder`: a folder of the mailbox (`Lists/rust`, levels separated by `/`), created if
    /// missing; None is the inbox. Without `sync`, the copy is durable only after the next
    /// [`MailStore::sync_deliveries`] (the caller keeps the message durably until then).
    fn deliver(&self, user: &str, folder: Option<&str>, key: &DeliveryKey, pieces: &[&[u8]], check: bool, sync: bool) -> std::io::Result<Delivered>;

    /// Makes every copy delivered without `sync` so far durable, in one go.
    fn sync_deliveries(&self) -> std::io::Result<()>;

    /// The messages of `user`'s inbox, oldest first (none if the mailbox does not exist yet).
    fn list(&self, user: &str) -> std::io::Result<Vec<Listed>>;

    /// A message, in CRLF form.
    fn read(&self, user: &str, message: &Listed) -> std::io::Result<Vec<u8>>;

    /// [`MailStore::read`] when that costs no wait (the message is in memory and small):
    /// POP3 sends it without a trip to the blocking pool. None: call `read` there.
    fn read_cached(&self, _user: &str, _message: &Listed) -> Option<Vec<u8>> {
        None
    }

    /// Removes messages durably; messages already gone are not an error.
    fn remove(&self, user: &str, messages: &[Listed]) -> std::io::Result<()>;

    // Mailboxes, as IMAP sees them. A mailbox is `INBOX` or a folder name with levels
    // separated by `/`, in UTF-8. Errors of kind NotFound, AlreadyExists and InvalidInput
    // mean what they say; others are the store's own trouble.

    /// Makes sure `user`'s inbox and the special-use folders ([`SPECIAL_USE`]) exist.
    fn open_user(&self, user: &str) -> std::io::Result<()>;

    /// Every mailbox of `user`, `INBOX` first, then by name.
    fn mailboxes(&self, user: &str) -> std::io::Result<Vec<String>>;

    fn create_mailbox(&self, user: &str, name: &str) -> std::io::Result<()>;

    /// Deletes a mailbox and its messages (not its children, RFC 3501 6.3.4).
    fn delete_mailbox(&self, user: &str, name: &str) -> std::io::Result<()>;

    /// Renames a mailbox with its children; renaming INBOX moves its messages into a new
    /// mailbox and leaves INBOX empty (RFC 3501 6.3.5).
    fn rename_mailbox(&self, user: &str, from: &str, to: &str) -> std::io::Result<()>;

    fn subscriptions(&self, user: &str) -> std::io::Result<Vec<String>>;

    fn set_subscribed(&self, user: &str, name: &str, subscribed: bool) -> std::io::Result<()>;

    /// The mailbox's messages with their UIDs, which are assigned here to messages seen for
    /// the first time (durably, before this returns). With `claim_recent`, messages no
    /// session has seen yet become this caller's \Recent ones (returned in `claimed`) and
    /// no other caller's.
    fn sync(&self, user: &str, mailbox: &str, claim_recent: bool) -> std::io::Result<Synced>;

    /// What [`MailStore::sync`] would return, when the store knows it cheaply — the mailbox
    /// did not change since the last sync and no one else is at it — without waiting for a
    /// lock or reading a directory, so that a session may call it from its own task after
    /// every command. None: call `sync`.
    fn sync_unchanged(&self, _user: &str, _mailbox: &str, _claim_recent: bool) -> Option<Synced> {
        None
    }

    /// Changes the flags of messages (by UID) as STORE says: applied to their flags as they
    /// are now in the store, not to a session's older copy, atomically with respect to every
    /// other change through this store, so that two sessions changing different flags of one
    /// message both keep theirs. Messages whose flags change get a new mod-sequence. With
    /// `unchanged_since` (RFC 7162 UNCHANGEDSINCE), messages whose mod-sequence is above it
    /// are left alone and reported. Messages gone are skipped. Durable when it returns.
    fn change_flags(
        &self,
        user: &str,
        mailbox: &str,
        uids: &[u32],
        change: FlagChange,
        flags: &Flags,
        unchanged_since: Option<u64>,
    ) -> std::io::Result<FlagsChanged>;

    /// The UIDs of the mailbox expunged after mod-sequence `since` (RFC 7162 QRESYNC), as
    /// ascending ranges: every one expunged since, perhaps some expunged before (a store may
    /// forget when), never one that exists.
    fn expunged_since(&self, user: &str, mailbox: &str, since: u64) -> std::io::Result<Vec<(u32, u32)>>;

    /// Stores messages (CRLF form), each with flags and an internal date (seconds since the
    /// epoch; now if None), all or none (RFC 3502: a failure stores nothing). Returns
    /// UIDVALIDITY and the UIDs, in the order given.
    fn append(&self, user: &str, mailbox: &str, messages: &[NewMessage]) -> std::io::Result<(u32, Vec<u32>)>;

    /// Copies messages (by UID, in that order) into another mailbox, keeping their flags and
    /// internal dates. Returns the target's UIDVALIDITY and the new UIDs, in the same order;
    /// messages gone are skipped (and have no new UID).
    fn copy(&self, user: &str, from: &str, uids: &[u32], to: &str) -> std::io::Result<(u32, Vec<(u32, u32)>)>;

    /// Removes messages (by UID) durably.
    fn expunge(&self, user: &str, mailbox: &str, uids: &[u32]) -> std::io::Result<()>;

    /// What all of `user`'s mailboxes hold together (for quotas).
    fn usage(&self, user: &str) -> std::io::Result<Usage>;

    /// A message of a mailbox, in CRLF form.
    fn fetch(&self, user: &str, mailbox: &str, message: &MessageInfo) -> std::io::Result<Vec<u8>>;

    /// [`MailStore::fetch`] for a small message that can be read without waiting for the
    /// disk (its pages in memory), so that a session may call it from its own task; None when
    /// it would wait, is large, or moved: then call `fetch` on the blocking pool.
    fn fetch_cached(&self, _user: &str, _mailbox: &str, _message: &MessageInfo) -> Option<Vec<u8>> {
        None
    }

    /// A counter that goes up whenever the mailbox changes through this store (delivery,
    /// append, flags, expunge): what IDLE waits on.
    fn changes(&self, user: &str, mailbox: &str) -> tokio::sync::watch::Receiver<u64>;

    /// What happens to the user's mailboxes through this store from now on, for sessions
    /// that follow several (IMAP NOTIFY). The channel holds [`EVENTS_PER_USER`] events: a
    /// receiver that falls further behind is told it lagged.
    fn events(&self, user: &str) -> tokio::sync::broadcast::Receiver<MailboxEvent>;
}

/// How many events a user's channel keeps for its slowest receiver (see [`MailStore::events`]).
pub const EVENTS_PER_USER: usize = 1024;

/// A change to one of a user's mailboxes, as [`MailStore::events`] tells it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MailboxEvent {
    /// Messages arrived (delivery, APPEND, COPY, MOVE).
    New(String),
    /// Messages were expunged (EXPUNGE, MOVE, POP3, RENAME of INBOX).
    Expunged(String),
    /// Flags of messages changed.
    Flags(String),
    Created(String),
    Deleted(String),
    /// A mailbox and its inferiors got a new name: one event per mailbox moved.
    Renamed {
        from: String,
        to: String,
    },
    Subscribed {
        name: String,
        subscribed: bool,
    },
}

/// Message flags as stored: the system flags of RFC 3501 2.3.2 (but \Recent, which is
/// session state) and keywords.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Flags {
    /// [`Flags::SEEN`] and the others, or'ed.
    pub system: u8,
    /// Keywords as first stored, without duplicates (compared without case).
    pub keywords: Vec<String>,
}

impl Flags {
    pub const SEEN: u8 = 1;
    pub const ANSWERED: u8 = 2;
    pub const FLAGGED: u8 = 4;
    pub const DELETED: u8 = 8;
    pub const DRAFT: u8 = 16;

    pub fn has(&self, flag: u8) -> bool {
        self.system & flag != 0
    }

    pub fn has_keyword(&self, keyword: &str) -> bool {
        self.keywords.iter().any(|k| k.eq_ignore_ascii_case(keyword))
    }

    pub fn add_keyword(&mut self, keyword: &str) {
        if !self.has_keyword(keyword) {
            self.keywords.push(keyword.to_string());
        }
    }

    pub fn remove_keyword(&mut self, keyword: &str) {
        self.keywords.retain(|k| !k.eq_ignore_ascii_case(keyword));
    }
}

/// What a user's mailboxes hold, all folders together.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// RFC822.SIZE summed.
    pub octets: u64,
    pub messages: u64,
}

/// What a flag change did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct FlagsChanged {
    /// Each message found and not refused: its UID, flags after the change and mod-sequence
    /// (new if its flags changed, else as it was).
    pub stored: Vec<(u32, Flags, u64)>,
    /// UIDs of messages left alone because they changed after `unchanged_since`.
    pub modified: Vec<u32>,
}

/// A message to append.
pub struct NewMessage {
    /// The octets, CRLF line ends.
    pub content: Vec<u8>,
    pub flags: Flags,
    /// INTERNALDATE, seconds since the epoch; now if None.
    pub date: Option<i64>,
}

/// How a flag change applies to a message's flags (RFC 3501 6.4.6: FLAGS, +FLAGS, -FLAGS).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlagChange {
    Replace,
    Add,
    Remove,
}

impl FlagChange {
    /// The flags `current` has after the change.
    pub fn apply(self, current: &Flags, flags: &Flags) -> Flags {
        match self {
            FlagChange::Replace => flags.clone(),
            FlagChange::Add => {
                let mut out = current.clone();
                out.system |= flags.system;
                flags.keywords.iter().for_each(|k| out.add_keyword(k));
                out
            }
            FlagChange::Remove => {
                let mut out = current.clone();
                out.system &= !flags.system;
                flags.keywords.iter().for_each(|k| out.remove_keyword(k));
                out
            }
        }
    }
}

/// A message of a mailbox, as [`MailStore::sync`] lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageInfo {
    pub uid: u32,
    /// Stable and unique in the mailbox: POP3's UIDL for the inbox.
    pub id: String,
    /// Where the store found it: a hint that makes reading quick (see [`Listed::location`]).
    pub location: String,
    /// Octets in CRLF form: RFC822.SIZE.
    pub size: u64,
    pub flags: Flags,
    /// INTERNALDATE, seconds since the epoch.
    pub internal_date: i64,
    /// Raised whenever its flags change (RFC 7162 MODSEQ).
    pub modseq: u64,
    /// Not yet seen by any session: a Maildir message still in `new/`, or one stored in
    /// `cur/` (APPEND, COPY) since a session last claimed the \Recent messages.
    pub unseen_by_any: bool,
}

/// A mailbox's state as one sync found it.
#[derive(Debug, Clone)]
pub struct Synced {
    pub uid_validity: u32,
    pub uid_next: u32,
    /// The greatest mod-sequence of the mailbox (RFC 7162 HIGHESTMODSEQ).
    pub highest_modseq: u64,
    /// By UID, ascending. Shared: unchanged syncs hand back the same list.
    pub messages: std::sync::Arc<Vec<MessageInfo>>,
    /// UIDs this caller claimed as \Recent.
    pub claimed: Vec<u32>,
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
