//! Structured MIME header values: Content-Type (RFC 2045 5.1), Content-Disposition (RFC 2183)
//! and their parameters, including RFC 2231 continuations and charsets and the RFC 2047
//! encoded words that many mailers put in quoted filenames.

use super::words;

/// Parameters beyond this many are ignored, and RFC 2231 sections beyond this index: a value
/// cannot be assembled from an unbounded number of pieces.
const MAX_PARAMS: usize = 64;
const MAX_SECTIONS: u32 = 64;

/// A parameter with its name in lower case and its value decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Param {
    pub name: String,
    pub value: String,
}

/// A media type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContentType {
    /// Top-level type, lower case (`text`).
    pub kind: String,
    /// Subtype, lower case (`plain`).
    pub subtype: String,
    pub params: Vec<Param>,
}

impl ContentType {
    /// RFC 2045 5.2: what a part without a (valid) Content-Type is.
    pub fn text_plain() -> ContentType {
        ContentType { kind: "text".into(), subtype: "plain".into(), params: vec![Param { name: "charset".into(), value: "us-ascii".into() }] }
    }

    /// RFC 2046 5.1.5: the default inside multipart/digest.
    pub fn message_rfc822() -> ContentType {
        ContentType { kind: "message".into(), subtype: "rfc822".into(), params: Vec::new() }
    }

    pub fn param(&self, name: &str) -> Option<&str> {
        find(&self.params, name)
    }

    pub fn is(&self, kind: &str, subtype: &str) -> bool {
        self.kind == kind && self.subtype == subtype
    }

    /// `type/subtype`.
    pub fn essence(&self) -> String {
        format!("{}/{}", self.kind, self.subtype)
    }

    /// Whether a subscription pattern (`text/plain`, `application/*`, `*/*`, `*`) matches.
    pub fn matches(&self, pattern: &str) -> bool {
        let pattern = pattern.trim().to_ascii_lowercase();
        let (kind, subtype) = pattern.split_once('/').unwrap_or((pattern.as_str(), "*"));
        (kind == "*" || kind == self.kind) && (subtype == "*" || subtype == self.subtype)
    }
}

/// A Content-Disposition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Disposition {
    /// `inline`, `attachment` or another token, lower case.
    pub kind: String,
    pub params: Vec<Param>,
}

impl Disposition {
    pub fn param(&self, name: &str) -> Option<&str> {
        find(&self.params, name)
    }
}

fn find<'a>(params: &'a [Param], name: &str) -> Option<&'a str> {
    params.iter().find(|p| p.name.eq_ignore_ascii_case(name)).map(|p| p.value.as_str())
}

/// Parses a Content-Type value; None when it is not `type/subtype` (the caller then uses the
/// default, RFC 2045 5.2).
pub fn content_type(value: &str) -> Option<ContentType> {
    let mut cursor = Cursor::new(value);
    let kind = cursor.token()?.to_ascii_lowercase();
    if !cursor.eat(b'/') {
        return None;
    }
    let subtype = cursor.token()?.to_ascii_lowercase();
    Some(ContentType { kind, subtype, params: params(&mut cursor) })
}

/// Parses a Content-Disposition value; an unreadable one counts as `attachment`, the safe
/// reading (RFC 2183 2.8).
pub fn disposition(value: &str) -> Disposition {
    let mut cursor = Cursor::new(value);
    match cursor.token() {
        Some(kind) => Disposition { kind: kind.to_ascii_lowercase(), params: params(&mut cursor) },
        None => Disposition { kind: "attachment".into(), params: Vec::new() },
    }
}

/// A raw parameter before RFC 2231 assembly.
struct Raw {
    name: String,
    section: Option<u32>,
    extended: bool,
    value: String,
}

/// `; name=value` pairs after the type, assembled per RFC 2231 3-4.
fn params(cursor: &mut Cursor) -> Vec<Param> {
    let mut raw: Vec<Raw> = Vec::new();
    while raw.len() < MAX_PARAMS * 4 {
        // Skip to the next `;` (junk between parameters is ignored, as readers do).
        if !cursor.skip_to(b';') {
            break;
        }
        let Some(name) = cursor.token() else { continue };
        if !cursor.eat(b'=') {
            continue;
        }
        let value = cursor.value();
        let mut name = name.to_ascii_lowercase();
        let extended = name.ends_with('*');
        if extended {
            name.pop();
        }
        let mut section = None;
        if let Some((base, index)) = name.rsplit_once('*') {
            if let Ok(index) = index.parse::<u32>() {
                section = Some(index);
                name = base.to_string();
            }
        }
        raw.push(Raw { name, section, extended, value });
    }
    assemble(raw)
}

