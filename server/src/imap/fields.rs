//! What SORT and THREAD compare, read once from a message's header and kept with its rendered
//! structure (see `cache`): the sent date, the base subject (RFC 5256 2.1) and whether the
//! subject marked a reply or forward, the first address of From, To and Cc as SORT and
//! SORT=DISPLAY compare them (RFC 5256 3, RFC 5957), the Message-ID and the references that
//! THREAD=REFERENCES links (RFC 5256 4).
//!
//! Strings that RFC 5256 compares with `i;ascii-casemap` are kept with ASCII letters in upper
//! case, so that comparing them is comparing octets.

use super::structure::{first_address, Address, Parsed};

/// The sort and thread keys of one message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fields {
    /// The Date: field as seconds since the epoch in UTC; None if missing or unreadable
    /// (then INTERNALDATE stands for it, RFC 5256 2.2).
    pub sent: Option<i64>,
    /// The base subject, ASCII upper case.
    pub subject: String,
    /// The subject said Re:, Fwd:, (fwd) or [fwd: ...] (RFC 5256 4, step 5).
    pub reply: bool,
    /// addr-mailbox of the first From, To and Cc address (a group's name for a group),
    /// ASCII upper case.
    pub from: String,
    pub to: String,
    pub cc: String,
    /// The display name of the first From and To address, decoded, else its address
    /// (RFC 5957), lower case.
    pub display_from: String,
    pub display_to: String,
    /// The Message-ID, without its angle brackets; None if there is no valid one.
    pub message_id: Option<String>,
    /// The Message-IDs of References, or else the first of In-Reply-To.
    pub references: Vec<String>,
}

impl Fields {
    pub fn of(parsed: &Parsed<'_>) -> Fields {
        let field = |name: &str| parsed.field(name).unwrap_or_default();
        let (subject, reply) = base_subject(&field("subject"));
        let sent = chrono::DateTime::parse_from_rfc2822(field("date").trim()).ok().map(|d| d.timestamp());
        let first = |name: &str| first_address(&field(name));
        let mailbox = |name: &str| match first(name) {
            Some(Address::Mailbox { local, .. }) => local.to_ascii_uppercase(),
            Some(Address::Group(name)) => name.to_ascii_uppercase(),
            None => String::new(),
        };
        let display = |name: &str| {
            match first(name) {
                Some(Address::Mailbox { name: Some(display), .. }) => wasmail_mime::words::decode(&display),
                Some(Address::Mailbox { local, domain: Some(domain), .. }) => format!("{local}@{domain}"),
                Some(Address::Mailbox { local, domain: None, .. }) => local,
                Some(Address::Group(name)) => name,
                None => String::new(),
            }
            .to_lowercase()
        };
        let mut references = message_ids(&field("references"));
        if references.is_empty() {
            references = message_ids(&field("in-reply-to")).into_iter().take(1).collect();
        }
        Fields {
            sent,
            subject,
            reply,
            from: mailbox("from"),
            to: mailbox("to"),
            cc: mailbox("cc"),
            display_from: display("from"),
            display_to: display("to"),
            message_id: message_ids(&field("message-id")).into_iter().next(),
            references,
        }
    }
}

/// The valid Message-IDs of a field, in order, without angle brackets: `<left@right>` with
/// both sides present (comments and anything else between them are skipped).
fn message_ids(value: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = value;
    while let Some(open) = rest.find('<') {
        let Some(close) = rest[open..].find('>') else { break };
        let id = &rest[open + 1..open + close];
        if let Some((left, right)) = id.split_once('@') {
            if !left.is_empty() && !right.is_empty() && !id.chars().any(|c| c.is_whitespace() || c == '<') {
                out.push(id.to_string());
            }
        }
        rest = &rest[open + close + 1..];
    }
    out
}

/// The base subject of RFC 5256 2.1, ASCII upper case, and whether taking it removed a reply
/// or forward marker.
pub fn base_subject(subject: &str) -> (String, bool) {
    // (1) RFC 2047 words decoded; tabs and line breaks are spaces, and runs of spaces one.
    let decoded = wasmail_mime::words::decode(subject);
    let mut text = String::with_capacity(decoded.len());
    for c in decoded.chars() {
        let c = if matches!(c, '\t' | '\r' | '\n') { ' ' } else { c };
        if !(c == ' ' && text.ends_with(' ')) {
            text.push(c);
        }
    }
    let mut reply = false;
    let mut s: &str = &text;
    loop {
        // (2) Trailing "(fwd)" and spaces, as often as they come.
        loop {
            let trimmed = s.trim_end_matches(' ');
            match trimmed.len().checked_sub(5).filter(|&at| trimmed.is_char_boundary(at)) {
                Some(at) if trimmed[at..].eq_ignore_ascii_case("(fwd)") => {
                    s = &trimmed[..at];
                    reply = true;
                }
                _ => {
                    s = trimmed;
                    break;
                }
            }
        }
        // (3)-(5) Leading `*subj-blob subj-refwd` or spaces; then a leading blob, unless
        // nothing would be left; until neither is there.
        loop {
            if let Some(rest) = s.strip_prefix(' ') {
                s = rest;
            } else if let Some(rest) = strip_refwd_leader(s) {
                s = rest;
                reply = true;
            } else if let Some(rest) = strip_blob(s).filter(|rest| !rest.is_empty()) {
                s = rest;
            } else {
                break;
            }
        }
        // (6) "[fwd:" ... "]" around it all: take it off and start again.
        if s.len() >= 6 && s.get(..5).is_some_and(|head| head.eq_ignore_ascii_case("[fwd:")) && s.ends_with(']') {
            s = &s[5..s.len() - 1];
            reply = true;
            continue;
        }
        break;
    }
    (s.to_ascii_uppercase(), reply)
}

