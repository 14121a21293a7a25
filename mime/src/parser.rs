//! The MIME structure of a message (RFC 2045, RFC 2046): every part with the byte ranges of
//! its header fields and body, its parsed Content-Type, transfer encoding and disposition,
//! and its children (multipart parts, or the message inside a message/rfc822).
//!
//! The parser only locates; it copies no body. It takes the whole message in memory (SMTP
//! has it there, bounded by the size limit), lines may end in CRLF or LF, and limits on
//! nesting depth, number of parts and header size are checked before any recursion, so that
//! hostile input costs at most `max_depth` scans of the message and never overflows the
//! stack (Dovecot's CVE-2020-12100 was unbounded nesting; CVE-2024-23184 many headers).

use std::fmt;
use std::ops::Range;

use super::header::{self, Field};
use super::transfer::Encoding;
use super::value::{self, ContentType, Disposition};

/// Bounds on what a message may hold (`[mime]` in the config).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Multipart and message/rfc822 levels below the top.
    pub max_depth: usize,
    /// Parts in the whole message, containers included.
    pub max_parts: usize,
    /// Header fields in one header section.
    pub max_header_fields: usize,
    /// Octets in one header section.
    pub max_header_size: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits { max_depth: 20, max_parts: 1000, max_header_fields: 1000, max_header_size: 102_400 }
    }
}

/// The limit a message broke.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LimitExceeded {
    Depth(usize),
    Parts(usize),
    HeaderFields(usize),
    HeaderSize(usize),
}

impl fmt::Display for LimitExceeded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LimitExceeded::Depth(n) => write!(f, "MIME parts nested deeper than {n} levels"),
            LimitExceeded::Parts(n) => write!(f, "more than {n} MIME parts"),
            LimitExceeded::HeaderFields(n) => {
                write!(f, "a header section with more than {n} fields")
            }
            LimitExceeded::HeaderSize(n) => write!(f, "a header section larger than {n} octets"),
        }
    }
}

/// The header section at the start of `range`, held to the header limits: no more than
/// `max_header_fields` fields are collected (so a flood of fields costs nothing beyond the
/// limit) and the section may not be longer than `max_header_size`.
pub fn header_section(content: &[u8], range: Range<usize>, limits: &Limits) -> Result<header::Section, LimitExceeded> {
    let start = range.start;
    let section = header::section(content, range, limits.max_header_fields);
    if section.truncated {
        return Err(LimitExceeded::HeaderFields(limits.max_header_fields));
    }
    if section.end - start > limits.max_header_size {
        return Err(LimitExceeded::HeaderSize(limits.max_header_size));
    }
    Ok(section)
}

/// One MIME entity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    /// Where the part starts (its first header field).
    pub start: usize,
    /// Its header fields.
    pub fields: Vec<Field>,
    /// Where the fields end: the blank line, if there is one, starts here.
    pub header_end: usize,
    /// The body: after the blank line, up to (not including) the line end that belongs to
    /// the next boundary (RFC 2046 5.1.1), or to the end of the enclosing range.
    pub body: Range<usize>,
    pub content_type: ContentType,
    pub encoding: Encoding,
    pub disposition: Option<Disposition>,
    pub kind: Kind,
}

/// What a part holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// Content: text, an attachment, anything that is not a container.
    Leaf,
    /// Parts between boundaries, with the text before the first and after the last.
    Multipart { boundary: String, preamble: Range<usize>, parts: Vec<Part>, epilogue: Range<usize> },
    /// message/rfc822 (or global): a whole message as the body.
    Message(Box<Part>),
}

impl Part {
    /// The unfolded value of the first field called `name`.
    pub fn field(&self, content: &[u8], name: &str) -> Option<String> {
        self.fields.iter().find(|f| f.name.eq_ignore_ascii_case(name)).map(|f| header::unfolded_value(content, f))
    }

    /// The attachment's name: the disposition's `filename`, else Content-Type's `name`.
    pub fn filename(&self) -> Option<&str> {
        self.disposition.as_ref().and_then(|d| d.param("filename")).or_else(|| self.content_type.param("name"))
    }

