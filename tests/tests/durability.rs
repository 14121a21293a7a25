//! Durability: a message answered 250 is in the queue on disk and survives `kill -9`; a
//! delivery interrupted by `kill -9` is finished after the restart without second copies; a
//! queue that cannot be written answers 451 4.3.0; a mailbox that fails is retried.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use wasmail_tests::{read_maildir, Client, Server, Setup};

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
    // The restarted server delivers what the queue held.
    let server = server.restarted();
    server.wait_for_queue();
    for user in ["tyler", "hunt"] {
        let count = subjects(&read_maildir(&server.data_dir().join("mail").join(user)));
        for marker in &acked {
            assert_eq!(count.get(marker), Some(&1), "{user}: {marker} was answered 250 but is stored {:?} times", count.get(marker));
        }
        assert!(count.values().all(|&n| n == 1), "{user}: a message stored twice");
        // At most one message per session can be queued without its 250 having arrived.
        assert!(count.len() <= acked.len() + 8, "{user}: {} stored, {} acknowledged", count.len(), acked.len());
    }
    // And goes on taking mail.
    let mut c = server.connect();
    c.greet();
    assert_eq!(c.send_mail("a@client.test", &["tyler@localhost"], "Subject: after restart\r\n\r\nok\r\n").code, 250);
    assert!(server.mailbox("tyler").iter().any(|m| m.contains("Subject: after restart")));
}

#[test]
fn a_crash_between_the_group_fsync_and_the_replies_loses_nothing_acknowledged() {
    // The server aborts right after the spool log's first sync, before any session hears
    // that its message is safe.
    let server = Server::start_with(Setup { failpoint: Some("spool-synced".into()), ..Setup::default() });
    let addr = server.smtp;
    let senders: Vec<_> = (0..8)
        .map(|session| {
            std::thread::spawn(move || {
                let mut c = Client::connect(addr);
                c.greet();
                let marker = format!("crash-{session}");
                let sent = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    c.send_mail("load@client.test", &["tyler@localhost"], &format!("Subject: {marker}\r\n\r\n{}", BODY_LINE.repeat(20)))
                }));
                // Some(code) if a reply came; None if the connection died first.
                sent.ok().map(|reply| reply.code)
            })
        })
        .collect();
    let replies: Vec<Option<u16>> = senders.into_iter().map(|s| s.join().unwrap()).collect();
    // Nobody was told 250: the process ended between the sync and the replies.
    assert!(replies.iter().all(|r| r.is_none()), "{replies:?}");
    // After the restart each message is delivered whole or not at all, and none twice: those
    // the sync covered may be (their clients, told nothing, will send them again).
    let server = server.restarted();
    server.wait_for_queue();
    let count = subjects(&read_maildir(&server.data_dir().join("mail").join("tyler")));
    assert!(count.values().all(|&n| n == 1), "{count:?}");
    assert!(!count.is_empty(), "the synced batch is in the log and delivered after the restart");
    let mut c = server.connect();
    c.greet();
    assert_eq!(c.send_mail("a@client.test", &["tyler@localhost"], "Subject: after\r\n\r\nok\r\n").code, 250);
}

/// Counts stored messages by subject, checking that each is whole.
fn subjects(messages: &[String]) -> HashMap<String, usize> {
    let mut count: HashMap<String, usize> = HashMap::new();
    for message in messages {
        let subject = message.lines().find_map(|l| l.strip_prefix("Subject: ")).expect("subject").to_string();
        // A stored message is whole: headers, the body, the final line end.
        assert!(message.ends_with(&BODY_LINE.repeat(20).replace("\r\n", "\n")), "truncated message {subject}");
        *count.entry(subject).or_default() += 1;
    }
    count
}

