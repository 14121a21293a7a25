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
    pub fn verify(&self, name: &str, password: &str) -> bool {
        let Some(hash) = self.hashes.get(&name.to_ascii_lowercase()) else {
            return false;
        };
        PasswordHash::new(hash).is_ok_and(|h| Argon2::default().verify_password(password.as_bytes(), &h).is_ok())
    }
}

/// Adds `name` with an argon2id hash of `password` to the users file, replacing the file
/// atomically (write, fsync, rename) so that a crash leaves the old or the new file.
pub fn add_user(path: &Path, name: &str, password: &str) -> anyhow::Result<()> {
    let name = name.to_ascii_lowercase();
    anyhow::ensure!(valid_user_name(&name), "{name:?} is not a valid user name (letters, digits, . _ -)");
    anyhow::ensure!(!password.is_empty(), "the password is empty");
    let users = Users::load(path)?;
    anyhow::ensure!(!users.contains(&name), "user {name} exists already in {}", path.display());
    let salt = SaltString::generate(&mut OsRng);
    let hash = Argon2::default().hash_password(password.as_bytes(), &salt).map_err(|e| anyhow::anyhow!("hashing failed: {e}"))?.to_string();
    let mut text = read_optional(path)?.unwrap_or_default();
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    text.push_str(&format!("{name}:{hash}\n"));
    let tmp = path.with_extension("tmp");
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_then_load_and_verify() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users");
        add_user(&path, "Tyler", "secret").unwrap();
        add_user(&path, "hunt", "other").unwrap();
        assert!(add_user(&path, "tyler", "again").is_err());
        assert!(add_user(&path, "../etc", "x").is_err());
        let users = Users::load(&path).unwrap();
        assert_eq!(users.names().collect::<Vec<_>>(), ["hunt", "tyler"]);
        assert!(users.verify("tyler", "secret"));
        assert!(!users.verify("tyler", "wrong"));
        assert!(!users.verify("nobody", "secret"));
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
