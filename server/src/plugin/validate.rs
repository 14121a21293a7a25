//! Never trust a value from a guest: every manifest, verdict, reply, header and line a plugin
//! returns is checked here before the server uses it. A bad value is a plugin failure of kind
//! "invalid", handled by the plugin's policy.

use super::bindings::types as wit;
use crate::smtp::proto::{EnhancedCode, Reply};

/// What a verdict means for the session, after checking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Continue,
    Accept,
    /// Reject (5xx) or tempfail (4xx): answer with this reply.
    Refuse(Reply),
    /// Answer with this reply and close.
    Disconnect(Reply),
    Discard,
}

/// The built-in verbs: a plugin cannot take them over.
const CORE_VERBS: &[&str] = &[
    "HELO", "EHLO", "MAIL", "RCPT", "DATA", "BDAT", "RSET", "NOOP", "QUIT", "VRFY", "EXPN", "HELP", "ETRN", "SEND", "SOML", "SAML", "TURN",
    "STARTTLS", "AUTH",
];

/// The built-in EHLO keywords.
const CORE_KEYWORDS: &[&str] = &[
    "PIPELINING",
    "SIZE",
    "8BITMIME",
    "BINARYMIME",
    "CHUNKING",
    "ENHANCEDSTATUSCODES",
    "DSN",
    "ETRN",
    "SMTPUTF8",
    "HELP",
    "VRFY",
    "EXPN",
    "STARTTLS",
    "AUTH",
];

/// MAIL and RCPT parameters the core handles.
const CORE_PARAMS: &[&str] = &["SIZE", "BODY", "SMTPUTF8", "RET", "ENVID", "NOTIFY", "ORCPT", "AUTH"];

const MAX_LINES: usize = 100;
const MAX_LINE: usize = 500;

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

/// Checks a manifest; the error says what is wrong with it.
pub fn manifest(m: &wit::Manifest) -> Result<(), String> {
    if m.name.is_empty() || m.name.len() > 64 || m.name.chars().any(|c| c.is_control()) {
        return Err(format!("bad plugin name {:?}", m.name));
    }
    for k in &m.ehlo_keywords {
        if !is_keyword(&k.name) || k.name != k.name.to_ascii_uppercase() {
            return Err(format!("bad EHLO keyword {:?} (upper-case letters, digits, hyphens)", k.name));
        }
        if CORE_KEYWORDS.contains(&k.name.as_str()) {
            return Err(format!("EHLO keyword {} belongs to the server", k.name));
        }
        if let Some(params) = &k.params {
            if params.chars().any(|c| c.is_control()) || params.len() > 200 {
                return Err(format!("bad parameters for EHLO keyword {}", k.name));
            }
        }
    }
    for v in &m.verbs {
        if !is_keyword(v) || v.len() > 20 || !v.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit()) {
            return Err(format!("bad verb {v:?} (upper-case letters and digits)"));
        }
        if CORE_VERBS.contains(&v.as_str()) {
            return Err(format!("verb {v} belongs to the server"));
        }
    }
    for p in m.mail_params.iter().chain(&m.rcpt_params) {
        if !is_keyword(p) || *p != p.to_ascii_uppercase() {
            return Err(format!("bad parameter keyword {p:?}"));
        }
        if CORE_PARAMS.contains(&p.as_str()) {
            return Err(format!("parameter {p} belongs to the server"));
        }
    }
    if m.activated_by_verb && m.verbs.is_empty() {
        return Err("activated-by-verb needs at least one verb".into());
    }
    if !m.mail_params.is_empty() && !m.hooks.contains(&wit::Hook::MailFrom) {
        return Err("claims MAIL parameters but does not ask for the mail-from hook".into());
    }
    if !m.rcpt_params.is_empty() && !m.hooks.contains(&wit::Hook::RcptTo) {
        return Err("claims RCPT parameters but does not ask for the rcpt-to hook".into());
    }
    for t in &m.mime_types {
        let ok = t.split_once('/').is_some_and(|(a, b)| {
            let token = |s: &str| s == "*" || (!s.is_empty() && s.bytes().all(|c| c.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(&c)));
            token(a) && token(b)
        });
        if !ok {
            return Err(format!("bad MIME type {t:?}"));
        }
    }
    Ok(())
}

