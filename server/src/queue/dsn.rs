//! Delivery status notifications (RFC 3464, requested as RFC 3461 says): a multipart/report
//! with a human-readable part, a message/delivery-status part, and the original message
//! (RET=FULL, the default for failures) or its header (RET=HDRS, and always for delay and
//! success notices).

use std::fmt::Write as _;

pub use super::spool::Action;
use super::spool::{Envelope, Recipient};
use wasmail_proto::smtp::params::encode_xtext;
use wasmail_proto::smtp::{codes, EnhancedCode};

impl Action {
    fn as_str(self) -> &'static str {
        match self {
            Action::Failed => "failed",
            Action::Delayed => "delayed",
            Action::Delivered => "delivered",
            Action::Relayed => "relayed",
        }
    }

    /// The NOTIFY keyword that asks for it.
    fn keyword(self) -> &'static str {
        match self {
            Action::Failed => "FAILURE",
            Action::Delayed => "DELAY",
            Action::Delivered | Action::Relayed => "SUCCESS",
        }
    }
}

/// Whether the sender of `envelope` gets a notice of `action` for `recipient` (RFC 3461 4.1:
/// without NOTIFY, failures and delays are reported, successes not; NEVER means none). A null
/// reverse path never gets one: notices are sent from `<>`, and that is how loops are avoided
/// (RFC 3461 6.2, RFC 5321 4.5.5).
pub fn wanted(envelope: &Envelope, recipient: &Recipient, action: Action) -> bool {
    if envelope.sender.is_empty() {
        return false;
    }
    match &recipient.notify {
        None => matches!(action, Action::Failed | Action::Delayed),
        Some(keywords) => keywords.iter().any(|k| k == action.keyword()),
    }
}

/// The notice: a whole message in CRLF form, with `Return-Path: <>` on top.
pub fn build(hostname: &str, id: &str, envelope: &Envelope, recipients: &[&Recipient], action: Action, original: &[u8], expiry: u64) -> Vec<u8> {
    let boundary = format!("{id}/{hostname}");
    let now = chrono::Utc::now();
    let date = now.to_rfc2822();
    let subject = match action {
        Action::Failed => "Undelivered Mail Returned to Sender",
        Action::Delayed => "Delayed Mail (still being retried)",
        Action::Delivered => "Successful Mail Delivery Report",
        Action::Relayed => "Relayed Mail Delivery Report",
    };
    let mut m = String::new();
    let _ = write!(
        m,
        "Return-Path: <>\r\nFrom: Mail Delivery System <MAILER-DAEMON@{hostname}>\r\nTo: <{}>\r\nSubject: {subject}\r\nDate: {date}\r\n\
         Message-ID: <{id}.dsn@{hostname}>\r\nAuto-Submitted: auto-replied\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/report; report-type=delivery-status;\r\n\tboundary=\"{boundary}\"\r\n\r\n\
         This is a MIME-encapsulated delivery status notification.\r\n\r\n--{boundary}\r\n\
         Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n",
        envelope.sender
    );
    let _ = write!(m, "This is the mail system at {hostname}.\r\n\r\n");
    match action {
        Action::Failed => m.push_str("Your message could not be delivered to the following recipients:\r\n\r\n"),
        Action::Delayed => {
            let until = chrono::DateTime::from_timestamp(expiry as i64, 0).map(|t| t.to_rfc2822()).unwrap_or_default();
            let _ = write!(m, "Your message has not been delivered yet to the following recipients. Delivery will be\r\ntried again until {until}; you need not send it again.\r\n\r\n");
        }
        Action::Delivered => m.push_str("Your message was delivered to the following recipients:\r\n\r\n"),
        Action::Relayed => {
            m.push_str("Your message was passed on to the following recipients' mail servers, which will not\r\nreport its delivery:\r\n\r\n")
        }
    }
    for r in recipients {
        let _ = write!(m, "  <{}>: {}\r\n", r.address, one_line(r.detail.as_deref().unwrap_or(action.as_str())));
    }
    let arrival = chrono::DateTime::from_timestamp(envelope.arrived as i64, 0).map(|t| t.to_rfc2822()).unwrap_or_default();
    let _ = write!(
        m,
        "\r\n--{boundary}\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; {hostname}\r\nX-Wasmail-Queue-ID: {}\r\n",
        envelope.id
    );
    if let Some(envid) = &envelope.envid {
        // xtext (RFC 3464 2.2.1): whatever an entry holds, no CR or LF reaches the notice.
        let _ = write!(m, "Original-Envelope-Id: {}\r\n", encode_xtext(envid));
    }
    let _ = write!(m, "Arrival-Date: {arrival}\r\n");
    for r in recipients {
        let _ = write!(m, "\r\nFinal-Recipient: rfc822; {}\r\n", r.address);
        if let Some(orcpt) = &r.orcpt {
            let (kind, address) = orcpt.split_once(';').unwrap_or(("rfc822", orcpt));
            let _ = write!(m, "Original-Recipient: {}; {}\r\n", encode_xtext(kind), encode_xtext(address));
        }
        let status = r.status.unwrap_or_else(|| default_status(action));
        let _ = write!(m, "Action: {}\r\nStatus: {status}\r\n", action.as_str());
        if let Some(diagnostic) = &r.diagnostic {
            let _ = write!(m, "Diagnostic-Code: {}\r\n", one_line(diagnostic));
        }
        let _ = write!(m, "Last-Attempt-Date: {date}\r\n");
        if action == Action::Delayed {
            let until = chrono::DateTime::from_timestamp(expiry as i64, 0).map(|t| t.to_rfc2822()).unwrap_or_default();
            let _ = write!(m, "Will-Retry-Until: {until}\r\n");
        }
    }
    let full = action == Action::Failed && envelope.ret.as_deref() != Some("HDRS");
    let returned: &[u8] = if full { original } else { header_of(original) };
    let eight_bit = !returned.is_ascii();
    let _ = write!(
        m,
        "\r\n--{boundary}\r\nContent-Type: {}\r\n{}\r\n",
        if full { "message/rfc822" } else { "text/rfc822-headers" },
        if eight_bit { "Content-Transfer-Encoding: 8bit\r\n" } else { "" }
    );
    let mut out = m.into_bytes();
    out.extend_from_slice(returned);
    if !out.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    out
}

