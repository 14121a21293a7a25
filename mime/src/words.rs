//! RFC 2047 encoded words (`=?charset?B?...?=`, `=?charset?Q?...?=`) in header values, and
//! the charset decoding that they and RFC 2231 parameters need (encoding_rs: every charset
//! of the WHATWG Encoding Standard, which covers what mail uses).

use super::transfer;

/// Text in `charset` as a string, or None if the charset is unknown. Invalid sequences become
/// U+FFFD, as every mail reader shows them.
pub fn decode_charset(charset: &str, bytes: &[u8]) -> Option<String> {
    // RFC 2231 5: a language may follow the charset (`utf-8*en`).
    let label = charset.split('*').next().unwrap_or(charset).trim();
    if label.eq_ignore_ascii_case("us-ascii") || label.eq_ignore_ascii_case("ascii") {
        return Some(String::from_utf8_lossy(bytes).into_owned());
    }
    let encoding = encoding_rs::Encoding::for_label(label.as_bytes())?;
    let (text, _) = encoding.decode_without_bom_handling(bytes);
    Some(text.into_owned())
}

/// One encoded word found in a value.
struct Word<'a> {
    /// Byte offsets of `=?` and just after `?=`.
    start: usize,
    end: usize,
    charset: &'a str,
    bytes: Vec<u8>,
}

/// Finds the encoded word that starts at `at` (`=?` there), if it is well formed.
fn word_at(value: &str, at: usize) -> Option<Word<'_>> {
    let rest = &value[at + 2..];
    let q1 = rest.find('?')?;
    let charset = &rest[..q1];
    let rest2 = &rest[q1 + 1..];
    let q2 = rest2.find('?')?;
    let encoding = &rest2[..q2];
    let text_start = at + 2 + q1 + 1 + q2 + 1;
    let close = value[text_start..].find("?=")?;
    let text = &value[text_start..text_start + close];
    // RFC 2047 2: an encoded word has no white space inside and is at most 75 characters;
    // the length limit is widely broken, so only the white space rule is enforced.
    if charset.is_empty() || text.contains([' ', '\t']) || charset.contains([' ', '\t']) {
        return None;
    }
    let bytes = if encoding.eq_ignore_ascii_case("B") {
        transfer::decode_base64(text.as_bytes())
    } else if encoding.eq_ignore_ascii_case("Q") {
        decode_q(text.as_bytes())
    } else {
        return None;
    };
    Some(Word { start: at, end: text_start + close + 2, charset, bytes })
}

/// The Q encoding (RFC 2047 4.2): `_` is a space, `=XX` an octet.
fn decode_q(text: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    let mut i = 0;
    while i < text.len() {
        match text[i] {
            b'_' => out.push(b' '),
            b'=' if i + 2 < text.len() => match (transfer::hex(text[i + 1]), transfer::hex(text[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 3;
                    continue;
                }
                _ => out.push(b'='),
            },
            b => out.push(b),
        }
        i += 1;
    }
    out
}

/// A header value with its encoded words decoded. White space between two adjacent encoded
/// words is dropped (RFC 2047 6.2), and adjacent words in the same charset are decoded
/// together, so that a multi-octet character split across two words survives. A word in an
/// unknown charset is left as it was.
pub fn decode(value: &str) -> String {
    if !value.contains("=?") {
        return value.to_string();
    }
    let mut out = String::with_capacity(value.len());
    let mut pos = 0;
    // Pending octets of adjacent words in one charset, and the text since the last word.
    let mut pending: Option<(String, Vec<u8>)> = None;
    let mut search = 0;
    while let Some(found) = value[search..].find("=?") {
        let at = search + found;
        let Some(word) = word_at(value, at) else {
            search = at + 2;
            continue;
        };
        let between = &value[pos..word.start];
        let adjacent = pending.is_some() && between.chars().all(|c| c == ' ' || c == '\t' || c == '\r' || c == '\n');
        if !adjacent {
            flush(&mut out, &mut pending);
            out.push_str(between);
        }
        match &mut pending {
            Some((charset, bytes)) if charset.eq_ignore_ascii_case(word.charset) => bytes.extend_from_slice(&word.bytes),
            _ => {
                flush(&mut out, &mut pending);
                if decode_charset(word.charset, &[]).is_some() {
                    pending = Some((word.charset.to_string(), word.bytes));
                } else {
                    out.push_str(&value[word.start..word.end]);
                }
            }
        }
        pos = word.end;
        search = word.end;
    }
    flush(&mut out, &mut pending);
    out.push_str(&value[pos..]);
    out
}

fn flush(out: &mut String, pending: &mut Option<(String, Vec<u8>)>) {
    if let Some((charset, bytes)) = pending.take() {
        out.push_str(&decode_charset(&charset, &bytes).unwrap_or_default());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc2047_examples() {
        // RFC 2047 8.
        assert_eq!(decode("=?ISO-8859-1?Q?a?="), "a");
        assert_eq!(decode("=?ISO-8859-1?Q?a?= b"), "a b");
        assert_eq!(decode("=?ISO-8859-1?Q?a?= =?ISO-8859-1?Q?b?="), "ab");
        assert_eq!(decode("=?ISO-8859-1?Q?a?=  =?ISO-8859-1?Q?b?="), "ab");
        assert_eq!(decode("=?ISO-8859-1?Q?a?=\r\n    =?ISO-8859-1?Q?b?="), "ab");
        assert_eq!(decode("=?ISO-8859-1?Q?a_b?="), "a b");
        assert_eq!(decode("=?ISO-8859-1?Q?a?= =?ISO-8859-2?Q?_b?="), "a b");
        assert_eq!(decode("=?ISO-8859-1?Q?Keld_J=F8rn_Simonsen?= <keld@dkuug.dk>"), "Keld Jørn Simonsen <keld@dkuug.dk>");
        assert_eq!(decode("=?US-ASCII?Q?Keith_Moore?= <moore@cs.utk.edu>"), "Keith Moore <moore@cs.utk.edu>");
        assert_eq!(decode("=?ISO-8859-1?B?SWYgeW91IGNhbiByZWFkIHRoaXMgeW8=?="), "If you can read this yo");
    }

    #[test]
    fn split_multibyte_characters_and_other_charsets() {
        // "日本" in UTF-8 split in the middle of the first character, across two words.
        assert_eq!(decode("=?UTF-8?B?5pc=?= =?UTF-8?B?peacrA==?="), "日本");
        assert_eq!(decode("=?koi8-r?B?8NLJ18XU?="), "Привет");
        assert_eq!(decode("=?windows-1252?Q?caf=E9?="), "café");
        assert_eq!(decode("=?utf-8*en?Q?hello?="), "hello");
    }

    #[test]
    fn malformed_and_unknown_words_stay_as_written() {
        assert_eq!(decode("=?x-unknown?Q?abc?= and more"), "=?x-unknown?Q?abc?= and more");
        assert_eq!(decode("=?utf-8?X?abc?="), "=?utf-8?X?abc?=");
        assert_eq!(decode("=?utf-8?Q?a b?="), "=?utf-8?Q?a b?=");
        assert_eq!(decode("50% =? not a word"), "50% =? not a word");
        assert_eq!(decode("=?utf-8?Q?tail=?="), "tail=");
        assert_eq!(decode("=?utf-8?Q?=4?="), "=4");
    }
}
