//! The cases Dovecot's imaptest found wrong, each replayed over a raw IMAP connection: flag
//! changes applied to the flags on disk, UIDVALIDITY of a re-created mailbox, \Recent for
//! APPENDed and COPYed messages, source routes in ENVELOPE, address SEARCH through comments,
//! LSUB's \Noselect parents, NO for names that are not modified UTF-7, FLAGS announced before a
//! new keyword, and the largest ID command RFC 2971 allows before login.

use wasmail_tests::imap::{Imap, Reply};
use wasmail_tests::{Server, Setup};

fn server() -> Server {
    Server::start_with(Setup { users: vec!["tyler".into()], ..Setup::default() })
}

/// Appends `message` to `mailbox` (LITERAL+), with `flags` (e.g. `(\Seen)`) if not empty.
fn append(imap: &mut Imap, tag: &str, mailbox: &str, flags: &str, message: &str) -> Reply {
    let flags = if flags.is_empty() { String::new() } else { format!("{flags} ") };
    imap.send(format!("{tag} APPEND {mailbox} {flags}{{{}+}}\r\n{message}\r\n", message.len()).as_bytes());
    imap.until(tag)
}

fn message(subject: &str) -> String {
    format!("From: a@client.test\r\nTo: tyler@localhost\r\nSubject: {subject}\r\n\r\nbody\r\n")
}

/// The number in a `STATUS name (ITEM n)` response.
fn status_item(reply: &Reply, item: &str) -> u32 {
    let line = reply.lines().into_iter().find(|l| l.starts_with("STATUS")).unwrap_or_else(|| panic!("{reply:?}"));
    let at = line.find(&format!("{item} ")).unwrap_or_else(|| panic!("{item} in {line}")) + item.len() + 1;
    line[at..].split([' ', ')']).next().unwrap().parse().unwrap()
}

#[test]
fn a_flag_change_applies_to_the_flags_on_disk_not_to_a_stale_copy() {
    let server = server();
    let mut one = Imap::login(&server, "tyler");
    assert!(append(&mut one, "a1", "INBOX", "(\\Seen)", &message("one")).ok());
    assert!(one.cmd("a2", "SELECT INBOX").ok());
    let mut two = Imap::login(&server, "tyler");
    assert!(two.cmd("b1", "SELECT INBOX").ok());
    // Session one sets \Answered; session two has not heard of it when it removes \Seen.
    assert!(one.cmd("a3", "STORE 1 +FLAGS.SILENT (\\Answered)").ok());
    let removed = two.cmd("b2", "STORE 1 -FLAGS (\\Seen)");
    assert!(removed.ok(), "{removed:?}");
    assert!(removed.has("1 FETCH (FLAGS (\\Answered))"), "the other session's \\Answered was wiped: {removed:?}");
    // Session one learns of the change (its view is brought up to date after the command).
    let fetched = one.cmd("a4", "FETCH 1 FLAGS");
    let last = fetched.lines().into_iter().filter(|l| l.starts_with("1 FETCH")).last().unwrap();
    assert!(last.contains("\\Answered") && !last.contains("\\Seen"), "{fetched:?}");
}

#[test]
fn a_mailbox_made_again_at_once_has_a_greater_uidvalidity() {
    let server = server();
    let mut imap = Imap::login(&server, "tyler");
    assert!(imap.cmd("a1", "CREATE again").ok());
    let first = status_item(&imap.cmd("a2", "STATUS again (UIDVALIDITY UIDNEXT)"), "UIDVALIDITY");
    assert!(imap.cmd("a3", "DELETE again").ok());
    assert!(imap.cmd("a4", "CREATE again").ok());
    let second = status_item(&imap.cmd("a5", "STATUS again (UIDVALIDITY UIDNEXT)"), "UIDVALIDITY");
    assert!(second > first, "UIDVALIDITY {second} after {first} (RFC 3501 2.3.1.1)");
}