fn assemble(raw: Vec<Raw>) -> Vec<Param> {
    let mut out: Vec<Param> = Vec::new();
    let mut names: Vec<&str> = Vec::new();
    for r in &raw {
        if !names.contains(&r.name.as_str()) {
            names.push(&r.name);
        }
    }
    for name in names.into_iter().take(MAX_PARAMS) {
        let pieces: Vec<&Raw> = raw.iter().filter(|r| r.name == name).collect();
        // A plain `name*=` or `name=`; the extended form wins (RFC 2231 says readers prefer it).
        let value = if let Some(ext) = pieces.iter().find(|r| r.section.is_none() && r.extended) {
            extended_value(&ext.value)
        } else if pieces.iter().any(|r| r.section.is_some()) {
            let mut sections: Vec<&&Raw> = pieces.iter().filter(|r| r.section.is_some_and(|s| s < MAX_SECTIONS)).collect();
            sections.sort_by_key(|r| r.section);
            let mut bytes = Vec::new();
            let mut charset: Option<String> = None;
            // Sections must run 0, 1, 2...; stop at the first gap.
            for (expected, r) in sections.iter().enumerate() {
                if r.section != Some(expected as u32) {
                    break;
                }
                if r.extended {
                    let (decoded, cs) = extended_raw(&r.value, expected == 0);
                    if expected == 0 {
                        charset = cs;
                    }
                    bytes.extend_from_slice(&decoded);
                } else {
                    bytes.extend_from_slice(r.value.as_bytes());
                }
            }
            match &charset {
                Some(cs) => words::decode_charset(cs, &bytes).unwrap_or_else(|| String::from_utf8_lossy(&bytes).into_owned()),
                None => words::decode(&String::from_utf8_lossy(&bytes)),
            }
        } else {
            words::decode(&pieces[0].value)
        };
        out.push(Param { name: name.to_string(), value });
    }
    out
}

/// `charset'language'%XX...` (RFC 2231 4) as text.
fn extended_value(value: &str) -> String {
    let (bytes, charset) = extended_raw(value, true);
    match charset {
        Some(cs) => words::decode_charset(&cs, &bytes).unwrap_or_else(|| String::from_utf8_lossy(&bytes).into_owned()),
        None => String::from_utf8_lossy(&bytes).into_owned(),
    }
}

/// Percent-decodes an extended value; the first section carries `charset'language'`.
fn extended_raw(value: &str, first: bool) -> (Vec<u8>, Option<String>) {
    let (charset, encoded) = match first {
        true => {
            let mut parts = value.splitn(3, '\'');
            match (parts.next(), parts.next(), parts.next()) {
                (Some(cs), Some(_lang), Some(rest)) => ((!cs.is_empty()).then(|| cs.to_string()), rest),
                _ => (None, value),
            }
        }
        false => (None, value),
    };
    let bytes = encoded.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(h), Some(l)) = (super::transfer::hex(bytes[i + 1]), super::transfer::hex(bytes[i + 2])) {
                out.push(h << 4 | l);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    (out, charset)
}

