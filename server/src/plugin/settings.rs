//! A plugin's `NAME.toml`, beside `NAME.wasm`: whether it runs, in what order, its limits,
//! its failure policy and its own config values. Every key has a default, so the file is
//! optional.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use crate::config::{ByteSize, Duration};

/// What happens when a plugin fails (traps, times out, hits its memory limit or returns an
/// invalid value).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FailurePolicy {
    /// Skip the hook, as if the plugin had said "continue".
    Open,
    /// Answer 451 4.3.0: the client tries again later, nothing is lost.
    Closed,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PluginSettings {
    /// Load the plugin at all.
    pub enabled: bool,
    /// Lower runs first; ties are broken by name.
    pub order: i64,
    /// The failure policy.
    pub fail: FailurePolicy,
    /// Largest linear memory an instance may have.
    pub memory_limit: ByteSize,
    /// CPU time per hook call, enforced by epoch interruption.
    pub call_timeout: Duration,
    /// Octets the plugin's key-value store may hold: keys and values, and 64 per entry.
    pub kv_limit: ByteSize,
    /// String values the plugin reads with `host.config`.
    pub config: BTreeMap<String, String>,
}

impl Default for PluginSettings {
    fn default() -> Self {
        PluginSettings {
            enabled: true,
            order: 100,
            fail: FailurePolicy::Open,
            memory_limit: ByteSize(64 << 20),
            call_timeout: Duration(std::time::Duration::from_millis(200)),
            kv_limit: ByteSize(16 << 20),
            config: BTreeMap::new(),
        }
    }
}

impl PluginSettings {
    /// Reads `path` if it exists; errors name the file, line and key like the main config.
    pub fn load(path: &Path) -> Result<PluginSettings, crate::config::ConfigError> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(PluginSettings::default()),
            Err(e) => return Err(crate::config::ConfigError { file: path.into(), line: None, key: None, message: format!("cannot read: {e}") }),
        };
        let settings: PluginSettings = crate::config::parse_toml(&text, path)?;
        let limit = settings.memory_limit.0;
        if !(1 << 20..=4 << 30).contains(&limit) {
            return Err(crate::config::ConfigError {
                file: path.into(),
                line: crate::config::line_of_key(&text, "memory_limit"),
                key: Some("memory_limit".into()),
                message: "must be between 1MiB and 4GiB".into(),
            });
        }
        if settings.kv_limit.0 > 1 << 30 {
            return Err(crate::config::ConfigError {
                file: path.into(),
                line: crate::config::line_of_key(&text, "kv_limit"),
                key: Some("kv_limit".into()),
                message: "must be at most 1GiB (the store is held in memory)".into(),
            });
        }
        if settings.call_timeout.0 < std::time::Duration::from_millis(1) {
            return Err(crate::config::ConfigError {
                file: path.into(),
                line: crate::config::line_of_key(&text, "call_timeout"),
                key: Some("call_timeout".into()),
                message: "must be at least 1ms".into(),
            });
        }
        Ok(settings)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_values() {
        let dir = tempfile::tempdir().unwrap();
        let missing = PluginSettings::load(&dir.path().join("none.toml")).unwrap();
        assert!(missing.enabled);
        assert_eq!(missing.fail, FailurePolicy::Open);
        let path = dir.path().join("x.toml");
        std::fs::write(
            &path,
            "enabled = false\norder = 5\nfail = \"closed\"\nmemory_limit = \"8MiB\"\ncall_timeout = \"50ms\"\n[config]\nfooter = \"hi\"\n",
        )
        .unwrap();
        let s = PluginSettings::load(&path).unwrap();
        assert!(!s.enabled);
        assert_eq!((s.order, s.fail, s.memory_limit.0), (5, FailurePolicy::Closed, 8 << 20));
        assert_eq!(s.config["footer"], "hi");
    }

    #[test]
    fn errors_name_the_line_and_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.toml");
        std::fs::write(&path, "order = 1\nfail = \"sometimes\"\n").unwrap();
        let e = PluginSettings::load(&path).unwrap_err();
        assert_eq!((e.line, e.key.as_deref()), (Some(2), Some("fail")), "{e}");
        std::fs::write(&path, "[config]\ncount = 3\n").unwrap();
        let e = PluginSettings::load(&path).unwrap_err();
        assert_eq!(e.line, Some(2), "{e}");
        std::fs::write(&path, "memory_limit = \"1KiB\"\n").unwrap();
        let e = PluginSettings::load(&path).unwrap_err();
        assert_eq!((e.line, e.key.as_deref()), (Some(1), Some("memory_limit")), "{e}");
        std::fs::write(&path, "order = 1\nkv_limit = \"2GiB\"\n").unwrap();
        let e = PluginSettings::load(&path).unwrap_err();
        assert_eq!((e.line, e.key.as_deref()), (Some(2), Some("kv_limit")), "{e}");
    }
}
