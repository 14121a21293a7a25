//! The spool on disk. A message the server takes goes into the spool's log
//! ([`super::journal`]: `DATA_DIR/queue/log/`, envelope and message in one record, one
//! fsync for a whole batch of sessions) before its `250`; most entries are delivered from
//! there and never leave it otherwise. An entry that must wait for a retry moves to classic
//! files: `DATA_DIR/queue/ID.msg` holds the message as it will be delivered (trace fields
//! and content, CRLF), `ID.env` its envelope as JSON. A classic entry exists once its `.env`
//! does: the message is written and fsync'd first, then the envelope is written to a
//! temporary name, fsync'd and renamed into place, and the folder fsync'd. Updates replace
//! the envelope the same way. An entry is removed envelope first, so a crash never leaves an
//! envelope without its message; classic files win over a log record of the same id.
//!
//! Who may change the folder: only the running server, which holds `queue/lock` (an
//! exclusive `flock`) for its whole life, or — when no server runs — an admin command that
//! takes the same lock. Reading ([`Spool::scan`]) changes nothing, so `wasmail queue list` and
//! ETRN can run at any time. The leftovers of writes a crash interrupted are removed once, at
//! start, by the lock's holder ([`Spool::clean_leftovers`]), before any session can write: a
//! `.msg` without its `.env` seen while sessions run is a message being written, not debris.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use serde::{Deserialize, Serialize};
use wasmail_proto::reply::EnhancedCode;

use super::journal::{self, Journal, SyncDeliveries};

/// What becomes of one recipient.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// Not (completely) delivered yet.
    Pending,
    Delivered,
    /// Failed for good; the sender is told (unless the reverse path is `<>`).
    Failed,
}

impl State {
    /// The word for logs, `queue list`, metrics and the delivery-result hook.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Pending => "pending",
            State::Delivered => "delivered",
            State::Failed => "failed",
        }
    }

    /// What an attempt did to a recipient, for metrics and the delivery-result hook: a
    /// recipient still pending after it was deferred.
    pub fn outcome(self) -> &'static str {
        match self {
            State::Pending => "deferred",
            other => other.as_str(),
        }
    }
}

/// What a delivery status notice reports (its wording is in `dsn.rs`); kept in the
/// envelope while a notice is owed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Failed,
    Delayed,
    Delivered,
    /// Handed to a next hop without DSN, which will not report (RFC 3464 2.3.3).
    Relayed,
}

/// A recipient as the client gave it, with its DSN parameters and where it goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recipient {
    /// `local@domain`, as in RCPT.
    pub address: String,
    /// ORCPT (RFC 3461 4.2) as `addr-type;address`, if given.
    pub orcpt: Option<String>,
    /// NOTIFY (RFC 3461 4.1): `NEVER`, or some of `SUCCESS`, `FAILURE`, `DELAY`; None when
    /// the client gave none (the default is FAILURE and DELAY).
    pub notify: Option<Vec<String>>,
    /// Indexes into [`Envelope::mailboxes`]: the local mailboxes it leads to.
    pub mailboxes: Vec<usize>,
    /// Not local: relayed to the next hop for its domain.
    #[serde(default)]
    pub remote: bool,
    pub state: State,
    /// The last error or the final status text, for `queue list` and the DSN.
    pub detail: Option<String>,
    /// The RFC 3463 status of the outcome (`5.1.1`), for the DSN.
    #[serde(default, with = "status_text")]
    pub status: Option<EnhancedCode>,
    /// The remote server's reply (`smtp; 550 5.1.1 ...`), for the DSN's Diagnostic-Code.
    #[serde(default)]
    pub diagnostic: Option<String>,
    /// The delivery hooks have decided its route (or there are none).
    #[serde(default)]
    pub routed: bool,
    /// A next hop a delivery hook chose (`host:port`), overriding the domain's.
    #[serde(default)]
    pub route: Option<String>,
    /// A delivery hook discarded it: no copy, no notice.
    #[serde(default)]
    pub discarded: bool,
    /// A delivery hook forwarded the message to it (a redirect or a copy) in another
    /// domain: relayed with the envelope sender rewritten by SRS.
    #[serde(default)]
    pub forwarded: bool,
    /// Relayed to a peer without DSN: a success notice says "relayed" (RFC 3461 5.2.2). When
    /// the peer has DSN, it sends the notices from there on, and this one sends none.
    #[serde(default)]
    pub relayed: Option<RelayedTo>,
    /// A notice about this recipient is owed to the sender and not queued yet. The entry
    /// stays in the spool until it is (a failed bounce is retried, never dropped).
    #[serde(default)]
    pub notice_due: Option<Action>,
}

