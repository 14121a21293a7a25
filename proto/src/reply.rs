//! SMTP replies: a basic code, an optional RFC 3463 enhanced status code and text lines,
//! serialized exactly as RFC 5321 4.2.1 describes multi-line replies.

use std::fmt;

/// An RFC 3463 enhanced status code `class.subject.detail`, carried as data so that nothing
/// pastes codes into strings by hand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EnhancedCode {
    /// 2 success, 4 persistent transient failure, 5 permanent failure.
    pub class: u8,
    /// What the code is about (RFC 3463 section 3): 1 address, 3 mail system, 5 protocol...
    pub subject: u16,
    /// The detail within the subject.
    pub detail: u16,
}

impl EnhancedCode {
    pub const fn new(class: u8, subject: u16, detail: u16) -> Self {
        EnhancedCode { class, subject, detail }
    }
}

impl std::str::FromStr for EnhancedCode {
    type Err = ();

    /// Reads `class.subject.detail` as RFC 3463 section 2 writes it: class 2, 4 or 5,
    /// subject and detail of one to three digits.
    fn from_str(text: &str) -> Result<Self, ()> {
        let number = |part: &str| -> Result<u16, ()> {
            if (1..=3).contains(&part.len()) && part.bytes().all(|b| b.is_ascii_digit()) {
                part.parse().map_err(|_| ())
            } else {
                Err(())
            }
        };
        let mut parts = text.split('.');
        let (Some(class), Some(subject), Some(detail), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
            return Err(());
        };
        let class = match class {
            "2" => 2,
            "4" => 4,
            "5" => 5,
            _ => return Err(()),
        };
        Ok(EnhancedCode { class, subject: number(subject)?, detail: number(detail)? })
    }
}

impl fmt::Display for EnhancedCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.class, self.subject, self.detail)
    }
}

/// One SMTP reply. Every reply after the greeting and EHLO carries an enhanced code
/// (RFC 2034 section 3: once ENHANCEDSTATUSCODES is offered, all replies but those carry one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The three-digit reply code (RFC 5321 4.2).
    pub code: u16,
    /// The enhanced status code, repeated on every line of a multi-line reply.
    pub enhanced: Option<EnhancedCode>,
    /// Text lines; never empty when serialized (an empty list sends the code alone).
    pub lines: Vec<String>,
}

impl Reply {
    /// A one-line reply with an enhanced code.
    pub fn new(code: u16, enhanced: EnhancedCode, text: impl Into<String>) -> Self {
        Reply { code, enhanced: Some(enhanced), lines: vec![text.into()] }
    }

    /// A reply without an enhanced code: the greeting, HELO/EHLO.
    pub fn plain(code: u16, text: impl Into<String>) -> Self {
        Reply { code, enhanced: None, lines: vec![text.into()] }
    }

    /// A multi-line reply with the same enhanced code on each line.
    pub fn multiline(code: u16, enhanced: Option<EnhancedCode>, lines: Vec<String>) -> Self {
        Reply { code, enhanced, lines }
    }

    /// 451 4.3.0: something on this side failed; the client keeps the message and retries.
    pub fn local_error() -> Self {
        Reply::new(451, codes::TEMP_SYSTEM, "Local error in processing, try again later")
    }

    /// 552 5.3.4: the message is larger than `max_message_size` (RFC 1870).
    pub fn too_big() -> Self {
        Reply::new(552, codes::MAILBOX_FULL_SIZE, "Message size exceeds fixed maximum message size")
    }

    pub fn is_positive(&self) -> bool {
        self.code < 400
    }

    /// Appends the wire form: `code-text` on every line but the last, `code text` on the last
    /// (RFC 5321 4.2.1), each ending in CRLF. Control characters in text are replaced so that a
    /// reply can never inject a line.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        let last = self.lines.len().saturating_sub(1);
        if self.lines.is_empty() {
            out.extend_from_slice(format!("{}\r\n", self.code).as_bytes());
            return;
        }
        for (i, line) in self.lines.iter().enumerate() {
            let sep = if i == last { ' ' } else { '-' };
            out.extend_from_slice(self.code.to_string().as_bytes());
            out.push(sep as u8);
            if let Some(enhanced) = self.enhanced {
                out.extend_from_slice(enhanced.to_string().as_bytes());
                if !line.is_empty() {
                    out.push(b' ');
                }
            }
            out.extend(line.bytes().map(|b| if b.is_ascii_control() { b'?' } else { b }));
            out.extend_from_slice(b"\r\n");
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.write_to(&mut out);
        out
    }
}

impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(String::from_utf8_lossy(&self.to_bytes()).trim_end())
    }
}

