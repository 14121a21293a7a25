//! DANE for SMTP (RFC 7672), `[queue] tls = "dane"`: when a domain's MX records are
//! DNSSEC-secure, each MX host's TLSA records (`_25._tcp.HOST`, secure too) decide: usable
//! records make TLS with a certificate they name the only way to that host; no records (or
//! insecure ones) leave it to opportunistic TLS; a lookup that fails or is bogus skips the
//! host (the mail waits rather than go unchecked, RFC 7672 2.2).
//!
//! RFC 7672 3.1: SMTP uses two certificate usages — DANE-EE (3): the server's own certificate
//! (or key) matches, whatever its names and dates; DANE-TA (2): a certificate of the chain the
//! server presents matches, and is the trust anchor of an ordinary check of the chain and of
//! the host's name. PKIX-TA (0) and PKIX-EE (1) records are unusable for SMTP and ignored.

use std::sync::Arc;

use ring::digest;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};

/// What DANE says about one MX host.
pub enum Host {
    /// TLS with a certificate these records name, or nothing.
    Required(Vec<Tlsa>),
    /// DANE does not apply: opportunistic TLS.
    Opportunistic,
    /// The TLSA lookup failed or was bogus: not this host now.
    Unreachable(String),
}

/// Whether `domain`'s MX records are DNSSEC-secure (RFC 7672 2.2.1: only then do the MX
/// hosts' TLSA records count).
pub async fn secure_mx(resolver: &hickory_resolver::TokioResolver, domain: &str) -> bool {
    use hickory_resolver::proto::dnssec::Proof;
    use hickory_resolver::proto::rr::RData;
    match resolver.mx_lookup(format!("{domain}.")).await {
        Ok(lookup) => {
            let mx: Vec<Proof> = lookup.answers().iter().filter(|r| matches!(r.data, RData::MX(_))).map(|r| r.proof).collect();
            !mx.is_empty() && mx.iter().all(|p| *p == Proof::Secure)
        }
        Err(_) => false,
    }
}

/// The TLSA records of `_PORT._tcp.HOST`, validated.
pub async fn host(resolver: &hickory_resolver::TokioResolver, host: &str, port: u16) -> Host {
    use hickory_resolver::proto::dnssec::Proof;
    use hickory_resolver::proto::rr::RData;
    let name = format!("_{port}._tcp.{}.", host.trim_end_matches('.'));
    match resolver.tlsa_lookup(name.as_str()).await {
        Ok(lookup) => {
            let records: Vec<(Tlsa, Proof)> = lookup
                .answers()
                .iter()
                .filter_map(|r| match &r.data {
                    RData::TLSA(t) => Some((
                        Tlsa { usage: t.cert_usage.into(), selector: t.selector.into(), matching: t.matching.into(), data: t.cert_data.clone() },
                        r.proof,
                    )),
                    _ => None,
                })
                .collect();
            if records.is_empty() || records.iter().any(|(_, proof)| *proof != Proof::Secure) {
                return Host::Opportunistic;
            }
            let usable: Vec<Tlsa> = records.into_iter().map(|(t, _)| t).filter(Tlsa::usable).collect();
            // RFC 7672 2.2: records, none usable: still authenticated TLS is expected, but
            // nothing could pass; such hosts are treated as having none.
            if usable.is_empty() {
                Host::Opportunistic
            } else {
                Host::Required(usable)
            }
        }
        Err(e) if e.is_no_records_found() || e.is_nx_domain() => Host::Opportunistic,
        Err(e) => Host::Unreachable(format!("TLSA lookup for {name}: {e}")),
    }
}

/// The client TLS that takes only a certificate `records` name.
pub fn connector(records: Vec<Tlsa>) -> Option<tokio_rustls::TlsConnector> {
    let verifier = DaneVerifier::new(records)?;
    let provider = Arc::clone(&verifier.provider);
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .ok()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    Some(tokio_rustls::TlsConnector::from(Arc::new(config)))
}

