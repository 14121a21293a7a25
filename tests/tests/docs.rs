//! The documentation against the code: every key of `wasmail.example.toml` is in the
//! configuration reference and the reference names no key the example lacks.

use std::collections::BTreeSet;

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");

/// `table.key` (or `key` at the top level) of every key the example sets, and the keys it
/// shows commented out at the top level (`# hostname = ...`).
fn example_keys() -> BTreeSet<String> {
    let text = std::fs::read_to_string(format!("{ROOT}/wasmail.example.toml")).unwrap();
    let table: toml::Table = text.parse().unwrap();
    let mut keys = BTreeSet::new();
    for (name, value) in &table {
        match value.as_table() {
            Some(inner) => keys.extend(inner.keys().map(|k| format!("{name}.{k}"))),
            None => {
                keys.insert(name.clone());
            }
        }
    }
    for line in text.lines().take_while(|l| !l.starts_with('[')) {
        if let Some((key, _)) = line.strip_prefix("# ").and_then(|l| l.split_once(" = ")) {
            if key.chars().all(|c| c.is_ascii_lowercase() || c == '_') {
                keys.insert(key.to_string());
            }
        }
    }
    keys
}

/// The keys of the reference's tables: rows that start with `` | `key` | ``.
fn documented_keys() -> BTreeSet<String> {
    let text = std::fs::read_to_string(format!("{ROOT}/docs/configuration.md")).unwrap();
    text.lines().filter_map(|l| l.strip_prefix("| `")?.split_once("` |").map(|(k, _)| k.to_string())).collect()
}

#[test]
fn the_configuration_reference_matches_the_example_file() {
    let (example, documented) = (example_keys(), documented_keys());
    assert!(example.contains("hostname") && example.contains("server.shutdown_grace"), "{example:?}");
    let undocumented: Vec<_> = example.difference(&documented).collect();
    let unknown: Vec<_> = documented.difference(&example).collect();
    assert!(undocumented.is_empty(), "in wasmail.example.toml, not in docs/configuration.md: {undocumented:?}");
    assert!(unknown.is_empty(), "in docs/configuration.md, not in wasmail.example.toml: {unknown:?}");
}

#[test]
fn the_guides_link_only_to_files_that_exist() {
    for guide in ["README.md", "operator-guide.md", "configuration.md", "plugin-guide.md"] {
        let path = format!("{ROOT}/docs/{guide}");
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        for link in text.split("](").skip(1).filter_map(|rest| rest.split_once(')').map(|(l, _)| l)) {
            let file = link.split('#').next().unwrap();
            if file.is_empty() || file.starts_with("http") {
                continue;
            }
            let target = std::path::Path::new(ROOT).join("docs").join(file);
            assert!(target.exists(), "{guide} links to {link}, which does not exist");
        }
    }
}
