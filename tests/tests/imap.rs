//! IMAP end to end: the classic telnet session and RFC 3501's sample dialogue replayed over
//! TCP, Python's imaplib over the whole command set, IDLE seeing SMTP deliveries, several
//! sessions (and POP3) on one mailbox, UIDs and flags across restarts, limits and bad input.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::Duration;

use wasmail_tests::imap::Imap;
use wasmail_tests::{Server, Setup};

fn users(names: &[&str]) -> Setup {
    Setup { users: names.iter().map(|n| n.to_string()).collect(), ..Setup::default() }
}

fn deliver(server: &Server, to: &str, messages: &[String]) {
    let mut c = server.connect();
    c.greet();
    for message in messages {
        assert_eq!(c.send_mail("sender@client.test", &[to], message).code, 250);
    }
    c.expect("QUIT", 221);
    server.wait_for_queue();
}

/// The body of a FETCH response's literal that follows `marker`.
fn literal_after<'a>(response: &'a [u8], marker: &str) -> &'a [u8] {
    let at = response
        .windows(marker.len())
        .position(|w| w == marker.as_bytes())
        .unwrap_or_else(|| panic!("{marker} in {:?}", String::from_utf8_lossy(response)));
    let rest = &response[at + marker.len()..];
    let open = rest.iter().position(|&b| b == b'{').unwrap();
    let close = rest.iter().position(|&b| b == b'}').unwrap();
    let size: usize = std::str::from_utf8(&rest[open + 1..close]).unwrap().parse().unwrap();
    &rest[close + 3..close + 3 + size]
}

#[test]
fn the_classic_session() {
    let server = Server::start_with(users(&["craig"]));
    // Four messages, the first expunged: UIDs 2, 3, 4 remain and UIDNEXT is 5, as in the example.
    let body: String = (0..36).map(|i| format!("Line {i:02} of the first message, padded to forty octets.\r\n")).collect();
    let mut messages = vec![format!("Subject: gone\r\n\r\nexpunged\r\n")];
    messages.push(format!("From: a@client.test\r\nSubject: one\r\n\r\n{body}"));
    messages.push("Subject: two\r\n\r\nsecond\r\n".into());
    messages.push("Subject: three\r\n\r\nthird\r\n".into());
    deliver(&server, "craig@localhost", &messages);
    {
        // An earlier session saw them all (so none is \Recent) and expunged the first.
        let mut imap = Imap::login(&server, "craig");
        assert!(imap.cmd("p1", "SELECT INBOX").has("4 RECENT"));
        assert!(imap.cmd("p2", "STORE 1 +FLAGS (\\Deleted)").ok());
        assert!(imap.cmd("p3", "LOGOUT").ok());
        let mut imap = Imap::login(&server, "craig");
        assert!(imap.cmd("p4", "SELECT INBOX").has("0 RECENT"), "the first session's recent messages are not recent again");
        assert!(imap.cmd("p5", "EXPUNGE").has("1 EXPUNGE"));
    }

    let mut imap = Imap::connect(&server);
    let reply = imap.cmd("a0001", "LOGIN craig secret");
    assert!(reply.tagged.starts_with("a0001 OK "), "{reply:?}");
    let reply = imap.cmd("a0002", "SELECT inbox");
    let lines = reply.lines();
    let validity = lines.iter().find_map(|l| l.strip_prefix("OK [UIDVALIDITY ")).expect("UIDVALIDITY");
    assert!(validity.split(']').next().unwrap().parse::<u32>().unwrap() > 0);
    for expected in [
        "3 EXISTS",
        "0 RECENT",
        "OK [UIDNEXT 5] Predicted next UID",
        "FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)",
        "OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft \\*)] Flags permitted",
        "OK [UNSEEN 1] First unseen message",
    ] {
        assert!(reply.has(expected), "{expected} in {lines:?}");
    }
    assert!(reply.tagged.starts_with("a0002 OK [READ-WRITE] "), "{}", reply.tagged);

    let reply = imap.cmd("a0003", "FETCH 1 BODY[TEXT]");
    assert_eq!(reply.untagged.len(), 2, "{:?}", reply.lines());
    assert!(reply.untagged[0].starts_with(format!("* 1 FETCH (BODY[TEXT] {{{}}}\r\n", body.len()).as_bytes()));
    assert_eq!(literal_after(&reply.untagged[0], "BODY[TEXT]"), body.as_bytes());
    assert!(reply.untagged[0].ends_with(b")"));
    assert_eq!(reply.lines()[1], "1 FETCH (FLAGS (\\Seen))");
    assert!(reply.tagged.starts_with("a0003 OK "));

    let reply = imap.cmd("a0004", "STORE 1 +FLAGS \\DELETED");
    assert_eq!(reply.lines(), ["1 FETCH (FLAGS (\\Seen \\Deleted))"]);
    assert!(reply.tagged.starts_with("a0004 OK "));
    let reply = imap.cmd("a0005", "CLOSE");
    assert!(reply.untagged.is_empty() && reply.tagged.starts_with("a0005 OK "), "{reply:?}");
    let reply = imap.cmd("a0006", "LOGOUT");
    assert_eq!(reply.lines().len(), 1);
    assert!(reply.lines()[0].starts_with("BYE ") && reply.lines()[0].contains("IMAP4rev1 server terminating connection"));
    assert!(reply.tagged.starts_with("a0006 OK "));

    // CLOSE expunged the message: two remain, neither of them "one".
    let stored = server.mailbox_now("craig");
    assert_eq!(stored.len(), 2);
    assert!(stored.iter().all(|m| !m.contains("Subject: one")));
}

