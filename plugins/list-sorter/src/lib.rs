//! Mail from a mailing list (a `List-Id:` header, RFC 2919) into `Lists/<list>` of each local
//! recipient's mailbox. See README.md.

use wasmail_plugin_sdk::{export_plugin, host, Decision, Hook, Manifest, MessageInfo, Plugin, RecipientInfo, Route};

#[derive(Default)]
struct ListSorter;

/// The list's name from a List-Id value: `Rust users <rust-users.lists.example.org>` gives
/// `rust-users` (the first label of the id; folder levels cannot hold dots).
fn list_name(list_id: &str) -> Option<String> {
    let id = match (list_id.rfind('<'), list_id.rfind('>')) {
        (Some(start), Some(end)) if start < end => &list_id[start + 1..end],
        _ => list_id.trim(),
    };
    let label = id.split('.').next()?.trim();
    let name: String =
        label.chars().map(|c| if c.is_alphanumeric() || c == '-' || c == '_' { c.to_ascii_lowercase() } else { '-' }).take(64).collect();
    (!name.trim_matches('-').is_empty()).then_some(name)
}

impl Plugin for ListSorter {
    fn manifest() -> Manifest {
        Manifest::new("list-sorter", env!("CARGO_PKG_VERSION")).hook(Hook::Route)
    }

    fn route(&mut self, message: MessageInfo, recipient: RecipientInfo) -> Decision {
        if recipient.mailbox.is_none() {
            return Decision::default_route();
        }
        let Some(name) = message.header("List-Id").and_then(list_name) else {
            return Decision::default_route();
        };
        let prefix = host::config("prefix").unwrap_or_else(|| "Lists".to_string());
        Decision::route(Route::Folder(format!("{prefix}/{name}")))
    }
}

export_plugin!(ListSorter);

#[cfg(test)]
mod tests {
    #[test]
    fn list_names() {
        assert_eq!(super::list_name("Rust users <rust-users.lists.example.org>").as_deref(), Some("rust-users"));
        assert_eq!(super::list_name("<Announce.example.org>").as_deref(), Some("announce"));
        assert_eq!(super::list_name("plain.example.org").as_deref(), Some("plain"));
        assert_eq!(super::list_name("<>"), None);
    }
}
