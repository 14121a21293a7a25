//! Per-user quotas (`[quota]`, IMAP QUOTA of RFC 9208): reported by GETQUOTA/GETQUOTAROOT,
//! enforced at IMAP APPEND and COPY with NO [OVERQUOTA], and at delivery, where a message over
//! the limit waits in the queue (4.2.2) and goes in once the user made room.

use wasmail_tests::imap::Imap;
use wasmail_tests::{Server, Setup};

fn append(imap: &mut Imap, tag: &str, subject: &str) -> String {
    let message = format!("Subject: {subject}\r\n\r\n{}\r\n", "x".repeat(800));
    imap.send(format!("{tag} APPEND INBOX {{{}+}}\r\n{message}\r\n", message.len()).as_bytes());
    imap.until(tag).tagged
}

#[test]
fn quotas_are_reported_and_enforced_at_append_copy_and_delivery() {
    let server = Server::start_with(Setup {
        users: vec!["tyler".into()],
        smtp: "[quota]\nstorage = \"2KiB\"\nmessages = 3\n[queue]\nretry_intervals = [\"1h\"]\n".into(),
        ..Setup::default()
    });
    let mut imap = Imap::login(&server, "tyler");
    let caps = imap.cmd("c", "CAPABILITY").lines()[0].clone();
    assert!(caps.contains(" QUOTA ") && caps.contains(" QUOTA=RES-STORAGE") && caps.contains(" QUOTA=RES-MESSAGE"), "{caps}");
    let root = imap.cmd("q1", "GETQUOTAROOT INBOX");
    assert_eq!(root.lines(), ["QUOTAROOT \"INBOX\" \"\"", "QUOTA \"\" (STORAGE 0 2 MESSAGE 0 3)"], "{root:?}");
    assert!(append(&mut imap, "a1", "one").starts_with("a1 OK"));
    assert!(append(&mut imap, "a2", "two").starts_with("a2 OK"));
    assert!(imap.cmd("q2", "GETQUOTA \"\"").has("QUOTA \"\" (STORAGE 2 2 MESSAGE 2 3)"));
    // A third 800-octet message would pass 2 KiB.
    assert!(append(&mut imap, "a3", "three").starts_with("a3 NO [OVERQUOTA]"));
    assert!(imap.cmd("s", "SELECT INBOX").has("2 EXISTS"));
    assert!(imap.cmd("c1", "COPY 1 Archive").tagged.starts_with("c1 NO [OVERQUOTA]"));
    assert!(imap.cmd("m1", "MOVE 1 Archive").ok(), "a MOVE adds nothing");
    assert!(imap.cmd("q3", "SETQUOTA \"\" (STORAGE 10)").tagged.starts_with("q3 NO [NOPERM]"));
    assert!(imap.cmd("q4", "GETQUOTA \"other\"").tagged.starts_with("q4 NO [NONEXISTENT]"));
    // Mail over the limit waits in the queue, as mailbox full.
    let mut smtp = server.connect();
    smtp.greet();
    let reply = smtp.send_mail("sender@client.test", &["tyler@localhost"], &format!("Subject: big\r\n\r\n{}\r\n", "y".repeat(600)));
    assert_eq!(reply.code, 250);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !server.logged(|l| l.contains("mailbox over quota")) {
        assert!(std::time::Instant::now() < deadline, "no quota deferral logged");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let (_, list, _) = server.queue_command(&["list"]);
    assert!(list.contains("pending (mailbox full: over the user's quota)"), "{list}");
    // Room made: the next attempt delivers it.
    assert!(imap.cmd("d1", "SELECT Archive").ok());
    assert!(imap.cmd("d2", "STORE 1 +FLAGS.SILENT (\\Deleted)").ok());
    let status = imap.cmd("d3", "STATUS Archive (DELETED DELETED-STORAGE)");
    assert!(status.lines()[0].starts_with("STATUS \"Archive\" (DELETED 1 DELETED-STORAGE 8"), "{status:?}");
    assert!(imap.cmd("d4", "EXPUNGE").ok());
    assert!(server.queue_command(&["flush"]).0);
    server.wait_for_queue();
    assert!(imap.cmd("d5", "STATUS INBOX (MESSAGES)").has("STATUS \"INBOX\" (MESSAGES 2)"));
}
