//! Mailbox names: which are valid, which are special (RFC 6154), and where a name lives in a
//! Maildir++ tree.

/// The special-use mailboxes every user gets (RFC 6154), with their attribute.
pub const SPECIAL_USE: [(&str, &str); 5] =
    [("Sent", "\\Sent"), ("Drafts", "\\Drafts"), ("Trash", "\\Trash"), ("Junk", "\\Junk"), ("Archive", "\\Archive")];

/// The special-use attribute of a mailbox, if it has one.
pub fn special_use(name: &str) -> Option<&'static str> {
    SPECIAL_USE.iter().find(|(n, _)| *n == name).map(|(_, attribute)| *attribute)
}

/// Whether a mailbox name can be stored: `INBOX`, or levels separated by `/`, none empty,
/// without `.` (Maildir++ uses it between levels on disk), the LIST wildcards `%` and `*`, or
/// control characters; at most 200 octets.
pub fn valid_mailbox_name(name: &str) -> bool {
    name == "INBOX"
        || (!name.is_empty()
            && name.len() <= 200
            && name.split('/').all(|level| !level.is_empty() && !level.chars().any(|c| c.is_control() || matches!(c, '.' | '%' | '*'))))
}

/// The folder's directory name under the user's Maildir: `.Lists.rust` for `Lists/rust`,
/// levels in modified UTF-7 as Dovecot's Maildir++ layout writes them. None for INBOX, which
/// is the user's directory itself.
pub fn dir_name(name: &str) -> Option<String> {
    if name == "INBOX" {
        return None;
    }
    let mut out = String::new();
    for level in name.split('/') {
        out.push('.');
        out.push_str(&wasmail_proto::mutf7::encode(level));
    }
    Some(out)
}

/// The mailbox a directory name stands for, if it is a Maildir++ folder.
pub fn from_dir_name(dir: &str) -> Option<String> {
    let rest = dir.strip_prefix('.')?;
    if rest.is_empty() || rest == "." {
        return None;
    }
    let levels: Option<Vec<String>> = rest.split('.').map(|level| wasmail_proto::mutf7::decode(level.as_bytes())).collect();
    let name = levels?.join("/");
    valid_mailbox_name(&name).then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_directories() {
        assert!(valid_mailbox_name("INBOX") && valid_mailbox_name("Lists/rust users") && valid_mailbox_name("Entwürfe"));
        for bad in ["", "a//b", "/a", "a/", "a.b", "a%", "x*", "tab\there"] {
            assert!(!valid_mailbox_name(bad), "{bad:?}");
        }
        assert_eq!(dir_name("INBOX"), None);
        assert_eq!(dir_name("Lists/rust users").unwrap(), ".Lists.rust users");
        assert_eq!(dir_name("Entwürfe").unwrap(), ".Entw&APw-rfe");
        assert_eq!(from_dir_name(".Entw&APw-rfe").unwrap(), "Entwürfe");
        assert_eq!(from_dir_name(".Lists.rust").unwrap(), "Lists/rust");
        assert_eq!(from_dir_name("cur"), None);
        assert_eq!(from_dir_name(".."), None);
        assert_eq!(from_dir_name(".a..b"), None);
        assert_eq!(special_use("Trash"), Some("\\Trash"));
    }
}
