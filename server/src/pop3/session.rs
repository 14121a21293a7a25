//! One POP3 session (RFC 1939): AUTHORIZATION → TRANSACTION → UPDATE. The maildrop is locked
//! for the session (a second login gets `-ERR [IN-USE]`, RFC 2449 8.1.1), listed once at login,
//! and changed only in UPDATE, after QUIT: a dropped connection deletes nothing.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use super::proto::{self, Command, CommandReceiver, Line};
use super::Locks;
use crate::connection::{self, Connection};
use crate::smtp::proto::DotStuffer;
use crate::store::Listed;
use crate::tls::Stream;
use crate::Context;

const READ_CHUNK: usize = 16 * 1024;
/// Input that may wait unconsumed: the receiver consumes every line, an over-long one too.
const MAX_PENDING: usize = 16 * 1024;
/// Wrong passwords tolerated before the connection is closed.
const MAX_AUTH_FAILURES: u32 = 3;
/// Bad commands tolerated before the connection is closed.
const MAX_ERRORS: u32 = 20;

/// The logged-in user's maildrop.
struct Maildrop {
    user: String,
    messages: Vec<Listed>,
    deleted: Vec<bool>,
}

enum State {
    /// Before login; the name USER gave.
    Authorization(Option<String>),
    Transaction(Maildrop),
}

pub struct Session {
    /// The connection, its buffers and deadlines. Replies stream out with back-pressure:
    /// pipelined RETRs cannot pile up messages in memory, and a client that does not read
    /// stops the session (its writes wait) rather than making it grow.
    conn: Connection,
    ctx: Arc<Context>,
    locks: Arc<Locks>,
    peer: SocketAddr,
    receiver: CommandReceiver,
    state: State,
    auth_failures: u32,
    errors: u32,
}

/// How a command leaves the session.
enum Flow {
    Continue,
    Close,
}

impl Session {
    pub fn new(io: Stream, ctx: Arc<Context>, locks: Arc<Locks>, peer: SocketAddr) -> Session {
        let conn = Connection::new(io, ctx.shutdown.watch(), READ_CHUNK, MAX_PENDING);
        Session { conn, ctx, locks, peer, receiver: CommandReceiver::default(), state: State::Authorization(None), auth_failures: 0, errors: 0 }
    }

    fn ok(&mut self, text: &str) {
        self.conn.send(ok_line(text).as_bytes());
    }

    fn err(&mut self, text: &str) {
        self.conn.send(format!("-ERR {text}\r\n").as_bytes());
    }

