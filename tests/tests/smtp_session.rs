//! SMTP sessions in raw bytes against the real binary: the README session, the commands,
//! PIPELINING, BDAT, and every reply code the issue names.

use wasmail_tests::{Server, Setup};

#[test]
fn readme_session_typed_by_hand() {
    let server = Server::start();
    let mut c = server.connect();
    let greeting = c.reply();
    assert_eq!((greeting.code, greeting.text()), (220, "mx.test ESMTP Wasmail".to_string()));
    let helo = c.expect("HELO client.example", 250);
    assert_eq!(helo.text(), "mx.test Hello client.example [127.0.0.1]");
    assert_eq!(c.expect("MAIL FROM:<daniel@client.example>", 250).text(), "2.1.0 Sender ok");
    assert_eq!(c.expect("RCPT TO:<tyler@localhost>", 250).text(), "2.1.5 Recipient ok");
    assert_eq!(c.expect("DATA", 354).text(), "Enter mail, end with \".\" on a line by itself");
    c.send("Hi Tyler!\r\n.\r\n");
    let accepted = c.reply();
    assert_eq!(accepted.code, 250);
    assert!(accepted.text().starts_with("2.0.0 Q") && accepted.text().ends_with(" Message accepted for delivery"), "{accepted:?}");
    let queue_id = accepted.text().split(' ').nth(1).unwrap().to_string();
    assert_eq!(c.expect("QUIT", 221).text(), "2.0.0 mx.test closing connection");
    assert!(c.is_closed(std::time::Duration::from_secs(5)));

    let mail = server.mailbox("tyler");
    assert_eq!(mail.len(), 1);
    let message = &mail[0];
    assert!(
        message
            .starts_with("Return-Path: <daniel@client.example>\nReceived: from client.example ([127.0.0.1])\n\tby mx.test (Wasmail) with SMTP id "),
        "{message}"
    );
    assert!(message.contains(&format!("id {queue_id}\n\tfor <tyler@localhost>; ")), "{message}");
    assert!(message.ends_with("\nHi Tyler!\n"), "{message}");
}

#[test]
fn ehlo_lists_exactly_the_working_extensions() {
    let server = Server::start();
    let mut c = server.connect();
    c.reply();
    let ehlo = c.expect("EHLO client.example", 250);
    assert_eq!(
        ehlo.lines,
        [
            "mx.test Hello client.example [127.0.0.1]",
            "PIPELINING",
            "SIZE 26214400",
            "8BITMIME",
            "BINARYMIME",
            "CHUNKING",
            "ENHANCEDSTATUSCODES",
            "DSN",
            "ETRN",
            "SMTPUTF8",
            "HELP",
            // [auth] plaintext = "loopback": passwords may be sent from here without TLS.
            "AUTH PLAIN LOGIN"
        ]
    );
    // With VRFY and EXPN switched on they are listed too.
    let server = Server::start_with(Setup { smtp: "vrfy = true\nexpn = true\n".into(), ..Setup::default() });
    let mut c = server.connect();
    c.reply();
    let ehlo = c.expect("EHLO client.example", 250);
    assert_eq!(&ehlo.lines[ehlo.lines.len() - 2..], ["VRFY", "EXPN"]);
}

