//! A `250` is a promise: no scan, admin command or failed notice may lose a message the
//! server acknowledged. Each test here pushes one path that used to lose mail.

use std::collections::HashMap;
use std::io::Write as _;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmail_tests::{wasmail_bin, Server, Setup};

/// Four senders, 100 messages each, while `wasmail queue list` and ETRN run in loops: every
/// message answered `250` is in the mailbox exactly once. (The scan used to remove a message
/// whose envelope a session had not renamed into place yet, as a "crash leftover".)
#[test]
fn queue_list_and_etrn_under_load_lose_no_acknowledged_message() {
    let server = Arc::new(Server::start_with(Setup { top: "relay_networks = [\"127.0.0.0/8\"]".into(), ..Setup::default() }));
    let stop = Arc::new(AtomicBool::new(false));
    let lister = {
        let (server, stop) = (Arc::clone(&server), Arc::clone(&stop));
        std::thread::spawn(move || {
            let mut runs = 0;
            while !stop.load(Ordering::Relaxed) {
                let (ok, _, err) = server.queue_command(&["list"]);
                assert!(ok, "queue list: {err}");
                runs += 1;
            }
            runs
        })
    };
    let etrn = {
        let (server, stop) = (Arc::clone(&server), Arc::clone(&stop));
        std::thread::spawn(move || {
            let mut c = server.connect();
            c.greet();
            let mut runs = 0;
            while !stop.load(Ordering::Relaxed) {
                let reply = c.command("ETRN localhost");
                assert!(reply.code == 251 || reply.code == 253, "ETRN: {}", reply.text());
                runs += 1;
                // Hundreds of scans a second, not tens of thousands: each ETRN logs a line,
                // and a tight loop fills the log faster than a busy disk takes it.
                std::thread::sleep(Duration::from_millis(2));
            }
            runs
        })
    };
    let senders: Vec<_> = (0..4)
        .map(|s| {
            let server = Arc::clone(&server);
            std::thread::spawn(move || {
                let mut accepted = Vec::new();
                let mut c = server.connect();
                c.greet();
                for m in 0..100 {
                    let subject = format!("load {s}-{m}");
                    let reply = c.send_mail("daniel@client.example", &["tyler@localhost"], &format!("Subject: {subject}\r\n\r\nbody\r\n"));
                    assert_eq!(reply.code, 250, "{}", reply.text());
                    accepted.push(subject);
                }
                accepted
            })
        })
        .collect();
    let accepted: Vec<String> = senders.into_iter().flat_map(|t| t.join().unwrap()).collect();
    stop.store(true, Ordering::Relaxed);
    let (lists, etrns) = (lister.join().unwrap(), etrn.join().unwrap());
    assert!(lists > 0 && etrns > 0, "the scans ran: {lists} lists, {etrns} ETRNs");
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut counts: HashMap<String, usize> = HashMap::new();
    while Instant::now() < deadline {
        counts.clear();
        for message in server.mailbox_now("tyler") {
            let subject = message.lines().find_map(|l| l.strip_prefix("Subject: ")).unwrap_or_default().to_string();
            *counts.entry(subject).or_default() += 1;
        }
        if counts.len() >= accepted.len() && server.queued().is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let missing: Vec<&String> = accepted.iter().filter(|s| !counts.contains_key(*s)).collect();
    assert!(
        missing.is_empty(),
        "{} of {} acknowledged messages never arrived, e.g. {:?}",
        missing.len(),
        accepted.len(),
        &missing[..missing.len().min(5)]
    );
    assert!(counts.values().all(|&n| n == 1), "a message was delivered twice");
    assert!(!server.log().iter().any(|l| l.contains("queue entry removed")), "an entry was removed");
}

/// A server whose retries are an hour apart, with a message to hunt, whose mailbox cannot be
/// created (a file stands in its place), waiting in the queue. Returns its queue id.
fn stuck_message(server: &Server) -> String {
    std::fs::create_dir_all(server.data_dir().join("mail")).unwrap();
    std::fs::write(server.data_dir().join("mail/hunt"), b"not a folder").unwrap();
    let mut c = server.connect();
    c.greet();
    let reply = c.send_mail("daniel@client.example", &["hunt@localhost"], "Subject: stuck\r\n\r\nx\r\n");
    assert_eq!(reply.code, 250);
    assert!(server.logged(|l| l.contains("delivery deferred")), "no deferral logged");
    reply.text().split_whitespace().nth(1).unwrap().to_string()
}

/// A queue entry whose message file disappeared is an error to report, not a removal: the
/// envelope stays for the operator.
#[test]
fn an_entry_whose_message_file_is_gone_is_kept_and_reported() {
    let server = Server::start_with(Setup { smtp: "[queue]\nretry_intervals = [\"1h\"]\n".into(), ..Setup::default() });
    let id = stuck_message(&server);
    std::fs::remove_file(server.data_dir().join(format!("queue/{id}.msg"))).unwrap();
    assert!(server.queue_command(&["flush"]).0);
    assert!(server.logged(|l| l.contains("cannot read the queued message") && l.contains(&id)), "the damage is not logged");
    assert!(server.data_dir().join(format!("queue/{id}.env")).exists(), "the envelope was removed");
    let (_, list, _) = server.queue_command(&["list"]);
    assert!(list.starts_with(&id), "{list}");
    // The operator removes it, through the server.
    let (ok, out, err) = server.queue_command(&["remove", &id]);
    assert!(ok && out == format!("{id}: removed\n"), "{out}{err}");
    assert!(server.queued().is_empty());
}

/// With no server running, `queue remove` takes the spool's lock and removes the files
/// itself; with one running, the server holds the lock and does the removal.
#[test]
fn remove_without_a_running_server_works_on_the_files_under_the_lock() {
    let mut server = Server::start_with(Setup { smtp: "[queue]\nretry_intervals = [\"1h\"]\n".into(), ..Setup::default() });
    let id = stuck_message(&server);
    server.kill9();
    let (ok, out, err) = server.queue_command(&["remove", &id]);
    assert!(ok && out == format!("{id}: removed\n"), "{out}{err}");
    assert!(server.queued().is_empty());
    assert!(!server.data_dir().join(format!("queue/{id}.msg")).exists());
}

/// The bounce of a message could not be queued (a write past the file size limit fails):
/// the entry stays, says the notice is owed, and after a restart without the limit the
/// sender gets the bounce. (The entry used to be removed with the notice lost.)
#[test]
fn a_bounce_that_cannot_be_queued_keeps_the_entry_until_it_can() {
    // The message is a little over 200 KiB; its bounce (RET=FULL) carries it whole with
    // the report around it, and is larger than the 201 KiB limit, while the message and
    // its envelope fit.
    let server = Server::start_with(Setup {
        smtp: "[queue]\nretry_intervals = [\"1s\"]\nmax_age = \"1s\"\n".into(),
        file_size_limit_kib: Some(201),
        ..Setup::default()
    });
    std::fs::create_dir_all(server.data_dir().join("mail")).unwrap();
    std::fs::write(server.data_dir().join("mail/hunt"), b"not a folder").unwrap();
    let body: String = (0..400).map(|i| format!("{i:04} {}\r\n", "x".repeat(505))).collect();
    let mut c = server.connect();
    c.greet();
    let reply = c.send_mail("tyler@localhost", &["hunt@localhost"], &format!("Subject: doomed\r\n\r\n{body}"));
    assert_eq!(reply.code, 250, "{}", reply.text());
    let id = reply.text().split_whitespace().nth(1).unwrap().to_string();
    assert!(server.logged(|l| l.contains("cannot queue a delivery status notice")), "the notice did not fail as the test needs");
    // Several attempts later the entry is still there, the notice owed.
    std::thread::sleep(Duration::from_secs(3));
    let (_, list, _) = server.queue_command(&["list"]);
    assert!(list.starts_with(&id) && list.contains("notice to the sender not queued yet"), "{list}");
    assert!(server.mailbox_now("tyler").is_empty());
    // Without the limit the notice goes out, and the entry with it.
    let server = server.restarted();
    let deadline = Instant::now() + Duration::from_secs(30);
    while server.mailbox_now("tyler").is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let bounces = server.mailbox("tyler");
    assert_eq!(bounces.len(), 1, "the bounce never came");
    assert!(bounces[0].contains("hunt@localhost") && bounces[0].contains("multipart/report"), "{}", &bounces[0][..2000.min(bounces[0].len())]);
}

/// `wasmail queue list | head -1`: the reader goes away, the command ends quietly with 0.
#[test]
fn queue_list_into_a_closed_pipe_ends_quietly() {
    let server = Server::start_with(Setup { smtp: "[queue]\nretry_intervals = [\"1h\"]\n".into(), ..Setup::default() });
    std::fs::create_dir_all(server.data_dir().join("mail")).unwrap();
    std::fs::write(server.data_dir().join("mail/hunt"), b"not a folder").unwrap();
    let mut c = server.connect();
    c.greet();
    // Enough entries that the listing is far larger than a pipe's buffer.
    for i in 0..40 {
        let recipients: Vec<String> = (0..50).map(|n| format!("hunt+{n}@localhost")).collect();
        let recipients: Vec<&str> = recipients.iter().map(String::as_str).collect();
        assert_eq!(c.send_mail("daniel@client.example", &recipients, &format!("Subject: {i}\r\n\r\nx\r\n")).code, 250);
    }
    let mut list = Command::new(wasmail_bin())
        .args(["queue", "list", "--config"])
        .arg(server.config_path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Read one line, then close the pipe, as `head -1` does.
    let mut stdout = list.stdout.take().unwrap();
    let mut first = [0u8; 64];
    let _ = std::io::Read::read(&mut stdout, &mut first).unwrap();
    drop(stdout);
    let output = list.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "exit {:?}: {stderr}", output.status);
    assert!(!stderr.contains("panicked"), "{stderr}");
    let _ = std::io::stderr().flush();
}