#[test]
fn appended_and_copied_messages_are_recent_for_one_session() {
    let server = server();
    let mut watcher = Imap::login(&server, "tyler");
    assert!(watcher.cmd("w1", "CREATE box").ok());
    assert!(watcher.cmd("w2", "SELECT box").ok());
    let mut writer = Imap::login(&server, "tyler");
    assert!(append(&mut writer, "a1", "box", "", &message("one")).ok());
    assert!(append(&mut writer, "a2", "INBOX", "", &message("two")).ok());
    assert!(writer.cmd("a3", "SELECT INBOX").ok());
    assert!(writer.cmd("a4", "COPY 1 box").ok());
    assert_eq!(status_item(&writer.cmd("a5", "STATUS box (RECENT)"), "RECENT"), 2);
    // The session with the mailbox open hears of both, as recent, and they are its own.
    let noop = watcher.cmd("w3", "NOOP");
    assert!(noop.has("2 EXISTS") && noop.has("2 RECENT"), "{noop:?}");
    assert!(watcher.cmd("w4", "SEARCH RECENT").has("SEARCH 1 2"));
    assert!(watcher.cmd("w5", "SEARCH NEW").has("SEARCH 1 2"));
    assert_eq!(status_item(&writer.cmd("a6", "STATUS box (RECENT)"), "RECENT"), 0, "recent for one session only");
    // Selected afresh by another session, they are no longer recent.
    let again = writer.cmd("a7", "SELECT box");
    assert!(again.has("0 RECENT"), "{again:?}");
}

#[test]
fn envelope_keeps_a_source_route_and_search_sees_through_comments() {
    let server = server();
    let mut imap = Imap::login(&server, "tyler");
    let routed = "From: <@route:user@domain>\r\nSubject: routed\r\n\r\nx\r\n";
    let commented = "From: <user-from (comment)@ (comment) domain.org>\r\nSubject: commented\r\n\r\nx\r\n";
    assert!(append(&mut imap, "a1", "INBOX", "", routed).ok());
    assert!(append(&mut imap, "a2", "INBOX", "", commented).ok());
    assert!(imap.cmd("a3", "SELECT INBOX").ok());
    let envelope = imap.cmd("a4", "FETCH 1 ENVELOPE");
    assert!(envelope.lines()[0].contains("((NIL \"@route\" \"user\" \"domain\"))"), "{envelope:?}");
    let found = imap.cmd("a5", "SEARCH FROM user-from@domain.org");
    assert!(found.has("SEARCH 2"), "{found:?}");
}

#[test]
fn lsub_gives_an_unsubscribed_parent_of_a_subscribed_name_as_noselect() {
    let server = server();
    let mut imap = Imap::login(&server, "tyler");
    // CREATE makes top/parent on the way to its child.
    for name in ["top/plain", "top/parent/child"] {
        assert!(imap.cmd("c", &format!("CREATE {name}")).ok());
    }
    assert!(imap.cmd("s1", "SUBSCRIBE top/plain").ok());
    assert!(imap.cmd("s2", "SUBSCRIBE top/parent/child").ok());
    let lsub = imap.cmd("l1", "LSUB \"\" top/%");
    let lines = lsub.lines();
    assert!(lsub.has("LSUB () \"/\" \"top/plain\""), "{lines:?}");
    assert!(lsub.has("LSUB (\\Noselect) \"/\" \"top/parent\""), "{lines:?}");
    assert!(!lines.iter().any(|l| l.contains("child")), "{lines:?}");
    let all = imap.cmd("l2", "LSUB \"\" top/*").lines();
    assert!(all.contains(&"LSUB () \"/\" \"top/parent/child\"".to_string()) && !all.iter().any(|l| l.contains("Noselect")), "{all:?}");
}

#[test]
fn a_name_that_is_not_modified_utf7_is_answered_no_and_lists_nothing() {
    let server = server();
    let mut imap = Imap::login(&server, "tyler");
    let select = imap.cmd("a1", "SELECT !#$&'+,-.0123456789:;<=>?@^_`|[}");
    assert!(select.tagged.starts_with("a1 NO"), "{select:?}");
    let list = imap.cmd("a2", "LIST \"\" !#$&'+,-.0123456789:;<=>?@^_`|[}%*");
    assert!(list.ok() && list.untagged.is_empty(), "{list:?}");
    assert!(imap.cmd("a3", "LIST \"\" ~foo").ok());
}

