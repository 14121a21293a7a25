//! The checks of mail received (`[auth_results]`): SPF when MAIL FROM arrives, DKIM, ARC and
//! DMARC at the end of the content — `authenticity::verify` runs them; this file decides for
//! which clients, puts the `Authentication-Results:` field on the message, and gives the
//! plugins their view (`host.authentication`).

use wasmail_proto::smtp::{codes, Address, Reply};

use super::session::{Flow, Session, Transaction};
use crate::authenticity::verify::{self, Outcome, Results, Spf};
use crate::plugin;

impl Session {
    /// The resolver to check this client's mail with, when it is checked: `[auth_results]`
    /// is on and the client is neither authenticated nor in `relay_networks` (whose mail is
    /// this server's users' own: it is signed, not checked — as OpenDMARC's IgnoreHosts).
    fn checked_authenticity(&self) -> Option<&mail_auth::MessageAuthenticator> {
        if !self.ctx.config.auth_results.enabled || self.may_relay() {
            return None;
        }
        // Without a resolver (the error is logged once) the mail goes unchecked.
        self.ctx.dns.authenticator().ok()
    }

    /// The client as the checks see it.
    fn authenticity_client<'a>(&'a self, sender: &'a str) -> verify::Client<'a> {
        verify::Client {
            ip: self.peer.ip(),
            helo: self.greeting.as_ref().map(|g| g.name.as_str()).unwrap_or_default(),
            sender,
            hostname: self.hostname(),
        }
    }

    /// SPF for a new transaction's envelope, when this client's mail is checked; the plugins'
    /// `on-mail-from` and `on-rcpt-to` see it.
    pub(super) async fn check_spf(&mut self, reverse_path: Option<&Address>) -> Option<Spf> {
        let spf = match self.checked_authenticity() {
            Some(auth) => {
                let sender = Address::path_text(reverse_path);
                Some(verify::check_spf(auth, &self.authenticity_client(&sender)).await)
            }
            None => None,
        };
        self.plugins.set_authentication(spf.as_ref().map(|spf| for_plugins(spf, None)));
        spf
    }

    /// SPF (from MAIL), DKIM, ARC and DMARC of a message from a client whose mail is checked:
    /// forged `Authentication-Results:` fields bearing this server's name go, its own goes on
    /// top, and the results wait in the transaction for the data hooks. The header is held to
    /// the `[mime]` header limits first (552 5.3.4 beyond them, as for the data hooks).
    pub(super) async fn check_authenticity(&mut self, transaction: &mut Transaction, content: Vec<u8>) -> Result<Vec<u8>, (Reply, Flow)> {
        let Some(spf) = transaction.spf.take() else { return Ok(content) };
        let Some(auth) = self.checked_authenticity() else { return Ok(content) };
        let content = match verify::remove_forged(&content, self.hostname(), &self.ctx.config.mime.limits()) {
            Ok(Some(kept)) => {
                tracing::info!(queue_id = transaction.queue_id, "removed Authentication-Results fields that bore this server's name");
                kept
            }
            Ok(None) => content,
            Err(e) => {
                tracing::info!(queue_id = transaction.queue_id, "message refused before the checks: {e}");
                return Err((Reply::new(552, codes::MAILBOX_FULL_SIZE, format!("Message refused: {e}")), Flow::Continue));
            }
        };
        let sender = Address::path_text(transaction.reverse_path.as_ref());
        let client = self.authenticity_client(&sender);
        let (results, field) = verify::check_message(auth, &client, spf, &content).await;
        self.plugins.set_authentication(Some(for_plugins(&results.spf, Some(&results))));
        transaction.authenticity = Some(results);
        let mut checked = Vec::with_capacity(field.len() + content.len());
        checked.extend_from_slice(field.as_bytes());
        checked.extend_from_slice(&content);
        Ok(checked)
    }
}

/// The results as the WIT gives them to plugins: SPF alone until the content is in.
fn for_plugins(spf: &Spf, results: Option<&Results>) -> plugin::AuthenticationResults {
    plugin::AuthenticationResults {
        spf: plugin::SpfCheck { result: wit_result(spf.result), domain: spf.domain.clone(), identity: spf.identity.to_string() },
        dkim: results
            .map(|r| {
                r.dkim
                    .iter()
                    .map(|d| plugin::DkimCheck { result: wit_result(d.result), domain: d.domain.clone(), selector: d.selector.clone() })
                    .collect()
            })
            .unwrap_or_default(),
        dmarc: results.map(|r| plugin::DmarcCheck {
            result: wit_result(r.dmarc.result),
            domain: r.dmarc.domain.clone(),
            policy: match r.dmarc.policy {
                verify::DmarcPolicy::None => plugin::DmarcPolicy::None,
                verify::DmarcPolicy::Quarantine => plugin::DmarcPolicy::Quarantine,
                verify::DmarcPolicy::Reject => plugin::DmarcPolicy::Reject,
            },
        }),
        arc: results.map(|r| wit_result(r.arc)),
    }
}

fn wit_result(outcome: Outcome) -> plugin::AuthResult {
    match outcome {
        Outcome::Pass => plugin::AuthResult::Pass,
        Outcome::Fail => plugin::AuthResult::Fail,
        Outcome::SoftFail => plugin::AuthResult::Softfail,
        Outcome::Neutral => plugin::AuthResult::Neutral,
        Outcome::None => plugin::AuthResult::None,
        Outcome::TempError => plugin::AuthResult::Temperror,
        Outcome::PermError => plugin::AuthResult::Permerror,
    }
}
