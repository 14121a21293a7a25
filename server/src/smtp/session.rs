//! One SMTP session: the state machine over its [`Connection`] (buffers, deadlines, TLS).
//! Verb families are handled in their own files (`ehlo.rs`, `envelope.rs`, `content.rs`,
//! `info.rs`); this file runs the loop, maps parse errors to replies and applies the
//! session-wide limits (timeouts, error count).
//!
//! Pipelining (RFC 2920) falls out of the loop's shape: replies are queued in `output`, and
//! `output` is flushed only when the input holds no complete command any more, that is, at
//! the points where the client must be waiting for us.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use wasmail_proto::smtp::{codes, Address, Command, CommandReceiver, ContentReceiver, Error, MailParams, RcptParams, Reply};

use crate::connection::{Connection, Read};
use crate::directory::Mailbox;
use crate::plugin::{ConnectInfo, Decision, Hook, SessionPlugins};
use crate::tls::Stream;
use crate::Context;

/// Read this much at a time from the socket: message content comes in large pieces.
const READ_CHUNK: usize = 64 * 1024;
/// Input that may wait unconsumed: a SASL response line (`auth.rs`) is the longest unit the
/// session waits for whole; command lines are shorter, content is consumed as it arrives.
const MAX_PENDING: usize = 16 * 1024;

/// What the client said in HELO or EHLO.
#[derive(Debug, Clone)]
pub(super) struct Greeting {
    /// The name the client gave, recorded in Received.
    pub name: String,
    /// EHLO (true) or HELO (false): decides `with ESMTP` or `with SMTP`.
    pub extended: bool,
}

/// A mail transaction between MAIL and the end of its content (RFC 5321 3.3).
#[derive(Debug)]
pub(super) struct Transaction {
    /// Names this message in logs and in the Received header.
    pub queue_id: String,
    /// None for the null reverse path `<>`.
    pub reverse_path: Option<Address>,
    pub params: MailParams,
    pub recipients: Vec<Recipient>,
    /// Set once a BDAT chunk arrived: DATA is then out of sequence (RFC 3030 2).
    pub bdat: Option<Chunks>,
    /// A plugin said "discard": the client hears 250, nothing is delivered.
    pub discard: Option<String>,
    /// SPF's verdict on the envelope, when this client's mail is checked (`[auth_results]`).
    pub spf: Option<crate::authenticity::verify::Spf>,
    /// All the checks' results, once the content is in.
    pub authenticity: Option<crate::authenticity::verify::Results>,
}

/// A BDAT transaction in progress: the receiver keeps line-end state across chunks.
#[derive(Debug)]
pub(super) struct Chunks {
    pub receiver: ContentReceiver,
    pub content: Vec<u8>,
}

/// An accepted recipient.
#[derive(Debug, Clone)]
pub(super) struct Recipient {
    /// The address as the client gave it (for logs, Received and later DSNs).
    pub address: String,
    /// Where it is delivered, after aliases; empty for a recipient to relay.
    pub mailboxes: Vec<Mailbox>,
    /// Addresses elsewhere its aliases forward to (relayed as forwarded mail: SRS, ARC).
    pub forwards: Vec<String>,
    /// NOTIFY and ORCPT, kept for the delivery side.
    pub params: RcptParams,
}

pub(super) enum Flow {
    Continue,
    Close,
}

/// What a listener is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Port {
    /// Mail exchange (port 25 style): mail for local domains, relaying for trusted clients.
    Mx,
    /// Submission (RFC 6409, port 587): STARTTLS offered, AUTH before MAIL.
    Submission,
    /// Submission over implicit TLS (RFC 8314, port 465).
    Submissions,
}

pub struct Session {
    /// The connection: plain, or TLS from the start or after STARTTLS; its buffers and
    /// deadlines.
    pub(super) conn: Connection,
    /// Configuration, directory and store, shared by all sessions.
    pub(super) ctx: Arc<Context>,
    /// The client's address: for Received, relay decisions and logs.
    pub(super) peer: SocketAddr,
    /// Finds command lines in `input`; remembers whether an over-long line is being skipped.
    pub(super) receiver: CommandReceiver,
    /// Set by HELO/EHLO; MAIL needs it.
    pub(super) greeting: Option<Greeting>,
    /// The mail transaction in progress, from MAIL to the end of its content.
    pub(super) transaction: Option<Transaction>,
    /// Bad commands so far; at `smtp.max_errors` the session ends with 421.
    errors: u32,
    /// This session's plugin instances (made lazily) and the hook calls.
    pub(super) plugins: SessionPlugins,
    /// The session id, as in the log lines.
    pub(super) id: String,
    /// The listener's purpose.
    pub(super) port: Port,
    /// The user AUTH authenticated, if any.
    pub(super) user: Option<String>,
    /// Failed AUTH attempts in this session; the third ends it.
    pub(super) auth_failures: u32,
    /// Transactions begun (MAIL accepted) in this session.
    pub(super) messages: u32,
    /// Recipients refused as unknown in this session (directory harvesting).
    pub(super) unknown_recipients: u32,
}

