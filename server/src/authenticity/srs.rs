//! The Sender Rewriting Scheme (Shevek's SRS, as libsrs2 and postsrsd write it): mail this
//! server forwards to another domain leaves with its envelope sender rewritten into one of
//! this server's own domain, so that the next hop's SPF check looks at this server's record,
//! not the original sender's; a bounce to that address comes back here and goes on to the
//! original sender.
//!
//! `user@example.org` forwarded by `mx.example.net` becomes
//! `SRS0=HHHH=TT=example.org=user@mx.example.net`: `TT` is the day (base32, modulo 1024),
//! `HHHH` the first four base64 characters of an HMAC-SHA1 (ring's) over `TT`, the domain and
//! the local part in lower case, under a secret of this server. A reverse address is taken
//! only with a hash that matches and a day no older than [`MAX_AGE_DAYS`], so nobody can use
//! the server to relay to an address it never forwarded from.

use std::path::Path;

use anyhow::Context as _;
use ring::hmac;

use crate::config::SrsConfig;

/// Days a rewritten address stays good for a bounce (libsrs2's default).
pub const MAX_AGE_DAYS: u64 = 21;

const BASE32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

pub struct Srs {
    key: hmac::Key,
    /// The domain rewritten addresses are in (`[srs] domain`, else `hostname`).
    domain: String,
}

impl Srs {
    /// `[srs]`: None when off. The secret file is made when it is missing.
    pub fn load(config: &SrsConfig, data_dir: &Path, hostname: &str) -> anyhow::Result<Option<Srs>> {
        if !config.enabled {
            return Ok(None);
        }
        let path = if config.secret_file.as_os_str().is_empty() { data_dir.join("srs.secret") } else { config.secret_file.clone() };
        if !path.exists() {
            make_secret(&path)?;
            tracing::info!(file = %path.display(), "made a new SRS secret");
        }
        let secret = std::fs::read_to_string(&path).with_context(|| format!("cannot read the SRS secret {}", path.display()))?;
        let secret = secret.trim();
        anyhow::ensure!(secret.len() >= 16, "{}: an SRS secret of at least 16 characters is needed", path.display());
        let domain = if config.domain.is_empty() { hostname } else { &config.domain };
        Ok(Some(Srs::new(secret.as_bytes(), domain)))
    }

    pub fn new(secret: &[u8], domain: &str) -> Srs {
        Srs { key: hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, secret), domain: domain.to_ascii_lowercase() }
    }

    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// `sender` rewritten for forwarding on `day` (days since the Unix epoch). The null
    /// sender, an address already in this server's SRS domain, and one without a domain are
    /// left as they are.
    pub fn forward(&self, sender: &str, day: u64) -> String {
        let Some((local, domain)) = sender.rsplit_once('@') else { return sender.to_string() };
        if domain.eq_ignore_ascii_case(&self.domain) {
            return sender.to_string();
        }
        let stamp = timestamp(day);
        format!("SRS0={}={stamp}={domain}={local}@{}", self.hash(&stamp, domain, local), self.domain)
    }

    /// The original sender of an SRS0 `local` part at this server's SRS domain, checked on
    /// `day`; `None` for anything not in that form, with another hash, or too old.
    pub fn reverse(&self, local: &str, day: u64) -> Option<String> {
        let rest = local.get(..5).filter(|p| p.eq_ignore_ascii_case("SRS0=")).map(|_| &local[5..])?;
        let mut fields = rest.splitn(4, '=');
        let (hash, stamp, domain, user) = (fields.next()?, fields.next()?, fields.next()?, fields.next()?);
        if domain.is_empty() || user.is_empty() || !self.hash(stamp, domain, user).eq_ignore_ascii_case(hash) {
            return None;
        }
        let age = (day % 1024 + 1024 - decode_timestamp(stamp)?) % 1024;
        (age <= MAX_AGE_DAYS).then(|| format!("{user}@{domain}"))
    }

    fn hash(&self, stamp: &str, domain: &str, local: &str) -> String {
        let input = format!("{stamp}{domain}{local}").to_ascii_lowercase();
        let tag = hmac::sign(&self.key, input.as_bytes());
        let encoded = wasmail_mime::transfer::encode_base64(tag.as_ref(), b"");
        String::from_utf8_lossy(&encoded[..4]).into_owned()
    }
}

/// 32 random octets in hex, written with mode 0600 (never over a file).
fn make_secret(path: &Path) -> anyhow::Result<()> {
    let mut octets = [0u8; 32];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut octets).map_err(|_| anyhow::anyhow!("no random numbers"))?;
    let hex: String = octets.iter().map(|b| format!("{b:02x}")).collect();
    super::keys::write_key(path, &format!("{hex}\n"))
}

/// Two base32 characters of the day modulo 1024.
fn timestamp(day: u64) -> String {
    let t = (day % 1024) as usize;
    [BASE32[t >> 5] as char, BASE32[t & 31] as char].iter().collect()
}

fn decode_timestamp(stamp: &str) -> Option<u64> {
    let digit = |c: u8| BASE32.iter().position(|&b| b == c.to_ascii_uppercase()).map(|p| p as u64);
    match stamp.as_bytes() {
        [a, b] => Some(digit(*a)? << 5 | digit(*b)?),
        _ => None,
    }
}

/// Days since the Unix epoch, now.
pub fn today() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() / 86400).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_forwarded_sender_comes_back_within_the_age_and_with_its_hash_only() {
        let srs = Srs::new(b"secret", "mx.example.net");
        let day = 20_430;
        let rewritten = srs.forward("Ann.Lee@Example.org", day);
        let (local, domain) = rewritten.rsplit_once('@').unwrap();
        assert_eq!(domain, "mx.example.net");
        assert!(local.starts_with("SRS0=") && local.ends_with("=Example.org=Ann.Lee"), "{rewritten}");
        assert_eq!(srs.reverse(local, day).as_deref(), Some("Ann.Lee@Example.org"));
        assert_eq!(srs.reverse(&local.to_ascii_lowercase(), day + MAX_AGE_DAYS).as_deref(), Some("ann.lee@example.org"), "case does not matter");
        assert_eq!(srs.reverse(local, day + MAX_AGE_DAYS + 1), None, "too old");
        assert_eq!(Srs::new(b"other", "mx.example.net").reverse(local, day), None, "another secret");
        let forged = local.replace("=Ann.Lee", "=Bob");
        assert_eq!(srs.reverse(&forged, day), None, "the hash covers the address");
        assert_eq!(srs.reverse("tyler", day), None);
        assert_eq!(srs.forward("", day), "");
        assert_eq!(srs.forward("postmaster@mx.example.net", day), "postmaster@mx.example.net");
        // Across the 1024-day wrap of the timestamp.
        let late = srs.forward("a@b.example", 1023);
        assert_eq!(srs.reverse(late.split('@').next().unwrap(), 1024 + 5).as_deref(), Some("a@b.example"));
    }
}
