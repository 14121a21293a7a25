//! One DNS resolver for the process (`[dns] nameservers`): the queue's MX and address lookups
//! and the SPF, DKIM, DMARC and ARC checks of mail received go through it, so they share one
//! cache (hickory's, bounded, answers kept for their TTL) and one set of timeouts (hickory's
//! defaults: 5 s per query, 2 attempts per server, UDP then TCP).
//!
//! The resolver is made at the first lookup, not at start: a machine without a readable
//! `/etc/resolv.conf` still serves local mail, and every lookup reports why it cannot run.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use hickory_resolver::config::{NameServerConfig, ResolverConfig, ResolverOpts};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::dnssec::TrustAnchors;
use hickory_resolver::{ResolverBuilder, TokioResolver};
use mail_auth::MessageAuthenticator;

pub struct Dns {
    /// `[dns] nameservers`: empty for the system's (resolv.conf).
    nameservers: Vec<SocketAddr>,
    /// The resolver, made at the first lookup; `Err` says why there is none.
    resolver: OnceLock<Result<MessageAuthenticator, String>>,
    /// `[dns] dnssec_trust_anchor`: empty for the root zone's keys.
    trust_anchor: PathBuf,
    /// The resolver that validates DNSSEC (for DANE), made at its first lookup.
    validating: OnceLock<Result<TokioResolver, String>>,
}

impl Dns {
    pub fn new(nameservers: &[SocketAddr]) -> Dns {
        Dns::with_trust_anchor(nameservers, PathBuf::new())
    }

    pub fn with_trust_anchor(nameservers: &[SocketAddr], trust_anchor: PathBuf) -> Dns {
        Dns { nameservers: nameservers.to_vec(), resolver: OnceLock::new(), trust_anchor, validating: OnceLock::new() }
    }

    /// The resolver that validates DNSSEC: each record of an answer says whether it is
    /// `Secure`; a bogus answer is an error.
    pub fn validating(&self) -> Result<&TokioResolver, &str> {
        let made = self.validating.get_or_init(|| {
            let made = make_validating(&self.nameservers, &self.trust_anchor);
            if let Err(e) = &made {
                tracing::error!(error = e, "no DNSSEC-validating resolver: DANE does not apply");
            }
            made
        });
        made.as_ref().map_err(|e| e.as_str())
    }

    /// The resolver wrapped for the authentication checks (its `.resolver()` is the plain one).
    pub fn authenticator(&self) -> Result<&MessageAuthenticator, &str> {
        let made = self.resolver.get_or_init(|| {
            let made = make(&self.nameservers);
            if let Err(e) = &made {
                tracing::error!(error = e, "no DNS resolver: remote delivery and the checks of mail received wait");
            }
            made
        });
        made.as_ref().map_err(|e| e.as_str())
    }

    /// The plain resolver.
    pub fn resolver(&self) -> Result<&TokioResolver, &str> {
        self.authenticator().map(|a| a.resolver())
    }
}

/// The configured name servers (UDP, then TCP for truncated answers), else the system's.
fn make(nameservers: &[SocketAddr]) -> Result<MessageAuthenticator, String> {
    let resolver = builder(nameservers)?.build().map_err(|e| format!("cannot make a DNS resolver: {e}"))?;
    Ok(MessageAuthenticator(resolver))
}

/// The same servers, validating DNSSEC from `trust_anchor` (or the root's keys).
fn make_validating(nameservers: &[SocketAddr], trust_anchor: &Path) -> Result<TokioResolver, String> {
    let mut options = ResolverOpts::default();
    options.validate = true;
    let mut builder = builder(nameservers)?.with_options(options);
    if !trust_anchor.as_os_str().is_empty() {
        let anchors = TrustAnchors::from_file(trust_anchor).map_err(|e| format!("{}: not DNSKEY records: {e}", trust_anchor.display()))?;
        builder = builder.with_trust_anchor(Arc::new(anchors));
    }
    builder.build().map_err(|e| format!("cannot make a DNSSEC-validating resolver: {e}"))
}

fn builder(nameservers: &[SocketAddr]) -> Result<ResolverBuilder<TokioRuntimeProvider>, String> {
    Ok(if nameservers.is_empty() {
        TokioResolver::builder_tokio().map_err(|e| format!("cannot read the system's DNS configuration: {e}"))?
    } else {
        let servers = nameservers
            .iter()
            .map(|addr| {
                let mut server = NameServerConfig::udp_and_tcp(addr.ip());
                for connection in &mut server.connections {
                    connection.port = addr.port();
                }
                server
            })
            .collect();
        TokioResolver::builder_with_config(ResolverConfig::from_name_servers(servers), TokioRuntimeProvider::default())
    })
}
