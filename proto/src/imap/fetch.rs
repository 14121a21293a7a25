//! FETCH items (RFC 3501 6.4.5, 9): data items, the macros ALL, FAST and FULL, and body
//! sections with partial ranges.

use super::parse::Parser;
use super::Error;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchAttr {
    Envelope,
    Flags,
    InternalDate,
    /// RFC822: the whole message; sets \Seen.
    Rfc822,
    Rfc822Header,
    Rfc822Size,
    /// RFC822.TEXT: the body; sets \Seen.
    Rfc822Text,
    /// BODY without a section: BODYSTRUCTURE without extension data.
    Body,
    BodyStructure,
    Uid,
    /// MODSEQ (RFC 7162 3.1.6).
    ModSeq,
    /// BODY[section]<partial> and BODY.PEEK[...].
    Section {
        peek: bool,
        section: Section,
        partial: Option<(u32, u32)>,
    },
    /// BINARY[part]<partial> and BINARY.PEEK[...] (RFC 3516): the part's content decoded from
    /// its transfer encoding; an empty part path is the whole message.
    Binary {
        peek: bool,
        part: Vec<u32>,
        partial: Option<(u32, u32)>,
    },
    /// BINARY.SIZE[part]: the size of what BINARY[part] gives.
    BinarySize {
        part: Vec<u32>,
    },
}

/// A body section: a part path (empty for the whole message) and what of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    pub part: Vec<u32>,
    pub text: Option<SectionText>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SectionText {
    Header,
    /// HEADER.FIELDS (names), or with `not` HEADER.FIELDS.NOT.
    HeaderFields {
        not: bool,
        names: Vec<String>,
    },
    Text,
    /// The MIME header of a part (only with a part path).
    Mime,
}

impl Section {
    /// The section as a response names it: `1.2.HEADER.FIELDS (From To)`.
    pub fn spec(&self) -> String {
        let mut out = self.part.iter().map(u32::to_string).collect::<Vec<_>>().join(".");
        if let Some(text) = &self.text {
            if !out.is_empty() {
                out.push('.');
            }
            match text {
                SectionText::Header => out.push_str("HEADER"),
                SectionText::Text => out.push_str("TEXT"),
                SectionText::Mime => out.push_str("MIME"),
                SectionText::HeaderFields { not, names } => {
                    out.push_str(if *not { "HEADER.FIELDS.NOT (" } else { "HEADER.FIELDS (" });
                    out.push_str(&names.iter().map(|n| super::response::astring(n)).collect::<Vec<_>>().join(" "));
                    out.push(')');
                }
            }
        }
        out
    }
}

/// The most items one FETCH may name (BAD beyond): far more than any client sends (mbsync,
/// Thunderbird and mutt name under a dozen), few enough that one command cannot ask for the
/// same large body over and over.
pub const MAX_FETCH_ITEMS: usize = 64;

/// fetch-att list after the sequence set: one item, a macro, or a parenthesized list.
pub fn parse_items(p: &mut Parser<'_>) -> Result<Vec<FetchAttr>, Error> {
    if p.keyword("ALL") {
        return Ok(vec![FetchAttr::Flags, FetchAttr::InternalDate, FetchAttr::Rfc822Size, FetchAttr::Envelope]);
    }
    if p.keyword("FAST") {
        return Ok(vec![FetchAttr::Flags, FetchAttr::InternalDate, FetchAttr::Rfc822Size]);
    }
    if p.keyword("FULL") {
        return Ok(vec![FetchAttr::Flags, FetchAttr::InternalDate, FetchAttr::Rfc822Size, FetchAttr::Envelope, FetchAttr::Body]);
    }
    if p.peek() != Some(b'(') {
        return Ok(vec![item(p)?]);
    }
    p.open()?;
    let mut items = vec![item(p)?];
    while p.eat(b' ') {
        if items.len() == MAX_FETCH_ITEMS {
            return Err(Error::Syntax(format!("more than {MAX_FETCH_ITEMS} FETCH items")));
        }
        items.push(item(p)?);
    }
    p.close()?;
    Ok(items)
}

