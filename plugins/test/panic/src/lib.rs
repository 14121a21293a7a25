//! Sandbox test: panics in the mail-from hook (a trap for the host).

use wasmail_plugin_sdk::{export_plugin, AddressInfo, Hook, Manifest, Plugin, Verdict};

#[derive(Default)]
struct Panic;

impl Plugin for Panic {
    fn manifest() -> Manifest {
        Manifest::new("panic", "0.1.0").hook(Hook::MailFrom)
    }

    fn on_mail_from(&mut self, info: AddressInfo) -> Verdict {
        panic!("the panic plugin panics on MAIL FROM:<{}>", info.address);
    }
}

export_plugin!(Panic);
