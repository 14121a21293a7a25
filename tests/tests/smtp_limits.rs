//! Limits and hostile input, each with its RFC reply: line lengths, SIZE, recipients,
//! timeouts, connections, error counts, NUL bytes and SMTP smuggling.

use std::time::{Duration, Instant};

use wasmail_tests::{Client, Server, Setup};

#[test]
fn command_line_over_512_octets() {
    let server = Server::start();
    let mut c = server.connect();
    c.greet();
    // 512 octets with CRLF is fine; 513 is not.
    let ok = format!("NOOP {}", "x".repeat(512 - 7));
    c.expect(&ok, 250);
    let long = format!("NOOP {}", "x".repeat(512 - 6));
    assert_eq!(c.expect(&long, 500).text(), "5.5.2 Line too long (RFC 5321 4.5.3.1.4)");
    // A line far beyond any limit is refused once and its tail is never run as a command.
    c.send(format!("NOOP {}QUIT\r\n", "y".repeat(100_000)));
    assert_eq!(c.reply().code, 500);
    c.expect("NOOP", 250);
}

#[test]
fn text_line_over_the_limit_rejects_the_transaction() {
    let server = Server::start();
    let mut c = server.connect();
    c.greet();
    let ok = format!("Subject: fine\r\n\r\n{}\r\n", "a".repeat(998));
    assert_eq!(c.send_mail("a@client.test", &["tyler@localhost"], &ok).code, 250);
    let long = format!("Subject: long\r\n\r\n{}\r\n", "a".repeat(999));
    let reply = c.send_mail("a@client.test", &["tyler@localhost"], &long);
    assert_eq!((reply.code, reply.text()), (550, "5.6.0 Message contains a line longer than 998 octets".to_string()));
    // Nothing was cut and stored: only the first message is there.
    assert_eq!(server.mailbox("tyler").len(), 1);
    // The session goes on.
    c.expect("NOOP", 250);
}

#[test]
fn size_limit_at_mail_and_while_streaming() {
    let server = Server::start_with(Setup { smtp: "max_message_size = 10000\n".into(), ..Setup::default() });
    let mut c = server.connect();
    c.reply();
    let ehlo = c.expect("EHLO client.test", 250);
    assert!(ehlo.lines.contains(&"SIZE 10000".to_string()));
    assert_eq!(c.expect("MAIL FROM:<a@client.test> SIZE=10001", 552).text(), "5.3.4 Message size exceeds fixed maximum message size");
    // Undeclared: refused at the end of data, after 5 MB streamed through a 10 kB limit.
    c.expect("MAIL FROM:<a@client.test>", 250);
    c.expect("RCPT TO:<tyler@localhost>", 250);
    c.expect("DATA", 354);
    let line = format!("{}\r\n", "z".repeat(98));
    for _ in 0..50_000 {
        c.send(&line);
    }
    c.send(".\r\n");
    let reply = c.reply();
    assert_eq!((reply.code, reply.text().starts_with("5.3.4 ")), (552, true), "{reply:?}");
    // BDAT: the chunk that passes the limit gets 552.
    c.expect("MAIL FROM:<a@client.test>", 250);
    c.expect("RCPT TO:<tyler@localhost>", 250);
    c.send(format!("BDAT 20000 LAST\r\n{}", "z".repeat(20000)));
    assert_eq!(c.reply().code, 552);
    assert!(server.mailbox("tyler").is_empty());
    c.expect("NOOP", 250);
}

#[test]
fn too_many_recipients() {
    let server = Server::start_with(Setup { smtp: "max_recipients = 3\n".into(), ..Setup::default() });
    let mut c = server.connect();
    c.greet();
    c.expect("MAIL FROM:<a@client.test>", 250);
    for i in 0..3 {
        c.expect(&format!("RCPT TO:<user{i}@localhost>"), 250);
    }
    assert_eq!(c.expect("RCPT TO:<user3@localhost>", 452).text(), "4.5.3 Too many recipients");
    c.expect("DATA", 354);
    c.send("Subject: x\r\n\r\nx\r\n.\r\n");
    assert_eq!(c.reply().code, 250);
    assert_eq!(server.mailbox("user2").len(), 1);
    assert!(server.mailbox("user3").is_empty());
}

#[test]
fn idle_timeouts_answer_421_and_close() {
    let server = Server::start_with(Setup { smtp: "command_timeout = \"1s\"\ndata_timeout = \"2s\"\n".into(), ..Setup::default() });
    let mut c = server.connect();
    c.greet();
    let start = Instant::now();
    let reply = c.reply();
    assert_eq!((reply.code, reply.text()), (421, "4.4.2 mx.test Error: timeout exceeded".to_string()));
    assert!(start.elapsed() >= Duration::from_millis(900));
    assert!(c.is_closed(Duration::from_secs(5)));

    // In DATA the data timeout applies, and nothing half-received is stored.
    let mut c = server.connect();
    c.greet();
    c.expect("MAIL FROM:<a@client.test>", 250);
    c.expect("RCPT TO:<tyler@localhost>", 250);
    c.expect("DATA", 354);
    c.send("Subject: never finished\r\n");
    let start = Instant::now();
    assert_eq!(c.reply().code, 421);
    assert!(start.elapsed() >= Duration::from_millis(1500), "{:?}", start.elapsed());
    assert!(server.mailbox("tyler").is_empty());
}

