//! The spool's log: new messages are appended to one file, and one `fdatasync` makes a whole
//! batch of them durable — the group commit every `250` waits for.
//!
//! `DATA_DIR/queue/log/NNNNNNNNNNNN.log` are segments, numbered in order. Each holds a header
//! line and then records: a length and a CRC-32 (both u32, little-endian) and a body whose
//! first octet says what it is:
//!
//! - `1` an entry: the envelope's JSON length (u32), the envelope, the message;
//! - `2` an end: the queue id of an entry that left the log (delivered, bounced, removed by
//!   the operator, or moved to the classic `ID.msg`/`ID.env` files for its retries).
//!
//! Writers append under a lock (no fsync); a session then waits until a sync covers its
//! record. The first waiter that finds no sync running becomes the leader: it syncs what is
//! written so far, while later arrivals queue for the next one (as PostgreSQL's WAL or
//! InnoDB's redo log commit groups). Under load one fsync answers many sessions; alone, a
//! session pays one, as before, but with no file to create, rename or unlink per message:
//! those directory updates, not the fsyncs, were what the kernel spent its time on (ext4's
//! inode allocation under the spool folder's lock).
//!
//! A finished entry's end is not written at once: its mailbox copies were stored without an
//! fsync of their own, so ends are written in batches after one
//! [`MailStore::sync_deliveries`] made those copies durable. Until then a crash replays the
//! entry, and the delivery's check finds the copy already in `new/` or `cur/` (complete,
//! by its `S=` size) or stores it again. A segment is deleted once it and every older
//! segment hold no live entry, so an end record never outlives the entry it ends.
//!
//! After a failed fsync the log takes no more writes (the kernel may have dropped the
//! pages; PostgreSQL stops for the same reason): sessions get `451` until a restart.
//!
//! [`MailStore::sync_deliveries`]: crate::store::MailStore::sync_deliveries

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::{self, File};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::time::Duration;

use super::spool::Envelope;

/// The first line of every segment.
const HEADER: &[u8] = b"wasmail spool log 1\n";
/// A segment is closed and a new one begun once it holds this much.
const ROTATE_AT: u64 = 8 * 1024 * 1024;
const ENTRY: u8 = 1;
const END: u8 = 2;
/// Length and CRC-32 before each record's body.
const RECORD_HEAD: u64 = 8;

/// Makes the copies stored by deliveries without their own fsync durable.
pub type SyncDeliveries = Box<dyn Fn() -> io::Result<()> + Send + Sync>;

pub struct Journal {
    dir: PathBuf,
    state: Mutex<State>,
    /// Wakes sessions waiting for a sync.
    synced: Condvar,
    /// Finished entries whose ends wait for the next [`SyncDeliveries`].
    ending: Mutex<Vec<String>>,
    ended: Condvar,
    sync_deliveries: SyncDeliveries,
}

struct State {
    current: Arc<File>,
    number: u64,
    /// Octets in the current segment.
    length: u64,
    /// Octets appended since the log was opened, in all segments, and how many of them a
    /// sync covers.
    written: u64,
    synced: u64,
    syncing: bool,
    /// Set when an fsync failed: nothing more is taken.
    broken: Option<String>,
    /// Where each live entry's message is.
    index: HashMap<String, Place>,
    /// Live entries per segment, every segment on disk listed (oldest first).
    live: BTreeMap<u64, usize>,
    /// Damaged segments: never deleted, nor any newer one (their ends may end entries the
    /// damaged one holds past what could be read).
    damaged: Vec<u64>,
}

#[derive(Clone, Copy)]
struct Place {
    segment: u64,
    offset: u64,
    length: u64,
}

/// Live entries and where their messages are.
type Live = Vec<(Envelope, Place)>;

/// What one segment holds, as read back.
struct Replayed {
    entries: Vec<(Envelope, Place)>,
    ends: Vec<String>,
    /// How far the records could be read (0: not a segment), and the file's length. What
    /// lies between is a tail a crash cut in the newest segment, or damage anywhere else.
    read_to: u64,
    length: u64,
}

