//! Test plugin: claims the MAIL parameter XTRACE and the RCPT parameter XPRIO, so that they
//! reach it instead of a 555. `XTRACE=reject` makes it refuse the sender; `XPRIO=defer`
//! makes it defer the recipient.

use wasmail_plugin_sdk::{export_plugin, AddressInfo, Hook, Manifest, Plugin, Reply, Verdict};

#[derive(Default)]
struct Params;

fn value<'a>(info: &'a AddressInfo, keyword: &str) -> Option<&'a str> {
    info.params.iter().find(|p| p.keyword == keyword).and_then(|p| p.value.as_deref())
}

impl Plugin for Params {
    fn manifest() -> Manifest {
        Manifest::new("params", "0.1.0").mail_param("XTRACE").rcpt_param("XPRIO").hook(Hook::MailFrom).hook(Hook::RcptTo)
    }

    fn on_mail_from(&mut self, info: AddressInfo) -> Verdict {
        match value(&info, "XTRACE") {
            Some("reject") => Verdict::Reject(Reply::new(550, (5, 7, 1), "XTRACE says no")),
            _ => Verdict::Continue,
        }
    }

    fn on_rcpt_to(&mut self, info: AddressInfo) -> Verdict {
        match value(&info, "XPRIO") {
            Some("defer") => Verdict::Tempfail(Reply::new(451, (4, 7, 0), "XPRIO says later")),
            _ => Verdict::Continue,
        }
    }
}

export_plugin!(Params);