#[test]
fn a_delivery_killed_half_way_is_finished_after_the_restart_exactly_once() {
    // One delivery at a time, so that the kill finds a batch in progress.
    let server = Server::start_with(Setup { smtp: "[queue]\nworkers = 1\n".into(), ..Setup::default() });
    let users: Vec<String> = (0..40).map(|i| format!("user{i}@localhost")).collect();
    let to: Vec<&str> = users.iter().map(String::as_str).collect();
    let mut c = server.connect();
    c.greet();
    let mut acked = Vec::new();
    let mut killed_mid_batch = false;
    let mut server = Some(server);
    for n in 0..60 {
        let marker = format!("batch-{n}");
        let reply = c.send_mail("load@client.test", &to, &format!("Subject: {marker}\r\n\r\n{}", BODY_LINE.repeat(20)));
        assert_eq!(reply.code, 250);
        acked.push(marker);
        let s = server.as_ref().unwrap();
        let delivered = std::fs::read_dir(s.data_dir().join("mail")).map(|d| d.count()).unwrap_or(0);
        if n >= 10 && delivered > 0 {
            // Deliveries have begun and the queue still holds most of the batch.
            let queued = s.queued().len();
            server.as_mut().unwrap().kill9();
            killed_mid_batch = queued > 0;
            break;
        }
    }
    assert!(killed_mid_batch, "the kill did not land in the middle of a batch");
    let server = server.take().unwrap().restarted();
    server.wait_for_queue();
    for user in &users {
        let name = user.split('@').next().unwrap();
        let count = subjects(&read_maildir(&server.data_dir().join("mail").join(name)));
        for marker in &acked {
            assert_eq!(count.get(marker), Some(&1), "{name}: {marker} stored {:?} times", count.get(marker));
        }
        assert_eq!(count.len(), acked.len(), "{name}");
    }
}

#[test]
fn a_queue_that_cannot_be_written_answers_451_and_keeps_nothing() {
    let server = Server::start();
    // A file where the spool folder should be: the message cannot be queued.
    let queue = server.data_dir().join("queue");
    std::fs::remove_dir_all(&queue).unwrap();
    std::fs::write(&queue, b"not a folder").unwrap();
    let mut c = server.connect();
    c.greet();
    let reply = c.send_mail("a@client.test", &["tyler@localhost"], "Subject: lost?\r\n\r\nx\r\n");
    assert_eq!((reply.code, reply.text()), (451, "4.3.0 Local error in processing, try again later".to_string()));
    // The client keeps it and retries; once the spool is back, it is taken.
    std::fs::remove_file(&queue).unwrap();
    std::fs::create_dir(&queue).unwrap();
    assert_eq!(c.send_mail("a@client.test", &["tyler@localhost"], "Subject: retry\r\n\r\nx\r\n").code, 250);
    let stored = server.mailbox("tyler");
    assert_eq!(stored.len(), 1);
    assert!(stored[0].contains("Subject: retry"));
}

#[test]
fn a_failing_mailbox_is_retried_and_the_others_get_one_copy() {
    let server = Server::start_with(Setup { smtp: "[queue]\nretry_intervals = [\"1s\"]\n".into(), ..Setup::default() });
    // hunt's mailbox cannot be created (a file stands where its folder should be); tyler's can.
    std::fs::create_dir_all(server.data_dir().join("mail")).unwrap();
    std::fs::write(server.data_dir().join("mail/hunt"), b"not a folder").unwrap();
    let mut c = server.connect();
    c.greet();
    assert_eq!(c.send_mail("a@client.test", &["tyler@localhost", "hunt@localhost"], "Subject: both\r\n\r\nx\r\n").code, 250);
    // tyler has it; hunt's copy waits in the queue.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while server.mailbox_now("tyler").is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(server.mailbox_now("tyler").len(), 1);
    assert_eq!(server.queued().len(), 1);
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(server.queued().len(), 1, "still failing, still queued");
    // Once the mailbox can be written, the retry delivers hunt's copy, and only that.
    std::fs::remove_file(server.data_dir().join("mail/hunt")).unwrap();
    assert_eq!(server.mailbox("hunt").len(), 1);
    assert_eq!(server.mailbox("tyler").len(), 1);
    assert!(server.logged(|l| l.contains("delivery deferred")));
}