/// How a remote recipient left this server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RelayedTo {
    /// A peer with DSN, which took over the notices.
    Dsn,
    /// A peer without DSN.
    Plain,
}

impl Recipient {
    /// A pending recipient with no mailboxes, parameters or route yet.
    pub fn new(address: impl Into<String>) -> Recipient {
        Recipient {
            address: address.into(),
            orcpt: None,
            notify: None,
            mailboxes: Vec::new(),
            remote: false,
            state: State::Pending,
            detail: None,
            status: None,
            diagnostic: None,
            routed: false,
            route: None,
            discarded: false,
            forwarded: false,
            relayed: None,
            notice_due: None,
        }
    }
}

/// A local mailbox of this message. Several recipients (aliases) can lead to one mailbox; it
/// gets one copy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mailbox {
    pub user: String,
    /// A folder a delivery hook chose (`Lists/rust`); None is the inbox.
    #[serde(default)]
    pub folder: Option<String>,
    /// The `+tag` the recipient address carried, for the delivery hooks.
    #[serde(default)]
    pub tag: Option<String>,
    pub delivered: bool,
}

/// Everything about a queued message but its content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// The queue id (also the files' names).
    pub id: String,
    /// Arrival, in seconds since the epoch.
    pub arrived: u64,
    /// The reverse path, empty for `<>`.
    pub sender: String,
    /// ENVID (RFC 3461 4.4).
    pub envid: Option<String>,
    /// RET (RFC 3461 4.3): `FULL` or `HDRS`.
    pub ret: Option<String>,
    /// The client's address and HELO name, for logs and the DSN.
    pub client_ip: String,
    pub helo: String,
    pub recipients: Vec<Recipient>,
    pub mailboxes: Vec<Mailbox>,
    /// Delivery attempts made so far.
    pub attempts: u32,
    /// When the next attempt is due, in seconds since the epoch.
    pub next_attempt: u64,
    /// Set once the delay warning was sent.
    #[serde(default)]
    pub delay_warned: bool,
}

impl Envelope {
    /// Whether every recipient is final and every notice about them queued.
    pub fn done(&self) -> bool {
        self.recipients.iter().all(|r| r.state != State::Pending && r.notice_due.is_none())
    }
}

/// The spool folder.
#[derive(Clone)]
pub struct Spool {
    dir: PathBuf,
    /// The log, once the server started it ([`Spool::start_log`]); admin commands read it
    /// from the files instead.
    log: Arc<OnceLock<Arc<Journal>>>,
}

impl std::fmt::Debug for Spool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Spool").field("dir", &self.dir).finish()
    }
}

impl Spool {
    /// Opens (creating it if needed) `DATA_DIR/queue`.
    pub fn open(data_dir: &Path) -> io::Result<Spool> {
        let dir = data_dir.join("queue");
        fs::create_dir_all(&dir)?;
        Ok(Spool { dir, log: Arc::default() })
    }

    /// Starts the log (the lock held, after [`Spool::clean_leftovers`]): new entries go into
    /// it from now on. Returns the entries it still holds, for the queue to drive.
    pub fn start_log(&self, _lock: &SpoolLock, sync_deliveries: SyncDeliveries) -> io::Result<Vec<Envelope>> {
        let (classic, _, _) = self.names()?;
        let (log, live) = Journal::open(&self.dir, &classic, sync_deliveries)?;
        self.log.set(log).map_err(|_| io::Error::other("the spool log is started already"))?;
        Ok(live)
    }

    /// Whether an entry lives in the log (its deliveries may then skip their own fsyncs:
    /// the log keeps the message until [`Spool::finished`] ends it after a sync).
    pub fn in_log(&self, id: &str) -> bool {
        self.log.get().is_some_and(|log| log.contains(id))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, id: &str, ext: &str) -> PathBuf {
        self.dir.join(format!("{id}.{ext}"))
    }

