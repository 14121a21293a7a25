//! The Maildir store as operators and readers meet it: a mailbox removed under the running
//! server, and sizes in file names that match what POP3 and IMAP send.

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use wasmail_tests::{raw_connection, read_line, Server, Setup};

/// An operator removes a user's Maildir while the server runs: the next delivery makes it
/// again (`tmp`, `new`, `cur`) instead of deferring with ENOENT until the message bounces.
#[test]
fn a_maildir_removed_while_the_server_runs_is_made_again() {
    let server = Server::start_with(Setup { users: vec!["tyler".into()], ..Setup::default() });
    let send = |subject: &str| {
        let mut c = server.connect();
        c.greet();
        assert_eq!(c.send_mail("daniel@client.example", &["tyler@localhost"], &format!("Subject: {subject}\r\n\r\nx\r\n")).code, 250);
    };
    send("first");
    assert_eq!(server.mailbox("tyler").len(), 1);
    let maildir = server.data_dir().join("mail/tyler");
    std::fs::remove_dir_all(&maildir).unwrap();
    send("second");
    let deadline = Instant::now() + Duration::from_secs(60);
    while server.mailbox_now("tyler").is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let messages = server.mailbox_now("tyler");
    assert_eq!(messages.len(), 1, "the second message was not delivered; queue: {:?}", server.queued());
    assert!(messages[0].contains("Subject: second"));
    for sub in ["tmp", "new", "cur"] {
        assert!(maildir.join(sub).is_dir(), "{sub}/ was not made again");
    }
}

/// A message with `\r\r\n` (a bare CR before a line end) is stored with the CR LF turned
/// into LF; the `W=` size in its file name, which IMAP answers as RFC822.SIZE, is the size
/// of what FETCH then sends.
#[test]
fn rfc822_size_is_the_size_fetch_sends() {
    let server = Server::start_with(Setup { users: vec!["tyler".into()], ..Setup::default() });
    let (mut reader, mut writer) = raw_connection(server.imap.unwrap(), Duration::from_secs(30));
    assert!(read_line(&mut reader).starts_with("* OK"));
    let message = b"Subject: cr\r\r\n\r\nbody\r\r\nend\r\n";
    writer.write_all(format!("a LOGIN tyler secret\r\nb APPEND INBOX {{{}+}}\r\n", message.len()).as_bytes()).unwrap();
    writer.write_all(message).unwrap();
    writer.write_all(b"\r\nc SELECT INBOX\r\nd FETCH 1 (RFC822.SIZE BODY.PEEK[])\r\n").unwrap();
    let mut size = None;
    let mut body = None;
    loop {
        let line = read_line(&mut reader);
        assert!(!line.is_empty(), "the connection closed");
        assert!(!line.contains(" NO ") && !line.contains(" BAD "), "{line}");
        if line.starts_with("* 1 FETCH") {
            size = line.split("RFC822.SIZE ").nth(1).and_then(|s| s.split([' ', ')']).next()).map(|s| s.parse::<usize>().unwrap());
            let announced: usize =
                line.trim_end().strip_suffix('}').and_then(|l| l.rsplit_once('{')).map(|(_, n)| n.parse().unwrap()).expect("a literal");
            let mut literal = vec![0u8; announced];
            reader.read_exact(&mut literal).unwrap();
            body = Some(literal);
        }
        if line.starts_with("d OK") {
            break;
        }
    }
    let (size, body) = (size.expect("RFC822.SIZE"), body.expect("BODY[]"));
    assert_eq!(size, body.len(), "RFC822.SIZE {size} but FETCH sent {:?}", String::from_utf8_lossy(&body));
}
