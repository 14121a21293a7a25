//! The users file: one `NAME:ARGON2-PHC-HASH` per line, `#` comments and blank lines allowed.
//! A missing or empty file means development mode (every local part has a mailbox).

use std::collections::BTreeMap;
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

use argon2::password_hash::{rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;

/// A problem in a line-oriented file (users, aliases), with its place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileError {
    pub file: PathBuf,
    pub line: Option<usize>,
    pub message: String,
}

impl fmt::Display for FileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{}: {}", self.file.display(), line, self.message),
            None => write!(f, "{}: {}", self.file.display(), self.message),
        }
    }
}

impl std::error::Error for FileError {}

/// Reads a file that may be absent (users, aliases): Ok(None) when it does not exist.
pub fn read_optional(path: &Path) -> Result<Option<String>, FileError> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(FileError { file: path.into(), line: None, message: format!("cannot read: {e}") }),
    }
}

/// The users with a mailbox and a password.
#[derive(Debug, Clone, Default)]
pub struct Users {
    /// Lower-case user name to its PHC hash string.
    hashes: BTreeMap<String, String>,
}

/// A user name is also a Maildir folder name: keep it to characters that are safe in paths
/// and in addresses, and never let it start with a dot (Maildir++ folders do).
pub fn valid_user_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '_' || c == '-')
}

impl Users {
    /// Reads the users file; a missing file is an empty list.
    pub fn load(path: &Path) -> Result<Users, FileError> {
        match read_optional(path)? {
            Some(text) => Users::parse(&text, path),
            None => Ok(Users::default()),
        }
    }

    pub fn parse(text: &str, path: &Path) -> Result<Users, FileError> {
        let mut users = Users::default();
        for (i, line) in text.lines().enumerate() {
            let fail = |message: String| FileError { file: path.into(), line: Some(i + 1), message };
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (name, hash) = line.split_once(':').ok_or_else(|| fail("expected NAME:ARGON2-HASH".into()))?;
            let name = name.trim().to_ascii_lowercase();
            if !valid_user_name(&name) {
                return Err(fail(format!("{name:?} is not a valid user name (letters, digits, . _ -)")));
            }
            let parsed = PasswordHash::new(hash.trim()).map_err(|e| fail(format!("not a PHC hash string: {e}")))?;
            if !parsed.algorithm.as_str().starts_with("argon2") {
                return Err(fail(format!("hash algorithm {} is not argon2", parsed.algorithm)));
            }
            if users.hashes.insert(name.clone(), hash.trim().to_string()).is_some() {
                return Err(fail(format!("user {name} is listed twice")));
            }
        }
        Ok(users)
    }

    pub fn is_empty(&self) -> bool {
        self.hashes.is_empty()
    }

    pub fn contains(&self, name: &str) -> bool {
        self.hashes.contains_key(&name.to_ascii_lowercase())
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.hashes.keys().map(String::as_str)
    }

    /// Whether `password` is the user's; false for unknown users. POP3 logins check it.
    ///
    /// An unknown name costs the same as a known one: the password is checked against
    /// another user's hash (same parameters as real users' hashes) and the answer thrown
    /// away, so that the time of a failure does not tell which names exist.
    pub fn verify(&self, name: &str, password: &str) -> bool {
        let (hash, known) = match self.hashes.get(&name.to_ascii_lowercase()) {
            Some(hash) => (hash, true),
            None => match self.hashes.values().next() {
                Some(stand_in) => (stand_in, false),
                None => return false,
            },
        };
        let matches = PasswordHash::new(hash).is_ok_and(|h| Argon2::default().verify_password(password.as_bytes(), &h).is_ok());
        known && matches
    }
}

