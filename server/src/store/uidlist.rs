//! A folder's index, `wasmail-uidlist`: what IMAP needs that Maildir file names do not keep —
//! UIDs, UIDVALIDITY, internal dates, and mod-sequences (RFC 7162 CONDSTORE/QRESYNC): one per
//! message, raised whenever its flags change, and one per expunge, so that a client can ask
//! what changed and what vanished since a mod-sequence it saw.
//!
//! The file is a log, appended to (and fsync'd) before any client hears of what it records,
//! and rewritten whole (write, fsync, rename) when dead lines outnumber live ones:
//!
//! ```text
//! wasmail-uidlist 2 UIDVALIDITY NEXTUID HIGHESTMODSEQ
//! UID DATE MODSEQ BASE:2,INFO       a message: numbered, or its flags changed (a later line
//!                                   for the same BASE replaces the earlier)
//! - MODSEQ UID-SET                  messages expunged at MODSEQ (`3:5,9`)
//! ```
//!
//! INFO is the flag letters of the file name when the line was written: a file whose letters
//! differ was changed by another program (mutt, Dovecot, a POP3 session), and gets a new
//! mod-sequence when the folder is next listed. A torn last line (a crash mid-append) is
//! dropped: what it recorded was never reported, and the next listing finds that change again
//! and records it with a greater mod-sequence, so mod-sequences never go back. Compaction
//! merges the expunge lines into one, at the greatest of their mod-sequences: a client that
//! resynchronises from before it is told of every UID in it (RFC 7162 3.2.5.1 lets VANISHED
//! (EARLIER) name UIDs the client never knew), one after it of none.
//!
//! Version 1 files (`UID DATE BASE` lines, no mod-sequences) are read, their messages given
//! mod-sequence 1 and whatever flags the files have, and written again as version 2.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use wasmail_proto::imap::sequence;

use super::files::{base_name, sync_dir};

pub(super) const FILE: &str = "wasmail-uidlist";

/// What the index knows of one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Entry {
    pub uid: u32,
    /// INTERNALDATE, seconds since the epoch.
    pub date: i64,
    /// Raised whenever the message's flags change (RFC 7162 3.1.1).
    pub modseq: u64,
    /// The flag letters of the file when this entry was written; None when not known yet (an
    /// index of version 1): then the next listing takes the file's letters as they are.
    pub info: Option<String>,
}

/// The index of one folder, in memory, in step with its file.
#[derive(Debug)]
pub(super) struct Uidlist {
    /// The folder: the file is `dir/wasmail-uidlist`.
    dir: PathBuf,
    pub uid_validity: u32,
    pub next_uid: u32,
    /// The greatest mod-sequence given to anything in the folder (RFC 7162 3.1.2.1).
    pub highest_modseq: u64,
    /// Live messages by base name (hashed with foldhash: every listing of a changed folder
    /// looks up each of its files).
    pub entries: HashMap<String, Entry, foldhash::fast::RandomState>,
    /// Expunged UIDs (as ranges) with the mod-sequence of their expunge, oldest first.
    expunged: Vec<(u64, Vec<(u32, u32)>)>,
    /// Lines in the file, to know when rewriting it pays.
    lines: usize,
}

/// What reading the file found.
pub(super) enum Loaded {
    /// Read whole; `rewrite` when its last line was torn or it is of version 1.
    Read { list: Uidlist, rewrite: bool },
    /// No file.
    Missing,
    /// Not an index this server can trust: the UIDVALIDITY it had (or 0) and the time it was
    /// last written, in seconds, which a new UIDVALIDITY must pass.
    Damaged { uid_validity: u32, written: u32 },
}

impl Uidlist {
    /// An empty index with a new UIDVALIDITY, written durably.
    pub fn create(dir: &Path, uid_validity: u32) -> io::Result<Uidlist> {
        let mut list = Uidlist::empty(dir);
        list.uid_validity = uid_validity;
        list.compact()?;
        Ok(list)
    }

    fn empty(dir: &Path) -> Uidlist {
        Uidlist {
            dir: dir.to_path_buf(),
            uid_validity: 0,
            next_uid: 1,
            highest_modseq: 1,
            entries: HashMap::default(),
            expunged: Vec::new(),
            lines: 0,
        }
    }

