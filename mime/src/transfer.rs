//! Content-Transfer-Encoding (RFC 2045 6): decoding every encoding, encoding quoted-printable
//! and base64, and deciding whether new content still fits a part's encoding.

/// A part's transfer encoding. Unknown `x-` tokens are kept as written and their content is
/// passed on undecoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Encoding {
    SevenBit,
    EightBit,
    Binary,
    QuotedPrintable,
    Base64,
    Other(String),
}

impl Encoding {
    /// From a Content-Transfer-Encoding value; absent means 7bit (RFC 2045 6.1).
    pub fn parse(value: Option<&str>) -> Encoding {
        let Some(value) = value else {
            return Encoding::SevenBit;
        };
        // Comments may follow the token.
        let token = value.split(|c: char| c == '(' || c.is_whitespace()).find(|t| !t.is_empty()).unwrap_or("");
        match token.to_ascii_lowercase().as_str() {
            "" | "7bit" => Encoding::SevenBit,
            "8bit" => Encoding::EightBit,
            "binary" => Encoding::Binary,
            "quoted-printable" => Encoding::QuotedPrintable,
            "base64" => Encoding::Base64,
            _ => Encoding::Other(token.to_string()),
        }
    }

    /// The token for the header.
    pub fn as_str(&self) -> &str {
        match self {
            Encoding::SevenBit => "7bit",
            Encoding::EightBit => "8bit",
            Encoding::Binary => "binary",
            Encoding::QuotedPrintable => "quoted-printable",
            Encoding::Base64 => "base64",
            Encoding::Other(token) => token,
        }
    }

    /// The identity encodings: the body is the content.
    pub fn is_identity(&self) -> bool {
        matches!(self, Encoding::SevenBit | Encoding::EightBit | Encoding::Binary)
    }
}

/// The content of a body in `encoding`. Unknown encodings are returned as they are.
pub fn decode(encoding: &Encoding, body: &[u8]) -> Vec<u8> {
    match encoding {
        Encoding::QuotedPrintable => decode_qp(body),
        Encoding::Base64 => decode_base64(body),
        _ => body.to_vec(),
    }
}

pub(crate) fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'A'..=b'F' => Some(b - b'A' + 10),
        b'a'..=b'f' => Some(b - b'a' + 10),
        _ => None,
    }
}

/// Quoted-printable (RFC 2045 6.7), leniently: a `=` not followed by two hex digits or a
/// line end is kept literally (rule 1's "robust" advice), white space before a line end is
/// dropped (rule 3), and a soft line break (`=` at the end of a line) joins the lines.
pub fn decode_qp(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len());
    for line in body.split_inclusive(|&b| b == b'\n') {
        let (text, eol): (&[u8], &[u8]) = if let Some(t) = line.strip_suffix(b"\r\n") {
            (t, b"\r\n")
        } else if let Some(t) = line.strip_suffix(b"\n") {
            (t, b"\n")
        } else {
            (line, b"")
        };
        let mut text = text;
        while let [rest @ .., b' ' | b'\t'] = text {
            text = rest;
        }
        let soft = text.last() == Some(&b'=');
        if soft {
            text = &text[..text.len() - 1];
        }
        let mut i = 0;
        while i < text.len() {
            if text[i] == b'=' && i + 2 < text.len() {
                if let (Some(h), Some(l)) = (hex(text[i + 1]), hex(text[i + 2])) {
                    out.push(h << 4 | l);
                    i += 3;
                    continue;
                }
            }
            out.push(text[i]);
            i += 1;
        }
        if !soft {
            out.extend_from_slice(eol);
        }
    }
    out
}