/// One TLSA record (RFC 6698 2.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tlsa {
    /// 2 DANE-TA, 3 DANE-EE (0 and 1 are not used for SMTP).
    pub usage: u8,
    /// 0: the whole certificate; 1: its SubjectPublicKeyInfo.
    pub selector: u8,
    /// 0: the selected octets themselves; 1: their SHA-256; 2: their SHA-512.
    pub matching: u8,
    pub data: Vec<u8>,
}

impl Tlsa {
    /// The record in zone-file form (`3 1 1 ABCD...`), for the TLS reports.
    pub fn text(&self) -> String {
        let hex: String = self.data.iter().map(|b| format!("{b:02X}")).collect();
        format!("{} {} {} {hex}", self.usage, self.selector, self.matching)
    }

    /// Whether SMTP can use the record (RFC 7672 3.1, 3.1.3): usage 2 or 3, a known selector
    /// and matching type, and data of the digest's length.
    pub fn usable(&self) -> bool {
        let length_ok = match self.matching {
            0 => !self.data.is_empty(),
            1 => self.data.len() == 32,
            2 => self.data.len() == 64,
            _ => false,
        };
        matches!(self.usage, 2 | 3) && self.selector <= 1 && length_ok
    }

    /// Whether `cert` is the certificate (or holds the key) the record names.
    fn matches(&self, cert: &CertificateDer<'_>) -> bool {
        let selected: Vec<u8> = match self.selector {
            0 => cert.as_ref().to_vec(),
            1 => match webpki::anchor_from_trusted_cert(cert) {
                Ok(anchor) => webpki::spki_for_anchor(&anchor).as_ref().to_vec(),
                Err(_) => return false,
            },
            _ => return false,
        };
        match self.matching {
            0 => selected == self.data,
            1 => digest::digest(&digest::SHA256, &selected).as_ref() == self.data.as_slice(),
            2 => digest::digest(&digest::SHA512, &selected).as_ref() == self.data.as_slice(),
            _ => false,
        }
    }
}

/// A rustls verifier that takes a certificate when a usable TLSA record matches it.
#[derive(Debug)]
pub struct DaneVerifier {
    records: Vec<Tlsa>,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl DaneVerifier {
    /// None when no record is usable: then DANE does not apply (RFC 7672 2.2).
    pub fn new(records: Vec<Tlsa>) -> Option<DaneVerifier> {
        let records: Vec<Tlsa> = records.into_iter().filter(Tlsa::usable).collect();
        (!records.is_empty()).then(|| DaneVerifier { records, provider: Arc::new(rustls::crypto::ring::default_provider()) })
    }

    /// DANE-TA: the chain and the name checked as usual, with `anchor` the only trust anchor.
    fn chain_to(
        &self,
        anchor: &CertificateDer<'_>,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        now: UnixTime,
    ) -> bool {
        let mut roots = rustls::RootCertStore::empty();
        if roots.add(anchor.clone().into_owned()).is_err() {
            return false;
        }
        let Ok(verifier) = rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), Arc::clone(&self.provider)).build() else {
            return false;
        };
        verifier.verify_server_cert(end_entity, intermediates, server_name, &[], now).is_ok()
    }
}