impl Journal {
    /// Opens the log under `queue_dir` (the spool's lock held): replays the segments and
    /// starts a new one. Returns the live entries, oldest first, except those with classic
    /// files (`moved`), whose log copies are superseded.
    pub fn open(queue_dir: &Path, moved: &HashSet<String>, sync_deliveries: SyncDeliveries) -> io::Result<(Arc<Journal>, Vec<Envelope>)> {
        let dir = queue_dir.join("log");
        fs::create_dir_all(&dir)?;
        set_tail_aside(&dir)?;
        let Replay { segments, live: live_entries, damaged } = replay(&dir, moved)?;
        let mut live: BTreeMap<u64, usize> = segments.iter().map(|&n| (n, 0)).collect();
        let mut index = HashMap::new();
        let mut envelopes = Vec::new();
        for (envelope, place) in live_entries {
            *live.entry(place.segment).or_default() += 1;
            index.insert(envelope.id.clone(), place);
            envelopes.push(envelope);
        }
        let number = segments.last().map_or(1, |n| n + 1);
        let current = create_segment(&dir, number)?;
        live.insert(number, 0);
        let state = State {
            current: Arc::new(current),
            number,
            length: HEADER.len() as u64,
            written: 0,
            synced: 0,
            syncing: false,
            broken: None,
            index,
            live,
            damaged,
        };
        let journal = Arc::new(Journal {
            dir,
            state: Mutex::new(state),
            synced: Condvar::new(),
            ending: Mutex::default(),
            ended: Condvar::new(),
            sync_deliveries,
        });
        let weak = Arc::downgrade(&journal);
        std::thread::Builder::new().name("spool-ends".into()).spawn(move || write_ends(weak))?;
        // Segments replayed with nothing live go now: every end in them was written after
        // the sync that made its entry's copies durable.
        journal.retire(&mut journal.state.lock().expect("spool log"));
        Ok((journal, envelopes))
    }