#[test]
fn the_rfc_3501_sample_dialogue() {
    let server = Server::start_with(users(&["mrc"]));
    // Message 12 is the RFC's, with its internal date; 16 are seen, 2 arrive later (\Recent).
    let twelve = "Date: Wed, 17 Jul 1996 02:23:25 -0700 (PDT)\r\nFrom: Terry Gray <gray@cac.washington.edu>\r\n\
Subject: IMAP4rev1 WG mtg summary and minutes\r\nTo: imap@cac.washington.edu\r\n\
cc: minutes@CNRI.Reston.VA.US, John Klensin <KLENSIN@MIT.EDU>\r\nMessage-Id: <B27397-0100000@cac.washington.edu>\r\n\
MIME-Version: 1.0\r\nContent-Type: TEXT/PLAIN; CHARSET=US-ASCII\r\n\r\n";
    let text: String = (0..92).map(|i| format!("{:<31}\r\n", format!("line {i}"))).collect();
    assert_eq!(text.len(), 3036);
    let mut imap = Imap::login(&server, "mrc");
    for i in 1..=16 {
        let message = if i == 12 { format!("{twelve}{text}") } else { format!("Subject: message {i}\r\n\r\nbody {i}\r\n") };
        let date = if i == 12 { "\"17-Jul-1996 02:44:25 -0700\" " } else { "" };
        imap.send(format!("s{i} APPEND INBOX (\\Seen) {date}{{{}+}}\r\n{message}\r\n", message.len()).as_bytes());
        assert!(imap.until(&format!("s{i}")).ok());
    }
    assert!(imap.cmd("s17", "SELECT INBOX").ok());
    assert!(imap.cmd("s18", "LOGOUT").ok());
    deliver(&server, "mrc@localhost", &["Subject: new 1\r\n\r\nx\r\n".to_string(), "Subject: new 2\r\n\r\ny\r\n".to_string()]);

    let mut imap = Imap::connect(&server);
    assert!(imap.cmd("a001", "login mrc secret").tagged.starts_with("a001 OK "));
    let reply = imap.cmd("a002", "select inbox");
    for expected in ["18 EXISTS", "FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)", "2 RECENT", "OK [UNSEEN 17] First unseen message"] {
        assert!(reply.has(expected), "{expected} in {:?}", reply.lines());
    }
    assert!(reply.lines().iter().any(|l| l.starts_with("OK [UIDVALIDITY ")));
    assert!(reply.tagged.starts_with("a002 OK [READ-WRITE] "));
    let reply = imap.cmd("a003", "fetch 12 full");
    assert_eq!(
        reply.lines(),
        [format!(
            "12 FETCH (FLAGS (\\Seen) INTERNALDATE \"17-Jul-1996 09:44:25 +0000\" RFC822.SIZE {} ENVELOPE (\"Wed, 17 Jul 1996 02:23:25 -0700 (PDT)\" \
\"IMAP4rev1 WG mtg summary and minutes\" ((\"Terry Gray\" NIL \"gray\" \"cac.washington.edu\")) ((\"Terry Gray\" NIL \"gray\" \"cac.washington.edu\")) \
((\"Terry Gray\" NIL \"gray\" \"cac.washington.edu\")) ((NIL NIL \"imap\" \"cac.washington.edu\")) ((NIL NIL \"minutes\" \"CNRI.Reston.VA.US\")\
(\"John Klensin\" NIL \"KLENSIN\" \"MIT.EDU\")) NIL NIL \"<B27397-0100000@cac.washington.edu>\") BODY (\"text\" \"plain\" (\"charset\" \"US-ASCII\") NIL NIL \"7BIT\" 3036 92))",
            twelve.len() + text.len()
        )]
    );
    let reply = imap.cmd("a004", "fetch 12 body[header]");
    assert_eq!(literal_after(&reply.untagged[0], "BODY[HEADER]"), twelve.as_bytes());
    assert_eq!(reply.untagged.len(), 1, "the header fetch sets no flag");
    let reply = imap.cmd("a005", "store 12 +flags \\deleted");
    assert_eq!(reply.lines(), ["12 FETCH (FLAGS (\\Seen \\Deleted))"]);
    let reply = imap.cmd("a006", "logout");
    assert!(reply.lines()[0].starts_with("BYE "));
    assert!(reply.tagged.starts_with("a006 OK "));
}

