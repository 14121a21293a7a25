//! Maildir++ (the layout Dovecot and mutt read): one tree per user under
//! `DATA_DIR/mail/USER/` with `tmp/`, `new/` and `cur/`.
//!
//! Delivery follows the Maildir protocol: write the file in `tmp/`, fsync it, rename it into
//! `new/`, fsync `new/`. Readers never see a partial file, and once `deliver` returns the file
//! and its name are on disk. Files are stored with LF line ends, as Postfix's local(8) and
//! Dovecot's LDA write them; the name carries `S=` (file size) and `W=` (size with CRLF line
//! ends, what POP3 and IMAP report) as Dovecot does, so sizes need no reading.

use std::collections::HashSet;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::files::{bare_lf_count, base_name, create_dir_durably, crlf_size_in, crlf_size_of, crlf_to_lf, lf_to_crlf, read_in_memory, sync_dir};
use super::folder::Folders;
use super::{Delivered, DeliveryKey, FlagChange, Flags, FlagsChanged, Listed, MailStore, MailboxEvent, MessageInfo, NewMessage, Synced, Usage};

pub struct Maildir {
    /// `DATA_DIR/mail`: one folder per user below it.
    root: PathBuf,
    /// This host's name as it may appear in a file name (`/` and `:` escaped per the Maildir
    /// convention).
    host: String,
    /// Users whose `tmp/new/cur` are known to exist, to skip the checks on every delivery.
    ready: Mutex<HashSet<String>>,
    /// IMAP's per-folder indexes and watchers.
    pub(super) folders: Folders,
}

impl Maildir {
    pub fn new(data_dir: &Path, hostname: &str) -> io::Result<Maildir> {
        let root = data_dir.join("mail");
        create_dir_durably(&root)?;
        Ok(Maildir {
            root,
            host: hostname.replace('/', "\\057").replace(':', "\\072"),
            ready: Mutex::new(HashSet::new()),
            folders: Folders::default(),
        })
    }

    /// The folder of a user's inbox.
    pub fn user_dir(&self, user: &str) -> PathBuf {
        self.root.join(user)
    }

    /// This host's name as file names carry it.
    pub(super) fn host(&self) -> &str {
        &self.host
    }

