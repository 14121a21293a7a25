//! SORT (RFC 5256, with SORT=DISPLAY and ESORT) and THREAD (ORDEREDSUBJECT, REFERENCES) over a
//! raw IMAP connection, on the kinds of messages Dovecot's imaptest sorts and threads: base
//! subjects behind Re:/Fwd:/[list] and encoded words, groups as first addresses, Date: headers
//! against arrival, References that contradict each other, replies to a missing message.

use wasmail_tests::imap::{Imap, Reply};
use wasmail_tests::{Server, Setup};

fn server() -> Server {
    Server::start_with(Setup { users: vec!["tyler".into()], ..Setup::default() })
}

/// Appends a message made of `header` (CRLF-separated fields) with INTERNALDATE `arrival`.
fn append(imap: &mut Imap, header: &str, arrival: &str) {
    let message = format!("{header}\r\n\r\nbody\r\n");
    imap.send(format!("a APPEND INBOX \"{arrival}\" {{{}+}}\r\n{message}\r\n", message.len()).as_bytes());
    let reply = imap.until("a");
    assert!(reply.ok(), "{reply:?}");
}

fn only(reply: &Reply, name: &str) -> String {
    assert!(reply.ok(), "{reply:?}");
    let lines: Vec<String> = reply.lines().into_iter().filter(|l| l.starts_with(name)).collect();
    assert_eq!(lines.len(), 1, "{reply:?}");
    lines[0].clone()
}

#[test]
fn sort_by_every_key_with_the_rfc_5256_comparisons() {
    let server = server();
    let mut imap = Imap::login(&server, "tyler");
    let caps = imap.cmd("c", "CAPABILITY").lines()[0].clone();
    for cap in ["SORT", "SORT=DISPLAY", "ESORT", "THREAD=ORDEREDSUBJECT", "THREAD=REFERENCES"] {
        assert!(caps.split(' ').any(|c| c == cap), "{cap} in {caps}");
    }
    let messages = [
        (
            "Subject: [list] Re: fw: b (fwd)\r\nFrom: \"Zed\" <zed@x.org>\r\nTo: team: a@x.org, b@x.org;\r\nDate: Tue, 3 Mar 2026 11:00:00 +0000",
            "05-Mar-2026 10:00:00 +0000",
        ),
        (
            "Subject: =?utf-8?q?a?=\r\nFrom: bob@x.org\r\nTo: =?iso-8859-1?q?foo_aar?= <e@f.g>\r\nDate: Tue, 3 Mar 2026 12:00:00 +0200",
            "01-Mar-2026 10:00:00 +0000",
        ),
        ("Subject: Re: [FWD: c]\r\nFrom: Amy <amy@x.org>\r\nTo: b@c.d", "03-Mar-2026 10:00:00 +0000"),
        ("Subject: [xyz]\r\nFrom: amy@y.org\r\nTo: empty:;", "02-Mar-2026 10:00:00 +0000"),
        ("Subject: B\r\nFrom: zed@x.org", "04-Mar-2026 10:00:00 +0000"),
    ];
    for (header, arrival) in messages {
        append(&mut imap, header, arrival);
    }
    assert!(imap.cmd("s", "SELECT INBOX").ok());
    let sort = |imap: &mut Imap, criteria: &str| only(&imap.cmd("t", &format!("SORT ({criteria}) UTF-8 ALL")), "SORT");
    // Base subjects: A, B, B, C, [XYZ]; ties by message number.
    assert_eq!(sort(&mut imap, "SUBJECT"), "SORT 2 1 5 3 4");
    assert_eq!(sort(&mut imap, "REVERSE SUBJECT"), "SORT 4 3 1 5 2", "REVERSE turns the key, not the tie-breaker");
    assert_eq!(sort(&mut imap, "SUBJECT REVERSE ARRIVAL"), "SORT 2 1 5 3 4");
    assert_eq!(sort(&mut imap, "ARRIVAL"), "SORT 2 4 3 5 1");
    // Date: in UTC (message 2's 12:00 +0200 is before message 1's 11:00 +0000); without one,
    // INTERNALDATE (message 3's equals message 2's Date: the number decides).
    assert_eq!(sort(&mut imap, "DATE"), "SORT 4 2 3 1 5");
    // The mailbox of the first address, a group's name for a group; none sorts first.
    assert_eq!(sort(&mut imap, "FROM"), "SORT 3 4 2 1 5");
    assert_eq!(sort(&mut imap, "TO"), "SORT 5 3 2 4 1");
    // SORT=DISPLAY: the display name (decoded), else the address.
    assert_eq!(sort(&mut imap, "DISPLAYTO"), "SORT 5 3 4 2 1");
    assert_eq!(sort(&mut imap, "DISPLAYFROM"), "SORT 3 4 2 1 5");
    assert_eq!(sort(&mut imap, "SIZE"), sort(&mut imap, "SIZE"));
    // UID SORT names UIDs; a search key narrows what is sorted.
    assert_eq!(only(&imap.cmd("u", "UID SORT (SUBJECT) US-ASCII NOT SUBJECT xyz"), "SORT"), "SORT 2 1 5 3");
    // ESORT: in the sort order, as ESEARCH.
    let esort = only(&imap.cmd("e1", "SORT RETURN (MIN MAX COUNT ALL) (SUBJECT) UTF-8 ALL"), "ESEARCH");
    assert_eq!(esort, "ESEARCH (TAG \"e1\") MIN 2 MAX 4 COUNT 5 ALL 2,1,5,3:4");
    let bad = imap.cmd("b", "SORT (SUBJECT) KOI8-R ALL");
    assert!(bad.tagged.starts_with("b NO [BADCHARSET"), "{bad:?}");
}

