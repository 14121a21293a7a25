//! The delivery queue from the operator's side: `wasmail queue list`, `flush` and `remove`
//! against a running server whose queue holds a message it cannot deliver yet.

use std::time::Duration;

use wasmail_tests::{Server, Setup};

/// A server whose retries are an hour apart, with a message to tyler (delivered) and hunt
/// (whose mailbox cannot be created: a file stands in its place) in the queue.
fn server_with_a_stuck_message() -> (Server, String) {
    let server = Server::start_with(Setup { smtp: "[queue]\nretry_intervals = [\"1h\"]\n".into(), ..Setup::default() });
    std::fs::create_dir_all(server.data_dir().join("mail")).unwrap();
    std::fs::write(server.data_dir().join("mail/hunt"), b"not a folder").unwrap();
    let mut c = server.connect();
    c.greet();
    let reply = c.send_mail("daniel@client.example", &["tyler@localhost", "hunt@localhost"], "Subject: stuck\r\n\r\nx\r\n");
    assert_eq!(reply.code, 250);
    let id = reply.text().split_whitespace().nth(1).unwrap().to_string();
    // The first attempt delivers tyler's copy and defers hunt's.
    assert!(server.logged(|l| l.contains("delivery deferred")), "no deferral logged");
    (server, id)
}

fn queue(server: &Server, args: &[&str]) -> (bool, String, String) {
    server.queue_command(args)
}

#[test]
fn list_shows_the_waiting_message_and_remove_takes_it_out() {
    let (server, id) = server_with_a_stuck_message();
    let (ok, list, _) = queue(&server, &["list"]);
    assert!(ok);
    let first = list.lines().next().unwrap();
    assert!(first.starts_with(&id) && first.contains("daniel@client.example") && first.contains("attempts 1"), "{list}");
    assert!(list.contains("    tyler@localhost delivered (delivered to the mailbox)\n"), "{list}");
    assert!(list.lines().any(|l| l.starts_with("    hunt@localhost pending (")), "{list}");
    assert!(list.ends_with("-- 1 message(s), 1 recipient(s) pending\n"), "{list}");

    let (ok, out, _) = queue(&server, &["remove", &id]);
    assert!(ok && out == format!("{id}: removed\n"), "{out}");
    assert_eq!(queue(&server, &["list"]).1, "Mail queue is empty\n");
    let (ok, _, err) = queue(&server, &["remove", &id]);
    assert!(!ok && err.contains("no such queue entry"), "{err}");
    let (ok, _, err) = queue(&server, &["remove", "../etc"]);
    assert!(!ok && err.contains("bad queue id"), "{err}");
    assert_eq!(server.mailbox_now("tyler").len(), 1);
}

#[test]
fn flush_retries_now_and_by_domain() {
    let (server, _) = server_with_a_stuck_message();
    std::fs::remove_file(server.data_dir().join("mail/hunt")).unwrap();
    // A flush for another domain leaves the entry waiting for its hour.
    let (ok, out, _) = queue(&server, &["flush", "example.org"]);
    assert!(ok, "{out}");
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(server.queued().len(), 1);
    assert!(server.mailbox_now("hunt").is_empty());
    // One for the recipient's domain delivers it.
    assert!(queue(&server, &["flush", "localhost"]).0);
    assert_eq!(server.mailbox("hunt").len(), 1);
    assert_eq!(server.mailbox("tyler").len(), 1, "tyler's copy is not delivered twice");
    assert!(server.logged(|l| l.contains("queue flush") && l.contains("localhost")));
}
