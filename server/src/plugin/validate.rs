//! Never trust a value from a guest: every manifest, verdict, reply, header and line a plugin
//! returns is checked here before the server uses it. A bad value is a plugin failure of kind
//! "invalid", handled by the plugin's policy.

use wasmail_proto::plugin::{self as check, Refusal};
use wasmail_proto::reply::Reply;

use super::bindings::types as wit;

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

/// Checks a manifest; the error says what is wrong with it.
pub fn manifest(m: &wit::Manifest) -> Result<(), String> {
    if m.name.is_empty() || m.name.len() > 64 || m.name.chars().any(|c| c.is_control()) {
        return Err(format!("bad plugin name {:?}", m.name));
    }
    for k in &m.ehlo_keywords {
        check::ehlo_keyword(&k.name, k.params.as_deref())?;
    }
    for v in &m.verbs {
        check::verb(v)?;
    }
    for p in m.mail_params.iter().chain(&m.rcpt_params) {
        check::parameter(p)?;
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
        check::mime_type(t)?;
    }
    Ok(())
}

/// Checks a reply and converts it.
pub fn reply(r: &wit::Reply) -> Result<Reply, String> {
    check::reply(r.code, r.enhanced.map(|e| (e.class, e.subject, e.detail)), &r.lines)
}

/// Checks a verdict and converts it.
pub fn verdict(v: &wit::Verdict) -> Result<Decision, String> {
    Ok(match v {
        wit::Verdict::Continue => Decision::Continue,
        wit::Verdict::Accept => Decision::Accept,
        wit::Verdict::Discard => Decision::Discard,
        wit::Verdict::Reject(r) => Decision::Refuse(check::refusal(Refusal::Reject, reply(r)?)?),
        wit::Verdict::Tempfail(r) => Decision::Refuse(check::refusal(Refusal::Tempfail, reply(r)?)?),
        wit::Verdict::Disconnect(r) => Decision::Disconnect(check::refusal(Refusal::Disconnect, reply(r)?)?),
    })
}

/// Checks a header field a plugin wants to add.
pub fn header(h: &wit::Header) -> Result<(), String> {
    check::header_field(&h.name, &h.value)
}

/// Checks the lines `on-reply` wants to add.
pub fn extra_lines(lines: &[String]) -> Result<(), String> {
    check::extra_lines(lines)
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

    use wasmail_proto::reply::EnhancedCode;

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
