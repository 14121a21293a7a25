//! IMAP4rev1 (RFC 3501) with IDLE, UIDPLUS, MOVE, LITERAL+, NAMESPACE, ID, ENABLE, SPECIAL-USE,
//! UNSELECT, CHILDREN, SASL-IR, ESEARCH, STATUS=SIZE, MULTIAPPEND, CATENATE, CONDSTORE, QRESYNC, SORT (with
//! SORT=DISPLAY and ESORT), THREAD and NOTIFY, over
//! the same mailboxes as SMTP delivers to and POP3 reads.
//!
//! Layout:
//! - `wasmail_proto::imap`: sans-IO framing (lines and literals, with limits) and command
//!   parsing.
//! - `session`: the connection, the state machine and the selected mailbox's view;
//!   `refresh` brings the view up to date after each command and tells the client.
//! - one file per command family: `auth` (LOGIN, AUTHENTICATE), `mailbox` (SELECT, CREATE,
//!   STATUS, ...), `list` (LIST, LSUB, LIST-EXTENDED), `append`, `fetch`, `flags` (STORE),
//!   `copy` (COPY, MOVE), `expunge` (EXPUNGE, CLOSE, UNSELECT), `search`, `sort` (SORT,
//!   ESORT), `thread`, `idle`, `condstore` (ENABLE, QRESYNC's SELECT), `context` (SAVE,
//!   UPDATE, CANCELUPDATE), `quota` (GETQUOTA, GETQUOTAROOT, SETQUOTA), `notify` (NOTIFY and
//!   the events it follows, between commands and during IDLE).
//! - `fields`: what SORT and THREAD compare, kept in the cache with the structures.
//! - `structure`: ENVELOPE, BODYSTRUCTURE and body sections from the MIME parser; `cache`
//!   keeps the rendered structures.
//! - `listener`: accepts connections (the shared accept loop) and starts sessions.

mod append;
mod auth;
mod cache;
mod catenate;
mod condstore;
mod context;
mod copy;
mod expunge;
mod fetch;
mod fields;
mod flags;
mod idle;
mod list;
mod listener;
mod mailbox;
mod notify;
mod quota;
mod refresh;
mod search;
mod session;
mod sort;
pub mod structure;
mod thread;

pub use cache::StructureCache;
pub use listener::serve;
