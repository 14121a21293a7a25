//! Sandbox test: loops forever in the mail-from hook. The server's CPU deadline must stop it.

use wasmail_plugin_sdk::{export_plugin, AddressInfo, Hook, Manifest, Plugin, Verdict};

#[derive(Default)]
struct Loop;

impl Plugin for Loop {
    fn manifest() -> Manifest {
        Manifest::new("loop", "0.1.0").hook(Hook::MailFrom)
    }

    fn on_mail_from(&mut self, info: AddressInfo) -> Verdict {
        let mut n: u64 = 0;
        loop {
            n = std::hint::black_box(n.wrapping_add(info.address.len() as u64 + 1));
        }
    }
}

export_plugin!(Loop);