    /// Writes a new entry durably: into the log when it is started, else as classic files.
    pub fn enqueue(&self, envelope: &Envelope, pieces: &[&[u8]]) -> io::Result<()> {
        check_id(&envelope.id)?;
        match self.log.get() {
            Some(log) => log.append(envelope, pieces),
            None => self.enqueue_files(envelope, pieces),
        }
    }

    /// Writes an entry as classic files: message, then envelope, then the folder.
    fn enqueue_files(&self, envelope: &Envelope, pieces: &[&[u8]]) -> io::Result<()> {
        let msg = self.path(&envelope.id, "msg");
        // create_new: an id is used once; a clash leaves the other entry's file alone.
        let mut file = File::options().write(true).create_new(true).open(&msg)?;
        let result = (|| {
            let mut writer = io::BufWriter::with_capacity(64 * 1024, &mut file);
            for piece in pieces {
                writer.write_all(piece)?;
            }
            writer.flush()?;
            drop(writer);
            file.sync_all()?;
            self.write_envelope_file(envelope)
        })();
        if result.is_err() {
            let _ = fs::remove_file(&msg);
        }
        result
    }

    /// Replaces an entry's envelope durably; an entry in the log moves to classic files.
    pub fn write_envelope(&self, envelope: &Envelope) -> io::Result<()> {
        check_id(&envelope.id)?;
        if let Some(log) = self.log.get() {
            if let Some(message) = log.message(&envelope.id)? {
                // A copy left by an earlier try that failed is not an entry: replaced.
                let _ = fs::remove_file(self.path(&envelope.id, "msg"));
                self.enqueue_files(envelope, &[&message])?;
                log.end_now(&envelope.id)?;
                return Ok(());
            }
        }
        self.write_envelope_file(envelope)
    }

    /// Writes an envelope's classic file durably (temporary name, fsync, rename, folder).
    fn write_envelope_file(&self, envelope: &Envelope) -> io::Result<()> {
        let tmp = self.path(&envelope.id, "env.tmp");
        let json = serde_json::to_vec_pretty(envelope).map_err(io::Error::other)?;
        let mut file = File::create(&tmp)?;
        file.write_all(&json)?;
        file.sync_all()?;
        fs::rename(&tmp, self.path(&envelope.id, "env"))?;
        File::open(&self.dir)?.sync_all()
    }

    /// The message of an entry.
    pub fn message(&self, id: &str) -> io::Result<Vec<u8>> {
        check_id(id)?;
        if let Some(message) = self.log.get().map(|log| log.message(id)).transpose()?.flatten() {
            return Ok(message);
        }
        fs::read(self.path(id, "msg"))
    }

