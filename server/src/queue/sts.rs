//! MTA-STS (RFC 8461): a domain publishes `_mta-sts.DOMAIN` TXT (`v=STSv1; id=...`) and a
//! policy at `https://mta-sts.DOMAIN/.well-known/mta-sts.txt` naming the MX hosts that may
//! take its mail and a mode: `enforce` (TLS with a certificate valid for the MX host's name,
//! or no delivery), `testing` (deliver anyway; report), `none`.
//!
//! Policies are fetched over HTTPS (hyper over this server's rustls connection, the
//! certificate checked against the system's roots and `[queue] tls_ca_files`; no redirects,
//! at most [`MAX_POLICY`] octets, within [`FETCH_TIMEOUT`]) when the TXT record's id is new,
//! and cached for their `max_age` in memory and under `DATA_DIR/mta-sts/` — so that an
//! attacker who strips the TXT record (or a restart) does not turn a policy off (RFC 8461
//! 5.1: without a TXT record a cached policy still applies).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http_body_util::BodyExt as _;
use serde::{Deserialize, Serialize};

/// The largest policy taken (RFC 8461 3.3 leaves it to the sender; policies are a few lines).
pub const MAX_POLICY: usize = 64 * 1024;
/// The whole fetch: connection, TLS, request and body.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(30);
/// RFC 8461 3.2: max_age is at most a year.
const MAX_AGE_LIMIT: u64 = 31_557_600;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Enforce,
    Testing,
    None,
}

/// A domain's policy, as fetched.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policy {
    /// The TXT record's id when it was fetched.
    pub id: String,
    pub mode: Mode,
    /// `mx` patterns: host names, or `*.` and a domain (one label, RFC 8461 4.1).
    pub mx: Vec<String>,
    pub max_age: u64,
    /// When it was fetched (Unix seconds).
    pub fetched: u64,
}

impl Policy {
    /// The policy text (RFC 8461 3.2): `key: value` lines; `version: STSv1`, `mode`, one or
    /// more `mx` (all but `none`), `max_age`; other keys are ignored.
    pub fn parse(text: &str, id: &str, fetched: u64) -> Result<Policy, String> {
        let (mut version, mut mode, mut mx, mut max_age) = (None, None, Vec::new(), None);
        for line in text.lines() {
            let Some((key, value)) = line.split_once(':') else { continue };
            let value = value.trim();
            match key.trim() {
                "version" => version = Some(value.to_string()),
                "mode" => {
                    mode = Some(match value {
                        "enforce" => Mode::Enforce,
                        "testing" => Mode::Testing,
                        "none" => Mode::None,
                        other => return Err(format!("unknown mode {other:?}")),
                    })
                }
                "mx" => mx.push(value.to_ascii_lowercase()),
                "max_age" => max_age = Some(value.parse::<u64>().map_err(|_| format!("max_age {value:?} is not a number"))?.min(MAX_AGE_LIMIT)),
                _ => {}
            }
        }
        if version.as_deref() != Some("STSv1") {
            return Err("no `version: STSv1`".into());
        }
        let mode = mode.ok_or("no mode")?;
        let max_age = max_age.ok_or("no max_age")?;
        if mx.is_empty() && mode != Mode::None {
            return Err("no mx".into());
        }
        Ok(Policy { id: id.to_string(), mode, mx, max_age, fetched })
    }

    /// Whether the MX host `host` is one the policy names (RFC 8461 4.1: a `*.` pattern
    /// stands for exactly one label).
    pub fn allows(&self, host: &str) -> bool {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        self.mx.iter().any(|pattern| match pattern.strip_prefix("*.") {
            Some(parent) => host.split_once('.').is_some_and(|(label, rest)| !label.is_empty() && rest == parent),
            None => *pattern == host,
        })
    }

    fn expired(&self, now: u64) -> bool {
        now >= self.fetched.saturating_add(self.max_age)
    }
}

/// The policy cache, and what fetching needs.
pub struct Sts {
    /// `DATA_DIR/mta-sts`: one JSON file per domain.
    dir: PathBuf,
    policies: Mutex<HashMap<String, Policy>>,
}

/// How to fetch: the resolver, the policy hosts' port, the checked TLS client.
pub struct Fetcher<'a> {
    pub resolver: &'a hickory_resolver::TokioResolver,
    pub port: u16,
    pub tls: Arc<rustls::ClientConfig>,
}

