//! The aliases file, in `/etc/aliases` syntax (aliases(5)): `name: target, target, ...`,
//! `#` comment lines, and continuation lines that start with a space or tab. Targets are local
//! names or addresses. Pipes (`|command`), files (`/path`) and `:include:` lists would run code
//! or write files as the server; they are refused with an error naming the line.

use std::collections::HashMap;
use std::path::Path;

use crate::users::{read_optional, FileError};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Aliases {
    /// Lower-case alias name to its targets, as written.
    map: HashMap<String, Vec<String>>,
}

impl Aliases {
    /// Reads the aliases file; a missing file means no aliases.
    pub fn load(path: &Path) -> Result<Aliases, FileError> {
        match read_optional(path)? {
            Some(text) => Aliases::parse(&text, path),
            None => Ok(Aliases::default()),
        }
    }

    pub fn parse(text: &str, path: &Path) -> Result<Aliases, FileError> {
        // Join continuation lines to their entry, remembering where each entry started.
        let mut entries: Vec<(usize, String)> = Vec::new();
        for (i, line) in text.lines().enumerate() {
            if line.trim_start().starts_with('#') || line.trim().is_empty() {
                continue;
            }
            if line.starts_with([' ', '\t']) {
                match entries.last_mut() {
                    Some((_, entry)) => {
                        entry.push(' ');
                        entry.push_str(line.trim());
                    }
                    None => {
                        return Err(FileError { file: path.into(), line: Some(i + 1), message: "continuation line with no alias before it".into() })
                    }
                }
            } else {
                entries.push((i + 1, line.trim().to_string()));
            }
        }

        let mut aliases = Aliases::default();
        for (line, entry) in entries {
            let fail = |message: String| FileError { file: path.into(), line: Some(line), message };
            let (name, targets) = entry.split_once(':').ok_or_else(|| fail("expected `name: target, ...`".into()))?;
            let name = name.trim().trim_matches('"').to_lowercase();
            if name.is_empty() || name.contains([' ', '@', '\t']) {
                return Err(fail(format!("{name:?} is not an alias name")));
            }
            let mut list = Vec::new();
            for target in split_targets(targets) {
                if target.starts_with('|') {
                    return Err(fail(format!("{name}: pipes to commands ({target}) are not supported")));
                }
                if target.to_ascii_lowercase().starts_with(":include:") {
                    return Err(fail(format!("{name}: :include: lists are not supported")));
                }
                if target.starts_with('/') {
                    return Err(fail(format!("{name}: delivery to files ({target}) is not supported")));
                }
                if target.contains(char::is_whitespace) {
                    return Err(fail(format!("{name}: {target:?} is not a name or address")));
                }
                list.push(target);
            }
            if list.is_empty() {
                return Err(fail(format!("{name}: no targets")));
            }
            if aliases.map.insert(name.clone(), list).is_some() {
                return Err(fail(format!("alias {name} is defined twice")));
            }
        }
        Ok(aliases)
    }

    /// The targets of an alias, if `name` is one (case-insensitive).
    pub fn get(&self, name: &str) -> Option<&[String]> {
        self.map.get(&name.to_lowercase()).map(Vec::as_slice)
    }
}

/// Splits a target list on commas outside double quotes; quotes around a target are removed.
fn split_targets(list: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    for c in list.chars() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => {
                out.push(std::mem::take(&mut current));
            }
            _ => current.push(c),
        }
    }
    out.push(current);
    out.into_iter().map(|t| t.trim().to_string()).filter(|t| !t.is_empty()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_comments_continuations_and_lists() {
        let text = "# system aliases\npostmaster: root\nroot: tyler\nstaff: tyler,\n  hunt,\n\tdaniel@localhost\nQuoted: \"tyler\"\n";
        let a = Aliases::parse(text, Path::new("aliases")).unwrap();
        assert_eq!(a.get("POSTMASTER").unwrap(), ["root"]);
        assert_eq!(a.get("staff").unwrap(), ["tyler", "hunt", "daniel@localhost"]);
        assert_eq!(a.get("quoted").unwrap(), ["tyler"]);
        assert!(a.get("nobody").is_none());
    }

    #[test]
    fn refuses_pipes_includes_and_files_naming_the_line() {
        for (text, line, what) in [
            ("a: b\nbad: |/usr/bin/vacation\n", 2, "pipes"),
            ("list: :include:/etc/list\n", 1, ":include:"),
            ("\n\nlog: tyler,\n  /var/log/mail\n", 3, "files"),
            ("a: b\na: c\n", 2, "twice"),
            ("nocolon\n", 1, "expected"),
            ("  leading: continuation\n", 1, "continuation"),
            ("empty:\n", 1, "no targets"),
        ] {
            let e = Aliases::parse(text, Path::new("aliases")).unwrap_err();
            assert_eq!(e.line, Some(line), "{text:?}: {e}");
            assert!(e.message.contains(what), "{text:?}: {e}");
        }
    }
}
