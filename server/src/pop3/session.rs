//! One POP3 session (RFC 1939): AUTHORIZATION → TRANSACTION → UPDATE. This file runs the
//! loop over the connection and sends each command to its state's handler: `auth.rs` for the
//! AUTHORIZATION state (USER/PASS, AUTH, STLS), `maildrop.rs` for TRANSACTION and UPDATE.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use wasmail_proto::pop3::{self as proto, Command, CommandReceiver, Line};

use super::Locks;
use crate::connection::{self, Connection};
use crate::store::Listed;
use crate::tls::Stream;
use crate::Context;

const READ_CHUNK: usize = 16 * 1024;
/// Input that may wait unconsumed: the receiver consumes every line, an over-long one too.
const MAX_PENDING: usize = 16 * 1024;
/// Bad commands tolerated before the connection is closed.
const MAX_ERRORS: u32 = 20;

/// The logged-in user's maildrop.
pub(super) struct Maildrop {
    pub user: String,
    pub messages: Vec<Listed>,
    pub deleted: Vec<bool>,
}

pub(super) enum State {
    /// Before login; the name USER gave.
    Authorization(Option<String>),
    Transaction(Maildrop),
}

pub struct Session {
    /// The connection, its buffers and deadlines. Replies stream out with back-pressure:
    /// pipelined RETRs cannot pile up messages in memory, and a client that does not read
    /// stops the session (its writes wait) rather than making it grow.
    pub(super) conn: Connection,
    pub(super) ctx: Arc<Context>,
    pub(super) locks: Arc<Locks>,
    pub(super) peer: SocketAddr,
    pub(super) receiver: CommandReceiver,
    pub(super) state: State,
    pub(super) auth_failures: u32,
    pub(super) errors: u32,
}

/// How a command leaves the session.
pub(super) enum Flow {
    Continue,
    Close,
}

impl Session {
    pub fn new(io: Stream, ctx: Arc<Context>, locks: Arc<Locks>, peer: SocketAddr) -> Session {
        let conn = Connection::new(io, ctx.shutdown.watch(), READ_CHUNK, MAX_PENDING);
        Session { conn, ctx, locks, peer, receiver: CommandReceiver::default(), state: State::Authorization(None), auth_failures: 0, errors: 0 }
    }

    pub(super) fn ok(&mut self, text: &str) {
        self.conn.send(ok_line(text).as_bytes());
    }

    pub(super) fn err(&mut self, text: &str) {
        self.conn.send(format!("-ERR {text}\r\n").as_bytes());
    }

    pub async fn run(mut self: Box<Self>) -> std::io::Result<()> {
        let hostname = self.ctx.config.hostname.clone();
        self.ok(&format!("{hostname} POP3 server ready"));
        let idle = self.ctx.config.pop3.idle_timeout.0;
        let result = self.serve(idle).await;
        // A dropped connection deletes nothing; the lock goes with the session.
        if let State::Transaction(drop) = &self.state {
            self.locks.release(&drop.user);
        }
        result
    }

    async fn serve(&mut self, idle: Duration) -> std::io::Result<()> {
        loop {
            while let Some((line, used)) = self.receiver.line(self.conn.input()) {
                let owned = match line {
                    Line::Command(bytes) => Some(bytes.to_vec()),
                    Line::TooLong => {
                        self.err("line too long");
                        None
                    }
                    Line::Discarded => None,
                };
                self.conn.consume(used);
                if let Some(bytes) = owned {
                    self.conn.command_done();
                    if let Flow::Close = Box::pin(self.command(&bytes)).await? {
                        return self.conn.close().await;
                    }
                    self.conn.flush_if_full().await?;
                }
            }
            if !self.read_more(idle).await? {
                return Ok(());
            }
        }
    }

    /// Reads more of a command line; false when the session is over (answered and closed).
    /// A line must be complete within the idle timeout of its first octet, so that a client
    /// dripping a byte at a time cannot hold the maildrop lock forever.
    pub(super) async fn read_more(&mut self, idle: Duration) -> std::io::Result<bool> {
        let partial = !self.conn.input().is_empty();
        match self.conn.read_command(idle, idle, partial).await? {
            connection::Read::Data => return Ok(true),
            connection::Read::Closed => return Ok(false),
            // No UPDATE state: messages marked deleted stay (RFC 1939 6).
            connection::Read::ShuttingDown => {
                self.err("[SYS/TEMP] server shutting down, closing");
                tracing::info!("server shutting down, session closed");
            }
            // RFC 1939 3: an autologout timer; the session ends without UPDATE.
            connection::Read::TimedOut | connection::Read::SessionOver => self.err("idle for too long, closing"),
        }
        self.conn.close().await?;
        Ok(false)
    }

