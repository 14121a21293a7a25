//! ENVELOPE, BODY and BODYSTRUCTURE as rendered, and the keys SORT and THREAD compare, per
//! message: what Dovecot keeps in its cache file. Clients fetch them for every message on every sync, and a message never changes, so
//! after the first FETCH they cost no file read and no parse. In memory and bounded: two
//! generations of at most [`GENERATION`] entries each; a full current generation becomes the
//! previous one (and the old previous is dropped), so what is used stays and the rest ages out.
//!
//! Entries are filed by mailbox (user and name), then by UID: a UID names one message content
//! for as long as the mailbox keeps its UIDVALIDITY, and a mailbox whose UIDVALIDITY changed
//! (deleted and created again) starts empty. SORT and THREAD look up every message of a
//! mailbox: the mailbox is found once, then each message by a number, not by a string.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use super::fields::Fields;
use super::structure::Parsed;

/// Entries per generation (about 600 octets each for ordinary messages).
const GENERATION: usize = 25_000;

/// The structure of one message, rendered, and its sort keys.
pub struct Rendered {
    pub envelope: Vec<u8>,
    pub body: Vec<u8>,
    pub bodystructure: Vec<u8>,
    pub fields: Fields,
}

impl Rendered {
    pub fn of(parsed: &Parsed<'_>) -> Rendered {
        let mut rendered = Rendered { envelope: Vec::new(), body: Vec::new(), bodystructure: Vec::new(), fields: Fields::of(parsed) };
        parsed.envelope_into(&mut rendered.envelope);
        parsed.structure_into(&mut rendered.body, false);
        parsed.structure_into(&mut rendered.bodystructure, true);
        rendered
    }
}

/// Seeded with foldhash: the keys are short, and std's SipHash was a fifth of THREAD's time.
type Map<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// One mailbox's entries: the current generation and the previous one.
#[derive(Default)]
struct Mailbox {
    uid_validity: u32,
    current: Map<u32, Arc<Rendered>>,
    previous: Map<u32, Arc<Rendered>>,
}

#[derive(Default)]
pub struct StructureCache {
    /// By `user\0mailbox` (NUL is in neither).
    mailboxes: Mutex<Map<String, Arc<Mutex<Mailbox>>>>,
    /// Entries put in a current generation since the generations last turned.
    fresh: AtomicUsize,
}

/// Lookups in one mailbox (SORT and THREAD look up every message of a mailbox, FETCH a range).
pub struct Lookup<'a> {
    cache: &'a StructureCache,
    /// `user\0mailbox`.
    key: String,
    /// The mailbox's entries: found, or made by the first put (a lookup that finds nothing
    /// and puts nothing, as a FETCH of flags, leaves nothing behind).
    mailbox: Option<Arc<Mutex<Mailbox>>>,
    /// The UIDVALIDITY the UIDs belong to: should another session see the mailbox created
    /// again meanwhile (and empty its entry), this lookup finds and puts nothing.
    uid_validity: u32,
}

impl Lookup<'_> {
    pub fn get(&mut self, uid: u32) -> Option<Arc<Rendered>> {
        let mut mailbox = self.mailbox.as_ref()?.lock().expect("cache lock");
        if mailbox.uid_validity != self.uid_validity {
            return None;
        }
        if let Some(found) = mailbox.current.get(&uid) {
            return Some(Arc::clone(found));
        }
        // Used again: back into the current generation.
        let found = mailbox.previous.remove(&uid)?;
        mailbox.current.insert(uid, Arc::clone(&found));
        drop(mailbox);
        self.cache.added();
        Some(found)
    }

    pub fn put(&mut self, uid: u32, rendered: Arc<Rendered>) {
        let entry = match &self.mailbox {
            Some(entry) => Arc::clone(entry),
            None => {
                let entry = self.cache.make(&self.key, self.uid_validity);
                self.mailbox = Some(Arc::clone(&entry));
                entry
            }
        };
        let mut mailbox = entry.lock().expect("cache lock");
        if mailbox.uid_validity != self.uid_validity {
            return;
        }
        let added = mailbox.current.insert(uid, rendered).is_none();
        drop(mailbox);
        if added {
            self.cache.added();
        }
    }
}

