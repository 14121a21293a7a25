//! CONDSTORE and QRESYNC (RFC 7162), as synchronising clients (Thunderbird, Apple Mail, K-9)
//! use them: mod-sequences per message and per mailbox, FETCH CHANGEDSINCE, the conditional
//! STORE, SEARCH MODSEQ, and the resynchronisation of SELECT (QRESYNC) with VANISHED
//! (EARLIER) — and mod-sequences that survive a restart and never go back after kill -9.

use wasmail_tests::imap::{Imap, Reply};
use wasmail_tests::{Server, Setup};

fn server() -> Server {
    Server::start_with(Setup { users: vec!["tyler".into()], ..Setup::default() })
}

fn append(imap: &mut Imap, tag: &str, subject: &str) {
    let message = format!("From: a@client.test\r\nTo: tyler@localhost\r\nSubject: {subject}\r\n\r\nbody\r\n");
    imap.send(format!("{tag} APPEND INBOX {{{}+}}\r\n{message}\r\n", message.len()).as_bytes());
    assert!(imap.until(tag).ok());
}

/// The number after `name` in the first response that has it: `HIGHESTMODSEQ 12`,
/// `MODSEQ (12)`, `UIDVALIDITY 3`.
fn number(reply: &Reply, name: &str) -> u64 {
    for line in reply.lines().iter().chain(std::iter::once(&reply.tagged)) {
        if let Some(at) = line.find(&format!("{name} ")) {
            let rest = line[at + name.len() + 1..].trim_start_matches('(');
            return rest.split([' ', ')', ']']).next().unwrap().parse().unwrap_or_else(|_| panic!("{name} in {line}"));
        }
    }
    panic!("no {name} in {reply:?}")
}

/// `(message number, MODSEQ)` of each FETCH response.
fn modseqs(reply: &Reply) -> Vec<(u32, u64)> {
    reply
        .lines()
        .iter()
        .filter(|l| l.contains(" FETCH ("))
        .map(|l| {
            let seq = l.split(' ').next().unwrap().parse().unwrap();
            let at = l.find("MODSEQ (").unwrap_or_else(|| panic!("no MODSEQ in {l}")) + 8;
            (seq, l[at..].split(')').next().unwrap().parse().unwrap())
        })
        .collect()
}

#[test]
fn condstore_tells_mod_sequences_and_a_conditional_store_refuses_what_changed() {
    let server = server();
    let mut one = Imap::login(&server, "tyler");
    let caps = one.cmd("a0", "CAPABILITY");
    assert!(caps.lines()[0].contains(" CONDSTORE") && caps.lines()[0].contains(" QRESYNC"), "{caps:?}");
    for i in 1..=3 {
        append(&mut one, &format!("a{i}"), &format!("m{i}"));
    }
    let selected = one.cmd("a4", "SELECT INBOX (CONDSTORE)");
    let highest = number(&selected, "HIGHESTMODSEQ");
    let fetched = one.cmd("a5", "FETCH 1:* (MODSEQ)");
    let before = modseqs(&fetched);
    assert_eq!(before.len(), 3, "{fetched:?}");
    assert!(before.iter().all(|&(_, m)| m > 0 && m <= highest), "{before:?} and HIGHESTMODSEQ {highest}");

    // Another client flags message 2: its mod-sequence passes everything before.
    let mut two = Imap::login(&server, "tyler");
    assert!(two.cmd("b1", "SELECT INBOX").ok());
    assert!(two.cmd("b2", "STORE 2 +FLAGS (\\Flagged)").ok());
    // One's conditional STORE, from what it knew, leaves message 2 alone and says so.
    let store = one.cmd("a6", &format!("STORE 1:3 (UNCHANGEDSINCE {highest}) +FLAGS (\\Seen)"));
    assert!(store.tagged.starts_with("a6 OK [MODIFIED 2]"), "{store:?}");
    // 1 and 3 as stored, then 2 as the other client left it.
    let after = modseqs(&store);
    assert_eq!(after.iter().map(|(seq, _)| *seq).collect::<Vec<_>>(), [1, 3, 2], "{store:?}");
    let after = &after[..2];
    assert!(after.iter().all(|&(_, m)| m > highest), "new mod-sequences: {store:?}");
    // The refresh after the command told one of two's change, with its MODSEQ.
    let flagged = store.lines().into_iter().find(|l| l.starts_with("2 FETCH")).unwrap_or_else(|| panic!("{store:?}"));
    assert!(flagged.contains("\\Flagged") && flagged.contains("MODSEQ (") && !flagged.contains("\\Seen"), "{flagged}");
    let status = one.cmd("a7", "STATUS INBOX (HIGHESTMODSEQ)");
    let now = number(&status, "HIGHESTMODSEQ");
    assert_eq!(now, after.iter().map(|(_, m)| *m).max().unwrap(), "{status:?}");

    // Only what changed since a mod-sequence; SEARCH MODSEQ with the highest of the matches.
    let changed = one.cmd("a8", &format!("FETCH 1:* (FLAGS) (CHANGEDSINCE {highest})"));
    assert_eq!(changed.lines().len(), 3, "{changed:?}");
    let since = one.cmd("a9", &format!("FETCH 1:* (FLAGS) (CHANGEDSINCE {})", now - 1));
    assert_eq!(modseqs(&since).iter().map(|(s, _)| *s).collect::<Vec<_>>(), [1, 3], "{since:?}");
    let searched = one.cmd("a10", &format!("SEARCH MODSEQ {now}"));
    assert!(searched.has(&format!("SEARCH 1 3 (MODSEQ {now})")), "{searched:?}");
    assert!(one.cmd("a11", &format!("SEARCH MODSEQ {}", now + 1)).has("SEARCH"));
    // UNCHANGEDSINCE 0 always fails; .SILENT still tells new mod-sequences.
    let zero = one.cmd("a12", "UID STORE 1:* (UNCHANGEDSINCE 0) FLAGS (\\Draft)");
    assert!(zero.tagged.starts_with("a12 OK [MODIFIED 1:3]"), "{zero:?}");
    let silent = one.cmd("a13", &format!("UID STORE 3 (UNCHANGEDSINCE {now}) +FLAGS.SILENT (\\Answered)"));
    assert!(silent.ok() && silent.lines().iter().any(|l| l.starts_with("3 FETCH (UID 3 MODSEQ (")), "{silent:?}");
}

