//! Mailbox addresses and paths (RFC 5321 4.1.2), with the UTF-8 extension of RFC 6531.

use std::fmt;

/// A mailbox `local-part@domain`. The local part is kept as the client wrote it (a quoted
/// string keeps its quotes) so that it can be given back byte for byte; the domain is kept as
/// written too, and compared case-insensitively by whoever routes it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Address {
    /// `Dot-string` or `Quoted-string` as written.
    pub local_part: String,
    /// A domain name or an address literal such as `[192.0.2.1]`.
    pub domain: String,
}

impl Address {
    /// Whether any part is outside ASCII, which needs SMTPUTF8 (RFC 6531 3.4).
    pub fn is_utf8(&self) -> bool {
        !self.local_part.is_ascii() || !self.domain.is_ascii()
    }

    /// The local part with the quoting of a `Quoted-string` removed.
    pub fn local_part_unquoted(&self) -> String {
        let lp = &self.local_part;
        if lp.len() >= 2 && lp.starts_with('"') && lp.ends_with('"') {
            let mut out = String::new();
            let mut escaped = false;
            for c in lp[1..lp.len() - 1].chars() {
                if !escaped && c == '\\' {
                    escaped = true;
                    continue;
                }
                escaped = false;
                out.push(c);
            }
            out
        } else {
            lp.clone()
        }
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.local_part, self.domain)
    }
}

impl Address {
    /// A reverse path as logs and plugins see it: the address, or empty for the null
    /// path `<>`.
    pub fn path_text(path: Option<&Address>) -> String {
        path.map(Address::to_string).unwrap_or_default()
    }
}

/// Why a path did not parse; the session turns it into 501 5.1.7 or 501 5.1.3.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddressError(pub &'static str);

/// RFC 5321 4.5.3.1: local part at most 64 octets, domain at most 255, path at most 256.
const MAX_LOCAL_PART: usize = 64;
const MAX_DOMAIN: usize = 255;

/// Parses `<...>` at the start of `input`. Returns the mailbox (None for the null path `<>`)
/// and the rest of the input after `>`. A source route (`<@a,@b:user@c>`) is accepted and
/// ignored, as RFC 5321 4.1.2 and appendix C require.
pub fn parse_path(input: &str) -> Result<(Option<Address>, &str), AddressError> {
    let rest = input.strip_prefix('<').ok_or(AddressError("path must be enclosed in <>"))?;
    if let Some(after) = rest.strip_prefix('>') {
        return Ok((None, after));
    }
    let rest = skip_source_route(rest)?;
    let (address, after) = parse_mailbox(rest)?;
    let after = after.strip_prefix('>').ok_or(AddressError("path must end with >"))?;
    Ok((Some(address), after))
}

fn skip_source_route(input: &str) -> Result<&str, AddressError> {
    if !input.starts_with('@') {
        return Ok(input);
    }
    let colon = input.find(':').ok_or(AddressError("source route without ':'"))?;
    for hop in input[..colon].split(',') {
        let domain = hop.strip_prefix('@').ok_or(AddressError("bad source route"))?;
        check_domain(domain)?;
    }
    Ok(&input[colon + 1..])
}

/// Parses `local-part@domain` and returns it with the rest of the input.
pub fn parse_mailbox(input: &str) -> Result<(Address, &str), AddressError> {
    let (local_part, rest) = if input.starts_with('"') {
        let end = quoted_string_end(input)?;
        input.split_at(end)
    } else {
        let end = input.find(|c: char| !is_atext(c) && c != '.').unwrap_or(input.len());
        let (dot_string, rest) = input.split_at(end);
        if dot_string.is_empty() || dot_string.starts_with('.') || dot_string.ends_with('.') || dot_string.contains("..") {
            return Err(AddressError("bad local part"));
        }
        (dot_string, rest)
    };
    if local_part.len() > MAX_LOCAL_PART {
        return Err(AddressError("local part longer than 64 octets"));
    }
    let rest = rest.strip_prefix('@').ok_or(AddressError("address needs @domain"))?;
    let end = if rest.starts_with('[') {
        rest.find(']').map(|i| i + 1).ok_or(AddressError("unterminated address literal"))?
    } else {
        rest.find(['>', ' ']).unwrap_or(rest.len())
    };
    let (domain, after) = rest.split_at(end);
    check_domain(domain)?;
    Ok((Address { local_part: local_part.to_string(), domain: domain.to_string() }, after))
}