    pub fn load(dir: &Path) -> io::Result<Loaded> {
        let text = match fs::read_to_string(dir.join(FILE)) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Loaded::Missing),
            Err(e) if e.kind() == io::ErrorKind::InvalidData => String::new(),
            Err(e) => return Err(e),
        };
        let mut list = Uidlist::empty(dir);
        match list.parse(&text) {
            Some(version) => {
                let torn = !text.is_empty() && !text.ends_with('\n');
                Ok(Loaded::Read { list, rewrite: torn || version == 1 })
            }
            None => {
                let written = fs::metadata(dir.join(FILE)).and_then(|m| m.modified()).ok();
                let written = written.and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok()).map_or(0, |d| d.as_secs());
                Ok(Loaded::Damaged { uid_validity: list.uid_validity, written: written.min(u32::MAX as u64) as u32 })
            }
        }
    }

    /// Reads the file's lines into `self`; the version, or None if the file is damaged
    /// (anything but a torn last line).
    fn parse(&mut self, text: &str) -> Option<u8> {
        let mut lines = text.split('\n');
        let header: Vec<&str> = lines.next().unwrap_or("").split(' ').collect();
        let version: u8 = match (header.first(), header.get(1)) {
            (Some(&"wasmail-uidlist"), Some(&"1")) if header.len() == 4 => 1,
            (Some(&"wasmail-uidlist"), Some(&"2")) if header.len() == 5 => 2,
            _ => return None,
        };
        self.uid_validity = header[2].parse().ok()?;
        self.next_uid = header[3].parse().ok()?;
        if version == 2 {
            self.highest_modseq = header[4].parse().ok()?;
        }
        let mut body: Vec<&str> = lines.collect();
        // Every append ends with its newline: a last line without one is a torn append, even
        // when what is left of it reads as a line (`1,3` cut from `1,30`). The text after the
        // last newline (empty for a whole file) is dropped.
        body.pop();
        for line in body {
            if version == 1 { self.read_v1(line) } else { self.read_line(line) }?;
            self.lines += 1;
        }
        // UIDs are never given twice: an expunged one has no later line. (Removed once, at
        // the end, so that a long expunge line costs a search per entry, not a pass.)
        let gone = merge(self.expunged.iter().flat_map(|(_, r)| r.iter().copied()).collect());
        if !gone.is_empty() {
            self.entries.retain(|_, e| !contains(&gone, e.uid));
        }
        Some(version)
    }

    fn read_v1(&mut self, line: &str) -> Option<()> {
        let mut fields = line.splitn(3, ' ');
        let (uid, date, base) = (fields.next()?.parse::<u32>().ok()?, fields.next()?.parse::<i64>().ok()?, fields.next()?);
        if uid == 0 || base.is_empty() {
            return None;
        }
        self.entries.insert(base.to_string(), Entry { uid, date, modseq: 1, info: None });
        self.next_uid = self.next_uid.max(uid.checked_add(1)?);
        Some(())
    }

    fn read_line(&mut self, line: &str) -> Option<()> {
        if let Some(rest) = line.strip_prefix("- ") {
            let (modseq, set) = rest.split_once(' ')?;
            let modseq: u64 = modseq.parse().ok()?;
            let ranges = parse_ranges(set)?;
            self.highest_modseq = self.highest_modseq.max(modseq);
            self.expunged.push((modseq, ranges));
            return Some(());
        }
        let mut fields = line.splitn(4, ' ');
        let uid = fields.next()?.parse::<u32>().ok()?;
        let date = fields.next()?.parse::<i64>().ok()?;
        let modseq = fields.next()?.parse::<u64>().ok()?;
        let name = fields.next()?;
        let (base, info) = name.rsplit_once(":2,")?;
        if uid == 0 || base.is_empty() || base_name(name) != base {
            return None;
        }
        self.entries.insert(base.to_string(), Entry { uid, date, modseq, info: Some(info.to_string()) });
        self.next_uid = self.next_uid.max(uid.checked_add(1)?);
        self.highest_modseq = self.highest_modseq.max(modseq);
        Some(())
    }

    /// Writes the index whole, durably: the live messages and one line of every expunged
    /// UID. Entries whose letters are not known yet are written with none: call it after a
    /// listing filled them in.
    pub fn compact(&mut self) -> io::Result<()> {
        let mut text = format!("wasmail-uidlist 2 {} {} {}\n", self.uid_validity, self.next_uid, self.highest_modseq);
        let mut entries: Vec<(&String, &Entry)> = self.entries.iter().collect();
        entries.sort_by_key(|(_, e)| e.uid);
        for (base, e) in &entries {
            text.push_str(&format!("{} {} {} {base}:2,{}\n", e.uid, e.date, e.modseq, e.info.as_deref().unwrap_or("")));
        }
        let mut lines = entries.len();
        if !self.expunged.is_empty() {
            let modseq = self.expunged.iter().map(|(m, _)| *m).max().unwrap_or(0);
            let merged = merge(self.expunged.drain(..).flat_map(|(_, r)| r).collect());
            text.push_str(&format!("- {modseq} {}\n", sequence::write(&merged)));
            self.expunged = vec![(modseq, merged)];
            lines += 1;
        }
        let tmp = self.dir.join(format!("{FILE}.tmp"));
        let mut file = File::create(&tmp)?;
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
        fs::rename(&tmp, self.dir.join(FILE))?;
        sync_dir(&self.dir)?;
        self.lines = lines;
        Ok(())
    }

    /// Rewrites the file when dead lines (replaced entries, expunges) outnumber live ones.
    pub fn compact_if_worth_it(&mut self) -> io::Result<()> {
        if self.lines > 64 && self.lines > 2 * (self.entries.len() + 1) {
            self.compact()?;
        }
        Ok(())
    }

    fn append(&mut self, text: &str, lines: usize) -> io::Result<()> {
        let mut file = File::options().append(true).open(self.dir.join(FILE))?;
        file.write_all(text.as_bytes())?;
        file.sync_data()?;
        self.lines += lines;
        Ok(())
    }

    fn next_modseq(&mut self) -> u64 {
        self.highest_modseq += 1;
        self.highest_modseq
    }

    /// Numbers messages seen for the first time — `(base, date, letters)` — in the order
    /// given, with one new mod-sequence, durably.
    pub fn add(&mut self, new: &[(String, i64, String)]) -> io::Result<()> {
        if new.is_empty() {
            return Ok(());
        }
        let modseq = self.next_modseq();
        let mut text = String::new();
        for (base, date, info) in new {
            let uid = self.next_uid;
            self.next_uid += 1;
            self.entries.insert(base.clone(), Entry { uid, date: *date, modseq, info: Some(info.clone()) });
            text.push_str(&format!("{uid} {date} {modseq} {base}:2,{info}\n"));
        }
        self.append(&text, new.len())
    }

    /// Records new flag letters of messages — `(base, letters)` — under one new
    /// mod-sequence, durably; returns it. Bases the index does not hold are skipped.
    pub fn set_flags(&mut self, changed: &[(String, String)]) -> io::Result<u64> {
        let modseq = self.next_modseq();
        let mut text = String::new();
        let mut lines = 0;
        for (base, info) in changed {
            let Some(entry) = self.entries.get_mut(base) else { continue };
            entry.modseq = modseq;
            entry.info = Some(info.clone());
            let _ = writeln!(text, "{} {} {modseq} {base}:2,{info}", entry.uid, entry.date);
            lines += 1;
        }
        if lines > 0 {
            self.append(&text, lines)?;
        }
        Ok(modseq)
    }

    /// Takes in the letters of entries that had none (read from a version 1 index) without a
    /// new mod-sequence: nothing changed, the index just did not say.
    pub fn learn_flags(&mut self, base: &str, info: &str) {
        if let Some(entry) = self.entries.get_mut(base) {
            entry.info.get_or_insert_with(|| info.to_string());
        }
    }

    /// Records messages as expunged, under one new mod-sequence, durably. Bases the index
    /// does not hold are skipped.
    pub fn expunge(&mut self, bases: &[&str]) -> io::Result<()> {
        let uids: Vec<u32> = bases.iter().filter_map(|b| self.entries.remove(*b)).map(|e| e.uid).collect();
        if uids.is_empty() {
            return Ok(());
        }
        let ranges = merge(uids.into_iter().map(|u| (u, u)).collect());
        let modseq = self.next_modseq();
        let text = format!("- {modseq} {}\n", sequence::write(&ranges));
        self.expunged.push((modseq, ranges));
        self.append(&text, 1)
    }

    /// The UIDs expunged after mod-sequence `since`, as ascending ranges that do not touch:
    /// every UID expunged since is in them, and possibly some expunged earlier (merged by a
    /// compaction), never a UID that exists.
    pub fn expunged_since(&self, since: u64) -> Vec<(u32, u32)> {
        merge(self.expunged.iter().filter(|(m, _)| *m > since).flat_map(|(_, r)| r.iter().copied()).collect())
    }
}

