//! What FETCH reads out of a message (RFC 3501 7.4.2): ENVELOPE, BODY and BODYSTRUCTURE from
//! the MIME parser's tree, and the octets of a body section. Messages are in CRLF form.

use wasmail_mime::header;
use wasmail_mime::{Kind, Part};
use wasmail_proto::imap::response::{nstring_into, string_into};
use wasmail_proto::imap::{Section, SectionText};

/// A parsed message for FETCH and SEARCH. A message beyond the MIME limits (stored as it
/// came, `[mime] on_limit = "pass"`) is one text/plain part.
pub struct Parsed<'a> {
    pub content: &'a [u8],
    pub root: Part,
}

impl<'a> Parsed<'a> {
    pub fn new(content: &'a [u8]) -> Parsed<'a> {
        let root = match wasmail_mime::parse(content, &wasmail_mime::Limits::default()) {
            Ok(message) => message.root,
            Err(_) => {
                let section = header::section(content, 0..content.len(), 10_000);
                Part {
                    start: 0,
                    fields: section.fields,
                    header_end: section.end,
                    body: section.body_start..content.len(),
                    content_type: wasmail_mime::value::ContentType::text_plain(),
                    encoding: wasmail_mime::transfer::Encoding::SevenBit,
                    disposition: None,
                    kind: Kind::Leaf,
                }
            }
        };
        Parsed { content, root }
    }

    /// The unfolded value of a header field of the top message.
    pub fn field(&self, name: &str) -> Option<String> {
        self.root.field(self.content, name)
    }

    /// ENVELOPE of the top message.
    pub fn envelope_into(&self, out: &mut Vec<u8>) {
        envelope_into(out, self.content, &self.root);
    }

    /// BODYSTRUCTURE (with `extended`) or BODY.
    pub fn structure_into(&self, out: &mut Vec<u8>, extended: bool) {
        structure_into(out, self.content, &self.root, extended);
    }

    /// What BINARY[path] gives for a part (RFC 3516): a leaf's content decoded from its
    /// transfer encoding, a multipart's or an attached message's as it is; None if there is
    /// no such part, Err if the encoding is unknown.
    pub fn binary(&self, path: &[u32]) -> Result<Option<Vec<u8>>, ()> {
        let Some(part) = find_part(&self.root, path) else { return Ok(None) };
        let body = &self.content[part.body.clone()];
        match (&part.kind, &part.encoding) {
            (Kind::Leaf, wasmail_mime::transfer::Encoding::Other(_)) => Err(()),
            (Kind::Leaf, encoding) => Ok(Some(wasmail_mime::transfer::decode(encoding, body))),
            _ => Ok(Some(body.to_vec())),
        }
    }

    /// The octets of a section; None if the part does not exist.
    pub fn section(&self, section: &Section) -> Option<Vec<u8>> {
        let content = self.content;
        let part = if section.part.is_empty() { &self.root } else { find_part(&self.root, &section.part)? };
        // HEADER, TEXT and HEADER.FIELDS of a part path mean the message inside that part.
        let message = if section.part.is_empty() {
            Some(part)
        } else {
            match &part.kind {
                Kind::Message(inner) => Some(inner.as_ref()),
                _ => None,
            }
        };
        Some(match &section.text {
            None if section.part.is_empty() => content.to_vec(),
            None => content[part.body.clone()].to_vec(),
            Some(SectionText::Mime) => content[part.start..part.body.start].to_vec(),
            Some(SectionText::Header) => match message {
                Some(m) => content[m.start..m.body.start.max(m.header_end)].to_vec(),
                None => Vec::new(),
            },
            Some(SectionText::Text) => match message {
                Some(m) => content[m.body.clone()].to_vec(),
                None => Vec::new(),
            },
            Some(SectionText::HeaderFields { not, names }) => match message {
                Some(m) => {
                    let mut out = Vec::new();
                    for field in &m.fields {
                        if names.iter().any(|n| n.eq_ignore_ascii_case(&field.name)) != *not {
                            out.extend_from_slice(&content[field.start..field.end]);
                        }
                    }
                    out.extend_from_slice(b"\r\n");
                    out
                }
                None => Vec::new(),
            },
        })
    }
}

/// The part a section path names (RFC 3501 6.4.5): part 1 of a message that is not
/// multipart is its body; inside a message/rfc822 part, the numbers go on in the enclosed
/// message.
fn find_part<'p>(root: &'p Part, path: &[u32]) -> Option<&'p Part> {
    let mut part = match &root.kind {
        Kind::Multipart { parts, .. } => parts.get(path[0] as usize - 1)?,
        _ if path[0] == 1 => root,
        _ => return None,
    };
    for &n in &path[1..] {
        let container = match &part.kind {
            Kind::Message(inner) => inner.as_ref(),
            _ => part,
        };
        part = match &container.kind {
            Kind::Multipart { parts, .. } => parts.get(n as usize - 1)?,
            _ if n == 1 && !std::ptr::eq(container, part) => container,
            _ => return None,
        };
    }
    Some(part)
}