    /// The folder of a user's inbox, after checking the name cannot leave the root.
    pub(super) fn checked_user_dir(&self, user: &str) -> io::Result<PathBuf> {
        // The directory layer validated the name; check again, since this builds a path.
        if user.is_empty() || user.starts_with('.') || user.contains(['/', '\0']) {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("bad mailbox name {user:?}")));
        }
        Ok(self.user_dir(user))
    }

    pub(super) fn ensure_user(&self, user: &str) -> io::Result<PathBuf> {
        let dir = self.checked_user_dir(user)?;
        if self.ready.lock().expect("maildir lock").contains(user) {
            return Ok(dir);
        }
        create_dir_durably(&dir)?;
        for sub in ["tmp", "new", "cur"] {
            create_dir_durably(&dir.join(sub))?;
        }
        self.ready.lock().expect("maildir lock").insert(user.to_string());
        Ok(dir)
    }

    /// A folder of a mailbox, Maildir++ style: `Lists/rust` is `USER/.Lists.rust/` with its
    /// own `tmp`, `new`, `cur` and a `maildirfolder` marker, as Dovecot lays them out.
    fn ensure_folder(&self, user: &str, user_dir: &Path, folder: &str) -> io::Result<PathBuf> {
        if !super::valid_folder(folder) {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("bad folder name {folder:?}")));
        }
        let dir = user_dir.join(super::names::dir_name(folder).expect("a folder is not INBOX"));
        if !dir.join("cur").is_dir() {
            create_dir_durably(&dir)?;
            for sub in ["tmp", "new", "cur"] {
                create_dir_durably(&dir.join(sub))?;
            }
            File::create(dir.join("maildirfolder"))?;
            self.announce(user, MailboxEvent::Created(folder.to_string()));
        }
        Ok(dir)
    }

    /// The file name of a keyed delivery, before its `,S=...,W=...` sizes: the arrival time
    /// first, as Maildir names begin.
    fn unique_name(&self, key: &DeliveryKey) -> String {
        format!("{}.{}.{}", key.time, key.key, self.host)
    }

    /// The name of a message already stored under `unique`, in `new/` or `cur/` (where a
    /// reader may have moved it, adding `:2,FLAGS`). A copy shorter than the `S=` its name
    /// gives (a crash came before its data reached the disk) is removed, and not found.
    fn find(dir: &Path, unique: &str) -> io::Result<Option<String>> {
        for sub in ["new", "cur"] {
            for entry in fs::read_dir(dir.join(sub))? {
                let entry = entry?;
                let name = entry.file_name().to_string_lossy().into_owned();
                let rest = name.strip_prefix(unique);
                if rest.is_some_and(|r| r.is_empty() || r.starts_with(',') || r.starts_with(':')) {
                    let promised = base_name(&name).split(',').find_map(|p| p.strip_prefix("S=")?.parse::<u64>().ok());
                    if promised.is_some_and(|size| entry.metadata().map(|m| m.len()).unwrap_or(0) != size) {
                        tracing::warn!(file = %entry.path().display(), "a copy cut short by a crash; stored again");
                        fs::remove_file(entry.path())?;
                        return Ok(None);
                    }
                    return Ok(Some(name));
                }
            }
        }
        Ok(None)
    }

    /// One try of [`MailStore::deliver`].
    fn deliver_once(&self, user: &str, folder: Option<&str>, key: &DeliveryKey, pieces: &[&[u8]], check: bool, sync: bool) -> io::Result<Delivered> {
        if key.key.is_empty() || !key.key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("bad delivery key {:?}", key.key)));
        }
        let mut dir = self.ensure_user(user)?;
        if let Some(folder) = folder {
            dir = self.ensure_folder(user, &dir, folder)?;
        }
        let unique = self.unique_name(key);
        if check {
            if let Some(existing) = Self::find(&dir, &unique)? {
                return Ok(Delivered { id: existing });
            }
        }
        let tmp = dir.join("tmp").join(&unique);
        let result = (|| {
            // A file left in tmp/ by an attempt that crashed is ours to overwrite.
            let mut file = File::options().write(true).create(true).truncate(true).open(&tmp)?;
            let mut writer = io::BufWriter::with_capacity(64 * 1024, &mut file);
            let (mut size, mut lines, mut last) = (0u64, 0u64, 0u8);
            for piece in pieces {
                for chunk in crlf_to_lf(piece) {
                    writer.write_all(chunk)?;
                    size += chunk.len() as u64;
                    lines += bare_lf_count(chunk, last);
                    last = chunk.last().copied().unwrap_or(last);
                }
            }
            writer.flush()?;
            drop(writer);
            if sync {
                file.sync_all()?;
            }
            let name = format!("{unique},S={size},W={}", size + lines);
            fs::rename(&tmp, dir.join("new").join(&name))?;
            if sync {
                sync_dir(&dir.join("new"))?;
            }
            self.notify(&dir);
            self.announce(user, MailboxEvent::New(folder.unwrap_or("INBOX").to_string()));
            Ok(Delivered { id: name })
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result
    }
}

impl MailStore for Maildir {
    fn deliver(&self, user: &str, folder: Option<&str>, key: &DeliveryKey, pieces: &[&[u8]], check: bool, sync: bool) -> io::Result<Delivered> {
        match self.deliver_once(user, folder, key, pieces, check, sync) {
            // An operator removed the mailbox (or its tmp/new/cur) since this process made
            // it: make it again, durably, rather than fail every delivery until a restart.
            Err(e) if e.kind() == io::ErrorKind::NotFound && self.ready.lock().expect("maildir lock").remove(user) => {
                tracing::warn!(user, "the mailbox folder was gone; making it again");
                self.deliver_once(user, folder, key, pieces, check, sync)
            }
            result => result,
        }
    }

    /// One `syncfs` of the file system the mailboxes are on: every file and folder written
    /// since, whatever the number of copies (it also flushes other programs' writes to that
    /// file system, which a mail server's data disk seldom has many of).
    fn sync_deliveries(&self) -> io::Result<()> {
        rustix::fs::syncfs(File::open(&self.root)?)?;
        Ok(())
    }

