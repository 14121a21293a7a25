//! A plugin's key-value store: a map in memory, persisted as an append-only log in
//! `DATA_DIR/plugins/NAME/kv.log` and compacted when the log grows to several times the live
//! data. Records are `op(1) key_len(4) value_len(4) key value`, little-endian; a torn record
//! at the end (a crash in mid-write) is ignored on load.
//!
//! A plugin calls the store from a hook, on one of the server's async workers: `get`, `set`
//! and `delete` only touch the map (under a lock held for a map operation, never for file
//! IO). The log is written by the store's own thread, in order, from a queue of at most
//! `MAX_PENDING` octets; a `set` that would pass it is refused ("busy") rather than waiting.
//!
//! Bounds, per plugin: `MAX_KEY` and `MAX_VALUE` per entry, `MAX_KEYS` entries, and the
//! plugin's `kv_limit` (`NAME.toml`, default 16 MiB) for keys and values together, each entry
//! counted with `ENTRY_OVERHEAD` for the map's own memory.
//!
//! Plugin state is not mail: writes reach the kernel shortly after the call but are not
//! fsync'd, so a power loss may forget the last entries (a greylisted client is asked to
//! retry once more).

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};

pub const MAX_KEY: usize = 1024;
pub const MAX_VALUE: usize = 65536;
pub const MAX_KEYS: usize = 100_000;
/// What one entry costs beyond its key and value (the map's slot, two allocations).
pub const ENTRY_OVERHEAD: usize = 64;
/// Octets of records waiting for the writer thread.
pub const MAX_PENDING: usize = 4 << 20;

const OP_SET: u8 = 1;
const OP_DELETE: u8 = 2;

pub struct KvStore {
    inner: Arc<Mutex<Inner>>,
    /// Records for the writer thread; None once the store is closing.
    queue: Mutex<Option<mpsc::Sender<Vec<u8>>>>,
    /// Octets queued and not yet written.
    pending: Arc<AtomicUsize>,
    writer: Option<std::thread::JoinHandle<()>>,
}

struct Inner {
    map: HashMap<String, Vec<u8>>,
    /// What the map holds: keys, values and `ENTRY_OVERHEAD` per entry.
    bytes: usize,
}

fn cost(key: &str, value: &[u8]) -> usize {
    key.len() + value.len() + ENTRY_OVERHEAD
}

impl KvStore {
    /// Opens (or creates) the store in `dir`.
    pub fn open(dir: &Path) -> io::Result<KvStore> {
        fs::create_dir_all(dir)?;
        let path = dir.join("kv.log");
        let mut map = HashMap::new();
        if let Ok(mut file) = File::open(&path) {
            let mut bytes = Vec::new();
            file.read_to_end(&mut bytes)?;
            replay(&bytes, &mut map);
        }
        // Start from a compact log: the replayed map, written anew.
        let log = write_compact(&path, &map)?;
        let log_size = log.metadata()?.len();
        let plugin = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let bytes = map.iter().map(|(k, v)| cost(k, v)).sum();
        let inner = Arc::new(Mutex::new(Inner { map, bytes }));
        let pending = Arc::new(AtomicUsize::new(0));
        let (queue, records) = mpsc::channel();
        let writer = Writer { path, plugin, log, log_size, inner: Arc::clone(&inner), pending: Arc::clone(&pending) };
        let writer = std::thread::Builder::new().name("plugin-kv".into()).spawn(move || writer.run(records))?;
        Ok(KvStore { inner, queue: Mutex::new(Some(queue)), pending, writer: Some(writer) })
    }

    pub fn get(&self, key: &str) -> Option<Vec<u8>> {
        self.inner.lock().expect("kv lock").map.get(key).cloned()
    }

    /// Sets `key`, within the bounds and `limit` (the plugin's `kv_limit`).
    pub fn set(&self, key: &str, value: &[u8], limit: usize) -> Result<(), String> {
        if key.len() > MAX_KEY {
            return Err(format!("key longer than {MAX_KEY} octets"));
        }
        if value.len() > MAX_VALUE {
            return Err(format!("value longer than {MAX_VALUE} octets"));
        }
        let mut inner = self.inner.lock().expect("kv lock");
        let old = inner.map.get(key).map(|v| cost(key, v));
        if old.is_none() && inner.map.len() >= MAX_KEYS {
            return Err(format!("store full ({MAX_KEYS} keys)"));
        }
        let bytes = inner.bytes - old.unwrap_or(0) + cost(key, value);
        if bytes > limit && bytes > inner.bytes {
            return Err(format!("store full ({limit} octets, kv_limit)"));
        }
        self.enqueue(encode(OP_SET, key, value))?;
        inner.bytes = bytes;
        inner.map.insert(key.to_string(), value.to_vec());
        Ok(())
    }

