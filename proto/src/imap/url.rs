//! IMAP URLs (RFC 5092) as CATENATE names a stored message (RFC 4469 3): the relative form
//! `/mailbox[;UIDVALIDITY=n]/;UID=n[/;SECTION=s][/;PARTIAL=a[.b]]`, with the mailbox name in
//! UTF-8, %-encoded. Absolute URLs (`imap://host/...`) and URLAUTH are not taken: a URL may
//! only name the logged-in user's own messages on this server.

/// A message, or a part of it, that a URL names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageUrl {
    pub mailbox: String,
    /// The message must be from this UIDVALIDITY, if given.
    pub uid_validity: Option<u32>,
    pub uid: u32,
    /// A section as FETCH BODY[...] names one (decoded); the whole message if None.
    pub section: Option<String>,
    /// The octets from the first number, as many as the second says (to the end if None).
    pub partial: Option<(u32, Option<u32>)>,
}

impl MessageUrl {
    /// The URL read, or None if it is not a relative URL naming a message.
    pub fn parse(url: &str) -> Option<MessageUrl> {
        let rest = url.strip_prefix('/')?;
        // The mailbox ends where the first `;` or `/;` begins.
        let end = rest.find(';').map(|i| if i > 0 && rest.as_bytes()[i - 1] == b'/' { i - 1 } else { i })?;
        let mailbox = percent_decode(&rest[..end])?;
        if mailbox.is_empty() {
            return None;
        }
        let mut rest = &rest[end..];
        let mut uid_validity = None;
        if let Some(after) = strip_key(rest, ";UIDVALIDITY=") {
            let (value, next) = number_prefix(after)?;
            uid_validity = Some(u32::try_from(value).ok().filter(|&v| v > 0)?);
            rest = next;
        }
        let after = strip_key(rest, "/;UID=")?;
        let (uid, mut rest) = number_prefix(after)?;
        let uid = u32::try_from(uid).ok().filter(|&u| u > 0)?;
        let mut section = None;
        if let Some(after) = strip_key(rest, "/;SECTION=") {
            let end = after.find("/;").unwrap_or(after.len());
            section = Some(percent_decode(&after[..end])?);
            rest = &after[end..];
        }
        let mut partial = None;
        if let Some(after) = strip_key(rest, "/;PARTIAL=") {
            let (start, next) = number_prefix(after)?;
            let (length, next) = match next.strip_prefix('.') {
                Some(more) => {
                    let (length, next) = number_prefix(more)?;
                    (Some(u32::try_from(length).ok().filter(|&l| l > 0)?), next)
                }
                None => (None, next),
            };
            partial = Some((u32::try_from(start).ok()?, length));
            rest = next;
        }
        rest.is_empty().then_some(MessageUrl { mailbox, uid_validity, uid, section, partial })
    }
}

/// What follows `key` (any case) at the start of `text`.
fn strip_key<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    let head = text.get(..key.len())?;
    head.eq_ignore_ascii_case(key).then(|| &text[key.len()..])
}

/// The leading decimal number and what follows it.
fn number_prefix(text: &str) -> Option<(u64, &str)> {
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 || digits > 10 {
        return None;
    }
    Some((text[..digits].parse().ok()?, &text[digits..]))
}

/// `%XX` escapes undone; None if one is broken or the result is not UTF-8.
fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_of_rfc_4469_and_imaptest() {
        let url = MessageUrl::parse("/Drafts;UIDVALIDITY=385759045/;UID=20/;section=1.MIME").unwrap();
        assert_eq!(
            url,
            MessageUrl { mailbox: "Drafts".into(), uid_validity: Some(385759045), uid: 20, section: Some("1.MIME".into()), partial: None }
        );
        let url = MessageUrl::parse("/imaptest%2Fsub/;uid=7/;partial=100000.1").unwrap();
        assert_eq!((url.mailbox.as_str(), url.uid, url.partial), ("imaptest/sub", 7, Some((100000, Some(1)))));
        assert_eq!(MessageUrl::parse("/Entw%C3%BCrfe/;UID=1").unwrap().mailbox, "Entwürfe");
        assert_eq!(MessageUrl::parse("/box/;UID=3/;SECTION=HEADER.FIELDS%20(From)").unwrap().section.as_deref(), Some("HEADER.FIELDS (From)"));
        for bad in [
            "imap://host/INBOX/;UID=1",
            "/INBOX",
            "/INBOX/;UID=0",
            "/INBOX/;UID=x",
            "/;UID=1",
            "/INBOX/;UID=1/;URLAUTH=anonymous",
            "/INBOX/;UID=1/;PARTIAL=1.0",
            "/IN%ZZ/;UID=1",
            "/INBOX;UIDVALIDITY=0/;UID=1",
        ] {
            assert!(MessageUrl::parse(bad).is_none(), "{bad}");
        }
    }
}