    pub async fn run(mut self) -> std::io::Result<()> {
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
                    if let Flow::Close = self.command(&bytes).await? {
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
    async fn read_more(&mut self, idle: Duration) -> std::io::Result<bool> {
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
                if let Some(read) = transaction(drop, command, self.conn.output()) {
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

    /// RETR and TOP: reads the message on the blocking pool and sends it.
    async fn send_message(&mut self, user: &str, read: Read) -> std::io::Result<()> {
        let store = Arc::clone(&self.ctx.store);
        let (name, listed) = (user.to_string(), read.message.clone());
        match tokio::task::spawn_blocking(move || store.read(&name, &listed)).await {
            Ok(Ok(message)) => {
                let body = match read.lines {
                    None => message.as_slice(),
                    Some(lines) => top(&message, lines),
                };
                let octets = if read.lines.is_none() { read.message.size } else { body.len() as u64 };
                self.ok(&format!("{octets} octets"));
                // Stuffed and written a block at a time: the output never holds more than
                // FLUSH_AT and a block.
                let mut stuffer = DotStuffer::default();
                for block in body.chunks(64 * 1024) {
                    stuffer.push(self.conn.output(), block);
                    self.conn.flush_if_full().await?;
                }
                stuffer.finish(self.conn.output());
            }
            result => {
                let error = match result {
                    Ok(Err(e)) => e.to_string(),
                    Err(e) => e.to_string(),
                    Ok(Ok(_)) => unreachable!("matched above"),
                };
                tracing::warn!(user, id = read.message.id, error, "cannot read a message");
                self.err("[SYS/TEMP] cannot read the message");
            }
        }
        Ok(())
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

    fn password_allowed(&self) -> bool {
        self.ctx.config.auth.password_allowed(self.conn.is_tls(), self.peer.ip())
    }

    /// STLS (RFC 2595 4): the handshake, after throwing away whatever the client sent after
    /// the command in the clear (CVE-2011-0411); the session starts over, not logged in.
    async fn stls(&mut self) -> std::io::Result<Flow> {
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
    async fn login(&mut self, user: &str, password: &str) -> Flow {
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
    async fn auth(&mut self, mechanism: &str, initial: Option<String>) -> std::io::Result<Flow> {
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

    /// QUIT in TRANSACTION: the deletions happen now, durably, then the lock goes.
    async fn update(&mut self) -> Flow {
        let State::Transaction(drop) = &self.state else { unreachable!("checked by the caller") };
        let user = drop.user.clone();
        let ids: Vec<Listed> = drop.messages.iter().zip(&drop.deleted).filter(|(_, d)| **d).map(|(m, _)| m.clone()).collect();
        let left = drop.messages.len() - ids.len();
        let store = Arc::clone(&self.ctx.store);
        let name = user.clone();
        let removed = tokio::task::spawn_blocking(move || store.remove(&name, &ids)).await;
        let hostname = self.ctx.config.hostname.clone();
        match removed {
            Ok(Ok(())) => self.ok(&format!("{hostname} POP3 server signing off ({left} messages left)")),
            _ => {
                tracing::error!(user, "POP3 deletions failed");
                self.err("[SYS/TEMP] Some deleted messages were not removed");
            }
        }
        self.locks.release(&user);
        self.state = State::Authorization(None);
        Flow::Close
    }
}

/// A message RETR or TOP is to send: `lines` of the body for TOP, all of it for RETR.
struct Read {
    message: Listed,
    lines: Option<usize>,
}

/// The commands of the TRANSACTION state, which work on the listing; RETR and TOP return the
/// message to read, which the session reads off the async task.
fn transaction(drop: &mut Maildrop, command: Command, out: &mut Vec<u8>) -> Option<Read> {
    let mut ok = |text: &str| out.extend_from_slice(ok_line(text).as_bytes());
    // Message numbers are 1-based; a deleted message may not be named (RFC 1939 5).
    let find = |drop: &Maildrop, n: u32| -> Result<usize, &'static str> {
        let i = (n as usize).checked_sub(1).filter(|&i| i < drop.messages.len()).ok_or("no such message")?;
        if drop.deleted[i] {
            return Err("message already deleted");
        }
        Ok(i)
    };
    match command {
        Command::Stat => {
            let (count, size) = drop.messages.iter().zip(&drop.deleted).filter(|(_, d)| !**d).fold((0, 0u64), |(c, s), (m, _)| (c + 1, s + m.size));
            ok(&format!("{count} {size}"));
        }
        Command::List(None) => {
            ok("scan listing follows");
            for (i, m) in drop.messages.iter().enumerate().filter(|(i, _)| !drop.deleted[*i]) {
                out.extend_from_slice(format!("{} {}\r\n", i + 1, m.size).as_bytes());
            }
            out.extend_from_slice(b".\r\n");
        }
        Command::List(Some(n)) => match find(drop, n) {
            Ok(i) => ok(&format!("{n} {}", drop.messages[i].size)),
            Err(e) => out.extend_from_slice(format!("-ERR {e}\r\n").as_bytes()),
        },
        Command::Uidl(None) => {
            ok("unique-id listing follows");
            for (i, m) in drop.messages.iter().enumerate().filter(|(i, _)| !drop.deleted[*i]) {
                out.extend_from_slice(format!("{} {}\r\n", i + 1, uidl(&m.id)).as_bytes());
            }
            out.extend_from_slice(b".\r\n");
        }
        Command::Uidl(Some(n)) => match find(drop, n) {
            Ok(i) => ok(&format!("{n} {}", uidl(&drop.messages[i].id))),
            Err(e) => out.extend_from_slice(format!("-ERR {e}\r\n").as_bytes()),
        },
        Command::Dele(n) => match find(drop, n) {
            Ok(i) => {
                drop.deleted[i] = true;
                ok(&format!("message {n} deleted"));
            }
            Err(e) => out.extend_from_slice(format!("-ERR {e}\r\n").as_bytes()),
        },
        Command::Rset => {
            drop.deleted.iter_mut().for_each(|d| *d = false);
            ok(&format!("maildrop has {} messages", drop.messages.len()));
        }
        Command::Retr(n) | Command::Top(n, _) => {
            let lines = match command {
                Command::Top(_, lines) => Some(lines as usize),
                _ => None,
            };
            match find(drop, n) {
                Ok(i) => return Some(Read { message: drop.messages[i].clone(), lines }),
                Err(e) => out.extend_from_slice(format!("-ERR {e}\r\n").as_bytes()),
            }
        }
        Command::Noop => ok(""),
        Command::User(_) | Command::Pass(_) | Command::Apop(..) | Command::Auth(_) => {
            out.extend_from_slice(b"-ERR already logged in\r\n");
        }
        // RFC 2595 4: STLS only in the AUTHORIZATION state.
        Command::Stls => out.extend_from_slice(b"-ERR STLS is only allowed before login\r\n"),
        Command::Capa | Command::Quit => unreachable!("handled by the session"),
    }
    None
}

/// `+OK text`, or a bare `+OK` when there is no text.
fn ok_line(text: &str) -> String {
    if text.is_empty() {
        "+OK\r\n".to_string()
    } else {
        format!("+OK {text}\r\n")
    }
}

/// The header and the first `lines` lines of the body (RFC 1939 7, TOP).
fn top(message: &[u8], lines: usize) -> &[u8] {
    let header_end = message.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4).unwrap_or(message.len());
    let mut end = header_end;
    for _ in 0..lines {
        match memchr::memchr(b'\n', &message[end..]) {
            Some(i) => end += i + 1,
            None => {
                end = message.len();
                break;
            }
        }
    }
    &message[..end]
}

/// A UIDL value: the store's id when it fits RFC 1939's 0x21-0x7E, 1-70 characters; else a
/// stable hash of it.
fn uidl(id: &str) -> String {
    if !id.is_empty() && id.len() <= 70 && id.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
        return id.to_string();
    }
    // FNV-1a, 64 bits, as hex: stable across runs and versions.
    let mut hash: u64 = 0xcbf29ce484222325;
    for b in id.bytes() {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x100000001b3);
    }
    format!("{hash:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_stuffing_and_uidl() {
        let msg = b"Subject: a\r\n\r\none\r\n.two\r\nthree\r\n";
        assert_eq!(top(msg, 0), b"Subject: a\r\n\r\n");
        assert_eq!(top(msg, 2), b"Subject: a\r\n\r\none\r\n.two\r\n");
        assert_eq!(top(msg, 10), msg);
        // Stuffed in pieces of every size: the same as whole, CRLF added when missing.
        for size in 1..=msg.len() {
            let mut out = Vec::new();
            let mut stuffer = DotStuffer::default();
            msg.chunks(size).for_each(|piece| stuffer.push(&mut out, piece));
            stuffer.finish(&mut out);
            assert_eq!(out, b"Subject: a\r\n\r\none\r\n..two\r\nthree\r\n.\r\n", "pieces of {size}");
        }
        let mut out = Vec::new();
        let mut stuffer = DotStuffer::default();
        stuffer.push(&mut out, b".x");
        stuffer.finish(&mut out);
        assert_eq!(out, b"..x\r\n.\r\n");
        assert_eq!(uidl("1800000000.Q1-0.mx,S=10,W=12"), "1800000000.Q1-0.mx,S=10,W=12");
        assert_eq!(uidl(&"x".repeat(80)).len(), 16);
    }
}
