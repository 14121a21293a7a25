//! The parser and rewriter on the real-world shaped messages of `tests/fixtures/`, as stored
//! (LF) and as SMTP carries them (CRLF).

use super::*;

fn fixture(name: &str) -> Vec<u8> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures").join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn crlf(lf: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(lf.len() + lf.len() / 30);
    for &b in lf {
        if b == b'\n' {
            out.push(b'\r');
        }
        out.push(b);
    }
    out
}

const ALL: &[&str] = &[
    "alternative-qp-base64.eml",
    "calendar-invite.eml",
    "charsets.eml",
    "forward-rfc822.eml",
    "malformed-boundary.eml",
    "mixed-exe.eml",
    "rfc2231-filename.eml",
];

/// (section, type/subtype, filename, in an attached message) of every leaf.
fn summary(content: &[u8]) -> Vec<(String, String, Option<String>, bool)> {
    let message = parse(content, &Limits::default()).unwrap();
    message
        .leaves()
        .iter()
        .map(|l| (l.section.clone(), l.part.content_type.essence(), l.part.filename().map(str::to_string), l.in_attached_message))
        .collect()
}

#[test]
fn unchanged_messages_come_out_byte_for_byte() {
    for name in ALL {
        for content in [fixture(name), crlf(&fixture(name))] {
            let message = parse(&content, &Limits::default()).unwrap_or_else(|e| panic!("{name}: {e}"));
            let keep: Vec<(usize, Action)> = (0..message.leaves().len()).map(|i| (i, Action::Keep)).collect();
            assert_eq!(rewrite(&message, &keep, &[]), content, "{name}");
        }
    }
}

#[test]
fn structures_match_what_mail_readers_see() {
    let s = |section: &str, ty: &str, name: Option<&str>, inner: bool| (section.to_string(), ty.to_string(), name.map(str::to_string), inner);
    assert_eq!(
        summary(&fixture("mixed-exe.eml")),
        [
            s("1.1", "text/plain", None, false),
            s("1.2", "text/html", None, false),
            s("2", "application/pdf", Some("invoice.pdf"), false),
            s("3", "application/octet-stream", Some("invoice.pdf.exe"), false),
        ]
    );
    assert_eq!(summary(&fixture("forward-rfc822.eml")), [s("1", "text/plain", None, false), s("2.1", "text/plain", None, true)]);
    assert_eq!(summary(&fixture("rfc2231-filename.eml"))[1].2.as_deref(), Some("naïve résumé final.exe"));
    assert_eq!(summary(&fixture("malformed-boundary.eml")), [s("1", "text/plain", None, false)]);
    assert_eq!(summary(&fixture("calendar-invite.eml"))[1], s("1.2", "text/calendar", None, false));
}

#[test]
fn bodies_and_headers_decode() {
    let content = crlf(&fixture("alternative-qp-base64.eml"));
    let message = parse(&content, &Limits::default()).unwrap();
    let leaves = message.leaves();
    let text = transfer::decode(&leaves[0].part.encoding, &content[leaves[0].part.body.clone()]);
    assert!(String::from_utf8(text).unwrap().contains("the café is booked for Friday — see you there."));
    let html = transfer::decode(&leaves[1].part.encoding, &content[leaves[1].part.body.clone()]);
    assert!(String::from_utf8(html).unwrap().ends_with("</body></html>"));

    let content = fixture("charsets.eml");
    let message = parse(&content, &Limits::default()).unwrap();
    assert_eq!(words::decode(&message.root.field(&content, "subject").unwrap()), "Привет из Москвы");
    assert_eq!(words::decode(&message.root.field(&content, "from").unwrap()), "Jörg Müller <joerg@client.example>");
    let body = transfer::decode(&message.root.encoding, &content[message.root.body.clone()]);
    let charset = message.root.content_type.param("charset").unwrap();
    assert_eq!(words::decode_charset(charset, &body).unwrap(), "Grüße aus Köln,\nund schöne Grüße an alle.\n");
}

#[test]
fn the_deep_fixture_is_beyond_the_default_depth() {
    assert_eq!(parse(&fixture("deep-nesting.eml"), &Limits::default()).unwrap_err(), LimitExceeded::Depth(20));
    assert!(parse(&fixture("deep-nesting.eml"), &Limits { max_depth: 25, ..Limits::default() }).is_ok());
}
