//! SMTP (RFC 5321 with ESMTP) on the wire, without IO: the session drives it.
//!
//! - [`command`]: the incremental command-line receiver and parser.
//! - [`params`]: MAIL and RCPT parameters.
//! - [`data`]: DATA and BDAT content, dot-unstuffing and the smuggling defences.
//! - [`keywords`]: the verbs, EHLO keywords and parameters the core answers.
//! - [`peer`]: a next hop's replies, for the relay client.
//!
//! Addresses, replies and dot-stuffing are the crate's shared vocabulary
//! ([`crate::address`], [`crate::reply`], [`crate::dot`]), re-exported here for the session.

pub mod command;
pub mod data;
pub mod keywords;
pub mod params;
pub mod peer;

pub use crate::address::Address;
pub use crate::dot::{dot_stuff_into, DotStuffer};
pub use crate::reply::{codes, EnhancedCode, Reply};
pub use command::{Command, CommandReceiver, Error, ForwardPath};
pub use data::{ContentReceiver, ContentReport};
pub use keywords::Keyword;
pub use params::{Body, MailParams, RcptParams, Ret};