/// The enhanced codes this server uses, named after RFC 3463's descriptions.
pub mod codes {
    use super::EnhancedCode as E;
    pub const OK: E = E::new(2, 0, 0);
    pub const SENDER_OK: E = E::new(2, 1, 0);
    pub const DEST_OK: E = E::new(2, 1, 5);
    pub const CANNOT_VERIFY: E = E::new(2, 5, 2);
    pub const BAD_DEST_MAILBOX: E = E::new(5, 1, 1);
    pub const BAD_DEST_SYNTAX: E = E::new(5, 1, 3);
    pub const AMBIGUOUS: E = E::new(5, 1, 4);
    pub const BAD_SENDER_SYNTAX: E = E::new(5, 1, 7);
    pub const MAILBOX_FULL_SIZE: E = E::new(5, 3, 4);
    pub const SYSTEM_INCAPABLE: E = E::new(5, 3, 3);
    pub const TEMP_SYSTEM: E = E::new(4, 3, 0);
    /// A failure with nothing more specific to say (RFC 3463 3.1).
    pub const TEMP_OTHER: E = E::new(4, 0, 0);
    /// The mailbox exists but cannot take mail now (RFC 3463 3.3: X.2.0).
    pub const TEMP_MAILBOX: E = E::new(4, 2, 0);
    /// Mailbox full (RFC 3463 X.2.2): over the user's quota.
    pub const MAILBOX_FULL: E = E::new(4, 2, 2);
    /// The destination domain does not exist (X.1.2).
    pub const BAD_DEST_SYSTEM: E = E::new(5, 1, 2);
    /// The domain publishes a null MX: it takes no mail (RFC 7505 4.2).
    pub const NULL_MX: E = E::new(5, 1, 10);
    /// No next host answered (X.4.1).
    pub const TEMP_NO_ANSWER: E = E::new(4, 4, 1);
    /// The next hop could not be looked up (X.4.3: routing server failure).
    pub const TEMP_ROUTING: E = E::new(4, 4, 3);
    /// No route to the destination (X.4.4).
    pub const NO_ROUTE: E = E::new(5, 4, 4);
    /// Delivery time expired (X.4.7): the `delayed` notice's status.
    pub const TEMP_EXPIRED: E = E::new(4, 4, 7);
    pub const TEMP_OVERLOAD: E = E::new(4, 3, 2);
    pub const TEMP_TIMEOUT: E = E::new(4, 4, 2);
    pub const ROUTING_LOOP: E = E::new(5, 4, 6);
    pub const INVALID_COMMAND: E = E::new(5, 5, 1);
    pub const SYNTAX: E = E::new(5, 5, 2);
    pub const TOO_MANY_RCPTS: E = E::new(4, 5, 3);
    pub const INVALID_ARGS: E = E::new(5, 5, 4);
    pub const CONTENT: E = E::new(5, 6, 0);
    pub const NON_ASCII_ADDRESS: E = E::new(5, 6, 7);
    pub const POLICY: E = E::new(5, 7, 1);
    pub const TEMP_POLICY: E = E::new(4, 7, 1);
    pub const TEMP_ABUSE: E = E::new(4, 7, 0);
    pub const OTHER: E = E::new(5, 0, 0);
    pub const AUTH_SUCCEEDED: E = E::new(2, 7, 0);
    /// 530: authentication required (RFC 4954 6).
    pub const AUTH_REQUIRED: E = E::new(5, 7, 0);
    /// 535: wrong credentials (RFC 4954 6).
    pub const AUTH_CREDENTIALS: E = E::new(5, 7, 8);
    /// 538: encryption required for the mechanism (RFC 4954 6).
    pub const ENCRYPTION_REQUIRED: E = E::new(5, 7, 11);
}

#[cfg(test)]
mod tests {
    use super::EnhancedCode as E;
    use super::*;

    #[test]
    fn single_line_with_enhanced_code() {
        let reply = Reply::new(250, codes::SENDER_OK, "Sender ok");
        assert_eq!(reply.to_bytes(), b"250 2.1.0 Sender ok\r\n");
    }

    #[test]
    fn multiline_uses_hyphen_on_all_but_last_line() {
        let reply = Reply::multiline(214, Some(codes::OK), vec!["Commands:".into(), "HELO EHLO".into(), "End".into()]);
        assert_eq!(reply.to_bytes(), b"214-2.0.0 Commands:\r\n214-2.0.0 HELO EHLO\r\n214 2.0.0 End\r\n".to_vec());
    }

    #[test]
    fn enhanced_codes_read_back_what_they_write() {
        for code in [codes::OK, codes::NULL_MX, E::new(5, 999, 999)] {
            assert_eq!(code.to_string().parse::<E>(), Ok(code));
        }
        for bad in ["", "5.1", "5.1.1.1", "3.1.1", "5.1.1000", "5.+1.1", "5..1", " 5.1.1", "5.1.1 "] {
            assert_eq!(bad.parse::<E>(), Err(()), "{bad:?}");
        }
    }

    #[test]
    fn control_characters_cannot_inject_lines() {
        let reply = Reply::plain(250, "evil\r\n250 injected");
        assert_eq!(reply.to_bytes(), b"250 evil??250 injected\r\n");
    }
}