#[test]
fn help_vrfy_expn_with_aliases() {
    let setup = Setup {
        aliases: Some("# test aliases\npostmaster: tyler\nstaff: tyler,\n  hunt\n".into()),
        users: vec!["tyler".into(), "hunt".into()],
        ..Setup::default()
    };
    // Defaults: VRFY answers 252, EXPN 502.
    let server = Server::start_with(setup.clone());
    let mut c = server.connect();
    c.greet();
    let help = c.expect("HELP", 214);
    assert!(help.lines.len() > 1 && help.lines.iter().all(|l| l.starts_with("2.0.0 ")));
    assert!(help.text().contains("RSET"));
    let rset = c.expect("HELP RSET", 214);
    assert!(rset.text().starts_with("2.0.0 RSET -- abort the current transaction"), "{rset:?}");
    assert_eq!(c.expect("HELP FROB", 504).text(), "5.5.4 HELP topic \"FROB\" unknown");
    assert!(c.expect("VRFY tyler", 252).text().starts_with("2.5.2 "));
    assert!(c.expect("EXPN staff", 502).text().starts_with("5.5.1 "));

    let server = Server::start_with(Setup { smtp: "vrfy = true\nexpn = true\n".into(), ..setup });
    let mut c = server.connect();
    c.greet();
    assert_eq!(c.expect("VRFY tyler", 250).text(), "2.1.5 tyler <tyler@localhost>");
    assert_eq!(c.expect("VRFY <postmaster@localhost>", 250).text(), "2.1.5 tyler <tyler@localhost>");
    assert!(c.expect("VRFY nobody", 550).text().starts_with("5.1.1 "));
    assert!(c.expect("VRFY staff", 553).text().starts_with("5.1.4 "));
    let expn = c.expect("EXPN staff", 250);
    assert_eq!(expn.lines, ["2.1.5 <tyler@localhost>", "2.1.5 <hunt@localhost>"]);
    assert!(c.expect("EXPN nobody", 550).text().starts_with("5.1.1 "));
}

#[test]
fn obsolete_unknown_and_out_of_sequence_commands() {
    let server = Server::start();
    let mut c = server.connect();
    c.reply();
    assert_eq!(c.expect("MAIL FROM:<a@client.test>", 503).text(), "5.5.1 Send HELO or EHLO first");
    c.expect("EHLO client.test", 250);
    for verb in ["SEND FROM:<a@b.c>", "SOML FROM:<a@b.c>", "SAML FROM:<a@b.c>", "TURN"] {
        assert!(c.expect(verb, 502).text().starts_with("5.5.1 "), "{verb}");
    }
    assert_eq!(c.expect("FROB", 500).text(), "5.5.2 Command unrecognized");
    // Seven errors so far; a new session starts the count again (ten end a session).
    let mut c = server.connect();
    c.greet();
    assert!(c.expect("RCPT TO:<tyler@localhost>", 503).text().starts_with("5.5.1 "));
    assert!(c.expect("DATA", 503).text().starts_with("5.5.1 "));
    c.expect("MAIL FROM:<a@client.test>", 250);
    assert_eq!(c.expect("MAIL FROM:<a@client.test>", 503).text(), "5.5.1 Nested MAIL command");
    assert!(c.expect("DATA", 554).text().starts_with("5.5.1 No valid recipients"));
    c.expect("RSET", 250);
    c.expect("NOOP", 250);
    c.expect("NOOP anything at all", 250);
}

#[test]
fn parameters_are_validated() {
    let server = Server::start();
    let mut c = server.connect();
    c.greet();
    assert_eq!(c.expect("MAIL FROM:<a@client.test> FROB=1", 555).text(), "5.5.4 Unsupported parameter FROB");
    assert!(c.expect("MAIL FROM:<a@client.test> BODY=9BIT", 501).text().starts_with("5.5.4 "));
    assert!(c.expect("MAIL FROM:<a@client.test> SIZE=1 SIZE=2", 501).text().starts_with("5.5.4 "));
    assert!(c.expect("MAIL FROM:<not an address>", 501).text().starts_with("5.1.7 "));
    c.expect("MAIL FROM:<a@client.test> BODY=8BITMIME RET=HDRS ENVID=abc+2Bdef SIZE=100", 250);
    assert!(c.expect("RCPT TO:<tyler@localhost> NOTIFY=NEVER,SUCCESS", 501).text().starts_with("5.5.4 "));
    assert!(c.expect("RCPT TO:<tyler@localhost> XNOTIFY=1", 555).text().starts_with("5.5.4 "));
    assert!(c.expect("RCPT TO:<tyler@@localhost>", 501).text().starts_with("5.1.3 "));
    c.expect("RCPT TO:<tyler@localhost> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;tyler@localhost", 250);
    c.expect("RCPT TO:<Postmaster>", 250);
    c.expect("DATA", 354);
    c.send("Subject: caf\u{e9}\r\n\r\n8-bit body: \u{e9}\r\n.\r\n");
    assert_eq!(c.reply().code, 250);
    let mail = server.mailbox("tyler");
    assert!(mail[0].contains("8-bit body: \u{e9}"));
    // Two recipients: the Received header names neither.
    assert!(!mail[0].contains("\tfor <"), "{}", mail[0]);
    assert_eq!(server.mailbox("postmaster").len(), 1);
}