/// Sorts ranges and joins those that overlap or touch.
fn merge(mut ranges: Vec<(u32, u32)>) -> Vec<(u32, u32)> {
    ranges.sort_unstable();
    let mut out: Vec<(u32, u32)> = Vec::with_capacity(ranges.len());
    for (low, high) in ranges {
        match out.last_mut() {
            Some(last) if low <= last.1.saturating_add(1) => last.1 = last.1.max(high),
            _ => out.push((low, high)),
        }
    }
    out
}

/// Whether merged, ascending `ranges` hold `uid`.
fn contains(ranges: &[(u32, u32)], uid: u32) -> bool {
    let i = ranges.partition_point(|&(_, high)| high < uid);
    ranges.get(i).is_some_and(|&(low, _)| low <= uid)
}

fn parse_ranges(text: &str) -> Option<Vec<(u32, u32)>> {
    let mut out = Vec::new();
    for part in text.split(',') {
        let (low, high) = match part.split_once(':') {
            Some((l, h)) => (l.parse().ok()?, h.parse().ok()?),
            None => {
                let n = part.parse().ok()?;
                (n, n)
            }
        };
        if low == 0 || low > high {
            return None;
        }
        out.push((low, high));
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(dir: &Path) -> Uidlist {
        match Uidlist::load(dir).unwrap() {
            Loaded::Read { list, .. } => list,
            _ => panic!("not read"),
        }
    }

    #[test]
    fn mod_sequences_survive_a_reload_and_a_compaction() {
        let tmp = tempfile::tempdir().unwrap();
        let mut list = Uidlist::create(tmp.path(), 7).unwrap();
        list.add(&[("a".into(), 10, "".into()), ("b".into(), 11, "S".into()), ("c".into(), 12, "".into())]).unwrap();
        assert_eq!(list.highest_modseq, 2);
        assert_eq!(list.set_flags(&[("b".into(), "RS".into())]).unwrap(), 3);
        list.expunge(&["a", "c"]).unwrap();
        assert_eq!(list.expunged_since(3), [(1, 1), (3, 3)]);
        assert!(list.expunged_since(4).is_empty());
        for round in 0..2 {
            let again = load(tmp.path());
            assert_eq!((again.uid_validity, again.next_uid, again.highest_modseq), (7, 4, 4), "round {round}");
            assert_eq!(again.entries["b"], Entry { uid: 2, date: 11, modseq: 3, info: Some("RS".into()) });
            assert_eq!(again.entries.len(), 1);
            assert_eq!(again.expunged_since(0), [(1, 1), (3, 3)]);
            list.compact().unwrap();
        }
        assert_eq!(fs::read_to_string(tmp.path().join(FILE)).unwrap(), "wasmail-uidlist 2 7 4 4\n2 11 3 b:2,RS\n- 4 1,3\n");
    }

    #[test]
    fn a_torn_line_is_dropped_and_a_version_1_index_is_read() {
        let tmp = tempfile::tempdir().unwrap();
        let mut list = Uidlist::create(tmp.path(), 7).unwrap();
        list.add(&[("a".into(), 10, "".into())]).unwrap();
        let mut text = fs::read_to_string(tmp.path().join(FILE)).unwrap();
        text.push_str("1 10 9 a:2,S");
        fs::write(tmp.path().join(FILE), &text).unwrap();
        let Loaded::Read { list, rewrite: true } = Uidlist::load(tmp.path()).unwrap() else { panic!() };
        assert_eq!((list.highest_modseq, list.entries["a"].modseq), (2, 2), "the torn line's mod-sequence was never seen");
        fs::write(tmp.path().join(FILE), "wasmail-uidlist 1 5 9\n3 10 a.b.c\n").unwrap();
        let Loaded::Read { list, rewrite: true } = Uidlist::load(tmp.path()).unwrap() else { panic!() };
        assert_eq!(list.entries["a.b.c"], Entry { uid: 3, date: 10, modseq: 1, info: None });
        assert_eq!((list.uid_validity, list.next_uid), (5, 9));
        for damaged in ["garbage\n", "wasmail-uidlist 2 5 9 1\n1 2 3\n2 3 4 x:2,\n", "wasmail-uidlist 2 5 9 1\n- 3 0:4\n1 2 3 x:2,\n"] {
            fs::write(tmp.path().join(FILE), damaged).unwrap();
            assert!(matches!(Uidlist::load(tmp.path()).unwrap(), Loaded::Damaged { .. }), "{damaged:?}");
        }
    }
}
