//! The checks of mail received from clients that are neither authenticated nor in
//! `relay_networks` (`[auth_results] enabled`): SPF (RFC 7208) as soon as MAIL FROM is known,
//! then at the end of the content DKIM (RFC 6376, every signature), ARC (RFC 8617) and DMARC
//! (RFC 7489; mail-auth finds the organizational domain by the DNS tree walk of DMARCbis,
//! RFC 9989, which replaced the Public Suffix List lookup). The results become an
//! `Authentication-Results:` field (RFC 8601) naming this server (`hostname`) as authserv-id,
//! and a summary the plugins see. The server itself refuses nothing for a result: policy is
//! the plugins' (the `dmarc-policy` example applies DMARC's).

use std::net::IpAddr;

use mail_auth::common::headers::HeaderWriter as _;
use mail_auth::dmarc::verify::DmarcParameters;
use mail_auth::dmarc::Policy;
use mail_auth::spf::verify::SpfParameters;
use mail_auth::{ArcOutput, AuthenticatedMessage, AuthenticationResults, DkimResult, DmarcResult, MessageAuthenticator, SpfOutput, SpfResult};
use wasmail_mime::{header, Limits};

/// One check's result, in RFC 8601's words (2.7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Pass,
    Fail,
    SoftFail,
    Neutral,
    None,
    TempError,
    PermError,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Pass => "pass",
            Outcome::Fail => "fail",
            Outcome::SoftFail => "softfail",
            Outcome::Neutral => "neutral",
            Outcome::None => "none",
            Outcome::TempError => "temperror",
            Outcome::PermError => "permerror",
        }
    }

    fn of_spf(result: SpfResult) -> Outcome {
        match result {
            SpfResult::Pass => Outcome::Pass,
            SpfResult::Fail => Outcome::Fail,
            SpfResult::SoftFail => Outcome::SoftFail,
            SpfResult::Neutral => Outcome::Neutral,
            SpfResult::TempError => Outcome::TempError,
            SpfResult::PermError => Outcome::PermError,
            SpfResult::None => Outcome::None,
        }
    }

    fn of_dkim(result: &DkimResult) -> Outcome {
        match result {
            DkimResult::Pass => Outcome::Pass,
            DkimResult::Neutral(_) => Outcome::Neutral,
            DkimResult::Fail(_) => Outcome::Fail,
            DkimResult::PermError(_) => Outcome::PermError,
            DkimResult::TempError(_) => Outcome::TempError,
            DkimResult::None => Outcome::None,
        }
    }

    fn of_dmarc(result: &DmarcResult) -> Outcome {
        match result {
            DmarcResult::Pass => Outcome::Pass,
            DmarcResult::Fail(_) => Outcome::Fail,
            DmarcResult::TempError(_) => Outcome::TempError,
            DmarcResult::PermError(_) => Outcome::PermError,
            DmarcResult::None => Outcome::None,
        }
    }
}

/// SPF's verdict on the envelope: the MAIL FROM domain's, or for the null sender the HELO
/// name's (RFC 7208 2.4).
#[derive(Debug, Clone)]
pub struct Spf {
    pub result: Outcome,
    /// The domain whose record decided.
    pub domain: String,
    /// `"mailfrom"` or `"helo"`.
    pub identity: &'static str,
    /// mail-auth's output, for the header and DMARC.
    output: SpfOutput,
}

/// One DKIM signature's verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dkim {
    pub result: Outcome,
    /// `d=` and `s=` (empty when the signature could not be read).
    pub domain: String,
    pub selector: String,
}

/// The `p=` of the DMARC record that applied (after `t=y` lowered it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DmarcPolicy {
    None,
    Quarantine,
    Reject,
}

impl DmarcPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            DmarcPolicy::None => "none",
            DmarcPolicy::Quarantine => "quarantine",
            DmarcPolicy::Reject => "reject",
        }
    }
}

/// DMARC's verdict on the `From:` domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dmarc {
    pub result: Outcome,
    /// The `From:` header's domain (empty when there is none, or several).
    pub domain: String,
    pub policy: DmarcPolicy,
}

/// Everything the checks of one message found.
#[derive(Debug, Clone)]
pub struct Results {
    pub spf: Spf,
    pub dkim: Vec<Dkim>,
    pub dmarc: Dmarc,
    pub arc: Outcome,
}