/// Byte index just past the closing quote of the `Quoted-string` at the start of `input`.
fn quoted_string_end(input: &str) -> Result<usize, AddressError> {
    let mut escaped = false;
    for (i, c) in input.char_indices().skip(1) {
        if escaped {
            if !(' '..='~').contains(&c) {
                return Err(AddressError("bad quoted pair"));
            }
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == '"' {
            return Ok(i + 1);
        } else if c.is_ascii_control() {
            return Err(AddressError("control character in quoted string"));
        }
    }
    Err(AddressError("unterminated quoted string"))
}

/// RFC 5322 atext, extended with any non-ASCII character (RFC 6531 3.3 `UTF8-non-ascii`).
fn is_atext(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~".contains(c) || (!c.is_ascii() && !c.is_control())
}

/// A domain (sub-domains of letters, digits and hyphens, U-labels allowed) or an address
/// literal (`[192.0.2.1]`, `[IPv6:...]`).
pub fn check_domain(domain: &str) -> Result<(), AddressError> {
    if domain.is_empty() {
        return Err(AddressError("empty domain"));
    }
    if domain.len() > MAX_DOMAIN {
        return Err(AddressError("domain longer than 255 octets"));
    }
    if let Some(literal) = domain.strip_prefix('[') {
        let literal = literal.strip_suffix(']').ok_or(AddressError("bad address literal"))?;
        let valid = if let Some(v6) = literal.strip_prefix("IPv6:") {
            v6.parse::<std::net::Ipv6Addr>().is_ok()
        } else {
            literal.parse::<std::net::Ipv4Addr>().is_ok()
        };
        return if valid { Ok(()) } else { Err(AddressError("bad address literal")) };
    }
    for label in domain.split('.') {
        let ok = !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || (!c.is_ascii() && c.is_alphanumeric()));
        if !ok {
            return Err(AddressError("bad domain"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mailbox(input: &str) -> Address {
        parse_path(input).unwrap().0.unwrap()
    }

    #[test]
    fn plain_quoted_and_routed_paths() {
        assert_eq!(mailbox("<tyler@localhost>").to_string(), "tyler@localhost");
        let quoted = mailbox("<\"john doe\"@example.org>");
        assert_eq!(quoted.local_part, "\"john doe\"");
        assert_eq!(quoted.local_part_unquoted(), "john doe");
        assert_eq!(mailbox("<@a.example,@b.example:joe@c.example>").to_string(), "joe@c.example");
        assert_eq!(mailbox("<x@[127.0.0.1]>").domain, "[127.0.0.1]");
        assert!(mailbox("<jörg@bücher.example>").is_utf8());
        assert_eq!(parse_path("<> SIZE=10").unwrap(), (None, " SIZE=10"));
    }

    #[test]
    fn malformed_paths_are_errors() {
        for bad in [
            "tyler@localhost",
            "<tyler@localhost",
            "<tyler>",
            "<.tyler@localhost>",
            "<ty..ler@localhost>",
            "<tyler@-bad.example>",
            "<tyler@exa mple>",
            "<tyler@[300.1.1.1]>",
            "<\"unterminated@localhost>",
            "<tyler@>",
        ] {
            assert!(parse_path(bad).is_err(), "{bad} should not parse");
        }
        let long_local = format!("<{}@localhost>", "a".repeat(65));
        assert!(parse_path(&long_local).is_err());
    }
}
