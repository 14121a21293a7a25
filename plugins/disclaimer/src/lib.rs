//! Appends a footer to the text of a message: its first text/plain and first text/html part
//! (the body and its HTML alternative), but not attachments, the parts of a forwarded message,
//! or later inline text (such as the note that replaces a removed attachment). The part keeps its charset where the
//! footer can be written in it (else it becomes UTF-8), and the server keeps the part's
//! transfer encoding where the new text still fits it. See README.md for the config.

use wasmail_plugin_sdk::{export_plugin, host, Hook, Manifest, PartInfo, PartResult, Plugin};

const DEFAULT_FOOTER: &str = "Sent through Wasmail";

#[derive(Default)]
struct Disclaimer {
    /// The current message's text/plain and text/html bodies were seen (reset at the end of
    /// each transaction).
    plain_seen: bool,
    html_seen: bool,
}

/// The footer text: config `footer`, with `\n` written as a two-character escape allowed.
fn footer() -> String {
    host::config("footer").filter(|f| !f.trim().is_empty()).unwrap_or_else(|| DEFAULT_FOOTER.to_string()).replace("\\n", "\n")
}

/// `text` with its line ends as `eol`.
fn with_eol(text: &str, eol: &str) -> String {
    text.lines().collect::<Vec<_>>().join(eol)
}

fn html_escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// A Content-Type value for the part with `charset` in place of its own.
fn content_type_with_charset(part: &PartInfo, charset: &str) -> String {
    let mut value = format!("{}/{}; charset={charset}", part.content_type, part.content_subtype);
    for p in part.params.iter().filter(|p| p.name != "charset") {
        let plain = !p.value.is_empty() && p.value.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b));
        if plain {
            value.push_str(&format!("; {}={}", p.name, p.value));
        } else {
            value.push_str(&format!("; {}=\"{}\"", p.name, p.value.replace('\\', "\\\\").replace('"', "\\\"")));
        }
    }
    value
}

/// The body with `addition` inserted (html: before `</body>`, else at the end), as octets in
/// the part's charset, and the new Content-Type if the charset had to change.
fn append(part: &PartInfo, body: &[u8], addition: &str, html: bool) -> Option<(Vec<u8>, Option<String>)> {
    let charset = part.param("charset").unwrap_or("us-ascii").to_ascii_lowercase();
    let position = |text: &[u8]| -> usize {
        if !html {
            return text.len();
        }
        let lower = text.to_ascii_lowercase();
        lower.windows(7).rposition(|w| w == b"</body>").unwrap_or(text.len())
    };
    let splice = |text: &[u8], add: &[u8]| {
        let at = position(text);
        let mut out = text[..at].to_vec();
        out.extend_from_slice(add);
        out.extend_from_slice(&text[at..]);
        out
    };
    if charset == "utf-8" || charset == "utf8" || (addition.is_ascii() && charset_is_ascii_compatible(&charset)) {
        return Some((splice(body, addition.as_bytes()), None));
    }
    let encoding = if charset == "us-ascii" { Some(encoding_rs::UTF_8) } else { encoding_rs::Encoding::for_label(charset.as_bytes()) }?;
    if encoding == encoding_rs::UTF_16LE || encoding == encoding_rs::UTF_16BE || encoding == encoding_rs::REPLACEMENT {
        return None;
    }
    if charset != "us-ascii" {
        let (encoded, _, unmappable) = encoding.encode(addition);
        if !unmappable {
            return Some((splice(body, &encoded), None));
        }
    }
    // The footer cannot be written in the part's charset: the whole text becomes UTF-8.
    let (text, _) = encoding.decode_without_bom_handling(body);
    let text = text.into_owned().into_bytes();
    Some((splice(&text, addition.as_bytes()), Some(content_type_with_charset(part, "utf-8"))))
}

/// Charsets in which ASCII octets mean ASCII (everything mail uses but UTF-16/32 and the
/// ISO-2022 family, where escape sequences change the meaning of later octets).
fn charset_is_ascii_compatible(charset: &str) -> bool {
    let unsafe_prefixes = ["utf-16", "utf-32", "utf-7", "iso-2022", "ucs-2"];
    !unsafe_prefixes.iter().any(|p| charset.starts_with(p))
}

impl Plugin for Disclaimer {
    fn manifest() -> Manifest {
        Manifest::new("disclaimer", env!("CARGO_PKG_VERSION")).mime_type("text/plain").mime_type("text/html").hook(Hook::Reset)
    }

    fn on_reset(&mut self) {
        *self = Disclaimer::default();
    }

    fn on_part(&mut self, part: PartInfo) -> PartResult {
        if part.in_attached_message || part.is_attachment() {
            return PartResult::keep();
        }
        let html = part.is("text", "html");
        let seen = if html { &mut self.html_seen } else { &mut self.plain_seen };
        if std::mem::replace(seen, true) {
            return PartResult::keep();
        }
        let Some(body) = part.body.as_deref() else {
            return PartResult::keep();
        };
        let eol = if body.is_empty() || body.windows(2).any(|w| w == b"\r\n") { "\r\n" } else { "\n" };
        let footer = footer();
        let addition = if html {
            format!("{eol}<div class=\"disclaimer\">{}</div>{eol}", with_eol(&html_escape(&footer), &format!("<br>{eol}")))
        } else {
            // "-- " on a line of its own starts a signature (son-of-RFC-1036), which readers
            // grey out and strip from replies.
            let lead = if body.is_empty() || body.ends_with(b"\n") { "" } else { eol };
            format!("{lead}-- {eol}{}{eol}", with_eol(&footer, eol))
        };
        match append(&part, body, &addition, html) {
            Some((new_body, content_type)) => PartResult::replace(new_body, content_type),
            None => {
                host::warn(&format!("section {}: cannot add the footer to text in {:?}", part.section, part.param("charset")));
                PartResult::keep()
            }
        }
    }
}

export_plugin!(Disclaimer);
