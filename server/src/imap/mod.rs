//! IMAP4rev1 (RFC 3501) with IDLE, UIDPLUS, MOVE, LITERAL+, NAMESPACE, ID, ENABLE, SPECIAL-USE,
//! UNSELECT and CHILDREN, over the same mailboxes as SMTP delivers to and POP3 reads.
//!
//! Layout:
//! - `proto`: sans-IO framing (lines and literals, with limits) and command parsing.

pub mod proto;