    pub fn delete(&self, key: &str) {
        let mut inner = self.inner.lock().expect("kv lock");
        if let Some(value) = inner.map.remove(key) {
            inner.bytes -= cost(key, &value);
            // A delete is never refused for a busy writer: it only ever makes the store smaller.
            let record = encode(OP_DELETE, key, &[]);
            self.pending.fetch_add(record.len(), Ordering::Relaxed);
            if let Some(queue) = self.queue.lock().expect("kv queue").as_ref() {
                let _ = queue.send(record);
            }
        }
    }

    /// Hands a record to the writer thread (called with the map locked, so that records are
    /// queued in the order their changes were made).
    fn enqueue(&self, record: Vec<u8>) -> Result<(), String> {
        let len = record.len();
        if self.pending.fetch_add(len, Ordering::Relaxed) + len > MAX_PENDING {
            self.pending.fetch_sub(len, Ordering::Relaxed);
            return Err(format!("store busy ({MAX_PENDING} octets waiting to be written); try again later"));
        }
        match self.queue.lock().expect("kv queue").as_ref() {
            Some(queue) if queue.send(record).is_ok() => Ok(()),
            _ => {
                self.pending.fetch_sub(len, Ordering::Relaxed);
                Err("store closed".into())
            }
        }
    }

    /// Octets of keys and values (with their overhead) the store holds.
    pub fn bytes(&self) -> usize {
        self.inner.lock().expect("kv lock").bytes
    }
}

