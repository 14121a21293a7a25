//! `wasmail queue list|flush|remove`: the operator's view of the spool, like Postfix's
//! `mailq`, `postqueue -f` and `postsuper -d`. They work on the files, so they need no running
//! server; a flush is a request file the running server picks up within a second.

use std::fmt::Write as _;
use std::io;

use super::spool::{Spool, State};

/// Where flush requests wait for the server: `DATA_DIR/queue/flush/`.
const FLUSH_DIR: &str = "flush";

/// The queue as text: each entry with its recipients, like `mailq`.
pub fn list(spool: &Spool) -> io::Result<String> {
    let entries = spool.load_all()?;
    let mut out = String::new();
    if entries.is_empty() {
        out.push_str("Mail queue is empty\n");
        return Ok(out);
    }
    let now = super::now();
    for e in &entries {
        let size = std::fs::metadata(spool.dir().join(format!("{}.msg", e.id))).map(|m| m.len()).unwrap_or(0);
        let arrived = chrono::DateTime::from_timestamp(e.arrived as i64, 0).map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string()).unwrap_or_default();
        let sender = if e.sender.is_empty() { "<>" } else { e.sender.as_str() };
        let next = if e.attempts == 0 { "now".to_string() } else { format!("in {}s", e.next_attempt.saturating_sub(now)) };
        let _ = writeln!(out, "{:<16} {:>9} {}  {}  (attempts {}, next {next})", e.id, size, arrived, sender, e.attempts);
        for r in &e.recipients {
            let state = match r.state {
                State::Pending => "pending",
                State::Delivered => "delivered",
                State::Failed => "failed",
            };
            let detail = r.detail.as_deref().map(|d| format!(" ({d})")).unwrap_or_default();
            let _ = writeln!(out, "    {} {state}{detail}", r.address);
        }
    }
    let pending: usize = entries.iter().map(|e| e.recipients.iter().filter(|r| r.state == State::Pending).count()).sum();
    let _ = writeln!(out, "-- {} message(s), {pending} recipient(s) pending", entries.len());
    Ok(out)
}

/// Removes an entry; false if there was none.
pub fn remove(spool: &Spool, id: &str) -> io::Result<bool> {
    spool.remove(id)
}

/// Asks the running server to retry now every entry (with `domain`: those with a pending
/// recipient there).
pub fn request_flush(spool: &Spool, domain: Option<&str>) -> io::Result<()> {
    let dir = spool.dir().join(FLUSH_DIR);
    std::fs::create_dir_all(&dir)?;
    let name =
        format!("{}-{}", std::process::id(), std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos());
    let tmp = dir.join(format!(".{name}"));
    std::fs::write(&tmp, domain.unwrap_or(""))?;
    std::fs::rename(tmp, dir.join(name))
}

/// Takes the pending flush requests: None for "all", Some(domain) for one domain.
pub fn take_flush_requests(spool: &Spool) -> Vec<Option<String>> {
    let dir = spool.dir().join(FLUSH_DIR);
    let Ok(entries) = std::fs::read_dir(&dir) else { return Vec::new() };
    let mut out = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        let path = entry.path();
        let domain = std::fs::read_to_string(&path).unwrap_or_default().trim().to_string();
        let _ = std::fs::remove_file(&path);
        out.push((!domain.is_empty()).then_some(domain));
    }
    out
}