    /// The parts directly inside this one.
    pub fn children(&self) -> Vec<&Part> {
        match &self.kind {
            Kind::Leaf => Vec::new(),
            Kind::Multipart { parts, .. } => parts.iter().collect(),
            Kind::Message(inner) => vec![inner],
        }
    }
}

/// A parsed message.
#[derive(Debug)]
pub struct Message<'a> {
    pub content: &'a [u8],
    pub root: Part,
    /// The line end the message uses (that of its first line), for anything written into it.
    pub eol: &'static [u8],
    /// Parts in the whole tree.
    pub part_count: usize,
}

/// A leaf part with where it sits.
#[derive(Debug)]
pub struct Leaf<'p> {
    pub part: &'p Part,
    /// IMAP-style section number (RFC 3501 6.4.5): `1`, `2.1`, ...; `1` for a single-part
    /// message's body.
    pub section: String,
    /// Whether the part is inside an attached message (message/rfc822), not in the message
    /// itself.
    pub in_attached_message: bool,
}

impl<'a> Message<'a> {
    /// The leaf parts in document order.
    pub fn leaves(&self) -> Vec<Leaf<'_>> {
        let mut out = Vec::new();
        walk(&self.root, String::new(), false, &mut out);
        out
    }
}

fn walk<'p>(part: &'p Part, section: String, in_message: bool, out: &mut Vec<Leaf<'p>>) {
    let child_section = |i: usize| {
        if section.is_empty() {
            (i + 1).to_string()
        } else {
            format!("{section}.{}", i + 1)
        }
    };
    match &part.kind {
        Kind::Leaf => out.push(Leaf { part, section: if section.is_empty() { "1".into() } else { section }, in_attached_message: in_message }),
        Kind::Multipart { parts, .. } => {
            for (i, child) in parts.iter().enumerate() {
                walk(child, child_section(i), in_message, out);
            }
        }
        // RFC 3501: the parts of an encapsulated message are numbered under the part itself.
        Kind::Message(inner) => match &inner.kind {
            Kind::Multipart { .. } => walk(inner, section, true, out),
            _ => walk(inner, if section.is_empty() { "1".into() } else { format!("{section}.1") }, true, out),
        },
    }
}

/// Parses `content`, or says which limit it breaks.
pub fn parse<'a>(content: &'a [u8], limits: &Limits) -> Result<Message<'a>, LimitExceeded> {
    let eol: &'static [u8] = match memchr::memchr(b'\n', content) {
        Some(i) if i > 0 && content[i - 1] == b'\r' => b"\r\n",
        Some(_) => b"\n",
        None => b"\r\n",
    };
    let mut parser = Parser { content, limits, parts: 0 };
    let root = parser.part(0..content.len(), 0, false)?;
    Ok(Message { content, root, eol, part_count: parser.parts })
}

struct Parser<'a> {
    content: &'a [u8],
    limits: &'a Limits,
    parts: usize,
}

