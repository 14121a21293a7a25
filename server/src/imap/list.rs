//! LIST and LSUB (RFC 3501 6.3.8-9), and LIST's extended forms: selection and return options
//! and several patterns (RFC 5258 LIST-EXTENDED), STATUS with each mailbox (RFC 5819
//! LIST-STATUS), SPECIAL-USE (RFC 6154). Every LIST answers with CHILDREN (RFC 3348) and
//! SPECIAL-USE attributes unless return options say what to give.

use std::collections::HashSet;
use std::sync::Arc;

use wasmail_proto::imap::response::{mailbox as wire_name, mailbox_utf8};
use wasmail_proto::imap::{ListReturn, ListSelection};

use super::session::{blocking, store_error, Outcome, Session};
use crate::store::special_use;

impl Session {
    pub(super) async fn list(&mut self, reference: &str, pattern: &str, subscribed: bool) -> Outcome {
        let verb = if subscribed { "LSUB" } else { "LIST" };
        if pattern.is_empty() {
            // RFC 3501 6.3.8: the hierarchy delimiter and the root of the reference.
            if !subscribed {
                self.untagged("LIST (\\Noselect) \"/\" \"\"");
            }
            return Outcome::ok(format!("{verb} completed"));
        }
        let (names, subscriptions) = match self.names(subscribed).await {
            Ok(listed) => listed,
            Err(e) => return store_error(&e, verb),
        };
        let full = format!("{reference}{pattern}");
        if !subscribed {
            let returns = ListReturn { children: true, special_use: true, ..ListReturn::default() };
            let view = Names::new(&names, &subscriptions, std::slice::from_ref(&full), self.rev2);
            for name in view.levels() {
                self.untagged(&view.line(&name, &ListSelection::default(), &returns, false));
            }
            return Outcome::ok("LIST completed");
        }
        for name in &subscriptions {
            if matches_pattern(name, &full) {
                let line = format!("LSUB () \"/\" {}", self.wire_name(name));
                self.untagged(&line);
            }
        }
        if full.contains('%') && !full.contains('*') {
            // RFC 3501 6.3.9: where `%` stops at a level whose name is not subscribed but has a
            // subscribed name below it, LSUB gives that level as \Noselect. (`*` reaches the
            // subscribed names themselves.)
            let mut parents: Vec<String> = Vec::new();
            for name in &subscriptions {
                for parent in ancestors(name) {
                    if !subscriptions.iter().any(|s| s == parent) && !parents.iter().any(|p| p == parent) && matches_pattern(parent, &full) {
                        parents.push(parent.to_string());
                    }
                }
            }
            for parent in parents {
                let line = format!("LSUB (\\Noselect) \"/\" {}", self.wire_name(&parent));
                self.untagged(&line);
            }
        }
        Outcome::ok("LSUB completed")
    }

    /// LIST with selection options, several patterns or return options (RFC 5258).
    pub(super) async fn list_extended(&mut self, selection: &ListSelection, reference: &str, patterns: &[String], returns: &ListReturn) -> Outcome {
        let (names, subscriptions) = match self.names(true).await {
            Ok(listed) => listed,
            Err(e) => return store_error(&e, "LIST"),
        };
        let patterns: Vec<String> = patterns.iter().map(|p| format!("{reference}{p}")).collect();
        let view = Names::new(&names, &subscriptions, &patterns, self.rev2);
        let mut lines = Vec::new();
        for name in view.candidates(selection) {
            let matched = view.matches(&name);
            let selected = matched
                && if selection.subscribed {
                    view.subscribed.contains(name.as_str())
                } else if selection.special_use {
                    view.exists(&name) && special_use(&name).is_some()
                } else {
                    true
                };
            // RFC 5258 3.5: a parent whose subscribed descendant the patterns do not reach
            // is given with CHILDINFO, so that a client knows to look deeper.
            let prefix = format!("{name}/");
            let child_info = selection.recursive_match
                && selection.subscribed
                && matched
                && view.subscriptions.iter().any(|s| s.starts_with(&prefix) && !view.matches(s));
            if selected || child_info {
                let status = returns.status.is_some() && view.exists(&name);
                lines.push((view.line(&name, selection, returns, child_info), status.then_some(name)));
            }
        }
        let items = returns.status.clone().unwrap_or_default();
        for (line, status) in lines {
            self.untagged(&line);
            // LIST-STATUS: the mailbox's STATUS right after its LIST (RFC 5819 2).
            if let Some(name) = status {
                match self.status_line(&name, &items).await {
                    Ok(status) => self.untagged(&status),
                    Err(e) => tracing::info!(error = %e, mailbox = name, "no STATUS for a listed mailbox"),
                }
            }
        }
        Outcome::ok("LIST completed")
    }

