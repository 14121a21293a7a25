//! One Maildir folder as IMAP needs it: UIDs, UIDVALIDITY, internal dates and mod-sequences in
//! a crash-safe index beside the Maildir ([`super::uidlist`]), flags in the file names as
//! every Maildir reader keeps them (`:2,FRS` plus keyword letters `a`–`z` named in
//! `dovecot-keywords`, as Dovecot does), and \Recent as Maildir defines it: a message still in
//! `new/` has not been seen by any client; the first session that selects the folder moves it
//! to `cur/`.
//!
//! Every listing squares the index with the files: files seen for the first time are numbered,
//! files whose flag letters another program changed get a new mod-sequence, and messages whose
//! files are gone are recorded as expunged — each durably, before anyone is told.

use std::collections::{HashMap, HashSet};
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use super::files::{base_name, crlf_size_in, crlf_size_of, sync_dir};
use super::uidlist::{Loaded, Uidlist};
use super::{FlagChange, Flags, FlagsChanged, MessageInfo, Synced};

const KEYWORDS: &str = "dovecot-keywords";
/// Maildir has 26 keyword letters.
const MAX_KEYWORDS: usize = 26;

/// The per-folder state the store keeps in memory.
#[derive(Default)]
pub(super) struct Folders {
    /// Open indexes by folder directory.
    pub(super) open: Mutex<HashMap<PathBuf, Arc<Mutex<Folder>>>>,
    /// Change counters by folder directory.
    pub(super) watchers: Mutex<HashMap<PathBuf, tokio::sync::watch::Sender<u64>>>,
    /// Event channels by user directory, for those users some session follows.
    pub(super) events: Mutex<HashMap<PathBuf, tokio::sync::broadcast::Sender<super::MailboxEvent>>>,
}

/// A folder's index in memory, under the store's per-folder lock.
pub(super) struct Folder {
    /// Messages from this UID on are \Recent for the next session that claims them (RFC 3501
    /// 2.3.2): those stored in `cur/` directly (APPEND, COPY, MOVE) since the last claim, as
    /// those still in `new/` are. Kept in memory: after a restart, only `new/` says it.
    recent_from: u32,
    /// The Maildir folder (with `new/`, `cur/`, `tmp/`).
    dir: PathBuf,
    /// UIDs, dates and mod-sequences, in step with `wasmail-uidlist`.
    index: Uidlist,
    /// Keyword names by letter (`a` is index 0).
    keywords: Vec<String>,
    /// The last listing and the directory times it was made at.
    cache: Option<Cache>,
}

struct Cache {
    new_mtime: SystemTime,
    cur_mtime: SystemTime,
    scanned_at: SystemTime,
    messages: Arc<Vec<MessageInfo>>,
    /// Whether some of `messages` were in `new/` (not yet claimed).
    holds_new: bool,
    /// Made by this folder's own changes, not by reading it: good until this instant (see
    /// [`Folder::after_own_renames`]).
    provisional: Option<Instant>,
}

/// How long a listing made by the folder's own changes (and those made from it) may stand in
/// for reading the folder while its directories keep the times those changes left.
const PROVISIONAL_FOR: Duration = Duration::from_secs(1);

impl Cache {
    /// The listing, if directories with these times hold what it was made from: a time is
    /// coarse, so it is trusted only once it is older than the scan by more than the file
    /// system's tick (a change in the same tick as the scan is not missed).
    fn valid_for(&self, new_mtime: SystemTime, cur_mtime: SystemTime) -> bool {
        if let Some(until) = self.provisional {
            return Instant::now() < until && self.new_mtime == new_mtime && self.cur_mtime == cur_mtime;
        }
        let latest = self.new_mtime.max(self.cur_mtime);
        let settled = latest + mtime_tick(self.new_mtime).max(mtime_tick(self.cur_mtime)) < self.scanned_at;
        settled && self.new_mtime == new_mtime && self.cur_mtime == cur_mtime
    }
}

/// A message file found by a scan.
struct Found {
    /// `new/NAME` or `cur/NAME`.
    location: String,
    /// Where the base name (the name before `:`) ends in `location`.
    base_end: usize,
    in_new: bool,
}

impl Found {
    fn base(&self) -> &str {
        &self.location[4..self.base_end]
    }

    /// The flag letters after `:2,`.
    fn info(&self) -> &str {
        info_of(&self.location[4..])
    }
}

impl Folder {
    /// Loads (or creates) the index of the Maildir folder `dir`, which must exist, in a
    /// Maildir of its own (its UIDVALIDITY counter beside it).
    #[cfg(test)]
    pub fn open(dir: &Path) -> io::Result<Folder> {
        Folder::open_in(dir, dir)
    }

    /// Loads (or creates) the index of the Maildir folder `dir`, which must exist, of the
    /// user's Maildir at `root`, which keeps the UIDVALIDITY counter of all its folders.
    pub fn open_in(dir: &Path, root: &Path) -> io::Result<Folder> {
        let (index, rewrite) = match Uidlist::load(dir)? {
            Loaded::Read { list, rewrite } => (list, rewrite),
            Loaded::Missing => (Uidlist::create(dir, next_validity(root, 0)?)?, false),
            Loaded::Damaged { uid_validity, written } => {
                // The old UIDVALIDITY was made no later than the file was last written: one
                // above that time (and above the header's, if it was readable) differs from it.
                tracing::warn!(folder = %dir.display(), "the UID index is damaged; starting a new UIDVALIDITY");
                (Uidlist::create(dir, next_validity(root, uid_validity.max(written))?)?, false)
            }
        };
        let mut folder = Folder { dir: dir.to_path_buf(), recent_from: 0, index, keywords: read_keywords(&dir.join(KEYWORDS)), cache: None };
        if rewrite {
            // A torn last line, or an index of version 1: list (which fills in what the
            // index lacks) and write it whole again.
            folder.list()?;
            folder.index.compact()?;
        }
        folder.recent_from = folder.index.next_uid;
        Ok(folder)
    }

    pub fn uid_validity(&self) -> u32 {
        self.index.uid_validity
    }

