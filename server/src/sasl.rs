//! What SMTP, POP3 and IMAP share of authentication: the SASL PLAIN message (RFC 4616), the
//! password check (on the blocking pool, because argon2 is slow on purpose), and the penalty
//! for failures: like Dovecot's auth penalty, each failure from an address delays that
//! address's next answers (starting at `[auth] failure_delay`, doubling up to
//! `failure_delay_max`), and past `max_failures` failures an address — or one user name from
//! one address — is refused outright until `failure_window` has passed without one.
//!
//! There is no lock per user name alone: it would let anyone lock any account out by
//! failing ten times with its name. Guesses at one name from many addresses are slowed by
//! each address's own delay and limit; that is Dovecot's rule too.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::config::AuthConfig;
use crate::directory::Directory;

/// Failures counted for one address or one user name.
#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    last: Instant,
}

/// The shared record of failed logins, under one generation's settings.
pub struct Penalty {
    config: AuthConfig,
    /// Kept across reloads: a reload does not forgive a guesser.
    records: Arc<Records>,
}

#[derive(Default)]
struct Records {
    by_address: Mutex<HashMap<IpAddr, Failures>>,
    /// Per (address, lower-case user name).
    by_user: Mutex<HashMap<(IpAddr, String), Failures>>,
}

/// Whether an attempt may go ahead.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Check the password.
    Go,
    /// Too many failures from this address or for this user: refuse without checking.
    Blocked,
}

impl Penalty {
    pub fn new(config: &AuthConfig) -> Penalty {
        Penalty { config: config.clone(), records: Arc::default() }
    }

    /// The same records under new settings (a reload).
    pub fn reconfigured(&self, config: &AuthConfig) -> Penalty {
        Penalty { config: config.clone(), records: Arc::clone(&self.records) }
    }

    fn recent(&self, failures: Option<&Failures>) -> u32 {
        match failures {
            Some(f) if f.last.elapsed() < self.config.failure_window.0 => f.count,
            _ => 0,
        }
    }

    /// Before checking a password: blocked past the limit (per address, or per user name
    /// from this address).
    pub fn check(&self, peer: IpAddr, user: &str) -> Verdict {
        let max = self.config.max_failures;
        let address = self.recent(self.records.by_address.lock().expect("penalty lock").get(&peer));
        let user = self.recent(self.records.by_user.lock().expect("penalty lock").get(&(peer, user.to_ascii_lowercase())));
        if address >= max || user >= max {
            Verdict::Blocked
        } else {
            Verdict::Go
        }
    }

    /// Records a failure and returns how long to wait before answering it.
    pub fn failed(&self, peer: IpAddr, user: &str) -> Duration {
        let now = Instant::now();
        let count = {
            let mut map = self.records.by_address.lock().expect("penalty lock");
            let count = self.recent(map.get(&peer)) + 1;
            map.insert(peer, Failures { count, last: now });
            // Forget what has aged out, so that the map stays small.
            if map.len() > 10_000 {
                let window = self.config.failure_window.0;
                map.retain(|_, f| f.last.elapsed() < window);
            }
            count
        };
        {
            let mut map = self.records.by_user.lock().expect("penalty lock");
            let key = (peer, user.to_ascii_lowercase());
            let user_count = self.recent(map.get(&key)) + 1;
            map.insert(key, Failures { count: user_count, last: now });
            if map.len() > 10_000 {
                let window = self.config.failure_window.0;
                map.retain(|_, f| f.last.elapsed() < window);
            }
        }
        self.delay_for(count)
    }

    /// The wait after the `count`th failure in a row: base, doubled each time, capped.
    fn delay_for(&self, count: u32) -> Duration {
        let base = self.config.failure_delay.0;
        base.saturating_mul(1 << count.saturating_sub(1).min(16)).min(self.config.failure_delay_max.0.max(base))
    }

    /// A success clears the address's record (not the user's: a guesser who also knows one
    /// password must not reset the count for another user).
    pub fn succeeded(&self, peer: IpAddr) {
        self.records.by_address.lock().expect("penalty lock").remove(&peer);
    }
}

/// A PLAIN response, decoded.
#[derive(Debug, PartialEq, Eq)]
pub struct Plain {
    pub user: String,
    pub password: String,
}

#[derive(Debug, PartialEq, Eq)]
pub enum PlainError {
    /// Not base64 of `authzid NUL authcid NUL password` in UTF-8.
    Malformed,
    /// An authorization identity other than the user's own: acting for another user is not
    /// offered.
    OtherIdentity,
}

/// The LOGIN mechanism's two challenges, "Username:" and "Password:" in base64 (the
/// draft-murchison-sasl-login convention SMTP and IMAP clients expect).
pub const LOGIN_PROMPTS: [&str; 2] = ["VXNlcm5hbWU6", "UGFzc3dvcmQ6"];

/// The user name and password from LOGIN's two base64 answers.
pub fn decode_login(answers: &[String]) -> Option<(String, String)> {
    let decoded: Vec<Option<String>> = answers.iter().map(|a| String::from_utf8(wasmail_mime::transfer::decode_base64(a.as_bytes())).ok()).collect();
    match decoded.as_slice() {
        [Some(user), Some(password)] if !user.is_empty() => Some((user.clone(), password.clone())),
        _ => None,
    }
}

