//! TLS and authentication: STARTTLS injection (CVE-2011-0411) in SMTP, POP3 and IMAP; Python's
//! smtplib, poplib and imaplib and swaks over STARTTLS and implicit TLS with AUTH; submission
//! rules; where passwords may travel; the auth penalty.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

use wasmail_tests::{python, Server, Setup};

fn tls_server() -> Server {
    Server::start_with(Setup { users: vec!["tyler".into(), "hunt".into()], tls: true, ..Setup::default() })
}

#[test]
fn a_command_pipelined_after_starttls_is_not_executed() {
    let server = tls_server();
    for (protocol, port) in [("smtp", server.smtp.port()), ("pop3", server.pop3.unwrap().port()), ("imap", server.imap.unwrap().port())] {
        let out = python("tls_session.py", &["injection".into(), protocol.into(), port.to_string().into(), server.cert()]);
        let report: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(report["ok"], true, "{protocol}: {report}");
        assert_eq!(report["tls"], "TLSv1.3", "{protocol}: {report}");
    }
    let discarded = server.log().iter().filter(|l| l.contains("before the handshake")).count();
    assert_eq!(discarded, 3, "each protocol logged what it threw away");
}

#[test]
fn python_clients_send_over_submission_and_read_over_pop3s_and_imaps() {
    let server = tls_server();
    let ports: Vec<std::path::PathBuf> =
        ["submission", "submissions", "pop3s", "imaps", "imap"].iter().map(|p| server.port(p).to_string().into()).collect();
    let mut args = vec!["clients".into(), server.cert()];
    args.extend(ports);
    let out = python("tls_session.py", &args);
    let report: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(report["ok"], true, "{report}");
}

#[test]
fn swaks_submits_with_tls_and_auth_plain() {
    let server = tls_server();
    let output = Command::new("swaks")
        .args(["--server", &format!("127.0.0.1:{}", server.port("submission")), "--tls", "--auth", "PLAIN"])
        .args(["--auth-user", "tyler", "--auth-password", "secret", "--from", "tyler@localhost", "--to", "hunt@localhost"])
        .args(["--header", "Subject: swaks over TLS", "--helo", "client.test"])
        .output()
        .expect("swaks is needed for this test");
    let transcript = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{transcript}");
    assert!(transcript.contains("<~  235 2.7.0 Authentication successful"), "{transcript}");
    let stored = server.mailbox("hunt");
    assert_eq!(stored.len(), 1);
    assert!(stored[0].contains("Subject: swaks over TLS"));
    assert!(stored[0].contains("(using TLS1.3 with cipher TLS13_"), "{}", stored[0]);
    assert!(stored[0].contains("with ESMTPSA id "), "{}", stored[0]);
}

/// A raw SMTP exchange: each command's reply code.
fn smtp_codes(server: &Server, port: u16, commands: &[&str]) -> Vec<String> {
    let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut writer = stream;
    let mut read_reply = || {
        let mut last = String::new();
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap() == 0 {
                return "closed".to_string();
            }
            last.push_str(&line);
            if line.as_bytes().get(3) != Some(&b'-') {
                return last;
            }
        }
    };
    read_reply();
    let _ = server;
    commands
        .iter()
        .map(|command| {
            writer.write_all(format!("{command}\r\n").as_bytes()).unwrap();
            read_reply()
        })
        .collect()
}