#[test]
fn imaplib_over_the_whole_command_set() {
    let server = Server::start_with(users(&["tyler"]));
    let messages = vec![
        "From: Hunt <hunt@client.test>\r\nTo: tyler@localhost\r\nSubject: plain\r\nDate: Mon, 2 Mar 2026 10:00:00 +0000\r\n\r\nthe quick brown fox\r\n".to_string(),
        "From: list@client.test\r\nSubject: =?UTF-8?Q?gr=C3=BC=C3=9Fe?=\r\nDate: Tue, 3 Mar 2026 10:00:00 +0000\r\nMIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n\
Gr=C3=BC=C3=9Fe aus K=C3=B6ln\r\n--b\r\nContent-Type: application/pdf; name=a.pdf\r\nContent-Disposition: attachment; filename=a.pdf\r\n\
Content-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK\r\n--b--\r\n"
            .to_string(),
    ];
    deliver(&server, "tyler@localhost", &messages);
    let port = server.imap.unwrap().port().to_string();
    let out = wasmail_tests::python("imaplib_session.py", &[port.into()]);
    let report: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(report["ok"], true, "{report}");
    // What the client did is in the Maildir, where mutt and Dovecot would see it.
    let base = server.data_dir().join("mail/tyler");
    let archived: Vec<_> = std::fs::read_dir(base.join(".Archive/cur")).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    assert_eq!(archived.len(), 1);
    assert!(archived[0].ends_with(":2,FS"), "{archived:?}");
    assert!(base.join(".Projects.2026/cur").is_dir());
}

#[test]
fn idle_sees_mail_that_arrives_over_smtp() {
    let server = Server::start_with(users(&["hunt"]));
    let mut imap = Imap::login(&server, "hunt");
    assert!(imap.cmd("a1", "SELECT INBOX").has("0 EXISTS"));
    imap.send(b"a2 IDLE\r\n");
    assert_eq!(imap.response(), b"+ idling");
    deliver(&server, "hunt@localhost", &["Subject: pushed\r\n\r\nhello\r\n".to_string()]);
    assert_eq!(imap.response(), b"* 1 EXISTS");
    assert_eq!(imap.response(), b"* 1 RECENT");
    imap.send(b"DONE\r\n");
    assert!(imap.until("a2").ok());
    let reply = imap.cmd("a3", "FETCH 1 (FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])");
    assert!(reply.lines()[0].starts_with("1 FETCH (FLAGS (\\Recent) BODY[HEADER.FIELDS (SUBJECT)] {"), "{:?}", reply.lines());
}

