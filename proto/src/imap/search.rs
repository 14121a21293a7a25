//! SEARCH keys (RFC 3501 6.4.4): every key of the RFC, NOT, OR and parenthesized groups.

use chrono::NaiveDate;

use super::parse::Parser;
use super::sequence::SequenceSet;
use super::Error;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SearchKey {
    All,
    /// A flag is set (`ANSWERED`, `KEYWORD x`, ...) or, with `set: false`, not set.
    Flag {
        flag: super::Flag,
        set: bool,
    },
    /// NEW: \Recent and not \Seen.
    New,
    /// OLD: not \Recent.
    Old,
    /// A header field contains the string (BCC, CC, FROM, SUBJECT, TO, HEADER name).
    Header {
        name: String,
        value: String,
    },
    Body(String),
    Text(String),
    /// INTERNALDATE, by date (time and zone ignored).
    Before(NaiveDate),
    On(NaiveDate),
    Since(NaiveDate),
    /// The Date: header, by date.
    SentBefore(NaiveDate),
    SentOn(NaiveDate),
    SentSince(NaiveDate),
    Larger(u64),
    Smaller(u64),
    Uid(SequenceSet),
    Sequence(SequenceSet),
    /// MODSEQ: the message's mod-sequence is at least this (RFC 7162 3.1.5; the optional
    /// entry name and type are read and ignored, as flags have one mod-sequence here).
    ModSeq(u64),
    Not(Box<SearchKey>),
    Or(Box<SearchKey>, Box<SearchKey>),
    /// A parenthesized list, or the top level: all must match.
    And(Vec<SearchKey>),
}

/// search-key *(SP search-key), up to the end of the command.
pub fn parse_keys(p: &mut Parser<'_>) -> Result<SearchKey, Error> {
    let mut keys = vec![key(p)?];
    while p.eat(b' ') {
        keys.push(key(p)?);
    }
    Ok(if keys.len() == 1 { keys.pop().expect("one key") } else { SearchKey::And(keys) })
}

