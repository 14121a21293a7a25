//! STARTTLS (RFC 3207) and AUTH (RFC 4954, mechanisms PLAIN and LOGIN).
//!
//! STARTTLS throws away whatever the client sent after the command before the handshake
//! (CVE-2011-0411: such bytes travelled in the clear and must not be taken as coming through
//! TLS) and forgets the greeting, the transaction and any authentication (RFC 3207 4.2).
//! Passwords are accepted where `[auth] plaintext` allows them without TLS, and always over
//! TLS; failures go through the shared penalty.

use wasmail_proto::smtp::{codes, CommandReceiver, Reply};

use super::session::{Flow, Session};
use crate::sasl::{decode_plain, Login, PlainError};

/// The longest SASL response line (RFC 4954 4: 12288 octets).
const MAX_SASL_LINE: usize = 12_288;
/// Failed AUTH attempts before the session ends.
const MAX_AUTH_FAILURES: u32 = 3;

impl Session {
    /// Whether EHLO lists STARTTLS: a certificate, and TLS not on yet.
    pub(super) fn tls_offered(&self) -> bool {
        self.ctx.tls.is_some() && !self.conn.is_tls()
    }

    /// Whether a password may be sent on this connection now.
    pub(super) fn password_allowed(&self) -> bool {
        self.ctx.config.auth.password_allowed(self.conn.is_tls(), self.peer.ip())
    }

    pub(super) async fn handle_starttls(&mut self) -> std::io::Result<Flow> {
        let Some(tls) = self.ctx.tls.clone() else {
            self.reply(Reply::new(502, codes::INVALID_COMMAND, "STARTTLS not available"));
            return Ok(self.bad_command());
        };
        if self.conn.is_tls() {
            return Ok(self.out_of_sequence("TLS already active"));
        }
        if self.transaction.is_some() {
            return Ok(self.out_of_sequence("STARTTLS inside a mail transaction"));
        }
        self.reply(Reply::new(220, codes::OK, "Ready to start TLS"));
        // CVE-2011-0411: what came after STARTTLS came in the clear; it is not a command.
        self.receiver = CommandReceiver::default();
        if !self.conn.start_tls(&tls, 0).await? {
            return Ok(Flow::Close);
        }
        // RFC 3207 4.2: the client starts over with EHLO.
        self.end_transaction().await;
        self.greeting = None;
        self.user = None;
        Ok(Flow::Continue)
    }

    pub(super) async fn handle_auth(&mut self, mechanism: &str, initial: Option<String>) -> std::io::Result<Flow> {
        if self.user.is_some() {
            return Ok(self.out_of_sequence("Already authenticated"));
        }
        if !self.greeting.as_ref().is_some_and(|g| g.extended) {
            return Ok(self.out_of_sequence("Send EHLO first"));
        }
        if self.transaction.is_some() {
            return Ok(self.out_of_sequence("AUTH is not allowed inside a mail transaction"));
        }
        if !matches!(mechanism, "PLAIN" | "LOGIN") {
            self.reply(Reply::new(504, codes::INVALID_ARGS, "Unrecognized authentication type"));
            return Ok(self.bad_command());
        }
        if !self.password_allowed() {
            self.reply(Reply::new(538, codes::ENCRYPTION_REQUIRED, "Encryption required for requested authentication mechanism"));
            return Ok(self.bad_command());
        }
        let credentials = if mechanism == "PLAIN" { self.plain_exchange(initial).await? } else { self.login_exchange(initial).await? };
        let (user, password) = match credentials {
            Exchange::Done(user, password) => (user, password),
            Exchange::Reply(reply) => {
                self.reply(reply);
                return Ok(self.bad_command());
            }
            Exchange::Closed => return Ok(Flow::Close),
        };
        match crate::sasl::login(&self.ctx.directory, &self.ctx.penalty, self.peer.ip(), &user, &password, "smtp").await {
            Login::Accepted => {
                self.user = Some(user.to_ascii_lowercase());
                self.reply(Reply::new(235, codes::AUTH_SUCCEEDED, "Authentication successful"));
                Ok(Flow::Continue)
            }
            Login::Blocked => {
                self.reply(Reply::new(421, codes::TEMP_ABUSE, format!("{} Too many failed logins, try again later", self.hostname())));
                Ok(Flow::Close)
            }
            Login::Refused => {
                self.auth_failures += 1;
                self.reply(Reply::new(535, codes::AUTH_CREDENTIALS, "Authentication credentials invalid"));
                if self.auth_failures >= MAX_AUTH_FAILURES {
                    self.reply(Reply::new(421, codes::TEMP_ABUSE, format!("{} Too many failed logins, closing connection", self.hostname())));
                    return Ok(Flow::Close);
                }
                Ok(Flow::Continue)
            }
        }
    }