#[test]
fn a_new_keyword_is_announced_with_flags_and_permanentflags_first() {
    let server = server();
    let mut one = Imap::login(&server, "tyler");
    assert!(append(&mut one, "a1", "INBOX", "", &message("one")).ok());
    assert!(one.cmd("a2", "SELECT INBOX").ok());
    let mut two = Imap::login(&server, "tyler");
    assert!(two.cmd("b1", "SELECT INBOX").ok());
    let stored = two.cmd("b2", "STORE 1 +FLAGS ($hello)");
    let lines = stored.lines();
    let flags = lines.iter().position(|l| l.starts_with("FLAGS (") && l.contains("$hello"));
    let permanent = lines.iter().position(|l| l.starts_with("OK [PERMANENTFLAGS (") && l.contains("$hello"));
    let fetch = lines.iter().position(|l| l.starts_with("1 FETCH"));
    assert!(flags < fetch && permanent < fetch && flags.is_some() && permanent.is_some(), "{stored:?}");
    let noop = one.cmd("a3", "NOOP");
    let lines = noop.lines();
    let flags = lines.iter().position(|l| l.starts_with("FLAGS (") && l.contains("$hello"));
    let fetch = lines.iter().position(|l| l.starts_with("1 FETCH") && l.contains("$hello"));
    assert!(flags.is_some() && flags < fetch, "{noop:?}");
    // Known now: not announced again.
    let again = two.cmd("b3", "STORE 1 -FLAGS ($hello)");
    assert!(!again.lines().iter().any(|l| l.starts_with("FLAGS")), "{again:?}");
}

#[test]
fn the_largest_id_command_rfc_2971_allows_is_taken_before_login() {
    let server = server();
    let mut imap = Imap::connect(&server);
    let value = "v".repeat(1024);
    let fields: Vec<String> = (0..30).map(|i| format!("\"field{i:02}-{}\" \"{value}\"", "f".repeat(22))).collect();
    let reply = imap.cmd("i1", &format!("ID ({})", fields.join(" ")));
    assert!(reply.ok(), "{}", reply.tagged);
    assert!(reply.lines().iter().any(|l| l.starts_with("ID (")));
}

#[test]
fn status_size_is_the_sum_of_the_message_sizes() {
    let server = server();
    let mut imap = Imap::login(&server, "tyler");
    assert!(imap.cmd("c1", "CAPABILITY").lines()[0].split(' ').any(|c| c == "STATUS=SIZE"));
    assert!(imap.cmd("c2", "CREATE sized").ok());
    assert_eq!(status_item(&imap.cmd("s1", "STATUS sized (SIZE)"), "SIZE"), 0);
    let (one, two) = (message("one"), message("second one"));
    assert!(append(&mut imap, "a1", "sized", "", &one).ok());
    assert!(append(&mut imap, "a2", "sized", "", &two).ok());
    let status = imap.cmd("s2", "STATUS sized (MESSAGES SIZE)");
    assert_eq!(status_item(&status, "SIZE") as usize, one.len() + two.len(), "{:?}", status.lines());
    assert_eq!(status_item(&status, "MESSAGES"), 2);
}

#[test]
fn esearch_answers_min_max_count_and_all_as_a_set() {
    let server = server();
    let mut imap = Imap::login(&server, "tyler");
    assert!(imap.cmd("c1", "CAPABILITY").lines()[0].split(' ').any(|c| c == "ESEARCH"));
    for i in 1..=6 {
        let flags = if i % 3 == 0 { "" } else { "(\\Seen)" };
        assert!(append(&mut imap, "a", "INBOX", flags, &message(&format!("m{i}"))).ok());
    }
    assert!(imap.cmd("s1", "SELECT INBOX").ok());
    let reply = imap.cmd("s2", "SEARCH RETURN (MIN MAX COUNT ALL) SEEN");
    assert!(reply.has("ESEARCH (TAG \"s2\") MIN 1 MAX 5 COUNT 4 ALL 1:2,4:5"), "{:?}", reply.lines());
    let reply = imap.cmd("s3", "UID SEARCH RETURN () UNSEEN");
    assert!(reply.has("ESEARCH (TAG \"s3\") UID ALL 3,6"), "{:?}", reply.lines());
    let reply = imap.cmd("s4", "SEARCH RETURN (MIN COUNT) DELETED");
    assert!(reply.has("ESEARCH (TAG \"s4\") COUNT 0"), "nothing found: no MIN, COUNT 0: {:?}", reply.lines());
    let reply = imap.cmd("s5", "SEARCH RETURN (FOO) ALL");
    assert!(reply.tagged.starts_with("s5 BAD"), "an unknown option: {reply:?}");
}

