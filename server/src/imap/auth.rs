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
        if !crate::sasl::check_password(&self.ctx.directory, &user, password).await {
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
        Ok(match crate::sasl::decode_plain(&response) {
            Ok(plain) => self.login(&plain.user, &plain.password).await,
            Err(crate::sasl::PlainError::Malformed) => Outcome::bad("Malformed PLAIN response"),
            Err(crate::sasl::PlainError::OtherIdentity) => Outcome::no_code("AUTHORIZATIONFAILED", "Cannot act as another user"),
        })
    }
}
