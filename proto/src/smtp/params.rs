//! ESMTP parameters of MAIL and RCPT (RFC 5321 4.1.2 `esmtp-param`): SIZE (RFC 1870),
//! BODY (RFC 6152, RFC 3030), SMTPUTF8 (RFC 6531), RET/ENVID (RFC 3461 4.3-4.4) on MAIL;
//! NOTIFY/ORCPT (RFC 3461 4.1-4.2) on RCPT. Parameters no built-in extension knows are kept
//! in `extra` so that the session (and later a plugin that claims them) decides; the core
//! answers 555 5.5.4 for any left unclaimed.

use crate::address::{parse_mailbox, AddressError};

/// The BODY parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body {
    SevenBit,
    EightBitMime,
    /// Only with BDAT (RFC 3030 3): DATA cannot carry binary content.
    BinaryMime,
}

/// RET: what a failure DSN returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ret {
    Full,
    Hdrs,
}

/// NOTIFY: when a DSN is wanted for a recipient. `Never` excludes the others (RFC 3461 4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Notify {
    pub never: bool,
    pub success: bool,
    pub failure: bool,
    pub delay: bool,
}

/// ORCPT: the original recipient, `addr-type;xtext` with the xtext decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OriginalRecipient {
    pub addr_type: String,
    pub address: String,
}

/// A parameter no built-in extension defines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtraParam {
    /// The keyword in upper case.
    pub keyword: String,
    pub value: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MailParams {
    /// Declared message size in octets, checked against the limit at MAIL time.
    pub size: Option<u64>,
    pub body: Option<Body>,
    pub smtputf8: bool,
    pub ret: Option<Ret>,
    /// ENVID, xtext-decoded.
    pub envid: Option<String>,
    pub extra: Vec<ExtraParam>,
}

impl MailParams {
    /// BODY=BINARYMIME: the content comes in BDAT chunks only, never DATA (RFC 3030 3).
    pub fn is_binary(&self) -> bool {
        self.body == Some(Body::BinaryMime)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RcptParams {
    pub notify: Option<Notify>,
    pub orcpt: Option<OriginalRecipient>,
    pub extra: Vec<ExtraParam>,
}

/// A parameter that is known but malformed or repeated: 501 5.5.4.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamError(pub String);

impl From<AddressError> for ParamError {
    fn from(e: AddressError) -> Self {
        ParamError(e.0.to_string())
    }
}

/// Splits ` KEY=VALUE KEY2` into keyword/value pairs, checking the keyword grammar.
fn split_params(input: &str) -> Result<Vec<(String, Option<&str>)>, ParamError> {
    let mut out = Vec::new();
    for word in input.split(' ').filter(|w| !w.is_empty()) {
        let (keyword, value) = match word.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (word, None),
        };
        let valid_keyword =
            keyword.chars().next().is_some_and(|c| c.is_ascii_alphanumeric()) && keyword.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
        if !valid_keyword {
            return Err(ParamError(format!("bad parameter keyword {keyword:?}")));
        }
        if let Some(value) = value {
            if value.is_empty() || value.chars().any(|c| c.is_control() || c == '=') {
                return Err(ParamError(format!("bad value for {keyword}")));
            }
        }
        let keyword = keyword.to_ascii_uppercase();
        match out.iter().find(|(k, _)| *k == keyword) {
            // Python's smtplib repeats SMTPUTF8 and BODY when the caller gave them too; an
            // exact repeat says nothing new, a different value is a contradiction.
            Some((_, earlier)) if *earlier == value => continue,
            Some(_) => return Err(ParamError(format!("{keyword} given twice with different values"))),
            None => out.push((keyword, value)),
        }
    }
    Ok(out)
}

fn no_value(keyword: &str, value: Option<&str>) -> Result<(), ParamError> {
    match value {
        None => Ok(()),
        Some(_) => Err(ParamError(format!("{keyword} takes no value"))),
    }
}

fn needs_value<'a>(keyword: &str, value: Option<&'a str>) -> Result<&'a str, ParamError> {
    value.ok_or_else(|| ParamError(format!("{keyword} needs a value")))
}