#[test]
fn connection_limit_answers_421() {
    let server = Server::start_with(Setup { smtp: "max_connections = 2\n".into(), ..Setup::default() });
    let mut first = server.connect();
    first.greet();
    let mut second = server.connect();
    second.greet();
    let mut third = server.connect();
    let reply = third.reply();
    assert_eq!((reply.code, reply.text()), (421, "4.3.2 mx.test Too many connections, try again later".to_string()));
    assert!(third.is_closed(Duration::from_secs(5)));
    // A slot frees when a session ends.
    first.expect("QUIT", 221);
    assert!(first.is_closed(Duration::from_secs(5)));
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut again = server.connect();
        let reply = again.reply();
        if reply.code == 220 {
            break;
        }
        assert!(Instant::now() < deadline, "the slot was never freed");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn ten_bad_commands_close_the_session() {
    let server = Server::start();
    let mut c = server.connect();
    c.greet();
    for _ in 0..9 {
        c.expect("FROB", 500);
    }
    let reply = c.command("FROB");
    assert_eq!(reply.code, 500);
    let last = c.reply();
    assert_eq!((last.code, last.text().starts_with("4.7.0 ")), (421, true), "{last:?}");
    assert!(c.is_closed(Duration::from_secs(5)));
}

#[test]
fn nul_bytes_in_commands_are_rejected() {
    let server = Server::start();
    let mut c = server.connect();
    c.greet();
    c.send("MAIL FROM:<a@client.test>\0\r\n");
    assert_eq!(c.reply().text(), "5.5.2 NUL or bare CR in command");
    c.send("RCPT TO:<tyler@localhost>\rRSET\r\n");
    assert_eq!(c.reply().code, 500);
    // Neither command took effect.
    assert_eq!(c.expect("RCPT TO:<tyler@localhost>", 503).code, 503);
}

/// Sends `content` (which contains a would-be end of data and a smuggled transaction) and then
/// the real end of data. Returns the final reply and what the mailbox of `victim` got.
fn smuggle(server: &Server, content: &[u8]) -> (u16, usize, usize) {
    let mut c = server.connect();
    c.greet();
    c.expect("MAIL FROM:<a@client.test>", 250);
    c.expect("RCPT TO:<tyler@localhost>", 250);
    c.expect("DATA", 354);
    c.send(content);
    c.send("\r\n.\r\n");
    let reply = c.reply();
    // If the smuggled commands had been run, their replies would be waiting here.
    c.expect("NOOP", 250);
    (reply.code, server.mailbox("tyler").len(), server.mailbox("victim").len())
}

#[test]
fn smuggling_bare_line_ends_never_end_data() {
    let server = Server::start();
    let smuggled = "MAIL FROM:<admin@localhost>\r\nRCPT TO:<victim@localhost>\r\nDATA\r\nSubject: smuggled\r\n\r\nspoof";
    for end in ["\n.\n", "\r.\r", "\n.\r\n", "\r.\n", "\r\n.\n"] {
        let content = format!("Subject: carrier\r\n\r\nbody{end}{smuggled}");
        let (code, tyler, victim) = smuggle(&server, content.as_bytes());
        // The bare line end makes the whole message unacceptable; nothing is smuggled.
        assert_eq!((code, tyler, victim), (550, 0, 0), "end {end:?}");
    }
}

#[test]
fn smuggling_with_bare_line_ends_accepted_still_never_ends_data() {
    let server = Server::start_with(Setup { smtp: "bare_line_ending = \"accept\"\n".into(), ..Setup::default() });
    let smuggled = "MAIL FROM:<admin@localhost>\r\nRCPT TO:<victim@localhost>\r\nDATA\r\nSubject: smuggled\r\n\r\nspoof";
    for (i, end) in ["\n.\n", "\r.\r", "\n.\r\n"].iter().enumerate() {
        let content = format!("Subject: carrier\r\n\r\nbody{end}{smuggled}");
        let (code, tyler, victim) = smuggle(&server, content.as_bytes());
        // One message, containing the would-be commands as text; no message to the victim.
        assert_eq!((code, tyler, victim), (250, i + 1, 0), "end {end:?}");
    }
    assert!(server.mailbox("tyler")[0].contains("RCPT TO:<victim@localhost>"));
}

#[test]
fn dot_stuffing_round_trip() {
    let server = Server::start();
    let mut c = Client::connect(server.smtp);
    c.greet();
    let reply = c.send_mail("a@client.test", &["tyler@localhost"], "Subject: dots\r\n\r\n..one dot\r\n...\r\n.. \r\nplain.\r\n");
    assert_eq!(reply.code, 250);
    assert!(server.mailbox("tyler")[0].ends_with("\n\n.one dot\n..\n. \nplain.\n"));
}