#[test]
fn smtputf8_addresses_need_the_parameter() {
    let server = Server::start();
    let mut c = server.connect();
    c.greet();
    assert!(c.expect("MAIL FROM:<j\u{f6}rg@b\u{fc}cher.example>", 553).text().starts_with("5.6.7 "));
    c.expect("MAIL FROM:<j\u{f6}rg@b\u{fc}cher.example> SMTPUTF8", 250);
    assert!(c.expect("RCPT TO:<\u{e9}l\u{e8}ve@localhost>", 550).text().starts_with("5.1.1 "));
    c.expect("RCPT TO:<tyler@localhost>", 250);
    c.expect("DATA", 354);
    c.send("Subject: gr\u{fc}\u{df}e\r\n\r\nhi\r\n.\r\n");
    assert_eq!(c.reply().code, 250);
    let mail = server.mailbox("tyler");
    assert!(mail[0].starts_with("Return-Path: <j\u{f6}rg@b\u{fc}cher.example>"));
    assert!(mail[0].contains("with UTF8SMTP id"));
}

#[test]
fn relay_is_refused_unless_the_client_may_relay() {
    let server = Server::start();
    let mut c = server.connect();
    c.greet();
    c.expect("MAIL FROM:<a@client.test>", 250);
    assert_eq!(c.expect("RCPT TO:<x@elsewhere.example>", 550).text(), "5.7.1 <x@elsewhere.example>: Relay access denied");
    assert!(c.expect("RCPT TO:<x@[127.0.0.1]>", 550).text().starts_with("5.7.1 "));

    // A client in relay_networks may: the queue relays it (tests/relay.rs).
    let server = Server::start_with(Setup { top: "relay_networks = [\"127.0.0.0/8\"]".into(), ..Setup::default() });
    let mut c = server.connect();
    c.greet();
    c.expect("MAIL FROM:<a@client.test>", 250);
    c.expect("RCPT TO:<x@elsewhere.example>", 250);
}

#[test]
fn aliases_tags_case_and_unknown_users() {
    let server = Server::start_with(Setup {
        aliases: Some("staff: tyler, hunt\nloop1: loop2\nloop2: loop1\n".into()),
        users: vec!["tyler".into(), "hunt".into()],
        ..Setup::default()
    });
    let mut c = server.connect();
    c.greet();
    c.expect("MAIL FROM:<a@client.test>", 250);
    c.expect("RCPT TO:<Staff@EXAMPLE.test>", 250);
    c.expect("RCPT TO:<TYLER+lists@localhost>", 250);
    assert_eq!(c.expect("RCPT TO:<nobody@localhost>", 550).text(), "5.1.1 <nobody@localhost>: Recipient address rejected: User unknown");
    assert!(c.expect("RCPT TO:<loop1@localhost>", 550).text().starts_with("5.4.6 "));
    c.expect("DATA", 354);
    c.send("Subject: staff\r\n\r\nhello\r\n.\r\n");
    assert_eq!(c.reply().code, 250);
    // tyler is reached twice (alias and +tag) but gets one copy.
    assert_eq!(server.mailbox("tyler").len(), 1);
    assert_eq!(server.mailbox("hunt").len(), 1);
    assert!(server.mailbox("nobody").is_empty());
}

