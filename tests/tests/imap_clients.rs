//! Real IMAP clients against Wasmail, on mail that arrived over SMTP: mbsync (isync) syncing a
//! 1,000-message mailbox both ways, and mutt (driven in a private tmux server) reading,
//! flagging, moving and deleting.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use wasmail_tests::{Server, Setup};

fn server_with(user: &str, subjects: &[String]) -> Server {
    let server = Server::start_with(Setup { users: vec![user.to_string()], ..Setup::default() });
    let mut c = server.connect();
    c.greet();
    for subject in subjects {
        let message = format!("From: sender@client.test\r\nTo: {user}@localhost\r\nSubject: {subject}\r\n\r\nbody of {subject}\r\n");
        assert_eq!(c.send_mail("sender@client.test", &[&format!("{user}@localhost")], &message).code, 250);
    }
    c.expect("QUIT", 221);
    server.wait_for_queue();
    server
}

/// Files in a Maildir folder's `cur/` and `new/`.
fn maildir_names(dir: &Path) -> Vec<String> {
    let mut names = Vec::new();
    for sub in ["cur", "new"] {
        if let Ok(entries) = std::fs::read_dir(dir.join(sub)) {
            names.extend(entries.map(|e| e.unwrap().file_name().into_string().unwrap()));
        }
    }
    names.sort();
    names
}

/// Runs mbsync with network debugging and returns the commands it sent (`>>> ...`, after
/// a `(N in progress) ` prefix when it pipelines).
fn mbsync(config: &Path) -> Vec<String> {
    let output = Command::new("mbsync").args(["-c"]).arg(config).args(["-a", "-Dn"]).output().expect("mbsync (isync) is needed for this test");
    let text = String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "mbsync failed:\n{}", text.lines().rev().take(30).collect::<Vec<_>>().join("\n"));
    text.lines().filter_map(|l| l.find(">>> ").map(|i| l[i + 4..].to_string())).collect()
}