    /// The UIDs expunged after mod-sequence `since` (RFC 7162 QRESYNC), as ascending ranges;
    /// possibly with some expunged earlier, never one that exists.
    pub fn expunged_since(&self, since: u64) -> Vec<(u32, u32)> {
        self.index.expunged_since(since)
    }

    /// Lists the folder, numbering new messages; with `claim`, moves messages out of `new/`
    /// and takes those stored since the last claim: they become the caller's \Recent ones
    /// and no one else's.
    pub fn sync(&mut self, claim: bool) -> io::Result<Synced> {
        let mut claimed_bases = Vec::new();
        if claim {
            claimed_bases = self.claim_new()?;
        }
        let messages = self.list()?;
        let mut claimed = Vec::new();
        if claim {
            claimed = claimed_bases.iter().filter_map(|b| self.index.entries.get(b).map(|e| e.uid)).collect();
            // The listing is in UID order: the recent ones are its tail (a search, not a walk of
            // every message after every command).
            let recent = messages.partition_point(|m| m.uid < self.recent_from);
            claimed.extend(messages[recent..].iter().map(|m| m.uid));
            claimed.sort_unstable();
            claimed.dedup();
            if self.recent_from < self.index.next_uid {
                self.recent_from = self.index.next_uid;
                // The listing marks them as unseen by any session: not any more.
                self.cache = None;
            }
        }
        Ok(self.synced(messages, claimed))
    }

    fn synced(&self, messages: Arc<Vec<MessageInfo>>, claimed: Vec<u32>) -> Synced {
        Synced { uid_validity: self.index.uid_validity, uid_next: self.index.next_uid, highest_modseq: self.index.highest_modseq, messages, claimed }
    }

    /// The modification times of `new/` and `cur/`.
    fn mtimes(&self) -> io::Result<(SystemTime, SystemTime)> {
        Ok((fs::metadata(self.dir.join("new"))?.modified()?, fs::metadata(self.dir.join("cur"))?.modified()?))
    }

    /// What [`Folder::sync`] would return when that is known without reading a directory:
    /// its listing is valid for the directories' times, and (with `claim`) there is nothing
    /// to claim. Two `stat`s; None when `sync` must do the work.
    pub fn sync_unchanged(&self, claim: bool) -> io::Result<Option<Synced>> {
        let Some(cache) = &self.cache else { return Ok(None) };
        if claim && (cache.holds_new || self.recent_from < self.index.next_uid) {
            return Ok(None);
        }
        let (new_mtime, cur_mtime) = self.mtimes()?;
        if !cache.valid_for(new_mtime, cur_mtime) {
            return Ok(None);
        }
        Ok(Some(self.synced(Arc::clone(&cache.messages), Vec::new())))
    }

