//! IMAP4rev1 (RFC 3501) on the wire, sans IO: [`framing`] cuts the byte stream into whole
//! commands with their literals, [`command::parse`] turns one into a [`Request`], and
//! [`response`] writes strings the way the grammar wants them.

pub mod command;
pub mod fetch;
pub mod framing;
pub mod notify;
pub mod parse;
pub mod response;
pub mod search;
pub mod sequence;
pub mod url;

pub use command::{
    parse, parse_with, AppendMessage, CatPart, Command, ListReturn, ListSelection, Qresync, Request, SearchReturn, SelectParams, SortCriterion,
    SortKey, StatusItem, StoreMode, ThreadAlgorithm,
};
pub use fetch::{parse_section, FetchAttr, Section, SectionText};
pub use framing::{Framed, Receiver};
pub use search::SearchKey;
pub use sequence::SequenceSet;

/// Why a command could not be parsed: the session answers `BAD` (with the tag, if any).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// Not even a tag: answered with the `*` tag.
    NoTag,
    /// A command name this server does not know.
    Unknown(String),
    /// A known command with bad arguments: the text says what is wrong.
    Syntax(String),
    /// A mailbox name that is a valid atom or string but not modified UTF-7 (RFC 3501 5.1.3):
    /// the command is well formed and names no mailbox that can exist, so it is answered
    /// `NO`, not `BAD`.
    BadName(String),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::NoTag => f.write_str("missing tag"),
            Error::Unknown(name) => write!(f, "unknown command {name}"),
            Error::Syntax(why) => f.write_str(why),
            Error::BadName(name) => write!(f, "mailbox name {name:?} is not modified UTF-7"),
        }
    }
}

/// A message flag: the system flags of RFC 3501 2.3.2 or a keyword.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Flag {
    Seen,
    Answered,
    Flagged,
    Deleted,
    Draft,
    /// `\Recent` is session state, never stored; it only appears in responses and searches.
    Recent,
    Keyword(String),
}

impl Flag {
    /// `\Seen`, `$Forwarded`, ...: a flag as a client writes it. Unknown `\` flags are errors.
    pub fn parse(text: &str) -> Option<Flag> {
        Some(match text.to_ascii_lowercase().as_str() {
            "\\seen" => Flag::Seen,
            "\\answered" => Flag::Answered,
            "\\flagged" => Flag::Flagged,
            "\\deleted" => Flag::Deleted,
            "\\draft" => Flag::Draft,
            "\\recent" => Flag::Recent,
            _ if text.starts_with('\\') => return None,
            _ if !text.is_empty() && text.bytes().all(parse::is_atom_char) => Flag::Keyword(text.to_string()),
            _ => return None,
        })
    }

    pub fn as_str(&self) -> &str {
        match self {
            Flag::Seen => "\\Seen",
            Flag::Answered => "\\Answered",
            Flag::Flagged => "\\Flagged",
            Flag::Deleted => "\\Deleted",
            Flag::Draft => "\\Draft",
            Flag::Recent => "\\Recent",
            Flag::Keyword(k) => k,
        }
    }
}
