//! Who lives here: local domains, users and aliases, and the resolution of a recipient
//! address to the mailboxes that receive it.
//!
//! The users and aliases files are re-read when their modification time changes, so that
//! `wasmail user add` and an edited aliases file take effect without a restart (no
//! `newaliases` step). A file that fails to load keeps the previous contents and logs why.

use std::path::PathBuf;
use std::sync::RwLock;
use std::time::SystemTime;

use wasmail_proto::smtp::Address;

use crate::aliases::Aliases;
use crate::config::Config;
use crate::users::{valid_user_name, FileError, Users};

/// Alias chains deeper than this are treated as loops (sendmail uses a similar bound).
const MAX_ALIAS_DEPTH: usize = 20;

/// One mailbox a recipient resolves to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mailbox {
    /// The user (and mailbox folder) name, lower case.
    pub user: String,
    /// The `+tag` of `user+tag@domain`, kept for delivery hooks.
    pub tag: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolution {
    /// A local domain: deliver to these mailboxes (at least one, no duplicates).
    Local(Vec<Mailbox>),
    /// Not a local domain: relaying territory.
    Remote,
}

/// Where mail for a local address goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forwarding {
    /// Local mailboxes.
    pub mailboxes: Vec<Mailbox>,
    /// Addresses elsewhere that aliases forward to (relayed, with SRS and an ARC seal).
    pub forwards: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResolveError {
    /// No such user or alias: 550 5.1.1.
    UnknownUser,
    /// The aliases loop: 550 5.4.6.
    AliasLoop(String),
    /// An alias points outside the local domains, which needs relaying.
    RemoteTarget(String),
}

struct Snapshot {
    users: Users,
    aliases: Aliases,
    users_mtime: Option<SystemTime>,
    aliases_mtime: Option<SystemTime>,
}

pub struct Directory {
    domains: Vec<String>,
    delimiter: Option<char>,
    users_file: PathBuf,
    aliases_file: PathBuf,
    /// The parsed files, swapped when they change on disk.
    snapshot: RwLock<Snapshot>,
}

