//! Sandbox test: grows its memory without end in the mail-from hook. The server's memory
//! limit must stop it.

use wasmail_plugin_sdk::{export_plugin, AddressInfo, Hook, Manifest, Plugin, Verdict};

#[derive(Default)]
struct Hog {
    hoard: Vec<Vec<u8>>,
}

impl Plugin for Hog {
    fn manifest() -> Manifest {
        Manifest::new("memory-hog", "0.1.0").hook(Hook::MailFrom)
    }

    fn on_mail_from(&mut self, _info: AddressInfo) -> Verdict {
        loop {
            let mut block = vec![0u8; 1 << 20];
            block[0] = 1;
            self.hoard.push(std::hint::black_box(block));
        }
    }
}

export_plugin!(Hog);