fn item(p: &mut Parser<'_>) -> Result<FetchAttr, Error> {
    // Longest names first: RFC822.SIZE before RFC822, BODY.PEEK before BODY.
    let simple = [
        ("ENVELOPE", FetchAttr::Envelope),
        ("FLAGS", FetchAttr::Flags),
        ("INTERNALDATE", FetchAttr::InternalDate),
        ("RFC822.HEADER", FetchAttr::Rfc822Header),
        ("RFC822.SIZE", FetchAttr::Rfc822Size),
        ("RFC822.TEXT", FetchAttr::Rfc822Text),
        ("RFC822", FetchAttr::Rfc822),
        ("BODYSTRUCTURE", FetchAttr::BodyStructure),
        ("UID", FetchAttr::Uid),
        ("MODSEQ", FetchAttr::ModSeq),
    ];
    for (name, attr) in simple {
        if p.keyword(name) {
            return Ok(attr);
        }
    }
    if p.keyword("BINARY.SIZE") {
        return Ok(FetchAttr::BinarySize { part: binary_section(p)? });
    }
    let binary_peek = if p.keyword("BINARY.PEEK") {
        Some(true)
    } else if p.keyword("BINARY") {
        Some(false)
    } else {
        None
    };
    if let Some(peek) = binary_peek {
        let part = binary_section(p)?;
        return Ok(FetchAttr::Binary { peek, part, partial: partial(p)? });
    }
    let peek = if p.keyword("BODY.PEEK") {
        true
    } else if p.keyword("BODY") {
        if p.peek() != Some(b'[') {
            return Ok(FetchAttr::Body);
        }
        false
    } else {
        let name = p.take_while(|b| b.is_ascii_alphanumeric() || b == b'.');
        return Err(Error::Syntax(format!("unknown fetch item {:?}", String::from_utf8_lossy(name))));
    };
    let section = section(p)?;
    Ok(FetchAttr::Section { peek, section, partial: partial(p)? })
}

/// `"<" number "." nz-number ">"`, if there.
fn partial(p: &mut Parser<'_>) -> Result<Option<(u32, u32)>, Error> {
    if !p.eat(b'<') {
        return Ok(None);
    }
    let start = p.number()?;
    p.expect(b'.')?;
    let length = p.nz_number()?;
    p.expect(b'>')?;
    Ok(Some((start, length)))
}

/// section-binary = "[" [section-part] "]" (RFC 3516 4.1).
fn binary_section(p: &mut Parser<'_>) -> Result<Vec<u32>, Error> {
    p.expect(b'[')?;
    let mut part = Vec::new();
    if p.peek() != Some(b']') {
        loop {
            part.push(p.nz_number()?);
            if part.len() > 100 {
                return Err(Error::Syntax("section path too deep".into()));
            }
            if !p.eat(b'.') {
                break;
            }
        }
    }
    p.expect(b']')?;
    Ok(part)
}

/// A section as an IMAP URL names it (RFC 5092 `enc-section`, decoded): `HEADER`, `1.MIME`,
/// `2.TEXT`, `HEADER.FIELDS (From)`, or empty for the whole message.
pub fn parse_section(text: &str) -> Result<Section, Error> {
    let bracketed = format!("[{text}]");
    let mut p = Parser::new(bracketed.as_bytes());
    let section = section(&mut p)?;
    p.end()?;
    Ok(section)
}

