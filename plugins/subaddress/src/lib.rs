//! `user+tag@domain` into the folder `tag` of user's mailbox (created if missing), as
//! Dovecot's and Sieve's subaddress sorting do. See README.md.

use wasmail_plugin_sdk::{export_plugin, Decision, Hook, Manifest, MessageInfo, Plugin, RecipientInfo, Route};

#[derive(Default)]
struct Subaddress;

/// A folder name from a tag: letters, digits, `-` and `_` kept, anything else a `-`.
fn folder_of(tag: &str) -> Option<String> {
    let name: String = tag.chars().map(|c| if c.is_alphanumeric() || c == '-' || c == '_' { c } else { '-' }).take(64).collect();
    (!name.trim_matches('-').is_empty()).then_some(name)
}

impl Plugin for Subaddress {
    fn manifest() -> Manifest {
        Manifest::new("subaddress", env!("CARGO_PKG_VERSION")).hook(Hook::Route)
    }

    fn route(&mut self, _message: MessageInfo, recipient: RecipientInfo) -> Decision {
        match (&recipient.mailbox, recipient.tag.as_deref().and_then(folder_of)) {
            (Some(_), Some(folder)) => Decision::route(Route::Folder(folder)),
            _ => Decision::default_route(),
        }
    }
}

export_plugin!(Subaddress);