/// Why reading stopped.
pub(super) enum ReadEnd {
    /// The client closed the connection.
    Closed,
    /// Nothing arrived within the timeout; 421 has been sent.
    TimedOut,
    /// The server is shutting down; 421 has been sent.
    ShuttingDown,
}

impl Session {
    pub fn new(io: Stream, ctx: Arc<Context>, peer: SocketAddr, id: String, port: Port) -> Self {
        let plugins = SessionPlugins::new(Arc::clone(&ctx.plugins), &id);
        let conn = Connection::new(io, ctx.shutdown.watch(), READ_CHUNK, MAX_PENDING).with_max_session(ctx.config.smtp.max_session_time.0);
        Session {
            plugins,
            id,
            conn,
            ctx,
            peer,
            receiver: CommandReceiver::default(),
            greeting: None,
            transaction: None,
            errors: 0,
            port,
            user: None,
            auth_failures: 0,
            messages: 0,
            unknown_recipients: 0,
        }
    }

    pub(super) fn hostname(&self) -> &str {
        &self.ctx.config.hostname
    }

    pub(super) fn reply(&mut self, reply: Reply) {
        reply.write_to(self.conn.output());
    }

    pub(super) async fn flush(&mut self) -> std::io::Result<()> {
        self.conn.flush().await
    }

    /// Flushes pending replies, then reads more input within `timeout` — and within what is
    /// left of the session's `max_session_time`, so that a client dripping a byte at a time
    /// cannot hold a session forever.
    pub(super) async fn fill(&mut self, timeout: Duration) -> std::io::Result<Result<(), ReadEnd>> {
        let read = self.conn.read(timeout).await?;
        self.read_end(read).await
    }

    /// Reads more of a command line: `command_timeout` between commands, and a line begun
    /// must be complete within `command_timeout` of its first octet.
    async fn fill_command(&mut self) -> std::io::Result<Result<(), ReadEnd>> {
        let timeout = self.ctx.config.smtp.command_timeout.0;
        let partial = !self.conn.input().is_empty();
        let read = self.conn.read_command(timeout, timeout, partial).await?;
        self.read_end(read).await
    }

    /// Answers the ways a read can end the session.
    async fn read_end(&mut self, read: Read) -> std::io::Result<Result<(), ReadEnd>> {
        let (end, text) = match read {
            Read::Data => return Ok(Ok(())),
            Read::Closed => return Ok(Err(ReadEnd::Closed)),
            Read::ShuttingDown => {
                // RFC 5321 3.8: a server that must shut down answers 421 to whatever comes
                // next; here it does not wait for it. A message not yet ended with its final
                // dot was never acknowledged, so the client keeps it.
                let text = format!("{} Service shutting down, closing connection", self.hostname());
                self.reply(Reply::new(421, codes::TEMP_OVERLOAD, text));
                self.flush().await?;
                tracing::info!(in_transaction = self.transaction.is_some(), "server shutting down, session closed");
                return Ok(Err(ReadEnd::ShuttingDown));
            }
            Read::SessionOver => (ReadEnd::TimedOut, format!("{} Error: session too long, closing", self.hostname())),
            Read::TimedOut => (ReadEnd::TimedOut, format!("{} Error: timeout exceeded", self.hostname())),
        };
        self.reply(Reply::new(421, codes::TEMP_TIMEOUT, text));
        self.flush().await?;
        tracing::info!(why = ?read, "timeout, closing");
        Ok(Err(end))
    }

    /// Runs the session to its end. Only IO errors are errors; everything the client does
    /// wrong is answered.
    pub async fn run(mut self: Box<Self>) -> std::io::Result<()> {
        if self.plugins.wants(Hook::Connect) {
            let info = ConnectInfo {
                client_ip: self.peer.ip().to_string(),
                client_port: self.peer.port(),
                tls: self.conn.is_tls(),
                session_id: self.id.clone(),
            };
            match Box::pin(self.plugins.on_connect(&info)).await {
                Decision::Refuse(reply) | Decision::Disconnect(reply) => {
                    tracing::info!(%reply, "connection refused by a plugin");
                    self.reply(reply);
                    return self.end().await;
                }
                // Discard has no message to act on yet; accept is continue here.
                Decision::Continue | Decision::Accept | Decision::Discard => {}
            }
        }
        if let Some(left) = self.ctx.abuse.blocked(self.peer.ip()) {
            tracing::info!(seconds = left.as_secs(), "blocked address refused");
            let text = format!("{} Your address is blocked for {} s after probing for recipients", self.hostname(), left.as_secs() + 1);
            self.reply(Reply::new(421, codes::TEMP_ABUSE, text));
            return self.end().await;
        }
        let banner = format!("{} ESMTP Wasmail", self.hostname());
        self.reply(Reply::plain(220, banner));
        loop {
            let (used, result) = self.receiver.receive(self.conn.input());
            self.conn.consume(used);
            let flow = match result {
                Err(Error::NeedsMoreData) => {
                    if used == 0 && self.fill_command().await?.is_err() {
                        return self.end().await;
                    }
                    continue;
                }
                Ok(command) => {
                    self.conn.command_done();
                    // Boxed: a command's state (DATA, the plugins' calls) is large, and an
                    // idle session, waiting between commands, should not carry room for it.
                    let flow = Box::pin(self.handle(command)).await?;
                    self.conn.flush_if_full().await?;
                    flow
                }
                Err(error) => {
                    let reply = error_reply(&error);
                    tracing::debug!(%reply, "bad command");
                    self.reply(reply);
                    self.bad_command()
                }
            };
            if let Flow::Close = flow {
                return self.end().await;
            }
        }
    }