#[test]
fn mbsync_syncs_a_thousand_messages_both_ways() {
    let subjects: Vec<String> = (0..1000).map(|i| format!("message {i:04}")).collect();
    let server = server_with("tyler", &subjects);
    let local = tempfile::tempdir().unwrap();
    let mail = local.path().join("mail");
    std::fs::create_dir_all(&mail).unwrap();
    let config = local.path().join("mbsyncrc");
    std::fs::write(
        &config,
        format!(
            "IMAPAccount wasmail\nHost 127.0.0.1\nPort {}\nUser tyler\nPass secret\nSSLType None\nAuthMechs PLAIN\n\n\
             IMAPStore remote\nAccount wasmail\n\nMaildirStore local\nPath {dir}/\nInbox {dir}/INBOX\nSubFolders Verbatim\n\n\
             Channel sync\nFar :remote:\nNear :local:\nPatterns *\nCreate Both\nExpunge Both\nSyncState *\n",
            server.imap.unwrap().port(),
            dir = mail.display()
        ),
    )
    .unwrap();

    // First sync: every message comes down, and the special-use folders are created locally.
    mbsync(&config);
    let inbox = mail.join("INBOX");
    let names = maildir_names(&inbox);
    assert_eq!(names.len(), 1000);
    for folder in ["Sent", "Drafts", "Trash", "Junk", "Archive"] {
        assert!(mail.join(folder).join("cur").is_dir(), "{folder}");
    }
    let bodies: std::collections::HashSet<String> = ["cur", "new"]
        .iter()
        .flat_map(|s| std::fs::read_dir(inbox.join(s)).unwrap())
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .collect();
    assert!(bodies.iter().any(|b| b.contains("Subject: message 0999") && b.contains("body of message 0999")));

    // Local changes: ten messages read and flagged, three deleted, one new message written.
    for name in names.iter().take(10) {
        let from = if inbox.join("new").join(name).exists() { inbox.join("new").join(name) } else { inbox.join("cur").join(name) };
        let base = name.split(":2,").next().unwrap();
        std::fs::rename(from, inbox.join("cur").join(format!("{base}:2,FS"))).unwrap();
    }
    for name in &names[10..13] {
        let path = if inbox.join("new").join(name).exists() { inbox.join("new").join(name) } else { inbox.join("cur").join(name) };
        std::fs::remove_file(path).unwrap();
    }
    std::fs::write(inbox.join("new").join("1800000000.local1.laptop"), "From: tyler@localhost\nSubject: written offline\n\nhello\n").unwrap();
    // A change on the server: a flag set by another client.
    let mut imap = std::net::TcpStream::connect(server.imap.unwrap()).unwrap();
    use std::io::{BufRead, BufReader, Write};
    imap.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut reader = BufReader::new(imap.try_clone().unwrap());
    imap.write_all(b"a LOGIN tyler secret\r\nb SELECT INBOX\r\nc UID STORE 1000 +FLAGS (\\Answered)\r\nd LOGOUT\r\n").unwrap();
    let mut line = String::new();
    while !line.starts_with("d ") {
        line.clear();
        reader.read_line(&mut line).unwrap();
    }

    let commands = mbsync(&config);
    assert!(commands.iter().any(|c| c.contains(" APPEND ")), "the new message goes up: {commands:?}");
    assert!(commands.iter().any(|c| c.contains("STORE") && c.contains("\\Flagged")), "{commands:?}");
    // The server has what the laptop did.
    let server_inbox = maildir_names(&server.data_dir().join("mail/tyler"));
    assert_eq!(server_inbox.len(), 1000 - 3 + 1, "three expunged, one appended");
    // The ten read and flagged (one of them may be UID 1000, which the other client marked
    // answered: then its letters are FRS).
    let flagged: Vec<&String> = server_inbox.iter().filter(|n| n.rsplit_once(":2,").is_some_and(|(_, info)| info.contains('F'))).collect();
    assert_eq!(flagged.len(), 10, "{flagged:?}");
    assert!(flagged.iter().all(|n| n.rsplit_once(":2,").unwrap().1.contains('S')), "{flagged:?}");
    let stored = server.mailbox_now("tyler");
    assert!(stored.iter().any(|m| m.contains("Subject: written offline")));
    // The laptop has what the other client did.
    let local_names = maildir_names(&inbox);
    assert_eq!(local_names.len(), 998);
    assert_eq!(local_names.iter().filter(|n| n.contains(":2,") && n.split(":2,").nth(1).unwrap().contains('R')).count(), 1);

    // A third sync finds nothing to do: no message and no flag goes either way.
    let commands = mbsync(&config);
    let transfers: Vec<&String> =
        commands.iter().filter(|c| c.contains(" APPEND ") || c.contains("STORE") || c.contains("BODY.PEEK[]") || c.contains("EXPUNGE")).collect();
    assert!(transfers.is_empty(), "{transfers:?}");
    assert_eq!(maildir_names(&inbox), local_names);
}

/// mutt in a private tmux server, with its window captured as text.
struct Mutt {
    socket: String,
}

impl Mutt {
    /// mutt on `folder` (an imap:// or imaps:// URL) with `extra` settings after the common ones.
    fn start(home: &Path, folder: &str, extra: &str) -> Mutt {
        let rc = home.join("muttrc");
        std::fs::write(
            &rc,
            format!(
                "set folder=\"{folder}\"\nset imap_pass=\"secret\"\nset spoolfile=\"+INBOX\"\n\
                 set confirmappend=no\nset confirmcreate=no\nset delete=yes\nset quit=yes\nset record=\"\"\n\
                 set sort=date\nset pager_stop=yes\nset wait_key=no\nset mail_check=1\nset header_cache=\"\"\n{extra}"
            ),
        )
        .unwrap();
        // A tmux server of its own per mutt: tests run in parallel in one process.
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mutt = Mutt { socket: format!("wasmail-imap-mutt-{}-{n}", std::process::id()) };
        let command = format!("HOME='{}' mutt -n -F '{}'", home.display(), rc.display());
        assert!(mutt.tmux(&["new-session", "-d", "-x", "150", "-y", "40", "-s", "mutt", &command]).status.success());
        mutt
    }

    fn tmux(&self, args: &[&str]) -> std::process::Output {
        Command::new("tmux").arg("-L").arg(&self.socket).args(args).output().expect("tmux is needed for this test")
    }

    fn keys(&self, keys: &[&str]) {
        for key in keys {
            self.tmux(&["send-keys", "-t", "mutt", key]);
            std::thread::sleep(Duration::from_millis(150));
        }
    }

    fn screen(&self) -> String {
        String::from_utf8_lossy(&self.tmux(&["capture-pane", "-p", "-t", "mutt"]).stdout).into_owned()
    }

