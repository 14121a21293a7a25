//! The rewriter: applies changes to parts of a parsed message and writes it out again. Every
//! byte that no change touches is copied as it was (an unchanged message comes out identical),
//! and what is written anew uses the message's own line end.
//!
//! A replaced body keeps its part's transfer encoding when the new content fits it (RFC 2045
//! 2.7-2.9); otherwise text becomes quoted-printable and anything else base64, so a message
//! that was 7-bit stays 7-bit.

use super::header::Field;
use super::parser::{Message, Part};
use super::transfer::{self, Encoding};
use super::value;

/// What happens to one leaf part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Keep,
    /// New content (decoded), and optionally a new Content-Type value.
    Replace {
        content: Vec<u8>,
        content_type: Option<String>,
    },
    /// The part becomes a short text/plain note.
    Remove {
        note: String,
    },
}

/// One change to the bytes: replace `start..end` with `bytes`. Insertions have start == end;
/// several at one place keep the order they were made in.
struct Splice {
    start: usize,
    end: usize,
    bytes: Vec<u8>,
}

/// Writes `message` with `actions` applied to its leaves (indexes into
/// [`Message::leaves`]) and `add_headers` appended to the top-level header.
pub fn rewrite(message: &Message, actions: &[(usize, Action)], add_headers: &[(String, String)]) -> Vec<u8> {
    let content = message.content;
    let eol = message.eol;
    let leaves = message.leaves();
    let mut splices: Vec<Splice> = Vec::new();
    let mut touched_mime = false;
    for (index, action) in actions {
        let Some(leaf) = leaves.get(*index) else {
            continue;
        };
        let part = leaf.part;
        match action {
            Action::Keep => {}
            Action::Replace { content: new, content_type } => {
                touched_mime = true;
                let ct = content_type.as_deref().and_then(value::content_type).unwrap_or_else(|| part.content_type.clone());
                let encoding = choose_encoding(&part.encoding, ct.kind == "text", new);
                if let Some(value) = content_type {
                    set_field(&mut splices, part, "Content-Type", value, eol);
                }
                if encoding != part.encoding {
                    set_field(&mut splices, part, "Content-Transfer-Encoding", encoding.as_str(), eol);
                }
                replace_body(&mut splices, part, encode(&encoding, new, eol), eol);
            }
            Action::Remove { note } => {
                touched_mime = true;
                for field in part.fields.iter().filter(|f| f.name.to_ascii_lowercase().starts_with("content-")) {
                    splices.push(Splice { start: field.start, end: field.end, bytes: Vec::new() });
                }
                // The note ends in a line end where the body it replaces did (inside a
                // multipart, the line end before the boundary belongs to the boundary).
                let mut text = note.clone().into_bytes();
                let body_ended_line = part.body.end > part.body.start && message.content[part.body.end - 1] == b'\n';
                if body_ended_line && !text.ends_with(b"\n") {
                    text.push(b'\n');
                }
                let encoding = choose_encoding(&Encoding::SevenBit, true, &text);
                let fields = [
                    ("Content-Type", "text/plain; charset=utf-8"),
                    ("Content-Transfer-Encoding", encoding.as_str()),
                    ("Content-Disposition", "inline"),
                ];
                for (name, value) in fields {
                    splices.push(Splice { start: part.header_end, end: part.header_end, bytes: field_line(name, value, eol) });
                }
                replace_body(&mut splices, part, encode(&encoding, &text, eol), eol);
            }
        }
    }
    let root = &message.root;
    if touched_mime && !root.fields.iter().any(|f| f.name.eq_ignore_ascii_case("mime-version")) {
        splices.push(Splice { start: root.header_end, end: root.header_end, bytes: field_line("MIME-Version", "1.0", eol) });
    }
    for (name, value) in add_headers {
        splices.push(Splice { start: root.header_end, end: root.header_end, bytes: field_line(name, value, eol) });
    }
    if !add_headers.is_empty() && root.header_end == root.body.start && root.body.start < content.len() {
        // The message had no blank line (or no header): the new fields need one after them.
        splices.push(Splice { start: root.header_end, end: root.header_end, bytes: eol.to_vec() });
    }
    apply(content, splices)
}

