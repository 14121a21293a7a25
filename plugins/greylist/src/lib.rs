//! Greylisting, as postgrey does it: the first time a (client IP, sender, recipient) triple is
//! seen, RCPT is answered `450 4.7.1` and the time is remembered in the plugin's key-value
//! store; once the client retries after `delay` seconds it passes. A triple that never came
//! back within `retry_window` seconds starts over.
//!
//! Config (`[config]` in greylist.toml): `delay` (seconds, default 300), `retry_window`
//! (seconds, default 172800 = 2 days).

use wasmail_plugin_sdk::{export_plugin, host, AddressInfo, Hook, Manifest, Plugin, Reply, Verdict};

#[derive(Default)]
struct Greylist {
    /// From the mail-from hook.
    sender: String,
}

impl Plugin for Greylist {
    fn manifest() -> Manifest {
        Manifest::new("greylist", env!("CARGO_PKG_VERSION")).hook(Hook::MailFrom).hook(Hook::RcptTo)
    }

    fn on_mail_from(&mut self, info: AddressInfo) -> Verdict {
        self.sender = info.address.to_lowercase();
        Verdict::Continue
    }

    fn on_rcpt_to(&mut self, info: AddressInfo) -> Verdict {
        let delay_ms = host::config_u64("delay", 300) * 1000;
        let window_ms = host::config_u64("retry_window", 172_800) * 1000;
        let key = format!("{}/{}/{}", info.client_ip, self.sender, info.address.to_lowercase());
        let now = host::now_ms();
        let first_seen = host::kv_get(&key).and_then(|v| String::from_utf8(v).ok()).and_then(|s| s.parse::<u64>().ok());
        let first = match first_seen {
            Some(first) if now.saturating_sub(first) <= window_ms => first,
            _ => {
                if let Err(e) = host::kv_set(&key, now.to_string().as_bytes()) {
                    // Without a memory of the triple, greylisting would defer it forever.
                    host::warn(&format!("cannot remember {key}: {e}; letting it pass"));
                    return Verdict::Continue;
                }
                now
            }
        };
        let waited = now.saturating_sub(first);
        if waited < delay_ms {
            let left = (delay_ms - waited).div_ceil(1000);
            host::info(&format!("greylisted {key}, {left} s to go"));
            return Verdict::Tempfail(Reply::new(450, (4, 7, 1), format!("Greylisted, please try again in {left} seconds")));
        }
        Verdict::Continue
    }
}

export_plugin!(Greylist);