/// RFC 3463 codes when nothing more precise is known.
fn default_status(action: Action) -> EnhancedCode {
    match action {
        Action::Failed => codes::OTHER,
        Action::Delayed => codes::TEMP_OTHER,
        Action::Delivered | Action::Relayed => codes::OK,
    }
}

/// A text for a header-like field: control characters out.
fn one_line(text: &str) -> String {
    text.chars().map(|c| if c.is_control() { ' ' } else { c }).collect()
}

/// The header section of a message (up to and including the blank line, if any).
fn header_of(message: &[u8]) -> &[u8] {
    let mut pos = 0;
    while pos < message.len() {
        let end = memchr::memchr(b'\n', &message[pos..]).map(|i| pos + i + 1).unwrap_or(message.len());
        let line = &message[pos..end];
        if line == b"\r\n" || line == b"\n" {
            return &message[..pos];
        }
        pos = end;
    }
    message
}

#[cfg(test)]
mod tests {
    use super::super::spool::{Mailbox, State};
    use super::*;

    fn envelope(sender: &str, notify: Option<&[&str]>) -> Envelope {
        Envelope {
            id: "Q1".into(),
            arrived: 1_800_000_000,
            sender: sender.into(),
            envid: Some("env-1".into()),
            ret: Some("HDRS".into()),
            client_ip: "192.0.2.1".into(),
            helo: "client.example".into(),
            recipients: vec![Recipient {
                orcpt: Some("rfc822;hunt@localhost".into()),
                notify: notify.map(|n| n.iter().map(|s| s.to_string()).collect()),
                mailboxes: vec![0],
                state: State::Failed,
                detail: Some("gave up after 3 attempts: mailbox unavailable".into()),
                status: Some(codes::TEMP_EXPIRED),
                routed: true,
                ..Recipient::new("hunt@localhost")
            }],
            mailboxes: vec![Mailbox { user: "hunt".into(), folder: None, tag: None, delivered: false }],
            attempts: 3,
            next_attempt: 0,
            delay_warned: false,
        }
    }

    #[test]
    fn who_gets_what() {
        let default = envelope("a@b", None);
        let r = &default.recipients[0];
        assert!(wanted(&default, r, Action::Failed) && wanted(&default, r, Action::Delayed) && !wanted(&default, r, Action::Delivered));
        let never = envelope("a@b", Some(&["NEVER"]));
        assert!(!wanted(&never, &never.recipients[0], Action::Failed));
        let success = envelope("a@b", Some(&["SUCCESS"]));
        assert!(wanted(&success, &success.recipients[0], Action::Delivered) && !wanted(&success, &success.recipients[0], Action::Failed));
        let null = envelope("", None);
        assert!(!wanted(&null, &null.recipients[0], Action::Failed));
    }

    #[test]
    fn a_failure_notice_has_the_rfc_3464_fields() {
        let e = envelope("daniel@client.example", None);
        let original = b"Subject: hello\r\nFrom: daniel@client.example\r\n\r\nbody\r\n";
        let text = String::from_utf8(build("mx.test", "Q2", &e, &[&e.recipients[0]], Action::Failed, original, 0)).unwrap();
        for field in [
            "Return-Path: <>\r\n",
            "To: <daniel@client.example>\r\n",
            "Auto-Submitted: auto-replied\r\n",
            "Content-Type: multipart/report; report-type=delivery-status;",
            "Reporting-MTA: dns; mx.test\r\n",
            "Original-Envelope-Id: env-1\r\n",
            "Final-Recipient: rfc822; hunt@localhost\r\n",
            "Original-Recipient: rfc822; hunt@localhost\r\n",
            "Action: failed\r\nStatus: 4.4.7\r\n",
            "Content-Type: text/rfc822-headers\r\n\r\nSubject: hello\r\nFrom: daniel@client.example\r\n\r\n--Q2/mx.test--\r\n",
        ] {
            assert!(text.contains(field), "{field:?} missing from\n{text}");
        }
        assert!(!text.contains("body\r\n"), "RET=HDRS returns the header only");
    }
}