    /// Appends an entry and returns once a sync covers it.
    pub fn append(&self, envelope: &Envelope, pieces: &[&[u8]]) -> io::Result<()> {
        let json = serde_json::to_vec(envelope).map_err(io::Error::other)?;
        let message: u64 = pieces.iter().map(|p| p.len() as u64).sum();
        let body = 1 + 4 + json.len() as u64 + message;
        let body32 = u32::try_from(body).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "message too large for the spool log"))?;
        let mut crc = crc32fast::Hasher::new();
        let mut head = Vec::with_capacity(RECORD_HEAD as usize + 5 + json.len());
        head.extend_from_slice(&[0; 8]);
        head.push(ENTRY);
        head.extend_from_slice(&(json.len() as u32).to_le_bytes());
        head.extend_from_slice(&json);
        crc.update(&head[8..]);
        pieces.iter().for_each(|p| crc.update(p));
        head[..4].copy_from_slice(&body32.to_le_bytes());
        head[4..8].copy_from_slice(&crc.finalize().to_le_bytes());
        let target = {
            let mut state = self.state.lock().expect("spool log");
            if let Some(error) = &state.broken {
                return Err(io::Error::other(error.clone()));
            }
            if state.index.contains_key(&envelope.id) {
                return Err(io::Error::new(io::ErrorKind::AlreadyExists, format!("queue id {} is in use", envelope.id)));
            }
            // A segment whose name is gone (the folder removed under the server) would keep
            // nothing across a restart: a new one is begun, or the message refused.
            if std::os::unix::fs::MetadataExt::nlink(&state.current.metadata()?) == 0 {
                state.length = ROTATE_AT;
            }
            self.rotate_if_full(&mut state)?;
            let start = state.length;
            let written = (|| {
                state.current.write_all_at(&head, start)?;
                let mut at = start + head.len() as u64;
                for piece in pieces {
                    state.current.write_all_at(piece, at)?;
                    at += piece.len() as u64;
                }
                Ok::<(), io::Error>(())
            })();
            if let Err(e) = written {
                // Nothing may follow a torn record (replay stops there): cut it off, or
                // begin a new segment if even that fails.
                if state.current.set_len(start).is_err() {
                    state.length = ROTATE_AT;
                }
                return Err(e);
            }
            let total = RECORD_HEAD + body;
            let place = Place { segment: state.number, offset: start + head.len() as u64, length: message };
            state.length += total;
            state.written += total;
            state.index.insert(envelope.id.clone(), place);
            *state.live.entry(place.segment).or_default() += 1;
            state.written
        };
        if let Err(e) = self.wait_synced(target) {
            // Never acknowledged: the entry leaves the index (a replay after a restart may
            // still find it, and then delivers it — a duplicate, never a loss).
            let mut state = self.state.lock().expect("spool log");
            if let Some(place) = state.index.remove(&envelope.id) {
                *state.live.entry(place.segment).or_default() -= 1;
            }
            return Err(e);
        }
        Ok(())
    }

    /// Waits until a sync covers the log up to `target`, leading one if none runs.
    fn wait_synced(&self, target: u64) -> io::Result<()> {
        let mut state = self.state.lock().expect("spool log");
        loop {
            if state.synced >= target {
                return Ok(());
            }
            if let Some(error) = &state.broken {
                return Err(io::Error::other(error.clone()));
            }
            if state.syncing {
                state = self.synced.wait(state).expect("spool log");
                continue;
            }
            state.syncing = true;
            let (file, upto) = (Arc::clone(&state.current), state.written);
            drop(state);
            let result = file.sync_data();
            failpoint("spool-synced");
            state = self.state.lock().expect("spool log");
            state.syncing = false;
            match result {
                Ok(()) => state.synced = state.synced.max(upto),
                Err(e) => {
                    tracing::error!(error = %e, "fsync of the spool log failed; no more mail is taken until a restart");
                    state.broken = Some(format!("the spool log could not be synced ({e}); restart the server"));
                }
            }
            self.synced.notify_all();
        }
    }

    /// Begins a new segment when the current one is full (with the lock held). The full one
    /// is synced first, so everything written before the switch is durable.
    fn rotate_if_full(&self, state: &mut State) -> io::Result<()> {
        if state.length < ROTATE_AT {
            return Ok(());
        }
        if let Err(e) = state.current.sync_data() {
            state.broken = Some(format!("the spool log could not be synced ({e}); restart the server"));
            return Err(e);
        }
        state.synced = state.written;
        let number = state.number + 1;
        state.current = Arc::new(create_segment(&self.dir, number)?);
        state.number = number;
        state.length = HEADER.len() as u64;
        state.live.insert(number, 0);
        self.synced.notify_all();
        Ok(())
    }

    /// Whether an entry lives in the log.
    pub fn contains(&self, id: &str) -> bool {
        self.state.lock().expect("spool log").index.contains_key(id)
    }

    /// A live entry's message; None if the entry is not in the log.
    pub fn message(&self, id: &str) -> io::Result<Option<Vec<u8>>> {
        let Some(place) = self.state.lock().expect("spool log").index.get(id).copied() else { return Ok(None) };
        let file = File::open(segment_path(&self.dir, place.segment))?;
        let mut content = vec![0; place.length as usize];
        file.read_exact_at(&mut content, place.offset)?;
        Ok(Some(content))
    }

    /// An entry is finished: its end is written after the next sync of the deliveries.
    pub fn finished(&self, id: &str) {
        self.ending.lock().expect("ending").push(id.to_string());
        self.ended.notify_one();
    }

    /// Ends an entry now, durably (the operator removed it, or it moved to classic files
    /// that are durable already). Returns whether it was in the log.
    pub fn end_now(&self, id: &str) -> io::Result<bool> {
        let target = {
            let mut state = self.state.lock().expect("spool log");
            if !state.index.contains_key(id) {
                return Ok(false);
            }
            self.append_end(&mut state, id)?;
            state.written
        };
        self.wait_synced(target)?;
        Ok(true)
    }

    /// Appends an end record and forgets the entry (with the lock held).
    fn append_end(&self, state: &mut State, id: &str) -> io::Result<()> {
        if let Some(error) = &state.broken {
            return Err(io::Error::other(error.clone()));
        }
        self.rotate_if_full(state)?;
        let record = end_record(id);
        let start = state.length;
        if let Err(e) = state.current.write_all_at(&record, start) {
            if state.current.set_len(start).is_err() {
                state.length = ROTATE_AT;
            }
            return Err(e);
        }
        state.length += record.len() as u64;
        state.written += record.len() as u64;
        if let Some(place) = state.index.remove(id) {
            *state.live.entry(place.segment).or_default() -= 1;
        }
        Ok(())
    }

    /// Deletes the oldest segments while they hold no live entry (with the lock held).
    fn retire(&self, state: &mut State) {
        while let Some((&number, &count)) = state.live.first_key_value() {
            if count > 0 || number == state.number || state.damaged.contains(&number) {
                break;
            }
            match fs::remove_file(segment_path(&self.dir, number)) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => {
                    tracing::warn!(segment = number, error = %e, "cannot delete a spool log segment; tried again later");
                    break;
                }
            }
            state.live.remove(&number);
        }
    }

    /// One batch of ends: the deliveries are synced, then the ends written, then old
    /// segments deleted. False if the sync failed (the batch is kept for the next try).
    fn end_batch(&self, ids: &[String]) -> bool {
        if let Err(e) = (self.sync_deliveries)() {
            tracing::error!(error = %e, "cannot sync the mailboxes; finished queue entries stay in the spool log");
            return false;
        }
        let mut state = self.state.lock().expect("spool log");
        for id in ids {
            if let Err(e) = self.append_end(&mut state, id) {
                tracing::error!(queue_id = id, error = %e, "cannot end a spool log entry; it is delivered again (and found) after a restart");
                if let Some(place) = state.index.remove(id) {
                    *state.live.entry(place.segment).or_default() -= 1;
                }
            }
        }
        // An end reaching the disk later than the entry's segment's deletion is harmless.
        self.retire(&mut state);
        true
    }
}

