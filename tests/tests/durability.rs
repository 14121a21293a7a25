//! Durability: a message answered 250 is on disk and survives `kill -9`; a failed store
//! answers 451 4.3.0 and leaves nothing visible.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use wasmail_tests::{read_maildir, Client, Server};

/// 100 octets with CRLF; twenty of them make a 2 kB body.
const BODY_LINE: &str = "0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnop\r\n";

#[test]
fn every_message_answered_250_survives_kill_9_exactly_once() {
    let mut server = Server::start();
    let addr = server.smtp;
    let acked: Arc<Mutex<Vec<String>>> = Arc::default();
    let unexpected: Arc<Mutex<Vec<String>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let mut senders = Vec::new();
    for session in 0..8 {
        let acked = Arc::clone(&acked);
        let unexpected = Arc::clone(&unexpected);
        let stop = Arc::clone(&stop);
        senders.push(std::thread::spawn(move || {
            let mut c = Client::connect(addr);
            c.greet();
            for n in 0.. {
                if stop.load(Ordering::Relaxed) {
                    return;
                }
                let marker = format!("s{session}-m{n}");
                // Any failure here is the kill: stop quietly.
                let sent = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    c.send_mail(
                        "load@client.test",
                        &["tyler@localhost", "hunt@localhost"],
                        &format!("Subject: {marker}\r\n\r\n{}", BODY_LINE.repeat(20)),
                    )
                }));
                match sent {
                    Ok(reply) if reply.code == 250 => acked.lock().unwrap().push(marker),
                    Ok(reply) => {
                        unexpected.lock().unwrap().push(format!("{marker}: {reply:?}"));
                        return;
                    }
                    Err(_) => return,
                }
            }
        }));
    }
    // Let the load run until a good number of messages are acknowledged, then crash the
    // server in the middle of it.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while acked.lock().unwrap().len() < 200 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    server.kill9();
    stop.store(true, Ordering::Relaxed);
    for s in senders {
        let _ = s.join();
    }
    // Before the kill every reply was 250; after it there are no replies at all.
    assert!(unexpected.lock().unwrap().is_empty(), "{:?}", unexpected.lock().unwrap());
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() > 20, "too little load to mean anything: {}", acked.len());
    for user in ["tyler", "hunt"] {
        let mut count: HashMap<String, usize> = HashMap::new();
        for message in read_maildir(&server.data_dir().join("mail").join(user)) {
            let subject = message.lines().find_map(|l| l.strip_prefix("Subject: ")).expect("subject").to_string();
            // A stored message is whole: headers, the body, the final line end.
            assert!(message.ends_with(&BODY_LINE.repeat(20).replace("\r\n", "\n")), "truncated message {subject}");
            *count.entry(subject).or_default() += 1;
        }
        for marker in &acked {
            assert_eq!(count.get(marker), Some(&1), "{user}: {marker} was answered 250 but is stored {:?} times", count.get(marker));
        }
        assert!(count.values().all(|&n| n == 1), "{user}: a message stored twice");
        // At most one message per session can be stored without its 250 having arrived.
        assert!(count.len() <= acked.len() + 8, "{user}: {} stored, {} acknowledged", count.len(), acked.len());
    }

    // The restarted server finds the same mailboxes and goes on.
    let dir = std::mem::replace(&mut server.dir, tempfile::tempdir().unwrap());
    let config = dir.path().join("wasmail.toml");
    let server = Server::spawn(dir, &["serve", "--config", config.to_str().unwrap()]);
    let mut c = server.connect();
    c.greet();
    assert_eq!(c.send_mail("a@client.test", &["tyler@localhost"], "Subject: after restart\r\n\r\nok\r\n").code, 250);
    assert!(server.mailbox("tyler").iter().any(|m| m.contains("Subject: after restart")));
}

#[test]
fn a_failing_store_answers_451_and_leaves_nothing() {
    let server = Server::start();
    // hunt's mailbox cannot be created (a file stands where its folder should be); tyler's can.
    std::fs::create_dir_all(server.data_dir().join("mail")).unwrap();
    std::fs::write(server.data_dir().join("mail/hunt"), b"not a folder").unwrap();
    let mut c = server.connect();
    c.greet();
    let reply = c.send_mail("a@client.test", &["tyler@localhost", "hunt@localhost"], "Subject: both\r\n\r\nx\r\n");
    assert_eq!((reply.code, reply.text()), (451, "4.3.0 Local error in processing, try again later".to_string()));
    // tyler's copy was taken back, so that the client's retry does not make two.
    assert!(server.mailbox("tyler").is_empty());
    assert!(std::fs::read_dir(server.data_dir().join("mail/tyler/tmp")).unwrap().next().is_none());
    // The session goes on, and mail to tyler alone is stored.
    assert_eq!(c.send_mail("a@client.test", &["tyler@localhost"], "Subject: one\r\n\r\nx\r\n").code, 250);
    assert_eq!(server.mailbox("tyler").len(), 1);
}