impl Parser<'_> {
    /// The part that fills `range`, at nesting `depth`, inside a multipart/digest or not.
    fn part(&mut self, range: Range<usize>, depth: usize, in_digest: bool) -> Result<Part, LimitExceeded> {
        self.parts += 1;
        if self.parts > self.limits.max_parts {
            return Err(LimitExceeded::Parts(self.limits.max_parts));
        }
        let section = header_section(self.content, range.clone(), self.limits)?;
        let value_of =
            |name: &str| section.fields.iter().find(|f| f.name.eq_ignore_ascii_case(name)).map(|f| header::unfolded_value(self.content, f));
        let default = if in_digest { ContentType::message_rfc822() } else { ContentType::text_plain() };
        let content_type = value_of("content-type").and_then(|v| value::content_type(&v)).unwrap_or(default);
        let encoding = Encoding::parse(value_of("content-transfer-encoding").as_deref());
        let disposition = value_of("content-disposition").map(|v| value::disposition(&v));
        let body = section.body_start..range.end;
        let mut part = Part {
            start: range.start,
            fields: section.fields,
            header_end: section.end,
            body: body.clone(),
            content_type,
            encoding,
            disposition,
            kind: Kind::Leaf,
        };
        // RFC 2045 6.4: a container's encoding is an identity one; anything else cannot be
        // looked into, and the part stays a leaf.
        if !part.encoding.is_identity() {
            return Ok(part);
        }
        let ct = &part.content_type;
        if ct.kind == "multipart" {
            let Some(boundary) = ct.param("boundary").filter(|b| !b.is_empty()).map(str::to_string) else {
                return Ok(part);
            };
            if depth + 1 > self.limits.max_depth {
                return Err(LimitExceeded::Depth(self.limits.max_depth));
            }
            let digest = ct.subtype == "digest";
            part.kind = self.multipart(body, &boundary, depth + 1, digest)?;
        } else if ct.kind == "message" && (ct.subtype == "rfc822" || ct.subtype == "global") {
            if depth + 1 > self.limits.max_depth {
                return Err(LimitExceeded::Depth(self.limits.max_depth));
            }
            part.kind = Kind::Message(Box::new(self.part(body, depth + 1, false)?));
        }
        Ok(part)
    }

    /// Splits `body` at the delimiter lines of `boundary` (RFC 2046 5.1.1).
    fn multipart(&mut self, body: Range<usize>, boundary: &str, depth: usize, digest: bool) -> Result<Kind, LimitExceeded> {
        let content = self.content;
        let mut delimiter = Vec::with_capacity(boundary.len() + 2);
        delimiter.extend_from_slice(b"--");
        delimiter.extend_from_slice(boundary.as_bytes());
        // Each delimiter line: (start of the line end before it, start of the line, end of
        // the line with its line end, closing or not). Candidates are found with a substring
        // search for LF + delimiter, so a level costs one fast pass over its body, and only
        // lines that really start with the delimiter are looked at.
        let mut needle = Vec::with_capacity(delimiter.len() + 1);
        needle.push(b'\n');
        needle.extend_from_slice(&delimiter);
        let finder = memchr::memmem::Finder::new(&needle);
        let at_start = content[body.clone()].starts_with(&delimiter).then_some(body.start);
        let candidates = at_start.into_iter().chain(finder.find_iter(&content[body.clone()]).map(|i| body.start + i + 1));
        let mut lines: Vec<(usize, usize, usize, bool)> = Vec::new();
        for line_start in candidates {
            let line_end = memchr::memchr(b'\n', &content[line_start..body.end]).map(|i| line_start + i + 1).unwrap_or(body.end);
            let rest = &content[line_start + delimiter.len()..line_end];
            let (close, rest) = match rest.strip_prefix(b"--") {
                Some(rest) => (true, rest),
                None => (false, rest),
            };
            // Only transport padding (white space) may follow the boundary.
            if !rest.iter().all(|&b| b == b' ' || b == b'\t' || b == b'\r' || b == b'\n') {
                continue;
            }
            let mut before = line_start;
            if before > body.start && content[before - 1] == b'\n' {
                before -= 1;
                if before > body.start && content[before - 1] == b'\r' {
                    before -= 1;
                }
            }
            lines.push((before, line_start, line_end, close));
            if close {
                break;
            }
        }
        let Some(&(first_before, _, _, _)) = lines.first() else {
            // No delimiter at all: everything is preamble.
            return Ok(Kind::Multipart { boundary: boundary.to_string(), preamble: body.clone(), parts: Vec::new(), epilogue: body.end..body.end });
        };
        let preamble = body.start..first_before;
        let mut parts = Vec::new();
        for (i, &(_, _, line_end, close)) in lines.iter().enumerate() {
            if close {
                break;
            }
            // A part runs to the next delimiter, or to the end if the closing one is missing.
            let end = lines.get(i + 1).map(|&(before, _, _, _)| before).unwrap_or(body.end);
            parts.push(self.part(line_end..end.max(line_end), depth, digest)?);
        }
        let epilogue = match lines.last() {
            Some(&(_, _, line_end, true)) => line_end..body.end,
            _ => body.end..body.end,
        };
        Ok(Kind::Multipart { boundary: boundary.to_string(), preamble, parts, epilogue })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIXED: &[u8] = b"From: a@example.org\r\n\
Subject: test\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=\"outer\"\r\n\
\r\n\
This is the preamble.\r\n\
--outer\r\n\
Content-Type: multipart/alternative; boundary=inner\r\n\
\r\n\
--inner\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
Content-Transfer-Encoding: quoted-printable\r\n\
\r\n\
Caf=C3=A9\r\n\
--inner\r\n\
Content-Type: text/html\r\n\
\r\n\
<p>Cafe</p>\r\n\
--inner--\r\n\
--outer\r\n\
Content-Type: application/octet-stream; name=x.exe\r\n\
Content-Disposition: attachment; filename=\"x.exe\"\r\n\
Content-Transfer-Encoding: base64\r\n\
\r\n\
TVqQAAMAAAAEAAAA\r\n\
--outer\r\n\
Content-Type: message/rfc822\r\n\
\r\n\
Subject: inner\r\n\
\r\n\
forwarded body\r\n\
--outer--  \r\n\
epilogue\r\n";

    #[test]
    fn finds_the_tree_and_its_ranges() {
        let message = parse(MIXED, &Limits::default()).unwrap();
        assert_eq!(message.eol, b"\r\n");
        assert_eq!(message.part_count, 7);
        let Kind::Multipart { preamble, parts, epilogue, boundary } = &message.root.kind else { panic!("not multipart") };
        assert_eq!(boundary, "outer");
        assert_eq!(&MIXED[preamble.clone()], b"This is the preamble.");
        assert_eq!(&MIXED[epilogue.clone()], b"epilogue\r\n");
        assert_eq!(parts.len(), 3);
        let leaves = message.leaves();
        let summary: Vec<(String, String, bool)> =
            leaves.iter().map(|l| (l.section.clone(), l.part.content_type.essence(), l.in_attached_message)).collect();
        assert_eq!(
            summary,
            [
                ("1.1".to_string(), "text/plain".to_string(), false),
                ("1.2".into(), "text/html".into(), false),
                ("2".into(), "application/octet-stream".into(), false),
                ("3.1".into(), "text/plain".into(), true),
            ]
        );
        assert_eq!(&MIXED[leaves[0].part.body.clone()], b"Caf=C3=A9");
        assert_eq!(leaves[0].part.encoding, Encoding::QuotedPrintable);
        assert_eq!(&MIXED[leaves[1].part.body.clone()], b"<p>Cafe</p>");
        assert_eq!(leaves[2].part.filename(), Some("x.exe"));
        assert_eq!(&MIXED[leaves[2].part.body.clone()], b"TVqQAAMAAAAEAAAA");
        assert_eq!(&MIXED[leaves[3].part.body.clone()], b"forwarded body");
        assert_eq!(leaves[3].part.field(MIXED, "subject").as_deref(), Some("inner"));
    }

    #[test]
    fn lf_line_ends_and_single_parts() {
        let lf: Vec<u8> = MIXED.iter().copied().filter(|&b| b != b'\r').collect();
        let message = parse(&lf, &Limits::default()).unwrap();
        assert_eq!(message.eol, b"\n");
        let leaves = message.leaves();
        assert_eq!(leaves.len(), 4);
        assert_eq!(&lf[leaves[1].part.body.clone()], b"<p>Cafe</p>");
        let single = b"Subject: hi\r\n\r\nbody\r\n";
        let message = parse(single, &Limits::default()).unwrap();
        assert_eq!(message.root.content_type, ContentType::text_plain());
        assert_eq!(&single[message.root.body.clone()], b"body\r\n");
        assert_eq!(message.leaves()[0].section, "1");
    }

    #[test]
    fn boundaries_must_match_exactly() {
        let msg = b"Content-Type: multipart/mixed; boundary=a\r\n\r\n--a\r\n\r\none\r\n--ab\r\n--a \r\n\r\ntwo\r\n--a--\r\n";
        let message = parse(msg, &Limits::default()).unwrap();
        let leaves = message.leaves();
        assert_eq!(leaves.len(), 2);
        assert_eq!(&msg[leaves[0].part.body.clone()], b"one\r\n--ab");
        assert_eq!(&msg[leaves[1].part.body.clone()], b"two");
    }

    #[test]
    fn malformed_structures_are_read_leniently() {
        // No closing delimiter: the last part runs to the end.
        let msg = b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\nonly\r\n";
        assert_eq!(&msg[parse(msg, &Limits::default()).unwrap().leaves()[0].part.body.clone()], b"only\r\n");
        // A boundary that never appears: all preamble, no parts.
        let msg = b"Content-Type: multipart/mixed; boundary=zz\r\n\r\n--b\r\ntext\r\n";
        let message = parse(msg, &Limits::default()).unwrap();
        assert!(matches!(&message.root.kind, Kind::Multipart { parts, .. } if parts.is_empty()));
        // No boundary parameter, or an encoded container: a leaf.
        let msg = b"Content-Type: multipart/mixed\r\n\r\n--b\r\n";
        assert_eq!(parse(msg, &Limits::default()).unwrap().root.kind, Kind::Leaf);
        let msg = b"Content-Type: multipart/mixed; boundary=b\r\nContent-Transfer-Encoding: base64\r\n\r\n--b\r\n";
        assert_eq!(parse(msg, &Limits::default()).unwrap().root.kind, Kind::Leaf);
        // Empty message, headers only, body only.
        assert!(parse(b"", &Limits::default()).is_ok());
        assert!(parse(b"Subject: x\r\n", &Limits::default()).is_ok());
        assert_eq!(parse(b"\r\nbody", &Limits::default()).unwrap().root.body, 2..6);
    }

    /// A message nested `depth` multiparts deep.
    fn nested(depth: usize) -> Vec<u8> {
        let mut out = Vec::new();
        for i in 0..depth {
            out.extend_from_slice(format!("Content-Type: multipart/mixed; boundary=b{i}\r\n\r\n--b{i}\r\n").as_bytes());
        }
        out.extend_from_slice(b"Content-Type: text/plain\r\n\r\ndeep\r\n");
        for i in (0..depth).rev() {
            out.extend_from_slice(format!("--b{i}--\r\n").as_bytes());
        }
        out
    }

    #[test]
    fn limits_hold_against_hostile_input() {
        let limits = Limits::default();
        assert!(parse(&nested(20), &limits).is_ok());
        assert_eq!(parse(&nested(21), &limits).unwrap_err(), LimitExceeded::Depth(20));
        // Far deeper than any stack would take if recursion were unbounded.
        assert_eq!(parse(&nested(100_000), &limits).unwrap_err(), LimitExceeded::Depth(20));
        let mut rfc822 = Vec::new();
        for _ in 0..50 {
            rfc822.extend_from_slice(b"Content-Type: message/rfc822\r\n\r\n");
        }
        assert_eq!(parse(&rfc822, &limits).unwrap_err(), LimitExceeded::Depth(20));

        let mut many = b"Content-Type: multipart/mixed; boundary=m\r\n\r\n".to_vec();
        for _ in 0..1000 {
            many.extend_from_slice(b"--m\r\n\r\nx\r\n");
        }
        assert_eq!(parse(&many, &limits).unwrap_err(), LimitExceeded::Parts(1000));
        assert_eq!(parse(&many, &Limits { max_parts: 1001, ..limits }).unwrap().part_count, 1001);

        let fields: Vec<u8> = (0..1001).flat_map(|i| format!("X-{i}: v\r\n").into_bytes()).collect();
        assert_eq!(parse(&fields, &limits).unwrap_err(), LimitExceeded::HeaderFields(1000));
        let big = format!("Subject: {}\r\n\r\n", "x".repeat(200_000));
        assert_eq!(parse(big.as_bytes(), &limits).unwrap_err(), LimitExceeded::HeaderSize(102_400));
    }

    #[test]
    fn near_miss_delimiters_are_content() {
        // 20 levels, then many lines that start like a delimiter but are not one (the input
        // the benchmark times at 20 MiB).
        let mut msg = Vec::new();
        for i in 0..20 {
            msg.extend_from_slice(format!("Content-Type: multipart/mixed; boundary=b{i}\r\n\r\n--b{i}\r\n").as_bytes());
        }
        msg.extend_from_slice(b"\r\n");
        while msg.len() < 1 << 20 {
            msg.extend_from_slice(b"--b1x\r\n--\r\n");
        }
        let message = parse(&msg, &Limits::default()).unwrap();
        assert_eq!(message.part_count, 21);
        assert_eq!(message.leaves()[0].part.body.end, msg.len());
    }
}
