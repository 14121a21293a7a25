//! What the server takes from a plugin, checked in the terms of the wire before it is used:
//! a reply must serialize to exactly its own lines, a header field must be one line of at most
//! 998 octets, and a manifest may not claim what the core answers. The plugin host converts
//! the WIT values and calls these; the `plugin_reply` fuzz target calls them directly.

use crate::reply::{EnhancedCode, Reply};
use crate::smtp::keywords::{Keyword, CORE_PARAMS, CORE_VERBS};

/// Reply lines one answer may have.
pub const MAX_LINES: usize = 100;
/// Octets in one reply line.
pub const MAX_LINE: usize = 500;
/// Reply lines `on-reply` may add.
pub const MAX_EXTRA_LINES: usize = 20;

/// RFC 5321 4.1.1.1 `ehlo-keyword`, and the same shape for verbs and parameters.
fn is_keyword(s: &str) -> bool {
    !s.is_empty() && s.len() <= 64 && s.as_bytes()[0].is_ascii_alphanumeric() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

fn text_line(line: &str) -> Result<(), String> {
    if line.len() > MAX_LINE {
        return Err(format!("reply line longer than {MAX_LINE} octets"));
    }
    if line.chars().any(|c| c.is_control()) {
        return Err(format!("control character (CR, LF, ...) in reply line {line:?}"));
    }
    Ok(())
}

/// A reply: a code between 200 and 599, an enhanced code (`class.subject.detail`) whose class
/// is the code's, at most [`MAX_LINES`] lines of [`MAX_LINE`] octets without control
/// characters. No lines is one empty line.
pub fn reply(code: u16, enhanced: Option<(u8, u16, u16)>, lines: &[String]) -> Result<Reply, String> {
    if !(200..=599).contains(&code) {
        return Err(format!("reply code {code} is not between 200 and 599"));
    }
    if lines.len() > MAX_LINES {
        return Err(format!("more than {MAX_LINES} reply lines"));
    }
    for line in lines {
        text_line(line)?;
    }
    let enhanced = match enhanced {
        None => None,
        Some((class, subject, detail)) => {
            if u16::from(class) != code / 100 || subject > 999 || detail > 999 {
                return Err(format!("enhanced code {class}.{subject}.{detail} does not fit reply code {code}"));
            }
            Some(EnhancedCode::new(class, subject, detail))
        }
    };
    let lines = if lines.is_empty() { vec![String::new()] } else { lines.to_vec() };
    Ok(Reply { code, enhanced, lines })
}

/// What a verdict that carries a reply does with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// 5xx.
    Reject,
    /// 4xx.
    Tempfail,
    /// 4xx or 5xx, then the connection closes.
    Disconnect,
}

/// A checked reply that fits its verdict's class.
pub fn refusal(kind: Refusal, reply: Reply) -> Result<Reply, String> {
    let fits = match kind {
        Refusal::Reject => reply.code / 100 == 5,
        Refusal::Tempfail => reply.code / 100 == 4,
        Refusal::Disconnect => reply.code >= 400,
    };
    if !fits {
        let wanted = match kind {
            Refusal::Reject => "reject with reply code {}, not 5xx",
            Refusal::Tempfail => "tempfail with reply code {}, not 4xx",
            Refusal::Disconnect => "disconnect with reply code {}, not 4xx or 5xx",
        };
        return Err(wanted.replace("{}", &reply.code.to_string()));
    }
    Ok(reply)
}

/// A header field to add (RFC 5322 2.2): a printable ASCII name without colon, a value on
/// one line; `Name: value` at most 998 octets.
pub fn header_field(name: &str, value: &str) -> Result<(), String> {
    if name.is_empty() || !name.bytes().all(|b| (33..=126).contains(&b) && b != b':') {
        return Err(format!("bad header name {name:?}"));
    }
    if value.chars().any(|c| c == '\r' || c == '\n' || c == '\0') {
        return Err(format!("CR, LF or NUL in the value of header {name}"));
    }
    if name.len() + 2 + value.len() > 998 {
        return Err(format!("header {name} longer than 998 octets"));
    }
    Ok(())
}

/// The lines `on-reply` adds.
pub fn extra_lines(lines: &[String]) -> Result<(), String> {
    if lines.len() > MAX_EXTRA_LINES {
        return Err(format!("more than {MAX_EXTRA_LINES} extra reply lines"));
    }
    lines.iter().try_for_each(|l| text_line(l))
}

