//! DMARC's policy applied (RFC 7489 6.3, 6.7): a message whose `From:` domain fails DMARC is
//! refused when the domain asks for `p=reject`, and goes to the Junk folder of each local
//! recipient when it asks for `p=quarantine`. The server's checks decide pass or fail; this
//! plugin decides what happens. See README.md.

use wasmail_plugin_sdk::host::{self, AuthResult, DmarcPolicy as Policy};
use wasmail_plugin_sdk::{
    export_plugin, DataResult, Decision, Envelope, Header, HeaderChange, HeaderRef, Hook, Manifest, MessageInfo, Plugin, RecipientInfo, Reply, Route,
    Verdict,
};

/// The mark `on_data` leaves for the route hook, which runs later from the queue on an
/// instance of its own (and has no other way to learn what `on_data` decided). Any such field
/// a client sent is removed first, so a sender can put no message in Junk but by failing.
const MARK: &str = "X-Wasmail-DMARC";

#[derive(Default)]
struct DmarcPolicy;

/// A `[config]` switch: "true" or "false" (anything else is the default, with a warning).
fn switch(key: &str, default: bool) -> bool {
    match host::config(key).as_deref().map(str::trim) {
        None => default,
        Some("true") => true,
        Some("false") => false,
        Some(other) => {
            host::warn(&format!("config {key} = {other:?} is neither true nor false; using {default}"));
            default
        }
    }
}

/// What to do with a message, from the checks' results and the switches.
#[derive(Debug, PartialEq, Eq)]
enum Action {
    Pass,
    Reject(String),
    Quarantine(String),
}

fn decide(result: AuthResult, policy: Policy, domain: &str, reject: bool, quarantine: bool) -> Action {
    if result != AuthResult::Fail {
        return Action::Pass;
    }
    match policy {
        Policy::Reject if reject => Action::Reject(domain.to_string()),
        // RFC 7489 6.7: a receiver may apply a less severe policy than the one asked for.
        Policy::Reject | Policy::Quarantine if quarantine => Action::Quarantine(domain.to_string()),
        _ => Action::Pass,
    }
}

impl Plugin for DmarcPolicy {
    fn manifest() -> Manifest {
        Manifest::new("dmarc-policy", env!("CARGO_PKG_VERSION")).hook(Hook::Data).hook(Hook::Route)
    }

    fn on_data(&mut self, _envelope: Envelope, headers: Vec<Header>) -> DataResult {
        // Removing the first of a name repeatedly removes them all (each change sees the
        // header as the ones before it left it).
        let mut changes: Vec<HeaderChange> = headers
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case(MARK))
            .map(|_| HeaderChange::Remove(HeaderRef { name: MARK.to_string(), index: 1 }))
            .collect();
        let Some(dmarc) = host::authentication().and_then(|results| results.dmarc) else {
            return DataResult::changes(changes);
        };
        match decide(dmarc.result, dmarc.policy, &dmarc.domain, switch("reject", true), switch("quarantine", true)) {
            Action::Pass => DataResult::changes(changes),
            Action::Reject(domain) => {
                host::info(&format!("refused: DMARC fails for {domain}, whose policy is reject"));
                let text = format!("Message refused: it fails the DMARC policy of {domain} (RFC 7489)");
                DataResult { verdict: Verdict::Reject(Reply::new(550, (5, 7, 1), text)), header_changes: Vec::new() }
            }
            Action::Quarantine(domain) => {
                host::info(&format!("quarantined: DMARC fails for {domain}"));
                changes.push(HeaderChange::Add(Header::new(MARK, format!("quarantine ({domain})"))));
                DataResult::changes(changes)
            }
        }
    }

    fn route(&mut self, message: MessageInfo, recipient: RecipientInfo) -> Decision {
        let quarantined = message.header(MARK).is_some_and(|v| v.starts_with("quarantine"));
        if !quarantined || recipient.mailbox.is_none() {
            return Decision::default_route();
        }
        Decision::route(Route::Folder(host::config("folder").unwrap_or_else(|| "Junk".to_string())))
    }
}

export_plugin!(DmarcPolicy);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_failure_under_a_policy_that_asks_acts() {
        let d = |result, policy, reject, quarantine| decide(result, policy, "bank.example", reject, quarantine);
        assert_eq!(d(AuthResult::Fail, Policy::Reject, true, true), Action::Reject("bank.example".into()));
        assert_eq!(d(AuthResult::Fail, Policy::Reject, false, true), Action::Quarantine("bank.example".into()));
        assert_eq!(d(AuthResult::Fail, Policy::Reject, false, false), Action::Pass);
        assert_eq!(d(AuthResult::Fail, Policy::Quarantine, true, true), Action::Quarantine("bank.example".into()));
        assert_eq!(d(AuthResult::Fail, Policy::Quarantine, true, false), Action::Pass);
        assert_eq!(d(AuthResult::Fail, Policy::None, true, true), Action::Pass);
        assert_eq!(d(AuthResult::Pass, Policy::Reject, true, true), Action::Pass);
        assert_eq!(d(AuthResult::Temperror, Policy::Reject, true, true), Action::Pass, "a DNS failure is not a DMARC failure");
    }
}
