//! Strings in responses (RFC 3501 4.3, 9): a quoted string where the text allows, a literal
//! where it does not (8-bit, CR, LF, or long), NIL for absent values.

/// Appends `text` as a string: quoted if it is short 7-bit text without CR/LF, else a literal.
pub fn string_into(out: &mut Vec<u8>, text: &[u8]) {
    if text.len() <= 1024 && text.iter().all(|&b| (0x01..0x80).contains(&b) && b != b'\r' && b != b'\n') {
        out.push(b'"');
        for &b in text {
            if b == b'"' || b == b'\\' {
                out.push(b'\\');
            }
            out.push(b);
        }
        out.push(b'"');
    } else {
        literal_into(out, text);
    }
}

/// Appends `{n}\r\n` and the octets.
pub fn literal_into(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(format!("{{{}}}\r\n", bytes.len()).as_bytes());
    out.extend_from_slice(bytes);
}

/// nstring: NIL for None.
pub fn nstring_into(out: &mut Vec<u8>, text: Option<&[u8]>) {
    match text {
        Some(text) => string_into(out, text),
        None => out.extend_from_slice(b"NIL"),
    }
}

/// A string as text, for names inside a response line: an atom when it is one, else quoted.
pub fn astring(text: &str) -> String {
    if !text.is_empty() && text.bytes().all(|b| super::parse::is_atom_char(b) || b == b']') {
        return text.to_string();
    }
    let mut out = Vec::new();
    string_into(&mut out, text.as_bytes());
    String::from_utf8_lossy(&out).into_owned()
}

/// A mailbox name on the wire: modified UTF-7, quoted when needed (always quoted if it has
/// a space, `%`, `*` or quotes).
/// A mailbox name as IMAP4rev2 writes it (RFC 9051 5.1): UTF-8, quoted or a literal.
pub fn mailbox_utf8(name: &str) -> String {
    let mut out = Vec::new();
    string_into(&mut out, name.as_bytes());
    String::from_utf8_lossy(&out).into_owned()
}

pub fn mailbox(name: &str) -> String {
    let wire = crate::mutf7::encode(name);
    let mut out = Vec::new();
    string_into(&mut out, wire.as_bytes());
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_or_literal() {
        let mut out = Vec::new();
        string_into(&mut out, b"say \"hi\" \\o/");
        assert_eq!(out, b"\"say \\\"hi\\\" \\\\o/\"");
        out.clear();
        string_into(&mut out, "caf\u{e9}".as_bytes());
        assert_eq!(out, b"{5}\r\ncaf\xc3\xa9");
        out.clear();
        string_into(&mut out, b"a\r\nb");
        assert_eq!(out, b"{4}\r\na\r\nb");
        out.clear();
        nstring_into(&mut out, None);
        assert_eq!(out, b"NIL");
        assert_eq!(mailbox("Entwürfe"), "\"Entw&APw-rfe\"");
        assert_eq!(astring("From"), "From");
        assert_eq!(astring("a b"), "\"a b\"");
    }
}