    /// Waits (up to a minute: mutt draws slowly on a busy machine) until the screen shows
    /// `text`, and returns the screen.
    fn wait_for(&self, text: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let screen = self.screen();
            if screen.contains(text) || Instant::now() > deadline {
                return screen;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Mutt {
    fn drop(&mut self) {
        self.tmux(&["kill-server"]);
    }
}

#[test]
fn mutt_reads_flags_moves_and_deletes_over_imap() {
    let server = server_with("tyler", &["alpha".to_string(), "beta".to_string(), "gamma".to_string()]);
    let home = tempfile::tempdir().unwrap();
    let folder = format!("imap://tyler@127.0.0.1:{}/", server.imap.unwrap().port());
    let mutt = Mutt::start(home.path(), &folder, "set ssl_starttls=no\nset ssl_force_tls=no\n");
    let screen = mutt.wait_for("gamma");
    assert!(screen.contains("alpha") && screen.contains("beta") && screen.contains("gamma"), "{screen}");
    // Read alpha.
    mutt.keys(&["/", "alpha", "Enter", "Enter"]);
    let screen = mutt.wait_for("body of alpha");
    assert!(screen.contains("Subject: alpha") && screen.contains("body of alpha"), "{screen}");
    // Back to the index; save (move) alpha to Archive.
    mutt.keys(&["q", "s", "C-u", "=Archive", "Enter"]);
    // Flag beta, delete gamma, then sync the mailbox (expunge) and quit.
    mutt.keys(&["/", "beta", "Enter", "F", "/", "gamma", "Enter", "d"]);
    mutt.wait_for("ND");
    mutt.keys(&["$"]);
    let screen = mutt.wait_for("Msgs:1");
    assert!(screen.contains("Msgs:1"), "{screen}");
    mutt.keys(&["q"]);
    drop(mutt);

    let base = server.data_dir().join("mail/tyler");
    let inbox = server.mailbox_now("tyler");
    assert_eq!(inbox.len(), 1, "alpha moved, gamma deleted");
    assert!(inbox[0].contains("Subject: beta"));
    let names = maildir_names(&base);
    assert!(names[0].split(":2,").nth(1).unwrap().contains('F'), "beta is flagged: {names:?}");
    let archived = maildir_names(&base.join(".Archive"));
    assert_eq!(archived.len(), 1);
    assert!(archived[0].split(":2,").nth(1).unwrap().contains('S'), "alpha was read: {archived:?}");
    assert!(std::fs::read_to_string(base.join(".Archive/cur").join(&archived[0])).unwrap().contains("Subject: alpha"));
}

#[test]
fn mutt_reads_over_imaps_what_swaks_submitted_over_tls() {
    // The security issue's end-to-end case: submission with STARTTLS and AUTH PLAIN on the
    // submission port, then reading over implicit TLS, trusting only the server's certificate.
    let server = Server::start_with(Setup { users: vec!["tyler".into(), "hunt".into()], tls: true, ..Setup::default() });
    let sent = Command::new("swaks")
        .args(["--server", &format!("127.0.0.1:{}", server.port("submission")), "--tls", "--auth", "PLAIN"])
        .args(["--auth-user", "tyler", "--auth-password", "secret", "--from", "tyler@localhost", "--to", "hunt@localhost"])
        .args(["--header", "Subject: submitted over TLS", "--body", "read me over IMAPS"])
        .output()
        .expect("swaks is needed for this test");
    assert!(sent.status.success(), "{}", String::from_utf8_lossy(&sent.stdout));
    server.wait_for_queue();
    let home = tempfile::tempdir().unwrap();
    let folder = format!("imaps://hunt@127.0.0.1:{}/", server.port("imaps"));
    let extra = format!("set certificate_file=\"{}\"\nset ssl_force_tls=yes\nset ssl_verify_host=no\n", server.cert().display());
    let mutt = Mutt::start(home.path(), &folder, &extra);
    let screen = mutt.wait_for("submitted over TLS");
    assert!(screen.contains("submitted over TLS"), "{screen}");
    mutt.keys(&["Enter"]);
    let screen = mutt.wait_for("read me over IMAPS");
    assert!(screen.contains("read me over IMAPS") && screen.contains("with ESMTPSA"), "{screen}");
    mutt.keys(&["q", "q"]);
}