fn envelope_into(out: &mut Vec<u8>, content: &[u8], part: &Part) {
    let value = |name: &str| part.field(content, name).map(|v| v.trim().to_string());
    out.push(b'(');
    nstring_into(out, value("date").as_deref().map(str::as_bytes));
    out.push(b' ');
    nstring_into(out, value("subject").as_deref().map(str::as_bytes));
    let from = value("from");
    for (name, fallback) in [("from", None), ("sender", from.as_deref()), ("reply-to", from.as_deref()), ("to", None), ("cc", None), ("bcc", None)] {
        out.push(b' ');
        let text = value(name).filter(|v| !v.is_empty()).or_else(|| fallback.map(str::to_string));
        addresses_into(out, text.as_deref());
    }
    out.push(b' ');
    nstring_into(out, value("in-reply-to").as_deref().map(str::as_bytes));
    out.push(b' ');
    nstring_into(out, value("message-id").as_deref().map(str::as_bytes));
    out.push(b')');
}

/// An address list as ENVELOPE writes it: `((name adl mailbox host) ...)`, groups between
/// `(NIL NIL group NIL)` and `(NIL NIL NIL NIL)`; NIL when there are none.
fn addresses_into(out: &mut Vec<u8>, value: Option<&str>) {
    let entries = value.map(parse_addresses).unwrap_or_default();
    if entries.is_empty() {
        out.extend_from_slice(b"NIL");
        return;
    }
    out.push(b'(');
    for entry in entries {
        match entry {
            AddressEntry::Mailbox { name, route, local, domain } => {
                out.push(b'(');
                nstring_into(out, name.as_deref().map(str::as_bytes));
                out.push(b' ');
                nstring_into(out, route.as_deref().map(str::as_bytes));
                out.push(b' ');
                nstring_into(out, Some(local.as_bytes()));
                out.push(b' ');
                nstring_into(out, domain.as_deref().map(str::as_bytes));
                out.push(b')');
            }
            AddressEntry::GroupStart(name) => {
                out.extend_from_slice(b"(NIL NIL ");
                string_into(out, name.as_bytes());
                out.extend_from_slice(b" NIL)");
            }
            AddressEntry::GroupEnd => out.extend_from_slice(b"(NIL NIL NIL NIL)"),
        }
    }
    out.push(b')');
}

#[derive(Debug, PartialEq, Eq)]
enum AddressEntry {
    /// `route` is an obsolete source route (`@a,@b`), ENVELOPE's `adl`.
    Mailbox {
        name: Option<String>,
        route: Option<String>,
        local: String,
        domain: Option<String>,
    },
    GroupStart(String),
    GroupEnd,
}

