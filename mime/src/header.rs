//! The header section of a message or part (RFC 5322 2.2): finding its fields, unfolding
//! their values, and applying milter-style changes (to SMTP's CRLF form) while leaving every
//! untouched byte as it was.

/// One header field, located in the content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    /// The field name as written.
    pub name: String,
    /// Byte range of the whole field, continuation lines and final CRLF included.
    pub start: usize,
    pub end: usize,
    /// Where the value starts (just after the colon).
    pub value_start: usize,
}

/// The header fields of `content`, and the offset where the header section ends (the blank
/// line, if any, and the body follow). Parsing stops at the first line that is neither a
/// field nor a continuation, as a lenient reader does.
pub fn fields(content: &[u8]) -> (Vec<Field>, usize) {
    let section = section(content, 0..content.len(), usize::MAX);
    (section.fields, section.end)
}

/// A header section found inside a message or part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    /// The fields, with offsets into the whole content.
    pub fields: Vec<Field>,
    /// Where the fields end: the blank line, or the first line that is not a field.
    pub end: usize,
    /// Where the body starts: after the blank line (or at `end` when there is none).
    pub body_start: usize,
    /// Parsing stopped at `max_fields` fields.
    pub truncated: bool,
}

/// The header section at the start of `range`. Lines end in LF or CRLF (SMTP content has
/// CRLF, Maildir files LF); at most `max_fields` fields are collected.
pub fn section(content: &[u8], range: std::ops::Range<usize>, max_fields: usize) -> Section {
    let mut out: Vec<Field> = Vec::new();
    let mut pos = range.start;
    let limit = range.end.min(content.len());
    while pos < limit {
        let line_end = memchr(b'\n', &content[pos..limit]).map(|i| pos + i + 1).unwrap_or(limit);
        let line = &content[pos..line_end];
        if line == b"\r\n" || line == b"\n" {
            return Section { fields: out, end: pos, body_start: line_end, truncated: false };
        }
        if line[0] == b' ' || line[0] == b'\t' {
            match out.last_mut() {
                Some(field) => field.end = line_end,
                None => break,
            }
        } else {
            let Some(colon) = line.iter().position(|&b| b == b':') else {
                break;
            };
            let name = &line[..colon];
            if name.is_empty() || !name.iter().all(|&b| (33..=126).contains(&b)) {
                break;
            }
            if out.len() == max_fields {
                return Section { fields: out, end: pos, body_start: pos, truncated: true };
            }
            out.push(Field { name: String::from_utf8_lossy(name).into_owned(), start: pos, end: line_end, value_start: pos + colon + 1 });
        }
        pos = line_end;
    }
    Section { fields: out, end: pos, body_start: pos, truncated: false }
}

/// The position of the first `needle` in `haystack`.
pub(crate) fn memchr(needle: u8, haystack: &[u8]) -> Option<usize> {
    haystack.iter().position(|&b| b == needle)
}

/// The value of a field with folding removed and leading white space trimmed.
pub fn unfolded_value(content: &[u8], field: &Field) -> String {
    let out: Vec<u8> = content[field.value_start..field.end].iter().copied().filter(|&b| b != b'\r' && b != b'\n').collect();
    let text = String::from_utf8_lossy(&out);
    text.trim_start_matches([' ', '\t']).trim_end().to_string()
}

/// A change to the header section, as milter's smfi_addheader/insheader/chgheader make them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Append a field at the end of the header section.
    Add { name: String, value: String },
    /// Insert a field before the `index`th field (0 = at the top).
    Insert { index: usize, name: String, value: String },
    /// Replace the value of the `index`th (from 1) field called `name`; if there is no such
    /// field, add it at the end, as smfi_chgheader does.
    Change { name: String, index: usize, value: String },
    /// Remove the `index`th (from 1) field called `name`, if there is one.
    Remove { name: String, index: usize },
}

/// Applies `changes` in order. Fields that no change touches keep their bytes exactly.
pub fn apply(content: &[u8], changes: &[Change]) -> Vec<u8> {
    if changes.is_empty() {
        return content.to_vec();
    }
    let (found, header_end) = fields(content);
    // Each entry: (name, raw bytes with CRLF).
    let mut list: Vec<(String, Vec<u8>)> = found.iter().map(|f| (f.name.clone(), content[f.start..f.end].to_vec())).collect();
    let render = |name: &str, value: &str| format!("{name}: {value}\r\n").into_bytes();
    let position = |list: &[(String, Vec<u8>)], name: &str, index: usize| {
        list.iter().enumerate().filter(|(_, (n, _))| n.eq_ignore_ascii_case(name)).nth(index.saturating_sub(1)).map(|(i, _)| i)
    };
    for change in changes {
        match change {
            Change::Add { name, value } => list.push((name.clone(), render(name, value))),
            Change::Insert { index, name, value } => {
                let at = (*index).min(list.len());
                list.insert(at, (name.clone(), render(name, value)));
            }
            Change::Change { name, index, value } => match position(&list, name, *index) {
                Some(i) => {
                    let original = list[i].0.clone();
                    list[i].1 = render(&original, value);
                }
                None => list.push((name.clone(), render(name, value))),
            },
            Change::Remove { name, index } => {
                if let Some(i) = position(&list, name, *index) {
                    list.remove(i);
                }
            }
        }
    }
    let mut out = Vec::with_capacity(content.len() + 256);
    for (_, raw) in &list {
        out.extend_from_slice(raw);
    }
    // Content with no header section at all gets the blank line that separates the new
    // fields from what is then clearly the body.
    if found.is_empty() && !list.is_empty() && !content.starts_with(b"\r\n") && !content.is_empty() {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(&content[header_end..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const MSG: &[u8] = b"From: a@b\r\nSubject: hello\r\n  world\r\nX-Tag: 1\r\nx-tag: 2\r\n\r\nbody\r\nNot-A: header\r\n";

    #[test]
    fn finds_fields_and_unfolds() {
        let (found, end) = fields(MSG);
        assert_eq!(found.iter().map(|f| f.name.as_str()).collect::<Vec<_>>(), ["From", "Subject", "X-Tag", "x-tag"]);
        assert_eq!(unfolded_value(MSG, &found[1]), "hello  world");
        assert_eq!(&MSG[end..end + 6], b"\r\nbody");
    }

    #[test]
    fn changes_keep_untouched_bytes() {
        let out = apply(
            MSG,
            &[
                Change::Add { name: "X-Added".into(), value: "yes".into() },
                Change::Insert { index: 0, name: "X-Top".into(), value: "first".into() },
                Change::Change { name: "X-TAG".into(), index: 2, value: "two".into() },
                Change::Remove { name: "from".into(), index: 1 },
                Change::Remove { name: "Nope".into(), index: 1 },
            ],
        );
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "X-Top: first\r\nSubject: hello\r\n  world\r\nX-Tag: 1\r\nx-tag: two\r\nX-Added: yes\r\n\r\nbody\r\nNot-A: header\r\n"
        );
    }

    #[test]
    fn no_blank_line_and_no_header() {
        let (found, end) = fields(b"Subject: only\r\n");
        assert_eq!((found.len(), end), (1, 15));
        let (found, end) = fields(b"just a body line\r\n");
        assert_eq!((found.len(), end), (0, 0));
        assert_eq!(apply(b"body\r\n", &[Change::Add { name: "A".into(), value: "b".into() }]), b"A: b\r\n\r\nbody\r\n");
    }
}
