//! What the server offers a plugin: logging, config values, the clock, the host name, a
//! persistent key-value store of its own, and the checks of the mail in hand.

use crate::bindings::wasmail::plugin::host as imports;

pub use imports::{AuthResult, AuthenticationResults, DkimCheck, DmarcCheck, DmarcPolicy, Level, SpfCheck};

/// Writes a line to the server's log, tagged with the plugin's name and the session id.
pub fn log(level: Level, message: &str) {
    imports::log(level, message)
}

/// Logs at info level.
pub fn info(message: &str) {
    imports::log(Level::Info, message)
}

/// Logs at warn level.
pub fn warn(message: &str) {
    imports::log(Level::Warn, message)
}

/// A value from the `[config]` table of the plugin's NAME.toml.
pub fn config(key: &str) -> Option<String> {
    imports::config(key)
}

/// A config value parsed as a number, or `default` when absent or not a number (a warning is
/// logged for the latter).
pub fn config_u64(key: &str, default: u64) -> u64 {
    match config(key) {
        None => default,
        Some(text) => text.trim().parse().unwrap_or_else(|_| {
            warn(&format!("config {key} = {text:?} is not a number; using {default}"));
            default
        }),
    }
}

/// The server's host name.
pub fn hostname() -> String {
    imports::hostname()
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    imports::now_ms()
}

/// Reads a key from the plugin's key-value store.
pub fn kv_get(key: &str) -> Option<Vec<u8>> {
    imports::kv_get(key)
}

/// Writes a key to the plugin's key-value store.
pub fn kv_set(key: &str, value: &[u8]) -> Result<(), String> {
    imports::kv_set(key, value)
}

/// Removes a key from the plugin's key-value store.
pub fn kv_delete(key: &str) {
    imports::kv_delete(key)
}

/// What the server's checks found for the current transaction (SPF, DKIM, DMARC, ARC; since
/// WIT 0.1.1): SPF alone in `on_mail_from` and `on_rcpt_to`, all of them in `on_data` and
/// `on_part`. `None` when the server does not check this client's mail (authenticated users,
/// `relay_networks`, `[auth_results] enabled = false`) and in delivery hooks.
pub fn authentication() -> Option<AuthenticationResults> {
    imports::authentication()
}