    async fn end(&mut self) -> std::io::Result<()> {
        self.conn.close().await
    }

    /// Ends the transaction, if there is one, and tells the plugins.
    pub(super) async fn end_transaction(&mut self) {
        if self.transaction.take().is_some() {
            self.plugins.on_reset().await;
        }
    }

    /// Counts a protocol error; past the limit the session ends (421 4.7.0).
    pub(super) fn bad_command(&mut self) -> Flow {
        self.errors += 1;
        if self.errors >= self.ctx.config.smtp.max_errors {
            let text = format!("{} Error: too many errors, closing connection", self.hostname());
            self.reply(Reply::new(421, codes::TEMP_ABUSE, text));
            tracing::info!(errors = self.errors, "too many errors, closing");
            return Flow::Close;
        }
        Flow::Continue
    }

    /// Answers a command in the wrong state with 503 5.5.1 and counts it as an error.
    pub(super) fn out_of_sequence(&mut self, text: &str) -> Flow {
        self.reply(Reply::new(503, codes::INVALID_COMMAND, text));
        self.bad_command()
    }

    async fn handle(&mut self, command: Command) -> std::io::Result<Flow> {
        self.plugins.begin_command();
        Ok(match command {
            Command::Helo(name) => self.handle_helo(name, false).await,
            Command::Ehlo(name) => self.handle_helo(name, true).await,
            Command::Mail { reverse_path, params } => self.handle_mail(reverse_path, params).await,
            Command::Rcpt { forward_path, params } => self.handle_rcpt(forward_path, params).await,
            Command::Data => self.handle_data().await?,
            Command::Bdat { size, last } => self.handle_bdat(size, last).await?,
            Command::Rset => {
                self.end_transaction().await;
                self.reply(Reply::new(250, codes::OK, "Ok"));
                Flow::Continue
            }
            Command::Noop => {
                self.reply(Reply::new(250, codes::OK, "Ok"));
                Flow::Continue
            }
            Command::Quit => {
                let text = format!("{} closing connection", self.hostname());
                self.reply(Reply::new(221, codes::OK, text));
                Flow::Close
            }
            Command::Vrfy(arg) => self.handle_vrfy(&arg),
            Command::Expn(arg) => self.handle_expn(&arg),
            Command::Help(topic) => self.handle_help(topic.as_deref()),
            Command::Etrn(node) => self.handle_etrn(&node).await,
            Command::StartTls => self.handle_starttls().await?,
            Command::Auth { mechanism, initial } => self.handle_auth(&mechanism, initial).await?,
            Command::Obsolete(verb) => {
                self.reply(Reply::new(502, codes::INVALID_COMMAND, format!("{verb} command not implemented")));
                self.bad_command()
            }
            Command::Unknown { verb, args } => match self.plugins.on_command(&verb, &args).await {
                Some((reply, close)) => {
                    self.reply(reply);
                    if close {
                        Flow::Close
                    } else {
                        Flow::Continue
                    }
                }
                None => {
                    tracing::debug!(verb, "unknown command");
                    self.reply(Reply::new(500, codes::SYNTAX, "Command unrecognized"));
                    self.bad_command()
                }
            },
        })
    }
}

/// One match from every parse error to its reply.
fn error_reply(error: &Error) -> Reply {
    match error {
        Error::NeedsMoreData => unreachable!("not an error reply"),
        Error::LineTooLong => Reply::new(500, codes::SYNTAX, "Line too long (RFC 5321 4.5.3.1.4)"),
        Error::InvalidCharacter => Reply::new(500, codes::SYNTAX, "NUL or bare CR in command"),
        Error::NotUtf8 => Reply::new(500, codes::SYNTAX, "Command is not valid UTF-8"),
        Error::Syntax(verb, expected) => Reply::new(501, codes::INVALID_ARGS, format!("Syntax: {verb} {expected}")),
        Error::BadSender(why) => Reply::new(501, codes::BAD_SENDER_SYNTAX, format!("Bad sender address syntax: {why}")),
        Error::BadRecipient(why) => Reply::new(501, codes::BAD_DEST_SYNTAX, format!("Bad recipient address syntax: {why}")),
        Error::BadParameter(why) => Reply::new(501, codes::INVALID_ARGS, format!("Bad parameter: {why}")),
    }
}
