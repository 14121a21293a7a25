//! What the server offers a plugin: logging, config values, the clock, the host name and a
//! persistent key-value store of its own.

use crate::bindings::wasmail::plugin::host as imports;

pub use imports::Level;

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