    /// The user's mailboxes and (if asked) subscriptions.
    async fn names(&mut self, with_subscriptions: bool) -> std::io::Result<(Vec<String>, Vec<String>)> {
        let (store, user) = (Arc::clone(&self.ctx.store), self.user());
        blocking(move || {
            let names = store.mailboxes(&user)?;
            let subscriptions = if with_subscriptions { store.subscriptions(&user)? } else { Vec::new() };
            Ok((names, subscriptions))
        })
        .await
    }
}

/// The names a LIST looks at, with what it asks of them.
struct Names<'a> {
    names: &'a [String],
    existing: HashSet<&'a str>,
    subscriptions: &'a [String],
    subscribed: HashSet<&'a str>,
    /// Reference and pattern joined.
    patterns: &'a [String],
    /// Names go out in UTF-8 (IMAP4rev2), not modified UTF-7.
    utf8: bool,
}

impl<'a> Names<'a> {
    fn new(names: &'a [String], subscriptions: &'a [String], patterns: &'a [String], utf8: bool) -> Names<'a> {
        Names {
            utf8,
            names,
            existing: names.iter().map(String::as_str).collect(),
            subscriptions,
            subscribed: subscriptions.iter().map(String::as_str).collect(),
            patterns,
        }
    }

    fn exists(&self, name: &str) -> bool {
        self.existing.contains(name)
    }

    fn matches(&self, name: &str) -> bool {
        self.patterns.iter().any(|p| matches_pattern(name, p))
    }

    /// The existing names the patterns match, and (RFC 3501 6.3.8) the levels of hierarchy a
    /// pattern ending in `%` stops at that exist only as parents of others, in order.
    fn levels(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        let mut seen: HashSet<String> = HashSet::new();
        let ends_in_level = self.patterns.iter().any(|p| p.ends_with('%'));
        for name in self.names {
            if self.matches(name) && seen.insert(name.clone()) {
                out.push(name.clone());
            }
            if ends_in_level {
                for parent in ancestors(name) {
                    if !self.exists(parent)
                        && self.patterns.iter().any(|p| p.ends_with('%') && matches_pattern(parent, p))
                        && seen.insert(parent.to_string())
                    {
                        out.push(parent.to_string());
                    }
                }
            }
        }
        out
    }

    /// What an extended LIST considers: what its selection picks, and the parents that may
    /// carry CHILDINFO; each once.
    fn candidates(&self, selection: &ListSelection) -> Vec<String> {
        if !selection.subscribed {
            return self.levels();
        }
        let mut out: Vec<String> = Vec::new();
        let mut seen: HashSet<&str> = HashSet::new();
        for name in self.subscriptions {
            if selection.recursive_match {
                for parent in ancestors(name) {
                    if seen.insert(parent) {
                        out.push(parent.to_string());
                    }
                }
            }
            if seen.insert(name) {
                out.push(name.clone());
            }
        }
        out
    }

    /// `LIST (attributes) "/" name [extended items]`.
    fn line(&self, name: &str, selection: &ListSelection, returns: &ListReturn, child_info: bool) -> String {
        let mut attributes: Vec<&str> = Vec::new();
        let exists = self.exists(name);
        let prefix = format!("{name}/");
        let has_children = self.names.iter().any(|n| n.starts_with(&prefix));
        if !exists {
            // A level that only holds others is \Noselect (RFC 3501); a subscribed name with
            // nothing there, \NonExistent (RFC 5258 3.4).
            attributes.push(if has_children && !self.subscribed.contains(name) { "\\Noselect" } else { "\\NonExistent" });
        }
        if (selection.subscribed || returns.subscribed) && self.subscribed.contains(name) {
            attributes.push("\\Subscribed");
        }
        if returns.children {
            attributes.push(if has_children { "\\HasChildren" } else { "\\HasNoChildren" });
        }
        if (returns.special_use || selection.special_use) && exists {
            attributes.extend(special_use(name));
        }
        let mut line = format!("LIST ({}) \"/\" {}", attributes.join(" "), if self.utf8 { mailbox_utf8(name) } else { wire_name(name) });
        if child_info {
            line.push_str(" (\"CHILDINFO\" (\"SUBSCRIBED\"))");
        }
        line
    }
}

/// `a`, `a/b` for `a/b/c`.
fn ancestors(name: &str) -> impl Iterator<Item = &str> {
    name.match_indices('/').map(move |(at, _)| &name[..at])
}

/// LIST wildcards (RFC 3501 6.3.8): `*` matches anything, `%` anything but the delimiter.
/// INBOX matches in any case.
pub(super) fn matches_pattern(name: &str, pattern: &str) -> bool {
    let name: Vec<char> = name.chars().collect();
    let mut pattern: Vec<char> = pattern.chars().collect();
    let inbox: Vec<char> = "INBOX".chars().collect();
    if pattern.len() >= 5 && pattern[..5].iter().collect::<String>().eq_ignore_ascii_case("INBOX") && name.starts_with(&inbox) {
        pattern.splice(..5, inbox);
    }
    // matched[j]: the name's first i characters match the pattern's first j (dynamic
    // programming, so that hostile patterns cost O(name × pattern), not backtracking).
    let mut matched = vec![false; pattern.len() + 1];
    matched[0] = true;
    for j in 1..=pattern.len() {
        matched[j] = matched[j - 1] && matches!(pattern[j - 1], '*' | '%');
    }
    for &c in &name {
        let mut next = vec![false; pattern.len() + 1];
        for j in 1..=pattern.len() {
            next[j] = match pattern[j - 1] {
                '*' => next[j - 1] || matched[j],
                '%' => next[j - 1] || (matched[j] && c != '/'),
                p => matched[j - 1] && p == c,
            };
        }
        matched = next;
    }
    matched[pattern.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_wildcards() {
        assert!(matches_pattern("INBOX", "*"));
        assert!(matches_pattern("INBOX", "inbox"));
        assert!(matches_pattern("Lists/rust", "*"));
        assert!(!matches_pattern("Lists/rust", "%"));
        assert!(matches_pattern("Lists/rust", "Lists/%"));
        assert!(matches_pattern("Lists", "%"));
        assert!(!matches_pattern("Sent", "S%x"));
        assert!(matches_pattern("Sent", "S%t"));
        assert!(!matches_pattern("aaaa", "*a*a*a*a*a*a*a*a*a*a*a*b"));
    }

    #[test]
    fn levels_and_child_info() {
        let names: Vec<String> = ["INBOX", "a/b/c", "x"].iter().map(|s| s.to_string()).collect();
        let subs: Vec<String> = ["a/b/c", "gone"].iter().map(|s| s.to_string()).collect();
        let patterns = vec!["%".to_string()];
        let view = Names::new(&names, &subs, &patterns, false);
        assert_eq!(view.levels(), ["INBOX", "a", "x"], "a level that only holds others is listed for %");
        assert_eq!(
            view.line("a", &ListSelection::default(), &ListReturn { children: true, ..ListReturn::default() }, false),
            "LIST (\\Noselect \\HasChildren) \"/\" \"a\""
        );
        let selection = ListSelection { subscribed: true, recursive_match: true, special_use: false };
        assert_eq!(view.candidates(&selection), ["a", "a/b", "a/b/c", "gone"]);
        assert_eq!(view.line("gone", &selection, &ListReturn::default(), false), "LIST (\\NonExistent \\Subscribed) \"/\" \"gone\"");
    }
}
