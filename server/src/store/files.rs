//! The file-level helpers every part of the Maildir store shares: durable directories (the
//! entry fsync'd in its parent), CRLF on the wire against LF on disk (Maildir's convention,
//! which mutt and Dovecot expect), and what a Maildir file name says (base name, `W=` size).

use std::fs::{self, File};
use std::io;
use std::path::Path;

/// The largest file [`read_in_memory`] reads: copying it from the page cache on the
/// caller's thread costs less than the trip to the blocking pool and back.
pub(super) const IN_MEMORY_MAX: usize = 128 * 1024;

/// A message file in CRLF form if the page cache holds all of it and it is at most
/// [`IN_MEMORY_MAX`] octets (`preadv2(RWF_NOWAIT)` says when a read would wait for the
/// disk); None otherwise, or if it is not where `path` says. For an IMAP FETCH or a POP3
/// RETR of a message read lately, on the session's own task.
pub(super) fn read_in_memory(path: &Path) -> Option<Vec<u8>> {
    let file = File::open(path).ok()?;
    let size = usize::try_from(file.metadata().ok()?.len()).ok()?;
    if size > IN_MEMORY_MAX {
        return None;
    }
    let mut content = vec![0; size];
    let read = rustix::io::preadv2(&file, &mut [io::IoSliceMut::new(&mut content)], 0, rustix::io::ReadWriteFlags::NOWAIT).ok()?;
    (read == size).then(|| lf_to_crlf(&content))
}

/// LF to CRLF (a CR already before an LF is kept single).
pub fn lf_to_crlf(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + data.len() / 30 + 2);
    let mut start = 0;
    for i in memchr::memchr_iter(b'\n', data) {
        out.extend_from_slice(&data[start..i]);
        if i == 0 || data[i - 1] != b'\r' {
            out.push(b'\r');
        }
        start = i;
    }
    out.extend_from_slice(&data[start..]);
    out
}

/// The LFs in `data` that [`lf_to_crlf`] will give a CR when the file is read back (those
/// not already after one; `before` is the byte before `data`), so that a file's `W=` is the
/// size readers see. (`\r\r\n` is stored as `\r\n`, which reads back as itself.)
pub(super) fn bare_lf_count(data: &[u8], before: u8) -> u64 {
    memchr::memchr_iter(b'\n', data).filter(|&i| if i == 0 { before != b'\r' } else { data[i - 1] != b'\r' }).count() as u64
}

/// Splits `data` into runs with every CRLF turned into LF (bare CRs are left alone).
pub(super) fn crlf_to_lf(data: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = data;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        match rest.windows(2).position(|w| w == b"\r\n") {
            Some(i) => {
                // Yield the run up to the CR, then continue at the LF, which starts the next run.
                let (run, after) = rest.split_at(i);
                rest = &after[1..];
                if run.is_empty() {
                    // Two CRLFs in a row: emit the LF alone.
                    let (lf, after) = rest.split_at(1);
                    rest = after;
                    Some(lf)
                } else {
                    Some(run)
                }
            }
            None => {
                let run = rest;
                rest = &[];
                Some(run)
            }
        }
    })
}

/// Creates a directory (and its parents) and fsyncs the parent, so that the new entry
/// survives a crash.
pub(super) fn create_dir_durably(dir: &Path) -> io::Result<()> {
    if dir.as_os_str().is_empty() || dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent() {
        create_dir_durably(parent)?;
    }
    match fs::create_dir(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Ok(()),
        Err(e) => return Err(e),
    }
    let parent = dir.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    sync_dir(parent)
}

/// The base name of a Maildir file name (without `:2,FLAGS`).
pub(super) fn base_name(name: &str) -> &str {
    name.split(':').next().unwrap_or(name)
}

/// The CRLF size from a `W=` in the name, if there is one.
pub(super) fn crlf_size_in(name: &str) -> Option<u64> {
    base_name(name).split(',').find_map(|part| part.strip_prefix("W=")).and_then(|w| w.parse().ok())
}

/// The CRLF size of a file without `W=` in its name: counted.
pub(super) fn crlf_size_of(path: &Path) -> io::Result<u64> {
    let data = fs::read(path)?;
    Ok(data.len() as u64 + data.iter().filter(|&&b| b == b'\n').count() as u64 - data.windows(2).filter(|w| w == b"\r\n").count() as u64)
}

/// Fsyncs a directory: the entries made or removed in it survive a crash.
pub(super) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lf_becomes_crlf_once() {
        assert_eq!(lf_to_crlf(b"a\nb\r\n\nc"), b"a\r\nb\r\n\r\nc");
        assert_eq!(lf_to_crlf(b"\n\n"), b"\r\n\r\n");
        assert_eq!(lf_to_crlf(b""), b"");
        assert_eq!(lf_to_crlf(b"no line end"), b"no line end");
    }

    #[test]
    fn crlf_becomes_lf_and_bare_cr_stays() {
        let joined: Vec<u8> = crlf_to_lf(b"a\r\nb\r\n\r\nc\rd\r\n").flatten().copied().collect();
        assert_eq!(joined, b"a\nb\n\nc\rd\n");
        let joined: Vec<u8> = crlf_to_lf(b"\r\n\r\nx").flatten().copied().collect();
        assert_eq!(joined, b"\n\nx");
    }
}