/// A cursor over a structured header value (RFC 5322 3.2: comments and folding white space
/// may appear between tokens).
struct Cursor<'a> {
    s: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn new(value: &'a str) -> Cursor<'a> {
        Cursor { s: value.as_bytes(), pos: 0 }
    }

    /// Skips white space and (nested) comments.
    fn skip_cfws(&mut self) {
        loop {
            while self.pos < self.s.len() && self.s[self.pos].is_ascii_whitespace() {
                self.pos += 1;
            }
            if self.pos < self.s.len() && self.s[self.pos] == b'(' {
                let mut depth = 0usize;
                while self.pos < self.s.len() {
                    match self.s[self.pos] {
                        b'\\' => self.pos += 1,
                        b'(' => depth += 1,
                        b')' => {
                            depth -= 1;
                            if depth == 0 {
                                self.pos += 1;
                                break;
                            }
                        }
                        _ => {}
                    }
                    self.pos += 1;
                }
                continue;
            }
            return;
        }
    }

    fn eat(&mut self, b: u8) -> bool {
        self.skip_cfws();
        if self.s.get(self.pos) == Some(&b) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    /// Moves past the next `b`; false at the end.
    fn skip_to(&mut self, b: u8) -> bool {
        while self.pos < self.s.len() {
            self.skip_cfws();
            match self.s.get(self.pos) {
                Some(&c) if c == b => {
                    self.pos += 1;
                    return true;
                }
                Some(b'"') => {
                    self.quoted();
                }
                Some(_) => self.pos += 1,
                None => return false,
            }
        }
        false
    }

    /// An RFC 2045 token: printable ASCII except specials (8-bit octets are let through, as
    /// SMTPUTF8 mail has them).
    fn token(&mut self) -> Option<String> {
        self.skip_cfws();
        let start = self.pos;
        while self.pos < self.s.len() {
            let b = self.s[self.pos];
            if b <= b' ' || b == 127 || b"()<>@,;:\\\"/[]?=".contains(&b) {
                break;
            }
            self.pos += 1;
        }
        (self.pos > start).then(|| String::from_utf8_lossy(&self.s[start..self.pos]).into_owned())
    }

    /// A quoted string, with its backslash escapes removed; the cursor is on the `"`.
    fn quoted(&mut self) -> String {
        self.pos += 1;
        let mut out = Vec::new();
        while self.pos < self.s.len() {
            match self.s[self.pos] {
                b'"' => {
                    self.pos += 1;
                    break;
                }
                b'\\' if self.pos + 1 < self.s.len() => {
                    out.push(self.s[self.pos + 1]);
                    self.pos += 2;
                    continue;
                }
                b'\r' | b'\n' => {}
                b => out.push(b),
            }
            self.pos += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    }

    /// A parameter value: a quoted string or, leniently, everything up to `;` or white space.
    fn value(&mut self) -> String {
        self.skip_cfws();
        if self.s.get(self.pos) == Some(&b'"') {
            return self.quoted();
        }
        let start = self.pos;
        while self.pos < self.s.len() && self.s[self.pos] != b';' && !self.s[self.pos].is_ascii_whitespace() {
            self.pos += 1;
        }
        String::from_utf8_lossy(&self.s[start..self.pos]).into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types() {
        let ct = content_type("Text/Plain; charset=\"ISO-8859-1\" (a comment); format=flowed").unwrap();
        assert_eq!((ct.kind.as_str(), ct.subtype.as_str()), ("text", "plain"));
        assert_eq!(ct.param("CHARSET"), Some("ISO-8859-1"));
        assert_eq!(ct.param("format"), Some("flowed"));
        let ct = content_type("multipart/mixed;\r\n\tboundary=\"----=_Part_1_\\\"x\\\"\"").unwrap();
        assert_eq!(ct.param("boundary"), Some("----=_Part_1_\"x\""));
        let ct = content_type("multipart/alternative; boundary=00000000000012345abc").unwrap();
        assert_eq!(ct.param("boundary"), Some("00000000000012345abc"));
        assert_eq!(content_type("text"), None);
        assert_eq!(content_type(""), None);
        assert!(ct.matches("multipart/*") && ct.matches("*/*") && ct.matches("*") && !ct.matches("text/*"));
    }

    #[test]
    fn rfc2231_examples() {
        // RFC 2231 3, 4 and 4.1.
        let ct = content_type(
            "message/external-body; access-type=URL;\r\n URL*0=\"ftp://\";\r\n URL*1=\"cs.utk.edu/pub/moore/bulk-mailer/bulk-mailer.tar\"",
        )
        .unwrap();
        assert_eq!(ct.param("url"), Some("ftp://cs.utk.edu/pub/moore/bulk-mailer/bulk-mailer.tar"));
        let ct = content_type("application/x-stuff;\r\n title*=us-ascii'en-us'This%20is%20%2A%2A%2Afun%2A%2A%2A").unwrap();
        assert_eq!(ct.param("title"), Some("This is ***fun***"));
        let ct = content_type(
            "application/x-stuff;\r\n title*0*=us-ascii'en'This%20is%20even%20more%20;\r\n title*1*=%2A%2A%2Afun%2A%2A%2A%20;\r\n title*2=\"isn't it!\"",
        )
        .unwrap();
        assert_eq!(ct.param("title"), Some("This is even more ***fun*** isn't it!"));
    }

    #[test]
    fn filenames_as_mailers_write_them() {
        let d = disposition("attachment; filename*=UTF-8''na%C3%AFve%20r%C3%A9sum%C3%A9.pdf");
        assert_eq!((d.kind.as_str(), d.param("filename")), ("attachment", Some("naïve résumé.pdf")));
        let d = disposition("attachment; filename=\"=?UTF-8?B?0L7RgtGH0LXRgi5kb2N4?=\"");
        assert_eq!(d.param("filename"), Some("отчет.docx"));
        let d = disposition("attachment; filename*0*=iso-8859-1''f%E9; filename*1=\"e.txt\"");
        assert_eq!(d.param("filename"), Some("fée.txt"));
        // Sections out of order are sorted; a gap ends the value.
        let d = disposition("inline; name*1=\"b\"; name*0=\"a\"; name*3=\"d\"");
        assert_eq!((d.kind.as_str(), d.param("name")), ("inline", Some("ab")));
        assert_eq!(disposition(";;;").kind, "attachment");
    }

    #[test]
    fn hostile_values_stay_bounded() {
        let many: String = (0..10_000).map(|i| format!("; p{i}=v")).collect();
        let ct = content_type(&format!("text/plain{many}")).unwrap();
        assert_eq!(ct.params.len(), MAX_PARAMS);
        let sections: String = (0..10_000).map(|i| format!("; f*{i}=x")).collect();
        let d = disposition(&format!("attachment{sections}"));
        assert!(d.param("f").is_none_or(|v| v.len() <= MAX_SECTIONS as usize));
        let nested = format!("text/plain {}", "(".repeat(100_000));
        assert!(content_type(&nested).is_some());
        assert_eq!(disposition("attachment; filename=\"unterminated").param("filename"), Some("unterminated"));
    }
}
