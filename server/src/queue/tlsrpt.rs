//! What SMTP TLS reporting (RFC 8460) needs, kept per day: each relay session to a domain
//! reached through its MX records is one line in `DATA_DIR/tlsrpt/YYYY-MM-DD.jsonl` — the
//! domain, the MTA-STS policy that applied (or none), the MX host and address, and whether TLS
//! was negotiated (and, under the policy, checked) or which RFC 8460 result type failed it.
//! `wasmail tls report DOMAIN [--date DAY]` turns a day of lines into the RFC 8460 JSON.
//!
//! A line is one `write` to a file opened for appending, so concurrent sessions never mix
//! their lines. Days older than [`KEEP_DAYS`] are removed when a new day's file is begun.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::sts::{Mode, Policy};

/// Days of session lines kept.
pub const KEEP_DAYS: u64 = 31;

/// One relay session, as a line of the day's file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    /// The recipient domain (the policy domain).
    pub domain: String,
    /// The MTA-STS policy that applied, if any.
    pub policy: Option<Policy>,
    /// The TLSA records that applied (DANE), in zone-file form; empty for none.
    #[serde(default)]
    pub tlsa: Vec<String>,
    /// The MX host's name and the address connected to.
    pub mx: String,
    pub ip: String,
    /// `None`: TLS was negotiated (and checked, where the policy asked); else the RFC 8460
    /// result type of the failure.
    pub failure: Option<String>,
    /// The failure's text, for `additional-information`.
    #[serde(default)]
    pub detail: String,
}

/// Appends `session` to today's file under `dir`.
pub fn record(dir: &Path, session: &Session) {
    let day = super::now() / 86400;
    let file = dir.join(format!("{}.jsonl", date(day)));
    let new_day = !file.exists();
    let mut line = serde_json::to_vec(session).expect("a session serializes");
    line.push(b'\n');
    let written = std::fs::create_dir_all(dir)
        .and_then(|()| std::fs::OpenOptions::new().create(true).append(true).open(&file))
        .and_then(|mut f| f.write_all(&line));
    if let Err(e) = written {
        tracing::warn!(file = %file.display(), error = %e, "cannot record the TLS session for the reports");
        return;
    }
    if new_day {
        prune(dir, day);
    }
}