#[test]
fn sessions_and_pop3_on_one_mailbox_stay_consistent() {
    let server = Server::start_with(users(&["hunt"]));
    deliver(&server, "hunt@localhost", &(1..=3).map(|i| format!("Subject: m{i}\r\n\r\nbody {i}\r\n")).collect::<Vec<_>>());
    let mut one = Imap::login(&server, "hunt");
    let mut two = Imap::login(&server, "hunt");
    assert!(one.cmd("a1", "SELECT INBOX").has("3 RECENT"));
    assert!(two.cmd("b1", "SELECT INBOX").has("0 RECENT"), "\\Recent belongs to the first session only");
    // A flag stored in one session shows in the other at its next command; a new keyword
    // comes with the new FLAGS and PERMANENTFLAGS first (RFC 3501 7.2.6), in both.
    let stored = one.cmd("a2", "STORE 2 +FLAGS.SILENT (\\Flagged $Important)").lines();
    assert!(stored.len() == 2 && stored[0].starts_with("FLAGS (") && stored[0].ends_with("$Important)"), "{stored:?}");
    let reply = two.cmd("b2", "NOOP").lines();
    assert_eq!(reply.len(), 3, "{reply:?}");
    assert!(reply[0].ends_with("$Important)") && reply[1].starts_with("OK [PERMANENTFLAGS ("), "{reply:?}");
    assert_eq!(reply[2], "2 FETCH (FLAGS (\\Flagged $Important))");
    // An expunge in one is reported in the other, but not during FETCH (RFC 3501 7.4.1).
    assert!(one.cmd("a3", "STORE 1 +FLAGS.SILENT (\\Deleted)").ok());
    assert!(one.cmd("a4", "EXPUNGE").has("1 EXPUNGE"));
    let reply = two.cmd("b3", "FETCH 1:* (UID)");
    assert!(!reply.lines().iter().any(|l| l.ends_with("EXPUNGE")), "{:?}", reply.lines());
    let reply = two.cmd("b4", "UID SEARCH ALL");
    assert!(reply.has("1 EXPUNGE") && reply.has("SEARCH 2 3"), "{:?}", reply.lines());
    // A POP3 deletion is an expunge too; a delivery is EXISTS in both.
    let stream = TcpStream::connect(server.pop3.unwrap()).unwrap();
    let mut pop = BufReader::new(stream.try_clone().unwrap());
    let mut w = stream;
    let mut line = String::new();
    for command in ["", "USER hunt", "PASS secret", "DELE 1", "QUIT"] {
        if !command.is_empty() {
            w.write_all(format!("{command}\r\n").as_bytes()).unwrap();
        }
        line.clear();
        pop.read_line(&mut line).unwrap();
        assert!(line.starts_with("+OK"), "{command}: {line}");
    }
    deliver(&server, "hunt@localhost", &["Subject: m4\r\n\r\nbody 4\r\n".to_string()]);
    let reply = one.cmd("a5", "NOOP");
    assert_eq!(reply.lines(), ["1 EXPUNGE", "2 EXISTS", "2 RECENT"]);
    let reply = two.cmd("b5", "NOOP");
    assert_eq!(reply.lines(), ["1 EXPUNGE", "2 EXISTS", "0 RECENT"]);
    let reply = two.cmd("b6", "UID FETCH 1:* (FLAGS)");
    assert_eq!(reply.lines(), ["1 FETCH (UID 3 FLAGS ())", "2 FETCH (UID 4 FLAGS ())"]);
}

#[test]
fn uids_flags_and_expunges_survive_a_restart() {
    let server = Server::start_with(users(&["hunt"]));
    deliver(&server, "hunt@localhost", &(1..=3).map(|i| format!("Subject: m{i}\r\n\r\nbody {i}\r\n")).collect::<Vec<_>>());
    let mut imap = Imap::login(&server, "hunt");
    let select = imap.cmd("a1", "SELECT INBOX");
    let validity = select.lines().into_iter().find(|l| l.starts_with("OK [UIDVALIDITY ")).unwrap();
    assert!(imap.cmd("a2", "STORE 1 +FLAGS (\\Answered $Forwarded)").ok());
    assert!(imap.cmd("a3", "STORE 3 +FLAGS (\\Deleted)").ok());
    assert!(imap.cmd("a4", "EXPUNGE").has("3 EXPUNGE"));
    // The flags are in the file name, where mutt and Dovecot read them.
    let cur: Vec<String> =
        std::fs::read_dir(server.data_dir().join("mail/hunt/cur")).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    assert!(cur.iter().any(|n| n.ends_with(":2,Ra")), "{cur:?}");
    assert_eq!(std::fs::read_to_string(server.data_dir().join("mail/hunt/dovecot-keywords")).unwrap(), "0 $Forwarded\n");
    drop(imap);
    let server = server.restarted();
    let mut imap = Imap::login(&server, "hunt");
    let select = imap.cmd("b1", "SELECT INBOX");
    assert!(select.has(&validity) && select.has("2 EXISTS") && select.has("OK [UIDNEXT 4] Predicted next UID"), "{:?}", select.lines());
    let reply = imap.cmd("b2", "FETCH 1:* (UID FLAGS)");
    assert_eq!(reply.lines(), ["1 FETCH (UID 1 FLAGS (\\Answered $Forwarded))", "2 FETCH (UID 2 FLAGS ())"]);
}

