//! LOGIN and AUTHENTICATE PLAIN (RFC 3501 6.2, RFC 4616, SASL-IR RFC 4959). Passwords are
//! checked on the blocking pool (argon2 is slow on purpose); a wrong one is delayed and
//! counted, and the third closes the session.

use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite};

use super::proto::Framed;
use super::session::{Next, Outcome, Session};

/// Wrong passwords tolerated before the connection is closed.
const MAX_AUTH_FAILURES: u32 = 3;

impl<S: AsyncRead + AsyncWrite + Unpin> Session<S> {
    pub(super) async fn login(&mut self, user: &str, password: &str) -> Outcome {
        let user = user.to_ascii_lowercase();
        let directory = Arc::clone(&self.ctx.directory);
        let (name, pass) = (user.clone(), password.to_string());
        let good = tokio::task::spawn_blocking(move || directory.verify_password(&name, &pass)).await.unwrap_or(false);
        if !good {
            self.auth_failures += 1;
            tracing::info!(peer = %self.peer, user, failures = self.auth_failures, "IMAP login failed");
            tokio::time::sleep(self.ctx.config.imap.auth_failure_delay.0).await;
            if self.auth_failures >= MAX_AUTH_FAILURES {
                self.untagged("BYE Too many failed logins");
                self.logout = true;
                return Outcome::no_code("AUTHENTICATIONFAILED", "Authentication failed");
            }
            return Outcome::no_code("AUTHENTICATIONFAILED", "Authentication failed");
        }
        let store = Arc::clone(&self.ctx.store);
        let name = user.clone();
        // The inbox and the special-use folders exist from the first login on.
        if let Err(e) = tokio::task::spawn_blocking(move || store.open_user(&name)).await.map_err(std::io::Error::other).and_then(|r| r) {
            tracing::warn!(user, error = %e, "cannot open the mailbox");
            return Outcome::no_code("UNAVAILABLE", "Cannot open the mailbox; try again later");
        }
        tracing::info!(peer = %self.peer, user, "IMAP login");
        self.user = Some(user);
        Outcome::ok_code(format!("CAPABILITY {}", super::session::CAPABILITIES), "LOGIN completed")
    }

    pub(super) async fn authenticate(&mut self, mechanism: &str, initial: Option<String>) -> std::io::Result<Outcome> {
        if mechanism != "PLAIN" {
            return Ok(Outcome::no("Unsupported authentication mechanism"));
        }
        let response = match initial {
            // RFC 4959: "=" is an empty initial response.
            Some(r) if r == "=" => String::new(),
            Some(r) => r,
            None => {
                self.out.extend_from_slice(b"+ \r\n");
                match self.next_frame().await? {
                    Next::Frame(Framed::Command(line)) => {
                        let text = String::from_utf8_lossy(&line).trim_end().to_string();
                        if text == "*" {
                            return Ok(Outcome::bad("AUTHENTICATE cancelled"));
                        }
                        text
                    }
                    Next::Frame(_) => return Ok(Outcome::bad("Bad AUTHENTICATE response")),
                    Next::Closed | Next::TimedOut => return Ok(Outcome::bad("AUTHENTICATE not completed")),
                }
            }
        };
        let decoded = crate::mime::transfer::decode_base64(response.as_bytes());
        let parts: Vec<&[u8]> = decoded.split(|&b| b == 0).collect();
        let [authzid, user, password] = parts.as_slice() else {
            return Ok(Outcome::bad("Malformed PLAIN response"));
        };
        let (Ok(user), Ok(password)) = (std::str::from_utf8(user), std::str::from_utf8(password)) else {
            return Ok(Outcome::bad("Malformed PLAIN response"));
        };
        // Acting for another user is not offered: the authorization identity, if given, must
        // be the user's own.
        if !authzid.is_empty() && !authzid.eq_ignore_ascii_case(user.as_bytes()) {
            return Ok(Outcome::no_code("AUTHORIZATIONFAILED", "Cannot act as another user"));
        }
        Ok(self.login(user, password).await)
    }
}