    async fn command(&mut self, line: &[u8]) -> std::io::Result<Flow> {
        let command = match proto::parse(line) {
            Ok(command) => command,
            Err(e) => {
                self.errors += 1;
                let text = match e {
                    proto::Error::Unknown(verb) => format!("unknown command {verb}"),
                    proto::Error::Syntax(why) => why.to_string(),
                    proto::Error::TooLong => "line too long".to_string(),
                };
                tracing::info!(peer = %self.peer, "bad command: {text}");
                self.err(&text);
                return Ok(self.too_many_errors());
            }
        };
        let password_allowed = self.password_allowed();
        let flow = match (&mut self.state, command) {
            (_, Command::Capa) => {
                self.capa();
                Flow::Continue
            }
            (State::Authorization(_), Command::Quit) => {
                let hostname = self.ctx.config.hostname.clone();
                self.ok(&format!("{hostname} POP3 server signing off"));
                Flow::Close
            }
            (State::Authorization(_), Command::Stls) => self.stls().await?,
            (State::Authorization(_), Command::User(_) | Command::Pass(_) | Command::Auth(Some(_))) if !password_allowed => {
                // RFC 2595 2.4: no passwords in the clear where [auth] plaintext forbids them.
                self.err("[SYS/PERM] Plaintext authentication is disabled; use STLS first");
                Flow::Continue
            }
            (State::Authorization(name), Command::User(user)) => {
                *name = Some(user);
                self.ok("User name accepted, password please");
                Flow::Continue
            }
            (State::Authorization(name), Command::Pass(password)) => match name.take() {
                Some(user) => self.login(&user, &password).await,
                None => {
                    self.err("USER first");
                    Flow::Continue
                }
            },
            (State::Authorization(_), Command::Auth(None)) => {
                self.conn.send(b"+OK\r\nPLAIN\r\n.\r\n");
                Flow::Continue
            }
            (State::Authorization(_), Command::Auth(Some((mechanism, initial)))) => self.auth(&mechanism, initial).await?,
            (State::Transaction(_), Command::Quit) => self.update().await,
            (State::Transaction(drop), command) => {
                let user = drop.user.clone();
                if let Some(read) = drop.command(command, self.conn.output()) {
                    self.send_message(&user, read).await?;
                }
                Flow::Continue
            }
            (State::Authorization(_), other) => {
                self.errors += 1;
                tracing::info!(peer = %self.peer, command = ?std::mem::discriminant(&other), "command before login");
                self.err("not in this state: log in first");
                self.too_many_errors()
            }
        };
        Ok(flow)
    }

    fn too_many_errors(&mut self) -> Flow {
        if self.errors >= MAX_ERRORS {
            self.err("too many errors, closing");
            return Flow::Close;
        }
        Flow::Continue
    }

    fn capa(&mut self) {
        // RFC 2449 6. APOP is not offered: the users file holds argon2 hashes, not the
        // plaintext APOP needs. USER and SASL only where a password may be sent (RFC 2595 4),
        // STLS before login when there is a certificate.
        let before_login = matches!(self.state, State::Authorization(_));
        let mut capa = String::from("+OK Capability list follows\r\nTOP\r\nUIDL\r\n");
        if self.password_allowed() {
            capa.push_str("USER\r\nSASL PLAIN\r\n");
        }
        if before_login && self.ctx.tls.is_some() && !self.conn.is_tls() {
            capa.push_str("STLS\r\n");
        }
        capa.push_str("RESP-CODES\r\nPIPELINING\r\nAUTH-RESP-CODE\r\nEXPIRE NEVER\r\nIMPLEMENTATION Wasmail\r\n.\r\n");
        self.conn.send(capa.as_bytes());
    }

    pub(super) fn password_allowed(&self) -> bool {
        self.ctx.config.auth.password_allowed(self.conn.is_tls(), self.peer.ip())
    }
}

/// `+OK text`, or a bare `+OK` when there is no text.
pub(super) fn ok_line(text: &str) -> String {
    if text.is_empty() {
        "+OK\r\n".to_string()
    } else {
        format!("+OK {text}\r\n")
    }
}
