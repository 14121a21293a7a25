//! NOTIFY (RFC 5465) over a raw IMAP connection: one session sets what it follows and then
//! only reads, while a second session and SMTP change the mailboxes; what the first hears
//! without asking is checked line by line.

use wasmail_tests::imap::Imap;
use wasmail_tests::{Server, Setup};

fn server() -> Server {
    Server::start_with(Setup { users: vec!["tyler".into()], ..Setup::default() })
}

fn deliver(server: &Server, to: &str, message: &str) {
    let mut c = server.connect();
    c.greet();
    assert_eq!(c.send_mail("sender@client.test", &[to], message).code, 250);
    c.expect("QUIT", 221);
}

/// The next untagged response, as text.
fn next(imap: &mut Imap) -> String {
    String::from_utf8_lossy(&imap.response()).into_owned()
}

fn append(imap: &mut Imap, mailbox: &str, subject: &str) {
    let message = format!("Subject: {subject}\r\n\r\nbody\r\n");
    let reply = imap.cmd("ap", &format!("APPEND \"{mailbox}\" {{{}+}}\r\n{message}", message.len()));
    assert!(reply.ok(), "{reply:?}");
}

#[test]
fn other_mailboxes_and_the_selected_one_are_told_as_they_change() {
    let server = server();
    let mut watcher = Imap::login(&server, "tyler");
    let mut other = Imap::login(&server, "tyler");
    assert!(watcher.cmd("c", "CAPABILITY").lines()[0].split(' ').any(|c| c == "NOTIFY"));
    for name in ["Lists/rust", "Spam", "Other"] {
        assert!(other.cmd("c", &format!("CREATE {name}")).ok());
    }
    append(&mut other, "Lists/rust", "first");

    // SET STATUS: the STATUS of every followed mailbox at once, not of Spam (left out by the
    // first group that names it) nor of INBOX (selected next, so not yet: it is not).
    let set = watcher.cmd(
        "n1",
        "NOTIFY SET STATUS (selected (MessageNew (UID FLAGS) MessageExpunge FlagChange)) (mailboxes Spam NONE) \
         (personal (MessageNew MessageExpunge FlagChange MailboxName SubscriptionChange))",
    );
    assert!(set.ok(), "{set:?}");
    let rust = set.lines().into_iter().find(|l| l.starts_with("STATUS \"Lists/rust\" ")).expect("Lists/rust's STATUS");
    assert!(rust.contains("UIDNEXT 2 MESSAGES 1 UNSEEN 1 HIGHESTMODSEQ "), "{rust}");
    assert!(set.lines().iter().any(|l| l.starts_with("STATUS \"INBOX\" (")), "{set:?}");
    assert!(set.lines().iter().any(|l| l.starts_with("STATUS \"Other\" (")), "{set:?}");
    assert!(!set.lines().iter().any(|l| l.contains("Spam")), "{set:?}");
    assert!(watcher.cmd("s", "SELECT INBOX").ok());

    // From here the watcher sends nothing: each notice arrives on its own.
    append(&mut other, "Spam", "ignored");
    append(&mut other, "Other", "second");
    assert_eq!(next(&mut watcher), "* STATUS \"Other\" (MESSAGES 1 UIDNEXT 2 UNSEEN 1)");
    deliver(&server, "tyler@localhost", "Subject: pushed\r\n\r\nhello\r\n");
    assert_eq!(next(&mut watcher), "* 1 EXISTS");
    assert_eq!(next(&mut watcher), "* 1 RECENT");
    assert_eq!(next(&mut watcher), "* 1 FETCH (UID 1 FLAGS (\\Recent))");
    // Flags and expunges elsewhere.
    assert!(other.cmd("s", "SELECT \"Lists/rust\"").ok());
    assert!(other.cmd("f", "STORE 1 +FLAGS (\\Seen)").ok());
    assert_eq!(next(&mut watcher), "* STATUS \"Lists/rust\" (UNSEEN 0)");
    assert!(other.cmd("f", "STORE 1 +FLAGS (\\Deleted)").ok());
    assert_eq!(next(&mut watcher), "* STATUS \"Lists/rust\" (UNSEEN 0)");
    assert!(other.cmd("e", "EXPUNGE").ok());
    assert_eq!(next(&mut watcher), "* STATUS \"Lists/rust\" (MESSAGES 0 UIDNEXT 2 UNSEEN 0)");
    // In the selected mailbox, as they happen (an expunge too, as `selected` allows).
    assert!(other.cmd("s", "SELECT INBOX").ok());
    assert!(other.cmd("f", "STORE 1 +FLAGS (\\Flagged)").ok());
    assert_eq!(next(&mut watcher), "* 1 FETCH (FLAGS (\\Flagged \\Recent))");
    // Mailbox names and subscriptions.
    assert!(other.cmd("c", "CREATE New").ok());
    assert_eq!(next(&mut watcher), "* LIST () \"/\" \"New\"");
    assert!(other.cmd("r", "RENAME New Newer").ok());
    assert_eq!(next(&mut watcher), "* LIST () \"/\" \"Newer\" (\"OLDNAME\" (\"New\"))");
    assert!(other.cmd("u", "SUBSCRIBE Newer").ok());
    assert_eq!(next(&mut watcher), "* LIST (\\Subscribed) \"/\" \"Newer\"");
    assert!(other.cmd("d", "DELETE Newer").ok());
    assert_eq!(next(&mut watcher), "* LIST (\\NonExistent) \"/\" \"Newer\"");
    assert!(other.cmd("f", "STORE 1 +FLAGS (\\Deleted)").ok());
    assert_eq!(next(&mut watcher), "* 1 FETCH (FLAGS (\\Flagged \\Deleted \\Recent))");
    assert!(other.cmd("e", "EXPUNGE").ok());
    assert_eq!(next(&mut watcher), "* 1 EXPUNGE");

    // NOTIFY NONE: nothing more without asking; the next command shows only its own.
    assert!(watcher.cmd("n2", "NOTIFY NONE").ok());
    append(&mut other, "Other", "third");
    let noop = watcher.cmd("n3", "NOOP");
    assert!(noop.ok() && noop.untagged.is_empty(), "{noop:?}");
}