#[test]
fn multiappend_stores_all_messages_or_none() {
    let server = server();
    let mut imap = Imap::login(&server, "tyler");
    assert!(imap.cmd("c1", "CAPABILITY").lines()[0].split(' ').any(|c| c == "MULTIAPPEND"));
    assert!(imap.cmd("c2", "CREATE batch").ok());
    let (one, two, three) = (message("one"), message("two"), message("three"));
    let command = format!(
        "m1 APPEND batch (\\Seen) {{{}+}}\r\n{one} {{{}+}}\r\n{two} (\\Flagged) \"05-Jan-2026 10:00:00 +0100\" {{{}+}}\r\n{three}\r\n",
        one.len(),
        two.len(),
        three.len()
    );
    imap.send(command.as_bytes());
    let reply = imap.until("m1");
    assert!(reply.ok() && reply.tagged.contains("[APPENDUID ") && reply.tagged.contains(" 1:3]"), "{}", reply.tagged);
    assert!(imap.cmd("s1", "SELECT batch").has("3 EXISTS"));
    let flags = imap.cmd("f1", "FETCH 1:3 (FLAGS INTERNALDATE)").lines();
    assert!(flags[0].contains("\\Seen") && flags[2].contains("\\Flagged") && flags[2].contains("5-Jan-2026 09:00:00"), "{flags:?}");
    // The second message cannot be stored (27 keywords, one more than Maildir has letters):
    // the first is not stored either.
    let keywords: Vec<String> = (0..27).map(|i| format!("$k{i}")).collect();
    let command = format!("m2 APPEND batch {{{}+}}\r\n{one} ({}) {{{}+}}\r\n{two}\r\n", one.len(), keywords.join(" "), two.len());
    imap.send(command.as_bytes());
    let reply = imap.until("m2");
    assert!(reply.tagged.starts_with("m2 NO"), "{}", reply.tagged);
    assert_eq!(status_item(&imap.cmd("s2", "STATUS batch (MESSAGES)"), "MESSAGES"), 3, "nothing of a failed MULTIAPPEND is stored");
    let leftovers = std::fs::read_dir(server.data_dir().join("mail/tyler/.batch/tmp")).unwrap().count();
    assert_eq!(leftovers, 0, "no file left in tmp/");
}

#[test]
fn a_multiappend_is_bounded_as_one_command_and_stores_nothing_past_it() {
    // Each literal is under max_literal; together they pass what one command may hold after
    // login (max_literal of literals and max_line of text: 2 KiB + 64 KiB).
    let server = Server::start_with(Setup { users: vec!["tyler".into()], imap: "max_literal = \"2KiB\"\n".into(), ..Setup::default() });
    let mut imap = Imap::login(&server, "tyler");
    assert!(imap.cmd("c1", "CREATE bounded").ok());
    let big = format!("Subject: big\r\n\r\n{}\r\n", "x".repeat(1500));
    let literals: String = (0..45).map(|_| format!(" {{{}+}}\r\n{big}", big.len())).collect();
    assert!(literals.len() > (2 + 64) * 1024);
    imap.send(format!("m1 APPEND bounded{literals}\r\n").as_bytes());
    let reply = imap.until("m1");
    assert!(reply.tagged.starts_with("m1 NO [TOOBIG]"), "{}", reply.tagged);
    assert!(imap.cmd("n1", "NOOP").ok(), "the session goes on after the skipped literals");
    assert_eq!(status_item(&imap.cmd("s1", "STATUS bounded (MESSAGES)"), "MESSAGES"), 0);
}
