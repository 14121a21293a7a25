//! A plugin's key-value store: a map in memory, persisted as an append-only log in
//! `DATA_DIR/plugins/NAME/kv.log` and compacted when the log grows to several times the live
//! data. Records are `op(1) key_len(4) value_len(4) key value`, little-endian; a torn record
//! at the end (a crash in mid-write) is ignored on load.
//!
//! Plugin state is not mail: writes reach the kernel at once but are not fsync'd, so a power
//! loss may forget the last entries (a greylisted client is asked to retry once more).

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

pub const MAX_KEY: usize = 1024;
pub const MAX_VALUE: usize = 65536;
pub const MAX_KEYS: usize = 100_000;

const OP_SET: u8 = 1;
const OP_DELETE: u8 = 2;

pub struct KvStore {
    path: PathBuf,
    /// The plugin's name (the store's folder), for log lines.
    plugin: String,
    inner: Mutex<Inner>,
}

struct Inner {
    map: HashMap<String, Vec<u8>>,
    log: File,
    /// Bytes in the log, to decide when to compact.
    log_size: u64,
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
        Ok(KvStore { path, plugin, inner: Mutex::new(Inner { map, log, log_size }) })
    }

    pub fn get(&self, key: &str) -> Option<Vec<u8>> {
        self.inner.lock().expect("kv lock").map.get(key).cloned()
    }

    pub fn set(&self, key: &str, value: &[u8]) -> Result<(), String> {
        if key.len() > MAX_KEY {
            return Err(format!("key longer than {MAX_KEY} octets"));
        }
        if value.len() > MAX_VALUE {
            return Err(format!("value longer than {MAX_VALUE} octets"));
        }
        let mut inner = self.inner.lock().expect("kv lock");
        if !inner.map.contains_key(key) && inner.map.len() >= MAX_KEYS {
            return Err(format!("store full ({MAX_KEYS} keys)"));
        }
        let record = encode(OP_SET, key, value);
        inner.log.write_all(&record).map_err(|e| format!("cannot write: {e}"))?;
        inner.log_size += record.len() as u64;
        inner.map.insert(key.to_string(), value.to_vec());
        self.maybe_compact(&mut inner);
        Ok(())
    }

    pub fn delete(&self, key: &str) {
        let mut inner = self.inner.lock().expect("kv lock");
        if inner.map.remove(key).is_some() {
            let record = encode(OP_DELETE, key, &[]);
            if let Err(e) = inner.log.write_all(&record) {
                tracing::warn!(plugin = self.plugin, file = %self.path.display(), error = %e, "plugin store: cannot write");
            }
            inner.log_size += record.len() as u64;
        }
    }

    fn maybe_compact(&self, inner: &mut Inner) {
        let live: u64 = inner.map.iter().map(|(k, v)| 9 + k.len() as u64 + v.len() as u64).sum();
        if inner.log_size > 1 << 20 && inner.log_size > 4 * live {
            match write_compact(&self.path, &inner.map) {
                Ok(log) => {
                    inner.log_size = log.metadata().map(|m| m.len()).unwrap_or(live);
                    inner.log = log;
                }
                Err(e) => {
                    tracing::warn!(plugin = self.plugin, file = %self.path.display(), error = %e, "plugin store: compaction failed")
                }
            }
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

    #[test]
    fn persists_across_reopen_and_survives_a_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        {
            let kv = KvStore::open(dir.path()).unwrap();
            kv.set("a", b"1").unwrap();
            kv.set("b", b"2").unwrap();
            kv.set("a", b"3").unwrap();
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
        kv.set("c", b"ok").unwrap();
        drop(kv);
        assert_eq!(KvStore::open(dir.path()).unwrap().get("c").as_deref(), Some(&b"ok"[..]));
    }

    #[test]
    fn limits_are_errors_not_panics() {
        let dir = tempfile::tempdir().unwrap();
        let kv = KvStore::open(dir.path()).unwrap();
        assert!(kv.set(&"k".repeat(MAX_KEY + 1), b"").is_err());
        assert!(kv.set("k", &vec![0; MAX_VALUE + 1]).is_err());
    }
}