#[test]
fn the_first_condstore_command_tells_the_highest_mod_sequence() {
    let server = server();
    let mut imap = Imap::login(&server, "tyler");
    append(&mut imap, "a1", "m1");
    let selected = imap.cmd("a2", "SELECT INBOX");
    let highest = number(&selected, "HIGHESTMODSEQ");
    let plain = imap.cmd("a3", "STORE 1 +FLAGS (\\Seen)");
    assert!(!plain.lines()[0].contains("MODSEQ"), "CONDSTORE not used yet: {plain:?}");
    let first = imap.cmd("a4", "FETCH 1 (MODSEQ)");
    assert!(first.lines().iter().any(|l| l.starts_with("OK [HIGHESTMODSEQ ")), "{first:?}");
    assert!(number(&first, "MODSEQ") > highest);
    // From now on, flags come with their mod-sequence.
    assert!(imap.cmd("a5", "FETCH 1 (FLAGS)").lines()[0].contains("MODSEQ ("));
    let enabled = Imap::login(&server, "tyler").cmd("b1", "ENABLE CONDSTORE X-UNKNOWN");
    assert!(enabled.has("ENABLED CONDSTORE"), "{enabled:?}");
}

#[test]
fn mod_sequences_survive_a_restart_and_do_not_go_back_after_kill_9() {
    let server = server();
    let mut imap = Imap::login(&server, "tyler");
    for i in 1..=3 {
        append(&mut imap, &format!("a{i}"), &format!("m{i}"));
    }
    assert!(imap.cmd("a4", "SELECT INBOX (CONDSTORE)").ok());
    assert!(imap.cmd("a5", "STORE 1 +FLAGS (\\Seen)").ok());
    assert!(imap.cmd("a6", "STORE 3 +FLAGS (\\Deleted)").ok());
    assert!(imap.cmd("a7", "EXPUNGE").ok());
    let before = modseqs(&imap.cmd("a8", "FETCH 1:* (MODSEQ)"));
    let highest = number(&imap.cmd("a9", "STATUS INBOX (HIGHESTMODSEQ)"), "HIGHESTMODSEQ");
    drop(imap);
    let mut server = server;
    server.kill9();
    // While it is down, mutt flags message 2 (a rename in cur/).
    let cur = server.data_dir().join("mail/tyler/cur");
    let file =
        std::fs::read_dir(&cur).unwrap().map(|e| e.unwrap().path()).find(|p| std::fs::read_to_string(p).unwrap().contains("Subject: m2")).unwrap();
    let name = file.file_name().unwrap().to_string_lossy().into_owned();
    let (base, info) = name.rsplit_once(":2,").unwrap();
    std::fs::rename(&file, cur.join(format!("{base}:2,F{info}"))).unwrap();
    let server = server.restarted();
    let mut imap = Imap::login(&server, "tyler");
    let selected = imap.cmd("b1", "SELECT INBOX (CONDSTORE)");
    let after = modseqs(&imap.cmd("b2", "FETCH 1:* (MODSEQ FLAGS)"));
    assert_eq!(after[0], before[0], "message 1 kept its mod-sequence");
    assert!(after[1].1 > highest, "the change made while the server was down got a greater one: {after:?} after {highest}");
    assert!(number(&selected, "HIGHESTMODSEQ") >= highest);
    let stored = imap.cmd("b3", "STORE 1 +FLAGS (\\Answered)");
    assert!(modseqs(&stored)[0].1 > after[1].1, "{stored:?}");
    // What was expunged before the crash is still known as expunged.
    let mut resync = Imap::login(&server, "tyler");
    assert!(resync.cmd("c1", "ENABLE QRESYNC").ok());
    assert!(resync.cmd("c2", "SELECT INBOX").ok());
    assert!(resync.cmd("c3", "UID FETCH 1:* (FLAGS) (CHANGEDSINCE 1 VANISHED)").has("VANISHED (EARLIER) 3"));
}

