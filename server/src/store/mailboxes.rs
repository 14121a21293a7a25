//! The Maildir store's mailboxes as IMAP sees them: the folder tree (Maildir++ `.A.B`
//! directories), subscriptions, and message operations through each folder's index
//! ([`super::folder`]). One lock per folder serializes its index; a change wakes the
//! folder's watchers (IDLE).

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::files::{bare_lf_count, create_dir_durably, crlf_to_lf, lf_to_crlf, read_in_memory, sync_dir};
use super::folder::Folder;
use super::maildir::Maildir;
use super::names::{dir_name, from_dir_name, valid_mailbox_name, SPECIAL_USE};
use super::{FlagChange, Flags, FlagsChanged, MailboxEvent, MessageInfo, NewMessage, Synced};

const SUBSCRIPTIONS: &str = "subscriptions";

fn invalid(why: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, why.into())
}

fn not_found(name: &str) -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, format!("no mailbox {name}"))
}

impl Maildir {
    /// The directory of a mailbox (which may not exist).
    fn mailbox_dir(&self, user: &str, name: &str) -> io::Result<PathBuf> {
        if !valid_mailbox_name(name) {
            return Err(invalid(format!("bad mailbox name {name:?}")));
        }
        let user_dir = self.checked_user_dir(user)?;
        Ok(match dir_name(name) {
            None => user_dir,
            Some(dir) => user_dir.join(dir),
        })
    }

    /// The index of an existing mailbox, opened on first use.
    fn folder(&self, user: &str, name: &str) -> io::Result<(PathBuf, Arc<Mutex<Folder>>)> {
        let dir = self.mailbox_dir(user, name)?;
        let mut open = self.folders.open.lock().expect("folders lock");
        if let Some(folder) = open.get(&dir) {
            return Ok((dir, Arc::clone(folder)));
        }
        if !dir.join("cur").is_dir() {
            if name == "INBOX" {
                drop(open);
                self.imap_open_user(user)?;
                return self.folder(user, name);
            }
            return Err(not_found(name));
        }
        let folder = Arc::new(Mutex::new(Folder::open_in(&dir, &self.user_dir(user))?));
        open.insert(dir.clone(), Arc::clone(&folder));
        Ok((dir, folder))
    }

    /// Wakes whoever waits on the folder at `dir`.
    pub(super) fn notify(&self, dir: &Path) {
        if let Some(sender) = self.folders.watchers.lock().expect("watchers lock").get(dir) {
            sender.send_modify(|n| *n += 1);
        }
    }

    /// Tells the sessions following `user`'s mailboxes of a change.
    pub(super) fn announce(&self, user: &str, event: MailboxEvent) {
        if let Some(sender) = self.folders.events.lock().expect("events lock").get(&self.user_dir(user)) {
            // No receiver left is no error: the entry goes at the next subscription.
            let _ = sender.send(event);
        }
    }

    /// Forgets the in-memory state of folders at and under `dir` (deleted or renamed).
    fn forget(&self, dir: &Path) {
        self.folders.open.lock().expect("folders lock").retain(|d, _| !is_at_or_under(d, dir));
        for (d, sender) in self.folders.watchers.lock().expect("watchers lock").iter() {
            if is_at_or_under(d, dir) {
                sender.send_modify(|n| *n += 1);
            }
        }
    }

    pub(super) fn imap_open_user(&self, user: &str) -> io::Result<()> {
        self.ensure_user(user)?;
        let mut subscribe = Vec::new();
        for (name, _) in SPECIAL_USE {
            match self.imap_create(user, name) {
                Ok(()) => subscribe.push(name),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(e),
            }
        }
        for name in subscribe {
            self.imap_set_subscribed(user, name, true)?;
        }
        Ok(())
    }