pub fn parse_mail_params(input: &str) -> Result<MailParams, ParamError> {
    let mut params = MailParams::default();
    for (keyword, value) in split_params(input)? {
        match keyword.as_str() {
            "SIZE" => {
                let v = needs_value(&keyword, value)?;
                if v.len() > 20 || !v.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(ParamError("SIZE must be a number".into()));
                }
                // A size beyond u64 is certainly beyond the limit.
                params.size = Some(v.parse().unwrap_or(u64::MAX));
            }
            "BODY" => {
                params.body = Some(match needs_value(&keyword, value)?.to_ascii_uppercase().as_str() {
                    "7BIT" => Body::SevenBit,
                    "8BITMIME" => Body::EightBitMime,
                    "BINARYMIME" => Body::BinaryMime,
                    _ => return Err(ParamError("BODY must be 7BIT, 8BITMIME or BINARYMIME".into())),
                });
            }
            "SMTPUTF8" => {
                no_value(&keyword, value)?;
                params.smtputf8 = true;
            }
            "RET" => {
                params.ret = Some(match needs_value(&keyword, value)?.to_ascii_uppercase().as_str() {
                    "FULL" => Ret::Full,
                    "HDRS" => Ret::Hdrs,
                    _ => return Err(ParamError("RET must be FULL or HDRS".into())),
                });
            }
            "ENVID" => {
                let envid = decode_xtext(needs_value(&keyword, value)?)?;
                // RFC 3461 4.4: at most 100 characters.
                if envid.len() > 100 {
                    return Err(ParamError("ENVID longer than 100 characters".into()));
                }
                params.envid = Some(envid);
            }
            _ => params.extra.push(ExtraParam { keyword, value: value.map(str::to_string) }),
        }
    }
    Ok(params)
}

pub fn parse_rcpt_params(input: &str) -> Result<RcptParams, ParamError> {
    let mut params = RcptParams::default();
    for (keyword, value) in split_params(input)? {
        match keyword.as_str() {
            "NOTIFY" => {
                let mut notify = Notify::default();
                for item in needs_value(&keyword, value)?.split(',') {
                    let flag = match item.to_ascii_uppercase().as_str() {
                        "NEVER" => &mut notify.never,
                        "SUCCESS" => &mut notify.success,
                        "FAILURE" => &mut notify.failure,
                        "DELAY" => &mut notify.delay,
                        _ => return Err(ParamError(format!("unknown NOTIFY value {item:?}"))),
                    };
                    if *flag {
                        return Err(ParamError(format!("NOTIFY value {item} given twice")));
                    }
                    *flag = true;
                }
                if notify.never && (notify.success || notify.failure || notify.delay) {
                    return Err(ParamError("NOTIFY=NEVER cannot be combined".into()));
                }
                params.notify = Some(notify);
            }
            "ORCPT" => {
                let (addr_type, xtext) =
                    needs_value(&keyword, value)?.split_once(';').ok_or_else(|| ParamError("ORCPT must be addr-type;address".into()))?;
                if addr_type.is_empty() || !addr_type.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
                    return Err(ParamError("bad ORCPT address type".into()));
                }
                let address = decode_xtext(xtext)?;
                if addr_type.eq_ignore_ascii_case("rfc822") {
                    let (_, rest) = parse_mailbox(&address)?;
                    if !rest.is_empty() {
                        return Err(ParamError("bad ORCPT address".into()));
                    }
                }
                params.orcpt = Some(OriginalRecipient { addr_type: addr_type.to_string(), address });
            }
            _ => params.extra.push(ExtraParam { keyword, value: value.map(str::to_string) }),
        }
    }
    Ok(params)
}

