//! DKIM signing (RFC 6376, RFC 8463) of mail that authenticated users and `relay_networks`
//! send: the signer whose domain is the `From:` header's domain, or a parent of it, signs
//! the message as it will be stored and relayed (after the plugins changed it), with
//! `relaxed/relaxed` canonicalization.

use mail_auth::arc::ArcSealer;
use mail_auth::common::crypto::{RsaKey, Sha256, SigningKey};
use mail_auth::common::headers::HeaderWriter as _;
use mail_auth::dkim::{Canonicalization, DkimSigner, Done};
use mail_auth::AuthenticatedMessage;

use super::keys::Key;
use crate::config::DkimConfig;

/// The header fields signed when a signer names none: those that say who wrote the message,
/// to whom, about what and how it is encoded (OpenDKIM's and Stalwart's choice, less the
/// trace fields that later hops add). Only fields present are signed.
pub const DEFAULT_HEADERS: &[&str] = &[
    "From",
    "Sender",
    "Reply-To",
    "To",
    "Cc",
    "Subject",
    "Date",
    "Message-ID",
    "In-Reply-To",
    "References",
    "MIME-Version",
    "Content-Type",
    "Content-Transfer-Encoding",
    "List-Id",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
];

enum Signer {
    Rsa(DkimSigner<RsaKey<Sha256>, Done>),
    Ed25519(DkimSigner<mail_auth::common::crypto::Ed25519Key, Done>),
}

/// An ARC sealer (RFC 8617 defines rsa-sha256 only, so RSA keys alone seal).
pub type Sealer = ArcSealer<RsaKey<Sha256>, Done>;

/// The configured signers, keys loaded.
#[derive(Default)]
pub struct Signers {
    /// (domain in lower case, its signer), longest domain first so that the closest one wins.
    signers: Vec<(String, Signer)>,
    /// The same for the RSA keys, as ARC sealers.
    sealers: Vec<(String, Sealer)>,
}

impl Signers {
    /// Loads every `[[dkim.signer]]` key; an error names the file.
    pub fn load(config: &DkimConfig) -> anyhow::Result<Signers> {
        let (mut signers, mut sealers) = (Vec::new(), Vec::new());
        for s in &config.signer {
            let headers: Vec<String> = if s.headers.is_empty() { DEFAULT_HEADERS.iter().map(|h| h.to_string()).collect() } else { s.headers.clone() };
            let signer = match Key::load(&s.key_file)? {
                Key::Rsa(key) => {
                    // The key again, for the sealer (a key is not Clone).
                    if let Key::Rsa(again) = Key::load(&s.key_file)? {
                        let mut sealed = headers.clone();
                        sealed.push("DKIM-Signature".into());
                        let sealer = ArcSealer::from_key(again).domain(s.domain.clone()).selector(s.selector.clone()).headers(sealed);
                        sealers.push((s.domain.to_ascii_lowercase(), sealer));
                    }
                    Signer::Rsa(signer(key, &s.domain, &s.selector, headers))
                }
                Key::Ed25519(key) => Signer::Ed25519(signer(key, &s.domain, &s.selector, headers)),
            };
            signers.push((s.domain.to_ascii_lowercase(), signer));
        }
        signers.sort_by_key(|(domain, _)| std::cmp::Reverse(domain.len()));
        sealers.sort_by_key(|(domain, _)| std::cmp::Reverse(domain.len()));
        Ok(Signers { signers, sealers })
    }

    pub fn is_empty(&self) -> bool {
        self.signers.is_empty()
    }

    /// The sealer of the RSA signer whose domain is `domain` or a parent of it.
    pub fn sealer_for(&self, domain: &str) -> Option<&Sealer> {
        let domain = domain.trim_end_matches('.').to_ascii_lowercase();
        self.sealers.iter().find(|(d, _)| within(&domain, d)).map(|(_, sealer)| sealer)
    }

    /// The `DKIM-Signature:` field (CRLF-ended) for `message`, when a signer covers its
    /// `From:` domain. `Err` when signing failed (the message then goes unsigned; the caller
    /// logs it).
    pub fn sign(&self, message: &[u8]) -> Result<Option<String>, String> {
        if self.signers.is_empty() {
            return Ok(None);
        }
        let Some(parsed) = AuthenticatedMessage::parse(message) else { return Ok(None) };
        // RFC 5322 3.6.2: one From: field, possibly with several mailboxes; each must be in
        // the signer's domain for the signature to say anything about it.
        let domains: Vec<String> =
            parsed.from.iter().filter_map(|a| a.rsplit_once('@')).map(|(_, d)| d.trim_end_matches('.').to_ascii_lowercase()).collect();
        let Some(first) = domains.first() else { return Ok(None) };
        let Some((_, signer)) = self.signers.iter().find(|(domain, _)| within(first, domain)) else { return Ok(None) };
        if !domains.iter().all(|d| d == first) {
            return Ok(None);
        }
        let signature = match signer {
            Signer::Rsa(s) => s.sign(message),
            Signer::Ed25519(s) => s.sign(message),
        };
        signature.map(|s| Some(unfold_last_tag(&s.to_header()))).map_err(|e| e.to_string())
    }
}

/// mail-auth folds a line that fills up exactly at the end of the `b=` value, leaving
/// `b=...\r\n\t;`: verifiers that delete only the value's characters (dkimpy) then hash a
/// space the signer did not, and the signature fails. The fold is only white space before the
/// final `;`, so taking it out changes nothing for any verifier. `fields` may be several
/// (an ARC set is three); no field of theirs has such a fold anywhere else.
pub fn unfold_last_tag(fields: &str) -> String {
    fields.replace("\r\n\t;\r\n", ";\r\n")
}

/// A relaxed/relaxed signer for `d=domain; s=selector` over `headers`.
fn signer<K: SigningKey>(key: K, domain: &str, selector: &str, headers: Vec<String>) -> DkimSigner<K, Done> {
    DkimSigner::from_key(key)
        .domain(domain)
        .selector(selector)
        .headers(headers)
        .header_canonicalization(Canonicalization::Relaxed)
        .body_canonicalization(Canonicalization::Relaxed)
}

/// Whether `domain` is `parent` or below it.
fn within(domain: &str, parent: &str) -> bool {
    domain == parent || domain.strip_suffix(parent).is_some_and(|rest| rest.ends_with('.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fold_before_the_last_semicolon_is_taken_out() {
        assert_eq!(unfold_last_tag("DKIM-Signature: b=abc\r\n\t;\r\n"), "DKIM-Signature: b=abc;\r\n");
        assert_eq!(unfold_last_tag("DKIM-Signature: b=ab\r\n\tc;\r\n"), "DKIM-Signature: b=ab\r\n\tc;\r\n");
    }

    #[test]
    fn a_subdomain_is_within_its_parent_and_a_lookalike_is_not() {
        assert!(within("example.org", "example.org"));
        assert!(within("mail.example.org", "example.org"));
        assert!(!within("badexample.org", "example.org"));
        assert!(!within("example.org", "mail.example.org"));
    }
}