    pub(super) fn imap_mailboxes(&self, user: &str) -> io::Result<Vec<String>> {
        let user_dir = self.checked_user_dir(user)?;
        let mut names = Vec::new();
        match fs::read_dir(&user_dir) {
            Ok(entries) => {
                for entry in entries {
                    let entry = entry?;
                    let dir = entry.file_name().to_string_lossy().into_owned();
                    if let Some(name) = from_dir_name(&dir) {
                        if entry.path().join("cur").is_dir() {
                            names.push(name);
                        }
                    }
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        names.sort();
        names.insert(0, "INBOX".to_string());
        Ok(names)
    }

    pub(super) fn imap_create(&self, user: &str, name: &str) -> io::Result<()> {
        if name == "INBOX" {
            return Err(io::Error::new(io::ErrorKind::AlreadyExists, "INBOX always exists"));
        }
        let dir = self.mailbox_dir(user, name)?;
        if dir.join("cur").is_dir() {
            return Err(io::Error::new(io::ErrorKind::AlreadyExists, format!("{name} exists")));
        }
        self.ensure_user(user)?;
        // RFC 3501 6.3.3: superior names are created as needed.
        let levels: Vec<&str> = name.split('/').collect();
        for depth in 1..=levels.len() {
            let level_dir = self.mailbox_dir(user, &levels[..depth].join("/"))?;
            if level_dir.join("cur").is_dir() {
                continue;
            }
            create_dir_durably(&level_dir)?;
            for sub in ["tmp", "new", "cur"] {
                create_dir_durably(&level_dir.join(sub))?;
            }
            File::create(level_dir.join("maildirfolder"))?.sync_all()?;
            self.announce(user, MailboxEvent::Created(levels[..depth].join("/")));
        }
        Ok(())
    }

    pub(super) fn imap_delete(&self, user: &str, name: &str) -> io::Result<()> {
        if name == "INBOX" {
            return Err(invalid("INBOX cannot be deleted"));
        }
        let dir = self.mailbox_dir(user, name)?;
        if !dir.join("cur").is_dir() {
            return Err(not_found(name));
        }
        // Out of sight in one rename, then removed: a crash leaves no half-deleted mailbox.
        let user_dir = self.checked_user_dir(user)?;
        let doomed = user_dir.join(format!("..deleted{}", unique_suffix()));
        fs::rename(&dir, &doomed)?;
        sync_dir(&user_dir)?;
        self.forget(&dir);
        self.announce(user, MailboxEvent::Deleted(name.to_string()));
        fs::remove_dir_all(&doomed)?;
        // The subscription stays: RFC 3501 6.3.6 says a server must not drop one because the
        // mailbox is gone (LIST (SUBSCRIBED) shows it \NonExistent, RFC 5258).
        Ok(())
    }

    pub(super) fn imap_rename(&self, user: &str, from: &str, to: &str) -> io::Result<()> {
        if to == "INBOX" {
            return Err(io::Error::new(io::ErrorKind::AlreadyExists, "INBOX exists"));
        }
        let target = self.mailbox_dir(user, to)?;
        if target.join("cur").is_dir() {
            return Err(io::Error::new(io::ErrorKind::AlreadyExists, format!("{to} exists")));
        }
        if from == "INBOX" {
            // RFC 3501 6.3.5: INBOX's messages move to the new mailbox; INBOX stays, empty.
            self.imap_create(user, to)?;
            let (inbox, index) = self.folder(user, "INBOX")?;
            let _held = index.lock().expect("folder lock");
            for sub in ["new", "cur"] {
                for entry in fs::read_dir(inbox.join(sub))? {
                    let entry = entry?;
                    let name = entry.file_name().to_string_lossy().into_owned();
                    if name.starts_with('.') {
                        continue;
                    }
                    let moved = if sub == "new" { format!("{name}:2,") } else { name };
                    fs::rename(entry.path(), target.join("cur").join(moved))?;
                }
            }
            sync_dir(&target.join("cur"))?;
            sync_dir(&inbox.join("cur"))?;
            sync_dir(&inbox.join("new"))?;
            drop(_held);
            self.notify(&inbox);
            self.announce(user, MailboxEvent::Expunged("INBOX".to_string()));
            self.announce(user, MailboxEvent::New(to.to_string()));
            return Ok(());
        }
        let source = self.mailbox_dir(user, from)?;
        if !source.join("cur").is_dir() {
            return Err(not_found(from));
        }
        // The mailbox and its inferiors (RFC 3501 6.3.5): `.A` and every `.A.*`.
        let user_dir = self.checked_user_dir(user)?;
        let prefix = format!("{}.", dir_name(from).expect("not INBOX"));
        let new_prefix = format!("{}.", dir_name(to).expect("not INBOX"));
        let mut moves = vec![(source.clone(), target.clone())];
        let mut renamed = vec![(from.to_string(), to.to_string())];
        for entry in fs::read_dir(&user_dir)? {
            let dir = entry?.file_name().to_string_lossy().into_owned();
            if let Some(rest) = dir.strip_prefix(&prefix) {
                moves.push((user_dir.join(&dir), user_dir.join(format!("{new_prefix}{rest}"))));
                if let Some(inferior) = from_dir_name(&dir) {
                    if let Some(tail) = inferior.strip_prefix(from) {
                        renamed.push((inferior.clone(), format!("{to}{tail}")));
                    }
                }
            }
        }
        if let Some(parent) = to.rsplit_once('/').map(|(parent, _)| parent) {
            if !self.mailbox_dir(user, parent)?.join("cur").is_dir() {
                self.imap_create(user, parent)?;
            }
        }
        for (a, b) in &moves {
            if b.exists() {
                return Err(io::Error::new(io::ErrorKind::AlreadyExists, format!("{} exists", b.display())));
            }
            fs::rename(a, b)?;
            self.forget(a);
        }
        sync_dir(&user_dir)?;
        for (from, to) in renamed {
            self.announce(user, MailboxEvent::Renamed { from, to });
        }
        let subscribed = self.imap_subscriptions(user)?;
        if subscribed.iter().any(|s| s == from) {
            self.imap_set_subscribed(user, from, false)?;
            self.imap_set_subscribed(user, to, true)?;
        }
        Ok(())
    }

    pub(super) fn imap_subscriptions(&self, user: &str) -> io::Result<Vec<String>> {
        let path = self.checked_user_dir(user)?.join(SUBSCRIPTIONS);
        match fs::read_to_string(path) {
            Ok(text) => Ok(text.lines().filter(|l| !l.is_empty()).map(str::to_string).collect()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(e),
        }
    }

    pub(super) fn imap_set_subscribed(&self, user: &str, name: &str, subscribed: bool) -> io::Result<()> {
        let _guard = self.folders.open.lock().expect("folders lock");
        let mut names = self.imap_subscriptions(user)?;
        let present = names.iter().any(|n| n == name);
        if present == subscribed {
            return Ok(());
        }
        if subscribed {
            names.push(name.to_string());
        } else {
            names.retain(|n| n != name);
        }
        let user_dir = self.ensure_user(user)?;
        let tmp = user_dir.join(format!("{SUBSCRIPTIONS}.tmp"));
        let mut file = File::create(&tmp)?;
        file.write_all(names.iter().map(|n| format!("{n}\n")).collect::<String>().as_bytes())?;
        file.sync_all()?;
        fs::rename(&tmp, user_dir.join(SUBSCRIPTIONS))?;
        sync_dir(&user_dir)?;
        self.announce(user, MailboxEvent::Subscribed { name: name.to_string(), subscribed });
        Ok(())
    }

    pub(super) fn imap_sync(&self, user: &str, mailbox: &str, claim_recent: bool) -> io::Result<Synced> {
        let (_, folder) = self.folder(user, mailbox)?;
        let mut folder = folder.lock().expect("folder lock");
        folder.sync(claim_recent)
    }

    pub(super) fn imap_sync_unchanged(&self, user: &str, mailbox: &str, claim_recent: bool) -> Option<Synced> {
        let dir = self.mailbox_dir(user, mailbox).ok()?;
        let folder = Arc::clone(self.folders.open.lock().expect("folders lock").get(&dir)?);
        // Busy is as good as changed: the caller syncs on the blocking pool then.
        let folder = folder.try_lock().ok()?;
        folder.sync_unchanged(claim_recent).ok().flatten()
    }

    pub(super) fn imap_change_flags(
        &self,
        user: &str,
        mailbox: &str,
        uids: &[u32],
        change: FlagChange,
        flags: &Flags,
        unchanged_since: Option<u64>,
    ) -> io::Result<FlagsChanged> {
        let (dir, folder) = self.folder(user, mailbox)?;
        let changed = folder.lock().expect("folder lock").change_flags(uids, change, flags, unchanged_since)?;
        self.notify(&dir);
        if !changed.stored.is_empty() {
            self.announce(user, MailboxEvent::Flags(mailbox.to_string()));
        }
        Ok(changed)
    }

    pub(super) fn imap_expunged_since(&self, user: &str, mailbox: &str, since: u64) -> io::Result<Vec<(u32, u32)>> {
        let (_, folder) = self.folder(user, mailbox)?;
        let expunged = folder.lock().expect("folder lock").expunged_since(since);
        Ok(expunged)
    }

    /// Appends messages all or none: each is written to `tmp/` and fsync'd first (a failure
    /// removes them all); then, under the folder's lock, all are renamed into `cur/` and the
    /// folder fsync'd once, and numbered together.
    pub(super) fn imap_append(&self, user: &str, mailbox: &str, messages: &[NewMessage]) -> io::Result<(u32, Vec<u32>)> {
        let (dir, folder) = self.folder(user, mailbox)?;
        let mut written: Vec<(PathBuf, String)> = Vec::with_capacity(messages.len());
        let discard = |written: &[(PathBuf, String)]| written.iter().for_each(|(tmp, _)| drop(fs::remove_file(tmp)));
        for message in messages {
            let mut lf = Vec::with_capacity(message.content.len());
            for run in crlf_to_lf(&message.content) {
                lf.extend_from_slice(run);
            }
            let lines = bare_lf_count(&lf, 0);
            let base = format!("{},S={},W={}", self.unique_base(), lf.len(), lf.len() as u64 + lines);
            let tmp = dir.join("tmp").join(&base);
            let stored = (|| {
                let mut file = File::create(&tmp)?;
                file.write_all(&lf)?;
                if let Some(date) = message.date {
                    let time = std::time::UNIX_EPOCH + std::time::Duration::from_secs(date.max(0) as u64);
                    file.set_modified(time)?;
                }
                file.sync_all()
            })();
            written.push((tmp, base));
            if let Err(e) = stored {
                discard(&written);
                return Err(e);
            }
        }
        let mut index = folder.lock().expect("folder lock");
        let mut targets = Vec::with_capacity(messages.len());
        for (message, (_, base)) in messages.iter().zip(&written) {
            match index.info_for(&message.flags, "") {
                Ok(info) => targets.push(dir.join("cur").join(format!("{base}:2,{info}"))),
                Err(e) => {
                    discard(&written);
                    return Err(e);
                }
            }
        }
        for (i, ((tmp, _), target)) in written.iter().zip(&targets).enumerate() {
            if let Err(e) = fs::rename(tmp, target) {
                // Nothing was numbered yet: take back what went in, so that none is stored.
                targets[..i].iter().for_each(|t| drop(fs::remove_file(t)));
                discard(&written[i..]);
                return Err(e);
            }
        }
        sync_dir(&dir.join("cur"))?;
        let bases: Vec<String> = written.into_iter().map(|(_, base)| base).collect();
        let uids = index.adopt(&bases)?;
        let validity = index.uid_validity();
        drop(index);
        self.notify(&dir);
        self.announce(user, MailboxEvent::New(mailbox.to_string()));
        Ok((validity, uids))
    }

    pub(super) fn imap_copy(&self, user: &str, from: &str, uids: &[u32], to: &str) -> io::Result<(u32, Vec<(u32, u32)>)> {
        let (_, source) = self.folder(user, from)?;
        let (target_dir, target) = self.folder(user, to)?;
        // Never two folder locks at once: the source is listed, then released.
        let listed: Vec<(MessageInfo, PathBuf)> = {
            let mut index = source.lock().expect("folder lock");
            let synced = index.sync(false)?;
            let by_uid: HashMap<u32, &MessageInfo> = synced.messages.iter().map(|m| (m.uid, m)).collect();
            let mut out = Vec::new();
            for uid in uids {
                if let Some(message) = by_uid.get(uid) {
                    match index.path_of(message) {
                        Ok(path) => out.push(((*message).clone(), path)),
                        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                        Err(e) => return Err(e),
                    }
                }
            }
            out
        };
        let mut index = target.lock().expect("folder lock");
        let mut placed = Vec::new();
        for (message, path) in &listed {
            let sizes: String =
                message.id.split(',').skip(1).filter(|p| p.starts_with("S=") || p.starts_with("W=")).map(|p| format!(",{p}")).collect();
            let base = format!("{}{sizes}", self.unique_base());
            let info = index.info_for(&message.flags, "")?;
            let link = target_dir.join("cur").join(format!("{base}:2,{info}"));
            // A hard link shares the file (and its time, the INTERNALDATE); across file
            // systems, a copy with the same time.
            match fs::hard_link(path, &link) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(_) => {
                    let content = fs::read(path)?;
                    let mut file = File::create(&link)?;
                    file.write_all(&content)?;
                    file.set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(message.internal_date.max(0) as u64))?;
                    file.sync_all()?;
                }
            }
            placed.push((message.uid, base));
        }
        sync_dir(&target_dir.join("cur"))?;
        let bases: Vec<String> = placed.iter().map(|(_, b)| b.clone()).collect();
        let new_uids = index.adopt(&bases)?;
        let validity = index.uid_validity();
        drop(index);
        self.notify(&target_dir);
        if !placed.is_empty() {
            self.announce(user, MailboxEvent::New(to.to_string()));
        }
        Ok((validity, placed.iter().map(|(uid, _)| *uid).zip(new_uids).collect()))
    }

    pub(super) fn imap_expunge(&self, user: &str, mailbox: &str, uids: &[u32]) -> io::Result<()> {
        let (dir, folder) = self.folder(user, mailbox)?;
        folder.lock().expect("folder lock").expunge(uids)?;
        self.notify(&dir);
        if !uids.is_empty() {
            self.announce(user, MailboxEvent::Expunged(mailbox.to_string()));
        }
        Ok(())
    }

    pub(super) fn imap_fetch(&self, user: &str, mailbox: &str, message: &MessageInfo) -> io::Result<Vec<u8>> {
        let (dir, folder) = self.folder(user, mailbox)?;
        // Where it was listed, unless a reader renamed it since (then looked up by name).
        let content = match fs::read(dir.join(&message.location)) {
            Ok(content) => content,
            Err(e) if e.kind() == io::ErrorKind::NotFound => fs::read(folder.lock().expect("folder lock").path_of(message)?)?,
            Err(e) => return Err(e),
        };
        Ok(lf_to_crlf(&content))
    }

    /// The file where it was listed, read with `RWF_NOWAIT` (Linux 4.14): the kernel answers
    /// from the page cache or says it would wait. Opening it walks cached directory entries.
    pub(super) fn imap_fetch_cached(&self, user: &str, mailbox: &str, message: &MessageInfo) -> Option<Vec<u8>> {
        read_in_memory(&self.mailbox_dir(user, mailbox).ok()?.join(&message.location))
    }

    pub(super) fn imap_changes(&self, user: &str, mailbox: &str) -> tokio::sync::watch::Receiver<u64> {
        let dir = self.mailbox_dir(user, mailbox).unwrap_or_default();
        let mut watchers = self.folders.watchers.lock().expect("watchers lock");
        if let Some(sender) = watchers.get(&dir) {
            return sender.subscribe();
        }
        // A folder nobody watches any more (its sessions closed, or the SELECT that asked
        // failed: the name may not even exist) is forgotten, so the map holds at most one
        // entry per folder some session has selected now, whatever names clients try.
        watchers.retain(|_, sender| sender.receiver_count() > 0);
        let (sender, receiver) = tokio::sync::watch::channel(0);
        watchers.insert(dir, sender);
        receiver
    }

    pub(super) fn imap_events(&self, user: &str) -> tokio::sync::broadcast::Receiver<MailboxEvent> {
        let key = self.user_dir(user);
        let mut events = self.folders.events.lock().expect("events lock");
        if let Some(sender) = events.get(&key) {
            return sender.subscribe();
        }
        // Users nobody follows any more are forgotten, as folders are in `imap_changes`.
        events.retain(|_, sender| sender.receiver_count() > 0);
        let (sender, receiver) = tokio::sync::broadcast::channel(super::EVENTS_PER_USER);
        events.insert(key, sender);
        receiver
    }

    /// How many folders have a change counter (for tests of its bound).
    #[cfg(test)]
    pub(super) fn watched_folders(&self) -> usize {
        self.folders.watchers.lock().expect("watchers lock").len()
    }

    /// A new unique Maildir base name (before its `,S=,W=` sizes), for append and copy.
    fn unique_base(&self) -> String {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        format!("{}.M{}P{}Q{}.{}", now.as_secs(), now.subsec_micros(), std::process::id(), unique_suffix(), self.host())
    }
}

fn is_at_or_under(path: &Path, dir: &Path) -> bool {
    path.starts_with(dir)
}

/// A number unique in this process.
fn unique_suffix() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}