fn mtime(path: &std::path::Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

impl Directory {
    /// Loads the users and aliases files named in the config; errors name the file and line.
    pub fn load(config: &Config) -> Result<Directory, FileError> {
        let snapshot = Snapshot {
            users_mtime: mtime(&config.users_file),
            aliases_mtime: mtime(&config.aliases_file),
            users: Users::load(&config.users_file)?,
            aliases: Aliases::load(&config.aliases_file)?,
        };
        Ok(Directory {
            domains: config.domains.iter().map(|d| d.to_lowercase()).collect(),
            delimiter: config.recipient_delimiter.chars().next(),
            users_file: config.users_file.clone(),
            aliases_file: config.aliases_file.clone(),
            snapshot: RwLock::new(snapshot),
        })
    }

    /// Development mode: no users file (or an empty one), so every valid local part has a
    /// mailbox.
    /// Whether `password` is `name`'s in the users file (always false in development mode,
    /// which has no passwords).
    pub fn verify_password(&self, name: &str, password: &str) -> bool {
        self.refresh();
        self.snapshot.read().expect("directory lock").users.verify(name, password)
    }

    /// Users in the users file.
    pub fn user_count(&self) -> usize {
        self.snapshot.read().expect("directory lock").users.names().count()
    }

    pub fn development_mode(&self) -> bool {
        self.refresh();
        self.snapshot.read().expect("directory lock").users.is_empty()
    }

    pub fn is_local_domain(&self, domain: &str) -> bool {
        self.domains.iter().any(|d| d.eq_ignore_ascii_case(domain))
    }

    pub fn primary_domain(&self) -> &str {
        &self.domains[0]
    }

    /// Re-reads a file whose modification time changed.
    fn refresh(&self) {
        let (users_now, aliases_now) = (mtime(&self.users_file), mtime(&self.aliases_file));
        {
            let s = self.snapshot.read().expect("directory lock");
            if s.users_mtime == users_now && s.aliases_mtime == aliases_now {
                return;
            }
        }
        let mut s = self.snapshot.write().expect("directory lock");
        if s.users_mtime != users_now {
            match Users::load(&self.users_file) {
                Ok(users) => {
                    tracing::info!(file = %self.users_file.display(), users = users.names().count(), "users file reloaded");
                    s.users = users;
                }
                Err(e) => tracing::error!("{e}; keeping the previous users"),
            }
            s.users_mtime = users_now;
        }
        if s.aliases_mtime != aliases_now {
            match Aliases::load(&self.aliases_file) {
                Ok(aliases) => {
                    tracing::info!(file = %self.aliases_file.display(), "aliases file reloaded");
                    s.aliases = aliases;
                }
                Err(e) => tracing::error!("{e}; keeping the previous aliases"),
            }
            s.aliases_mtime = aliases_now;
        }
    }

    /// Resolves a recipient address.
    pub fn resolve(&self, address: &Address) -> Result<Resolution, ResolveError> {
        if !self.is_local_domain(&address.domain) {
            return Ok(Resolution::Remote);
        }
        self.resolve_local_part(&address.local_part_unquoted()).map(Resolution::Local)
    }

    /// Resolves the local part of an address in a local domain (or a bare name, as VRFY and
    /// EXPN take them) to mailboxes, through the aliases. An alias that forwards elsewhere is
    /// `RemoteTarget` here (what VRFY says); [`Directory::resolve_forwarding`] follows it.
    pub fn resolve_local_part(&self, local_part: &str) -> Result<Vec<Mailbox>, ResolveError> {
        let forwarding = self.forwarding(local_part)?;
        match forwarding.forwards.into_iter().next() {
            Some(target) => Err(ResolveError::RemoteTarget(target)),
            None => Ok(forwarding.mailboxes),
        }
    }

    /// A recipient in a local domain: its mailboxes and the addresses elsewhere its aliases
    /// forward to (either may be empty, not both). None for another domain.
    pub fn resolve_forwarding(&self, address: &Address) -> Option<Result<Forwarding, ResolveError>> {
        self.is_local_domain(&address.domain).then(|| self.forwarding(&address.local_part_unquoted()))
    }

    fn forwarding(&self, local_part: &str) -> Result<Forwarding, ResolveError> {
        self.refresh();
        let s = self.snapshot.read().expect("directory lock");
        let mut out = Forwarding { mailboxes: Vec::new(), forwards: Vec::new() };
        self.expand(&s, &local_part.to_lowercase(), &mut Vec::new(), &mut out)?;
        Ok(out)
    }

    /// The direct targets of an alias, for EXPN.
    pub fn alias_targets(&self, name: &str) -> Option<Vec<String>> {
        self.refresh();
        let s = self.snapshot.read().expect("directory lock");
        s.aliases.get(name).map(<[String]>::to_vec)
    }

    fn expand(&self, s: &Snapshot, name: &str, stack: &mut Vec<String>, out: &mut Forwarding) -> Result<(), ResolveError> {
        // Postfix order: the full local part first (an alias or user may contain the
        // delimiter), then without the +tag.
        let (base, tag) = match self.delimiter.and_then(|d| name.split_once(d)) {
            Some((base, tag)) if s.aliases.get(name).is_none() && !s.users.contains(name) => (base, Some(tag.to_string())),
            _ => (name, None),
        };
        // A self-reference (`tyler: tyler, backup`) means the user's own mailbox, as in
        // sendmail; any other repeat is a loop.
        let self_reference = stack.last().is_some_and(|last| last == base);
        if let Some(targets) = s.aliases.get(base).filter(|_| !self_reference) {
            if stack.iter().any(|n| n == base) || stack.len() >= MAX_ALIAS_DEPTH {
                return Err(ResolveError::AliasLoop(base.to_string()));
            }
            stack.push(base.to_string());
            for target in targets {
                let local = match target.rsplit_once('@') {
                    Some((local, domain)) if self.is_local_domain(domain) => local,
                    Some(_) => {
                        if !out.forwards.iter().any(|f| f.eq_ignore_ascii_case(target)) {
                            out.forwards.push(target.clone());
                        }
                        continue;
                    }
                    None => target.as_str(),
                };
                self.expand(s, &local.to_lowercase(), stack, out)?;
            }
            stack.pop();
            return Ok(());
        }
        let known = if s.users.is_empty() { valid_user_name(base) } else { s.users.contains(base) };
        if !known {
            return Err(ResolveError::UnknownUser);
        }
        if !out.mailboxes.iter().any(|m: &Mailbox| m.user == base) {
            out.mailboxes.push(Mailbox { user: base.to_string(), tag });
        }
        Ok(())
    }
}

impl crate::queue::Router for Directory {
    fn is_local(&self, domain: &str) -> bool {
        self.is_local_domain(domain)
    }

    fn local_mailboxes(&self, address: &str) -> Option<Vec<String>> {
        let (parsed, rest) = wasmail_proto::address::parse_mailbox(address).ok()?;
        if !rest.is_empty() {
            return None;
        }
        match self.resolve(&parsed) {
            Ok(Resolution::Local(mailboxes)) => Some(mailboxes.into_iter().map(|m| m.user).collect()),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn directory(users: &str, aliases: &str) -> (tempfile::TempDir, Directory) {
        let dir = tempfile::tempdir().unwrap();
        let config = Config {
            domains: vec!["localhost".into(), "example.org".into()],
            users_file: dir.path().join("users"),
            aliases_file: dir.path().join("aliases"),
            ..Config::default()
        };
        for name in users.split_whitespace() {
            crate::users::add_user(&config.users_file, name, "pw", crate::users::HashCost { memory_kib: 8, iterations: 1, parallelism: 1 }).unwrap();
        }
        std::fs::write(&config.aliases_file, aliases).unwrap();
        let d = Directory::load(&config).unwrap();
        (dir, d)
    }

    fn addr(s: &str) -> Address {
        let (local_part, domain) = s.split_once('@').unwrap();
        Address { local_part: local_part.into(), domain: domain.into() }
    }

    fn users_of(r: Result<Resolution, ResolveError>) -> Vec<String> {
        match r {
            Ok(Resolution::Local(m)) => m.into_iter().map(|m| m.user).collect(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn users_aliases_tags_and_case() {
        let (_dir, d) = directory("tyler hunt", "postmaster: root\nroot: tyler\nstaff: tyler, hunt@example.org, Tyler\n");
        assert_eq!(users_of(d.resolve(&addr("Tyler@LOCALHOST"))), ["tyler"]);
        assert_eq!(users_of(d.resolve(&addr("postmaster@localhost"))), ["tyler"]);
        assert_eq!(users_of(d.resolve(&addr("staff@example.org"))), ["tyler", "hunt"]);
        match d.resolve(&addr("tyler+lists@localhost")) {
            Ok(Resolution::Local(m)) => assert_eq!(m, [Mailbox { user: "tyler".into(), tag: Some("lists".into()) }]),
            other => panic!("{other:?}"),
        }
        assert_eq!(d.resolve(&addr("nobody@localhost")), Err(ResolveError::UnknownUser));
        assert_eq!(d.resolve(&addr("tyler@elsewhere.example")), Ok(Resolution::Remote));
        assert!(!d.development_mode());
    }

    #[test]
    fn loops_self_references_and_remote_targets() {
        let (_dir, d) = directory("tyler", "a: b\nb: a\ntyler: tyler, fwd\nfwd: x@remote.example\nself: self\n");
        assert_eq!(d.resolve(&addr("a@localhost")), Err(ResolveError::AliasLoop("a".into())));
        assert_eq!(d.resolve(&addr("tyler@localhost")), Err(ResolveError::RemoteTarget("x@remote.example".into())));
        // `self: self` is a user's own mailbox, but there is no user self.
        assert_eq!(d.resolve(&addr("self@localhost")), Err(ResolveError::UnknownUser));
        // Followed: tyler's own mailbox, and the address elsewhere.
        let forwarding = d.resolve_forwarding(&addr("tyler@localhost")).unwrap().unwrap();
        assert_eq!(forwarding.mailboxes.iter().map(|m| m.user.as_str()).collect::<Vec<_>>(), ["tyler"]);
        assert_eq!(forwarding.forwards, ["x@remote.example"]);
        assert!(d.resolve_forwarding(&addr("x@remote.example")).is_none());
    }

    #[test]
    fn development_mode_accepts_any_safe_local_part() {
        let (_dir, d) = directory("", "");
        assert!(d.development_mode());
        assert_eq!(users_of(d.resolve(&addr("anyone@localhost"))), ["anyone"]);
        assert_eq!(d.resolve(&addr("\"../etc\"@localhost")), Err(ResolveError::UnknownUser));
    }

    #[test]
    fn edited_files_are_reloaded() {
        let (dir, d) = directory("tyler", "");
        assert_eq!(d.resolve(&addr("hunt@localhost")), Err(ResolveError::UnknownUser));
        // Make sure the modification time moves even on coarse-grained file systems.
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(dir.path().join("aliases"), "hunt: tyler\n").unwrap();
        let later = SystemTime::now() + std::time::Duration::from_secs(2);
        std::fs::File::options().write(true).open(dir.path().join("aliases")).unwrap().set_modified(later).unwrap();
        assert_eq!(users_of(d.resolve(&addr("hunt@localhost"))), ["tyler"]);
    }
}