#[test]
fn changes_queued_during_a_command_are_told_after_it_once_per_mailbox() {
    let server = server();
    let mut watcher = Imap::login(&server, "tyler");
    let mut other = Imap::login(&server, "tyler");
    assert!(other.cmd("c", "CREATE Other").ok());
    assert!(watcher.cmd("n", "NOTIFY SET (subtree Other (MessageNew MessageExpunge))").ok());
    // IDLE hears them too.
    watcher.send(b"i IDLE\r\n");
    assert_eq!(next(&mut watcher), "+ idling");
    append(&mut other, "Other", "one");
    assert_eq!(next(&mut watcher), "* STATUS \"Other\" (MESSAGES 1 UIDNEXT 2 UNSEEN 1)");
    watcher.send(b"DONE\r\n");
    assert!(watcher.until("i").ok());
    // Ten appends while the watcher's command is still being sent (nothing is told in the
    // middle of a command): one STATUS with all ten, once the command is whole.
    watcher.send(b"a APPEND INBOX {5+}\r\n");
    for i in 0..10 {
        append(&mut other, "Other", &format!("m{i}"));
    }
    watcher.send(b"hello\r\n");
    let appended = watcher.until("a");
    assert!(appended.ok(), "{appended:?}");
    assert_eq!(appended.lines(), ["STATUS \"Other\" (MESSAGES 11 UIDNEXT 12 UNSEEN 11)"]);
    // A mailbox under the subtree counts; one beside it (a prefix of the name) does not.
    assert!(other.cmd("c", "CREATE OtherThings").ok());
    assert!(other.cmd("c", "CREATE Other/deeper").ok());
    append(&mut other, "OtherThings", "no");
    append(&mut other, "Other/deeper", "yes");
    assert_eq!(next(&mut watcher), "* STATUS \"Other/deeper\" (MESSAGES 1 UIDNEXT 2 UNSEEN 1)");
}