/// A lenient RFC 5322 address-list reader: `Name <a@b>`, `"Name" <a@b>`, `a@b (Name)`,
/// groups `team: a@b, c@d;`. Comments are dropped (a trailing one names a bare address).
fn parse_addresses(value: &str) -> Vec<AddressEntry> {
    let mut out = Vec::new();
    let mut current = String::new();
    let (mut quoted, mut angle, mut comment, mut escaped) = (false, false, 0usize, false);
    let mut in_group = false;
    let mut comment_text = String::new();
    let flush = |text: &str, comment_text: &mut String, out: &mut Vec<AddressEntry>| {
        if let Some(entry) = mailbox_entry(text.trim(), comment_text.trim()) {
            out.push(entry);
        }
        comment_text.clear();
    };
    for c in value.chars() {
        if escaped {
            current.push(c);
            escaped = false;
            continue;
        }
        match c {
            '\\' if quoted || comment > 0 => {
                escaped = true;
                if quoted {
                    current.push(c);
                }
            }
            '"' if comment == 0 => {
                quoted = !quoted;
                current.push(c);
            }
            '(' if !quoted => {
                comment += 1;
                if comment > 1 {
                    comment_text.push(c);
                }
            }
            ')' if !quoted && comment > 0 => {
                comment -= 1;
                if comment > 0 {
                    comment_text.push(c);
                }
            }
            _ if comment > 0 => comment_text.push(c),
            '<' if !quoted => {
                angle = true;
                current.push(c);
            }
            '>' if !quoted => {
                angle = false;
                current.push(c);
            }
            ':' if !quoted && !angle && !in_group => {
                out.push(AddressEntry::GroupStart(unquote(current.trim())));
                current.clear();
                comment_text.clear();
                in_group = true;
            }
            ';' if !quoted && !angle && in_group => {
                flush(&current, &mut comment_text, &mut out);
                current.clear();
                out.push(AddressEntry::GroupEnd);
                in_group = false;
            }
            ',' if !quoted && !angle => {
                flush(&current, &mut comment_text, &mut out);
                current.clear();
            }
            _ => current.push(c),
        }
    }
    flush(&current, &mut comment_text, &mut out);
    if in_group {
        out.push(AddressEntry::GroupEnd);
    }
    out
}

fn mailbox_entry(text: &str, comment: &str) -> Option<AddressEntry> {
    if text.is_empty() {
        return None;
    }
    let (name, addr) = match (text.rfind('<'), text.rfind('>')) {
        (Some(open), Some(close)) if open < close => {
            let name = unquote(text[..open].trim());
            (Some(name).filter(|n| !n.is_empty()), text[open + 1..close].trim())
        }
        _ => (Some(comment.to_string()).filter(|c| !c.is_empty()), text),
    };
    // A source route (`@a,@b:x@y`) is obsolete, but ENVELOPE gives it; the mailbox is what
    // follows the colon.
    let (route, addr) = match addr.rsplit_once(':') {
        Some((route, addr)) if route.trim_start().starts_with('@') => (Some(route.trim().to_string()), addr),
        _ => (None, addr),
    };
    // Spaces (and the comments already dropped) may stand around the `@` (RFC 5322 3.4.1's
    // CFWS): they are not part of the address.
    let (local, domain) = match addr.rsplit_once('@') {
        Some((local, domain)) => (unquote(local.trim()), Some(domain.trim().to_string())),
        None => (unquote(addr.trim()), None),
    };
    Some(AddressEntry::Mailbox { name, route, local, domain })
}

/// The first address of an address field as ENVELOPE lists it (what SORT compares, RFC 5256
/// 3): a mailbox, or the start of a group, which ENVELOPE gives with the group's name as
/// its mailbox.
pub(super) enum Address {
    Mailbox { name: Option<String>, local: String, domain: Option<String> },
    Group(String),
}

pub(super) fn first_address(value: &str) -> Option<Address> {
    parse_addresses(value).into_iter().find_map(|entry| match entry {
        AddressEntry::Mailbox { name, local, domain, .. } => Some(Address::Mailbox { name, local, domain }),
        AddressEntry::GroupStart(name) => Some(Address::Group(name)),
        AddressEntry::GroupEnd => None,
    })
}

/// An address field as SEARCH compares it (RFC 3501 6.4.4 FROM, TO, CC, BCC): every address
/// as `name <local@domain>`, without comments, routes or the spaces a header may put around
/// the `@`, groups by their names; so that `FROM user@domain.org` finds
/// `<user (comment)@ domain.org>`.
pub(super) fn addresses_text(value: &str) -> String {
    let mut out = String::new();
    for entry in parse_addresses(value) {
        match entry {
            AddressEntry::Mailbox { name, local, domain, .. } => {
                if let Some(name) = name {
                    out.push_str(&name);
                    out.push(' ');
                }
                out.push('<');
                out.push_str(&local);
                if let Some(domain) = domain {
                    out.push('@');
                    out.push_str(&domain);
                }
                out.push_str(">, ");
            }
            AddressEntry::GroupStart(name) => {
                out.push_str(&name);
                out.push_str(": ");
            }
            AddressEntry::GroupEnd => out.push_str("; "),
        }
    }
    out
}

fn unquote(text: &str) -> String {
    match text.strip_prefix('"').and_then(|t| t.strip_suffix('"')) {
        Some(inner) => {
            let mut out = String::with_capacity(inner.len());
            let mut escaped = false;
            for c in inner.chars() {
                if c == '\\' && !escaped {
                    escaped = true;
                    continue;
                }
                escaped = false;
                out.push(c);
            }
            out
        }
        None => text.to_string(),
    }
}