    /// Moves every message in `new/` to `cur/` (RFC 3501 \Recent: this session saw it first).
    /// Its flag letters stay as they were, and so does its mod-sequence.
    fn claim_new(&mut self) -> io::Result<Vec<String>> {
        let mut moved = Vec::new();
        let new = self.dir.join("new");
        for entry in read_dir_or_empty(&new)? {
            let name = entry?.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') {
                continue;
            }
            let base = base_name(&name).to_string();
            let target = self.dir.join("cur").join(format!("{base}:2,{}", info_of(&name)));
            match fs::rename(new.join(&name), target) {
                Ok(()) => moved.push(base),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {} // another reader took it
                Err(e) => return Err(e),
            }
        }
        if !moved.is_empty() {
            sync_dir(&self.dir.join("cur"))?;
            sync_dir(&new)?;
            self.cache = None;
        }
        Ok(moved)
    }

    /// The message files in `new/` and `cur/`.
    fn scan(&self) -> io::Result<Vec<Found>> {
        let mut found = Vec::new();
        for (sub, in_new) in [("new", true), ("cur", false)] {
            for entry in read_dir_or_empty(&self.dir.join(sub))? {
                let name = entry?.file_name();
                let name = name.to_string_lossy();
                if name.starts_with('.') {
                    continue;
                }
                let mut location = String::with_capacity(4 + name.len());
                location.push_str(sub);
                location.push('/');
                location.push_str(&name);
                found.push(Found { base_end: 4 + base_name(&name).len(), location, in_new });
            }
        }
        Ok(found)
    }

    /// The messages the index holds whose files a scan did not find.
    fn missing(&self, found: &[Found]) -> Vec<String> {
        let present: HashSet<&str, foldhash::fast::RandomState> = found.iter().map(Found::base).collect();
        self.index.entries.keys().filter(|base| !present.contains(base.as_str())).cloned().collect()
    }

    /// The messages now, from the cache when the directories did not change; the index
    /// squared with the files first.
    fn list(&mut self) -> io::Result<Arc<Vec<MessageInfo>>> {
        let (new_mtime, cur_mtime) = self.mtimes()?;
        if let Some(cache) = self.cache.as_ref().filter(|c| c.valid_for(new_mtime, cur_mtime)) {
            return Ok(Arc::clone(&cache.messages));
        }
        let scanned_at = SystemTime::now();
        let mut messages = self.listing(self.scan()?)?;
        if messages.len() < self.index.entries.len() {
            // Some of the index's messages were not found. A file another program renamed
            // while the directory was read can be missed by that read: look again before
            // calling anything expunged.
            let found = self.scan()?;
            let missing = self.missing(&found);
            if !missing.is_empty() {
                let bases: Vec<&str> = missing.iter().map(String::as_str).collect();
                self.index.expunge(&bases)?;
            }
            messages = self.listing(found)?;
        }
        self.index.compact_if_worth_it()?;
        let messages = Arc::new(messages);
        let holds_new = messages.iter().any(|m| m.location.starts_with("new/"));
        self.cache = Some(Cache { new_mtime, cur_mtime, scanned_at, messages: Arc::clone(&messages), holds_new, provisional: None });
        Ok(messages)
    }

    /// The messages of a scan, in UID order: those seen for the first time numbered, flag
    /// letters another program changed recorded under a new mod-sequence (each file looked
    /// up once in the index). Files whose entries the index does not hold are left out.
    fn listing(&mut self, found: Vec<Found>) -> io::Result<Vec<MessageInfo>> {
        // Messages seen for the first time are numbered in arrival (name) order.
        let mut unknown: Vec<&Found> = found.iter().filter(|f| !self.index.entries.contains_key(f.base())).collect();
        if !unknown.is_empty() {
            unknown.sort_by(|a, b| a.base().cmp(b.base()));
            unknown.dedup_by(|a, b| a.base() == b.base());
            let new = arrival_dates(&self.dir, &unknown)?;
            self.index.add(&new)?;
        }
        let mut messages = Vec::with_capacity(found.len());
        // Flags another program changed (places in `messages`), or that an index of
        // version 1 did not hold.
        let (mut changed, mut learned) = (Vec::new(), Vec::new());
        for f in found {
            let Some(entry) = self.index.entries.get(f.base()) else { continue };
            match entry.info.as_deref() {
                Some(info) if info != f.info() => changed.push(messages.len()),
                None => learned.push(messages.len()),
                _ => {}
            }
            let size = match crlf_size_in(f.base()) {
                Some(size) => size,
                None => crlf_size_of(&self.dir.join(&f.location))?,
            };
            messages.push(MessageInfo {
                uid: entry.uid,
                id: f.base().to_string(),
                flags: self.flags_from_info(f.info()),
                size,
                internal_date: entry.date,
                modseq: entry.modseq,
                unseen_by_any: f.in_new || entry.uid >= self.recent_from,
                location: f.location,
            });
        }
        for &at in &learned {
            let message = &messages[at];
            self.index.learn_flags(&message.id, info_of(&message.location));
        }
        if !changed.is_empty() {
            let letters: Vec<(String, String)> =
                changed.iter().map(|&at| (messages[at].id.clone(), info_of(&messages[at].location).to_string())).collect();
            let modseq = self.index.set_flags(&letters)?;
            changed.iter().for_each(|&at| messages[at].modseq = modseq);
        }
        messages.sort_by_key(|m| m.uid);
        // The same message in new/ and cur/ (a reader mid-move): keep one.
        messages.dedup_by_key(|m| m.uid);
        Ok(messages)
    }

    /// Applies `change` with `flags` to the messages' flags as the folder has them now (its
    /// listing is read again when `new/` or `cur/` changed), renaming each file whose flags
    /// change, and gives those one new mod-sequence; the caller holds the folder's lock.
    /// With `unchanged_since`, a message whose mod-sequence is greater is left alone and
    /// reported as modified (RFC 7162 3.1.3). Durable when it returns.
    pub fn change_flags(&mut self, uids: &[u32], change: FlagChange, flags: &Flags, unchanged_since: Option<u64>) -> io::Result<FlagsChanged> {
        let (messages, until) = self.list_for_own_change()?;
        // Renamed relative to the open directories: a STORE on a whole mailbox is bound by
        // the kernel's `rename`, and the path walk of two absolute names was a tenth of it.
        let cur = File::open(self.dir.join("cur"))?;
        let mut new_dir: Option<File> = None;
        let mut result = FlagsChanged::default();
        let mut kept = Vec::with_capacity(uids.len());
        let (mut renamed, mut letters) = (Vec::new(), Vec::new());
        let mut target = String::new();
        let mut touched_new = false;
        // Where each renamed message is now (by its place in the listing), and whether the
        // listing missed a change (a message was not where it said).
        let mut moved_to: Vec<(usize, String)> = Vec::new();
        let mut stale = false;
        // The folder read again after the listing missed a change (see below).
        let mut fresh: Option<Arc<Vec<MessageInfo>>> = None;
        let mut next = 0;
        while let Some(uid) = uids.get(next) {
            next += 1;
            let listing = Arc::clone(fresh.as_ref().unwrap_or(&messages));
            let Ok(at) = listing.binary_search_by_key(uid, |m| m.uid) else { continue };
            let message = &listing[at];
            if unchanged_since.is_some_and(|limit| message.modseq > limit) {
                result.modified.push(*uid);
                continue;
            }
            let new = change.apply(&message.flags, flags);
            let info = self.info_for(&new, info_of(&message.location))?;
            target.clear();
            target.push_str(&message.id);
            target.push_str(":2,");
            target.push_str(&info);
            let (from_new, from_name) = split_location(&message.location);
            if new == message.flags || (!from_new && from_name == target) {
                kept.push((*uid, new, message.modseq));
                continue;
            }
            let from = match from_new {
                true => match &new_dir {
                    Some(dir) => dir,
                    None => &*new_dir.insert(File::open(self.dir.join("new"))?),
                },
                false => &cur,
            };
            match rustix::fs::renameat(from, from_name, &cur, target.as_str()) {
                Ok(()) => {
                    moved_to.push((at, format!("cur/{target}")));
                    renamed.push((*uid, new));
                    letters.push((message.id.clone(), info));
                }
                // Not where the listing says: renamed by someone the listing did not see
                // (another program, in the same tick as the scan or during our own
                // changes), or expunged. Such a program may have changed many (a client
                // marking all read): the folder is read once, and this message and the rest
                // are changed from there; one missing even then is looked for by name.
                Err(rustix::io::Errno::NOENT) if fresh.is_none() => {
                    stale = true;
                    self.cache = None;
                    fresh = Some(self.list()?);
                    next -= 1;
                }
                Err(rustix::io::Errno::NOENT) => {
                    if let Some((new, info)) = self.change_flags_found(message, change, flags)? {
                        renamed.push((*uid, new));
                        letters.push((message.id.clone(), info));
                        touched_new = true;
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
        if !renamed.is_empty() {
            cur.sync_all()?;
            if let Some(new_dir) = new_dir {
                new_dir.sync_all()?;
            } else if touched_new {
                sync_dir(&self.dir.join("new"))?;
            }
            self.cache = None;
            let modseq = self.index.set_flags(&letters)?;
            if !stale {
                self.cache = Some(self.after_own_renames(&messages, &moved_to, &renamed, modseq, until)?);
            }
            kept.extend(renamed.into_iter().map(|(uid, flags)| (uid, flags, modseq)));
            self.index.compact_if_worth_it()?;
        }
        result.stored = kept;
        Ok(result)
    }

    /// The listing an own change starts from, and until when the listing it leaves may serve:
    /// [`PROVISIONAL_FOR`] from now when the folder was read for it, else the deadline of the
    /// made listing it starts from (a chain of STOREs does not put off reading the folder).
    fn list_for_own_change(&mut self) -> io::Result<(Arc<Vec<MessageInfo>>, Instant)> {
        let made = self.cache.as_ref().and_then(|c| Some((c.provisional?, Arc::clone(&c.messages))));
        let messages = self.list()?;
        let until = match made {
            Some((until, listed)) if Arc::ptr_eq(&listed, &messages) => until,
            _ => Instant::now() + PROVISIONAL_FOR,
        };
        Ok((messages, until))
    }

    /// The listing after this folder's own renames (`moved_to`: place in `before` and new
    /// location; `renamed`, in the same order: UID and flags), without reading the folder
    /// again: after a STORE the sync that follows it read every name back (10,000 of them
    /// after a STORE on a large mailbox; all of them again after a STORE of one message).
    /// Provisional: another program's change made during the renames hides behind ours in
    /// the directories' times, so it serves until `until` (see [`Folder::list_for_own_change`]);
    /// a change at any other time changes the times and is seen at once.
    fn after_own_renames(
        &self,
        before: &[MessageInfo],
        moved_to: &[(usize, String)],
        renamed: &[(u32, Flags)],
        modseq: u64,
        until: Instant,
    ) -> io::Result<Cache> {
        let mut messages = before.to_vec();
        for ((at, location), (uid, flags)) in moved_to.iter().zip(renamed) {
            let message = &mut messages[*at];
            debug_assert_eq!(message.uid, *uid);
            message.location.clone_from(location);
            message.flags = flags.clone();
            message.modseq = modseq;
            message.unseen_by_any = *uid >= self.recent_from;
        }
        self.after_own_changes(messages, until)
    }

    /// A provisional listing of `messages`, which this folder's own changes (renames,
    /// unlinks) left: valid for the directories' times as they are now, until `until`.
    fn after_own_changes(&self, messages: Vec<MessageInfo>, until: Instant) -> io::Result<Cache> {
        let (new_mtime, cur_mtime) = self.mtimes()?;
        let holds_new = messages.iter().any(|m| m.location.starts_with("new/"));
        Ok(Cache { new_mtime, cur_mtime, scanned_at: SystemTime::now(), messages: Arc::new(messages), holds_new, provisional: Some(until) })
    }

    /// [`Folder::change_flags`] for a message that was not where the listing said: found
    /// by its name, the change applied to the flags its file has now; None if it is gone.
    /// The listing is dropped (it missed a change).
    fn change_flags_found(&mut self, message: &MessageInfo, change: FlagChange, flags: &Flags) -> io::Result<Option<(Flags, String)>> {
        tracing::info!(uid = message.uid, listed = %message.location, "a flag change found the message moved since the folder was listed");
        self.cache = None;
        let path = match locate(&self.dir, "", &message.id) {
            Ok(path) => path,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None), // expunged meanwhile
            Err(e) => return Err(e),
        };
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let new = change.apply(&self.flags_from_info(info_of(&name)), flags);
        let info = self.info_for(&new, info_of(&name))?;
        match fs::rename(&path, self.dir.join("cur").join(format!("{}:2,{info}", message.id))) {
            Ok(()) => Ok(Some((new, info))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Takes files just placed in `cur/` (by append or copy): numbers them, with whatever
    /// else arrived, and returns their UIDs in the order given.
    pub fn adopt(&mut self, placed: &[String]) -> io::Result<Vec<u32>> {
        self.cache = None;
        self.list()?;
        placed
            .iter()
            .map(|base| self.index.entries.get(base).map(|e| e.uid).ok_or_else(|| io::Error::other(format!("{base} vanished as it was stored"))))
            .collect()
    }

    /// Removes messages durably, and records them as expunged under a new mod-sequence.
    pub fn expunge(&mut self, uids: &[u32]) -> io::Result<()> {
        let (messages, until) = self.list_for_own_change()?;
        let wanted: HashSet<u32> = uids.iter().copied().collect();
        let mut removed = Vec::new();
        let mut stale = false;
        // Unlinked relative to the open directories, as STORE renames (no path walk each).
        let (cur, new) = (File::open(self.dir.join("cur"))?, File::open(self.dir.join("new"))?);
        for message in messages.iter().filter(|m| wanted.contains(&m.uid)) {
            let (in_new, name) = split_location(&message.location);
            let dir = if in_new { &new } else { &cur };
            match rustix::fs::unlinkat(dir, name, rustix::fs::AtFlags::empty()) {
                Ok(()) => {}
                Err(rustix::io::Errno::NOENT) => stale = true,
                Err(e) => return Err(e.into()),
            }
            removed.push(message.id.as_str());
        }
        cur.sync_all()?;
        new.sync_all()?;
        self.cache = None;
        self.index.expunge(&removed)?;
        // The listing without them, as after a STORE (see [`Folder::after_own_renames`]).
        if !stale && !removed.is_empty() {
            let kept: Vec<MessageInfo> = messages.iter().filter(|m| !wanted.contains(&m.uid)).cloned().collect();
            self.cache = Some(self.after_own_changes(kept, until)?);
        }
        self.index.compact_if_worth_it()
    }

    /// The file of a message: where it was listed, else wherever a reader moved it.
    pub fn path_of(&self, message: &MessageInfo) -> io::Result<PathBuf> {
        locate(&self.dir, &message.location, &message.id)
    }

    /// The `:2,` info for `flags`, keeping letters this server does not manage (such as `P`).
    pub fn info_for(&mut self, flags: &Flags, current: &str) -> io::Result<String> {
        let mut letters: Vec<char> = current.chars().filter(|c| c.is_ascii_uppercase() && !"DFRST".contains(*c)).collect();
        for (bit, letter) in [(Flags::DRAFT, 'D'), (Flags::FLAGGED, 'F'), (Flags::ANSWERED, 'R'), (Flags::SEEN, 'S'), (Flags::DELETED, 'T')] {
            if flags.has(bit) {
                letters.push(letter);
            }
        }
        for keyword in &flags.keywords {
            letters.push(self.keyword_letter(keyword)?);
        }
        letters.sort_unstable();
        letters.dedup();
        Ok(letters.into_iter().collect())
    }

    fn flags_from_info(&self, info: &str) -> Flags {
        let mut flags = Flags::default();
        for c in info.chars() {
            match c {
                'D' => flags.system |= Flags::DRAFT,
                'F' => flags.system |= Flags::FLAGGED,
                'R' => flags.system |= Flags::ANSWERED,
                'S' => flags.system |= Flags::SEEN,
                'T' => flags.system |= Flags::DELETED,
                'a'..='z' => {
                    if let Some(keyword) = self.keywords.get((c as u8 - b'a') as usize) {
                        flags.add_keyword(keyword);
                    }
                }
                _ => {}
            }
        }
        flags
    }

    /// The letter of a keyword, adding it to `dovecot-keywords` if it is new.
    fn keyword_letter(&mut self, keyword: &str) -> io::Result<char> {
        if let Some(i) = self.keywords.iter().position(|k| k.eq_ignore_ascii_case(keyword)) {
            return Ok((b'a' + i as u8) as char);
        }
        if self.keywords.len() >= MAX_KEYWORDS {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "a folder holds at most 26 keywords"));
        }
        self.keywords.push(keyword.to_string());
        let text: String = self.keywords.iter().enumerate().map(|(i, k)| format!("{i} {k}\n")).collect();
        let tmp = self.dir.join(format!("{KEYWORDS}.tmp"));
        let mut file = File::create(&tmp)?;
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
        fs::rename(&tmp, self.dir.join(KEYWORDS))?;
        sync_dir(&self.dir)?;
        Ok((b'a' + (self.keywords.len() - 1) as u8) as char)
    }
}

/// `dovecot-keywords`: `N name` lines.
fn read_keywords(path: &Path) -> Vec<String> {
    let Ok(text) = fs::read_to_string(path) else { return Vec::new() };
    let mut keywords: Vec<(usize, String)> = text
        .lines()
        .filter_map(|line| {
            let (n, name) = line.split_once(' ')?;
            Some((n.parse().ok()?, name.to_string()))
        })
        .filter(|(n, _)| *n < MAX_KEYWORDS)
        .collect();
    keywords.sort();
    let mut out = Vec::new();
    for (n, name) in keywords {
        // Gaps would shift letters: fill them so that each keyword keeps its letter.
        while out.len() < n {
            out.push(format!("$unnamed{}", out.len()));
        }
        if out.len() == n {
            out.push(name);
        }
    }
    out
}

fn read_dir_or_empty(dir: &Path) -> io::Result<Box<dyn Iterator<Item = io::Result<fs::DirEntry>>>> {
    match fs::read_dir(dir) {
        Ok(entries) => Ok(Box::new(entries)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Box::new(std::iter::empty())),
        Err(e) => Err(e),
    }
}

/// The file of message `id` (a base name) in the Maildir folder `dir`: at `location`
/// (`cur/NAME:2,S`) if it is still there, else wherever in `new/` or `cur/` a reader moved it
/// (a new `:2,FLAGS`). Names that could leave the folder are refused.
pub(super) fn locate(dir: &Path, location: &str, id: &str) -> io::Result<PathBuf> {
    if id.is_empty() || id.contains('/') || id.starts_with('.') {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("bad message id {id:?}")));
    }
    let (sub, name) = location.split_once('/').unwrap_or(("", ""));
    if (sub == "new" || sub == "cur") && !name.is_empty() && !name.contains('/') && !name.starts_with('.') {
        let listed = dir.join(sub).join(name);
        if listed.exists() {
            return Ok(listed);
        }
    }
    for sub in ["cur", "new"] {
        for entry in read_dir_or_empty(&dir.join(sub))? {
            let entry = entry?;
            if base_name(&entry.file_name().to_string_lossy()) == id {
                return Ok(entry.path());
            }
        }
    }
    Err(io::Error::new(io::ErrorKind::NotFound, format!("no message {id}")))
}

/// The messages seen for the first time, each with its INTERNALDATE (its file's modification
/// time, as Dovecot reads it) and its flag letters.
///
/// Each time is read relative to the open `new/` or `cur/`, not by walking the whole path;
/// a large mailbox's files are split among a few threads, as each `stat` is a name lookup in
/// a directory the kernel has not cached (its listing does not fill the dentry cache): on a
/// first SELECT of 10,000 messages the lookups were half the work.
fn arrival_dates(folder: &Path, unknown: &[&Found]) -> io::Result<Vec<(String, i64, String)>> {
    /// Below this, one thread: starting another costs more than it saves.
    const PER_THREAD: usize = 2_000;
    let dirs = [File::open(folder.join("cur")), File::open(folder.join("new"))];
    let date = |f: &Found| -> io::Result<(String, i64, String)> {
        let dir = dirs[usize::from(f.in_new)].as_ref().map_err(|e| io::Error::new(e.kind(), e.to_string()))?;
        let date = rustix::fs::statat(dir, &f.location[4..], rustix::fs::AtFlags::empty()).map(|st| st.st_mtime).unwrap_or(0);
        Ok((f.base().to_string(), date, f.info().to_string()))
    };
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(4).min(unknown.len() / PER_THREAD).max(1);
    if threads == 1 {
        return unknown.iter().map(|f| date(f)).collect();
    }
    let chunk = unknown.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let parts: Vec<_> =
            unknown.chunks(chunk).map(|part| scope.spawn(move || part.iter().map(|f| date(f)).collect::<io::Result<Vec<_>>>())).collect();
        let mut all = Vec::with_capacity(unknown.len());
        for part in parts {
            all.extend(part.join().map_err(|_| io::Error::other("a thread reading arrival dates panicked"))??);
        }
        Ok(all)
    })
}