#[test]
fn qresync_gives_vanished_and_changed_flags_only() {
    let server = server();
    let mut writer = Imap::login(&server, "tyler");
    for i in 1..=6 {
        append(&mut writer, &format!("a{i}"), &format!("m{i}"));
    }
    // The client's last visit: what it knew then.
    let mut client = Imap::login(&server, "tyler");
    assert!(client.cmd("c1", "ENABLE QRESYNC").has("ENABLED QRESYNC"));
    let visit = client.cmd("c2", "SELECT INBOX");
    let (validity, highest) = (number(&visit, "UIDVALIDITY"), number(&visit, "HIGHESTMODSEQ"));
    assert!(client.cmd("c3", "LOGOUT").ok());
    // Meanwhile: flags of 2 and 5 change, 3 and 4 are expunged.
    assert!(writer.cmd("a7", "SELECT INBOX").ok());
    assert!(writer.cmd("a8", "STORE 2,5 +FLAGS (\\Flagged)").ok());
    assert!(writer.cmd("a9", "STORE 3:4 +FLAGS (\\Deleted)").ok());
    assert!(writer.cmd("a10", "EXPUNGE").ok());

    let mut client = Imap::login(&server, "tyler");
    let bad = client.cmd("d1", &format!("SELECT INBOX (QRESYNC ({validity} {highest}))"));
    assert!(bad.tagged.starts_with("d1 BAD"), "QRESYNC must be enabled first: {bad:?}");
    assert!(client.cmd("d2", "ENABLE QRESYNC").ok());
    let resync = client.cmd("d3", &format!("SELECT INBOX (QRESYNC ({validity} {highest} 1:6))"));
    assert!(resync.ok(), "{resync:?}");
    assert!(resync.has("VANISHED (EARLIER) 3:4"), "{resync:?}");
    let fetches: Vec<String> = resync.lines().into_iter().filter(|l| l.contains(" FETCH ")).collect();
    assert_eq!(fetches.len(), 2, "only the changed messages: {resync:?}");
    assert!(fetches[0].starts_with("2 FETCH (FLAGS (\\Flagged) UID 2 MODSEQ ("), "{fetches:?}");
    assert!(fetches[1].starts_with("3 FETCH (FLAGS (\\Flagged) UID 5 MODSEQ ("), "{fetches:?}");
    // A wrong UIDVALIDITY: nothing to resynchronise from.
    let stale = client.cmd("d4", &format!("EXAMINE INBOX (QRESYNC ({} {highest}))", validity + 1));
    assert!(stale.has("OK [CLOSED] Previous mailbox closed"), "{stale:?}");
    assert!(!stale.lines().iter().any(|l| l.starts_with("VANISHED") || l.contains(" FETCH ")), "{stale:?}");
    // UID FETCH ... (CHANGEDSINCE VANISHED) on an open mailbox.
    let now = number(&client.cmd("d5", "SELECT INBOX"), "HIGHESTMODSEQ");
    let fetched = client.cmd("d6", &format!("UID FETCH 1:* (FLAGS) (CHANGEDSINCE {highest} VANISHED)"));
    assert!(fetched.has("VANISHED (EARLIER) 3:4") && fetched.lines().len() == 3, "{fetched:?}");
    // Expunges in the session are told as VANISHED, and the tagged OK gives HIGHESTMODSEQ.
    assert!(writer.cmd("a11", "STORE 1 +FLAGS.SILENT (\\Deleted)").ok());
    let expunged = client.cmd("d7", "UID STORE 1 +FLAGS (\\Deleted)");
    assert!(expunged.ok(), "{expunged:?}");
    let expunge = client.cmd("d8", "EXPUNGE");
    assert!(expunge.has("VANISHED 1") && !expunge.lines().iter().any(|l| l.ends_with("EXPUNGE")), "{expunge:?}");
    assert!(number(&expunge, "HIGHESTMODSEQ") > now, "{expunge:?}");
}

#[test]
fn imaplib_resynchronises_with_qresync() {
    let server = server();
    let port = server.imap.unwrap().port().to_string();
    let out = wasmail_tests::python("imaplib_qresync.py", &[port.into()]);
    let report: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(report["ok"], true, "{report}");
    assert_eq!(report["vanished"], "(EARLIER) 4");
}