#[test]
fn pipelining_one_packet_gets_every_reply() {
    let server = Server::start();
    let mut c = server.connect();
    c.greet();
    c.send("MAIL FROM:<daniel@client.example>\r\nRCPT TO:<tyler@localhost>\r\nRCPT TO:<nobody@elsewhere.example>\r\nRCPT TO:<hunt@localhost>\r\nDATA\r\n");
    let codes: Vec<u16> = (0..5).map(|_| c.reply().code).collect();
    assert_eq!(codes, [250, 250, 550, 250, 354]);
    // Content, end of data, and the next transaction in one packet.
    c.send("Subject: one\r\n\r\nfirst\r\n.\r\nRSET\r\nMAIL FROM:<>\r\nRCPT TO:<tyler@localhost>\r\nDATA\r\n");
    let codes: Vec<u16> = (0..5).map(|_| c.reply().code).collect();
    assert_eq!(codes, [250, 250, 250, 250, 354]);
    c.send("Subject: two\r\n\r\nsecond\r\n.\r\nQUIT\r\n");
    assert_eq!(c.reply().code, 250);
    assert_eq!(c.reply().code, 221);
    let tyler = server.mailbox("tyler");
    assert_eq!(tyler.len(), 2);
    assert!(tyler.iter().any(|m| m.starts_with("Return-Path: <>\n")));
    assert_eq!(server.mailbox("hunt").len(), 1);
}

#[test]
fn bdat_chunks_last_and_binarymime() {
    let server = Server::start();
    let mut c = server.connect();
    c.greet();
    // Pipelined: MAIL, RCPT and two BDAT chunks in one packet.
    c.send("MAIL FROM:<a@client.test>\r\nRCPT TO:<tyler@localhost>\r\nBDAT 20\r\nSubject: chunked\r\n\r\nBDAT 9 LAST\r\nbody\r\n.\r\n");
    assert_eq!(c.reply().code, 250);
    assert_eq!(c.reply().code, 250);
    assert_eq!(c.reply().text(), "2.0.0 20 octets received");
    let last = c.reply();
    assert_eq!(last.code, 250, "{last:?}");
    // A lone dot line is content in BDAT, not an end marker.
    assert!(server.mailbox("tyler")[0].ends_with("Subject: chunked\n\nbody\n.\n"));

    // BINARYMIME needs BDAT; bare LFs and NULs are fine there.
    c.expect("MAIL FROM:<a@client.test> BODY=BINARYMIME", 250);
    c.expect("RCPT TO:<hunt@localhost>", 250);
    assert!(c.expect("DATA", 503).text().contains("BDAT"));
    let body = b"Subject: bin\r\n\r\n\x00\x01\n\xff\r\n";
    c.send(format!("BDAT {} LAST\r\n", body.len()));
    c.send(body);
    assert_eq!(c.reply().code, 250);
    assert_eq!(server.mailbox("hunt").len(), 1);

    // BDAT without a transaction: the chunk is read and dropped, then 503.
    c.send("BDAT 5\r\nHELLOBDAT 0 LAST\r\n");
    assert_eq!(c.reply().code, 503);
    assert_eq!(c.reply().code, 503);
    c.expect("NOOP", 250);

    // DATA after BDAT in the same transaction is out of sequence.
    c.expect("MAIL FROM:<a@client.test>", 250);
    c.expect("RCPT TO:<tyler@localhost>", 250);
    c.send("BDAT 3\r\nab\n");
    assert_eq!(c.reply().code, 250);
    assert_eq!(c.expect("DATA", 503).code, 503);
    // A bare LF in a non-binary BDAT body is refused at LAST.
    c.send("BDAT 0 LAST\r\n");
    assert_eq!(c.reply().text(), "5.5.2 Message contains a bare CR or LF; line ends must be CRLF (RFC 5321 2.3.8)");
    assert_eq!(server.mailbox("tyler").len(), 1);
}
