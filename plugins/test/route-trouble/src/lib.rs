//! Test plugin for delivery hooks: misbehaves in `route-recipient` as config `mode` says —
//! `panic` (a trap) or `loop` (the CPU deadline) — or asks for 1,000 copies (`copies`, an
//! invalid answer); or answers one of the other routes: `reject`, `defer`, `discard`, or
//! `relay` (to config `hop`).

use wasmail_plugin_sdk::{export_plugin, host, Decision, Hook, Manifest, MessageInfo, Plugin, RecipientInfo, Route};

#[derive(Default)]
struct RouteTrouble;

impl Plugin for RouteTrouble {
    fn manifest() -> Manifest {
        Manifest::new("route-trouble", "0.1.0").hook(Hook::Route)
    }

    fn route(&mut self, message: MessageInfo, recipient: RecipientInfo) -> Decision {
        match host::config("mode").as_deref() {
            Some("panic") => panic!("route-trouble panics on {} for {}", message.queue_id, recipient.address),
            Some("loop") => {
                let mut n: u64 = 0;
                loop {
                    n = std::hint::black_box(n.wrapping_add(message.size + 1));
                }
            }
            Some("reject") => Decision::route(Route::Reject(format!("{} is not taking mail today", recipient.address))),
            Some("defer") => Decision::route(Route::Defer("ask again later".into())),
            Some("discard") => Decision::route(Route::Discard),
            Some("relay") => Decision::route(Route::Relay(host::config("hop").unwrap_or_default())),
            _ => {
                let mut decision = Decision::default_route();
                decision.copies = (0..1000).map(|i| format!("copy{i}@localhost")).collect();
                decision
            }
        }
    }
}

export_plugin!(RouteTrouble);