impl Sts {
    /// The cache, with the policies saved under `dir` that have not expired.
    pub fn open(dir: PathBuf) -> Sts {
        let now = super::now();
        let mut policies = HashMap::new();
        if let Ok(entries) = std::fs::read_dir(&dir) {
            for entry in entries.flatten() {
                let path = entry.path();
                let (Some(domain), Some("json")) = (path.file_stem().and_then(|s| s.to_str()), path.extension().and_then(|e| e.to_str())) else {
                    continue;
                };
                match std::fs::read(&path).ok().and_then(|bytes| serde_json::from_slice::<Policy>(&bytes).ok()) {
                    Some(policy) if !policy.expired(now) => {
                        policies.insert(domain.to_string(), policy);
                    }
                    _ => {
                        let _ = std::fs::remove_file(&path);
                    }
                }
            }
        }
        Sts { dir, policies: Mutex::new(policies) }
    }

    /// The policy that applies to mail for `domain` now (RFC 8461 5.1), fetching a new one
    /// when the TXT record names a new id. None: the domain has none.
    pub async fn policy(&self, domain: &str, fetcher: &Fetcher<'_>) -> Option<Policy> {
        let domain = domain.trim_end_matches('.').to_ascii_lowercase();
        let now = super::now();
        let cached = self.policies.lock().expect("sts cache").get(&domain).cloned().filter(|p| !p.expired(now));
        let id = match txt_id(fetcher.resolver, &domain).await {
            Ok(Some(id)) => id,
            // No record (or none that parses): a cached policy still applies.
            Ok(None) => return cached,
            Err(e) => {
                tracing::info!(domain, error = e, "MTA-STS record lookup failed; using the cached policy, if any");
                return cached;
            }
        };
        if let Some(policy) = cached.as_ref().filter(|p| p.id == id) {
            return Some(policy.clone());
        }
        let host = format!("mta-sts.{domain}");
        match fetch(&host, fetcher).await.and_then(|text| Policy::parse(&text, &id, now)) {
            Ok(policy) => {
                tracing::info!(domain, id, mode = ?policy.mode, mx = policy.mx.join(","), max_age = policy.max_age, "MTA-STS policy fetched");
                self.keep(&domain, &policy);
                Some(policy)
            }
            Err(e) => {
                // RFC 8461 5.1: a policy that cannot be fetched leaves the cached one in force.
                tracing::warn!(domain, error = e, "cannot fetch the MTA-STS policy; using the cached one, if any");
                cached
            }
        }
    }

    fn keep(&self, domain: &str, policy: &Policy) {
        self.policies.lock().expect("sts cache").insert(domain.to_string(), policy.clone());
        let saved = std::fs::create_dir_all(&self.dir).and_then(|()| {
            let tmp = self.dir.join(format!("{domain}.tmp"));
            std::fs::write(&tmp, serde_json::to_vec(policy).expect("a policy serializes"))?;
            std::fs::rename(&tmp, self.dir.join(format!("{domain}.json")))
        });
        if let Err(e) = saved {
            tracing::warn!(domain, error = %e, "cannot save the MTA-STS policy; it is cached in memory only");
        }
    }
}

/// The id of `_mta-sts.DOMAIN`'s `v=STSv1` record (mail-auth parses it). Several records, or
/// none that parses, count as none (RFC 8461 3.1).
async fn txt_id(resolver: &hickory_resolver::TokioResolver, domain: &str) -> Result<Option<String>, String> {
    use mail_auth::common::parse::TxtRecordParser as _;
    let lookup = match resolver.txt_lookup(format!("_mta-sts.{domain}.")).await {
        Ok(lookup) => lookup,
        Err(e) if e.is_nx_domain() || e.is_no_records_found() => return Ok(None),
        Err(e) => return Err(e.to_string()),
    };
    let ids: Vec<String> = lookup
        .answers()
        .iter()
        .filter_map(|r| match &r.data {
            hickory_resolver::proto::rr::RData::TXT(txt) => Some(txt.txt_data.iter().flat_map(|s| s.iter().copied()).collect::<Vec<u8>>()),
            _ => None,
        })
        .filter_map(|record| mail_auth::mta_sts::MtaSts::parse(&record).ok())
        .map(|record| record.id)
        .collect();
    Ok(match ids.as_slice() {
        [id] => Some(id.clone()),
        _ => None,
    })
}

/// GET `https://HOST/.well-known/mta-sts.txt`: status 200, `text/plain`, at most
/// [`MAX_POLICY`] octets, all within [`FETCH_TIMEOUT`].
async fn fetch(host: &str, fetcher: &Fetcher<'_>) -> Result<String, String> {
    tokio::time::timeout(FETCH_TIMEOUT, fetch_unbounded_in_time(host, fetcher))
        .await
        .map_err(|_| format!("https://{host}: no policy within {} s", FETCH_TIMEOUT.as_secs()))?
}

