//! POP3 (RFC 1939 with RFC 2449 CAPA and RFC 5034 SASL PLAIN) over the same mailboxes as
//! SMTP delivers to.
//!
//! Layout, as SMTP and IMAP:
//! - `wasmail_proto::pop3`: sans-IO command lines and commands.
//! - `listener`: accepts connections (the shared accept loop) and starts sessions.
//! - `session`: the loop and the dispatch, one session per connection.
//! - `auth`: the AUTHORIZATION state (USER/PASS, AUTH PLAIN, STLS).
//! - `maildrop`: the TRANSACTION and UPDATE states (STAT, LIST, UIDL, RETR, TOP, DELE, QUIT).
//! - this file: the maildrop locks.

mod auth;
mod listener;
mod maildrop;
mod session;

use std::collections::HashSet;
use std::sync::Mutex;

pub use listener::serve;

/// The maildrops in use: one POP3 session per mailbox at a time (RFC 1939 8). One server
/// process serves a data directory, so the set lives in memory.
#[derive(Default)]
pub struct Locks {
    users: Mutex<HashSet<String>>,
}

impl Locks {
    /// Takes the lock; false if another session has it.
    pub fn acquire(&self, user: &str) -> bool {
        self.users.lock().expect("lock set").insert(user.to_string())
    }

    pub fn release(&self, user: &str) {
        self.users.lock().expect("lock set").remove(user);
    }
}