/// The message with every 8-bit leaf body re-encoded in 7 bits (quoted-printable for text,
/// base64 otherwise), for a peer without 8BITMIME (RFC 6152 3). Parts that are already 7-bit
/// keep their bytes. A message the parser refuses is returned as it is.
pub fn downgrade_8bit(content: &[u8]) -> Vec<u8> {
    reencode(content, |_, body| !body.is_ascii())
}

/// The message with every binary leaf body — declared `binary`, or with NULs, bare CRs or
/// lines over 998 octets — re-encoded (quoted-printable for text, base64 otherwise), so that
/// it survives a store that keeps lines (Maildir's LF convention) and every reader; BINARY
/// (RFC 3516) gives the octets back decoded. A message the parser refuses is returned as it
/// is.
pub fn encode_binary_parts(content: &[u8]) -> Vec<u8> {
    reencode(content, |part, body| part.encoding == Encoding::Binary || !transfer::fits(&Encoding::EightBit, body))
}

/// Re-encodes the leaves with an identity encoding (7bit, 8bit, binary) that `needs` picks.
fn reencode(content: &[u8], needs: impl Fn(&Part, &[u8]) -> bool) -> Vec<u8> {
    let limits = super::parser::Limits { max_depth: 100, max_parts: 100_000, max_header_fields: 100_000, max_header_size: usize::MAX };
    let Ok(message) = super::parser::parse(content, &limits) else { return content.to_vec() };
    let eol = message.eol;
    let mut splices = Vec::new();
    for leaf in message.leaves() {
        let part = leaf.part;
        let body = &content[part.body.clone()];
        if !part.encoding.is_identity() || !needs(part, body) {
            continue;
        }
        let encoding = if part.content_type.kind == "text" { Encoding::QuotedPrintable } else { Encoding::Base64 };
        set_field(&mut splices, part, "Content-Transfer-Encoding", encoding.as_str(), eol);
        replace_body(&mut splices, part, encode(&encoding, body, eol), eol);
    }
    let root = &message.root;
    if !splices.is_empty() && !root.fields.iter().any(|f| f.name.eq_ignore_ascii_case("mime-version")) {
        splices.push(Splice { start: root.header_end, end: root.header_end, bytes: field_line("MIME-Version", "1.0", eol) });
    }
    apply(content, splices)
}

/// The encoding for new content in a part that had `original`.
fn choose_encoding(original: &Encoding, text: bool, content: &[u8]) -> Encoding {
    if transfer::fits(original, content) {
        original.clone()
    } else if text {
        Encoding::QuotedPrintable
    } else {
        Encoding::Base64
    }
}

fn encode(encoding: &Encoding, content: &[u8], eol: &[u8]) -> Vec<u8> {
    match encoding {
        Encoding::QuotedPrintable => transfer::encode_qp(content, eol),
        Encoding::Base64 => transfer::encode_base64(content, eol),
        Encoding::Binary => content.to_vec(),
        // 7bit and 8bit: the content's lines, with the message's line end.
        _ => {
            let mut out = Vec::with_capacity(content.len() + content.len() / 32);
            for line in content.split_inclusive(|&b| b == b'\n') {
                match line.strip_suffix(b"\n") {
                    Some(text) => {
                        out.extend_from_slice(text.strip_suffix(b"\r").unwrap_or(text));
                        out.extend_from_slice(eol);
                    }
                    None => out.extend_from_slice(line),
                }
            }
            out
        }
    }
}

fn field_line(name: &str, value: &str, eol: &[u8]) -> Vec<u8> {
    let mut line = format!("{name}: {value}").into_bytes();
    line.extend_from_slice(eol);
    line
}

/// Replaces the first field called `name` in `part`, or adds it at the end of its header.
fn set_field(splices: &mut Vec<Splice>, part: &Part, name: &str, value: &str, eol: &[u8]) {
    let existing: Option<&Field> = part.fields.iter().find(|f| f.name.eq_ignore_ascii_case(name));
    match existing {
        Some(field) => splices.push(Splice { start: field.start, end: field.end, bytes: field_line(&field.name, value, eol) }),
        None => splices.push(Splice { start: part.header_end, end: part.header_end, bytes: field_line(name, value, eol) }),
    }
}

fn replace_body(splices: &mut Vec<Splice>, part: &Part, body: Vec<u8>, eol: &[u8]) {
    let mut bytes = Vec::with_capacity(body.len() + 2);
    // A part whose header ran straight into its body (no blank line) gets one.
    if part.header_end == part.body.start {
        bytes.extend_from_slice(eol);
    }
    bytes.extend_from_slice(&body);
    splices.push(Splice { start: part.body.start, end: part.body.end, bytes });
}