/// An EHLO keyword a plugin advertises, with its parameters.
pub fn ehlo_keyword(name: &str, params: Option<&str>) -> Result<(), String> {
    if !is_keyword(name) || name != name.to_ascii_uppercase() {
        return Err(format!("bad EHLO keyword {name:?} (upper-case letters, digits, hyphens)"));
    }
    if Keyword::is_core(name) {
        return Err(format!("EHLO keyword {name} belongs to the server"));
    }
    if params.is_some_and(|p| p.chars().any(|c| c.is_control()) || p.len() > 200) {
        return Err(format!("bad parameters for EHLO keyword {name}"));
    }
    Ok(())
}

/// A verb a plugin answers.
pub fn verb(verb: &str) -> Result<(), String> {
    if !is_keyword(verb) || verb.len() > 20 || !verb.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit()) {
        return Err(format!("bad verb {verb:?} (upper-case letters and digits)"));
    }
    if CORE_VERBS.contains(&verb) {
        return Err(format!("verb {verb} belongs to the server"));
    }
    Ok(())
}

/// A MAIL or RCPT parameter a plugin claims.
pub fn parameter(keyword: &str) -> Result<(), String> {
    if !is_keyword(keyword) || keyword != keyword.to_ascii_uppercase() {
        return Err(format!("bad parameter keyword {keyword:?}"));
    }
    if CORE_PARAMS.contains(&keyword) {
        return Err(format!("parameter {keyword} belongs to the server"));
    }
    Ok(())
}

/// A MIME type pattern a handler subscribes to: `type/subtype`, either may be `*`.
pub fn mime_type(pattern: &str) -> Result<(), String> {
    let ok = pattern.split_once('/').is_some_and(|(a, b)| {
        let token = |s: &str| s == "*" || (!s.is_empty() && s.bytes().all(|c| c.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(&c)));
        token(a) && token(b)
    });
    if ok {
        Ok(())
    } else {
        Err(format!("bad MIME type {pattern:?}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(l: &[&str]) -> Vec<String> {
        l.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn replies() {
        assert!(reply(250, Some((2, 0, 0)), &lines(&["ok"])).is_ok());
        assert!(reply(999, None, &lines(&["x"])).is_err());
        assert!(reply(250, Some((5, 0, 0)), &lines(&["x"])).is_err());
        assert!(reply(250, None, &lines(&["a\r\n250 b"])).is_err());
        assert!(reply(250, None, &lines(&[&"x".repeat(501)])).is_err());
        assert_eq!(reply(250, None, &[]).unwrap().lines, vec![String::new()]);
        let later = reply(450, Some((4, 7, 1)), &lines(&["later"])).unwrap();
        assert_eq!(refusal(Refusal::Tempfail, later.clone()), Ok(Reply::new(450, EnhancedCode::new(4, 7, 1), "later")));
        assert!(refusal(Refusal::Reject, later.clone()).is_err());
        assert!(refusal(Refusal::Tempfail, reply(550, None, &lines(&["x"])).unwrap()).is_err());
        assert!(refusal(Refusal::Disconnect, reply(250, None, &[]).unwrap()).is_err());
    }

    #[test]
    fn headers() {
        assert!(header_field("X-Ok", "fine").is_ok());
        assert!(header_field("Bad:Name", "x").is_err());
        assert!(header_field("X", "a\r\nBcc: evil").is_err());
        assert!(header_field("", "x").is_err());
        assert!(header_field("X", &"v".repeat(996)).is_err());
    }

    #[test]
    fn manifests_cannot_claim_the_core() {
        assert!(ehlo_keyword("XUSR", None).is_ok());
        assert!(ehlo_keyword("DSN", None).unwrap_err().contains("belongs to the server"));
        assert!(ehlo_keyword("xusr", None).is_err());
        assert!(ehlo_keyword("X", Some("a\r\nb")).is_err());
        assert!(verb("VERB").is_ok());
        assert!(verb("DATA").is_err());
        assert!(parameter("XTRACE").is_ok());
        assert!(parameter("ENVID").is_err());
        assert!(mime_type("text/*").is_ok());
        assert!(mime_type("text").is_err());
    }
}
