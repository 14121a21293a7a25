//! DKIM keys: loading the `[[dkim.signer]]` key files and `wasmail dkim keygen`, which writes
//! a key and prints the DNS record that publishes it (RFC 6376 3.6.1).

use std::path::Path;

use anyhow::Context as _;
use mail_auth::common::crypto::{Ed25519Key, RsaKey, Sha256};
use rsa::pkcs8::der::pem::LineEnding;
use rsa::pkcs8::{EncodePrivateKey, EncodePublicKey};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::PrivateKeyDer;

/// A signing key of either algorithm DKIM signers use.
pub enum Key {
    /// rsa-sha256 (RFC 6376; RFC 8301: at least 1024 bits, 2048 recommended).
    Rsa(RsaKey<Sha256>),
    /// ed25519-sha256 (RFC 8463).
    Ed25519(Ed25519Key),
}

impl Key {
    /// Reads a PEM private key: PKCS#8 (RSA or Ed25519) or PKCS#1 (`BEGIN RSA PRIVATE KEY`,
    /// what `openssl genrsa` and `opendkim-genkey` write). Errors name the file.
    pub fn load(path: &Path) -> anyhow::Result<Key> {
        let pem = std::fs::read(path).with_context(|| format!("cannot read the DKIM key {}", path.display()))?;
        let der = PrivateKeyDer::from_pem_slice(&pem).map_err(|e| anyhow::anyhow!("{}: not a PEM private key: {e}", path.display()))?;
        let key = match &der {
            // An Ed25519 PKCS#8 key is short; ring reads v1 (OpenSSL's) and v2 (ring's) forms.
            PrivateKeyDer::Pkcs8(pkcs8) => match Ed25519Key::from_pkcs8_maybe_unchecked_der(pkcs8.secret_pkcs8_der()) {
                Ok(key) => Ok(Key::Ed25519(key)),
                Err(_) => RsaKey::<Sha256>::from_key_der(der.clone_key()).map(Key::Rsa),
            },
            _ => RsaKey::<Sha256>::from_key_der(der.clone_key()).map(Key::Rsa),
        };
        key.map_err(|e| anyhow::anyhow!("{}: not an RSA or Ed25519 private key: {e}", path.display()))
    }
}

/// The algorithms `dkim keygen` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    Rsa,
    Ed25519,
}

/// A new key: its PKCS#8 PEM and the `p=` value of its DNS record.
pub struct Generated {
    pub pem: String,
    pub public: String,
    pub algorithm: Algorithm,
}

/// Makes a key pair. RSA keys are `bits` long (1024 to 4096: RFC 8301 3.2 forbids less than
/// 1024, and a larger key's record no longer fits the TXT strings resolvers pass on well).
pub fn generate(algorithm: Algorithm, bits: usize) -> anyhow::Result<Generated> {
    let (pem, public) = match algorithm {
        Algorithm::Ed25519 => {
            let der = Ed25519Key::generate_pkcs8().map_err(|e| anyhow::anyhow!("cannot make an Ed25519 key: {e}"))?;
            let key = Ed25519Key::from_pkcs8_der(&der).map_err(|e| anyhow::anyhow!("cannot read the new key: {e}"))?;
            let pem =
                rsa::pkcs8::der::pem::encode_string("PRIVATE KEY", LineEnding::LF, &der).map_err(|e| anyhow::anyhow!("cannot write PEM: {e}"))?;
            // RFC 8463 4.2: the record holds the bare 32-octet public key.
            (pem, key.public_key())
        }
        Algorithm::Rsa => {
            anyhow::ensure!((1024..=4096).contains(&bits), "--bits {bits}: an RSA key must have 1024 to 4096 bits (2048 recommended)");
            let key = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, bits).context("cannot make an RSA key")?;
            let pem = key.to_pkcs8_pem(LineEnding::LF).context("cannot write PEM")?.to_string();
            // RFC 6376 3.6.1: p= is the DER SubjectPublicKeyInfo, as OpenSSL writes it.
            let public = rsa::RsaPublicKey::from(&key).to_public_key_der().context("cannot write the public key")?;
            (pem, public.as_bytes().to_vec())
        }
    };
    let public = String::from_utf8(wasmail_mime::transfer::encode_base64(&public, b"")).expect("base64 is ASCII");
    Ok(Generated { pem, public, algorithm })
}

impl Generated {
    /// The DNS record to publish, one line in zone-file form: `S._domainkey.D. IN TXT "..."`,
    /// the value split into quoted strings of at most 255 characters (RFC 1035 3.3.14; RFC
    /// 6376 3.6.2.2: the strings are joined without spaces).
    pub fn record(&self, domain: &str, selector: &str) -> String {
        let k = match self.algorithm {
            Algorithm::Rsa => "rsa",
            Algorithm::Ed25519 => "ed25519",
        };
        let value = format!("v=DKIM1; k={k}; p={}", self.public);
        let strings: Vec<String> = value.as_bytes().chunks(255).map(|c| format!("\"{}\"", String::from_utf8_lossy(c))).collect();
        format!("{selector}._domainkey.{domain}. IN TXT {}", strings.join(" "))
    }
}

/// Writes a key (or another secret) with mode 0600, never over an existing file, and syncs it;
/// makes the folder if needed.
pub fn write_key(path: &Path, pem: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).with_context(|| format!("cannot create {}", path.display()))?;
    file.write_all(pem.as_bytes()).and_then(|()| file.sync_all()).with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_key_loads_and_its_record_is_split_in_255_character_strings() {
        let dir = tempfile::tempdir().unwrap();
        for (algorithm, bits) in [(Algorithm::Ed25519, 0), (Algorithm::Rsa, 2048)] {
            let generated = generate(algorithm, bits).unwrap();
            let path = dir.path().join(format!("{algorithm:?}.key"));
            write_key(&path, &generated.pem).unwrap();
            let loaded = Key::load(&path).unwrap();
            assert_eq!(matches!(loaded, Key::Ed25519(_)), algorithm == Algorithm::Ed25519);
            let record = generated.record("example.org", "s1");
            assert!(record.starts_with("s1._domainkey.example.org. IN TXT \"v=DKIM1; k="), "{record}");
            for string in record.split('"').skip(1).step_by(2) {
                assert!(string.len() <= 255, "{record}");
            }
            assert!(write_key(&path, "again").is_err(), "an existing key is never overwritten");
        }
        assert!(generate(Algorithm::Rsa, 512).is_err());
    }

    #[test]
    fn a_file_that_is_no_key_is_named_in_the_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.key");
        std::fs::write(&path, "not a key").unwrap();
        let e = format!("{:#}", Key::load(&path).err().unwrap());
        assert!(e.contains("bad.key"), "{e}");
    }
}
