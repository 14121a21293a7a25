//! MIME handler plugins end to end: the fixtures of tests/fixtures are sent over SMTP to a
//! server with attachment-guard, disclaimer and calendar-summary, and what lands in the
//! Maildir is read back with Python's email package, an independent parser.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use wasmail_tests::{python, Server, Setup};

fn fixture_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures").join(name)
}

/// A fixture as SMTP DATA: CRLF line ends, dot-stuffed.
fn fixture_data(name: &str) -> String {
    let text = String::from_utf8(std::fs::read(fixture_path(name)).unwrap()).unwrap();
    text.lines().map(|l| if l.starts_with('.') { format!(".{l}\r\n") } else { format!("{l}\r\n") }).collect()
}

fn with_plugins(plugins: &[(&str, Option<&str>)], smtp: &str) -> Server {
    let mut setup = Setup { smtp: smtp.to_string(), ..Setup::default() };
    for (name, toml) in plugins {
        setup = setup.plugin(name, *toml);
    }
    Server::start_with(setup)
}

fn all_three() -> Server {
    with_plugins(&[("attachment-guard", None), ("disclaimer", None), ("calendar-summary", None)], "")
}

/// Sends a fixture; returns the final reply's code and text.
fn send(server: &Server, name: &str) -> (u16, String) {
    let mut c = server.connect();
    c.greet();
    let reply = c.send_mail("daniel@client.example", &["tyler@localhost"], &fixture_data(name));
    (reply.code, reply.text())
}

/// Python's view of every stored message of tyler.
fn python_view(server: &Server) -> Vec<Value> {
    let files = server.mailbox_files("tyler");
    match serde_json::from_slice(&python("mime_check.py", &files)).expect("JSON from mime_check.py") {
        Value::Array(messages) => messages,
        other => panic!("not a list: {other}"),
    }
}

/// The stored message without the trace fields the server put on top.
fn without_trace(stored: &str) -> String {
    let mut out = String::new();
    let mut in_trace = true;
    for line in stored.split_inclusive('\n') {
        if in_trace
            && (line.starts_with("Return-Path:")
                || line.starts_with("Received:")
                || line.starts_with("Authentication-Results: mx.test;")
                || line.starts_with('\t'))
        {
            continue;
        }
        in_trace = false;
        out.push_str(line);
    }
    out
}

fn parts(message: &Value) -> &Vec<Value> {
    message["parts"].as_array().unwrap()
}

#[test]
fn an_exe_sent_with_swaks_is_replaced_by_a_note_and_the_text_gets_the_footer() {
    let server = all_three();
    let output = Command::new("swaks")
        .args(["--server", &server.smtp.ip().to_string(), "--port", &server.smtp.port().to_string()])
        .args(["--helo", "swaks.test", "--from", "billing@client.example", "--to", "tyler@localhost"])
        // `@FILE`: the message, as it is in the file.
        .arg("--data")
        .arg(format!("@{}", fixture_path("mixed-exe.eml").display()))
        .output()
        .expect("swaks is needed for this test (apt-get install swaks)");
    let transcript = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{transcript}");
    assert!(transcript.contains("<-  250 2.0.0"), "{transcript}");

    let messages = python_view(&server);
    assert_eq!(messages.len(), 1);
    let message = &messages[0];
    assert_eq!(message["defects"], serde_json::json!([]));
    assert_eq!(message["ascii"], true, "a 7-bit message stays 7-bit");
    let parts = parts(message);
    assert_eq!(parts.len(), 4);
    let plain = parts[0]["text"].as_str().unwrap();
    assert!(plain.starts_with("Please find the invoice attached.\n"), "{plain}");
    assert!(plain.ends_with("-- \nSent through Wasmail\n"), "{plain}");
    let html = parts[1]["text"].as_str().unwrap();
    assert!(html.contains("<div class=\"disclaimer\">Sent through Wasmail</div>\n</body></html>"), "{html}");
    // The PDF is untouched, the .exe is a note now.
    assert_eq!(
        (parts[2]["type"].as_str(), parts[2]["filename"].as_str(), parts[2]["size"].as_u64()),
        (Some("application/pdf"), Some("invoice.pdf"), Some(77))
    );
    assert_eq!(parts[3]["type"], "text/plain");
    assert_eq!(parts[3]["filename"], Value::Null);
    let note = parts[3]["text"].as_str().unwrap();
    assert!(note.contains("removed the attachment \"invoice.pdf.exe\""), "{note}");
    // The PDF's bytes, as sent, are in the stored file.
    let stored = &server.mailbox("tyler")[0];
    let sent = std::fs::read_to_string(fixture_path("mixed-exe.eml")).unwrap();
    let pdf_part = sent.split("------=_Part_42_1234567.1764410400000\n").nth(2).unwrap();
    assert!(stored.contains(pdf_part), "the untouched part keeps its bytes");
}

