//! The SMTP wire protocol without IO: bytes in, typed commands and content out, replies
//! serialized back to bytes. Nothing here imports tokio; the session drives it.
//!
//! - [`command`]: the incremental command-line receiver and parser.
//! - [`address`]: mailboxes and paths.
//! - [`params`]: MAIL and RCPT parameters.
//! - [`data`]: DATA and BDAT content, dot-unstuffing and the smuggling defences.
//! - [`reply`]: replies and enhanced status codes.

pub mod address;
pub mod command;
pub mod data;
pub mod params;
pub mod reply;

pub use address::Address;
pub use command::{Command, CommandReceiver, Error, ForwardPath};
pub use data::{dot_stuff_into, ContentReceiver, ContentReport, DotStuffer};
pub use params::{Body, MailParams, RcptParams, Ret};
pub use reply::{codes, EnhancedCode, Reply};