/// Decodes RFC 3461 4 xtext: `+HH` for the excluded characters. Non-ASCII characters pass
/// through, as RFC 6533's unitext allows with SMTPUTF8. A value that decodes to a control
/// character (CR, LF, NUL, ...) is refused: RFC 3461 4 allows printable characters only, and
/// the decoded value goes into the MAIL command relayed to the next hop and into the
/// notices this server writes, where a CR LF would start a command or a header field of the
/// client's choosing.
pub fn decode_xtext(input: &str) -> Result<String, ParamError> {
    let bytes = input.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => {
                let hex = input.get(i + 1..i + 3).filter(|h| h.bytes().all(|b| b.is_ascii_hexdigit()));
                let hex = hex.ok_or_else(|| ParamError("bad xtext escape".into()))?;
                out.push(u8::from_str_radix(hex, 16).expect("checked hex digits"));
                i += 3;
            }
            b'=' => return Err(ParamError("'=' must be escaped in xtext".into())),
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    if out.iter().any(|&b| b < 0x20 || b == 0x7f) {
        return Err(ParamError("xtext decodes to a control character".into()));
    }
    String::from_utf8(out).map_err(|_| ParamError("xtext is not UTF-8".into()))
}

/// Encodes a string as xtext (for passing ENVID/ORCPT on and for DSNs).
pub fn encode_xtext(input: &str) -> String {
    let mut out = String::with_capacity(input.len());
    for b in input.bytes() {
        if (33..=126).contains(&b) && b != b'+' && b != b'=' {
            out.push(b as char);
        } else {
            out.push_str(&format!("+{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mail_params_are_parsed_and_validated() {
        let p = parse_mail_params(" SIZE=4096 BODY=8bitmime SMTPUTF8 RET=HDRS ENVID=QQ+2B314").unwrap();
        assert_eq!(p.size, Some(4096));
        assert_eq!(p.body, Some(Body::EightBitMime));
        assert!(p.smtputf8);
        assert_eq!(p.ret, Some(Ret::Hdrs));
        assert_eq!(p.envid.as_deref(), Some("QQ+314"));
        assert!(p.extra.is_empty());

        assert!(parse_mail_params(" SMTPUTF8 BODY=8BITMIME SMTPUTF8 BODY=8BITMIME").unwrap().smtputf8);

        let p = parse_mail_params(" XFOO=1 AUTH=<>").unwrap();
        assert_eq!(p.extra.len(), 2);
        assert_eq!(p.extra[0].keyword, "XFOO");

        for bad in [
            " SIZE=abc",
            " SIZE",
            " BODY=9BIT",
            " RET=ALL",
            " SIZE=1 SIZE=2",
            " SMTPUTF8=yes",
            " ENVID=a+zz",
            " =x",
            " ENVID=abc+0D+0ARSET+0D+0A",
            " ENVID=a+00",
            " ENVID=a+7F",
        ] {
            assert!(parse_mail_params(bad).is_err(), "{bad:?} should fail");
        }
    }

    #[test]
    fn rcpt_params_are_parsed_and_validated() {
        let p = parse_rcpt_params(" NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;tyler+2Bx@localhost").unwrap();
        let notify = p.notify.unwrap();
        assert!(notify.success && notify.failure && !notify.delay && !notify.never);
        let orcpt = p.orcpt.unwrap();
        assert_eq!(orcpt.addr_type, "rfc822");
        assert_eq!(orcpt.address, "tyler+x@localhost");
        for bad in [
            " NOTIFY=NEVER,SUCCESS",
            " NOTIFY=SOMETIMES",
            " NOTIFY=DELAY,DELAY",
            " ORCPT=tyler",
            " ORCPT=rfc822;not-an-address",
            " ORCPT=x-made-up;a+0D+0ABcc:+20victim@example.org",
        ] {
            assert!(parse_rcpt_params(bad).is_err(), "{bad:?} should fail");
        }
    }

    #[test]
    fn xtext_round_trips() {
        let s = "a+b=c d\u{e9}";
        assert_eq!(decode_xtext(&encode_xtext(s)).unwrap(), s);
    }
}