#[test]
fn attachment_guard_can_refuse_the_message_instead() {
    let server = with_plugins(&[("attachment-guard", Some("[config]\naction = \"reject\"\n"))], "");
    let (code, text) = send(&server, "mixed-exe.eml");
    assert_eq!((code, text.as_str()), (550, "5.7.1 Message refused: the attachment \"invoice.pdf.exe\" is not accepted here"));
    assert!(server.mailbox("tyler").is_empty());
    // A custom deny list: PDFs out, executables in.
    let server = with_plugins(&[("attachment-guard", Some("[config]\ndeny_extensions = \"pdf\"\ndeny_types = \"\"\n"))], "");
    assert_eq!(send(&server, "mixed-exe.eml").0, 250);
    let parts_view = python_view(&server);
    let parts = parts(&parts_view[0]);
    assert!(parts[2]["text"].as_str().unwrap().contains("\"invoice.pdf\""));
    assert_eq!(parts[3]["filename"], "invoice.pdf.exe");
}

#[test]
fn an_rfc2231_file_name_is_decoded_before_it_is_judged() {
    let server = with_plugins(&[("attachment-guard", None)], "");
    assert_eq!(send(&server, "rfc2231-filename.eml").0, 250);
    let messages = python_view(&server);
    let parts = parts(&messages[0]);
    let note = parts[1]["text"].as_str().unwrap();
    assert!(note.contains("\"naïve résumé final.exe\""), "{note}");
    // The note is UTF-8 text in a 7-bit message: quoted-printable.
    assert_eq!((parts[1]["charset"].as_str(), parts[1]["encoding"].as_str()), (Some("utf-8"), Some("quoted-printable")));
    assert_eq!(messages[0]["ascii"], true);
}

#[test]
fn a_forwarded_message_keeps_its_text_and_the_outer_text_its_encoding() {
    let server = with_plugins(&[("disclaimer", Some("[config]\nfooter = \"Gesendet über Wasmail\"\n"))], "");
    assert_eq!(send(&server, "forward-rfc822.eml").0, 250);
    let messages = python_view(&server);
    let parts = parts(&messages[0]);
    assert_eq!(parts[0]["text"], "See below — forwarded.\n-- \nGesendet über Wasmail\n");
    assert_eq!((parts[0]["charset"].as_str(), parts[0]["encoding"].as_str()), (Some("utf-8"), Some("8bit")));
    // Python lists the attached message's own text as the next part.
    assert_eq!(parts[1]["text"], "The original text, which must not get a footer.");
    assert!(server.mailbox("tyler")[0].contains("\nThe original text, which must not get a footer.\n--fwd-outer--\n"));
}

#[test]
fn latin1_text_keeps_its_charset_and_transfer_encoding() {
    let server = with_plugins(&[("disclaimer", Some("[config]\nfooter = \"Grüße von Wasmail\"\n"))], "");
    assert_eq!(send(&server, "charsets.eml").0, 250);
    let messages = python_view(&server);
    assert_eq!(messages[0]["subject"], "Привет из Москвы");
    let part = &parts(&messages[0])[0];
    assert_eq!((part["charset"].as_str(), part["encoding"].as_str()), (Some("iso-8859-1"), Some("quoted-printable")));
    assert_eq!(part["text"], "Grüße aus Köln,\nund schöne Grüße an alle.\n-- \nGrüße von Wasmail\n");
    assert_eq!(messages[0]["ascii"], true);
}