    fn list(&self, user: &str) -> io::Result<Vec<Listed>> {
        let mut out = Vec::new();
        each_message(&self.user_dir(user), |sub, name, size| {
            out.push(Listed { id: base_name(name).to_string(), size, location: format!("{sub}/{name}") });
        })?;
        // Maildir names start with the arrival time: name order is arrival order.
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }

    fn read(&self, user: &str, message: &Listed) -> io::Result<Vec<u8>> {
        Ok(lf_to_crlf(&fs::read(self.locate(user, message)?)?))
    }

    fn read_cached(&self, user: &str, message: &Listed) -> Option<Vec<u8>> {
        read_in_memory(&self.user_dir(user).join(&message.location))
    }

    fn remove(&self, user: &str, messages: &[Listed]) -> io::Result<()> {
        let dir = self.user_dir(user);
        for message in messages {
            match self.locate(user, message) {
                Ok(path) => match fs::remove_file(&path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e),
                },
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        for sub in ["new", "cur"] {
            if dir.join(sub).is_dir() {
                sync_dir(&dir.join(sub))?;
            }
        }
        self.notify(&dir);
        if !messages.is_empty() {
            self.announce(user, MailboxEvent::Expunged("INBOX".to_string()));
        }
        Ok(())
    }

    fn open_user(&self, user: &str) -> io::Result<()> {
        self.imap_open_user(user)
    }

    fn mailboxes(&self, user: &str) -> io::Result<Vec<String>> {
        self.imap_mailboxes(user)
    }

    fn create_mailbox(&self, user: &str, name: &str) -> io::Result<()> {
        self.imap_create(user, name)
    }

    fn delete_mailbox(&self, user: &str, name: &str) -> io::Result<()> {
        self.imap_delete(user, name)
    }

    fn rename_mailbox(&self, user: &str, from: &str, to: &str) -> io::Result<()> {
        self.imap_rename(user, from, to)
    }

    fn subscriptions(&self, user: &str) -> io::Result<Vec<String>> {
        self.imap_subscriptions(user)
    }

    fn set_subscribed(&self, user: &str, name: &str, subscribed: bool) -> io::Result<()> {
        self.imap_set_subscribed(user, name, subscribed)
    }

    fn sync(&self, user: &str, mailbox: &str, claim_recent: bool) -> io::Result<Synced> {
        self.imap_sync(user, mailbox, claim_recent)
    }

    fn sync_unchanged(&self, user: &str, mailbox: &str, claim_recent: bool) -> Option<Synced> {
        self.imap_sync_unchanged(user, mailbox, claim_recent)
    }

    fn change_flags(
        &self,
        user: &str,
        mailbox: &str,
        uids: &[u32],
        change: FlagChange,
        flags: &Flags,
        unchanged_since: Option<u64>,
    ) -> io::Result<FlagsChanged> {
        self.imap_change_flags(user, mailbox, uids, change, flags, unchanged_since)
    }

    /// Counted from the file names (`W=`, else the file's size counted): a `readdir` of each
    /// folder, no file opened for names that carry their size.
    fn usage(&self, user: &str) -> io::Result<Usage> {
        let root = self.checked_user_dir(user)?;
        let mut usage = Usage::default();
        let mut folders = vec![root.clone()];
        match fs::read_dir(&root) {
            Ok(entries) => {
                for entry in entries {
                    let entry = entry?;
                    let name = entry.file_name().to_string_lossy().into_owned();
                    // Maildir++ folders are `.Name`; `..deleted*` is a DELETE under way.
                    if name.starts_with('.') && !name.starts_with("..") && entry.path().join("cur").is_dir() {
                        folders.push(entry.path());
                    }
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(usage),
            Err(e) => return Err(e),
        }
        for folder in folders {
            each_message(&folder, |_, _, size| {
                usage.octets += size;
                usage.messages += 1;
            })?;
        }
        Ok(usage)
    }

    fn expunged_since(&self, user: &str, mailbox: &str, since: u64) -> io::Result<Vec<(u32, u32)>> {
        self.imap_expunged_since(user, mailbox, since)
    }

    fn append(&self, user: &str, mailbox: &str, messages: &[NewMessage]) -> io::Result<(u32, Vec<u32>)> {
        self.imap_append(user, mailbox, messages)
    }

    fn copy(&self, user: &str, from: &str, uids: &[u32], to: &str) -> io::Result<(u32, Vec<(u32, u32)>)> {
        self.imap_copy(user, from, uids, to)
    }

    fn expunge(&self, user: &str, mailbox: &str, uids: &[u32]) -> io::Result<()> {
        self.imap_expunge(user, mailbox, uids)
    }

    fn fetch(&self, user: &str, mailbox: &str, message: &MessageInfo) -> io::Result<Vec<u8>> {
        self.imap_fetch(user, mailbox, message)
    }

    fn fetch_cached(&self, user: &str, mailbox: &str, message: &MessageInfo) -> Option<Vec<u8>> {
        self.imap_fetch_cached(user, mailbox, message)
    }

    fn changes(&self, user: &str, mailbox: &str) -> tokio::sync::watch::Receiver<u64> {
        self.imap_changes(user, mailbox)
    }

    fn events(&self, user: &str) -> tokio::sync::broadcast::Receiver<MailboxEvent> {
        self.imap_events(user)
    }
}

impl Maildir {
    /// The file of a listed message: where it was listed, else wherever it moved.
    fn locate(&self, user: &str, message: &Listed) -> io::Result<PathBuf> {
        super::folder::locate(&self.user_dir(user), &message.location, &message.id)
    }
}

/// Calls `f` with the sub-folder (`new` or `cur`), name and CRLF size of every message file
/// of the Maildir folder `dir`: the size from the name's `W=`, else counted (a file another
/// program put there). A file gone between the listing and the count is skipped.
fn each_message(dir: &Path, mut f: impl FnMut(&str, &str, u64)) -> io::Result<()> {
    for sub in ["new", "cur"] {
        let entries = match fs::read_dir(dir.join(sub)) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        for entry in entries {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') {
                continue;
            }
            let size = match crlf_size_in(&name) {
                Some(size) => size,
                None => match crlf_size_of(&entry.path()) {
                    Ok(size) => size,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(e),
                },
            };
            f(sub, &name, size);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_removed_mailbox_is_made_again_at_the_next_delivery() {
        let dir = tempfile::tempdir().unwrap();
        let store = Maildir::new(dir.path(), "mx").unwrap();
        store.deliver("tyler", None, &DeliveryKey { key: "Q1-0".into(), time: 1 }, &[b"first\r\n"], false, true).unwrap();
        fs::remove_dir_all(dir.path().join("mail/tyler")).unwrap();
        let d = store.deliver("tyler", None, &DeliveryKey { key: "Q2-0".into(), time: 1 }, &[b"second\r\n"], true, true).unwrap();
        assert!(dir.path().join("mail/tyler/new").join(&d.id).is_file());
        for sub in ["tmp", "cur"] {
            assert!(dir.path().join("mail/tyler").join(sub).is_dir(), "{sub}");
        }
    }

    #[test]
    fn a_small_message_in_memory_is_read_without_the_blocking_pool_and_a_large_one_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let store = Maildir::new(dir.path(), "mx").unwrap();
        let small = b"Subject: small\r\n\r\nbody\r\n".to_vec();
        let large = [b"Subject: large\r\n\r\n".to_vec(), vec![b'x'; 200 * 1024]].concat();
        for (n, content) in [&small, &large].into_iter().enumerate() {
            store.deliver("tyler", None, &DeliveryKey { key: format!("Q{n}-0"), time: 1 }, &[content], false, true).unwrap();
        }
        let synced = store.imap_sync("tyler", "INBOX", false).unwrap();
        let (first, second) = (&synced.messages[0], &synced.messages[1]);
        // Just written, so in the page cache: read in CRLF form, as fetch reads it.
        assert_eq!(store.fetch_cached("tyler", "INBOX", first).unwrap(), store.fetch("tyler", "INBOX", first).unwrap());
        assert_eq!(store.fetch_cached("tyler", "INBOX", first).unwrap(), small);
        assert!(store.fetch_cached("tyler", "INBOX", second).is_none(), "over IN_MEMORY_MAX");
        // Moved since it was listed: the blocking path looks for it.
        fs::remove_file(dir.path().join("mail/tyler").join(&first.location)).unwrap();
        assert!(store.fetch_cached("tyler", "INBOX", first).is_none());
    }

    #[test]
    fn change_counters_are_kept_only_while_watched() {
        let dir = tempfile::tempdir().unwrap();
        let store = Maildir::new(dir.path(), "mx").unwrap();
        let inbox = store.imap_changes("tyler", "INBOX");
        // SELECTs of names that do not exist: each asks for a counter, then drops it.
        for n in 0..1000 {
            drop(store.imap_changes("tyler", &format!("missing-{n}")));
        }
        assert!(store.watched_folders() <= 2, "{} counters kept", store.watched_folders());
        // The watched one is still the one deliveries wake.
        let again = store.imap_changes("tyler", "INBOX");
        assert!(inbox.same_channel(&again));
    }

    #[test]
    fn event_channels_are_kept_only_while_followed_and_tell_what_happened() {
        let dir = tempfile::tempdir().unwrap();
        let store = Maildir::new(dir.path(), "mx").unwrap();
        let mut events = store.imap_events("tyler");
        // Logins that follow a user for a moment: each channel goes with its last receiver.
        for n in 0..1000 {
            drop(store.imap_events(&format!("user{n}")));
        }
        assert!(store.folders.events.lock().unwrap().len() <= 2);
        store.imap_create("tyler", "a/b").unwrap();
        store.imap_rename("tyler", "a", "c").unwrap();
        store.imap_set_subscribed("tyler", "c/b", true).unwrap();
        let key = DeliveryKey { key: "Q1-0".into(), time: 1 };
        store.deliver("tyler", None, &key, &[b"a: b\r\n\r\nbody\r\n"], false, true).unwrap();
        let mut told = Vec::new();
        while let Ok(event) = events.try_recv() {
            told.push(event);
        }
        let name = |s: &str| s.to_string();
        assert_eq!(
            told,
            [
                MailboxEvent::Created(name("a")),
                MailboxEvent::Created(name("a/b")),
                MailboxEvent::Renamed { from: name("a"), to: name("c") },
                MailboxEvent::Renamed { from: name("a/b"), to: name("c/b") },
                MailboxEvent::Subscribed { name: name("c/b"), subscribed: true },
                MailboxEvent::New(name("INBOX")),
            ]
        );
    }

    #[test]
    fn a_copy_cut_short_by_a_crash_is_stored_again_by_the_check() {
        let dir = tempfile::tempdir().unwrap();
        let store = Maildir::new(dir.path(), "mx").unwrap();
        let key = DeliveryKey { key: "Q1-0".into(), time: 1 };
        // Stored without its own fsync; then a power loss keeps the name but not the data.
        let d = store.deliver("tyler", None, &key, &[b"Subject: x\r\n\r\nbody\r\n"], false, false).unwrap();
        let path = dir.path().join("mail/tyler/new").join(&d.id);
        fs::write(&path, b"").unwrap();
        let again = store.deliver("tyler", None, &key, &[b"Subject: x\r\n\r\nbody\r\n"], true, true).unwrap();
        assert_eq!(fs::read(dir.path().join("mail/tyler/new").join(&again.id)).unwrap(), b"Subject: x\n\nbody\n");
        assert_eq!(fs::read_dir(dir.path().join("mail/tyler/new")).unwrap().count(), 1);
        store.sync_deliveries().unwrap();
    }

    #[test]
    fn w_is_the_size_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let store = Maildir::new(dir.path(), "mx").unwrap();
        let key = DeliveryKey { key: "Q1-0".into(), time: 1 };
        // Split so that a CR ends one piece and its LF starts the next.
        let d = store.deliver("tyler", None, &key, &[b"a: b\r\r\n\r", b"\nbody\r\r\nend\r\n"], false, true).unwrap();
        let stored = fs::read(dir.path().join("mail/tyler/new").join(&d.id)).unwrap();
        let read_back = lf_to_crlf(&stored);
        assert!(d.id.ends_with(&format!(",S={},W={}", stored.len(), read_back.len())), "{} for {:?}", d.id, read_back);
    }

    #[test]
    fn delivers_into_new_with_sizes_in_the_name() {
        let dir = tempfile::tempdir().unwrap();
        let store = Maildir::new(dir.path(), "mx/1:2").unwrap();
        let key = |k: &str| DeliveryKey { key: k.into(), time: 1_800_000_000 };
        let d = store.deliver("tyler", None, &key("Q1-0"), &[b"Return-Path: <>\r\n", b"Subject: hi\r\n\r\nbody\r\n"], false, true).unwrap();
        let path = dir.path().join("mail/tyler/new").join(&d.id);
        let content = fs::read(&path).unwrap();
        assert_eq!(content, b"Return-Path: <>\nSubject: hi\n\nbody\n");
        assert!(d.id.ends_with(&format!(",S={},W={}", content.len(), content.len() + 4)), "{}", d.id);
        assert!(d.id.contains("mx\\0571\\0722"), "{}", d.id);
        assert!(dir.path().join("mail/tyler/cur").is_dir());
        assert_eq!(fs::read_dir(dir.path().join("mail/tyler/tmp")).unwrap().count(), 0);
        assert!(d.id.starts_with("1800000000.Q1-0."), "{}", d.id);
        let second = store.deliver("tyler", None, &key("Q2-0"), &[b"x\r\n"], false, true).unwrap();
        assert_ne!(second.id, d.id);
        // A checked delivery of a key already stored (also after a reader moved it to cur/)
        // stores nothing.
        assert_eq!(store.deliver("tyler", None, &key("Q1-0"), &[b"other\r\n"], true, true).unwrap(), d);
        let new = dir.path().join("mail/tyler/new");
        fs::rename(new.join(&second.id), dir.path().join("mail/tyler/cur").join(format!("{}:2,S", second.id))).unwrap();
        assert_eq!(store.deliver("tyler", None, &key("Q2-0"), &[b"x\r\n"], true, true).unwrap().id, format!("{}:2,S", second.id));
        assert_eq!(fs::read_dir(&new).unwrap().count(), 1);
        // A key that only shares a prefix is another message.
        assert_ne!(store.deliver("tyler", None, &key("Q1"), &[b"x\r\n"], true, true).unwrap(), d);
    }

    #[test]
    fn refuses_names_that_escape_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let store = Maildir::new(dir.path(), "mx").unwrap();
        let key = DeliveryKey { key: "Q1-0".into(), time: 1 };
        assert!(store.deliver("../x", None, &key, &[b"x"], false, true).is_err());
        assert!(store.deliver(".hidden", None, &key, &[b"x"], false, true).is_err());
        assert!(store.deliver("tyler", None, &DeliveryKey { key: "../../x".into(), time: 1 }, &[b"x"], false, true).is_err());
        assert!(store.deliver("tyler", Some("../../etc"), &key, &[b"x"], false, true).is_err());
        assert!(store.deliver("tyler", Some(".hidden"), &key, &[b"x"], false, true).is_err());
        let d = store.deliver("tyler", Some("Lists/rust users"), &key, &[b"x\r\n"], false, true).unwrap();
        assert!(dir.path().join("mail/tyler/.Lists.rust users/new").join(&d.id).is_file());
        assert!(dir.path().join("mail/tyler/.Lists.rust users/maildirfolder").is_file());
    }

    #[test]
    fn failure_leaves_nothing_visible() {
        let dir = tempfile::tempdir().unwrap();
        let store = Maildir::new(dir.path(), "mx").unwrap();
        store.deliver("tyler", None, &DeliveryKey { key: "Q1-0".into(), time: 1 }, &[b"first\r\n"], false, true).unwrap();
        // Make new/ a file so that the rename fails after the content was written.
        let new = dir.path().join("mail/tyler/new");
        fs::remove_dir_all(&new).unwrap();
        fs::write(&new, b"").unwrap();
        assert!(store.deliver("tyler", None, &DeliveryKey { key: "Q2-0".into(), time: 1 }, &[b"second\r\n"], false, true).is_err());
        assert_eq!(fs::read_dir(dir.path().join("mail/tyler/tmp")).unwrap().count(), 0);
    }
}