fn key(p: &mut Parser<'_>) -> Result<SearchKey, Error> {
    use super::Flag;
    if p.peek() == Some(b'(') {
        p.open()?;
        let mut keys = vec![key(p)?];
        while p.eat(b' ') {
            keys.push(key(p)?);
        }
        p.close()?;
        return Ok(SearchKey::And(keys));
    }
    // A sequence set, or `$`, the saved result (RFC 5182).
    if p.peek().is_some_and(|b| b.is_ascii_digit() || b == b'*' || b == b'$') {
        return Ok(SearchKey::Sequence(SequenceSet::parse(p)?));
    }
    let name = p.atom()?.to_ascii_uppercase();
    let flag = |flag, set| Ok(SearchKey::Flag { flag, set });
    let header = |p: &mut Parser<'_>, name: &str| -> Result<SearchKey, Error> {
        p.space()?;
        Ok(SearchKey::Header { name: name.to_string(), value: p.astring_text()? })
    };
    let date = |p: &mut Parser<'_>| -> Result<NaiveDate, Error> {
        p.space()?;
        p.date()
    };
    match name.as_str() {
        "ALL" => Ok(SearchKey::All),
        "ANSWERED" => flag(Flag::Answered, true),
        "DELETED" => flag(Flag::Deleted, true),
        "DRAFT" => flag(Flag::Draft, true),
        "FLAGGED" => flag(Flag::Flagged, true),
        "RECENT" => flag(Flag::Recent, true),
        "SEEN" => flag(Flag::Seen, true),
        "UNANSWERED" => flag(Flag::Answered, false),
        "UNDELETED" => flag(Flag::Deleted, false),
        "UNDRAFT" => flag(Flag::Draft, false),
        "UNFLAGGED" => flag(Flag::Flagged, false),
        "UNSEEN" => flag(Flag::Seen, false),
        "NEW" => Ok(SearchKey::New),
        "OLD" => Ok(SearchKey::Old),
        "KEYWORD" | "UNKEYWORD" => {
            p.space()?;
            let keyword = p.atom()?;
            let parsed = super::Flag::parse(keyword).ok_or_else(|| Error::Syntax(format!("bad keyword {keyword}")))?;
            flag(parsed, name == "KEYWORD")
        }
        "BCC" | "CC" | "FROM" | "SUBJECT" | "TO" => header(p, &name),
        "HEADER" => {
            p.space()?;
            let field = p.astring_text()?;
            header(p, &field)
        }
        "BODY" => {
            p.space()?;
            Ok(SearchKey::Body(p.astring_text()?))
        }
        "TEXT" => {
            p.space()?;
            Ok(SearchKey::Text(p.astring_text()?))
        }
        "BEFORE" => Ok(SearchKey::Before(date(p)?)),
        "ON" => Ok(SearchKey::On(date(p)?)),
        "SINCE" => Ok(SearchKey::Since(date(p)?)),
        "SENTBEFORE" => Ok(SearchKey::SentBefore(date(p)?)),
        "SENTON" => Ok(SearchKey::SentOn(date(p)?)),
        "SENTSINCE" => Ok(SearchKey::SentSince(date(p)?)),
        "LARGER" => {
            p.space()?;
            Ok(SearchKey::Larger(p.number64()?))
        }
        "SMALLER" => {
            p.space()?;
            Ok(SearchKey::Smaller(p.number64()?))
        }
        "UID" => {
            p.space()?;
            Ok(SearchKey::Uid(SequenceSet::parse(p)?))
        }
        "MODSEQ" => {
            // MODSEQ [entry-name SP entry-type-req SP] mod-sequence-valzer
            p.space()?;
            if p.peek() == Some(b'"') {
                let entry = p.string()?;
                if !entry.starts_with(b"/flags/") {
                    return Err(Error::Syntax("MODSEQ entry names start with /flags/".into()));
                }
                p.space()?;
                let kind = p.atom()?.to_ascii_lowercase();
                if !matches!(kind.as_str(), "priv" | "shared" | "all") {
                    return Err(Error::Syntax(format!("bad MODSEQ entry type {kind}")));
                }
                p.space()?;
            }
            Ok(SearchKey::ModSeq(p.mod_sequence()?))
        }
        "NOT" => {
            p.space()?;
            p.enter()?;
            let inner = key(p)?;
            p.leave();
            Ok(SearchKey::Not(Box::new(inner)))
        }
        "OR" => {
            p.space()?;
            p.enter()?;
            let a = key(p)?;
            p.space()?;
            let b = key(p)?;
            p.leave();
            Ok(SearchKey::Or(Box::new(a), Box::new(b)))
        }
        _ => Err(Error::Syntax(format!("unknown search key {name}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(text: &str) -> Result<SearchKey, Error> {
        let mut p = Parser::new(text.as_bytes());
        let key = parse_keys(&mut p)?;
        p.end()?;
        Ok(key)
    }

    #[test]
    fn rfc_3501_examples() {
        // RFC 3501 6.4.4.
        let k = keys("FLAGGED SINCE 1-Feb-1994 NOT FROM \"Smith\"").unwrap();
        let SearchKey::And(parts) = k else { panic!("{k:?}") };
        assert_eq!(parts.len(), 3);
        assert_eq!(parts[1], SearchKey::Since(NaiveDate::from_ymd_opt(1994, 2, 1).unwrap()));
        let k = keys("TEXT \"string not in mailbox\"").unwrap();
        assert_eq!(k, SearchKey::Text("string not in mailbox".into()));
        let k = keys("OR (DELETED UID 1:5) 2,4 UNKEYWORD $Junk").unwrap();
        let SearchKey::And(parts) = k else { panic!() };
        assert!(matches!(parts[0], SearchKey::Or(..)));
        assert!(matches!(&parts[1], SearchKey::Flag { flag: crate::imap::Flag::Keyword(k), set: false } if k == "$Junk"));
        assert!(keys("HEADER Message-ID {5}\r\n<a@b>").is_ok());
        // RFC 7162 3.1.5.
        assert_eq!(keys("MODSEQ \"/flags/\\\\draft\" all 620162338").unwrap(), SearchKey::ModSeq(620162338));
        assert_eq!(keys("MODSEQ 0").unwrap(), SearchKey::ModSeq(0));
        assert!(matches!(keys("$ SEEN").unwrap(), SearchKey::And(k) if matches!(&k[0], SearchKey::Sequence(s) if s.is_saved())));
    }

    #[test]
    fn bad_keys() {
        for bad in
            ["", "FOO", "OR SEEN", "SINCE 1994", "LARGER x", "(SEEN", "NOT", "KEYWORD \\Seen x", "MODSEQ 9223372036854775808", "MODSEQ \"/x\" all 1"]
        {
            assert!(keys(bad).is_err(), "{bad:?}");
        }
        let deep = format!("{}SEEN{}", "(".repeat(100), ")".repeat(100));
        assert!(keys(&deep).is_err());
        // NOT and OR chains nest as lists do, and are bounded the same way.
        assert!(keys(&("NOT ".repeat(10_000) + "SEEN")).is_err());
        assert!(keys(&("OR SEEN ".repeat(10_000) + "SEEN")).is_err());
        assert!(keys(&("NOT ".repeat(20) + "SEEN")).is_ok());
    }
}