impl Results {
    /// `spf=pass dkim=pass,fail dmarc=pass arc=none`, for the log line.
    pub fn summary(&self) -> String {
        let dkim: Vec<&str> = self.dkim.iter().map(|d| d.result.as_str()).collect();
        format!(
            "spf={} dkim={} dmarc={} arc={}",
            self.spf.result.as_str(),
            if dkim.is_empty() { "none".to_string() } else { dkim.join(",") },
            self.dmarc.result.as_str(),
            self.arc.as_str()
        )
    }
}

/// Who sent the message, as the checks need it.
pub struct Client<'a> {
    pub ip: IpAddr,
    /// The HELO/EHLO name.
    pub helo: &'a str,
    /// The MAIL FROM address, empty for the null sender.
    pub sender: &'a str,
    /// This server's name: SPF's `%{r}` and the authserv-id.
    pub hostname: &'a str,
}

/// SPF for the envelope (RFC 7208 2.4: the null sender's identity is postmaster@HELO).
pub async fn check_spf(auth: &MessageAuthenticator, client: &Client<'_>) -> Spf {
    let (params, identity) = if client.sender.is_empty() {
        (SpfParameters::verify_ehlo(client.ip, client.helo, client.hostname), "helo")
    } else {
        (SpfParameters::verify_mail_from(client.ip, client.helo, client.hostname, client.sender), "mailfrom")
    };
    let output = auth.verify_spf(params).await;
    Spf { result: Outcome::of_spf(output.result()), domain: output.domain().to_string(), identity, output }
}

/// DKIM, ARC and DMARC for `content` (as received), with the envelope's SPF result. Returns
/// the results and the `Authentication-Results:` field (CRLF-ended) to put on top.
pub async fn check_message(auth: &MessageAuthenticator, client: &Client<'_>, spf: Spf, content: &[u8]) -> (Results, String) {
    match parse(content) {
        Some(message) => {
            let evaluation = evaluate(auth, client, spf, &message).await;
            (evaluation.results, evaluation.header.to_header())
        }
        None => {
            // Not a message mail-auth can read (no header at all): nothing signed, no author.
            let header = spf_header(AuthenticationResults::new(client.hostname), client, &spf).to_header();
            let dmarc = Dmarc { result: Outcome::None, domain: String::new(), policy: DmarcPolicy::None };
            (Results { spf, dkim: Vec::new(), dmarc, arc: Outcome::None }, header)
        }
    }
}

/// DKIM signatures checked per message, top down (the most recent signers first); the rest
/// are not looked up. Each costs a DNS query for its key, and a message may carry any number
/// of them: OpenDKIM checks 3 by default (MaximumSignaturesToVerify), mail-auth all.
pub const MAX_DKIM_SIGNATURES: usize = 10;

/// The message as mail-auth reads it, with at most [`MAX_DKIM_SIGNATURES`] signatures.
pub fn parse(content: &[u8]) -> Option<AuthenticatedMessage<'_>> {
    let mut message = AuthenticatedMessage::parse(content)?;
    if message.dkim_headers.len() > MAX_DKIM_SIGNATURES {
        tracing::info!(signatures = message.dkim_headers.len(), checked = MAX_DKIM_SIGNATURES, "more DKIM signatures than are checked");
        message.dkim_headers.truncate(MAX_DKIM_SIGNATURES);
    }
    Some(message)
}

/// What [`evaluate`] found: the summary, and mail-auth's own records of it (for the header
/// and for an ARC seal).
pub struct Evaluation<'m> {
    pub results: Results,
    pub header: AuthenticationResults<'m>,
    pub arc: ArcOutput<'m>,
}