impl Drop for KvStore {
    /// Lets the writer write what is queued, and waits for it.
    fn drop(&mut self) {
        self.queue.lock().expect("kv queue").take();
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

/// The thread that owns the log file.
struct Writer {
    path: PathBuf,
    /// The plugin's name (the store's folder), for log lines.
    plugin: String,
    log: File,
    /// Bytes in the log, to decide when to compact.
    log_size: u64,
    inner: Arc<Mutex<Inner>>,
    pending: Arc<AtomicUsize>,
}

impl Writer {
    fn run(mut self, records: mpsc::Receiver<Vec<u8>>) {
        while let Ok(record) = records.recv() {
            if let Err(e) = self.log.write_all(&record) {
                tracing::warn!(plugin = self.plugin, file = %self.path.display(), error = %e, "plugin store: cannot write");
            }
            self.log_size += record.len() as u64;
            self.pending.fetch_sub(record.len(), Ordering::Relaxed);
            self.maybe_compact();
        }
    }

    /// Rewrites the log from a copy of the map once it is mostly dead records. Records queued
    /// before the copy and written after it only set again what the copy already holds, in
    /// the same order, so replaying the log still ends in the map's state.
    fn maybe_compact(&mut self) {
        let live = self.inner.lock().expect("kv lock").bytes as u64;
        if self.log_size <= 1 << 20 || self.log_size <= 4 * live {
            return;
        }
        let map = self.inner.lock().expect("kv lock").map.clone();
        match write_compact(&self.path, &map) {
            Ok(log) => {
                self.log_size = log.metadata().map(|m| m.len()).unwrap_or(live);
                self.log = log;
            }
            Err(e) => tracing::warn!(plugin = self.plugin, file = %self.path.display(), error = %e, "plugin store: compaction failed"),
        }
    }
}

fn encode(op: u8, key: &str, value: &[u8]) -> Vec<u8> {
    let mut record = Vec::with_capacity(9 + key.len() + value.len());
    record.push(op);
    record.extend_from_slice(&(key.len() as u32).to_le_bytes());
    record.extend_from_slice(&(value.len() as u32).to_le_bytes());
    record.extend_from_slice(key.as_bytes());
    record.extend_from_slice(value);
    record
}

fn replay(mut bytes: &[u8], map: &mut HashMap<String, Vec<u8>>) {
    while bytes.len() >= 9 {
        let op = bytes[0];
        let key_len = u32::from_le_bytes(bytes[1..5].try_into().expect("4 bytes")) as usize;
        let value_len = u32::from_le_bytes(bytes[5..9].try_into().expect("4 bytes")) as usize;
        let Some(record) = bytes.get(9..9 + key_len + value_len) else {
            break; // torn tail
        };
        let Ok(key) = std::str::from_utf8(&record[..key_len]) else {
            break;
        };
        match op {
            OP_SET => {
                map.insert(key.to_string(), record[key_len..].to_vec());
            }
            OP_DELETE => {
                map.remove(key);
            }
            _ => break,
        }
        bytes = &bytes[9 + key_len + value_len..];
    }
}

/// Writes the map to a new log beside `path`, renames it into place and returns it open for
/// appending.
fn write_compact(path: &Path, map: &HashMap<String, Vec<u8>>) -> io::Result<File> {
    let tmp = path.with_extension("log.tmp");
    {
        let mut writer = BufWriter::new(File::create(&tmp)?);
        for (key, value) in map {
            writer.write_all(&encode(OP_SET, key, value))?;
        }
        writer.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    }
    fs::rename(&tmp, path)?;
    OpenOptions::new().append(true).open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: usize = 16 << 20;

    #[test]
    fn persists_across_reopen_and_survives_a_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        {
            let kv = KvStore::open(dir.path()).unwrap();
            kv.set("a", b"1", LIMIT).unwrap();
            kv.set("b", b"2", LIMIT).unwrap();
            kv.set("a", b"3", LIMIT).unwrap();
            kv.delete("b");
            assert_eq!(kv.get("a").as_deref(), Some(&b"3"[..]));
        }
        // A crash in the middle of a record.
        let mut log = OpenOptions::new().append(true).open(dir.path().join("kv.log")).unwrap();
        log.write_all(&encode(OP_SET, "c", b"value")[..7]).unwrap();
        drop(log);
        let kv = KvStore::open(dir.path()).unwrap();
        assert_eq!(kv.get("a").as_deref(), Some(&b"3"[..]));
        assert_eq!(kv.get("b"), None);
        assert_eq!(kv.get("c"), None);
        kv.set("c", b"ok", LIMIT).unwrap();
        drop(kv);
        assert_eq!(KvStore::open(dir.path()).unwrap().get("c").as_deref(), Some(&b"ok"[..]));
    }

    #[test]
    fn limits_are_errors_not_panics() {
        let dir = tempfile::tempdir().unwrap();
        let kv = KvStore::open(dir.path()).unwrap();
        assert!(kv.set(&"k".repeat(MAX_KEY + 1), b"", LIMIT).is_err());
        assert!(kv.set("k", &vec![0; MAX_VALUE + 1], LIMIT).is_err());
    }

    #[test]
    fn the_store_holds_at_most_its_limit_and_shrinking_is_always_allowed() {
        let dir = tempfile::tempdir().unwrap();
        let kv = KvStore::open(dir.path()).unwrap();
        let value = vec![7u8; MAX_VALUE];
        let limit = 1 << 20;
        let mut stored = 0;
        for i in 0..100 {
            match kv.set(&format!("key{i}"), &value, limit) {
                Ok(()) => stored += 1,
                Err(e) => {
                    assert!(e.contains("kv_limit"), "{e}");
                    break;
                }
            }
        }
        assert_eq!(stored, limit / cost("key00", &value), "filled to the limit, no further");
        assert!(kv.bytes() <= limit);
        // Replacing a value with a smaller one, or deleting, is allowed when full.
        kv.set("key0", b"small", limit).unwrap();
        kv.delete("key1");
        assert!(kv.set("key-new", &value, limit).is_ok(), "room again after shrinking");
        // Over the limit after a restart with a smaller one: only shrinking is allowed.
        drop(kv);
        let kv = KvStore::open(dir.path()).unwrap();
        assert!(kv.set("more", b"x", 1024).is_err());
        kv.set("key2", b"", 1024).unwrap();
    }

    #[test]
    fn compaction_keeps_the_last_value_of_every_key() {
        let dir = tempfile::tempdir().unwrap();
        {
            let kv = KvStore::open(dir.path()).unwrap();
            let value = vec![1u8; 60_000];
            // About 6 MB of records for 10 live keys: the log is compacted on the way.
            for round in 0..10u8 {
                for key in 0..10 {
                    let mut value = value.clone();
                    value[0] = round;
                    while kv.set(&format!("k{key}"), &value, LIMIT).is_err() {
                        std::thread::sleep(std::time::Duration::from_millis(1));
                        // the writer is behind
                    }
                }
            }
            kv.delete("k9");
        }
        let size = fs::metadata(dir.path().join("kv.log")).unwrap().len();
        assert!(size < 3 << 20, "compacted: {size}");
        let kv = KvStore::open(dir.path()).unwrap();
        for key in 0..9 {
            assert_eq!(kv.get(&format!("k{key}")).unwrap()[0], 9);
        }
        assert_eq!(kv.get("k9"), None);
    }
}