#[test]
fn limits_and_bad_input() {
    let server = Server::start_with(Setup {
        users: vec!["hunt".into()],
        imap: "max_literal = 1000\nmax_line = 2000\nidle_timeout = \"2s\"\n".into(),
        ..Setup::default()
    });
    let mut imap = Imap::connect(&server);
    // Before login only the not-authenticated commands work.
    assert!(imap.cmd("a1", "SELECT INBOX").tagged.starts_with("a1 BAD "));
    let reply = imap.cmd("a2", "LOGIN hunt wrong");
    assert!(reply.tagged.starts_with("a2 NO [AUTHENTICATIONFAILED] "), "{reply:?}");
    let reply = imap.cmd("a3", "AUTHENTICATE PLAIN AGh1bnQAc2VjcmV0");
    assert!(reply.ok(), "{reply:?}");
    // A synchronizing literal over the limit is refused before the client sends it.
    imap.send(b"a4 APPEND INBOX {5000}\r\n");
    let refused = imap.until("a4");
    assert!(refused.untagged.is_empty() && refused.tagged.starts_with("a4 NO [TOOBIG] "), "{refused:?}");
    // A non-synchronizing one is skipped unread, and the next command works.
    imap.send(format!("a5 APPEND INBOX {{5000+}}\r\n{}\r\na6 NOOP\r\n", "x".repeat(5000)).as_bytes());
    assert!(imap.until("a5").tagged.starts_with("a5 NO [TOOBIG] "));
    assert!(imap.until("a6").ok());
    // A small one is taken, with a continuation.
    imap.send(b"a7 APPEND INBOX {20}\r\n");
    assert_eq!(imap.response(), b"+ Ready for literal data");
    imap.send(b"Subject: s\r\n\r\nbody\r\n\r\n");
    assert!(imap.until("a7").tagged.starts_with("a7 OK [APPENDUID "));
    // Over-long lines, deep nesting, unknown commands and bad arguments are BAD.
    let reply = imap.cmd("a8", &format!("SEARCH SUBJECT {}", "y".repeat(5000)));
    assert!(reply.tagged.starts_with("a8 BAD "), "{reply:?}");
    assert!(imap.cmd("a9", "SELECT INBOX").ok());
    let deep = format!("a10 SEARCH {}ALL{}", "(".repeat(100), ")".repeat(100));
    assert!(imap.cmd("a10", &deep[4..]).tagged.starts_with("a10 BAD "));
    assert!(imap.cmd("a11", "FROB").tagged.starts_with("a11 BAD "));
    assert!(imap.cmd("a12", "FETCH 9 FLAGS").tagged.starts_with("a12 BAD "), "no message 9");
    assert!(imap.cmd("a13", "UID FETCH 9 FLAGS").ok(), "UIDs that do not exist are skipped");
    assert!(imap.cmd("a14", "STORE 1 +FLAGS (\\Recent)").tagged.starts_with("a14 BAD "));
    assert!(imap.cmd("a15", "CREATE a.b").tagged.starts_with("a15 NO [CANNOT] "));
    assert!(imap.cmd("a16", "SELECT nothere").tagged.starts_with("a16 NO [NONEXISTENT] "));
    assert!(imap.cmd("a17", "FETCH 1 FLAGS").tagged.starts_with("a17 BAD "), "a failed SELECT leaves nothing selected");
    // Many bad commands end the session.
    // In one write: the server may close the connection before a later write would land.
    imap.send((0..20).map(|i| format!("z{i} FROB\r\n")).collect::<String>().as_bytes());
    let mut bye = false;
    for _ in 0..40 {
        let line = imap.response();
        if line.starts_with(b"* BYE") {
            bye = true;
            break;
        }
    }
    assert!(bye, "too many bad commands close the session");
    // An idle session is logged out (here after 2 s).
    let mut idle = Imap::connect(&server);
    let start = std::time::Instant::now();
    assert!(idle.response().starts_with(b"* BYE "));
    assert!(start.elapsed() >= Duration::from_secs(2));
    assert!(server.logged(|l| l.contains("literal over the limit refused") && l.contains("imap.max_literal")));
}
