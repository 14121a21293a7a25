//! LOGIN and AUTHENTICATE PLAIN (RFC 3501 6.2, RFC 4616, SASL-IR RFC 4959). Passwords are
//! checked on the blocking pool (argon2 is slow on purpose); a wrong one is delayed and
//! counted, and the third closes the session.

use std::sync::Arc;

use wasmail_proto::imap::Framed;

use super::session::{Next, Outcome, Session};

/// Wrong passwords tolerated before the connection is closed.
const MAX_AUTH_FAILURES: u32 = 3;

impl Session {
    pub(super) async fn login(&mut self, user: &str, password: &str) -> Outcome {
        if !self.password_allowed() {
            // RFC 3501 6.2.3 and LOGINDISABLED: no passwords in the clear here.
            return Outcome::no_code("PRIVACYREQUIRED", "Plaintext authentication is disabled; use STARTTLS first");
        }
        let user = user.to_ascii_lowercase();
        match crate::sasl::login(&self.ctx.directory, &self.ctx.penalty, self.peer.ip(), &user, password, "imap").await {
            crate::sasl::Login::Accepted => {}
            crate::sasl::Login::Blocked => {
                self.untagged("BYE Too many failed logins, try again later");
                self.logout = true;
                return Outcome::no_code("UNAVAILABLE", "Too many failed logins, try again later");
            }
            crate::sasl::Login::Refused => {
                self.auth_failures += 1;
                if self.auth_failures >= MAX_AUTH_FAILURES {
                    self.untagged("BYE Too many failed logins");
                    self.logout = true;
                }
                return Outcome::no_code("AUTHENTICATIONFAILED", "Authentication failed");
            }
        }
        let store = Arc::clone(&self.ctx.store);
        let name = user.clone();
        // The inbox and the special-use folders exist from the first login on.
        if let Err(e) = tokio::task::spawn_blocking(move || store.open_user(&name)).await.map_err(std::io::Error::other).and_then(|r| r) {
            tracing::warn!(user, error = %e, "cannot open the mailbox");
            return Outcome::no_code("UNAVAILABLE", "Cannot open the mailbox; try again later");
        }
        self.user = Some(user);
        let imap = &self.ctx.config.imap;
        self.receiver.set_limits(imap.max_literal.0, imap.max_literal.0 + imap.max_line.0);
        Outcome::ok_code(format!("CAPABILITY {}", self.capabilities()), "LOGIN completed")
    }

    /// AUTHENTICATE PLAIN (with or without SASL-IR) and LOGIN (user name and password, each
    /// after its own base64 prompt).
    pub(super) async fn authenticate(&mut self, mechanism: &str, initial: Option<String>) -> std::io::Result<Outcome> {
        if mechanism != "PLAIN" && mechanism != "LOGIN" {
            return Ok(Outcome::no("Unsupported authentication mechanism"));
        }
        if !self.password_allowed() {
            return Ok(Outcome::no_code("PRIVACYREQUIRED", "Plaintext authentication is disabled; use STARTTLS first"));
        }
        if mechanism == "LOGIN" {
            let mut answers = Vec::new();
            if let Some(initial) = initial {
                answers.push(initial);
            }
            for prompt in crate::sasl::LOGIN_PROMPTS.into_iter().skip(answers.len()) {
                match self.sasl_response(prompt).await? {
                    Ok(line) => answers.push(line),
                    Err(outcome) => return Ok(outcome),
                }
            }
            return Ok(match crate::sasl::decode_login(&answers) {
                Some((user, password)) => self.login(&user, &password).await,
                None => Outcome::bad("Malformed LOGIN response"),
            });
        }
        let response = match initial {
            // RFC 4959: "=" is an empty initial response.
            Some(r) if r == "=" => String::new(),
            Some(r) => r,
            None => match self.sasl_response("").await? {
                Ok(line) => line,
                Err(outcome) => return Ok(outcome),
            },
        };
        Ok(match crate::sasl::decode_plain(&response) {
            Ok(plain) => self.login(&plain.user, &plain.password).await,
            Err(crate::sasl::PlainError::Malformed) => Outcome::bad("Malformed PLAIN response"),
            Err(crate::sasl::PlainError::OtherIdentity) => Outcome::no_code("AUTHORIZATIONFAILED", "Cannot act as another user"),
        })
    }

    /// A continuation request with `challenge`, and the client's line: Err with the reply
    /// when it cancelled (`*`) or went away.
    async fn sasl_response(&mut self, challenge: &str) -> std::io::Result<Result<String, Outcome>> {
        self.conn.send(format!("+ {challenge}\r\n").as_bytes());
        Ok(match self.next_frame().await? {
            Next::Frame(Framed::Command(line)) => {
                let text = String::from_utf8_lossy(&line).trim_end().to_string();
                if text == "*" {
                    Err(Outcome::bad("AUTHENTICATE cancelled"))
                } else {
                    Ok(text)
                }
            }
            Next::Frame(_) => Err(Outcome::bad("Bad AUTHENTICATE response")),
            Next::ShuttingDown => {
                self.untagged("BYE Server shutting down");
                self.logout = true;
                Err(Outcome::bad("AUTHENTICATE not completed"))
            }
            Next::Closed | Next::TimedOut => Err(Outcome::bad("AUTHENTICATE not completed")),
        })
    }
}