/// Checks a reply and converts it.
pub fn reply(r: &wit::Reply) -> Result<Reply, String> {
    if !(200..=599).contains(&r.code) {
        return Err(format!("reply code {} is not between 200 and 599", r.code));
    }
    if r.lines.len() > MAX_LINES {
        return Err(format!("more than {MAX_LINES} reply lines"));
    }
    for line in &r.lines {
        text_line(line)?;
    }
    let enhanced = match r.enhanced {
        None => None,
        Some(e) => {
            if u16::from(e.class) != r.code / 100 || e.subject > 999 || e.detail > 999 {
                return Err(format!("enhanced code {}.{}.{} does not fit reply code {}", e.class, e.subject, e.detail, r.code));
            }
            Some(EnhancedCode::new(e.class, e.subject, e.detail))
        }
    };
    let lines = if r.lines.is_empty() { vec![String::new()] } else { r.lines.clone() };
    Ok(Reply { code: r.code, enhanced, lines })
}

/// Checks a verdict and converts it.
pub fn verdict(v: &wit::Verdict) -> Result<Decision, String> {
    Ok(match v {
        wit::Verdict::Continue => Decision::Continue,
        wit::Verdict::Accept => Decision::Accept,
        wit::Verdict::Discard => Decision::Discard,
        wit::Verdict::Reject(r) => {
            let r = reply(r)?;
            if r.code / 100 != 5 {
                return Err(format!("reject with reply code {}, not 5xx", r.code));
            }
            Decision::Refuse(r)
        }
        wit::Verdict::Tempfail(r) => {
            let r = reply(r)?;
            if r.code / 100 != 4 {
                return Err(format!("tempfail with reply code {}, not 4xx", r.code));
            }
            Decision::Refuse(r)
        }
        wit::Verdict::Disconnect(r) => {
            let r = reply(r)?;
            if r.code < 400 {
                return Err(format!("disconnect with reply code {}, not 4xx or 5xx", r.code));
            }
            Decision::Disconnect(r)
        }
    })
}

/// Checks a header field a plugin wants to add (RFC 5322 2.2: printable ASCII name without
/// colon; the value on one line, which the server writes as `Name: value`).
pub fn header(h: &wit::Header) -> Result<(), String> {
    if h.name.is_empty() || !h.name.bytes().all(|b| (33..=126).contains(&b) && b != b':') {
        return Err(format!("bad header name {:?}", h.name));
    }
    if h.value.chars().any(|c| c == '\r' || c == '\n' || c == '\0') {
        return Err(format!("CR, LF or NUL in the value of header {}", h.name));
    }
    if h.name.len() + 2 + h.value.len() > 998 {
        return Err(format!("header {} longer than 998 octets", h.name));
    }
    Ok(())
}

/// Checks the lines `on-reply` wants to add.
pub fn extra_lines(lines: &[String]) -> Result<(), String> {
    if lines.len() > 20 {
        return Err("more than 20 extra reply lines".into());
    }
    lines.iter().try_for_each(|l| text_line(l))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(code: u16, enhanced: Option<(u8, u16, u16)>, lines: &[&str]) -> wit::Reply {
        wit::Reply {
            code,
            enhanced: enhanced.map(|(class, subject, detail)| wit::EnhancedCode { class, subject, detail }),
            lines: lines.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn replies() {
        assert!(reply(&r(250, Some((2, 0, 0)), &["ok"])).is_ok());
        assert!(reply(&r(999, None, &["x"])).is_err());
        assert!(reply(&r(250, Some((5, 0, 0)), &["x"])).is_err());
        assert!(reply(&r(250, None, &["a\r\n250 b"])).is_err());
        assert!(reply(&r(250, None, &[&"x".repeat(501)])).is_err());
        assert!(verdict(&wit::Verdict::Reject(r(451, None, &["x"]))).is_err());
        assert!(verdict(&wit::Verdict::Tempfail(r(550, None, &["x"]))).is_err());
        assert_eq!(
            verdict(&wit::Verdict::Tempfail(r(450, Some((4, 7, 1)), &["later"]))).unwrap(),
            Decision::Refuse(Reply::new(450, EnhancedCode::new(4, 7, 1), "later"))
        );
    }

    #[test]
    fn headers() {
        assert!(header(&wit::Header { name: "X-Ok".into(), value: "fine".into() }).is_ok());
        assert!(header(&wit::Header { name: "Bad:Name".into(), value: "x".into() }).is_err());
        assert!(header(&wit::Header { name: "X".into(), value: "a\r\nBcc: evil".into() }).is_err());
        assert!(header(&wit::Header { name: "".into(), value: "x".into() }).is_err());
    }
}