#[test]
fn submission_needs_auth_and_the_users_own_sender() {
    let server = tls_server();
    let port = server.port("submission");
    let replies = smtp_codes(&server, port, &["EHLO client.test", "MAIL FROM:<tyler@localhost>"]);
    assert!(replies[0].contains("250-STARTTLS") && replies[0].contains("AUTH PLAIN LOGIN"), "{}", replies[0]);
    assert!(replies[1].starts_with("530 5.7.0 "), "{}", replies[1]);
    // AUTH PLAIN with a wrong password, an identity of another user, then the right one.
    let replies = smtp_codes(
        &server,
        port,
        &[
            "EHLO client.test",
            "AUTH PLAIN AHR5bGVyAHdyb25n",
            "AUTH PLAIN aHVudAB0eWxlcgBzZWNyZXQ=",
            "AUTH PLAIN AHR5bGVyAHNlY3JldA==",
            "AUTH PLAIN AHR5bGVyAHNlY3JldA==",
            "MAIL FROM:<hunt@localhost>",
            "MAIL FROM:<tyler+lists@localhost>",
            "RCPT TO:<someone@elsewhere.example>",
        ],
    );
    assert!(replies[1].starts_with("535 5.7.8 "), "{}", replies[1]);
    assert!(replies[2].starts_with("535 5.7.8 "), "{}", replies[2]);
    assert!(replies[3].starts_with("235 2.7.0 "), "{}", replies[3]);
    assert!(replies[4].starts_with("503 5.5.1 "), "AUTH twice: {}", replies[4]);
    assert!(replies[5].starts_with("553 5.7.1 "), "hunt's address is not tyler's: {}", replies[5]);
    assert!(replies[6].starts_with("250 "), "{}", replies[6]);
    assert!(replies[7].starts_with("250 "), "an authenticated user may relay: {}", replies[7]);
    // AUTH LOGIN, with its two prompts; on port 25 an authenticated client may relay too,
    // as itself.
    let replies = smtp_codes(
        &server,
        server.smtp.port(),
        &[
            "EHLO client.test",
            "RCPT TO:<a@elsewhere.example>",
            "AUTH LOGIN",
            "dHlsZXI=",
            "c2VjcmV0",
            "MAIL FROM:<tyler@localhost>",
            "RCPT TO:<a@elsewhere.example>",
        ],
    );
    assert!(replies[1].starts_with("503 "), "{}", replies[1]);
    assert!(replies[2].starts_with("334 VXNlcm5hbWU6"), "{}", replies[2]);
    assert!(replies[3].starts_with("334 UGFzc3dvcmQ6"), "{}", replies[3]);
    assert!(replies[4].starts_with("235 "), "{}", replies[4]);
    assert!(replies[6].starts_with("250 "), "{}", replies[6]);
}

#[test]
fn without_tls_passwords_stay_home_when_plaintext_is_never() {
    let server = Server::start_with(Setup { users: vec!["hunt".into()], auth: "plaintext = \"never\"\n".into(), tls: true, ..Setup::default() });
    // SMTP: STARTTLS offered, AUTH not, and refused if tried.
    let replies = smtp_codes(&server, server.smtp.port(), &["EHLO client.test", "AUTH PLAIN AGh1bnQAc2VjcmV0"]);
    assert!(replies[0].contains("STARTTLS") && !replies[0].contains("AUTH"), "{}", replies[0]);
    assert!(replies[1].starts_with("538 5.7.11 "), "{}", replies[1]);
    // IMAP: LOGINDISABLED, LOGIN refused.
    let stream = TcpStream::connect(server.imap.unwrap()).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut writer = stream;
    let mut greeting = String::new();
    reader.read_line(&mut greeting).unwrap();
    assert!(greeting.contains("LOGINDISABLED") && greeting.contains("STARTTLS") && !greeting.contains("AUTH=PLAIN"), "{greeting}");
    writer.write_all(b"a LOGIN hunt secret\r\n").unwrap();
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    assert!(line.starts_with("a NO [PRIVACYREQUIRED] "), "{line}");
    // POP3: CAPA without USER and SASL, USER refused.
    let stream = TcpStream::connect(server.pop3.unwrap()).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut writer = stream;
    let mut capa = String::new();
    reader.read_line(&mut capa).unwrap();
    writer.write_all(b"CAPA\r\nUSER hunt\r\n").unwrap();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        if line == ".\r\n" {
            break;
        }
        capa.push_str(&line);
    }
    assert!(capa.contains("STLS") && !capa.contains("USER") && !capa.contains("SASL"), "{capa}");
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    assert!(line.starts_with("-ERR "), "{line}");
}

