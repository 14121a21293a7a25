//! A table of forwards, like a virtual alias map: `[config]` maps an address to the addresses
//! its mail goes to instead. See README.md.

use wasmail_plugin_sdk::{export_plugin, host, Decision, Hook, Manifest, MessageInfo, Plugin, RecipientInfo, Route};

#[derive(Default)]
struct Forward;

impl Plugin for Forward {
    fn manifest() -> Manifest {
        Manifest::new("forward", env!("CARGO_PKG_VERSION")).hook(Hook::Route)
    }

    fn route(&mut self, _message: MessageInfo, recipient: RecipientInfo) -> Decision {
        let Some(targets) = host::config(&recipient.address.to_lowercase()) else {
            return Decision::default_route();
        };
        let targets: Vec<String> = targets.split(',').map(|t| t.trim().to_string()).filter(|t| !t.is_empty()).collect();
        if targets.is_empty() {
            return Decision::default_route();
        }
        Decision::route(Route::Redirect(targets))
    }
}

export_plugin!(Forward);
