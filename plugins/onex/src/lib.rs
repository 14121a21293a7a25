//! ONEX, sendmail's "one transaction only": after `ONEX` the session may run one mail
//! transaction; a second MAIL gets `503 5.5.1`.

use wasmail_plugin_sdk::{export_plugin, switch_on, AddressInfo, CommandResult, Hook, Manifest, Plugin, Reply, Verdict};

#[derive(Default)]
struct Onex {
    /// Set by the ONEX command.
    limited: bool,
    /// MAIL commands seen since ONEX.
    transactions: u32,
}

impl Plugin for Onex {
    fn manifest() -> Manifest {
        Manifest::new("onex", env!("CARGO_PKG_VERSION")).keyword("ONEX", None).verb("ONEX").hook(Hook::MailFrom).activated_by_verb()
    }

    fn on_command(&mut self, verb: String, args: String) -> CommandResult {
        switch_on(&verb, &args, &mut self.limited, "Only one transaction")
    }

    fn on_mail_from(&mut self, _info: AddressInfo) -> Verdict {
        if !self.limited {
            return Verdict::Continue;
        }
        self.transactions += 1;
        if self.transactions > 1 {
            return Verdict::Reject(Reply::new(503, (5, 5, 1), "Only one transaction per session after ONEX"));
        }
        Verdict::Continue
    }
}

export_plugin!(Onex);
