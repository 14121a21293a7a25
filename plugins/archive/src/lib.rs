//! A copy of every message to an archive mailbox, and an audit trail of every delivery
//! attempt (a log line per recipient, and counters in the plugin's key-value store). See
//! README.md.

use wasmail_plugin_sdk::{export_plugin, host, Decision, Hook, Manifest, MessageInfo, Plugin, RecipientInfo};

#[derive(Default)]
struct Archive {
    /// This message's copy is asked for (the instance lives for one delivery attempt).
    copied: bool,
}

impl Plugin for Archive {
    fn manifest() -> Manifest {
        Manifest::new("archive", env!("CARGO_PKG_VERSION")).hook(Hook::Route).hook(Hook::DeliveryResult)
    }

    fn route(&mut self, _message: MessageInfo, _recipient: RecipientInfo) -> Decision {
        let mut decision = Decision::default_route();
        if !std::mem::replace(&mut self.copied, true) {
            decision.copies.push(host::config("mailbox").unwrap_or_else(|| "archive@localhost".to_string()));
        }
        decision
    }

    fn delivery_result(&mut self, message: MessageInfo, recipient: String, outcome: String, detail: String) {
        host::info(&format!("audit: {} {} {recipient}: {detail}", message.queue_id, outcome));
        let key = format!("count/{outcome}");
        let count = host::kv_get(&key).and_then(|v| String::from_utf8(v).ok()).and_then(|s| s.parse::<u64>().ok()).unwrap_or(0);
        if let Err(e) = host::kv_set(&key, (count + 1).to_string().as_bytes()) {
            host::warn(&format!("cannot count: {e}"));
        }
    }
}

export_plugin!(Archive);