/// The thread that writes ends in batches; it stops with the log.
fn write_ends(journal: Weak<Journal>) {
    loop {
        let Some(journal) = journal.upgrade() else { return };
        let batch = {
            let mut ending = journal.ending.lock().expect("ending");
            if ending.is_empty() {
                ending = journal.ended.wait_timeout(ending, Duration::from_secs(1)).expect("ending").0;
            }
            std::mem::take(&mut *ending)
        };
        if batch.is_empty() {
            continue;
        }
        if !journal.end_batch(&batch) {
            journal.ending.lock().expect("ending").extend(batch);
            drop(journal);
            std::thread::sleep(Duration::from_secs(1));
        }
    }
}

fn segment_path(dir: &Path, number: u64) -> PathBuf {
    dir.join(format!("{number:012}.log"))
}

/// A new segment, durably (its header, and its name in the folder).
fn create_segment(dir: &Path, number: u64) -> io::Result<File> {
    fs::create_dir_all(dir)?;
    let file = File::options().read(true).write(true).create_new(true).open(segment_path(dir, number))?;
    file.write_all_at(HEADER, 0)?;
    file.sync_all()?;
    File::open(dir)?.sync_all()?;
    Ok(file)
}

fn end_record(id: &str) -> Vec<u8> {
    let mut record = vec![0; 8];
    record.push(END);
    record.extend_from_slice(id.as_bytes());
    let body = (record.len() - 8) as u32;
    let crc = crc32fast::hash(&record[8..]);
    record[..4].copy_from_slice(&body.to_le_bytes());
    record[4..8].copy_from_slice(&crc.to_le_bytes());
    record
}

/// What the segments hold together.
struct Replay {
    /// Their numbers, in order.
    segments: Vec<u64>,
    /// The entries still live after replaying them all (oldest first; those in `moved`
    /// left out).
    live: Live,
    /// Damaged segments: never deleted (see [`replay`]).
    damaged: Vec<u64>,
}

fn replay(dir: &Path, moved: &HashSet<String>) -> io::Result<Replay> {
    let segments = segments(dir)?;
    let newest = segments.last().copied();
    let mut live: Live = Vec::new();
    let mut damaged = Vec::new();
    for &number in &segments {
        let replayed = read_segment(dir, number)?;
        // Only the newest segment can end in a record a crash cut (every older one was
        // complete when the next began, and the server sets the newest one's tail aside
        // before it begins another): anything unread in an older one is damage.
        if replayed.read_to < replayed.length && Some(number) != newest {
            // Acknowledged mail may sit past the damage: the file is left for an operator
            // and never deleted, whatever of it could be read.
            tracing::error!(segment = number, "a damaged spool log segment; what could be read is delivered, the file is kept");
            damaged.push(number);
        }
        live.extend(replayed.entries);
        let ended: HashSet<String> = replayed.ends.into_iter().collect();
        live.retain(|(envelope, _)| !ended.contains(&envelope.id));
    }
    live.retain(|(envelope, _)| !moved.contains(&envelope.id));
    Ok(Replay { segments, live, damaged })
}