async fn fetch_unbounded_in_time(host: &str, fetcher: &Fetcher<'_>) -> Result<String, String> {
    let url = format!("https://{host}/.well-known/mta-sts.txt");
    let ip =
        fetcher.resolver.lookup_ip(format!("{host}.")).await.map_err(|e| format!("{url}: {e}"))?.iter().next().ok_or(format!("{url}: no address"))?;
    let tcp = tokio::net::TcpStream::connect(SocketAddr::new(ip, fetcher.port)).await.map_err(|e| format!("{url}: {e}"))?;
    let name = rustls::pki_types::ServerName::try_from(host.to_string()).map_err(|e| format!("{url}: {e}"))?;
    let tls = tokio_rustls::TlsConnector::from(Arc::clone(&fetcher.tls)).connect(name, tcp).await.map_err(|e| format!("{url}: TLS: {e}"))?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls)).await.map_err(|e| format!("{url}: {}", with_causes(&e)))?;
    let driver = tokio::spawn(connection);
    let request = hyper::Request::get("/.well-known/mta-sts.txt")
        .header(hyper::header::HOST, host)
        .body(http_body_util::Empty::<hyper::body::Bytes>::new())
        .map_err(|e| format!("{url}: {e}"))?;
    let result = async {
        let response = sender.send_request(request).await.map_err(|e| format!("{url}: {}", with_causes(&e)))?;
        // RFC 8461 3.3: redirects are not followed; the policy is text/plain.
        if response.status() != hyper::StatusCode::OK {
            return Err(format!("{url}: HTTP {}", response.status()));
        }
        let content_type = response.headers().get(hyper::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
        if !content_type.trim_start().to_ascii_lowercase().starts_with("text/plain") {
            return Err(format!("{url}: Content-Type {content_type:?}, not text/plain"));
        }
        let mut body = response.into_body();
        let mut text = Vec::new();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| format!("{url}: {}", with_causes(&e)))?;
            if let Some(data) = frame.data_ref() {
                if text.len() + data.len() > MAX_POLICY {
                    return Err(format!("{url}: the policy is larger than {MAX_POLICY} octets"));
                }
                text.extend_from_slice(data);
            }
        }
        String::from_utf8(text).map_err(|_| format!("{url}: the policy is not UTF-8"))
    }
    .await;
    driver.abort();
    result
}

/// An error and what caused it (hyper's own text is only "connection error").
fn with_causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: &str = "version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\nmx: *.example.net\r\nmax_age: 604800\r\n";

    #[test]
    fn a_policy_is_read_and_its_mx_patterns_match_one_label() {
        let policy = Policy::parse(POLICY, "20260101", 1000).unwrap();
        assert_eq!((policy.mode, policy.max_age, policy.mx.len()), (Mode::Enforce, 604800, 2));
        assert!(policy.allows("mail.example.com") && policy.allows("MAIL.example.com."));
        assert!(policy.allows("mx1.example.net"));
        assert!(!policy.allows("a.b.example.net"), "one label only");
        assert!(!policy.allows("example.net") && !policy.allows("evil-mail.example.com"));
        assert!(!policy.expired(1000 + 604799) && policy.expired(1000 + 604800));
    }

    #[test]
    fn a_bad_policy_is_refused_with_a_reason() {
        assert!(Policy::parse("mode: enforce\nmx: a\nmax_age: 1\n", "1", 0).unwrap_err().contains("version"));
        assert!(Policy::parse("version: STSv1\nmode: sometimes\nmx: a\nmax_age: 1\n", "1", 0).unwrap_err().contains("mode"));
        assert!(Policy::parse("version: STSv1\nmode: enforce\nmax_age: 1\n", "1", 0).unwrap_err().contains("mx"));
        assert!(Policy::parse("version: STSv1\nmode: none\nmax_age: 86400\n", "1", 0).is_ok(), "none needs no mx");
        let capped = Policy::parse("version: STSv1\nmode: testing\nmx: a\nmax_age: 99999999999\n", "1", 0).unwrap();
        assert_eq!(capped.max_age, MAX_AGE_LIMIT);
    }

    #[test]
    fn saved_policies_come_back_and_expired_ones_are_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let sts = Sts::open(dir.path().to_path_buf());
        let now = super::super::now();
        sts.keep("example.com", &Policy::parse(POLICY, "a", now).unwrap());
        sts.keep("old.example", &Policy::parse("version: STSv1\nmode: enforce\nmx: a\nmax_age: 10\n", "b", now - 100).unwrap());
        let again = Sts::open(dir.path().to_path_buf());
        let policies = again.policies.lock().unwrap();
        assert_eq!(policies.get("example.com").map(|p| p.id.as_str()), Some("a"));
        assert!(!policies.contains_key("old.example"));
        assert!(!dir.path().join("old.example.json").exists());
    }
}