    /// One entry's envelope.
    pub fn envelope(&self, id: &str) -> io::Result<Envelope> {
        check_id(id)?;
        let path = self.path(id, "env");
        let bytes = fs::read(&path)?;
        serde_json::from_slice(&bytes).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("{}: {e}", path.display())))
    }

    /// Takes the spool's lock: Some while nobody else holds it (keep the guard for as long as
    /// the folder is changed), None if a running server has it.
    pub fn lock(&self) -> io::Result<Option<SpoolLock>> {
        let file = File::options().create(true).truncate(false).write(true).open(self.dir.join("lock"))?;
        match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => Ok(Some(SpoolLock(file))),
            Err(rustix::io::Errno::WOULDBLOCK) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Removes what writes interrupted by a crash left: a `.msg` whose `.env` was never
    /// renamed into place (never acknowledged: the `250` comes after the rename) and
    /// `.env.tmp` files. Only at start, with the lock held and before any session runs.
    /// Returns how many files went.
    pub fn clean_leftovers(&self, _lock: &SpoolLock) -> io::Result<usize> {
        let (ids, messages, temporary) = self.names()?;
        let mut removed = 0;
        for orphan in messages.iter().filter(|m| !ids.contains(m.as_str())) {
            fs::remove_file(self.path(orphan, "msg"))?;
            tracing::info!(queue_id = orphan, "removed a message a crash left without its envelope (it was never acknowledged)");
            removed += 1;
        }
        for name in temporary {
            fs::remove_file(self.dir.join(&name))?;
            removed += 1;
        }
        if removed > 0 {
            File::open(&self.dir)?.sync_all()?;
        }
        Ok(removed)
    }

    /// The entries' ids (`.env`), the messages' ids (`.msg`) and the temporary envelopes.
    fn names(&self) -> io::Result<(std::collections::HashSet<String>, Vec<String>, Vec<String>)> {
        let mut ids = std::collections::HashSet::new();
        let (mut messages, mut temporary) = (Vec::new(), Vec::new());
        for entry in fs::read_dir(&self.dir)? {
            let name = entry?.file_name().to_string_lossy().into_owned();
            if let Some(id) = name.strip_suffix(".env") {
                ids.insert(id.to_string());
            } else if let Some(id) = name.strip_suffix(".msg") {
                messages.push(id.to_string());
            } else if name.ends_with(".env.tmp") {
                temporary.push(name);
            }
        }
        Ok((ids, messages, temporary))
    }

    /// Every entry, oldest first — classic ones and those in the log (as they were taken;
    /// their attempts are not written there); reads only. Unreadable envelopes are reported
    /// and left in place; files being written by a session are not entries yet and are
    /// ignored.
    pub fn scan(&self) -> io::Result<Vec<Envelope>> {
        Ok(self.scan_sized()?.into_iter().map(|(envelope, _)| envelope).collect())
    }

    /// [`Spool::scan`], each entry with its message's size.
    pub fn scan_sized(&self) -> io::Result<Vec<(Envelope, u64)>> {
        let mut out: Vec<(Envelope, u64)> = self
            .scan_files()?
            .into_iter()
            .map(|e| {
                let size = fs::metadata(self.path(&e.id, "msg")).map(|m| m.len()).unwrap_or(0);
                (e, size)
            })
            .collect();
        let classic: std::collections::HashSet<String> = out.iter().map(|(e, _)| e.id.clone()).collect();
        out.extend(journal::read_live(&self.dir)?.into_iter().filter(|(e, _)| !classic.contains(&e.id)));
        out.sort_by(|(a, _), (b, _)| (a.arrived, &a.id).cmp(&(b.arrived, &b.id)));
        Ok(out)
    }

    /// The classic entries, oldest first.
    pub fn scan_files(&self) -> io::Result<Vec<Envelope>> {
        let (ids, _, _) = self.names()?;
        let mut out = Vec::new();
        for id in ids {
            match self.envelope(&id) {
                Ok(envelope) => out.push(envelope),
                Err(e) => tracing::error!(queue_id = id, error = %e, "cannot read a queue entry; left in place"),
            }
        }
        out.sort_by(|a, b| (a.arrived, &a.id).cmp(&(b.arrived, &b.id)));
        Ok(out)
    }

    /// A delivered or bounced entry leaves the spool: from the log after the next sync of
    /// the mailboxes (its copies were stored without their own fsync), classic files now.
    pub fn finished(&self, id: &str) -> io::Result<()> {
        check_id(id)?;
        match self.log.get() {
            Some(log) if log.contains(id) => {
                log.finished(id);
                Ok(())
            }
            _ => self.remove(id).map(drop),
        }
    }

    /// Removes an entry now (the operator's removal), durably when it is in the log. Classic
    /// files go envelope first, so that no envelope is ever left without its message.
    /// Returns false if there was no such entry.
    pub fn remove(&self, id: &str) -> io::Result<bool> {
        check_id(id)?;
        match self.log.get() {
            Some(log) => {
                if log.end_now(id)? {
                    return Ok(true);
                }
            }
            // No server (the caller holds the lock): the log is ended from here.
            None => {
                if !self.path(id, "env").exists() && journal::end_offline(&self.dir, id)? {
                    return Ok(true);
                }
            }
        }
        let existed = match fs::remove_file(self.path(id, "env")) {
            Ok(()) => true,
            Err(e) if e.kind() == io::ErrorKind::NotFound => false,
            Err(e) => return Err(e),
        };
        match fs::remove_file(self.path(id, "msg")) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        Ok(existed)
    }
}

/// Holds the spool's `flock`; released when dropped (or when the process dies, kill -9
/// included).
#[derive(Debug)]
pub struct SpoolLock(#[allow(dead_code)] File);

/// Queue ids are letters and digits; anything else would build another path.
pub(super) fn check_id(id: &str) -> io::Result<()> {
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("bad queue id {id:?}")));
    }
    Ok(())
}

/// A recipient's status as it is written in the envelope: the RFC 3463 text (`"5.1.1"`), so
/// that the spool stays readable with `cat` and old entries read back.
mod status_text {
    use serde::{Deserialize, Deserializer, Serializer};

    use wasmail_proto::reply::EnhancedCode;

