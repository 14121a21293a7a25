//! Test plugin for the policy hooks: claims the MAIL parameter XTRACE and the RCPT parameter
//! XPRIO, so that they reach it instead of a 555 (`XTRACE=reject` refuses the sender,
//! `XPRIO=defer` defers the recipient); refuses `HELO refuse.test`; and, with
//! `refuse_connect = "yes"` in its config, disconnects every client at connect. At MAIL it
//! logs the SPF result `host.authentication` gives (`spf=pass for example.org`), and refuses
//! a sender whose SPF fails when its config has `refuse_spf_fail = "yes"`.

use wasmail_plugin_sdk::host::AuthResult;
use wasmail_plugin_sdk::{export_plugin, host, AddressInfo, ConnectInfo, HeloInfo, Hook, Manifest, Plugin, Reply, Verdict};

#[derive(Default)]
struct Policy;

fn value<'a>(info: &'a AddressInfo, keyword: &str) -> Option<&'a str> {
    info.params.iter().find(|p| p.keyword == keyword).and_then(|p| p.value.as_deref())
}

impl Plugin for Policy {
    fn manifest() -> Manifest {
        Manifest::new("policy", "0.1.0")
            .mail_param("XTRACE")
            .rcpt_param("XPRIO")
            .hook(Hook::Connect)
            .hook(Hook::Helo)
            .hook(Hook::MailFrom)
            .hook(Hook::RcptTo)
    }

    fn on_connect(&mut self, info: ConnectInfo) -> Verdict {
        if host::config("refuse_connect").as_deref() == Some("yes") {
            let text = format!("{} is not welcome here", info.client_ip);
            return Verdict::Disconnect(Reply::new(554, (5, 7, 1), text));
        }
        Verdict::Continue
    }

    fn on_helo(&mut self, info: HeloInfo) -> Verdict {
        if info.name == "refuse.test" {
            return Verdict::Reject(Reply::new(550, (5, 7, 1), "That name is refused"));
        }
        Verdict::Continue
    }

    fn on_mail_from(&mut self, info: AddressInfo) -> Verdict {
        if let Some(spf) = host::authentication().map(|results| results.spf) {
            host::info(&format!("spf={} for {}", spf_word(spf.result), spf.domain));
            if spf.result == AuthResult::Fail && host::config("refuse_spf_fail").as_deref() == Some("yes") {
                return Verdict::Reject(Reply::new(550, (5, 7, 23), format!("SPF of {} fails", spf.domain)));
            }
        }
        match value(&info, "XTRACE") {
            Some("reject") => Verdict::Reject(Reply::new(550, (5, 7, 1), "XTRACE says no")),
            _ => Verdict::Continue,
        }
    }

    fn on_rcpt_to(&mut self, info: AddressInfo) -> Verdict {
        match value(&info, "XPRIO") {
            Some("defer") => Verdict::Tempfail(Reply::new(451, (4, 7, 0), format!("XPRIO says later for {}", info.client_ip))),
            _ => Verdict::Continue,
        }
    }
}

fn spf_word(result: AuthResult) -> &'static str {
    match result {
        AuthResult::Pass => "pass",
        AuthResult::Fail => "fail",
        AuthResult::Softfail => "softfail",
        AuthResult::Neutral => "neutral",
        AuthResult::None => "none",
        AuthResult::Temperror => "temperror",
        AuthResult::Permerror => "permerror",
    }
}

export_plugin!(Policy);
