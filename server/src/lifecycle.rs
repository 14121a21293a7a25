//! The life of the process: the stages of a graceful shutdown, the count of sessions still
//! open, and the pid file that `wasmail reload` finds the server by.
//!
//! Shutdown (SIGTERM or SIGINT) goes through three stages, as Postfix's and Dovecot's do:
//! 1. draining: the listeners close, no new delivery attempt starts, sessions in progress go
//!    on for up to `[server] shutdown_grace`;
//! 2. closing: every session still open is told so at the next point where it would wait for
//!    its client (SMTP 421 4.3.2, IMAP `* BYE`, POP3 `-ERR`) and ends; a command being
//!    handled (a message being written to the spool) finishes first;
//! 3. the delivery attempts in flight finish (or, past a last deadline, are left in the
//!    spool for the next start), and the process exits 0.

use std::path::{Path, PathBuf};

use tokio::sync::watch;

/// Where the process is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Stage {
    Running,
    /// No new connections or delivery attempts; sessions in progress may finish.
    Draining,
    /// The grace period is over: sessions end at their next read.
    Closing,
}

/// The shutdown signal every listener, session and delivery watches, and the session count.
pub struct Shutdown {
    stage: watch::Sender<Stage>,
    sessions: watch::Sender<usize>,
}

impl Default for Shutdown {
    fn default() -> Self {
        Shutdown { stage: watch::Sender::new(Stage::Running), sessions: watch::Sender::new(0) }
    }
}

/// Counts a session while it lives.
pub struct SessionGuard(watch::Sender<usize>);

impl Drop for SessionGuard {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n -= 1);
    }
}

impl Shutdown {
    /// Moves to `stage` (never back).
    pub fn enter(&self, stage: Stage) {
        self.stage.send_if_modified(|now| {
            let later = stage > *now;
            if later {
                *now = stage;
            }
            later
        });
    }

    pub fn stage(&self) -> Stage {
        *self.stage.borrow()
    }

    /// A receiver for [`reached`].
    pub fn watch(&self) -> watch::Receiver<Stage> {
        self.stage.subscribe()
    }

    /// Counts one more session until the guard is dropped.
    pub fn session(&self) -> SessionGuard {
        self.sessions.send_modify(|n| *n += 1);
        SessionGuard(self.sessions.clone())
    }

    /// Sessions open now.
    pub fn sessions(&self) -> usize {
        *self.sessions.borrow()
    }

    /// Waits until no session is open.
    pub async fn all_sessions_ended(&self) {
        let mut rx = self.sessions.subscribe();
        let _ = rx.wait_for(|n| *n == 0).await;
    }
}

/// Resolves once `stage` has been reached; never, if the sender is gone first.
pub async fn reached(rx: &mut watch::Receiver<Stage>, stage: Stage) {
    if rx.wait_for(|now| *now >= stage).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// `DATA_DIR/wasmail.pid`: the running server's process id, for `wasmail reload`.
pub fn pid_path(data_dir: &Path) -> PathBuf {
    data_dir.join("wasmail.pid")
}

/// Owns the pid file: written at start, removed when the server exits.
pub struct PidFile(PathBuf);

impl PidFile {
    /// Writes the pid file, unless another server that is still running wrote it.
    pub fn create(data_dir: &Path) -> anyhow::Result<PidFile> {
        let path = pid_path(data_dir);
        if let Some(pid) = running_pid(&path)? {
            if pid != std::process::id() as i32 {
                anyhow::bail!("another wasmail (pid {pid}) runs on {} (its pid file is {})", data_dir.display(), path.display());
            }
        }
        let tmp = path.with_extension("pid.tmp");
        std::fs::write(&tmp, format!("{}\n", std::process::id())).map_err(|e| anyhow::anyhow!("cannot write {}: {e}", tmp.display()))?;
        std::fs::rename(&tmp, &path).map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
        Ok(PidFile(path))
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// The pid a pid file names, if that process is alive. A stale file (the process is gone,
/// after kill -9) reads as None.
pub fn running_pid(path: &Path) -> anyhow::Result<Option<i32>> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => anyhow::bail!("cannot read {}: {e}", path.display()),
    };
    let pid: i32 = text.trim().parse().map_err(|_| anyhow::anyhow!("{}: not a process id: {:?}", path.display(), text.trim()))?;
    let Some(process) = rustix::process::Pid::from_raw(pid) else {
        anyhow::bail!("{}: not a process id: {pid}", path.display());
    };
    let alive = match rustix::process::test_kill_process(process) {
        Ok(()) => true,
        // EPERM: it exists, under another user.
        Err(rustix::io::Errno::PERM) => true,
        Err(_) => false,
    };
    // After a crash the number may have been given to another program since.
    let wasmail = match std::fs::read_to_string(format!("/proc/{pid}/comm")) {
        Ok(comm) => comm.trim() == "wasmail",
        Err(_) => true,
    };
    Ok((alive && wasmail).then_some(pid))
}

/// `DATA_DIR/wasmail.reload`: the outcome of the last reload, for `wasmail reload` to read.
fn reload_status_path(data_dir: &Path) -> PathBuf {
    data_dir.join("wasmail.reload")
}

/// Records a reload's outcome: `ok MILLIS` or `failed MILLIS: ERROR` (one line, replaced
/// atomically). Logged, not fatal, if it cannot be written.
pub fn write_reload_status(data_dir: &Path, outcome: &anyhow::Result<()>) {
    let millis = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or(0);
    let line = match outcome {
        Ok(()) => format!("ok {millis}\n"),
        Err(e) => format!("failed {millis}: {}\n", format!("{e:#}").replace('\n', " ")),
    };
    let (path, tmp) = (reload_status_path(data_dir), data_dir.join("wasmail.reload.tmp"));
    if let Err(e) = std::fs::write(&tmp, line).and_then(|()| std::fs::rename(&tmp, &path)) {
        tracing::warn!(file = %path.display(), error = %e, "cannot record the reload's outcome");
    }
}

/// `wasmail reload`: sends SIGHUP to the server whose pid file is in `data_dir` and waits (up
/// to `wait`) for it to record the outcome. Ok with the pid when the new set was taken; an
/// error with the server's own message when it was not.
pub fn reload(data_dir: &Path, wait: std::time::Duration) -> anyhow::Result<i32> {
    let path = pid_path(data_dir);
    let Some(pid) = running_pid(&path)? else {
        anyhow::bail!("no running server: {} is missing or names a process that has ended", path.display());
    };
    let status_path = reload_status_path(data_dir);
    let before = std::fs::read_to_string(&status_path).unwrap_or_default();
    let process = rustix::process::Pid::from_raw(pid).expect("checked by running_pid");
    rustix::process::kill_process(process, rustix::process::Signal::HUP).map_err(|e| anyhow::anyhow!("cannot signal pid {pid}: {e}"))?;
    let deadline = std::time::Instant::now() + wait;
    loop {
        let now = std::fs::read_to_string(&status_path).unwrap_or_default();
        if now != before && now.ends_with('\n') {
            return match now.strip_prefix("failed ").and_then(|rest| rest.split_once(": ")) {
                Some((_, error)) => Err(anyhow::anyhow!("the reload failed, the server runs on its previous set: {}", error.trim_end())),
                None => Ok(pid),
            };
        }
        if std::time::Instant::now() > deadline {
            anyhow::bail!("pid {pid} was signalled but recorded no outcome within {} s; see its log", wait.as_secs());
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}
