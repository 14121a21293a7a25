//! Message content: RFC 5322 header fields (the full MIME parser and rewriter come with the
//! MIME issue and will live beside this).

pub mod header;