fn structure_into(out: &mut Vec<u8>, content: &[u8], part: &Part, extended: bool) {
    let value = |name: &str| part.field(content, name).map(|v| v.trim().to_string());
    out.push(b'(');
    match &part.kind {
        Kind::Multipart { parts, .. } => {
            for child in parts {
                structure_into(out, content, child, extended);
            }
            if parts.is_empty() {
                // RFC 3501 requires at least one body: an empty text/plain stands in.
                out.extend_from_slice(b"(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0)");
            }
            out.push(b' ');
            string_into(out, part.content_type.subtype.as_bytes());
            if extended {
                out.push(b' ');
                params_into(out, &part.content_type.params);
                extension_into(out, content, part);
            }
        }
        _ => {
            string_into(out, part.content_type.kind.as_bytes());
            out.push(b' ');
            string_into(out, part.content_type.subtype.as_bytes());
            out.push(b' ');
            let mut params = part.content_type.params.clone();
            if part.content_type.kind == "text" && part.content_type.param("charset").is_none() {
                params.push(wasmail_mime::value::Param { name: "charset".into(), value: "us-ascii".into() });
            }
            params_into(out, &params);
            out.push(b' ');
            nstring_into(out, value("content-id").as_deref().map(str::as_bytes));
            out.push(b' ');
            nstring_into(out, value("content-description").as_deref().map(str::as_bytes));
            out.push(b' ');
            string_into(out, part.encoding.as_str().to_ascii_uppercase().as_bytes());
            let body = &content[part.body.clone()];
            out.extend_from_slice(format!(" {}", body.len()).as_bytes());
            if let Kind::Message(inner) = &part.kind {
                out.push(b' ');
                envelope_into(out, content, inner);
                out.push(b' ');
                structure_into(out, content, inner, extended);
                out.extend_from_slice(format!(" {}", lines(body)).as_bytes());
            } else if part.content_type.kind == "text" {
                out.extend_from_slice(format!(" {}", lines(body)).as_bytes());
            }
            if extended {
                out.push(b' ');
                nstring_into(out, value("content-md5").as_deref().map(str::as_bytes));
                extension_into(out, content, part);
            }
        }
    }
    out.push(b')');
}

/// body-ext after the type-specific fields: disposition, language, location.
fn extension_into(out: &mut Vec<u8>, content: &[u8], part: &Part) {
    out.push(b' ');
    match &part.disposition {
        Some(d) => {
            out.push(b'(');
            string_into(out, d.kind.as_bytes());
            out.push(b' ');
            params_into(out, &d.params);
            out.push(b')');
        }
        None => out.extend_from_slice(b"NIL"),
    }
    out.push(b' ');
    match part.field(content, "content-language").map(|v| v.trim().to_string()).filter(|v| !v.is_empty()) {
        Some(languages) => {
            out.push(b'(');
            for (i, language) in languages.split(',').map(str::trim).filter(|l| !l.is_empty()).enumerate() {
                if i > 0 {
                    out.push(b' ');
                }
                string_into(out, language.as_bytes());
            }
            out.push(b')');
        }
        None => out.extend_from_slice(b"NIL"),
    }
    out.push(b' ');
    nstring_into(out, part.field(content, "content-location").map(|v| v.trim().to_string()).as_deref().map(str::as_bytes));
}

/// `("name" "value" ...)` or NIL. Values the parser decoded to non-ASCII (RFC 2231) go out as
/// an RFC 2047 encoded word, which IMAP clients decode, rather than 8-bit.
fn params_into(out: &mut Vec<u8>, params: &[wasmail_mime::value::Param]) {
    if params.is_empty() {
        out.extend_from_slice(b"NIL");
        return;
    }
    out.push(b'(');
    for (i, param) in params.iter().enumerate() {
        if i > 0 {
            out.push(b' ');
        }
        string_into(out, param.name.as_bytes());
        out.push(b' ');
        if param.value.is_ascii() {
            string_into(out, param.value.as_bytes());
        } else {
            let encoded = wasmail_mime::transfer::encode_base64(param.value.as_bytes(), b"");
            let encoded: Vec<u8> = encoded.into_iter().filter(|b| !b.is_ascii_whitespace()).collect();
            string_into(out, format!("=?UTF-8?B?{}?=", String::from_utf8_lossy(&encoded)).as_bytes());
        }
    }
    out.push(b')');
}