/// Argon2id cost for new hashes (`[auth] argon2_*`); existing hashes keep the cost they were
/// made with, which their PHC string records.
#[derive(Debug, Clone, Copy)]
pub struct HashCost {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

impl Default for HashCost {
    /// The argon2 crate's defaults (RFC 9106's second recommendation, as OWASP lists it).
    fn default() -> Self {
        HashCost { memory_kib: 19_456, iterations: 2, parallelism: 1 }
    }
}

/// An argon2id PHC string for `password`.
fn hash(password: &str, cost: HashCost) -> anyhow::Result<String> {
    anyhow::ensure!(!password.is_empty(), "the password is empty");
    let params =
        argon2::Params::new(cost.memory_kib, cost.iterations, cost.parallelism, None).map_err(|e| anyhow::anyhow!("argon2 parameters: {e}"))?;
    let argon2 = Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let salt = SaltString::generate(&mut OsRng);
    Ok(argon2.hash_password(password.as_bytes(), &salt).map_err(|e| anyhow::anyhow!("hashing failed: {e}"))?.to_string())
}

/// Adds `name` with an argon2id hash of `password` to the users file.
pub fn add_user(path: &Path, name: &str, password: &str, cost: HashCost) -> anyhow::Result<()> {
    let name = name.to_ascii_lowercase();
    anyhow::ensure!(valid_user_name(&name), "{name:?} is not a valid user name (letters, digits, . _ -)");
    let users = Users::load(path)?;
    anyhow::ensure!(!users.contains(&name), "user {name} exists already in {}", path.display());
    let hash = hash(password, cost)?;
    let mut text = read_optional(path)?.unwrap_or_default();
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    text.push_str(&format!("{name}:{hash}\n"));
    write_atomically(path, &text)
}

/// Gives `name` a new password (a fresh hash at today's cost).
pub fn set_password(path: &Path, name: &str, password: &str, cost: HashCost) -> anyhow::Result<()> {
    let name = name.to_ascii_lowercase();
    let hash = hash(password, cost)?;
    rewrite_line(path, &name, Some(&format!("{name}:{hash}")))
}

/// Removes `name` from the users file (its mailbox stays on disk, for the operator to keep or
/// delete).
pub fn remove_user(path: &Path, name: &str) -> anyhow::Result<()> {
    rewrite_line(path, &name.to_ascii_lowercase(), None)
}

/// Replaces (or, with None, drops) the line of user `name`, keeping every other line.
fn rewrite_line(path: &Path, name: &str, replacement: Option<&str>) -> anyhow::Result<()> {
    let users = Users::load(path)?;
    anyhow::ensure!(users.contains(name), "no user {name} in {}", path.display());
    let text = read_optional(path)?.unwrap_or_default();
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        let is_user = line.split_once(':').is_some_and(|(n, _)| n.trim().eq_ignore_ascii_case(name)) && !line.trim_start().starts_with('#');
        match (is_user, replacement) {
            (true, Some(new)) => out.push_str(new),
            (true, None) => continue,
            (false, _) => out.push_str(line),
        }
        out.push('\n');
    }
    write_atomically(path, &out)
}

/// Replaces a file atomically (write, fsync, rename, fsync the folder) so that a crash leaves
/// the old or the new file.
fn write_atomically(path: &Path, text: &str) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::File::open(dir)?.sync_all()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_then_load_and_verify() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users");
        let cost = HashCost { memory_kib: 8, iterations: 1, parallelism: 1 };
        add_user(&path, "Tyler", "secret", cost).unwrap();
        add_user(&path, "hunt", "other", HashCost::default()).unwrap();
        assert!(add_user(&path, "tyler", "again", cost).is_err());
        assert!(add_user(&path, "../etc", "x", cost).is_err());
        assert!(add_user(&path, "empty", "", cost).is_err());
        let users = Users::load(&path).unwrap();
        assert_eq!(users.names().collect::<Vec<_>>(), ["hunt", "tyler"]);
        assert!(users.verify("tyler", "secret"));
        assert!(!users.verify("tyler", "wrong"));
        assert!(!users.verify("nobody", "secret"));
        // The cost given is the cost stored.
        assert!(std::fs::read_to_string(&path).unwrap().contains("tyler:$argon2id$v=19$m=8,t=1,p=1$"));
    }

    #[test]
    fn passwd_and_del_keep_the_other_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users");
        let cost = HashCost { memory_kib: 8, iterations: 1, parallelism: 1 };
        add_user(&path, "tyler", "secret", cost).unwrap();
        add_user(&path, "hunt", "other", cost).unwrap();
        let mut text = std::fs::read_to_string(&path).unwrap();
        text.insert_str(0, "# the staff\n");
        std::fs::write(&path, text).unwrap();
        set_password(&path, "Tyler", "new one", cost).unwrap();
        let users = Users::load(&path).unwrap();
        assert!(users.verify("tyler", "new one") && !users.verify("tyler", "secret") && users.verify("hunt", "other"));
        remove_user(&path, "tyler").unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("# the staff\nhunt:"), "{text}");
        assert!(set_password(&path, "tyler", "x", cost).is_err());
        assert!(remove_user(&path, "nobody").is_err());
    }

    #[test]
    fn bad_lines_are_named() {
        let path = Path::new("users");
        let e = Users::parse("# comment\n\ntyler:plaintext\n", path).unwrap_err();
        assert_eq!(e.line, Some(3));
        assert!(e.to_string().starts_with("users:3: not a PHC hash string"), "{e}");
        let e = Users::parse("tyler\n", path).unwrap_err();
        assert_eq!(e.line, Some(1));
        let e = Users::parse("tyler:$pbkdf2-sha256$i=1000$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA\n", path).unwrap_err();
        assert!(e.message.contains("not argon2"), "{e}");
    }

    #[test]
    fn missing_file_is_development_mode() {
        let users = Users::load(Path::new("/nonexistent/users")).unwrap();
        assert!(users.is_empty());
    }
}