/// Where a listed location (`new/NAME` or `cur/NAME`) points: whether in `new/`, and the
/// file's name in its directory.
fn split_location(location: &str) -> (bool, &str) {
    match location.split_once('/') {
        Some((sub, name)) => (sub == "new", name),
        None => (false, location),
    }
}

/// The flag letters after `:2,` (empty if none).
fn info_of(name: &str) -> &str {
    name.rsplit_once(":2,").map(|(_, info)| info).filter(|info| !info.contains('/')).unwrap_or("")
}

/// The user's UIDVALIDITY counter: the last value given to any of its folders (as Dovecot's
/// `dovecot-uidvalidity`), so that a folder made again — DELETE and CREATE within one second,
/// or a damaged index — gets a greater one than before (RFC 3501 2.3.1.1), never the same.
const VALIDITY: &str = "wasmail-uidvalidity";

/// The next UIDVALIDITY for a folder of the Maildir at `root`: above `floor`, above the
/// counter, at least the time; written back durably before it is used.
fn next_validity(root: &Path, floor: u32) -> io::Result<u32> {
    let path = root.join(VALIDITY);
    let last = fs::read_to_string(&path).ok().and_then(|text| text.trim().parse::<u32>().ok()).unwrap_or(0);
    let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default().as_secs() as u32;
    let next = now.max(floor.saturating_add(1)).max(last.saturating_add(1)).max(1);
    let tmp = root.join(format!("{VALIDITY}.tmp"));
    let mut file = File::create(&tmp)?;
    file.write_all(format!("{next}\n").as_bytes())?;
    file.sync_all()?;
    fs::rename(&tmp, &path)?;
    sync_dir(root)?;
    Ok(next)
}