#[test]
fn a_calendar_invitation_gets_a_summary_header() {
    let server = all_three();
    assert_eq!(send(&server, "calendar-invite.eml").0, 250);
    let messages = python_view(&server);
    assert_eq!(messages[0]["calendar"], serde_json::json!(["Quarterly review, Q4; starts 20261201T100000 (Europe/Berlin)"]));
    assert_eq!(messages[0]["defects"], serde_json::json!([]));
    // The calendar itself is untouched, and the .ics attachment is not text: no footer there.
    let stored = &server.mailbox("tyler")[0];
    let sent = std::fs::read_to_string(fixture_path("calendar-invite.eml")).unwrap();
    let ics = sent.split("--cal-mixed\n").nth(2).unwrap();
    assert!(stored.contains(ics));
}

#[test]
fn an_unchanged_message_is_stored_byte_for_byte() {
    // Both plugins see every part of these messages and keep them all.
    let server = with_plugins(&[("attachment-guard", None), ("calendar-summary", None)], "");
    let names = ["alternative-qp-base64.eml", "forward-rfc822.eml", "malformed-boundary.eml"];
    for name in names {
        assert_eq!(send(&server, name).0, 250, "{name}");
    }
    // File names order deliveries only to the second: compare sorted lists.
    let mut stored: Vec<String> = server.mailbox("tyler").iter().map(|m| without_trace(m)).collect();
    let mut sent: Vec<String> = names.iter().map(|n| std::fs::read_to_string(fixture_path(n)).unwrap()).collect();
    stored.sort();
    sent.sort();
    assert_eq!(stored, sent);
}

#[test]
fn beyond_the_mime_limits_a_message_is_refused_or_passed_unchanged() {
    let server = all_three();
    let (code, text) = send(&server, "deep-nesting.eml");
    assert_eq!((code, text.as_str()), (552, "5.3.4 Message refused: MIME parts nested deeper than 20 levels"));
    assert!(server.mailbox("tyler").is_empty());

    let server = with_plugins(&[("disclaimer", None)], "[mime]\non_limit = \"pass\"\n");
    assert_eq!(send(&server, "deep-nesting.eml").0, 250);
    let sent = std::fs::read_to_string(fixture_path("deep-nesting.eml")).unwrap();
    assert_eq!(without_trace(&server.mailbox("tyler")[0]), sent, "stored unchanged, without handlers");
    // A smaller limit catches what the default lets through.
    let server = with_plugins(&[], "[mime]\nmax_parts = 3\n");
    assert_eq!(send(&server, "mixed-exe.eml").0, 552);
    assert_eq!(send(&server, "charsets.eml").0, 250);
    // Header sections: too many fields, or too many octets, in the message or in a part.
    let server = Server::start();
    let mut c = server.connect();
    c.greet();
    let fields: String = (0..1001).map(|i| format!("X-Field-{i}: v\r\n")).collect();
    let reply = c.send_mail("a@client.example", &["tyler@localhost"], &format!("{fields}\r\nbody\r\n"));
    assert_eq!(reply.text(), "5.3.4 Message refused: a header section with more than 1000 fields");
    let folded: String = (0..2000).map(|_| " 12345678901234567890123456789012345678901234567890\r\n").collect();
    let part = format!("Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nX-Long: x\r\n{folded}\r\nhi\r\n--b--\r\n");
    let reply = c.send_mail("a@client.example", &["tyler@localhost"], &part);
    assert_eq!(reply.text(), "5.3.4 Message refused: a header section larger than 102400 octets");
    assert!(server.mailbox("tyler").is_empty());
}

#[test]
fn bodies_over_the_handler_limit_are_not_passed() {
    let server = with_plugins(&[("disclaimer", None)], "[mime]\nhandler_body_limit = \"20B\"\n");
    assert_eq!(send(&server, "forward-rfc822.eml").0, 250);
    let sent = std::fs::read_to_string(fixture_path("forward-rfc822.eml")).unwrap();
    assert_eq!(without_trace(&server.mailbox("tyler")[0]), sent);
}

fn troubled(mode: &str, policy: &str) -> Server {
    let toml = format!("fail = \"{policy}\"\ncall_timeout = \"100ms\"\nmemory_limit = \"16MiB\"\n[config]\nmode = \"{mode}\"\n");
    // The disclaimer runs first (lower order) so that a failing handler after it is seen not
    // to undo what the earlier one did.
    with_plugins(&[("disclaimer", Some("order = 10\n")), ("mime-trouble", Some(&toml))], "")
}

