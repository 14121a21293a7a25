//! The verbs, EHLO keywords and MAIL/RCPT parameters the core answers: one list each, so that
//! EHLO (which lists the keywords) and the plugin manifest check (which keeps plugins from
//! claiming them) cannot disagree.

/// An EHLO keyword of the core (RFC 5321 4.1.1.1, and the extension RFCs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keyword {
    Pipelining,
    Size,
    EightBitMime,
    BinaryMime,
    Chunking,
    EnhancedStatusCodes,
    Dsn,
    Etrn,
    SmtpUtf8,
    Help,
    StartTls,
    Auth,
    Vrfy,
    Expn,
}

impl Keyword {
    /// Every core keyword, in the order EHLO lists them.
    pub const ALL: [Keyword; 14] = [
        Keyword::Pipelining,
        Keyword::Size,
        Keyword::EightBitMime,
        Keyword::BinaryMime,
        Keyword::Chunking,
        Keyword::EnhancedStatusCodes,
        Keyword::Dsn,
        Keyword::Etrn,
        Keyword::SmtpUtf8,
        Keyword::Help,
        Keyword::StartTls,
        Keyword::Auth,
        Keyword::Vrfy,
        Keyword::Expn,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Keyword::Pipelining => "PIPELINING",
            Keyword::Size => "SIZE",
            Keyword::EightBitMime => "8BITMIME",
            Keyword::BinaryMime => "BINARYMIME",
            Keyword::Chunking => "CHUNKING",
            Keyword::EnhancedStatusCodes => "ENHANCEDSTATUSCODES",
            Keyword::Dsn => "DSN",
            Keyword::Etrn => "ETRN",
            Keyword::SmtpUtf8 => "SMTPUTF8",
            Keyword::Help => "HELP",
            Keyword::StartTls => "STARTTLS",
            Keyword::Auth => "AUTH",
            Keyword::Vrfy => "VRFY",
            Keyword::Expn => "EXPN",
        }
    }

    /// Whether `name` is a core keyword.
    pub fn is_core(name: &str) -> bool {
        Keyword::ALL.iter().any(|k| k.name() == name)
    }
}

/// The verbs the core answers, the obsolete ones it refuses (502) included: a plugin cannot
/// take them over.
pub const CORE_VERBS: &[&str] = &[
    "HELO", "EHLO", "MAIL", "RCPT", "DATA", "BDAT", "RSET", "NOOP", "QUIT", "VRFY", "EXPN", "HELP", "ETRN", "SEND", "SOML", "SAML", "TURN",
    "STARTTLS", "AUTH",
];

/// The MAIL and RCPT parameters the core handles.
pub const CORE_PARAMS: &[&str] = &["SIZE", "BODY", "SMTPUTF8", "RET", "ENVID", "NOTIFY", "ORCPT", "AUTH"];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_distinct_and_upper_case() {
        for (i, k) in Keyword::ALL.iter().enumerate() {
            assert_eq!(k.name(), k.name().to_ascii_uppercase());
            assert!(Keyword::ALL[..i].iter().all(|o| o.name() != k.name()), "{k:?} twice");
        }
        assert!(Keyword::is_core("DSN") && !Keyword::is_core("XUSR"));
    }
}
