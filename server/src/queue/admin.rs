//! `wasmail queue list|flush|remove`: the operator's view of the spool, like Postfix's
//! `mailq`, `postqueue -f` and `postsuper -d`.
//!
//! `list` only reads the files, at any time. Nothing else changes the spool behind a running
//! server's back: a flush or a removal is a request file in `queue/requests/` that the server
//! picks up within a second; a removal waits for the server's answer (the entry's own task
//! removes it between attempts, so an attempt in flight cannot write it back). With no server
//! running, `remove` takes the spool's lock and removes the files itself.

use std::fmt::Write as _;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::spool::{Spool, State};

/// Where requests wait for the server: `DATA_DIR/queue/requests/`.
const REQUESTS_DIR: &str = "requests";

/// A request to the running server.
#[derive(Debug, PartialEq, Eq)]
pub enum Request {
    /// Retry now every entry (None) or those with a pending recipient in the domain.
    Flush(Option<String>),
    /// Remove the entry; write the outcome to `answer`.
    Remove { id: String, answer: PathBuf },
}

/// The queue as text: each entry with its recipients, like `mailq`.
pub fn list(spool: &Spool) -> io::Result<String> {
    let entries = spool.scan_sized()?;
    let mut out = String::new();
    if entries.is_empty() {
        out.push_str("Mail queue is empty\n");
        return Ok(out);
    }
    let now = super::now();
    for (e, size) in &entries {
        let arrived = chrono::DateTime::from_timestamp(e.arrived as i64, 0).map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string()).unwrap_or_default();
        let sender = if e.sender.is_empty() { "<>" } else { e.sender.as_str() };
        let next = if e.attempts == 0 { "now".to_string() } else { format!("in {}s", e.next_attempt.saturating_sub(now)) };
        let _ = writeln!(out, "{:<16} {:>9} {}  {}  (attempts {}, next {next})", e.id, size, arrived, sender, e.attempts);
        for r in &e.recipients {
            let state = r.state.as_str();
            let owed = if r.notice_due.is_some() { " (notice to the sender not queued yet)" } else { "" };
            let detail = r.detail.as_deref().map(|d| format!(" ({d})")).unwrap_or_default();
            let _ = writeln!(out, "    {} {state}{detail}{owed}", r.address);
        }
    }
    let pending: usize = entries.iter().map(|(e, _)| e.recipients.iter().filter(|r| r.state == State::Pending).count()).sum();
    let _ = writeln!(out, "-- {} message(s), {pending} recipient(s) pending", entries.len());
    Ok(out)
}

/// What became of a removal.
#[derive(Debug, PartialEq, Eq)]
pub enum Removal {
    Removed,
    /// No such entry (or it was delivered or bounced meanwhile).
    Missing,
    /// The running server did not answer in time; it removes the entry when its current
    /// attempt ends.
    Pending,
}

/// Removes an entry: through the running server if there is one (waiting up to `wait` for
/// its answer), else directly under the spool's lock.
pub fn remove(spool: &Spool, id: &str, wait: Duration) -> io::Result<Removal> {
    super::spool::check_id(id)?;
    if let Some(_lock) = spool.lock()? {
        return Ok(if spool.remove(id)? { Removal::Removed } else { Removal::Missing });
    }
    let name = request_name();
    let answer = requests_dir(spool).join(format!(".{name}.answer"));
    write_request(spool, &name, &format!("remove {id}"))?;
    let deadline = Instant::now() + wait;
    loop {
        if let Ok(text) = std::fs::read_to_string(&answer) {
            if let Some(outcome) = text.strip_suffix('\n') {
                let _ = std::fs::remove_file(&answer);
                return match outcome {
                    "removed" => Ok(Removal::Removed),
                    "missing" => Ok(Removal::Missing),
                    error => Err(io::Error::other(format!("the server could not remove {id}: {error}"))),
                };
            }
        }
        if Instant::now() > deadline {
            return Ok(Removal::Pending);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The server's answer to a removal request (written whole, then renamed into place).
pub fn answer(path: &Path, outcome: &io::Result<bool>) {
    let text = match outcome {
        Ok(true) => "removed\n".to_string(),
        Ok(false) => "missing\n".to_string(),
        Err(e) => format!("{}\n", e.to_string().replace('\n', " ")),
    };
    let tmp = path.with_extension("answer.tmp");
    if let Err(e) = std::fs::write(&tmp, text).and_then(|()| std::fs::rename(&tmp, path)) {
        tracing::warn!(file = %path.display(), error = %e, "cannot answer a queue request");
    }
}

/// Asks the running server to retry now every entry (with `domain`: those with a pending
/// recipient there).
pub fn request_flush(spool: &Spool, domain: Option<&str>) -> io::Result<()> {
    write_request(spool, &request_name(), &format!("flush {}", domain.unwrap_or("")))
}

fn requests_dir(spool: &Spool) -> PathBuf {
    spool.dir().join(REQUESTS_DIR)
}

/// A name no other request has: the process and the time.
fn request_name() -> String {
    format!("{}-{}", std::process::id(), std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos())
}

/// Writes a request whole under a dot name, then renames it: the server never reads half.
fn write_request(spool: &Spool, name: &str, text: &str) -> io::Result<()> {
    let dir = requests_dir(spool);
    std::fs::create_dir_all(&dir)?;
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, text)?;
    std::fs::rename(tmp, dir.join(name))
}

/// Takes the pending requests (in the server). Requests it cannot read are dropped with a
/// log line; answers (dot names) are left for the commands that wait for them.
pub fn take_requests(spool: &Spool) -> Vec<Request> {
    let dir = requests_dir(spool);
    let Ok(entries) = std::fs::read_dir(&dir) else { return Vec::new() };
    let mut out = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        let path = entry.path();
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let _ = std::fs::remove_file(&path);
        match text.trim().split_once(' ').unwrap_or((text.trim(), "")) {
            ("flush", domain) => out.push(Request::Flush((!domain.is_empty()).then(|| domain.to_string()))),
            ("remove", id) if super::spool::check_id(id).is_ok() => {
                out.push(Request::Remove { id: id.to_string(), answer: dir.join(format!(".{name}.answer")) })
            }
            _ => tracing::warn!(file = %path.display(), "a queue request that is not understood; dropped"),
        }
    }
    out
}
