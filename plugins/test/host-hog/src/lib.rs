//! Sandbox test: tries to make the host allocate on its behalf, in the way its `[config] mode`
//! names. The host must hold each to a bound:
//! - `kv`: at MAIL, fills its key-value store with 64 KiB values (2,000 of them at most) and
//!   refuses the sender with a reply that says how many went in and why it stopped;
//! - `resources`: at MAIL, takes WASI stderr streams from the host and never drops them;
//! - `changes`: answers `on-data` with 400,000 header changes (about 10 MB of its memory).

use wasmail_plugin_sdk::{export_plugin, host, AddressInfo, DataResult, Envelope, Header, HeaderChange, Hook, Manifest, Plugin, Reply, Verdict};

#[derive(Default)]
struct HostHog {
    /// What `resources` took.
    held: Vec<wasip2::io::streams::OutputStream>,
}

impl Plugin for HostHog {
    fn manifest() -> Manifest {
        Manifest::new("host-hog", "0.1.0").hook(Hook::MailFrom).hook(Hook::Data)
    }

    fn on_mail_from(&mut self, _info: AddressInfo) -> Verdict {
        match host::config("mode").as_deref() {
            Some("kv") => {
                let value = vec![b'v'; 65536];
                let mut stored = 0;
                let mut error = String::from("no error");
                for i in 0..2000 {
                    match host::kv_set(&format!("hog-{i}"), &value) {
                        Ok(()) => stored += 1,
                        Err(e) => {
                            error = e;
                            break;
                        }
                    }
                }
                Verdict::Reject(Reply::new(550, (5, 7, 1), format!("stored {stored}: {error}")))
            }
            Some("resources") => loop {
                self.held.push(wasip2::cli::stderr::get_stderr());
            },
            _ => Verdict::Continue,
        }
    }

    fn on_data(&mut self, _envelope: Envelope, _headers: Vec<Header>) -> DataResult {
        if host::config("mode").as_deref() == Some("changes") {
            return DataResult::changes((0..400_000).map(|_| HeaderChange::Add(Header::new("", ""))).collect());
        }
        DataResult::changes(Vec::new())
    }
}

export_plugin!(HostHog);