fn apply(content: &[u8], mut splices: Vec<Splice>) -> Vec<u8> {
    // Stable: insertions at one place stay in the order they were made, and come before a
    // replacement that starts there (a header field added where a body without a blank line
    // begins goes before the new body, not after it).
    splices.sort_by_key(|s| (s.start, s.end > s.start));
    let extra: usize = splices.iter().map(|s| s.bytes.len()).sum();
    let mut out = Vec::with_capacity(content.len() + extra);
    let mut pos = 0;
    for splice in splices {
        // Splices come from disjoint parts and fields; one that overlaps an earlier one would
        // be a bug here, and is skipped rather than corrupting the message.
        if splice.start < pos {
            debug_assert!(false, "overlapping splices");
            continue;
        }
        out.extend_from_slice(&content[pos..splice.start]);
        out.extend_from_slice(&splice.bytes);
        pos = splice.end;
    }
    out.extend_from_slice(&content[pos..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parser::{parse, Limits};

    #[test]
    fn a_header_running_into_an_8bit_body_is_downgraded_whole() {
        // Found by the mime_message fuzz target: no blank line after the header, an 8-bit body,
        // no MIME-Version. Both new fields must come before the body's new blank line.
        let message = "From: a@b.test\nDate: \nSee below \u{2014} forwarded.\n".as_bytes();
        let out = downgrade_8bit(message);
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            text,
            "From: a@b.test\nDate: \nContent-Transfer-Encoding: quoted-printable\nMIME-Version: 1.0\n\nSee below =E2=80=94 forwarded.\n"
        );
    }

    fn leaf_body(bytes: &[u8], index: usize) -> Vec<u8> {
        let message = parse(bytes, &Limits::default()).unwrap();
        let leaves = message.leaves();
        let part = leaves[index].part;
        transfer::decode(&part.encoding, &bytes[part.body.clone()])
    }

    const ALT: &[u8] = b"From: a@example.org\r\nMIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary=b\r\n\r\n\
--b\r\nContent-Type: text/plain; charset=us-ascii\r\nContent-Transfer-Encoding: 7bit\r\n\r\nHello\r\n\
--b\r\nContent-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\nPHA+SGVsbG88L3A+\r\n\
--b\r\nContent-Type: application/x-msdownload; name=\"a.exe\"\r\nContent-Transfer-Encoding: base64\r\n\r\nTVo=\r\n--b--\r\n";

    #[test]
    fn no_change_is_byte_identical() {
        let message = parse(ALT, &Limits::default()).unwrap();
        assert_eq!(rewrite(&message, &[(0, Action::Keep), (1, Action::Keep)], &[]), ALT);
    }

    #[test]
    fn replaced_bodies_keep_their_encoding_when_they_fit() {
        let message = parse(ALT, &Limits::default()).unwrap();
        let out = rewrite(
            &message,
            &[
                (0, Action::Replace { content: b"Hello\r\n-- \r\nfooter\r\n".to_vec(), content_type: None }),
                (1, Action::Replace { content: b"<p>Hello</p><p>footer</p>".to_vec(), content_type: None }),
            ],
            &[],
        );
        let text = String::from_utf8(out.clone()).unwrap();
        assert!(text.contains("Content-Transfer-Encoding: 7bit\r\n\r\nHello\r\n-- \r\nfooter\r\n\r\n--b\r\n"), "{text}");
        assert_eq!(leaf_body(&out, 1), b"<p>Hello</p><p>footer</p>");
        assert!(text.contains("name=\"a.exe\"\r\nContent-Transfer-Encoding: base64\r\n\r\nTVo=\r\n--b--\r\n"));
    }

    #[test]
    fn eight_bit_content_in_a_seven_bit_part_becomes_quoted_printable() {
        let message = parse(ALT, &Limits::default()).unwrap();
        let new = "Grüße\r\n".as_bytes().to_vec();
        let out = rewrite(&message, &[(0, Action::Replace { content: new.clone(), content_type: Some("text/plain; charset=utf-8".into()) })], &[]);
        assert!(out.is_ascii(), "a 7-bit message stays 7-bit");
        let text = String::from_utf8(out.clone()).unwrap();
        assert!(text.contains("Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n"));
        assert_eq!(leaf_body(&out, 0), new);
        // Binary content in a non-text part becomes base64.
        let out = rewrite(&message, &[(2, Action::Replace { content: vec![0, 1, 2, 255], content_type: None })], &[]);
        assert_eq!(leaf_body(&out, 2), [0, 1, 2, 255]);
    }

    #[test]
    fn removed_parts_become_notes() {
        let message = parse(ALT, &Limits::default()).unwrap();
        let out = rewrite(&message, &[(2, Action::Remove { note: "a.exe was removed".into() })], &[("X-Scanned".into(), "yes".into())]);
        let text = String::from_utf8(out.clone()).unwrap();
        assert!(text.contains("--b\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 7bit\r\nContent-Disposition: inline\r\n\r\na.exe was removed\r\n--b--\r\n"), "{text}");
        assert!(!text.contains("a.exe\""));
        assert!(
            text.starts_with("From: a@example.org\r\nMIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary=b\r\nX-Scanned: yes\r\n\r\n")
        );
        let reparsed = parse(&out, &Limits::default()).unwrap();
        assert_eq!(reparsed.leaves().len(), 3);
    }

    #[test]
    fn eight_bit_bodies_are_downgraded_for_a_seven_bit_peer() {
        let msg = "Subject: x\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\nGrüße\r\n--b\r\nContent-Type: text/plain\r\n\r\nascii\r\n--b--\r\n";
        let out = downgrade_8bit(msg.as_bytes());
        assert!(out.is_ascii());
        let text = String::from_utf8(out.clone()).unwrap();
        assert!(
            text.contains(
                "Content-Transfer-Encoding: quoted-printable\r\n\r\nGr=C3=BC=C3=9Fe\r\n--b\r\nContent-Type: text/plain\r\n\r\nascii\r\n--b--"
            ),
            "{text}"
        );
        assert!(text.contains("MIME-Version: 1.0\r\n\r\n--b"));
        assert_eq!(leaf_body(&out, 0), "Grüße".as_bytes());
        assert_eq!(downgrade_8bit(b"Subject: a\r\n\r\nplain\r\n"), b"Subject: a\r\n\r\nplain\r\n");
    }

    #[test]
    fn single_part_messages_and_missing_mime_version() {
        let msg = b"Subject: hi\nFrom: a@b\n\nplain body\n";
        let message = parse(msg, &Limits::default()).unwrap();
        let out = rewrite(&message, &[(0, Action::Remove { note: "gone — removed".into() })], &[]);
        let text = String::from_utf8(out.clone()).unwrap();
        assert!(text.starts_with("Subject: hi\nFrom: a@b\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: quoted-printable\nContent-Disposition: inline\nMIME-Version: 1.0\n\n"), "{text}");
        assert_eq!(leaf_body(&out, 0), "gone — removed\n".as_bytes());
        // Headers only, no blank line: the added field is followed by one.
        let msg = b"Subject: hi\r\nbody without separator\r\n";
        let message = parse(msg, &Limits::default()).unwrap();
        let out = rewrite(&message, &[], &[("X-A".into(), "1".into())]);
        assert_eq!(out, b"Subject: hi\r\nX-A: 1\r\n\r\nbody without separator\r\n");
    }

    #[test]
    fn binary_parts_are_encoded_and_decode_to_their_octets() {
        let binary = b"\0-\xe4\n\r\n\n";
        let mut message = b"From: a@b\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: binary\r\n\r\n".to_vec();
        message.extend_from_slice(binary);
        let out = encode_binary_parts(&message);
        assert!(out.is_ascii(), "{:?}", String::from_utf8_lossy(&out));
        let parsed = crate::parse(&out, &crate::Limits::default()).unwrap();
        assert_eq!(parsed.root.encoding, Encoding::Base64);
        assert_eq!(transfer::decode(&parsed.root.encoding, &out[parsed.root.body.clone()]), binary);
        // Text with a bare CR becomes quoted-printable; clean parts keep their bytes.
        let text = b"Content-Type: text/plain\r\n\r\nline\rcut\r\n";
        assert!(String::from_utf8_lossy(&encode_binary_parts(text)).contains("quoted-printable"));
        let clean = b"Subject: x\r\n\r\nd\xc3\xa9j\xc3\xa0 vu\r\n";
        assert_eq!(encode_binary_parts(clean), clean);
    }
}
