//! The AUTHORIZATION state (RFC 1939 4, RFC 5034, RFC 2595): USER/PASS and AUTH PLAIN check
//! the password (on the blocking pool: argon2 is slow on purpose), lock the maildrop and list
//! it; STLS starts TLS first.

use std::sync::Arc;

use wasmail_proto::pop3::{self as proto, CommandReceiver, Line};

use super::session::{Flow, Maildrop, Session, State};

/// Wrong passwords tolerated before the connection is closed.
const MAX_AUTH_FAILURES: u32 = 3;

impl Session {
    /// STLS (RFC 2595 4): the handshake, after throwing away whatever the client sent after
    /// the command in the clear (CVE-2011-0411); the session starts over, not logged in.
    pub(super) async fn stls(&mut self) -> std::io::Result<Flow> {
        let Some(tls) = self.ctx.tls.clone() else {
            self.err("STLS is not available");
            return Ok(Flow::Continue);
        };
        if self.conn.is_tls() {
            self.err("TLS is already active");
            return Ok(Flow::Continue);
        }
        self.ok("Begin TLS negotiation");
        self.receiver = CommandReceiver::default();
        if !self.conn.start_tls(&tls, 0).await? {
            return Ok(Flow::Close);
        }
        self.state = State::Authorization(None);
        Ok(Flow::Continue)
    }

    /// USER/PASS or AUTH: checks the password (on the blocking pool: argon2 is slow on
    /// purpose), then locks and lists the maildrop.
    pub(super) async fn login(&mut self, user: &str, password: &str) -> Flow {
        let user = user.to_ascii_lowercase();
        // Slow down guessing (RFC 1939 13): the shared penalty delays and, past its limits, blocks.
        match crate::sasl::login(&self.ctx.directory, &self.ctx.penalty, self.peer.ip(), &user, password, "pop3").await {
            crate::sasl::Login::Accepted => {}
            crate::sasl::Login::Blocked => {
                self.err("[SYS/TEMP] Too many failed logins, try again later");
                return Flow::Close;
            }
            crate::sasl::Login::Refused => {
                self.auth_failures += 1;
                self.err("[AUTH] Authentication failed");
                if self.auth_failures >= MAX_AUTH_FAILURES {
                    self.err("too many failed logins, closing");
                    return Flow::Close;
                }
                return Flow::Continue;
            }
        }
        if !self.locks.acquire(&user) {
            tracing::info!(peer = %self.peer, user, "maildrop in use");
            self.err("[IN-USE] Maildrop already in use");
            return Flow::Continue;
        }
        let store = Arc::clone(&self.ctx.store);
        let name = user.clone();
        let listed = tokio::task::spawn_blocking(move || store.list(&name)).await;
        match listed {
            Ok(Ok(messages)) => {
                let total: u64 = messages.iter().map(|m| m.size).sum();
                tracing::info!(peer = %self.peer, user, messages = messages.len(), "POP3 login");
                self.ok(&format!("{} messages in maildrop ({total} octets)", messages.len()));
                let deleted = vec![false; messages.len()];
                self.state = State::Transaction(Maildrop { user, messages, deleted });
            }
            _ => {
                self.locks.release(&user);
                self.err("[SYS/TEMP] Cannot open the maildrop, try again later");
            }
        }
        Flow::Continue
    }

    /// AUTH PLAIN (RFC 5034, RFC 4616), with the response inline or on the next line.
    pub(super) async fn auth(&mut self, mechanism: &str, initial: Option<String>) -> std::io::Result<Flow> {
        if mechanism != "PLAIN" {
            self.err("Unrecognized authentication type");
            return Ok(Flow::Continue);
        }
        let response = match initial {
            Some(r) => r,
            None => {
                self.conn.send(b"+ \r\n");
                let line = loop {
                    if let Some((line, used)) = self.receiver.line(self.conn.input()) {
                        let text = match line {
                            Line::Command(bytes) => proto::auth_response(bytes),
                            _ => None,
                        };
                        self.conn.consume(used);
                        break text;
                    }
                    if !self.read_more(self.ctx.config.pop3.idle_timeout.0).await? {
                        return Ok(Flow::Close);
                    }
                };
                match line {
                    Some(text) if text != "*" => text,
                    _ => {
                        self.err("AUTH cancelled");
                        return Ok(Flow::Continue);
                    }
                }
            }
        };
        match crate::sasl::decode_plain(&response) {
            Ok(plain) => Ok(self.login(&plain.user, &plain.password).await),
            Err(crate::sasl::PlainError::Malformed) => {
                self.err("[AUTH] Malformed PLAIN response");
                Ok(Flow::Continue)
            }
            Err(crate::sasl::PlainError::OtherIdentity) => {
                self.err("[AUTH] Acting for another user is not allowed");
                Ok(Flow::Continue)
            }
        }
    }
}