/// The newest segment's unreadable tail — records a crash cut before their sync, so never
/// acknowledged (or, rarely, damage to records that were) — is moved to `NNNNNNNNNNNN.tail`
/// beside it (kept for an operator, never read), and the segment cut to its last whole
/// record. After this, a later segment is begun, and an older segment with anything
/// unreadable in it is damaged, whatever its
/// last record's length says (a damaged length field looks like a cut record).
fn set_tail_aside(dir: &Path) -> io::Result<()> {
    let Some(&number) = segments(dir)?.last() else { return Ok(()) };
    let replayed = read_segment(dir, number)?;
    if replayed.read_to == 0 || replayed.read_to >= replayed.length {
        return Ok(());
    }
    let path = segment_path(dir, number);
    let file = File::options().read(true).write(true).open(&path)?;
    let mut tail = vec![0; (replayed.length - replayed.read_to) as usize];
    file.read_exact_at(&mut tail, replayed.read_to)?;
    let aside = dir.join(format!("{number:012}.tail"));
    fs::write(&aside, &tail)?;
    File::open(&aside)?.sync_all()?;
    File::open(dir)?.sync_all()?;
    file.set_len(replayed.read_to)?;
    file.sync_all()?;
    tracing::warn!(
        segment = %path.display(),
        octets = tail.len(),
        kept = %aside.display(),
        "the newest spool log segment ends in an unreadable record (cut by a crash before its sync, so never acknowledged, or damaged); set aside"
    );
    Ok(())
}