#[test]
fn threads_by_references_and_by_subject() {
    let server = server();
    let mut imap = Imap::login(&server, "tyler");
    // imaptest's thread.mbox: b says a > c > b, and c says b > c: the loop is not made.
    append(&mut imap, "Message-ID: <a@b>", "22-Feb-2008 17:06:23 +0000");
    append(&mut imap, "Message-Id: <b@b>\r\nReferences: <a@b> <c@b>", "22-Feb-2008 15:06:23 +0000");
    append(&mut imap, "Message-Id: <c@b>\r\nReferences: <b@b>", "22-Feb-2008 16:06:25 +0000");
    // Two replies to a message that is not there, and an unrelated one with a subject.
    append(&mut imap, "Message-ID: <r1@h>\r\nIn-Reply-To: <gone@h>\r\nSubject: Re: lunch", "23-Feb-2008 10:00:00 +0000");
    append(&mut imap, "Message-ID: <r2@h>\r\nReferences: <gone@h>\r\nSubject: Re: lunch", "23-Feb-2008 11:00:00 +0000");
    append(&mut imap, "Message-ID: <l@h>\r\nSubject: lunch", "24-Feb-2008 11:00:00 +0000");
    assert!(imap.cmd("s", "SELECT INBOX").ok());
    let references = only(&imap.cmd("t1", "THREAD REFERENCES US-ASCII ALL"), "THREAD");
    // The dummy that holds 4 and 5 gathers 6 too, by subject.
    assert_eq!(references, "THREAD (3 2)(1)((4)(5)(6))");
    let ordered = only(&imap.cmd("t2", "THREAD ORDEREDSUBJECT US-ASCII ALL"), "THREAD");
    assert_eq!(ordered, "THREAD (2 (3)(1))(4 (5)(6))");
    assert!(imap.cmd("d", "STORE 1 +FLAGS.SILENT (\\Deleted)").ok());
    assert!(imap.cmd("x", "EXPUNGE").ok());
    assert_eq!(only(&imap.cmd("t3", "THREAD REFERENCES US-ASCII ALL"), "THREAD"), "THREAD (2 1)((3)(4)(5))");
    assert_eq!(only(&imap.cmd("t4", "UID THREAD REFERENCES US-ASCII UID 2:3"), "THREAD"), "THREAD (3 2)");
}