    /// PLAIN: the initial response, or one after an empty challenge.
    async fn plain_exchange(&mut self, initial: Option<String>) -> std::io::Result<Exchange> {
        let response = match initial {
            // RFC 4954 4: "=" is an empty initial response.
            Some(r) if r == "=" => String::new(),
            Some(r) => r,
            None => match self.sasl_response("").await? {
                Response::Line(line) => line,
                Response::Cancelled => return Ok(Exchange::Reply(cancelled())),
                Response::TooLong => return Ok(Exchange::Reply(too_long())),
                Response::Closed => return Ok(Exchange::Closed),
            },
        };
        Ok(match decode_plain(&response) {
            Ok(plain) => Exchange::Done(plain.user, plain.password),
            Err(PlainError::Malformed) => Exchange::Reply(Reply::new(501, codes::SYNTAX, "Malformed PLAIN response")),
            Err(PlainError::OtherIdentity) => Exchange::Reply(Reply::new(535, codes::AUTH_CREDENTIALS, "Acting for another user is not allowed")),
        })
    }

    /// LOGIN: the user name (perhaps given with AUTH), then the password, each base64.
    async fn login_exchange(&mut self, initial: Option<String>) -> std::io::Result<Exchange> {
        let mut answers = Vec::new();
        if let Some(initial) = initial {
            answers.push(initial);
        }
        for prompt in crate::sasl::LOGIN_PROMPTS.into_iter().skip(answers.len()) {
            match self.sasl_response(prompt).await? {
                Response::Line(line) => answers.push(line),
                Response::Cancelled => return Ok(Exchange::Reply(cancelled())),
                Response::TooLong => return Ok(Exchange::Reply(too_long())),
                Response::Closed => return Ok(Exchange::Closed),
            }
        }
        Ok(match crate::sasl::decode_login(&answers) {
            Some((user, password)) => Exchange::Done(user, password),
            None => Exchange::Reply(Reply::new(501, codes::SYNTAX, "Malformed LOGIN response")),
        })
    }

    /// Sends a 334 challenge and reads the client's line.
    async fn sasl_response(&mut self, challenge: &str) -> std::io::Result<Response> {
        self.reply(Reply::plain(334, challenge.to_string()));
        loop {
            if let Some(lf) = memchr::memchr(b'\n', self.conn.input()) {
                let line = String::from_utf8_lossy(&self.conn.input()[..lf]).trim_end_matches('\r').to_string();
                self.conn.consume(lf + 1);
                return Ok(if line == "*" { Response::Cancelled } else { Response::Line(line) });
            }
            if self.conn.input().len() > MAX_SASL_LINE {
                self.conn.discard_input();
                return Ok(Response::TooLong);
            }
            if self.fill(self.ctx.config.smtp.command_timeout.0).await?.is_err() {
                return Ok(Response::Closed);
            }
        }
    }

    /// The user a session authenticated as, for Received and logs.
    pub(super) fn authenticated(&self) -> Option<&str> {
        self.user.as_deref()
    }
}

enum Exchange {
    Done(String, String),
    Reply(Reply),
    Closed,
}

enum Response {
    Line(String),
    Cancelled,
    TooLong,
    Closed,
}

fn cancelled() -> Reply {
    Reply::new(501, codes::OTHER, "Authentication cancelled")
}

fn too_long() -> Reply {
    Reply::new(500, codes::SYNTAX, "Authentication line too long")
}
