//! Delivery status notifications (RFC 3461/3464) for local delivery: failure after the queue
//! gives up, delay warnings, success notices, NOTIFY=NEVER and the null sender. The notices
//! are read back with Python's email package.

use std::time::{Duration, Instant};

use serde_json::Value;
use wasmail_tests::{new_files, python, Server, Setup};

/// A server whose queue retries every second and gives up (or warns) quickly, with hunt's
/// mailbox impossible to create (a file stands in its place).
fn server(queue: &str) -> Server {
    let server = Server::start_with(Setup { smtp: format!("[queue]\nretry_intervals = [\"1s\"]\n{queue}"), ..Setup::default() });
    std::fs::create_dir_all(server.data_dir().join("mail")).unwrap();
    std::fs::write(server.data_dir().join("mail/hunt"), b"not a folder").unwrap();
    server
}

fn send(server: &Server, mail_from: &str, rcpt_to: &str, subject: &str) {
    let mut c = server.connect();
    c.greet();
    c.expect(&format!("MAIL FROM:{mail_from}"), 250);
    c.expect(&format!("RCPT TO:{rcpt_to}"), 250);
    c.expect("DATA", 354);
    c.send(format!("Subject: {subject}\r\nFrom: tyler@localhost\r\n\r\nthe body\r\n.\r\n"));
    assert_eq!(c.reply().code, 250);
}

/// Waits until `user` has `n` messages (not waiting for the queue, which may hold retries).
fn wait_for_mail(server: &Server, user: &str, n: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let files = server.mailbox_now(user);
        if files.len() >= n || Instant::now() > deadline {
            return files;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The notices in `user`'s mailbox, as Python's email package reads them.
fn notices(server: &Server, user: &str) -> Vec<Value> {
    let files = new_files(&server.data_dir().join("mail").join(user));
    match serde_json::from_slice(&python("dsn_check.py", &files)).unwrap() {
        Value::Array(v) => v,
        other => panic!("{other}"),
    }
}

#[test]
fn a_recipient_the_queue_gives_up_on_is_bounced_with_the_rfc_3464_fields() {
    let server = server("max_age = \"2s\"\n");
    send(&server, "<tyler@localhost> ENVID=env-42 RET=HDRS", "<hunt@localhost> ORCPT=rfc822;hunt@localhost", "doomed");
    assert_eq!(wait_for_mail(&server, "tyler", 1).len(), 1);
    let stored = &server.mailbox("tyler")[0];
    assert!(stored.starts_with("Return-Path: <>\n"), "{stored}");
    let n = &notices(&server, "tyler")[0];
    assert_eq!(n["content_type"], "multipart/report");
    assert_eq!(n["report_type"], "delivery-status");
    assert_eq!(n["to"], "tyler@localhost");
    assert_eq!(n["auto_submitted"], "auto-replied");
    assert_eq!(n["defects"], serde_json::json!([]));
    assert_eq!(n["part_types"], serde_json::json!(["text/plain", "message/delivery-status", "text/rfc822-headers"]));
    assert_eq!(n["message_fields"]["Reporting-MTA"], "dns; mx.test");
    assert_eq!(n["message_fields"]["Original-Envelope-Id"], "env-42");
    let r = &n["recipients"][0];
    assert_eq!(r["Final-Recipient"], "rfc822; hunt@localhost");
    assert_eq!(r["Original-Recipient"], "rfc822; hunt@localhost");
    assert_eq!(r["Action"], "failed");
    assert_eq!(r["Status"], "4.4.7");
    // RET=HDRS: the header comes back, the body does not.
    let returned = n["returned"].as_str().unwrap();
    assert!(returned.contains("Subject: doomed") && !returned.contains("the body"), "{returned}");
}

#[test]
fn success_notices_and_never() {
    let server = server("max_age = \"2s\"\n");
    // NOTIFY=SUCCESS on a recipient that is delivered.
    send(&server, "<tyler@localhost>", "<daniel@localhost> NOTIFY=SUCCESS", "delivered");
    // NOTIFY=NEVER on one that fails: no notice.
    send(&server, "<tyler@localhost>", "<hunt@localhost> NOTIFY=NEVER", "silent");
    server.wait_for_queue();
    let n = notices(&server, "tyler");
    assert_eq!(n.len(), 1, "one notice: the success");
    assert_eq!(n[0]["recipients"][0]["Action"], "delivered");
    assert_eq!(n[0]["recipients"][0]["Status"], "2.0.0");
    assert_eq!(n[0]["recipients"][0]["Final-Recipient"], "rfc822; daniel@localhost");
    assert_eq!(server.mailbox("daniel").len(), 1);
}

#[test]
fn the_null_sender_never_gets_a_notice() {
    let server = server("max_age = \"2s\"\n");
    send(&server, "<>", "<hunt@localhost>", "from the void");
    server.wait_for_queue();
    let log = server.log();
    assert!(log.iter().any(|l| l.contains("recipient done") && l.contains("\"status\":\"failed\"")), "{log:#?}");
    assert!(!log.iter().any(|l| l.contains("delivery status notice queued")));
}

#[test]
fn a_delay_warning_comes_once() {
    let server = server("max_age = \"1h\"\ndelay_warning = \"1s\"\n");
    send(&server, "<tyler@localhost>", "<hunt@localhost>", "slow");
    assert_eq!(wait_for_mail(&server, "tyler", 1).len(), 1);
    // More retries, no second warning.
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(server.mailbox_now("tyler").len(), 1);
    let n = &notices(&server, "tyler")[0];
    assert_eq!(n["recipients"][0]["Action"], "delayed");
    assert!(n["recipients"][0]["Will-Retry-Until"].as_str().is_some_and(|s| !s.is_empty()));
    assert_eq!(server.queued().len(), 1, "still being retried");
}
