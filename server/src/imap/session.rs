//! One IMAP session (RFC 3501 3): not authenticated → authenticated → selected → logout. The
//! session owns the socket, the command receiver and, when a mailbox is selected, its view of
//! it (sequence numbers, flags, \Recent); [`Session::refresh`] brings the view up to date and
//! tells the client what changed, when the RFC lets it. Each command family is handled in its
//! own file.

use std::collections::{HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use wasmail_proto::imap::{self as proto, Command, Flag, Framed, Receiver, Request, SequenceSet};

use crate::connection::{Connection, Read};
use crate::lifecycle::Stage;
use crate::store::{Flags, MessageInfo};
use crate::tls::Stream;
use crate::Context;

/// What one read takes from the socket. A waiting session holds this much, so it stays small:
/// 10,000 idle sessions with 64 KiB each held 640 MB.
const READ_CHUNK: usize = 16 * 1024;
/// The receiver takes all input as it arrives (holding what it frames within its limits), so
/// nothing waits unconsumed in the connection.
const MAX_PENDING: usize = 0;
/// Bad commands tolerated before the connection is closed.
const MAX_ERRORS: u32 = 20;

/// The extensions that work (RFC 3501 7.2.1); STARTTLS, LOGINDISABLED and AUTH=PLAIN are
/// added by the session as the connection allows.
const EXTENSIONS: &str =
    "IMAP4rev1 IMAP4rev2 LITERAL+ SASL-IR ID ENABLE IDLE NAMESPACE UIDPLUS MOVE UNSELECT CHILDREN SPECIAL-USE ESEARCH STATUS=SIZE MULTIAPPEND CONDSTORE QRESYNC \
     SORT SORT=DISPLAY ESORT THREAD=ORDEREDSUBJECT THREAD=REFERENCES BINARY \
     LIST-EXTENDED LIST-STATUS CATENATE SEARCHRES CONTEXT=SEARCH CONTEXT=SORT \
     QUOTA QUOTA=RES-STORAGE QUOTA=RES-MESSAGE COMPRESS=DEFLATE NOTIFY";

/// A mailbox as the session sees it.
pub(super) struct Selected {
    pub name: String,
    pub read_only: bool,
    pub uid_validity: u32,
    /// Messages by sequence number (index + 1), with the flags last told to the client.
    /// Shared with the store's list it was taken from until the first change the client is
    /// told of (`Arc::make_mut`): SELECT copies nothing, and SEARCH, SORT and THREAD hand it
    /// to the blocking pool without a copy.
    pub messages: Arc<Vec<MessageInfo>>,
    /// UIDs gone from the store but not yet reported with EXPUNGE (not allowed during FETCH,
    /// STORE and SEARCH, RFC 3501 7.4.1): they keep their sequence numbers until then.
    pub gone: HashSet<u32>,
    /// This session's \Recent messages.
    pub recent: HashSet<u32>,
    /// IMAP4rev2: \Recent is not shown (RFC 9051 removed it).
    pub rev2: bool,
    /// The keywords the client was told of (FLAGS, PERMANENTFLAGS): a message showing
    /// another is preceded by new FLAGS and PERMANENTFLAGS responses (RFC 3501 7.2.6).
    pub keywords: Vec<String>,
    /// The store's list this view was last brought up to date with.
    pub snapshot: Arc<Vec<MessageInfo>>,
    /// The mailbox's HIGHESTMODSEQ as far as the client has been told every change up to it
    /// (RFC 7162 3.1.2.1): not raised while an expunge waits to be reported.
    pub highest_modseq: u64,
    /// The saved search result, `$` (RFC 5182): UIDs, ascending.
    pub saved: Vec<u32>,
    /// Searches whose results the client follows (RFC 5267 UPDATE).
    pub contexts: Vec<super::context::SearchContext>,
    /// Wakes IDLE when the mailbox changes.
    pub changes: tokio::sync::watch::Receiver<u64>,
}

impl Selected {
    /// Indexes (sequence number - 1) of the messages a set names. Message numbers must exist
    /// (else the set is bad); UIDs that do not exist are skipped (RFC 3501 6.4.8).
    pub fn resolve(&self, set: &SequenceSet, uid: bool) -> Result<Vec<usize>, String> {
        let messages = &self.messages;
        if set.is_saved() {
            // `$` (RFC 5182) names messages, by UID whatever the command.
            let largest = messages.last().map(|m| m.uid).unwrap_or(0);
            return Ok(SequenceSet::of(&self.saved).positions(messages.len(), |i| messages[i].uid, largest));
        }
        if uid {
            let largest = messages.last().map(|m| m.uid).unwrap_or(0);
            return Ok(set.positions(messages.len(), |i| messages[i].uid, largest));
        }
        let count = messages.len() as u32;
        if count == 0 || !set.within(count) {
            return Err("Invalid message sequence number".into());
        }
        Ok(set.positions(messages.len(), |i| i as u32 + 1, count))
    }

    /// The flags of a message as FETCH shows them: `(\Seen \Recent $Label1)`.
    pub fn flags_text(&self, message: &MessageInfo) -> String {
        flags_text(&message.flags, !self.rev2 && self.recent.contains(&message.uid))
    }

    /// `* 3 FETCH (FLAGS (\Seen) UID 7 MODSEQ (12))` for the message at index `i`, with the
    /// UID and the mod-sequence if asked.
    pub fn flags_response(&self, i: usize, uid: bool, modseq: bool) -> String {
        let message = &self.messages[i];
        let mut line = format!("{} FETCH (FLAGS {}", i + 1, self.flags_text(message));
        if uid {
            line.push_str(&format!(" UID {}", message.uid));
        }
        if modseq {
            line.push_str(&format!(" MODSEQ ({})", message.modseq));
        }
        line.push(')');
        line
    }
}

/// Adds the keywords of `flags` that `keywords` lacks; true if there were any.
pub(super) fn learn_keywords(keywords: &mut Vec<String>, flags: &Flags) -> bool {
    let before = keywords.len();
    for keyword in &flags.keywords {
        if !keywords.iter().any(|k| k.eq_ignore_ascii_case(keyword)) {
            keywords.push(keyword.clone());
        }
    }
    keywords.len() != before
}

/// The FLAGS and PERMANENTFLAGS responses for a mailbox with these keywords.
pub(super) fn flags_lines(keywords: &[String], read_only: bool) -> [String; 2] {
    let extra: String = keywords.iter().map(|k| format!(" {k}")).collect();
    let permanent = if read_only {
        "OK [PERMANENTFLAGS ()] Read-only mailbox".to_string()
    } else {
        format!("OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft{extra} \\*)] Flags permitted")
    };
    [format!("FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft{extra})"), permanent]
}

impl Selected {
    /// Learns the keywords of `flags`; the FLAGS and PERMANENTFLAGS lines to send first when
    /// one is new to the client.
    pub fn announce(&mut self, flags: &Flags) -> Vec<String> {
        if learn_keywords(&mut self.keywords, flags) {
            flags_lines(&self.keywords, self.read_only).to_vec()
        } else {
            Vec::new()
        }
    }
}

pub(super) fn flags_text(flags: &Flags, recent: bool) -> String {
    let mut names: Vec<&str> = Vec::new();
    for (bit, name) in [
        (Flags::SEEN, "\\Seen"),
        (Flags::ANSWERED, "\\Answered"),
        (Flags::FLAGGED, "\\Flagged"),
        (Flags::DELETED, "\\Deleted"),
        (Flags::DRAFT, "\\Draft"),
    ] {
        if flags.has(bit) {
            names.push(name);
        }
    }
    if recent {
        names.push("\\Recent");
    }
    names.extend(flags.keywords.iter().map(String::as_str));
    format!("({})", names.join(" "))
}

/// Applies a proto flag to store flags (`set` or clear).
pub(super) fn apply_flag(flags: &mut Flags, flag: &Flag, set: bool) {
    let bit = match flag {
        Flag::Seen => Flags::SEEN,
        Flag::Answered => Flags::ANSWERED,
        Flag::Flagged => Flags::FLAGGED,
        Flag::Deleted => Flags::DELETED,
        Flag::Draft => Flags::DRAFT,
        Flag::Recent => return,
        Flag::Keyword(k) => {
            if set {
                flags.add_keyword(k);
            } else {
                flags.remove_keyword(k);
            }
            return;
        }
    };
    if set {
        flags.system |= bit;
    } else {
        flags.system &= !bit;
    }
}

/// How a command ends: the tagged status line.
pub(super) enum Status {
    Ok,
    No,
    Bad,
}

pub(super) struct Outcome {
    pub status: Status,
    /// A response code without brackets (`READ-WRITE`, `APPENDUID 5 7`).
    pub code: Option<String>,
    pub text: String,
}

impl Outcome {
    pub fn ok(text: impl Into<String>) -> Outcome {
        Outcome { status: Status::Ok, code: None, text: text.into() }
    }
    pub fn ok_code(code: impl Into<String>, text: impl Into<String>) -> Outcome {
        Outcome { status: Status::Ok, code: Some(code.into()), text: text.into() }
    }
    pub fn no(text: impl Into<String>) -> Outcome {
        Outcome { status: Status::No, code: None, text: text.into() }
    }
    pub fn no_code(code: impl Into<String>, text: impl Into<String>) -> Outcome {
        Outcome { status: Status::No, code: Some(code.into()), text: text.into() }
    }
    pub fn bad(text: impl Into<String>) -> Outcome {
        Outcome { status: Status::Bad, code: None, text: text.into() }
    }
}

/// What reading the next frame found.
pub(super) enum Next {
    Frame(Framed),
    /// The client closed the connection.
    Closed,
    /// Nothing for `idle_timeout`.
    TimedOut,
    /// The server is shutting down.
    ShuttingDown,
}

pub struct Session {
    /// The connection, its buffers and deadlines; output is written at the end of each batch
    /// of commands, or sooner when large (a long FETCH).
    pub(super) conn: Connection,
    pub(super) ctx: Arc<Context>,
    pub(super) peer: SocketAddr,
    /// Rendered message structures, shared by every session.
    pub(super) cache: Arc<super::cache::StructureCache>,
    /// Frames the client's commands; its limits grow at login.
    pub(super) receiver: Receiver,
    frames: VecDeque<Framed>,
    /// The logged-in user.
    pub(super) user: Option<String>,
    pub(super) selected: Option<Selected>,
    /// CONDSTORE is on (RFC 7162 3.1): by ENABLE or the first command that uses it; FETCH
    /// responses with flags carry MODSEQ from then on.
    pub(super) condstore: bool,
    /// QRESYNC is on (ENABLE QRESYNC, RFC 7162 3.2): expunges are told with VANISHED.
    pub(super) qresync: bool,
    /// IMAP4rev2 is on (ENABLE IMAP4rev2, RFC 9051): mailbox names in UTF-8, no \Recent or
    /// RECENT, SEARCH answered with ESEARCH, SELECT with the mailbox's LIST.
    pub(super) rev2: bool,
    /// What NOTIFY SET asked to be told of (RFC 5465), until NOTIFY NONE.
    pub(super) notify: Option<super::notify::Notify>,
    pub(super) auth_failures: u32,
    errors: u32,
    /// The session ends after the current reply (LOGOUT, too many errors).
    pub(super) logout: bool,
    /// STARTTLS was answered: the handshake follows the tagged reply.
    pending_tls: Option<Arc<crate::tls::Tls>>,
    /// COMPRESS was answered: compression starts after the tagged reply.
    pending_deflate: bool,
    /// The server's shutdown stage: at `Closing` the session ends at its next read.
    pub(super) stage: watch::Receiver<Stage>,
}

impl Session {
    pub fn new(io: Stream, ctx: Arc<Context>, cache: Arc<super::cache::StructureCache>, peer: SocketAddr) -> Session {
        let imap = &ctx.config.imap;
        let before_login = imap.max_command_before_login.0;
        let receiver = Receiver::new(imap.max_line.0 as usize, imap.max_literal.0.min(before_login), before_login);
        let stage = ctx.shutdown.watch();
        let conn = Connection::new(io, stage.clone(), READ_CHUNK, MAX_PENDING);
        Session {
            stage,
            conn,
            ctx,
            peer,
            cache,
            receiver,
            frames: VecDeque::new(),
            user: None,
            selected: None,
            condstore: false,
            qresync: false,
            rev2: false,
            notify: None,
            auth_failures: 0,
            errors: 0,
            logout: false,
            pending_tls: None,
            pending_deflate: false,
        }
    }

    pub async fn run(mut self: Box<Self>) -> std::io::Result<()> {
        let greeting = format!("* OK [CAPABILITY {}] {} IMAP4rev1 server ready\r\n", self.capabilities(), self.ctx.config.hostname);
        self.conn.send(greeting.as_bytes());
        loop {
            // Replies to commands the client pipelined go out together (one write, and with
            // COMPRESS one deflate block, not one per reply): the read for the next command
            // flushes them (`Connection::read`), as does a batch grown past its bound.
            if self.frames.is_empty() {
                self.flush().await?;
            } else {
                self.flush_if_large().await?;
            }
            let next = match self.notify {
                Some(_) => self.next_frame_notifying().await?,
                None => self.next_frame().await?,
            };
            match next {
                // Boxed: an idle session, waiting between commands, carries no room for
                // the largest command's state.
                Next::Frame(frame) => Box::pin(self.frame(frame)).await?,
                Next::Closed => return Ok(()),
                Next::TimedOut => {
                    // RFC 3501 5.4: an autologout timer of at least 30 minutes.
                    self.untagged("BYE Autologout; idle for too long");
                    self.flush().await?;
                    return Ok(());
                }
                Next::ShuttingDown => {
                    // RFC 3501 7.1.5: BYE when the server is closing the connection.
                    self.untagged("BYE Server shutting down");
                    self.flush().await?;
                    tracing::info!("server shutting down, session closed");
                    return Ok(());
                }
            }
            if self.logout {
                return self.conn.close().await;
            }
        }
    }

    /// The next frame: one already received, else read (with the idle timeout). A command
    /// must be complete within the idle timeout of its first octet: a client dripping a byte
    /// at a time is logged out like an idle one.
    pub(super) async fn next_frame(&mut self) -> std::io::Result<Next> {
        loop {
            if let Some(frame) = self.frames.pop_front() {
                self.conn.command_done();
                return Ok(Next::Frame(frame));
            }
            let idle = self.ctx.config.imap.idle_timeout.0;
            let read = self.conn.read_command(idle, idle, !self.receiver.is_idle()).await?;
            if let Some(end) = self.framed(read) {
                return Ok(end);
            }
        }
    }

    /// Frames what a read brought; or how the read ended the session.
    pub(super) fn framed(&mut self, read: Read) -> Option<Next> {
        match read {
            Read::Data => {
                let mut framed = Vec::new();
                self.receiver.push(self.conn.input(), &mut framed);
                self.conn.discard_input();
                self.frames.extend(framed);
                None
            }
            Read::Closed => Some(Next::Closed),
            Read::TimedOut | Read::SessionOver => Some(Next::TimedOut),
            Read::ShuttingDown => Some(Next::ShuttingDown),
        }
    }

    /// Reads more input into the frame queue once, with no deadline of its own: IDLE waits
    /// on it beside changes, the shutdown and its own timer. None when octets arrived.
    pub(super) async fn read_more(&mut self) -> std::io::Result<Option<Next>> {
        // Far enough to be never, near enough not to overflow a deadline's arithmetic.
        let read = self.conn.read(Duration::from_secs(100 * 365 * 86_400)).await?;
        Ok(self.framed(read))
    }

    /// Takes a frame already received, if any.
    pub(super) fn take_frame(&mut self) -> Option<Framed> {
        self.frames.pop_front()
    }

    pub(super) async fn flush(&mut self) -> std::io::Result<()> {
        self.conn.flush().await
    }

    /// Writes the output so far if it has grown large.
    pub(super) async fn flush_if_large(&mut self) -> std::io::Result<()> {
        self.conn.flush_if_full().await
    }

    pub(super) fn untagged(&mut self, text: &str) {
        let out = self.conn.output();
        out.extend_from_slice(b"* ");
        out.extend_from_slice(text.as_bytes());
        out.extend_from_slice(b"\r\n");
    }

    fn tagged(&mut self, tag: &str, outcome: &Outcome) {
        let status = match outcome.status {
            Status::Ok => "OK",
            Status::No => "NO",
            Status::Bad => "BAD",
        };
        let line = match &outcome.code {
            Some(code) => format!("{tag} {status} [{code}] {}", outcome.text),
            None => format!("{tag} {status} {}", outcome.text),
        };
        // A status line is one line: text a client sent (a tag-string, a charset, a mailbox
        // name, any of which may come as a literal holding line ends) echoed in it must not
        // end it and forge the next response.
        let mut line: String = line.chars().map(|c| if matches!(c, '\r' | '\n' | '\0') { ' ' } else { c }).collect();
        line.push_str("\r\n");
        self.conn.send(line.as_bytes());
    }

    async fn frame(&mut self, frame: Framed) -> std::io::Result<()> {
        match frame {
            Framed::Continue => self.conn.send(b"+ Ready for literal data\r\n"),
            Framed::TooLong { tag } => {
                self.errors += 1;
                let tag = tag.unwrap_or_else(|| "*".into());
                self.tagged(&tag, &Outcome::bad("Command line too long"));
                self.too_many_errors();
            }
            Framed::LiteralTooBig { tag, size } => {
                self.errors += 1;
                let imap = &self.ctx.config.imap;
                let (limit, key) = match self.user {
                    Some(_) => (imap.max_literal.0, "imap.max_literal"),
                    None => (imap.max_command_before_login.0, "imap.max_command_before_login"),
                };
                tracing::info!(peer = %self.peer, size, limit = key, "literal over the limit refused");
                let tag = tag.unwrap_or_else(|| "*".into());
                self.tagged(&tag, &Outcome::no_code("TOOBIG", format!("Literal of {size} octets is over the limit of {limit} for this command")));
                self.too_many_errors();
            }
            Framed::Command(bytes) => match proto::parse_with(&bytes, self.rev2) {
                Ok(request) => self.request(request).await?,
                Err((error @ proto::Error::BadName(_), tag)) => {
                    let tag = tag.unwrap_or_else(|| "*".into());
                    self.tagged(&tag, &Outcome::no_code("CANNOT", error.to_string()));
                }
                Err((error, tag)) => {
                    self.errors += 1;
                    tracing::info!(peer = %self.peer, "bad command: {error}");
                    let tag = tag.unwrap_or_else(|| "*".into());
                    self.tagged(&tag, &Outcome::bad(error.to_string()));
                    self.too_many_errors();
                }
            },
        }
        Ok(())
    }

    fn too_many_errors(&mut self) {
        if self.errors >= MAX_ERRORS {
            self.untagged("BYE Too many bad commands");
            self.logout = true;
        }
    }

    async fn request(&mut self, request: Request) -> std::io::Result<()> {
        let Request { tag, command } = request;
        // Whether untagged EXPUNGE may follow (RFC 3501 7.4.1: not after FETCH, STORE and
        // SEARCH by sequence number).
        let expunge_allowed = !matches!(
            command,
            Command::Fetch { uid: false, .. }
                | Command::Store { uid: false, .. }
                | Command::Search { uid: false, .. }
                | Command::Sort { uid: false, .. }
                | Command::Thread { uid: false, .. }
        );
        let expunges = matches!(command, Command::Expunge | Command::UidExpunge(_));
        let mut outcome = match (self.user.is_some(), self.selected.is_some(), command) {
            (_, _, Command::Capability) => {
                let capabilities = self.capabilities();
                self.untagged(&format!("CAPABILITY {capabilities}"));
                Outcome::ok("CAPABILITY completed")
            }
            (_, _, Command::Noop) => Outcome::ok("NOOP completed"),
            (_, _, Command::Logout) => {
                self.untagged(&format!("BYE {} IMAP4rev1 server terminating connection", self.ctx.config.hostname));
                self.logout = true;
                self.selected = None;
                Outcome::ok("LOGOUT completed")
            }
            (_, _, Command::Id(fields)) => {
                if let Some(fields) = fields {
                    tracing::info!(peer = %self.peer, client = ?fields, "client ID");
                }
                self.untagged(&format!("ID (\"name\" \"Wasmail\" \"version\" \"{}\")", env!("CARGO_PKG_VERSION")));
                Outcome::ok("ID completed")
            }
            (false, _, Command::StartTls) => self.starttls().await?,
            (true, _, Command::StartTls) => Outcome::bad("STARTTLS is only allowed before login"),
            (false, _, Command::Login { user, password }) => self.login(&user, &password).await,
            (false, _, Command::Authenticate { mechanism, initial }) => self.authenticate(&mechanism, initial).await?,
            (true, _, Command::Login { .. } | Command::Authenticate { .. }) => Outcome::bad("Already logged in"),
            (true, _, Command::Select { mailbox, read_only, params }) => self.select(&mailbox, read_only, params).await,
            (true, _, Command::Create(name)) => self.create(&name).await,
            (true, _, Command::Delete(name)) => self.delete(&name).await,
            (true, _, Command::Rename { from, to }) => self.rename(&from, &to).await,
            (true, _, Command::Subscribe(name)) => self.subscribe(&name, true).await,
            (true, _, Command::Unsubscribe(name)) => self.subscribe(&name, false).await,
            (true, _, Command::List { reference, pattern, subscribed }) => self.list(&reference, &pattern, subscribed).await,
            (true, _, Command::ListExtended { selection, reference, patterns, returns }) => {
                self.list_extended(&selection, &reference, &patterns, &returns).await
            }
            (true, _, Command::Status { mailbox, items }) => self.status(&mailbox, &items).await,
            (true, _, Command::Append { mailbox, messages }) => self.append(&mailbox, messages).await,
            (true, _, Command::Compress) if self.conn.is_deflating() => Outcome::no_code("COMPRESSIONACTIVE", "DEFLATE is on already"),
            (true, _, Command::Compress) => {
                self.pending_deflate = true;
                Outcome::ok("DEFLATE active")
            }
            (true, _, Command::GetQuota(root)) => self.get_quota(&root).await,
            (true, _, Command::GetQuotaRoot(mailbox)) => self.get_quota_root(&mailbox).await,
            (true, _, Command::SetQuota(_)) => Outcome::no_code("NOPERM", "Quotas are set in the server's configuration"),
            (true, _, Command::Namespace) => {
                self.untagged("NAMESPACE ((\"\" \"/\")) NIL NIL");
                Outcome::ok("NAMESPACE completed")
            }
            (true, false, Command::Enable(capabilities)) => self.enable(&capabilities),
            (true, _, Command::Notify(set)) => self.notify(set).await,
            (true, _, Command::Idle) => self.idle().await?,
            (true, true, Command::Check) => Outcome::ok("CHECK completed"),
            (true, true, Command::CancelUpdate(tags)) => self.cancel_update(&tags),
            (true, true, Command::Close) => self.close(true).await,
            (true, true, Command::Unselect) => self.close(false).await,
            (true, true, Command::Expunge) => self.expunge(None).await,
            (true, true, Command::UidExpunge(set)) => self.expunge(Some(set)).await,
            (true, true, Command::Search { charset: Some(charset), .. }) if !known_charset(&charset) => {
                // RFC 3501 6.4.4: NO with the charsets that are supported.
                Outcome::no_code("BADCHARSET (UTF-8 US-ASCII)", format!("{charset} is not supported"))
            }
            (true, true, Command::Search { uid, ret, key, .. }) => self.search(uid, ret.as_deref(), &tag, &key).await,
            (true, true, Command::Sort { charset, .. } | Command::Thread { charset, .. }) if !known_charset(&charset) => {
                Outcome::no_code("BADCHARSET (UTF-8 US-ASCII)", format!("{charset} is not supported"))
            }
            (true, true, Command::Sort { uid, ret, criteria, key, .. }) => self.sort(uid, ret.as_deref(), &tag, &criteria, &key).await,
            (true, true, Command::Thread { uid, algorithm, key, .. }) => self.thread(uid, algorithm, &key).await,
            (true, true, Command::Fetch { uid, set, items, changed_since, vanished }) => {
                self.fetch(uid, &set, items, changed_since, vanished).await?
            }
            (true, true, Command::Store { uid, set, mode, silent, flags, unchanged_since }) => {
                self.store(uid, &set, mode, silent, &flags, unchanged_since).await
            }
            (true, true, Command::Copy { uid, set, mailbox, remove }) => self.copy(uid, &set, &mailbox, remove).await,
            (false, _, _) => Outcome::bad("Log in first"),
            (true, true, Command::Enable(_)) => Outcome::bad("ENABLE is only valid before a mailbox is selected (RFC 5161)"),
            (true, false, _) => Outcome::bad("Select a mailbox first"),
        };
        if self.selected.is_some() && !self.logout {
            self.refresh(expunge_allowed).await;
        }
        if let (true, Status::Ok, None, Some(selected)) = (expunges && self.qresync, &outcome.status, &outcome.code, &self.selected) {
            // RFC 7162 3.2.10: after VANISHED, the HIGHESTMODSEQ that covers it.
            outcome.code = Some(format!("HIGHESTMODSEQ {}", selected.highest_modseq));
        }
        self.tagged(&tag, &outcome);
        if matches!(outcome.status, Status::Bad) {
            self.errors += 1;
            self.too_many_errors();
        }
        if let Some(tls) = self.pending_tls.take() {
            self.upgrade(tls).await?;
        }
        if std::mem::take(&mut self.pending_deflate) {
            // RFC 4978 3: compression starts right after the OK; commands the client sent
            // before it saw the OK are thrown away with the rest (it must not send any).
            let ahead = self.frames.len() + usize::from(!self.receiver.is_idle());
            if ahead > 0 {
                tracing::warn!(commands = ahead, "discarding commands sent after COMPRESS before its reply");
            }
            self.frames.clear();
            self.receiver.reset();
            self.conn.start_deflate().await?;
        }
        Ok(())
    }

    /// CAPABILITY as it stands: STARTTLS before login when there is a certificate and TLS is
    /// not on; AUTH=PLAIN where a password may be sent, else LOGINDISABLED (RFC 3501 6.2.3).
    pub(super) fn capabilities(&self) -> String {
        let mut out = String::from(EXTENSIONS);
        if self.user.is_none() && self.ctx.tls.is_some() && !self.conn.is_tls() {
            out.push_str(" STARTTLS");
        }
        if self.password_allowed() {
            out.push_str(" AUTH=PLAIN AUTH=LOGIN");
        } else {
            out.push_str(" LOGINDISABLED");
        }
        out
    }

    pub(super) fn password_allowed(&self) -> bool {
        self.ctx.config.auth.password_allowed(self.conn.is_tls(), self.peer.ip())
    }

    /// STARTTLS (RFC 3501 6.2.1): answered OK here; the handshake follows the tagged reply
    /// (see [`Session::upgrade`]).
    async fn starttls(&mut self) -> std::io::Result<Outcome> {
        let Some(tls) = self.ctx.tls.clone() else { return Ok(Outcome::bad("STARTTLS is not available")) };
        if self.conn.is_tls() {
            return Ok(Outcome::bad("TLS is already active"));
        }
        self.pending_tls = Some(tls);
        Ok(Outcome::ok("Begin TLS negotiation now"))
    }

    /// The TLS handshake after STARTTLS's reply, once whatever the client sent after the
    /// command in the clear is thrown away (CVE-2011-0411): it must not count as sent
    /// through TLS. A failed handshake ends the session.
    async fn upgrade(&mut self, tls: Arc<crate::tls::Tls>) -> std::io::Result<()> {
        // The frames taken from the input and a command begun are thrown away with the rest.
        let ahead = self.frames.len() + usize::from(!self.receiver.is_idle());
        self.frames.clear();
        self.receiver.reset();
        if !self.conn.start_tls(&tls, ahead).await? {
            self.logout = true;
        }
        Ok(())
    }

    /// A mailbox name as this session writes it: modified UTF-7, or UTF-8 once IMAP4rev2 is on.
    pub(super) fn wire_name(&self, name: &str) -> String {
        if self.rev2 {
            proto::response::mailbox_utf8(name)
        } else {
            proto::response::mailbox(name)
        }
    }

    /// The logged-in user (commands that need one run only after login).
    pub(super) fn user(&self) -> String {
        self.user.clone().expect("logged in")
    }
}

/// The charsets SEARCH, SORT and THREAD take.
fn known_charset(charset: &str) -> bool {
    charset.eq_ignore_ascii_case("UTF-8") || charset.eq_ignore_ascii_case("US-ASCII")
}

/// Runs store work on the blocking pool.
pub(super) async fn blocking<T: Send + 'static>(work: impl FnOnce() -> std::io::Result<T> + Send + 'static) -> std::io::Result<T> {
    tokio::task::spawn_blocking(work).await.map_err(std::io::Error::other)?
}

/// The tagged reply for a store error.
pub(super) fn store_error(e: &std::io::Error, what: &str) -> Outcome {
    match e.kind() {
        std::io::ErrorKind::NotFound => Outcome::no_code("NONEXISTENT", format!("{what}: no such mailbox")),
        std::io::ErrorKind::AlreadyExists => Outcome::no_code("ALREADYEXISTS", format!("{what}: {e}")),
        std::io::ErrorKind::InvalidInput => Outcome::no_code("CANNOT", format!("{what}: {e}")),
        _ => {
            tracing::warn!(error = %e, "{what} failed");
            Outcome::no_code("UNAVAILABLE", format!("{what} failed; try again later"))
        }
    }
}
