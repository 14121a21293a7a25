//! The checks the host applies to every value a plugin returns (`wasmail_proto::plugin`, which
//! the plugin host calls on the WIT values), on arbitrary replies, verdict classes, header
//! fields, extra reply lines and manifest claims. Whatever passes must be safe to use: a reply
//! written to the wire is exactly its lines, each `CODE-`/`CODE ` prefixed and CRLF-ended, so a
//! plugin cannot smuggle a reply line or a command; a header is one line of at most 998
//! octets; a claimed keyword, verb or parameter is a token the core does not answer.

#![no_main]

use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use wasmail_proto::plugin::{self as check, Refusal};
use wasmail_proto::reply::Reply;
use wasmail_proto::smtp::keywords::{Keyword, CORE_PARAMS, CORE_VERBS};

#[derive(Debug, Arbitrary)]
enum Kind {
    Reject,
    Tempfail,
    Disconnect,
}

#[derive(Debug, Arbitrary)]
struct Input {
    code: u16,
    enhanced: Option<(u8, u16, u16)>,
    lines: Vec<String>,
    kind: Kind,
    header: (String, String),
    extra: Vec<String>,
    keyword: (String, Option<String>),
    verb: String,
    parameter: String,
    mime_type: String,
}

/// A reply on the wire must be its lines and nothing else.
fn check_wire(reply: &Reply) {
    let bytes = reply.to_bytes();
    let text = String::from_utf8(bytes).expect("replies are text");
    let lines: Vec<&str> = text.split_terminator("\r\n").collect();
    assert_eq!(lines.len(), reply.lines.len().max(1), "{text:?}");
    for (i, line) in lines.iter().enumerate() {
        assert!(!line.contains('\r') && !line.contains('\n'), "{text:?}");
        let sep = if i + 1 == lines.len() { ' ' } else { '-' };
        assert!(line.starts_with(&format!("{}{sep}", reply.code)), "{text:?}");
    }
}

fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

fuzz_target!(|input: Input| {
    if let Ok(reply) = check::reply(input.code, input.enhanced, &input.lines) {
        assert!((200..=599).contains(&reply.code));
        assert!(reply.enhanced.is_none_or(|e| u16::from(e.class) == reply.code / 100));
        check_wire(&reply);
        let kind = match input.kind {
            Kind::Reject => Refusal::Reject,
            Kind::Tempfail => Refusal::Tempfail,
            Kind::Disconnect => Refusal::Disconnect,
        };
        if let Ok(refusal) = check::refusal(kind, reply) {
            assert!((400..=599).contains(&refusal.code));
            check_wire(&refusal);
        }
    }
    let (name, value) = &input.header;
    if check::header_field(name, value).is_ok() {
        let line = format!("{name}: {value}");
        assert!(line.len() <= 998 && !line.contains('\r') && !line.contains('\n'));
    }
    if check::extra_lines(&input.extra).is_ok() {
        assert!(input.extra.iter().all(|l| !l.chars().any(char::is_control)));
    }
    let (keyword, params) = &input.keyword;
    if check::ehlo_keyword(keyword, params.as_deref()).is_ok() {
        assert!(is_token(keyword) && !Keyword::is_core(keyword));
    }
    if check::verb(&input.verb).is_ok() {
        assert!(is_token(&input.verb) && !CORE_VERBS.contains(&input.verb.as_str()));
    }
    if check::parameter(&input.parameter).is_ok() {
        assert!(is_token(&input.parameter) && !CORE_PARAMS.contains(&input.parameter.as_str()));
    }
    let _ = check::mime_type(&input.mime_type);
});