const BASE64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn base64_value(b: u8) -> Option<u8> {
    match b {
        b'A'..=b'Z' => Some(b - b'A'),
        b'a'..=b'z' => Some(b - b'a' + 26),
        b'0'..=b'9' => Some(b - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    }
}

/// Base64 (RFC 2045 6.8): characters outside the alphabet (line ends, junk) are ignored, as
/// the RFC says, and decoding stops at the first `=`.
pub fn decode_base64(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() / 4 * 3 + 3);
    let mut acc: u32 = 0;
    let mut bits = 0;
    for &b in body {
        if b == b'=' {
            break;
        }
        let Some(v) = base64_value(b) else { continue };
        acc = acc << 6 | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}

/// Base64 in lines of 76 characters, each ended by `eol`.
pub fn encode_base64(content: &[u8], eol: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(content.len() * 4 / 3 + content.len() / 57 * eol.len() + 8);
    for line in content.chunks(57) {
        for group in line.chunks(3) {
            let n = group.len();
            let v = u32::from(group[0]) << 16 | u32::from(*group.get(1).unwrap_or(&0)) << 8 | u32::from(*group.get(2).unwrap_or(&0));
            out.push(BASE64[(v >> 18) as usize & 63]);
            out.push(BASE64[(v >> 12) as usize & 63]);
            out.push(if n > 1 { BASE64[(v >> 6) as usize & 63] } else { b'=' });
            out.push(if n > 2 { BASE64[v as usize & 63] } else { b'=' });
        }
        out.extend_from_slice(eol);
    }
    out
}

/// Quoted-printable for text: the content's line ends (LF or CRLF) become hard line breaks
/// written as `eol`; lines are broken softly to stay within 76 characters; `=`, control
/// characters, 8-bit octets and white space at the end of a line are encoded (RFC 2045 6.7).
/// A `.` or `From ` at the start of a line is encoded too, so that no transport mangles it.
pub fn encode_qp(content: &[u8], eol: &[u8]) -> Vec<u8> {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = Vec::with_capacity(content.len() + content.len() / 8);
    let lines: Vec<&[u8]> = content.split_inclusive(|&b| b == b'\n').collect();
    for line in lines {
        let (text, had_eol) = match line.strip_suffix(b"\n") {
            Some(t) => (t.strip_suffix(b"\r").unwrap_or(t), true),
            None => (line, false),
        };
        let mut width = 0;
        for (i, &b) in text.iter().enumerate() {
            let last = i + 1 == text.len();
            let at_start = width == 0;
            let literal = match b {
                b'=' => false,
                b' ' | b'\t' => !last,
                b'.' if at_start => false,
                b'F' if at_start && text[i..].starts_with(b"From ") => false,
                33..=126 => true,
                _ => false,
            };
            let need = if literal { 1 } else { 3 };
            // Leave room for the soft break's `=`.
            if width + need > 75 {
                out.push(b'=');
                out.extend_from_slice(eol);
                width = 0;
            }
            if literal {
                out.push(b);
            } else {
                out.extend_from_slice(&[b'=', HEX[(b >> 4) as usize], HEX[(b & 15) as usize]]);
            }
            width += need;
        }
        if had_eol {
            out.extend_from_slice(eol);
        }
    }
    out
}

/// The longest line of `content`, in octets without its line end.
fn longest_line(content: &[u8]) -> usize {
    content.split(|&b| b == b'\n').map(|l| l.strip_suffix(b"\r").unwrap_or(l).len()).max().unwrap_or(0)
}

/// Whether `content` can be sent as it is under an identity encoding (RFC 2045 2.7-2.9):
/// 7bit is short lines of ASCII without NUL; 8bit allows octets above 127; binary anything.
/// A bare CR is never allowed outside binary.
pub fn fits(encoding: &Encoding, content: &[u8]) -> bool {
    let clean_lines = || {
        longest_line(content) <= 998
            && !content.contains(&0)
            && content.iter().enumerate().all(|(i, &b)| b != b'\r' || content.get(i + 1) == Some(&b'\n'))
    };
    match encoding {
        Encoding::SevenBit => content.is_ascii() && clean_lines(),
        Encoding::EightBit => clean_lines(),
        Encoding::Binary | Encoding::QuotedPrintable | Encoding::Base64 => true,
        Encoding::Other(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trip_and_leniency() {
        for len in 0..200 {
            let content: Vec<u8> = (0..len).map(|i| (i * 37 + 11) as u8).collect();
            let encoded = encode_base64(&content, b"\r\n");
            assert!(encoded.split(|&b| b == b'\n').all(|l| l.len() <= 77));
            assert_eq!(decode_base64(&encoded), content, "length {len}");
        }
        assert_eq!(decode_base64(b"aGVs\r\nbG8=\r\n"), b"hello");
        assert_eq!(decode_base64(b"aGVsbG8"), b"hello");
        assert_eq!(decode_base64(b"aG!Vs*bG8=junk"), b"hello");
        assert_eq!(encode_base64(b"hello", b"\n"), b"aGVsbG8=\n");
    }

    #[test]
    fn qp_decoding_rules() {
        assert_eq!(decode_qp(b"caf=C3=A9 =3D x=\r\ny\r\n"), "café = xy\r\n".as_bytes());
        assert_eq!(decode_qp(b"trailing   \r\nnext"), b"trailing\r\nnext");
        assert_eq!(decode_qp(b"bad =ZZ and =4"), b"bad =ZZ and =4");
        assert_eq!(decode_qp(b"lower =c3=a9\n"), "lower é\n".as_bytes());
        assert_eq!(decode_qp(b"soft=  \r\nbreak"), b"softbreak");
    }

    #[test]
    fn qp_encoding_round_trips_and_stays_short() {
        let text = "Grüße aus Köln — a line that is long enough to need a soft line break somewhere, surely.\r\n\
                    .leading dot\r\nFrom the start\r\ntrailing space \r\ntab\tinside\r\n= sign\r\nno end";
        let encoded = encode_qp(text.as_bytes(), b"\r\n");
        assert!(encoded.is_ascii());
        for line in encoded.split(|&b| b == b'\n') {
            assert!(line.len() <= 77, "{}", String::from_utf8_lossy(line));
            assert!(!line.starts_with(b".") && !line.starts_with(b"From "));
        }
        assert_eq!(decode_qp(&encoded), text.as_bytes());
        // LF content gets the requested line ends.
        assert_eq!(encode_qp(b"a\nb\n", b"\r\n"), b"a\r\nb\r\n");
    }

    #[test]
    fn what_fits_which_encoding() {
        assert!(fits(&Encoding::SevenBit, b"plain\r\ntext\r\n"));
        assert!(!fits(&Encoding::SevenBit, "é".as_bytes()));
        assert!(fits(&Encoding::EightBit, "é\r\n".as_bytes()));
        assert!(!fits(&Encoding::EightBit, b"nul\0"));
        assert!(!fits(&Encoding::EightBit, b"bare\rcr"));
        assert!(!fits(&Encoding::SevenBit, &vec![b'a'; 999]));
        assert!(fits(&Encoding::Binary, b"\0\r"));
        assert!(!fits(&Encoding::Other("x-uuencode".into()), b"a"));
        assert_eq!(Encoding::parse(Some(" Base64 (comment)")), Encoding::Base64);
        assert_eq!(Encoding::parse(Some("x-uuencode")), Encoding::Other("x-uuencode".into()));
        assert_eq!(Encoding::parse(None), Encoding::SevenBit);
    }
}