impl StructureCache {
    /// Lookups in a mailbox as it is now: one whose UIDVALIDITY is not what the cache holds
    /// for it starts empty.
    pub fn lookup(&self, user: &str, mailbox: &str, uid_validity: u32) -> Lookup<'_> {
        let key = format!("{user}\0{mailbox}");
        let found = self.mailboxes.lock().expect("cache lock").get(&key).cloned();
        let mailbox = found.map(|entry| of_validity(entry, uid_validity));
        Lookup { cache: self, key, mailbox, uid_validity }
    }

    /// A mailbox's entries, made if there are none.
    fn make(&self, key: &str, uid_validity: u32) -> Arc<Mutex<Mailbox>> {
        let entry = Arc::clone(
            self.mailboxes
                .lock()
                .expect("cache lock")
                .entry(key.to_string())
                .or_insert_with(|| Arc::new(Mutex::new(Mailbox { uid_validity, ..Mailbox::default() }))),
        );
        of_validity(entry, uid_validity)
    }

    /// Counts an entry put in a current generation; when they hold [`GENERATION`], every
    /// mailbox's current generation becomes its previous one, and mailboxes left with nothing
    /// (and not being looked in) go.
    fn added(&self) {
        if self.fresh.fetch_add(1, Ordering::Relaxed) + 1 < GENERATION {
            return;
        }
        let mut mailboxes = self.mailboxes.lock().expect("cache lock");
        // Another thread may have turned them meanwhile.
        if self.fresh.load(Ordering::Relaxed) < GENERATION {
            return;
        }
        self.fresh.store(0, Ordering::Relaxed);
        mailboxes.retain(|_, entry| {
            let mut mailbox = entry.lock().expect("cache lock");
            mailbox.previous = std::mem::take(&mut mailbox.current);
            !mailbox.previous.is_empty() || Arc::strong_count(entry) > 1
        });
    }
}

/// A mailbox's entries, emptied first if they are of another UIDVALIDITY.
fn of_validity(entry: Arc<Mutex<Mailbox>>, uid_validity: u32) -> Arc<Mutex<Mailbox>> {
    {
        let mut held = entry.lock().expect("cache lock");
        if held.uid_validity != uid_validity {
            *held = Mailbox { uid_validity, ..Mailbox::default() };
        }
    }
    entry
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rendered(n: u8) -> Arc<Rendered> {
        Arc::new(Rendered { envelope: vec![n], body: vec![], bodystructure: vec![], fields: Fields::default() })
    }

    fn entries(cache: &StructureCache) -> usize {
        let mailboxes = cache.mailboxes.lock().unwrap();
        mailboxes.values().map(|m| m.lock().unwrap()).map(|m| m.current.len() + m.previous.len()).sum()
    }

    #[test]
    fn bounded_and_keeps_what_is_used() {
        let cache = StructureCache::default();
        let kept = u32::MAX;
        cache.lookup("u", "INBOX", 1).put(kept, rendered(1));
        let mut inbox = cache.lookup("u", "INBOX", 1);
        for uid in 0..GENERATION as u32 {
            inbox.put(uid, rendered(2));
        }
        // `kept` is in the previous generation now; using it brings it back.
        assert_eq!(inbox.get(kept).unwrap().envelope, [1]);
        for uid in 0..GENERATION as u32 {
            inbox.put(GENERATION as u32 + uid, rendered(3));
        }
        assert!(inbox.get(kept).is_some());
        assert!(inbox.get(0).is_none(), "unused entries age out");
        assert!(entries(&cache) <= 2 * GENERATION);
        assert!(cache.lookup("u", "Sent", 1).get(kept).is_none(), "entries are per mailbox");
        assert!(cache.lookup("v", "INBOX", 1).get(kept).is_none(), "and per user");
    }

    #[test]
    fn a_mailbox_with_a_new_uidvalidity_starts_empty() {
        let cache = StructureCache::default();
        cache.lookup("u", "INBOX", 7).put(1, rendered(1));
        assert!(cache.lookup("u", "INBOX", 7).get(1).is_some());
        assert!(cache.lookup("u", "INBOX", 8).get(1).is_none());
        assert!(cache.lookup("u", "INBOX", 7).get(1).is_none(), "the old entries are gone");
        // A lookup begun before the mailbox was created again finds nothing after.
        let mut before = cache.lookup("u", "INBOX", 7);
        before.put(2, rendered(2));
        cache.lookup("u", "INBOX", 8).put(2, rendered(3));
        assert!(before.get(2).is_none());
        before.put(3, rendered(4));
        assert!(cache.lookup("u", "INBOX", 8).get(3).is_none());
    }

    #[test]
    fn a_lookup_that_puts_nothing_leaves_nothing() {
        let cache = StructureCache::default();
        for i in 0..100 {
            assert!(cache.lookup("u", &format!("folder {i}"), 1).get(1).is_none());
        }
        assert!(cache.mailboxes.lock().unwrap().is_empty());
        let mut inbox = cache.lookup("u", "INBOX", 1);
        assert!(inbox.get(1).is_none());
        inbox.put(1, rendered(1));
        assert_eq!(inbox.get(1).unwrap().envelope, [1]);
        assert_eq!(cache.lookup("u", "INBOX", 1).get(1).unwrap().envelope, [1]);
    }

    #[test]
    fn mailboxes_left_empty_go_when_the_generations_turn() {
        let cache = StructureCache::default();
        cache.lookup("u", "old", 1).put(1, rendered(1));
        let mut inbox = cache.lookup("u", "INBOX", 1);
        for uid in 0..2 * GENERATION as u32 {
            inbox.put(uid, rendered(2));
        }
        let mailboxes = cache.mailboxes.lock().unwrap();
        assert!(!mailboxes.contains_key("u\0old"), "{:?}", mailboxes.keys().collect::<Vec<_>>());
    }
}