/// DKIM, ARC and DMARC of a parsed message, with the envelope's SPF result.
pub async fn evaluate<'m>(auth: &MessageAuthenticator, client: &Client<'m>, spf: Spf, message: &'m AuthenticatedMessage<'m>) -> Evaluation<'m> {
    let dkim_outputs = auth.verify_dkim(message).await;
    let arc_output = auth.verify_arc(message).await;
    let mail_from_domain = client.sender.rsplit_once('@').map_or(client.helo, |(_, d)| d);
    let dmarc_output = auth.verify_dmarc(DmarcParameters::new(message, &dkim_outputs, mail_from_domain, &spf.output)).await;
    let from = message.from.first().map(String::as_str).unwrap_or_default();
    let header = spf_header(AuthenticationResults::new(client.hostname), client, &spf)
        .with_dkim_results(&dkim_outputs, from)
        .with_arc_result(&arc_output, client.ip)
        .with_dmarc_result(&dmarc_output);
    let dkim = dkim_outputs
        .iter()
        .map(|d| Dkim {
            result: Outcome::of_dkim(d.result()),
            domain: d.signature().map(|s| s.d.clone()).unwrap_or_default(),
            selector: d.signature().map(|s| s.s.clone()).unwrap_or_default(),
        })
        .collect();
    let policy = match dmarc_output.policy() {
        Policy::Reject => DmarcPolicy::Reject,
        Policy::Quarantine => DmarcPolicy::Quarantine,
        Policy::None | Policy::Unspecified => DmarcPolicy::None,
    };
    let dmarc = Dmarc { result: Outcome::of_dmarc(&dmarc_output.result()), domain: dmarc_output.domain().to_string(), policy };
    let results = Results { spf, dkim, dmarc, arc: Outcome::of_dkim(arc_output.result()) };
    Evaluation { results, header, arc: arc_output }
}

/// The header's SPF part: the MAIL FROM identity's, or the HELO name's for the null sender.
fn spf_header<'m>(header: AuthenticationResults<'m>, client: &Client<'_>, spf: &Spf) -> AuthenticationResults<'m> {
    match spf.identity {
        "helo" => header.with_spf_ehlo_result(&spf.output, client.ip, client.helo),
        _ => header.with_spf_mailfrom_result(&spf.output, client.ip, client.sender, client.helo),
    }
}

/// `content` without the `Authentication-Results:` fields that claim to come from
/// `authserv_id` — this server — which only it may write (RFC 8601 5: a receiver removes or
/// renames such fields before adding its own). The header is held to `limits` first.
pub fn remove_forged(content: &[u8], authserv_id: &str, limits: &Limits) -> Result<Option<Vec<u8>>, wasmail_mime::LimitExceeded> {
    let section = wasmail_mime::parser::header_section(content, 0..content.len(), limits)?;
    let forged: Vec<&header::Field> = section
        .fields
        .iter()
        .filter(|f| f.name.eq_ignore_ascii_case("Authentication-Results"))
        .filter(|f| authserv_id_of(&header::unfolded_value(content, f)).eq_ignore_ascii_case(authserv_id))
        .collect();
    if forged.is_empty() {
        return Ok(None);
    }
    let mut kept = Vec::with_capacity(content.len());
    let mut at = 0;
    for field in forged {
        kept.extend_from_slice(&content[at..field.start]);
        at = field.end;
    }
    kept.extend_from_slice(&content[at..]);
    Ok(Some(kept))
}

/// The authserv-id of an `Authentication-Results:` value: its first word, comments (RFC 5322
/// CFWS) left out — `mx.example.org` in `(note) mx.example.org 1; spf=pass`.
fn authserv_id_of(value: &str) -> String {
    let mut out = String::new();
    let mut depth = 0usize;
    for c in value.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            _ if depth > 0 => {}
            ';' => break,
            c if c.is_whitespace() => {
                if !out.is_empty() {
                    break;
                }
            }
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_authserv_id_is_the_first_word_outside_comments() {
        assert_eq!(authserv_id_of("mx.test; spf=pass"), "mx.test");
        assert_eq!(authserv_id_of(" (forged) MX.test 1; none"), "MX.test");
        assert_eq!(authserv_id_of("mx.test;"), "mx.test");
        assert_eq!(authserv_id_of("other.example; dkim=pass"), "other.example");
    }

    #[test]
    fn only_the_fields_bearing_this_servers_id_are_removed() {
        let content = b"Authentication-Results: mx.test;\r\n\tdkim=pass header.d=bank.example\r\n\
            Authentication-Results: upstream.example; spf=pass\r\nSubject: hi\r\n\
            Authentication-Results: (x) MX.TEST; dmarc=pass\r\n\r\nbody\r\n";
        let kept = remove_forged(content, "mx.test", &Limits::default()).unwrap().unwrap();
        assert_eq!(kept, b"Authentication-Results: upstream.example; spf=pass\r\nSubject: hi\r\n\r\nbody\r\n");
        assert_eq!(remove_forged(b"Subject: hi\r\n\r\nx\r\n", "mx.test", &Limits::default()).unwrap(), None);
    }
}