/// "[" [section-spec] "]".
fn section(p: &mut Parser<'_>) -> Result<Section, Error> {
    p.expect(b'[')?;
    let mut part = Vec::new();
    // After a part number, a dot leads either to the next number or to a section text.
    let mut dot = false;
    while p.peek().is_some_and(|b| b.is_ascii_digit()) {
        part.push(p.nz_number()?);
        if part.len() > 100 {
            return Err(Error::Syntax("section path too deep".into()));
        }
        dot = p.eat(b'.');
        if !dot {
            break;
        }
    }
    if dot && p.peek() == Some(b']') {
        return Err(Error::Syntax("bad body section".into()));
    }
    let ended_with_dot = dot;
    let text = if p.peek() == Some(b']') {
        None
    } else if p.keyword("HEADER.FIELDS.NOT") {
        Some(SectionText::HeaderFields { not: true, names: header_list(p)? })
    } else if p.keyword("HEADER.FIELDS") {
        Some(SectionText::HeaderFields { not: false, names: header_list(p)? })
    } else if p.keyword("HEADER") {
        Some(SectionText::Header)
    } else if p.keyword("TEXT") {
        Some(SectionText::Text)
    } else if ended_with_dot && p.keyword("MIME") {
        Some(SectionText::Mime)
    } else {
        return Err(Error::Syntax("bad body section".into()));
    };
    p.expect(b']')?;
    Ok(Section { part, text })
}

/// SP "(" header-fld-name *(SP header-fld-name) ")".
fn header_list(p: &mut Parser<'_>) -> Result<Vec<String>, Error> {
    p.space()?;
    p.open()?;
    let mut names = Vec::new();
    loop {
        let name = p.astring_text()?;
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_graphic() && b != b':') {
            return Err(Error::Syntax("bad header field name".into()));
        }
        names.push(name);
        if !p.eat(b' ') {
            break;
        }
    }
    p.close()?;
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items(text: &str) -> Vec<FetchAttr> {
        let mut p = Parser::new(text.as_bytes());
        let items = parse_items(&mut p).unwrap();
        p.end().unwrap();
        items
    }

    #[test]
    fn macros_items_and_sections() {
        assert_eq!(items("FAST").len(), 3);
        assert_eq!(items("rfc822.size"), [FetchAttr::Rfc822Size]);
        assert_eq!(items("(UID RFC822 BODY)"), [FetchAttr::Uid, FetchAttr::Rfc822, FetchAttr::Body]);
        let body = |part: Vec<u32>, text, partial, peek| FetchAttr::Section { peek, section: Section { part, text }, partial };
        assert_eq!(items("BODY[]"), [body(vec![], None, None, false)]);
        assert_eq!(items("BODY.PEEK[1.2.MIME]<0.100>"), [body(vec![1, 2], Some(SectionText::Mime), Some((0, 100)), true)]);
        assert_eq!(items("BODY[TEXT]"), [body(vec![], Some(SectionText::Text), None, false)]);
        let fields = items("BODY.PEEK[HEADER.FIELDS (From \"Subject\")]");
        let FetchAttr::Section { section, .. } = &fields[0] else { panic!() };
        assert_eq!(section.spec(), "HEADER.FIELDS (From Subject)");
        assert_eq!(items("BODY[2.HEADER.FIELDS.NOT (X)]").len(), 1);
    }

    #[test]
    fn bad_items() {
        for bad in ["BODY[MIME]", "BODY[1.]", "BODY[0]", "BODY[HEADER.FIELDS ()]", "BODY[]<5>", "FOO", "(FLAGS", "BODY[HEADER"] {
            let mut p = Parser::new(bad.as_bytes());
            assert!(parse_items(&mut p).and_then(|_| p.end()).is_err(), "{bad}");
        }
        let list = |n: usize| format!("({})", vec!["BODY.PEEK[]"; n].join(" "));
        assert_eq!(parse_items(&mut Parser::new(list(MAX_FETCH_ITEMS).as_bytes())).unwrap().len(), MAX_FETCH_ITEMS);
        assert!(parse_items(&mut Parser::new(list(MAX_FETCH_ITEMS + 1).as_bytes())).is_err());
    }
}
