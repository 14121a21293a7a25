//! Wasmail's protocols on the wire, without IO: bytes in, typed requests out (or "needs more
//! data"), replies serialized back to bytes. Nothing here reads a socket or a file, starts a
//! task or logs; the sessions in the `wasmail` crate drive it, and the fuzz targets feed it
//! arbitrary bytes. Cargo keeps it so: the crate depends on no async runtime, no logging.
//!
//! - [`smtp`]: command lines, MAIL/RCPT parameters, DATA and BDAT content; the core verb and
//!   EHLO keyword lists.
//! - [`pop3`]: command lines and commands.
//! - [`imap`]: framing (lines and literals, with limits), commands, fetch items, search keys,
//!   sequence sets, response strings.
//!
//! The vocabulary they share:
//! - [`address`]: mailboxes and paths (RFC 5321 4.1.2, with RFC 6531 UTF-8).
//! - [`reply`]: SMTP replies and RFC 3463 enhanced status codes.
//! - [`dot`]: dot-stuffing, for SMTP's relay client and POP3's multi-line responses.
//! - [`mutf7`]: IMAP's modified UTF-7 mailbox names, which the store uses too.
//! - [`plugin`]: the checks on what a plugin hands the server (replies, header fields,
//!   manifest claims), in the terms of the wire.

#![forbid(unsafe_code)]

pub mod address;
pub mod dot;
pub mod imap;
pub mod mutf7;
pub mod plugin;
pub mod pop3;
pub mod reply;
pub mod smtp;
