//! Real SMTP clients against the real binary: lettre (Rust), Python's smtplib and swaks.

use std::process::Command;

use lettre::message::Mailbox;
use lettre::{Message, SmtpTransport, Transport};
use wasmail_tests::Server;

#[test]
fn lettre_sends_and_the_message_lands_in_maildir() {
    let server = Server::start();
    let mailer = SmtpTransport::builder_dangerous(server.smtp.ip().to_string()).port(server.smtp.port()).build();
    for i in 0..3 {
        let email = Message::builder()
            .from("Daniel <daniel@lettre.test>".parse::<Mailbox>().unwrap())
            .to("Tyler <tyler@localhost>".parse::<Mailbox>().unwrap())
            .cc("hunt@example.test".parse::<Mailbox>().unwrap())
            .subject(format!("lettre {i}"))
            .body(format!("Hello from lettre, message {i}.\n"))
            .unwrap();
        let response = mailer.send(&email).expect("lettre send");
        assert_eq!(u16::from(response.code()), 250);
    }
    let tyler = server.mailbox("tyler");
    assert_eq!(tyler.len(), 3);
    assert!(tyler.iter().any(|m| m.contains("Subject: lettre 2") && m.contains("Hello from lettre, message 2.")));
    assert!(tyler[0].starts_with("Return-Path: <daniel@lettre.test>\n"));
    assert_eq!(server.mailbox("hunt").len(), 3);
}

#[test]
fn lettre_sees_a_refused_recipient() {
    let server = Server::start();
    let mailer = SmtpTransport::builder_dangerous(server.smtp.ip().to_string()).port(server.smtp.port()).build();
    let email = Message::builder()
        .from("daniel@lettre.test".parse::<Mailbox>().unwrap())
        .to("someone@elsewhere.example".parse::<Mailbox>().unwrap())
        .subject("relay attempt")
        .body(String::from("should not be relayed\n"))
        .unwrap();
    let error = mailer.send(&email).expect_err("relay must be refused");
    assert!(error.is_permanent(), "{error}");
}

#[test]
fn python_smtplib_session() {
    let server = Server::start();
    let output = Command::new("python3")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/clients/smtplib_session.py"))
        .arg(server.smtp.ip().to_string())
        .arg(server.smtp.port().to_string())
        .output()
        .expect("python3 is needed for this test");
    assert!(
        output.status.success(),
        "smtplib session failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let tyler = server.mailbox("tyler");
    assert_eq!(tyler.len(), 2);
    assert!(tyler.iter().any(|m| m.contains("Subject: from smtplib") && m.contains("\n.leading dot survives\n")));
    assert!(tyler.iter().any(|m| m.contains("Schöne Grüße aus Python") && m.contains("with UTF8SMTP")));
    assert_eq!(server.mailbox("hunt").len(), 1);
}

fn swaks(server: &Server, extra: &[&str]) -> std::process::Output {
    Command::new("swaks")
        .args(["--server", &server.smtp.ip().to_string(), "--port", &server.smtp.port().to_string()])
        .args(["--helo", "swaks.test", "--from", "daniel@swaks.test"])
        .args(extra)
        .output()
        .expect("swaks is needed for this test (apt-get install swaks)")
}

#[test]
fn swaks_plain_pipelined_and_chunked() {
    let server = Server::start();
    let plain = swaks(&server, &["--to", "tyler@localhost", "--header", "Subject: swaks plain", "--body", "plain body"]);
    assert!(plain.status.success(), "{}", String::from_utf8_lossy(&plain.stdout));

    let pipelined = swaks(&server, &["--to", "tyler@localhost,hunt@localhost", "--pipeline", "--header", "Subject: swaks pipelined"]);
    let transcript = String::from_utf8_lossy(&pipelined.stdout);
    assert!(pipelined.status.success(), "{transcript}");
    // swaks sends MAIL, RCPT, RCPT, DATA in one write and reads the replies together.
    assert!(!transcript.contains("<** "), "{transcript}");

    let refused = swaks(&server, &["--to", "x@elsewhere.example"]);
    let transcript = String::from_utf8_lossy(&refused.stdout);
    assert!(!refused.status.success());
    assert!(transcript.contains("550 5.7.1 <x@elsewhere.example>: Relay access denied"), "{transcript}");

    let tyler = server.mailbox("tyler");
    assert_eq!(tyler.len(), 2);
    assert!(tyler.iter().any(|m| m.contains("Subject: swaks plain") && m.contains("plain body")));
    assert_eq!(server.mailbox("hunt").len(), 1);
}