/// How far a directory's modification time may trail the change that set it. Linux file
/// systems with nanosecond times (ext4, xfs, btrfs, tmpfs) stamp them from the kernel's
/// coarse clock, a scheduler tick behind (4 ms at 250 Hz; 100 ms leaves room for slower
/// ticks); a time with no fraction of a second is taken to come from a file system that
/// keeps whole seconds (or a rare whole-second stamp), and gets two. A scan that began more
/// than this after the directory's time would see any change the same time could hide, so
/// the next command may trust an unchanged time instead of reading the directory again — the
/// difference between reading a directory of 10,000 names once per synchronising client's
/// command (mbsync fetches one message per command) and once.
fn mtime_tick(mtime: SystemTime) -> Duration {
    match mtime.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(since) if since.subsec_nanos() != 0 => Duration::from_millis(100),
        _ => Duration::from_secs(2),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::uidlist::FILE as INDEX;

    fn maildir() -> (tempfile::TempDir, PathBuf) {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("box");
        for sub in ["new", "cur", "tmp"] {
            fs::create_dir_all(dir.join(sub)).unwrap();
        }
        (tmp, dir)
    }

    #[test]
    fn uids_are_stable_across_opens_and_follow_arrival() {
        let (_tmp, dir) = maildir();
        fs::write(dir.join("new/200.B.host,S=3,W=4"), b"b\n\n").unwrap();
        fs::write(dir.join("new/100.A.host,S=3,W=4"), b"a\n\n").unwrap();
        let mut folder = Folder::open(&dir).unwrap();
        let synced = folder.sync(false).unwrap();
        let uids: Vec<(u32, &str)> = synced.messages.iter().map(|m| (m.uid, m.id.as_str())).collect();
        assert_eq!(uids, [(1, "100.A.host,S=3,W=4"), (2, "200.B.host,S=3,W=4")]);
        assert!(synced.messages.iter().all(|m| m.unseen_by_any && m.size == 4));
        assert_eq!(synced.uid_next, 3);
        // Another open (a restart) sees the same numbers; a reader moving a file keeps its UID.
        fs::rename(dir.join("new/100.A.host,S=3,W=4"), dir.join("cur/100.A.host,S=3,W=4:2,S")).unwrap();
        let mut again = Folder::open(&dir).unwrap();
        let synced2 = again.sync(false).unwrap();
        assert_eq!(synced2.uid_validity, synced.uid_validity);
        assert_eq!(synced2.messages[0].uid, 1);
        assert!(synced2.messages[0].flags.has(Flags::SEEN));
        // Claiming moves what is in new/ and reports it once.
        let claimed = again.sync(true).unwrap();
        assert_eq!(claimed.claimed, [2]);
        assert!(dir.join("cur/200.B.host,S=3,W=4:2,").exists());
        assert!(again.sync(true).unwrap().claimed.is_empty());
    }

    /// Sets the modification time of `new/` and `cur/`, as another program's change in the
    /// same tick would leave it.
    fn stamp(dir: &Path, mtime: SystemTime) {
        for sub in ["new", "cur"] {
            fs::File::open(dir.join(sub)).unwrap().set_times(fs::FileTimes::new().set_modified(mtime)).unwrap();
        }
    }

    #[test]
    fn a_flag_change_reaches_a_file_the_listing_did_not_see_renamed() {
        let (_tmp, dir) = maildir();
        fs::write(dir.join("cur/100.A.host,S=3,W=4:2,"), b"a\n\n").unwrap();
        let mut folder = Folder::open(&dir).unwrap();
        let fine = SystemTime::now() - Duration::from_secs(1) + Duration::from_nanos(123);
        stamp(&dir, fine);
        assert_eq!(folder.list().unwrap()[0].location, "cur/100.A.host,S=3,W=4:2,");
        // Another program marks it answered in the same tick: the directory's time stays,
        // so the listing is still trusted and names the old file.
        fs::rename(dir.join("cur/100.A.host,S=3,W=4:2,"), dir.join("cur/100.A.host,S=3,W=4:2,R")).unwrap();
        stamp(&dir, fine);
        let flagged = Flags { system: Flags::FLAGGED, keywords: Vec::new() };
        let changed = folder.change_flags(&[1], FlagChange::Add, &flagged, None).unwrap();
        assert_eq!(changed.stored.len(), 1, "the change is not dropped as if expunged");
        assert!(changed.stored[0].1.has(Flags::FLAGGED) && changed.stored[0].1.has(Flags::ANSWERED));
        assert!(dir.join("cur/100.A.host,S=3,W=4:2,FR").exists());
        // Gone for real: nothing to change, no error.
        fs::remove_file(dir.join("cur/100.A.host,S=3,W=4:2,FR")).unwrap();
        assert!(folder.change_flags(&[1], FlagChange::Add, &Flags { system: Flags::SEEN, keywords: Vec::new() }, None).unwrap().stored.is_empty());
    }

    #[test]
    fn the_listing_made_by_own_changes_serves_until_its_deadline_then_the_folder_is_read_again() {
        let (_tmp, dir) = maildir();
        for name in ["100.A.host,S=3,W=4:2,", "200.B.host,S=3,W=4:2,", "300.C.host,S=3,W=4:2,"] {
            fs::write(dir.join("cur").join(name), b"a\n\n").unwrap();
        }
        let mut folder = Folder::open(&dir).unwrap();
        stamp(&dir, SystemTime::now() - Duration::from_secs(1) + Duration::from_nanos(123));
        assert_eq!(folder.list().unwrap().len(), 3);
        let flagged = Flags { system: Flags::FLAGGED, keywords: Vec::new() };
        folder.change_flags(&[1], FlagChange::Add, &flagged, None).unwrap();
        let until = folder.cache.as_ref().and_then(|c| c.provisional).expect("a made listing");
        // Another program marks 2 seen while the change is made: the directories' times
        // are those the change left.
        let (new_mtime, cur_mtime) = folder.mtimes().unwrap();
        fs::rename(dir.join("cur/200.B.host,S=3,W=4:2,"), dir.join("cur/200.B.host,S=3,W=4:2,S")).unwrap();
        fs::File::open(dir.join("cur")).unwrap().set_times(fs::FileTimes::new().set_modified(cur_mtime)).unwrap();
        fs::File::open(dir.join("new")).unwrap().set_times(fs::FileTimes::new().set_modified(new_mtime)).unwrap();
        // The listings after the change are the one it made: the change, not the other's.
        for _ in 0..2 {
            let after = folder.list().unwrap();
            assert_eq!(after[0].location, "cur/100.A.host,S=3,W=4:2,F");
            assert!(after[0].flags.has(Flags::FLAGGED) && after[0].modseq > after[1].modseq);
            assert!(!after[1].flags.has(Flags::SEEN));
        }
        // More changes made from it keep its deadline: EXPUNGE of 3 too.
        folder.change_flags(&[1], FlagChange::Remove, &flagged, None).unwrap();
        folder.expunge(&[3]).unwrap();
        assert_eq!(folder.cache.as_ref().and_then(|c| c.provisional), Some(until));
        assert_eq!(folder.list().unwrap().iter().map(|m| m.uid).collect::<Vec<_>>(), [1, 2]);
        // Past the deadline the folder is read, and the other program's change found.
        folder.cache.as_mut().unwrap().provisional = Some(Instant::now());
        let read = folder.list().unwrap();
        assert!(!read[0].flags.has(Flags::FLAGGED) && read[1].flags.has(Flags::SEEN), "{read:?}");
        assert!(folder.cache.as_ref().is_some_and(|c| c.provisional.is_none()));
        // A change from a listing read from the folder has a deadline of its own.
        folder.change_flags(&[1], FlagChange::Add, &flagged, None).unwrap();
        assert!(folder.cache.as_ref().and_then(|c| c.provisional).is_some_and(|u| u > until));
    }

    #[test]
    fn a_flag_change_after_another_program_renamed_many_reads_the_folder_once() {
        let (_tmp, dir) = maildir();
        let names = ["100.A.host,S=3,W=4", "200.B.host,S=3,W=4", "300.C.host,S=3,W=4"];
        for name in names {
            fs::write(dir.join("cur").join(format!("{name}:2,")), b"a\n\n").unwrap();
        }
        let mut folder = Folder::open(&dir).unwrap();
        let fine = SystemTime::now() - Duration::from_secs(1) + Duration::from_nanos(123);
        stamp(&dir, fine);
        assert_eq!(folder.list().unwrap().len(), 3);
        // Another program marks all of them seen in the same tick: the listing is trusted.
        for name in names {
            fs::rename(dir.join("cur").join(format!("{name}:2,")), dir.join("cur").join(format!("{name}:2,S"))).unwrap();
        }
        stamp(&dir, fine);
        let flagged = Flags { system: Flags::FLAGGED, keywords: Vec::new() };
        let changed = folder.change_flags(&[1, 2, 3], FlagChange::Add, &flagged, None).unwrap();
        assert_eq!(changed.stored.len(), 3);
        assert!(changed.stored.iter().all(|(_, flags, _)| flags.has(Flags::FLAGGED) && flags.has(Flags::SEEN)), "{:?}", changed.stored);
        for name in names {
            assert!(dir.join("cur").join(format!("{name}:2,FS")).exists(), "{name}");
        }
    }

    #[test]
    fn an_unchanged_directory_time_is_trusted_once_a_tick_older_than_the_scan() {
        let (_tmp, dir) = maildir();
        fs::write(dir.join("cur/100.A.host,S=3,W=4:2,"), b"a\n\n").unwrap();
        let mut folder = Folder::open(&dir).unwrap();
        // Nanosecond times, a second old: the scan that sees them may be trusted.
        let fine = SystemTime::now() - Duration::from_secs(1) + Duration::from_nanos(123);
        stamp(&dir, fine);
        assert_eq!(folder.list().unwrap().len(), 1);
        fs::write(dir.join("cur/200.B.host,S=3,W=4:2,"), b"b\n\n").unwrap();
        stamp(&dir, fine);
        assert_eq!(folder.list().unwrap().len(), 1, "an unchanged time is trusted, the directory not read again");
        stamp(&dir, SystemTime::now());
        assert_eq!(folder.list().unwrap().len(), 2, "a changed time is not");
        // Whole seconds, a second old: the change may have come in the same second as the
        // scan, so the next listing reads the directory again.
        let coarse = SystemTime::UNIX_EPOCH + Duration::from_secs(SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs() - 1);
        stamp(&dir, coarse);
        assert_eq!(folder.list().unwrap().len(), 2);
        fs::write(dir.join("cur/300.C.host,S=3,W=4:2,"), b"c\n\n").unwrap();
        stamp(&dir, coarse);
        assert_eq!(folder.list().unwrap().len(), 3);
    }

    #[test]
    fn messages_stored_in_cur_are_recent_for_the_next_claim_only() {
        let (_tmp, dir) = maildir();
        let mut folder = Folder::open(&dir).unwrap();
        assert!(folder.sync(true).unwrap().claimed.is_empty());
        // An APPEND or COPY puts its file in cur/ directly.
        fs::write(dir.join("cur/300.C.host,S=2,W=3:2,S"), b"a\n").unwrap();
        let placed = folder.adopt(&["300.C.host,S=2,W=3".to_string()]).unwrap();
        let looked = folder.sync(false).unwrap();
        assert!(looked.claimed.is_empty() && looked.messages.iter().all(|m| m.unseen_by_any), "STATUS counts it as recent");
        assert_eq!(folder.sync(true).unwrap().claimed, placed);
        let after = folder.sync(false).unwrap();
        assert!(after.messages.iter().all(|m| !m.unseen_by_any), "claimed once, by one session");
        assert!(folder.sync(true).unwrap().claimed.is_empty());
    }

    #[test]
    fn flag_changes_apply_to_the_flags_on_disk_not_a_stale_copy() {
        let (_tmp, dir) = maildir();
        fs::write(dir.join("cur/1.A.h:2,S"), b"x\n").unwrap();
        let mut one = Folder::open(&dir).unwrap();
        let uid = one.sync(false).unwrap().messages[0].uid;
        let answered = Flags { system: Flags::ANSWERED, keywords: vec![] };
        one.change_flags(&[uid], FlagChange::Add, &answered, None).unwrap();
        // Another folder handle (another process's view) removes \Seen: \Answered stays.
        let mut two = Folder::open(&dir).unwrap();
        let seen = Flags { system: Flags::SEEN, keywords: vec![] };
        let after = two.change_flags(&[uid], FlagChange::Remove, &seen, None).unwrap();
        assert_eq!(after.stored, [(uid, answered.clone(), 4)]);
        assert!(dir.join("cur/1.A.h:2,R").exists());
        assert_eq!(
            one.change_flags(&[uid, 99], FlagChange::Add, &Flags::default(), None).unwrap().stored,
            [(uid, answered, 4)],
            "gone UIDs are skipped"
        );
    }

    #[test]
    fn a_folder_made_again_at_once_gets_a_greater_uidvalidity() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        let make = |name: &str| {
            let dir = root.join(name);
            for sub in ["new", "cur", "tmp"] {
                fs::create_dir_all(dir.join(sub)).unwrap();
            }
            Folder::open_in(&dir, root).unwrap().uid_validity()
        };
        let first = make(".Box");
        fs::remove_dir_all(root.join(".Box")).unwrap();
        let second = make(".Box");
        assert!(second > first, "{second} after {first}");
        assert!(make(".Other") > second, "one counter for every folder of the Maildir");
    }

    #[test]
    fn flags_keywords_and_expunge() {
        let (_tmp, dir) = maildir();
        fs::write(dir.join("cur/1.A.h:2,P"), b"x\n").unwrap();
        let mut folder = Folder::open(&dir).unwrap();
        let uid = folder.sync(false).unwrap().messages[0].uid;
        let mut flags = Flags { system: Flags::SEEN | Flags::DELETED, keywords: vec![] };
        flags.add_keyword("$Forwarded");
        assert_eq!(folder.change_flags(&[uid], FlagChange::Replace, &flags, None).unwrap().stored, [(uid, flags.clone(), 3)]);
        assert!(dir.join("cur/1.A.h:2,PSTa").exists(), "{:?}", fs::read_dir(dir.join("cur")).unwrap().collect::<Vec<_>>());
        assert_eq!(fs::read_to_string(dir.join("dovecot-keywords")).unwrap(), "0 $Forwarded\n");
        let synced = Folder::open(&dir).unwrap().sync(false).unwrap();
        assert_eq!(synced.messages[0].flags, flags);
        assert_eq!(synced.messages[0].size, 3, "counted without W=");
        folder.expunge(&[uid]).unwrap();
        assert!(folder.sync(false).unwrap().messages.is_empty());
        // A new message after an expunge never reuses the UID.
        fs::write(dir.join("new/2.B.h"), b"y\n").unwrap();
        assert_eq!(Folder::open(&dir).unwrap().sync(false).unwrap().messages[0].uid, uid + 1);
    }

    #[test]
    fn a_torn_index_line_is_dropped_and_a_damaged_index_gets_a_new_uidvalidity() {
        let (_tmp, dir) = maildir();
        fs::write(dir.join("new/1.A.h"), b"x\n").unwrap();
        let validity = Folder::open(&dir).unwrap().sync(false).unwrap().uid_validity;
        let mut text = fs::read_to_string(dir.join(INDEX)).unwrap();
        text.push_str("7 12");
        fs::write(dir.join(INDEX), &text).unwrap();
        let mut folder = Folder::open(&dir).unwrap();
        let synced = folder.sync(false).unwrap();
        assert_eq!((synced.uid_validity, synced.messages[0].uid), (validity, 1));
        assert!(fs::read_to_string(dir.join(INDEX)).unwrap().ends_with('\n'));
        fs::write(dir.join(INDEX), "garbage\n1 2 3\n").unwrap();
        let synced = Folder::open(&dir).unwrap().sync(false).unwrap();
        assert!(synced.uid_validity > validity);
        assert_eq!(synced.messages[0].uid, 1);
    }
}