/// `subj-blob = "[" *BLOBCHAR "]" *WSP`: what follows it, if `s` starts with one.
fn strip_blob(s: &str) -> Option<&str> {
    let rest = s.strip_prefix('[')?;
    let close = rest.find([']', '['])?;
    if rest.as_bytes()[close] != b']' {
        return None;
    }
    Some(rest[close + 1..].trim_start_matches(' '))
}

/// `*subj-blob subj-refwd`, where `subj-refwd = ("re" / ("fw" ["d"])) *WSP [subj-blob] ":"`:
/// what follows it, if `s` starts with one.
fn strip_refwd_leader(s: &str) -> Option<&str> {
    let mut s = s;
    loop {
        if let Some(rest) = strip_refwd(s) {
            return Some(rest);
        }
        s = strip_blob(s)?;
    }
}

fn strip_refwd(s: &str) -> Option<&str> {
    let lower = |n: usize| s.get(..n).map(str::to_ascii_lowercase);
    let rest = if lower(3).as_deref() == Some("fwd") {
        &s[3..]
    } else if lower(2).as_deref() == Some("fw") || lower(2).as_deref() == Some("re") {
        &s[2..]
    } else {
        return None;
    };
    let rest = rest.trim_start_matches(' ');
    let rest = strip_blob(rest).unwrap_or(rest);
    rest.strip_prefix(':')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_subjects_of_rfc_5256_and_imaptest() {
        let cases = [
            ("a", "A", false),
            ("Re: [FWD: c]", "C", true),
            ("[foo] Fwd: [bar] Re: fw: b (fWd)  (fwd)", "B", true),
            ("[xyz]", "[XYZ]", false),
            ("[list] hello", "HELLO", false),
            ("=?iso-8859-1?q?_?=", "", false),
            ("=?iso-8859-1?q?RE:_C?=", "C", true),
            ("=?us-ascii?b?UmU6IGM=?=", "C", true),
            ("Ad: Re: Ad: Re: Ad: x", "AD: RE: AD: RE: AD: X", false),
            ("re: [fwd: [fwd: re: [fwd: babylon]]]", "BABYLON", true),
            ("Re:   spaced\tout", "SPACED OUT", true),
            ("b (a)", "B (A)", false),
            ("Rebus", "REBUS", false),
            ("Über (fwd)", "ÜBER", true),
            ("grüße", "GRüßE", false),
            ("[fwü]", "[FWü]", false),
            ("rü: x", "Rü: X", false),
            ("ü(fwd)", "ü", true),
        ];
        for (subject, base, reply) in cases {
            assert_eq!(base_subject(subject), (base.to_string(), reply), "{subject:?}");
        }
    }

    #[test]
    fn any_subject_has_a_base_subject() {
        // A small xorshift over an alphabet of the grammar's characters and multi-octet ones:
        // the same inputs every run, none may panic.
        let alphabet: Vec<char> = "rReEfFwWdD:[]() \t=?üß€".chars().collect();
        let mut state = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..20_000 {
            let mut subject = String::new();
            for _ in 0..(state % 24) {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                subject.push(alphabet[(state % alphabet.len() as u64) as usize]);
            }
            let (base, _) = base_subject(&subject);
            assert!(base.len() <= subject.len() + 8, "{subject:?}");
        }
    }

    #[test]
    fn message_ids_and_references() {
        assert_eq!(message_ids("<a@b> (comment) <c@d>\r\n <bad> <e@f"), ["a@b", "c@d"]);
        let content = b"Message-ID: <m@x>\r\nIn-Reply-To: <p@x> <q@x>\r\nFrom: \"Foo Bar\" <foo@x>\r\nTo: team: a@x, b@x;\r\nSubject: Re: hi\r\nDate: Tue, 3 Mar 2026 10:00:00 +0100\r\n\r\nbody\r\n";
        let fields = Fields::of(&Parsed::new(content));
        assert_eq!(fields.message_id.as_deref(), Some("m@x"));
        assert_eq!(fields.references, ["p@x"], "the first of In-Reply-To when there are no References");
        assert_eq!((fields.from.as_str(), fields.display_from.as_str()), ("FOO", "foo bar"));
        assert_eq!((fields.to.as_str(), fields.display_to.as_str()), ("TEAM", "team"));
        assert_eq!((fields.subject.as_str(), fields.reply, fields.sent), ("HI", true, Some(1772528400)));
    }
}