/// Decodes a PLAIN response (base64).
pub fn decode_plain(response: &str) -> Result<Plain, PlainError> {
    let decoded = wasmail_mime::transfer::decode_base64(response.as_bytes());
    let parts: Vec<&[u8]> = decoded.split(|&b| b == 0).collect();
    let [authzid, user, password] = parts.as_slice() else { return Err(PlainError::Malformed) };
    let (Ok(user), Ok(password)) = (std::str::from_utf8(user), std::str::from_utf8(password)) else {
        return Err(PlainError::Malformed);
    };
    if user.is_empty() {
        return Err(PlainError::Malformed);
    }
    if !authzid.is_empty() && !authzid.eq_ignore_ascii_case(user.as_bytes()) {
        return Err(PlainError::OtherIdentity);
    }
    Ok(Plain { user: user.to_string(), password: password.to_string() })
}

/// How a login attempt ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Login {
    Accepted,
    /// A wrong user or password; the penalty's delay has been served.
    Refused,
    /// Too many failures from this address or for this user: not even checked.
    Blocked,
}

/// Checks `user`'s password under the penalty: blocked past the limits, delayed after a
/// failure, logged either way. `protocol` names the service in the log.
pub async fn login(directory: &Arc<Directory>, penalty: &Penalty, peer: IpAddr, user: &str, password: &str, protocol: &str) -> Login {
    if penalty.check(peer, user) == Verdict::Blocked {
        tracing::warn!(%peer, user, protocol, "login refused: too many failures");
        crate::metrics::get().login(protocol, "blocked");
        return Login::Blocked;
    }
    let (directory, name, pass) = (Arc::clone(directory), user.to_string(), password.to_string());
    let good = tokio::task::spawn_blocking(move || directory.verify_password(&name, &pass)).await.unwrap_or(false);
    if good {
        penalty.succeeded(peer);
        tracing::info!(%peer, user, protocol, "login");
        crate::metrics::get().login(protocol, "success");
        return Login::Accepted;
    }
    let delay = penalty.failed(peer, user);
    tracing::info!(%peer, user, protocol, delay_ms = delay.as_millis() as u64, "login failed");
    crate::metrics::get().login(protocol, "failure");
    tokio::time::sleep(delay).await;
    Login::Refused
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(max_failures: u32) -> AuthConfig {
        AuthConfig {
            failure_delay: crate::config::Duration(Duration::from_secs(2)),
            failure_delay_max: crate::config::Duration(Duration::from_secs(15)),
            max_failures,
            ..AuthConfig::default()
        }
    }

    #[test]
    fn the_penalty_doubles_caps_and_blocks() {
        let penalty = Penalty::new(&config(6));
        let (a, b): (IpAddr, IpAddr) = ("192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap());
        let delays: Vec<u64> = (0..5).map(|_| penalty.failed(a, "hunt").as_secs()).collect();
        assert_eq!(delays, [2, 4, 8, 15, 15]);
        assert_eq!(penalty.check(a, "tyler"), Verdict::Go);
        penalty.failed(a, "tyler");
        assert_eq!(penalty.check(a, "tyler"), Verdict::Blocked, "six failures from one address");
        assert_eq!(penalty.check(b, "tyler"), Verdict::Go);
        assert_eq!(penalty.failed(b, "hunt").as_secs(), 2, "another address starts afresh");
        assert_eq!(penalty.check(b, "hunt"), Verdict::Go, "failures from elsewhere do not lock a user out here");
        // A guesser who knows one password cannot reset the count for another user: the
        // success clears the address's record, not (address, user)'s.
        for _ in 0..5 {
            penalty.failed(b, "hunt");
        }
        penalty.succeeded(b);
        assert_eq!(penalty.check(b, "tyler"), Verdict::Go);
        assert_eq!(penalty.check(b, "hunt"), Verdict::Blocked, "six failures for hunt from this address");
    }

    #[test]
    fn login_answers() {
        assert_eq!(decode_login(&["dHlsZXI=".into(), "c2VjcmV0".into()]), Some(("tyler".into(), "secret".into())));
        assert_eq!(decode_login(&["".into(), "c2VjcmV0".into()]), None);
        assert_eq!(decode_login(&["dHlsZXI=".into()]), None);
    }

    #[test]
    fn plain_responses() {
        assert_eq!(decode_plain("AGh1bnQAc2VjcmV0"), Ok(Plain { user: "hunt".into(), password: "secret".into() }));
        assert_eq!(decode_plain("aHVudABodW50AHNlY3JldA=="), Ok(Plain { user: "hunt".into(), password: "secret".into() }));
        assert_eq!(decode_plain("dHlsZXIAaHVudABzZWNyZXQ="), Err(PlainError::OtherIdentity));
        assert_eq!(decode_plain("bm8gbnVscw=="), Err(PlainError::Malformed));
        assert_eq!(decode_plain(""), Err(PlainError::Malformed));
    }
}
