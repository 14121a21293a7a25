//! ENVELOPE, BODY and BODYSTRUCTURE as rendered, and the keys SORT and THREAD compare, per
//! message: what Dovecot keeps in its cache file. Clients fetch them for every message on every sync, and a message never changes, so
//! after the first FETCH they cost no file read and no parse. In memory and bounded: two
//! generations of at most [`GENERATION`] entries each; a full current generation becomes the
//! previous one (and the old previous is dropped), so what is used stays and the rest ages out.

use std::collections::HashMap;
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

/// Messages are named by user, mailbox and the store's message id, which is never reused:
/// the key is the three joined by NUL, which none of them holds, so that a lookup needs no
/// allocation of its own (see [`Lookup`]).
type Generation = HashMap<String, Arc<Rendered>>;

#[derive(Default)]
pub struct StructureCache {
    /// The current generation and the previous one.
    generations: Mutex<(Generation, Generation)>,
}

/// Lookups in one mailbox: the key's user and mailbox are written once, then each id after
/// them in the same buffer (SORT and THREAD look up every message of a mailbox).
pub struct Lookup<'a> {
    cache: &'a StructureCache,
    key: String,
    prefix: usize,
}

impl Lookup<'_> {
    fn key(&mut self, id: &str) -> &str {
        self.key.truncate(self.prefix);
        self.key.push_str(id);
        &self.key
    }

    pub fn get(&mut self, id: &str) -> Option<Arc<Rendered>> {
        let cache = self.cache;
        let key = self.key(id);
        let mut generations = cache.generations.lock().expect("cache lock");
        if let Some(found) = generations.0.get(key) {
            return Some(Arc::clone(found));
        }
        let found = generations.1.remove(key)?;
        StructureCache::insert_locked(&mut generations, key.to_string(), Arc::clone(&found));
        Some(found)
    }

    pub fn put(&mut self, id: &str, rendered: Arc<Rendered>) {
        let cache = self.cache;
        let key = self.key(id).to_string();
        StructureCache::insert_locked(&mut cache.generations.lock().expect("cache lock"), key, rendered);
    }
}

impl StructureCache {
    pub fn lookup(&self, user: &str, mailbox: &str) -> Lookup<'_> {
        let key = format!("{user}\0{mailbox}\0");
        Lookup { cache: self, prefix: key.len(), key }
    }

    pub fn get(&self, user: &str, mailbox: &str, id: &str) -> Option<Arc<Rendered>> {
        self.lookup(user, mailbox).get(id)
    }

    pub fn put(&self, user: &str, mailbox: &str, id: &str, rendered: Arc<Rendered>) {
        self.lookup(user, mailbox).put(id, rendered)
    }

    fn insert_locked(generations: &mut (Generation, Generation), key: String, rendered: Arc<Rendered>) {
        if generations.0.len() >= GENERATION {
            generations.1 = std::mem::take(&mut generations.0);
        }
        generations.0.insert(key, rendered);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rendered(n: u8) -> Arc<Rendered> {
        Arc::new(Rendered { envelope: vec![n], body: vec![], bodystructure: vec![], fields: Fields::default() })
    }

    #[test]
    fn bounded_and_keeps_what_is_used() {
        let cache = StructureCache::default();
        cache.put("u", "INBOX", "kept", rendered(1));
        for i in 0..GENERATION {
            cache.put("u", "INBOX", &i.to_string(), rendered(2));
        }
        // "kept" is in the previous generation now; using it brings it back.
        assert_eq!(cache.get("u", "INBOX", "kept").unwrap().envelope, [1]);
        for i in 0..GENERATION {
            cache.put("u", "INBOX", &format!("b{i}"), rendered(3));
        }
        assert!(cache.get("u", "INBOX", "kept").is_some());
        assert!(cache.get("u", "INBOX", "0").is_none(), "unused entries age out");
        let total = {
            let g = cache.generations.lock().unwrap();
            g.0.len() + g.1.len()
        };
        assert!(total <= 2 * GENERATION);
        assert!(cache.get("u", "Sent", "kept").is_none(), "keys include the mailbox");
    }
}