fn segments(dir: &Path) -> io::Result<Vec<u64>> {
    let mut numbers = Vec::new();
    match fs::read_dir(dir) {
        Ok(entries) => {
            for entry in entries {
                let name = entry?.file_name().to_string_lossy().into_owned();
                if let Some(number) = name.strip_suffix(".log").and_then(|n| n.parse::<u64>().ok()) {
                    numbers.push(number);
                }
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    numbers.sort_unstable();
    Ok(numbers)
}

/// Reads one segment's records up to its end or its first torn or damaged record (the tail
/// a crash cut: never acknowledged, as the `250` waits for the sync).
fn read_segment(dir: &Path, number: u64) -> io::Result<Replayed> {
    let path = segment_path(dir, number);
    let data = fs::read(&path)?;
    let mut out = Replayed { entries: Vec::new(), ends: Vec::new(), read_to: 0, length: data.len() as u64 };
    if !data.starts_with(HEADER) {
        tracing::error!(segment = %path.display(), "not a spool log segment; kept for inspection, never deleted");
        return Ok(out);
    }
    let mut at = HEADER.len();
    while data.len() - at >= RECORD_HEAD as usize {
        let length = u32::from_le_bytes(data[at..at + 4].try_into().expect("4 octets")) as usize;
        let crc = u32::from_le_bytes(data[at + 4..at + 8].try_into().expect("4 octets"));
        let start = at + RECORD_HEAD as usize;
        let Some(body) = data.get(start..start + length) else { break };
        if length == 0 || crc32fast::hash(body) != crc {
            break;
        }
        match body[0] {
            ENTRY if body.len() >= 5 => {
                let json_length = u32::from_le_bytes(body[1..5].try_into().expect("4 octets")) as usize;
                let Some(json) = body.get(5..5 + json_length) else { break };
                match serde_json::from_slice::<Envelope>(json) {
                    Ok(envelope) => {
                        let offset = (start + 5 + json_length) as u64;
                        let place = Place { segment: number, offset, length: (length - 5 - json_length) as u64 };
                        out.entries.push((envelope, place));
                    }
                    Err(e) => tracing::error!(segment = %path.display(), error = %e, "an unreadable envelope in the spool log; skipped"),
                }
            }
            END => out.ends.push(String::from_utf8_lossy(&body[1..]).into_owned()),
            _ => break,
        }
        at = start + length;
    }
    out.read_to = at as u64;
    Ok(out)
}

/// The live entries of the log as it is on disk, read only (for `wasmail queue list` while
/// a server may be writing: a record being written is not read).
/// Each with its message's size.
pub fn read_live(queue_dir: &Path) -> io::Result<Vec<(Envelope, u64)>> {
    let replay = replay(&queue_dir.join("log"), &HashSet::new())?;
    Ok(replay.live.into_iter().map(|(envelope, place)| (envelope, place.length)).collect())
}

/// Ends an entry with no server running (the spool's lock held): the end goes into a new
/// segment of its own. Returns whether the entry was live in the log.
pub fn end_offline(queue_dir: &Path, id: &str) -> io::Result<bool> {
    let dir = queue_dir.join("log");
    set_tail_aside(&dir)?;
    let Replay { segments, live, .. } = replay(&dir, &HashSet::new())?;
    if !live.iter().any(|(envelope, _)| envelope.id == id) {
        return Ok(false);
    }
    let number = segments.last().map_or(1, |n| n + 1);
    let file = create_segment(&dir, number)?;
    file.write_all_at(&end_record(id), HEADER.len() as u64)?;
    file.sync_all()?;
    Ok(true)
}

/// Fault injection for the durability tests: `WASMAIL_FAILPOINT=NAME` makes the process
/// abort (as kill -9 would stop it) when it reaches the point of that name. Read once.
pub fn failpoint(name: &str) {
    static POINT: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    if POINT.get_or_init(|| std::env::var("WASMAIL_FAILPOINT").ok()).as_deref() == Some(name) {
        std::process::abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::spool::tests::envelope;

    fn no_sync() -> SyncDeliveries {
        Box::new(|| Ok(()))
    }

    #[test]
    fn entries_replay_until_ended_and_a_torn_tail_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let (log, replayed) = Journal::open(dir.path(), &HashSet::new(), no_sync()).unwrap();
        assert!(replayed.is_empty());
        log.append(&envelope("Q1"), &[b"Subject: one\r\n", b"\r\nbody\r\n"]).unwrap();
        log.append(&envelope("Q2"), &[b"two"]).unwrap();
        log.append(&envelope("Q3"), &[b"three"]).unwrap();
        assert!(log.append(&envelope("Q3"), &[b"again"]).is_err(), "an id is used once");
        assert_eq!(log.message("Q1").unwrap().unwrap(), b"Subject: one\r\n\r\nbody\r\n");
        assert!(log.end_now("Q2").unwrap());
        assert!(!log.end_now("Q2").unwrap());
        let live = read_live(dir.path()).unwrap();
        assert_eq!(live.iter().map(|(e, size)| (e.id.as_str(), *size)).collect::<Vec<_>>(), [("Q1", 22), ("Q3", 5)]);
        drop(log);
        // A record cut short by a crash: never acknowledged, and never in the way.
        let current = segments(&dir.path().join("log")).unwrap().last().copied().unwrap();
        let path = segment_path(&dir.path().join("log"), current);
        let mut torn = fs::read(&path).unwrap();
        torn.extend_from_slice(&[200, 0, 0, 0, 1, 2, 3, 4, ENTRY, 9]);
        fs::write(&path, torn).unwrap();
        let moved: HashSet<String> = ["Q3".to_string()].into();
        let whole_length = fs::metadata(&path).unwrap().len() - 10;
        let (log, replayed) = Journal::open(dir.path(), &moved, no_sync()).unwrap();
        assert_eq!(replayed.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(), ["Q1"], "Q3 has classic files");
        // The cut record is set aside for an operator, and the segment ends where it began.
        let aside = dir.path().join("log").join(format!("{current:012}.tail"));
        assert_eq!(fs::read(&aside).unwrap(), [200, 0, 0, 0, 1, 2, 3, 4, ENTRY, 9]);
        if path.exists() {
            assert_eq!(fs::metadata(&path).unwrap().len(), whole_length);
        }
        assert_eq!(log.message("Q1").unwrap().unwrap(), b"Subject: one\r\n\r\nbody\r\n");
        // Ended by a batch: after the deliveries' sync, and then its segments go.
        log.finished("Q1");
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while log.contains("Q1") || segments(&dir.path().join("log")).unwrap().len() > 1 {
            assert!(std::time::Instant::now() < deadline, "ends not written");
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(read_live(dir.path()).unwrap().is_empty());
    }

    #[test]
    fn sessions_at_once_share_fsyncs_and_all_come_back() {
        let dir = tempfile::tempdir().unwrap();
        let (log, _) = Journal::open(dir.path(), &HashSet::new(), no_sync()).unwrap();
        let threads: Vec<_> = (0..16)
            .map(|t| {
                let log = Arc::clone(&log);
                std::thread::spawn(move || {
                    for i in 0..50 {
                        log.append(&envelope(&format!("T{t}N{i}")), &[format!("message {t} {i}").as_bytes()]).unwrap();
                    }
                })
            })
            .collect();
        threads.into_iter().for_each(|t| t.join().unwrap());
        drop(log);
        let (log, replayed) = Journal::open(dir.path(), &HashSet::new(), no_sync()).unwrap();
        assert_eq!(replayed.len(), 800);
        assert_eq!(log.message("T7N49").unwrap().unwrap(), b"message 7 49");
    }

    /// Q1 and Q2 in segment 1, which a second opening made older than the newest; its path.
    fn two_entries_in_an_older_segment(dir: &Path) -> PathBuf {
        let (log, _) = Journal::open(dir, &HashSet::new(), no_sync()).unwrap();
        log.append(&envelope("Q1"), &[b"one"]).unwrap();
        log.append(&envelope("Q2"), &[b"two"]).unwrap();
        drop(log);
        drop(Journal::open(dir, &HashSet::new(), no_sync()).unwrap());
        segment_path(&dir.join("log"), 1)
    }

    /// Ends the entries and waits until the ends are written.
    fn finish(log: &Journal, ids: &[&str]) {
        ids.iter().for_each(|id| log.finished(id));
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while ids.iter().any(|id| log.contains(id)) {
            assert!(std::time::Instant::now() < deadline, "ends not written");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    #[test]
    fn a_damaged_segment_is_read_as_far_as_it_goes_and_never_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let first = two_entries_in_an_older_segment(dir.path());
        // A flipped octet in Q1's record, with Q2's whole record after it.
        let mut data = fs::read(&first).unwrap();
        data[HEADER.len() + 20] ^= 0xff;
        fs::write(&first, data).unwrap();
        let (log, replayed) = Journal::open(dir.path(), &HashSet::new(), no_sync()).unwrap();
        assert!(replayed.is_empty(), "nothing readable past the damage");
        log.append(&envelope("Q3"), &[b"three"]).unwrap();
        finish(&log, &["Q3"]);
        assert!(first.exists(), "the damaged segment is kept");
    }

    #[test]
    fn an_older_segment_whose_last_length_is_damaged_is_kept_not_taken_for_a_cut_tail() {
        let dir = tempfile::tempdir().unwrap();
        let first = two_entries_in_an_older_segment(dir.path());
        // Q2's length field says more than the file holds: what a cut record looks like,
        // but segment 1 is not the newest, so it is damage (Q2 was acknowledged).
        let mut data = fs::read(&first).unwrap();
        let q1 = RECORD_HEAD as usize + u32::from_le_bytes(data[HEADER.len()..HEADER.len() + 4].try_into().unwrap()) as usize;
        data[HEADER.len() + q1 + 3] = 0x7f;
        fs::write(&first, &data).unwrap();
        let (log, replayed) = Journal::open(dir.path(), &HashSet::new(), no_sync()).unwrap();
        assert_eq!(replayed.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(), ["Q1"]);
        log.append(&envelope("Q3"), &[b"three"]).unwrap();
        finish(&log, &["Q1", "Q3"]);
        drop(log);
        assert_eq!(fs::read(&first).unwrap(), data, "the damaged segment is kept as it was");
        assert!(!dir.path().join("log").join(format!("{:012}.tail", 1)).exists(), "an older segment's tail is not cut");
    }

    #[test]
    fn an_entry_ended_offline_stays_ended() {
        let dir = tempfile::tempdir().unwrap();
        let (log, _) = Journal::open(dir.path(), &HashSet::new(), no_sync()).unwrap();
        log.append(&envelope("Q1"), &[b"one"]).unwrap();
        log.append(&envelope("Q2"), &[b"two"]).unwrap();
        drop(log);
        assert!(end_offline(dir.path(), "Q1").unwrap());
        assert!(!end_offline(dir.path(), "Q9").unwrap());
        let (_, replayed) = Journal::open(dir.path(), &HashSet::new(), no_sync()).unwrap();
        assert_eq!(replayed.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(), ["Q2"]);
    }
}