#[test]
fn a_failing_mime_handler_under_open_leaves_the_message_to_the_others() {
    for (mode, kind) in [("panic", "trap"), ("loop", "timeout"), ("hog", "memory"), ("bad", "invalid")] {
        let server = troubled(mode, "open");
        for _ in 0..2 {
            assert_eq!(send(&server, "forward-rfc822.eml").0, 250, "{mode}");
        }
        let messages = python_view(&server);
        assert_eq!(messages.len(), 2, "{mode}: nothing lost");
        for message in &messages {
            assert!(parts(message)[0]["text"].as_str().unwrap().ends_with("-- \nSent through Wasmail\n"), "{mode}");
            assert_eq!(message["defects"], serde_json::json!([]));
        }
        let stored = server.mailbox("tyler").join("");
        assert!(!stored.contains("victim@example.org"), "{mode}: an invalid answer is never applied");
        let log = server.log();
        let failure = log.iter().find(|l| l.contains("plugin failed")).unwrap_or_else(|| panic!("{mode}: nothing logged"));
        assert!(
            failure.contains("\"plugin\":\"mime-trouble\"")
                && failure.contains(&format!("\"kind\":\"{kind}\""))
                && failure.contains("\"hook\":\"mime-part\""),
            "{failure}"
        );
    }
}

#[test]
fn a_failing_mime_handler_under_closed_defers_the_message() {
    for mode in ["panic", "loop", "hog", "bad"] {
        let server = troubled(mode, "closed");
        let (code, text) = send(&server, "alternative-qp-base64.eml");
        assert_eq!((code, text.as_str()), (451, "4.3.0 Local error in processing, try again later"), "{mode}");
        assert!(server.mailbox("tyler").is_empty(), "{mode}: the client keeps the message");
        // The server goes on serving other sessions.
        let mut c = server.connect();
        c.greet();
        c.expect("NOOP", 250);
    }
}

/// Runs mutt on `maildir` inside a private tmux server, opens the first message, and returns
/// the screen once it shows `until` (or after ten seconds).
fn mutt_screen(maildir: &Path, until: &str) -> String {
    let socket = format!("wasmail-mutt-{}", std::process::id());
    let tmux = |args: &[&str]| Command::new("tmux").arg("-L").arg(&socket).args(args).output().expect("tmux is needed for this test");
    // `folder` set to the Maildir: left at ~/Mail, mutt stops to ask whether to create it
    // on a machine that has none (a fresh one), and the screen never shows the message.
    let mutt = format!("mutt -n -F /dev/null -R -e 'set folder=\"{0}\"' -f '{0}' -e 'set pager_stop=yes'", maildir.display());
    assert!(tmux(&["new-session", "-d", "-x", "160", "-y", "80", "-s", "mutt", &mutt]).status.success());
    let mut screen = String::new();
    // Generous: on a busy machine mutt can take seconds to draw; the loop ends as soon as
    // the screen shows what the test waits for.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let mut opened = false;
    while std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(200));
        screen = String::from_utf8_lossy(&tmux(&["capture-pane", "-p", "-t", "mutt"]).stdout).into_owned();
        if !opened && screen.contains("Invoice 2026-11") {
            // The index shows the message: open it.
            tmux(&["send-keys", "-t", "mutt", "Enter"]);
            opened = true;
        } else if opened && screen.contains(until) {
            break;
        }
    }
    tmux(&["kill-server"]);
    screen
}

#[test]
fn mutt_reads_the_rewritten_message() {
    let server = all_three();
    assert_eq!(send(&server, "mixed-exe.eml").0, 250);
    // Delivery runs after the 250: mutt must find the message in the folder when it starts.
    assert_eq!(server.mailbox("tyler").len(), 1);
    let screen = mutt_screen(&server.data_dir().join("mail/tyler"), "are not accepted");
    assert!(screen.contains("Subject: Invoice 2026-11"), "{screen}");
    assert!(screen.contains("Please find the invoice attached."), "{screen}");
    assert!(screen.contains("[-- Attachment #2: invoice.pdf --]"), "{screen}");
    assert!(screen.contains("The mail server removed the attachment \"invoice.pdf.exe\" from this message"), "{screen}");
    // The footer sits under the text once: not under the note that replaced the .exe.
    assert_eq!(screen.matches("Sent through Wasmail").count(), 1, "{screen}");
}