#[test]
fn what_cannot_be_followed_is_refused_clearly() {
    let server = server();
    let mut imap = Imap::login(&server, "tyler");
    let bad = imap.cmd("a", "NOTIFY SET (personal (MessageNew AnnotationChange))");
    assert_eq!(bad.tagged, "a NO [BADEVENT (MessageNew MessageExpunge FlagChange MailboxName SubscriptionChange)] Unsupported NOTIFY events");
    let extension = imap.cmd("b", "NOTIFY SET (inboxes (QuotaChange))");
    assert!(extension.tagged.starts_with("b NO [BADEVENT ("), "{extension:?}");
    // RFC 5465: new and expunged messages of the selected mailbox go together.
    assert!(imap.cmd("c", "NOTIFY SET (selected (MessageNew))").tagged.starts_with("c BAD "));
    assert!(imap.cmd("d", "NOTIFY SET (personal (MessageNew (UID)))").tagged.starts_with("d BAD "));
    assert!(imap.cmd("e", "NOTIFY SET (selected NONE) (selected-delayed NONE)").tagged.starts_with("e BAD "));
    assert!(imap.cmd("f", "NOTIFY UNSET").tagged.starts_with("f BAD "));
    // At most 100 mailbox names.
    let names: Vec<String> = (0..101).map(|i| format!("box{i}")).collect();
    let many = imap.cmd("g", &format!("NOTIFY SET (mailboxes ({}) (MessageNew))", names.join(" ")));
    assert!(many.tagged.starts_with("g NO [NOTIFICATIONOVERFLOW] "), "{many:?}");
    let hundred = imap.cmd("h", &format!("NOTIFY SET (mailboxes ({}) (MessageNew))", names[..100].join(" ")));
    assert!(hundred.ok(), "{hundred:?}");
}

#[test]
fn a_session_too_far_behind_is_told_of_the_overflow_not_buffered_for() {
    let server = server();
    let mut watcher = Imap::login(&server, "tyler");
    let mut other = Imap::login(&server, "tyler");
    assert!(other.cmd("c", "CREATE Other").ok());
    append(&mut other, "Other", "flip");
    // Enough to fill the socket buffers: the watcher's FETCH blocks while it does not read.
    let big = format!("Subject: big\r\n\r\n{}", "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcd\r\n".repeat(100_000));
    for _ in 0..3 {
        let reply = watcher.cmd("ap", &format!("APPEND INBOX {{{}+}}\r\n{big}", big.len()));
        assert!(reply.ok(), "{reply:?}");
    }
    assert!(watcher.cmd("n", "NOTIFY SET (personal (FlagChange))").ok());
    assert!(watcher.cmd("s", "SELECT INBOX").ok());
    let baseline = server.rss_kib();
    watcher.send(b"f FETCH 1:* BODY.PEEK[]\r\nf2 FETCH 1:* BODY.PEEK[]\r\n");
    // More flag changes than the store keeps for a session (1,024) while it is stuck.
    assert!(other.cmd("s", "SELECT Other").ok());
    let mut pipeline = String::new();
    for i in 0..1_100 {
        pipeline.push_str(&format!("t{i} STORE 1 {}FLAGS (\\Seen)\r\n", if i % 2 == 0 { '+' } else { '-' }));
    }
    other.send(pipeline.as_bytes());
    assert!(other.until("t1099").ok());
    let grown = server.rss_kib().saturating_sub(baseline);
    assert!(watcher.until("f").ok());
    // Told as soon as the command that held it up is done.
    assert_eq!(next(&mut watcher), "* OK [NOTIFICATIONOVERFLOW] Too many events to follow; NOTIFY is off");
    assert!(watcher.until("f2").ok());
    // NOTIFY is off: another change is not told.
    assert!(other.cmd("t", "STORE 1 +FLAGS (\\Seen)").ok());
    let noop = watcher.cmd("z", "NOOP");
    assert!(noop.untagged.is_empty(), "{noop:?}");
    assert!(grown < 64 * 1024, "the server grew {grown} KiB while a session lagged");
}
