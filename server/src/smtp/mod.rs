//! SMTP (RFC 5321 with ESMTP): the listener, the session and its verbs.
//!
//! - `wasmail_proto::smtp`: the sans-IO wire protocol.
//! - `listener`: accepts connections, applies the connection limit.
//! - `session`: the per-connection state machine and loop.
//! - `ehlo`, `envelope`, `content`, `info`, `auth` (STARTTLS, AUTH): one file per verb family.
//! - `checks`: SPF, DKIM, ARC and DMARC of mail received, for the header and the plugins.

mod auth;
mod checks;
mod content;
mod ehlo;
mod envelope;
mod info;
mod listener;
mod session;

pub use listener::serve;
pub use session::{Port, Session};