/// Removes the days older than [`KEEP_DAYS`].
fn prune(dir: &Path, today: u64) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(day) = name.strip_suffix(".jsonl").and_then(parse_date) {
            if day + KEEP_DAYS < today {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
}

/// The RFC 8460 report (4.4) of `domain` for `day` (days since the epoch), as JSON; None when
/// no session to the domain was recorded that day.
pub fn report(dir: &Path, domain: &str, day: u64, hostname: &str) -> std::io::Result<Option<serde_json::Value>> {
    let file: PathBuf = dir.join(format!("{}.jsonl", date(day)));
    let text = match std::fs::read_to_string(&file) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let domain = domain.trim_end_matches('.').to_ascii_lowercase();
    // Per policy (its JSON as the key keeps equal policies together).
    let mut policies: BTreeMap<String, Tally> = BTreeMap::new();
    for session in text.lines().filter_map(|l| serde_json::from_str::<Session>(l).ok()).filter(|s| s.domain == domain) {
        let key = serde_json::to_string(&(session.policy.as_ref().map(|p| (p.mode, &p.mx, p.max_age, &p.id)), &session.tlsa)).expect("serializes");
        let tally = policies.entry(key).or_insert_with(|| Tally {
            policy: session.policy.clone(),
            tlsa: session.tlsa.clone(),
            successes: 0,
            failures: BTreeMap::new(),
        });
        match session.failure {
            None => tally.successes += 1,
            Some(kind) => *tally.failures.entry((kind, session.mx, session.ip, session.detail)).or_default() += 1,
        }
    }
    if policies.is_empty() {
        return Ok(None);
    }
    let start = format!("{}T00:00:00Z", date(day));
    let policies: Vec<serde_json::Value> = policies
        .into_values()
        .map(|Tally { policy, tlsa, successes, failures }| {
            let failed: u64 = failures.values().sum();
            let details: Vec<serde_json::Value> = failures
                .into_iter()
                .map(|((kind, mx, ip, detail), count)| {
                    serde_json::json!({
                        "result-type": kind,
                        "receiving-mx-hostname": mx,
                        "receiving-ip": ip,
                        "failed-session-count": count,
                        "additional-information": detail,
                    })
                })
                .collect();
            serde_json::json!({
                "policy": policy_json(policy.as_ref(), &tlsa, &domain),
                "summary": { "total-successful-session-count": successes, "total-failure-session-count": failed },
                "failure-details": details,
            })
        })
        .collect();
    Ok(Some(serde_json::json!({
        "organization-name": hostname,
        "date-range": { "start-datetime": start, "end-datetime": format!("{}T23:59:59Z", date(day)) },
        "contact-info": format!("postmaster@{hostname}"),
        "report-id": format!("{start}_{domain}@{hostname}"),
        "policies": policies,
    })))
}

/// One policy's sessions: successes, and failures by (result type, MX host, address, text).
struct Tally {
    policy: Option<Policy>,
    tlsa: Vec<String>,
    successes: u64,
    failures: BTreeMap<(String, String, String, String), u64>,
}

/// RFC 8460 4.4's `policy`: the TLSA records (DANE), the MTA-STS policy as its lines, or
/// `no-policy-found`.
fn policy_json(policy: Option<&Policy>, tlsa: &[String], domain: &str) -> serde_json::Value {
    if !tlsa.is_empty() {
        return serde_json::json!({ "policy-type": "tlsa", "policy-string": tlsa, "policy-domain": domain });
    }
    match policy {
        Some(p) => {
            let mode = match p.mode {
                Mode::Enforce => "enforce",
                Mode::Testing => "testing",
                Mode::None => "none",
            };
            let mut lines = vec!["version: STSv1".to_string(), format!("mode: {mode}")];
            lines.extend(p.mx.iter().map(|mx| format!("mx: {mx}")));
            lines.push(format!("max_age: {}", p.max_age));
            serde_json::json!({ "policy-type": "sts", "policy-string": lines, "policy-domain": domain, "mx-host": p.mx })
        }
        None => serde_json::json!({ "policy-type": "no-policy-found", "policy-domain": domain }),
    }
}

/// `YYYY-MM-DD` of a day since the epoch (UTC).
pub fn date(day: u64) -> String {
    let secs = i64::try_from(day * 86400).unwrap_or(0);
    chrono::DateTime::from_timestamp(secs, 0).map(|t| t.format("%Y-%m-%d").to_string()).unwrap_or_default()
}

/// The day since the epoch of `YYYY-MM-DD`.
pub fn parse_date(text: &str) -> Option<u64> {
    let date = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d").ok()?;
    u64::try_from(date.and_hms_opt(0, 0, 0)?.and_utc().timestamp() / 86400).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_day_of_sessions_becomes_an_rfc_8460_report() {
        let dir = tempfile::tempdir().unwrap();
        let policy = Policy::parse("version: STSv1\nmode: enforce\nmx: mx1.example.org\nmax_age: 86400\n", "1", 0).unwrap();
        let session = |failure: Option<&str>| Session {
            domain: "example.org".into(),
            policy: Some(policy.clone()),
            tlsa: Vec::new(),
            mx: "mx1.example.org".into(),
            ip: "192.0.2.1".into(),
            failure: failure.map(str::to_string),
            detail: failure.map(|_| "TLS handshake: invalid peer certificate: UnknownIssuer".to_string()).unwrap_or_default(),
        };
        for failure in [None, None, Some("certificate-not-trusted"), Some("certificate-not-trusted")] {
            record(dir.path(), &session(failure));
        }
        record(dir.path(), &Session { domain: "other.example".into(), policy: None, ..session(None) });
        let today = super::super::now() / 86400;
        let report = report(dir.path(), "example.org", today, "mx.example.net").unwrap().unwrap();
        let policies = report["policies"].as_array().unwrap();
        assert_eq!(policies.len(), 1);
        assert_eq!(policies[0]["policy"]["policy-type"], "sts");
        assert_eq!(policies[0]["policy"]["policy-string"][1], "mode: enforce");
        assert_eq!(policies[0]["summary"]["total-successful-session-count"], 2);
        assert_eq!(policies[0]["summary"]["total-failure-session-count"], 2);
        assert_eq!(policies[0]["failure-details"][0]["result-type"], "certificate-not-trusted");
        assert_eq!(policies[0]["failure-details"][0]["failed-session-count"], 2);
        assert_eq!(report["date-range"]["start-datetime"], format!("{}T00:00:00Z", date(today)));
        let other = super::report(dir.path(), "other.example", today, "mx.example.net").unwrap().unwrap();
        assert_eq!(other["policies"][0]["policy"]["policy-type"], "no-policy-found");
        assert!(super::report(dir.path(), "nobody.example", today, "mx").unwrap().is_none());
        assert_eq!(parse_date(&date(today)), Some(today));
    }
}