impl ServerCertVerifier for DaneVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        // DANE-EE: the server's certificate itself; names and dates are not checked (RFC
        // 7672 3.1.1).
        if self.records.iter().any(|r| r.usage == 3 && r.matches(end_entity)) {
            return Ok(ServerCertVerified::assertion());
        }
        // DANE-TA: a certificate the server sent, as the anchor of its chain (3.1.2).
        for record in self.records.iter().filter(|r| r.usage == 2) {
            for candidate in intermediates.iter().chain(std::iter::once(end_entity)) {
                if record.matches(candidate) && self.chain_to(candidate, end_entity, intermediates, server_name, now) {
                    return Ok(ServerCertVerified::assertion());
                }
            }
        }
        Err(rustls::Error::InvalidCertificate(CertificateError::ApplicationVerificationFailure))
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};

    fn sha256(data: &[u8]) -> Vec<u8> {
        digest::digest(&digest::SHA256, data).as_ref().to_vec()
    }

    fn spki(cert: &CertificateDer<'_>) -> Vec<u8> {
        webpki::spki_for_anchor(&webpki::anchor_from_trusted_cert(cert).unwrap()).as_ref().to_vec()
    }

    fn verify(records: Vec<Tlsa>, end_entity: &CertificateDer<'_>, intermediates: &[CertificateDer<'_>], name: &str) -> bool {
        let Some(verifier) = DaneVerifier::new(records) else { return false };
        let name = ServerName::try_from(name.to_string()).unwrap();
        verifier.verify_server_cert(end_entity, intermediates, &name, &[], UnixTime::now()).is_ok()
    }

    #[test]
    fn dane_ee_matches_the_servers_own_certificate_or_key_whatever_its_name() {
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(vec!["other.example".into()]).unwrap().self_signed(&key).unwrap();
        let der = cert.der().clone();
        let spki_hash = Tlsa { usage: 3, selector: 1, matching: 1, data: sha256(&spki(&der)) };
        assert!(verify(vec![spki_hash.clone()], &der, &[], "mx1.example.org"), "DANE-EE ignores the name");
        let full = Tlsa { usage: 3, selector: 0, matching: 0, data: der.as_ref().to_vec() };
        assert!(verify(vec![full], &der, &[], "mx1.example.org"));
        let sha512 = Tlsa { usage: 3, selector: 0, matching: 2, data: digest::digest(&digest::SHA512, der.as_ref()).as_ref().to_vec() };
        assert!(verify(vec![sha512], &der, &[], "mx1.example.org"));
        let other = Tlsa { data: sha256(b"another key"), ..spki_hash.clone() };
        assert!(!verify(vec![other], &der, &[], "mx1.example.org"), "no record matches");
        let pkix = Tlsa { usage: 1, ..spki_hash };
        assert!(DaneVerifier::new(vec![pkix]).is_none(), "PKIX-EE is unusable for SMTP");
    }

    #[test]
    fn dane_ta_anchors_a_chain_whose_name_must_match() {
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let server_key = KeyPair::generate().unwrap();
        let server = CertificateParams::new(vec!["mx1.example.org".into()]).unwrap().signed_by(&server_key, &ca, &ca_key).unwrap();
        let (ca_der, server_der) = (ca.der().clone(), server.der().clone());
        let anchor = Tlsa { usage: 2, selector: 0, matching: 1, data: sha256(ca_der.as_ref()) };
        assert!(verify(vec![anchor.clone()], &server_der, std::slice::from_ref(&ca_der), "mx1.example.org"));
        assert!(!verify(vec![anchor.clone()], &server_der, std::slice::from_ref(&ca_der), "mx2.example.org"), "the name is checked under DANE-TA");
        assert!(!verify(vec![anchor], &server_der, &[], "mx1.example.org"), "the anchor must be in the chain the server sends");
        let by_key = Tlsa { usage: 2, selector: 1, matching: 1, data: sha256(&spki(&ca_der)) };
        assert!(verify(vec![by_key], &server_der, std::slice::from_ref(&ca_der), "mx1.example.org"));
    }

    #[test]
    fn records_of_the_wrong_length_or_kind_are_unusable() {
        assert!(!Tlsa { usage: 3, selector: 1, matching: 1, data: vec![0; 31] }.usable());
        assert!(!Tlsa { usage: 3, selector: 2, matching: 1, data: vec![0; 32] }.usable());
        assert!(!Tlsa { usage: 0, selector: 1, matching: 1, data: vec![0; 32] }.usable());
        assert!(Tlsa { usage: 2, selector: 1, matching: 2, data: vec![0; 64] }.usable());
    }
}