#[test]
fn failed_logins_are_delayed_and_then_refused_per_address() {
    let server = Server::start_with(Setup {
        users: vec!["hunt".into()],
        auth: "failure_delay = \"200ms\"\nfailure_delay_max = \"300ms\"\nmax_failures = 3\n".into(),
        ..Setup::default()
    });
    let start = std::time::Instant::now();
    let replies =
        smtp_codes(&server, server.smtp.port(), &["EHLO c", "AUTH PLAIN AGh1bnQAeA==", "AUTH PLAIN AGh1bnQAeQ==", "AUTH PLAIN AGh1bnQAeg=="]);
    assert!(replies[1..].iter().all(|r| r.starts_with("535 ")), "{replies:?}");
    assert!(start.elapsed() >= Duration::from_millis(200 + 300 + 300), "each failure is answered after the penalty");
    // The address has had its three: even the right password is not checked now, in any protocol.
    let replies = smtp_codes(&server, server.smtp.port(), &["EHLO c", "AUTH PLAIN AGh1bnQAc2VjcmV0"]);
    assert!(replies[1].starts_with("421 4.7.0 "), "{replies:?}");
    let stream = TcpStream::connect(server.imap.unwrap()).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut writer = stream;
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    writer.write_all(b"a LOGIN hunt secret\r\n").unwrap();
    let mut lines = String::new();
    while !lines.contains("a NO") {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap() == 0 {
            break;
        }
        lines.push_str(&line);
    }
    assert!(lines.contains("a NO [UNAVAILABLE] "), "{lines}");
    assert!(server.logged(|l| l.contains("login refused: too many failures")));
}

#[test]
fn the_open_relay_battery_is_refused_for_unauthenticated_clients() {
    let server = Server::start_with(Setup { users: vec!["tyler".into()], ..Setup::default() });
    // The classic tricks (as relay testers and RFC 2505 list them): every one must be refused,
    // and nothing may reach the queue. (A source route that ends in a local mailbox,
    // `<@remote.example:tyler@localhost>`, is tyler's mail: RFC 5321 3.6.1 says to ignore the
    // route, and nothing is relayed.)
    let tricks = [
        "<someone@remote.example>",
        "<someone%remote.example@localhost>",
        "<someone%remote.example@[127.0.0.1]>",
        "<@localhost:someone@remote.example>",
        "<\"someone@remote.example\"@localhost>",
        "<someone@remote.example@localhost>",
        "<someone@localhost@remote.example>",
        "<remote.example!someone@localhost>",
        "<someone!remote.example@localhost>",
        "<someone@[192.0.2.1]>",
        "<someone@[127.0.0.1]>",
        "<someone@remote.example.>",
        "<tyler@localhost.remote.example>",
        "<\"tyler@remote.example\">",
        "<someone@localhost.>",
    ];
    let mut commands = vec!["EHLO client.test".to_string(), "MAIL FROM:<spammer@client.test>".to_string()];
    commands.extend(tricks.iter().map(|t| format!("RCPT TO:{t}")));
    let refs: Vec<&str> = commands.iter().map(String::as_str).collect();
    let replies = smtp_codes(&server, server.smtp.port(), &refs);
    for (trick, reply) in tricks.iter().zip(&replies[2..]) {
        assert!(reply.starts_with('5'), "{trick} was not refused: {reply}");
    }
    assert!(server.queued().is_empty());
}

