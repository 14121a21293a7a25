//! Message content: RFC 5322 headers and the MIME structure (RFC 2045-2049).
//!
//! Layout:
//! - `header`: header fields located in the content, unfolded, changed milter-style.
//! - `words`: RFC 2047 encoded words and charset decoding.
//! - `value`: Content-Type and Content-Disposition with RFC 2231 parameters.
//! - `transfer`: Content-Transfer-Encoding, decoding and encoding.
//! - `parser`: the tree of parts with byte ranges, under limits.
//! - `rewrite`: applying part changes while keeping every other byte.
//!
//! mail-parser (Stalwart's) was considered: it decodes well, but the rewriter needs the exact
//! offsets of every header field, boundary line and body, and limits enforced before any
//! recursion; the structure is therefore located here (a few hundred lines), and charsets come
//! from encoding_rs.

pub mod header;
pub mod parser;
pub mod rewrite;
pub mod transfer;
pub mod value;
pub mod words;

pub use parser::{parse, Kind, Leaf, LimitExceeded, Limits, Message, Part};
pub use rewrite::{rewrite, Action};

#[cfg(test)]
mod fixtures;