/// Lines in a body: line ends, plus a last line without one.
fn lines(body: &[u8]) -> usize {
    let ends = memchr::memchr_iter(b'\n', body).count();
    ends + usize::from(!body.is_empty() && !body.ends_with(b"\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(content: &[u8], extended: bool) -> String {
        let mut out = Vec::new();
        Parsed::new(content).structure_into(&mut out, extended);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn a_plain_message() {
        let message =
            b"From: Fred <fred@example.org>\r\nTo: a@b.test, \"Joe Q.\" <joe@c.test>\r\nSubject: hi\r\nMessage-ID: <1@x>\r\n\r\nline 1\r\nline 2\r\n";
        assert_eq!(render(message, false), "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7BIT\" 16 2)");
        assert_eq!(render(message, true), "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7BIT\" 16 2 NIL NIL NIL NIL)");
        let mut out = Vec::new();
        Parsed::new(message).envelope_into(&mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "(NIL \"hi\" ((\"Fred\" NIL \"fred\" \"example.org\")) ((\"Fred\" NIL \"fred\" \"example.org\")) ((\"Fred\" NIL \"fred\" \"example.org\")) \
             ((NIL NIL \"a\" \"b.test\")(\"Joe Q.\" NIL \"joe\" \"c.test\")) NIL NIL NIL \"<1@x>\")"
        );
    }

    #[test]
    fn multipart_sections() {
        let message = b"Subject: m\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\npre\r\n--b\r\nContent-Type: text/plain\r\n\r\none\r\n--b\r\n\
Content-Type: message/rfc822\r\n\r\nSubject: inner\r\n\r\ninner body\r\n--b--\r\n";
        let parsed = Parsed::new(message);
        let section = |part: Vec<u32>, text| String::from_utf8(parsed.section(&Section { part, text }).unwrap()).unwrap();
        assert_eq!(section(vec![1], None), "one");
        assert_eq!(section(vec![1], Some(SectionText::Mime)), "Content-Type: text/plain\r\n\r\n");
        assert_eq!(section(vec![2], Some(SectionText::Header)), "Subject: inner\r\n\r\n");
        assert_eq!(section(vec![2], Some(SectionText::Text)), "inner body");
        assert_eq!(section(vec![2, 1], None), "inner body");
        assert_eq!(section(vec![], Some(SectionText::HeaderFields { not: false, names: vec!["SUBJECT".into()] })), "Subject: m\r\n\r\n");
        assert!(parsed.section(&Section { part: vec![3], text: None }).is_none());
        let structure = render(message, false);
        assert!(
            structure.starts_with(
                "((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7BIT\" 3 1)(\"message\" \"rfc822\" NIL NIL NIL \"7BIT\" 28 (NIL \"inner\""
            ),
            "{structure}"
        );
        assert!(structure.ends_with(" \"mixed\")"), "{structure}");
    }

    #[test]
    fn address_lists() {
        let entries = parse_addresses("undisclosed-recipients:;");
        assert_eq!(entries, [AddressEntry::GroupStart("undisclosed-recipients".into()), AddressEntry::GroupEnd]);
        let entries = parse_addresses("joe@x.test (Joe Bloggs), \"a, b\" <ab@y.test>");
        assert_eq!(
            entries[0],
            AddressEntry::Mailbox { name: Some("Joe Bloggs".into()), route: None, local: "joe".into(), domain: Some("x.test".into()) }
        );
        assert_eq!(entries[1], AddressEntry::Mailbox { name: Some("a, b".into()), route: None, local: "ab".into(), domain: Some("y.test".into()) });
        assert_eq!(parse_addresses("").len(), 0);
        let routed = AddressEntry::Mailbox { name: None, route: Some("@route".into()), local: "user".into(), domain: Some("domain".into()) };
        assert_eq!(parse_addresses("<@route:user@domain>"), [routed]);
        let spaced = AddressEntry::Mailbox { name: None, route: None, local: "user-from".into(), domain: Some("domain.org".into()) };
        assert_eq!(parse_addresses("<user-from (comment)@ (comment) domain.org>"), [spaced]);
        assert_eq!(addresses_text("<user-from (comment)@ (comment) domain.org>"), "<user-from@domain.org>, ");
    }
}