    pub fn serialize<S: Serializer>(status: &Option<EnhancedCode>, out: S) -> Result<S::Ok, S::Error> {
        match status {
            Some(code) => out.collect_str(code),
            None => out.serialize_none(),
        }
    }

    /// A text that is not a status is an error, like any other broken field: the entry is
    /// reported and kept, not guessed at.
    pub fn deserialize<'de, D: Deserializer<'de>>(input: D) -> Result<Option<EnhancedCode>, D::Error> {
        let text: Option<String> = Option::deserialize(input)?;
        text.map(|t| t.parse().map_err(|()| serde::de::Error::custom(format!("{t:?} is not an RFC 3463 status")))).transpose()
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// An entry for one local recipient, for the spool's tests and the log's.
    pub(in crate::queue) fn envelope(id: &str) -> Envelope {
        Envelope {
            id: id.into(),
            arrived: 1_800_000_000,
            sender: "daniel@client.example".into(),
            envid: Some("abc".into()),
            ret: Some("HDRS".into()),
            client_ip: "192.0.2.1".into(),
            helo: "client.example".into(),
            recipients: vec![Recipient {
                orcpt: Some("rfc822;tyler@localhost".into()),
                notify: Some(vec!["SUCCESS".into()]),
                mailboxes: vec![0],
                ..Recipient::new("tyler@localhost")
            }],
            mailboxes: vec![Mailbox { user: "tyler".into(), folder: None, tag: None, delivered: false }],
            attempts: 0,
            next_attempt: 0,
            delay_warned: false,
        }
    }

    #[test]
    fn statuses_are_written_as_rfc_3463_text() {
        let mut r = Recipient::new("a@b");
        r.status = Some(wasmail_proto::reply::codes::NULL_MX);
        let json = serde_json::to_string(&r).unwrap();
        assert!(json.contains(r#""status":"5.1.10""#), "{json}");
        assert_eq!(serde_json::from_str::<Recipient>(&json).unwrap(), r);
        let none = serde_json::to_string(&Recipient::new("a@b")).unwrap();
        assert_eq!(serde_json::from_str::<Recipient>(&none).unwrap().status, None);
        let broken = json.replace("5.1.10", "5.1.x");
        assert!(serde_json::from_str::<Recipient>(&broken).unwrap_err().to_string().contains("not an RFC 3463 status"));
    }

    #[test]
    fn entries_round_trip_and_leftovers_are_cleaned_only_by_the_lock_holder() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path()).unwrap();
        let mut e = envelope("Q1");
        spool.enqueue(&e, &[b"Received: x\r\n", b"Subject: hi\r\n\r\nbody\r\n"]).unwrap();
        assert_eq!(spool.message("Q1").unwrap(), b"Received: x\r\nSubject: hi\r\n\r\nbody\r\n");
        e.recipients[0].state = State::Delivered;
        spool.write_envelope(&e).unwrap();
        assert_eq!(spool.scan().unwrap(), [e.clone()]);
        assert!(spool.enqueue(&e, &[b"x"]).is_err(), "an id is used once");
        // A message whose envelope is not written yet (or never was), and a half-written
        // envelope: a scan leaves them alone, as a session may be writing them right now.
        fs::write(spool.dir().join("Q2.msg"), b"x").unwrap();
        fs::write(spool.dir().join("Q3.env.tmp"), b"{").unwrap();
        assert_eq!(spool.scan().unwrap().len(), 1);
        assert!(spool.dir().join("Q2.msg").exists() && spool.dir().join("Q3.env.tmp").exists());
        // The lock is exclusive; its holder cleans at start.
        let lock = spool.lock().unwrap().expect("nobody holds the lock");
        assert!(Spool::open(dir.path()).unwrap().lock().unwrap().is_none(), "a second holder is refused");
        assert_eq!(spool.clean_leftovers(&lock).unwrap(), 2);
        assert!(!spool.dir().join("Q2.msg").exists() && !spool.dir().join("Q3.env.tmp").exists());
        assert!(spool.dir().join("Q1.msg").exists());
        drop(lock);
        assert!(spool.lock().unwrap().is_some(), "released when dropped");
        assert!(spool.remove("Q1").unwrap());
        assert!(!spool.remove("Q1").unwrap());
        assert!(spool.scan().unwrap().is_empty());
        assert!(spool.message("../x").is_err());
    }
}