/// Once a client has authenticated, it sends as its own user on port 25 too: the sender
/// check is not only for the submission ports (a user of this server used to be able to
/// forge another user's address on the MX port and have it relayed).
#[test]
fn an_authenticated_client_on_port_25_sends_only_as_itself() {
    let server = Server::start_with(Setup { users: vec!["tyler".into(), "hunt".into()], ..Setup::default() });
    // AUTH PLAIN tyler/secret over loopback (plaintext allowed there by default).
    let replies = smtp_codes(
        &server,
        server.smtp.port(),
        &["EHLO c", "AUTH PLAIN AHR5bGVyAHNlY3JldA==", "MAIL FROM:<hunt@localhost>", "MAIL FROM:<tyler+lists@localhost>"],
    );
    assert!(replies[1].starts_with("235 "), "{replies:?}");
    assert!(replies[2].starts_with("553 5.7.1 "), "another user's address: {replies:?}");
    assert!(replies[3].starts_with("250 "), "the user's own +tag: {replies:?}");
    // Without AUTH, port 25 is for other servers' mail: their senders are not checked.
    let replies = smtp_codes(&server, server.smtp.port(), &["EHLO c", "MAIL FROM:<hunt@localhost>"]);
    assert!(replies[1].starts_with("250 "), "{replies:?}");
}

/// One AUTH PLAIN exchange from `source` (a loopback address of the test's choosing, bound
/// before the connection): the reply to AUTH and how long it took.
fn auth_from(server: &Server, source: std::net::Ipv4Addr, plain: &str) -> (String, Duration) {
    use rustix::net::{AddressFamily, SocketType};
    let socket = rustix::net::socket(AddressFamily::INET, SocketType::STREAM, None).unwrap();
    rustix::net::bind(&socket, &std::net::SocketAddrV4::new(source, 0)).unwrap();
    rustix::net::connect(&socket, &server.smtp).unwrap();
    let stream = TcpStream::from(socket);
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut writer = stream;
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    writer.write_all(b"EHLO c\r\n").unwrap();
    loop {
        line.clear();
        reader.read_line(&mut line).unwrap();
        if line.as_bytes().get(3) != Some(&b'-') {
            break;
        }
    }
    let start = std::time::Instant::now();
    writer.write_all(format!("AUTH PLAIN {plain}\r\n").as_bytes()).unwrap();
    line.clear();
    reader.read_line(&mut line).unwrap();
    (line, start.elapsed())
}

/// Failures for one user name from one address do not lock that user out from another
/// (anyone could lock any account out), and a wrong password costs the same whether the
/// user exists or not (the time told which names exist: ~30 ms of argon2 against ~2 ms).
#[test]
fn lockouts_are_per_address_and_unknown_users_cost_a_password_check() {
    let server = Server::start_with(Setup {
        users: vec!["hunt".into()],
        auth: "failure_delay = \"1ms\"\nfailure_delay_max = \"1ms\"\nmax_failures = 3\n".into(),
        ..Setup::default()
    });
    let attacker = std::net::Ipv4Addr::new(127, 0, 0, 2);
    for _ in 0..3 {
        // hunt / wrong
        assert!(auth_from(&server, attacker, "AGh1bnQAd3Jvbmc=").0.starts_with("535 "));
    }
    let (blocked, _) = auth_from(&server, attacker, "AGh1bnQAc2VjcmV0");
    assert!(blocked.starts_with("421 "), "the attacker's address is blocked: {blocked}");
    let (owner, _) = auth_from(&server, std::net::Ipv4Addr::LOCALHOST, "AGh1bnQAc2VjcmV0");
    assert!(owner.starts_with("235 "), "hunt still logs in from elsewhere: {owner}");
    // Timing: the median of wrong passwords for hunt and for a name that does not exist,
    // each from an address of its own (so that neither is blocked).
    let median = |source: std::net::Ipv4Addr, plain: &str| {
        let mut times: Vec<Duration> = (0..3).map(|_| auth_from(&server, source, plain).1).collect();
        times.sort();
        times[1]
    };
    let known = median(std::net::Ipv4Addr::new(127, 0, 0, 3), "AGh1bnQAd3Jvbmc=");
    let unknown = median(std::net::Ipv4Addr::new(127, 0, 0, 4), "AG5vYm9keQB3cm9uZw==");
    assert!(unknown * 2 > known, "an unknown user is answered in {unknown:?}, a known one in {known:?}");
}
