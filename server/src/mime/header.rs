//! The header section of a message in SMTP's CRLF form (RFC 5322 2.2): finding its fields,
//! unfolding their values, and applying milter-style changes while leaving every untouched
//! byte as it was.

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
    let mut out: Vec<Field> = Vec::new();
    let mut pos = 0;
    while pos < content.len() {
        let line_end = content[pos..].windows(2).position(|w| w == b"\r\n").map(|i| pos + i + 2).unwrap_or(content.len());
        let line = &content[pos..line_end];
        if line.starts_with(b"\r\n") {
            break;
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
            out.push(Field {
                name: String::from_utf8_lossy(name).into_owned(),
                start: pos,
                end: line_end,
                value_start: pos + colon + 1,
            });
        }
        pos = line_end;
    }
    (out, pos)
}

/// The value of a field with folding removed and leading white space trimmed.
pub fn unfolded_value(content: &[u8], field: &Field) -> String {
    let raw = &content[field.value_start..field.end];
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        if raw[i..].starts_with(b"\r\n") {
            i += 2;
            continue;
        }
        out.push(raw[i]);
        i += 1;
    }
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
