//! Relaying through the queue: two Wasmail instances on loopback, the first relaying to the
//! second through a `[routes]` entry; a next hop that is down (deferral, `queue list`, then
//! delivery once it is up, or a bounce once the queue gives up); a next hop that refuses
//! (an immediate bounce with the peer's reply in the DSN).

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use wasmail_tests::{client_script, free_port, new_files, python, wasmail_bin, DnsServer, Helper, Server, Setup};

/// The relaying instance: clients on loopback may relay; `remote.test` goes to `port`.
fn relay(port: u16, queue: &str) -> Server {
    Server::start_with(Setup {
        top: "relay_networks = [\"127.0.0.0/8\"]".into(),
        smtp: format!("[queue]\nretry_intervals = [\"1s\"]\n{queue}\n[routes]\n\"remote.test\" = \"127.0.0.1:{port}\"\n"),
        ..Setup::default()
    })
}

/// The next hop: local domain `remote.test`, on `port`.
fn next_hop(port: u16, users: Vec<String>) -> Server {
    Server::start_with(Setup { domains: vec!["remote.test".into()], listen: Some(format!("127.0.0.1:{port}")), users, ..Setup::default() })
}

fn send(server: &Server, from: &str, to: &[&str], subject: &str) -> String {
    let mut c = server.connect();
    c.greet();
    let reply = c.send_mail(from, to, &format!("Subject: {subject}\r\nFrom: {from}\r\n\r\nrelayed body\r\n..with a leading dot\r\n"));
    assert_eq!(reply.code, 250, "{reply:?}");
    reply.text().split_whitespace().nth(1).unwrap().to_string()
}

fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The notices in `user`'s mailbox, as Python's email package reads them.
fn dsn_view(server: &Server, user: &str) -> Vec<Value> {
    let files = new_files(&server.data_dir().join("mail").join(user));
    match serde_json::from_slice(&python("dsn_check.py", &files)).unwrap() {
        Value::Array(v) => v,
        other => panic!("{other}"),
    }
}

#[test]
fn a_message_waits_in_the_queue_until_the_next_hop_is_up_then_is_relayed() {
    let port = free_port();
    let a = relay(port, "");
    let id = send(&a, "daniel@localhost", &["tyler@remote.test"], "over the hop");
    wait_until("a deferral", || a.log().iter().any(|l| l.contains("delivery deferred")));
    // In between, the operator sees it waiting, with the reason.
    let config = a.dir.path().join("wasmail.toml");
    let list = Command::new(wasmail_bin()).args(["queue", "list", "--config"]).arg(&config).output().unwrap();
    let list = String::from_utf8_lossy(&list.stdout).into_owned();
    assert!(list.starts_with(&id) && list.contains("daniel@localhost"), "{list}");
    assert!(list.contains("    tyler@remote.test pending (127.0.0.1:") && list.contains("refused"), "{list}");

    let b = next_hop(port, Vec::new());
    wait_until("the relayed message", || !b.mailbox_now("tyler").is_empty());
    a.wait_for_queue();
    let stored = &b.mailbox("tyler")[0];
    // The next hop's Return-Path is the original sender; both servers left a Received line;
    // the leading dot survived dot-stuffing both ways.
    assert!(stored.starts_with("Return-Path: <daniel@localhost>\n"), "{stored}");
    assert_eq!(stored.matches("Received: from ").count(), 2, "{stored}");
    assert!(stored.contains("Subject: over the hop\n") && stored.ends_with("relayed body\n.with a leading dot\n"), "{stored}");
    assert!(a.logged(|l| l.contains("\"relayed\"") && l.contains("tyler@remote.test")));
    assert!(a.mailbox_now("daniel").is_empty(), "no notice for a relayed message");
}

#[test]
fn an_unreachable_next_hop_is_bounced_when_the_queue_gives_up() {
    let a = relay(free_port(), "max_age = \"2s\"\n");
    send(&a, "daniel@localhost", &["x@remote.test"], "nowhere");
    wait_until("the bounce", || !a.mailbox_now("daniel").is_empty());
    let n = &dsn_view(&a, "daniel")[0];
    assert_eq!(n["defects"], serde_json::json!([]));
    let r = &n["recipients"][0];
    assert_eq!(
        (r["Final-Recipient"].as_str(), r["Action"].as_str(), r["Status"].as_str()),
        (Some("rfc822; x@remote.test"), Some("failed"), Some("4.4.7"))
    );
    assert!(n["returned"].as_str().unwrap().contains("relayed body"), "RET defaults to the full message");
}

#[test]
fn a_next_hop_that_refuses_gets_an_immediate_bounce_with_its_reply() {
    let port = free_port();
    let _b = next_hop(port, vec!["tyler".into()]);
    let a = relay(port, "");
    send(&a, "daniel@localhost", &["tyler@remote.test", "nobody@remote.test"], "half known");
    a.wait_for_queue();
    assert_eq!(_b.mailbox("tyler").len(), 1);
    let notices = dsn_view(&a, "daniel");
    assert_eq!(notices.len(), 1);
    let r = &notices[0]["recipients"][0];
    assert_eq!(r["Final-Recipient"], "rfc822; nobody@remote.test");
    assert_eq!(r["Action"], "failed");
    assert_eq!(r["Status"], "5.1.1");
    assert_eq!(r["Diagnostic-Code"], "smtp; 550 5.1.1 <nobody@remote.test>: Recipient address rejected: User unknown");
    assert_eq!(notices[0]["recipients"].as_array().unwrap().len(), 1, "only the refused recipient");
}

#[test]
fn etrn_starts_the_delivery_of_a_domains_queued_mail() {
    let port = free_port();
    let a = Server::start_with(Setup {
        top: "relay_networks = [\"127.0.0.0/8\"]".into(),
        smtp: format!("[queue]\nretry_intervals = [\"1h\"]\n[routes]\n\"remote.test\" = \"127.0.0.1:{port}\"\n"),
        ..Setup::default()
    });
    send(&a, "daniel@localhost", &["tyler@remote.test"], "wait for etrn");
    wait_until("a deferral", || a.log().iter().any(|l| l.contains("delivery deferred")));
    let _b = next_hop(port, Vec::new());
    let mut c = a.connect();
    c.greet();
    assert_eq!(c.expect("ETRN other.test", 251).text(), "2.0.0 OK, no messages waiting for node other.test");
    assert_eq!(c.expect("ETRN #outbound", 458).text(), "4.3.0 Unable to queue messages for node #outbound");
    // The retry is an hour away: only ETRN explains a delivery now.
    assert_eq!(c.expect("ETRN remote.test", 253).text(), "2.0.0 OK, 1 pending messages for node remote.test started");
    wait_until("the relayed message", || !_b.mailbox_now("tyler").is_empty());
    a.wait_for_queue();
    // A client that may not relay may not run the queue either.
    let plain = Server::start();
    let mut c = plain.connect();
    c.greet();
    assert_eq!(c.expect("ETRN remote.test", 459).text(), "4.7.1 remote.test: client not authorized to run the queue");
}

/// Postfix's smtp-sink on a free port, writing each transaction it receives into a file in
/// `dir`; `flags` switch off what it announces.
struct Sink {
    child: std::process::Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl Drop for Sink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn sink(flags: &[&str]) -> Sink {
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let user = String::from_utf8(Command::new("id").arg("-un").output().unwrap().stdout).unwrap().trim().to_string();
    let child = Command::new("smtp-sink")
        .args(flags)
        .args(["-u", &user, "-d"])
        .arg(format!("{}/%M.", dir.path().display()))
        .arg(format!("127.0.0.1:{port}"))
        .arg("10")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("smtp-sink (Debian package postfix) is needed for this test");
    wait_until("smtp-sink to listen", || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok());
    Sink { child, port, dir }
}

/// Sends an 8-bit message with DSN parameters through `server`.
fn send_8bit(server: &Server) {
    let mut c = server.connect();
    c.greet();
    c.expect("MAIL FROM:<daniel@localhost> BODY=8BITMIME RET=HDRS ENVID=e-1", 250);
    c.expect("RCPT TO:<x@remote.test> NOTIFY=SUCCESS ORCPT=rfc822;x@remote.test", 250);
    c.expect("DATA", 354);
    c.send(
        "Subject: 8 bits\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\nGrüße\r\n.\r\n",
    );
    assert_eq!(c.reply().code, 250);
}

/// The one transaction smtp-sink dumped.
fn dumped(sink: &Sink) -> String {
    wait_until("smtp-sink's dump", || std::fs::read_dir(sink.dir.path()).unwrap().count() > 0);
    let file = std::fs::read_dir(sink.dir.path()).unwrap().next().unwrap().unwrap().path();
    // smtp-sink writes the file as the transaction ends.
    std::thread::sleep(Duration::from_millis(200));
    String::from_utf8(std::fs::read(file).unwrap()).unwrap()
}

#[test]
fn the_relay_client_against_postfix_smtp_sink() {
    // A peer with 8BITMIME, DSN and PIPELINING: the body goes as it is, the DSN parameters
    // are passed on, and the peer reports from there (no notice from here).
    let full = sink(&[]);
    let a = relay(full.port, "");
    send_8bit(&a);
    let dump = dumped(&full);
    let mail_args = dump.lines().find_map(|l| l.strip_prefix("X-Mail-Args: ")).unwrap();
    // (smtp-sink announces no SIZE, so none is sent.)
    assert_eq!(mail_args, "<daniel@localhost> BODY=8BITMIME RET=HDRS ENVID=e-1");
    assert!(dump.contains("X-Rcpt-Args: <x@remote.test> NOTIFY=SUCCESS ORCPT=rfc822;x@remote.test\n"), "{dump}");
    assert!(dump.contains("\nGrüße\n") && !dump.contains("Return-Path:"), "{dump}");
    a.wait_for_queue();
    assert!(a.mailbox_now("daniel").is_empty(), "the DSN peer reports, not us");

    // A peer without 8BITMIME, DSN or PIPELINING: the body is converted to 7 bits, no DSN
    // parameters go out, and the sender gets a "relayed" notice for NOTIFY=SUCCESS.
    let plain = sink(&["-8", "-N", "-p"]);
    let b = relay(plain.port, "");
    send_8bit(&b);
    let dump = dumped(&plain);
    let mail_args = dump.lines().find_map(|l| l.strip_prefix("X-Mail-Args: ")).unwrap();
    assert_eq!(mail_args, "<daniel@localhost>");
    assert!(dump.contains("X-Rcpt-Args: <x@remote.test>\n"), "{dump}");
    assert!(dump.contains("Content-Transfer-Encoding: quoted-printable\n\nGr=C3=BC=C3=9Fe\n"), "{dump}");
    wait_until("the relayed notice", || !b.mailbox_now("daniel").is_empty());
    let n = &dsn_view(&b, "daniel")[0];
    assert_eq!((n["recipients"][0]["Action"].as_str(), n["recipients"][0]["Status"].as_str()), (Some("relayed"), Some("2.0.0")));
}

fn dns() -> DnsServer {
    DnsServer::start(&serde_json::json!({}))
}

#[test]
fn mx_records_decide_the_next_hop_with_the_a_fallback_and_null_mx() {
    let dns = dns();
    let hop_port = free_port();
    let hop = Server::start_with(Setup {
        domains: vec!["mx.test".into(), "nomx.test".into()],
        listen: Some(format!("127.0.0.1:{hop_port}")),
        ..Setup::default()
    });
    let a = Server::start_with(Setup {
        top: "relay_networks = [\"127.0.0.0/8\"]".into(),
        smtp: format!("[queue]\nretry_intervals = [\"1s\"]\nmx_port = {hop_port}\n[dns]\nnameservers = [\"127.0.0.1:{}\"]\n", dns.port),
        ..Setup::default()
    });
    // mx.test: MX 10 mx1.mx.test, A 127.0.0.1. nomx.test: no MX, an A record (RFC 5321 5.1).
    // nullmx.test: MX 0 "." (RFC 7505). nxdomain.test: does not exist.
    send(&a, "daniel@localhost", &["tyler@mx.test", "hunt@nomx.test", "x@nullmx.test", "y@nxdomain.test"], "by mx");
    a.wait_for_queue();
    assert_eq!(hop.mailbox("tyler").len(), 1);
    assert_eq!(hop.mailbox("hunt").len(), 1);
    let notices = dsn_view(&a, "daniel");
    assert_eq!(notices.len(), 1);
    let mut failed: Vec<(String, String)> = notices[0]["recipients"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["Final-Recipient"].as_str().unwrap().to_string(), r["Status"].as_str().unwrap().to_string()))
        .collect();
    failed.sort();
    assert_eq!(failed, [("rfc822; x@nullmx.test".to_string(), "5.1.10".to_string()), ("rfc822; y@nxdomain.test".into(), "5.1.2".into())]);
}

/// The server's `/metrics` text.
fn metrics(server: &Server) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", server.port("metrics"))).unwrap();
    stream.write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n").unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    text
}

/// A next hop with a (self-signed) certificate, so that it offers STARTTLS.
fn next_hop_with_tls(port: u16) -> Server {
    Server::start_with(Setup { domains: vec!["remote.test".into()], listen: Some(format!("127.0.0.1:{port}")), tls: true, ..Setup::default() })
}

/// `[queue] tls = "may"` (the default): STARTTLS when the next hop offers it, whatever its
/// certificate (here a self-signed one); the next hop records ESMTPS and the cipher, the
/// relay logs what it used. With `"none"` the same next hop gets the mail in the clear.
#[test]
fn relayed_mail_goes_over_starttls_when_the_next_hop_offers_it_and_tls_is_not_off() {
    let port = free_port();
    let b = next_hop_with_tls(port);
    let a = Server::start_with(Setup {
        top: "relay_networks = [\"127.0.0.0/8\"]\n[metrics]\nlisten = \"127.0.0.1:0\"\n".into(),
        smtp: format!("[queue]\nretry_intervals = [\"1s\"]\n[routes]\n\"remote.test\" = \"127.0.0.1:{port}\"\n"),
        ..Setup::default()
    });
    send(&a, "daniel@localhost", &["tyler@remote.test"], "over tls");
    wait_until("the relayed message", || !b.mailbox_now("tyler").is_empty());
    let stored = &b.mailbox("tyler")[0];
    assert!(stored.contains("with ESMTPS") && stored.contains("(using TLS1.3 with cipher "), "{stored}");
    assert!(a.logged(|l| l.contains("\"relayed\"") && l.contains("TLS1.3 TLS13_")), "{:?}", a.log());
    wait_until("the relay session counted", || metrics(&a).contains("wasmail_relay_sessions_total{tls=\"tls\"} 1\n"));

    let plain = relay(port, "tls = \"none\"\n");
    send(&plain, "daniel@localhost", &["tyler@remote.test"], "in the clear");
    wait_until("the second message", || b.mailbox_now("tyler").len() == 2);
    let stored = b.mailbox("tyler").into_iter().find(|m| m.contains("Subject: in the clear")).unwrap();
    assert!(stored.contains("with ESMTP ") || stored.contains("with ESMTP\n"), "{stored}");
    assert!(!stored.contains("with ESMTPS") && !stored.contains("(using TLS"), "{stored}");
}

/// `"encrypt"`: a next hop that does not offer STARTTLS is not given the mail; the entry
/// waits in the queue with the reason, and goes once the next hop offers TLS.
#[test]
fn encrypt_keeps_mail_from_a_next_hop_without_starttls() {
    let port = free_port();
    let mut b = next_hop(port, Vec::new());
    let a = relay(port, "tls = \"encrypt\"\n");
    let id = send(&a, "daniel@localhost", &["tyler@remote.test"], "only encrypted");
    wait_until("a deferral", || a.log().iter().any(|l| l.contains("delivery deferred")));
    let list = Command::new(wasmail_bin()).args(["queue", "list", "--config"]).arg(a.dir.path().join("wasmail.toml")).output().unwrap();
    let list = String::from_utf8_lossy(&list.stdout).into_owned();
    assert!(list.starts_with(&id) && list.contains("does not offer STARTTLS"), "{list}");
    assert!(b.mailbox_now("tyler").is_empty(), "nothing in the clear");
    // The next hop gets a certificate: the retry goes over TLS.
    b.kill9();
    drop(b);
    let b = next_hop_with_tls(port);
    wait_until("the relayed message", || !b.mailbox_now("tyler").is_empty());
    let stored = &b.mailbox("tyler")[0];
    assert!(stored.contains("with ESMTPS") && stored.contains("Subject: only encrypted"), "{stored}");
}

/// `wasmail cert self-signed` for `names`, into DIR/cert.pem and DIR/key.pem.
fn certificate(dir: &std::path::Path, names: &[&str]) -> (std::path::PathBuf, std::path::PathBuf) {
    std::fs::create_dir_all(dir).unwrap();
    let mut command = Command::new(wasmail_bin());
    command.args(["cert", "self-signed", "--out"]).arg(dir);
    for name in names {
        command.args(["--name", name]);
    }
    let output = command.output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    (dir.join("cert.pem"), dir.join("key.pem"))
}

/// A Wasmail MX for `domains` on `port`, offering STARTTLS with this certificate.
fn mx_with_certificate(port: u16, domains: &[&str], cert: &std::path::Path, key: &std::path::Path) -> Server {
    Server::start_with(Setup {
        domains: domains.iter().map(|d| d.to_string()).collect(),
        listen: Some(format!("127.0.0.1:{port}")),
        smtp: format!("[tls]\ncert = {cert:?}\nkey = {key:?}\n"),
        ..Setup::default()
    })
}

/// The test HTTPS server (tests/clients/https_server.py) serving MTA-STS policies.
struct PolicyServer {
    _helper: Helper,
    port: u16,
}

fn policy_server(dir: &std::path::Path, cert: &std::path::Path, key: &std::path::Path, policies: &Value) -> PolicyServer {
    let file = dir.join("policies.json");
    std::fs::write(&file, policies.to_string()).unwrap();
    let port = free_port();
    let mut command = Command::new("python3");
    command.arg(client_script("https_server.py")).arg(port.to_string()).args([cert, key, &file]);
    PolicyServer { _helper: Helper::start(command), port }
}

/// MTA-STS (RFC 8461) against a Wasmail MX whose certificate names mx1.sts.test only: an
/// `enforce` domain gets its mail over TLS with the certificate checked; an enforce domain
/// whose MX name the certificate does not cover, or whose MX the policy does not name, keeps
/// its mail in the queue (never in the clear); a `testing` domain gets it anyway. The TLS
/// report (RFC 8460) of each says what happened.
#[test]
fn mta_sts_enforce_requires_a_valid_certificate_and_a_listed_mx_testing_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let (mx_cert, mx_key) = certificate(&dir.path().join("mx"), &["mx1.sts.test"]);
    let hosts = ["mta-sts.sts.test", "mta-sts.wrongname.test", "mta-sts.nomatch.test", "mta-sts.testing.test"];
    let (policy_cert, policy_key) = certificate(&dir.path().join("policy"), &hosts);
    let policy = |mode: &str, mx: &str| format!("version: STSv1\r\nmode: {mode}\r\nmx: {mx}\r\nmax_age: 86400\r\n");
    let policies = policy_server(
        dir.path(),
        &policy_cert,
        &policy_key,
        &serde_json::json!({
            "mta-sts.sts.test": policy("enforce", "mx1.sts.test"),
            "mta-sts.wrongname.test": policy("enforce", "*.wrongname.test"),
            "mta-sts.nomatch.test": policy("enforce", "mx9.nomatch.test"),
            "mta-sts.testing.test": policy("testing", "*.testing.test"),
        }),
    );
    let mut zone = serde_json::Map::new();
    for domain in ["sts.test", "wrongname.test", "nomatch.test", "testing.test"] {
        zone.insert(domain.into(), serde_json::json!({"MX": [[10, format!("mx1.{domain}")]]}));
        zone.insert(format!("mx1.{domain}"), serde_json::json!({"A": ["127.0.0.1"]}));
        zone.insert(format!("_mta-sts.{domain}"), serde_json::json!({"TXT": ["v=STSv1; id=20261207"]}));
        zone.insert(format!("mta-sts.{domain}"), serde_json::json!({"A": ["127.0.0.1"]}));
    }
    let dns = DnsServer::start(&Value::Object(zone));
    let hop_port = free_port();
    let hop = mx_with_certificate(hop_port, &["sts.test", "wrongname.test", "nomatch.test", "testing.test"], &mx_cert, &mx_key);
    let a = Server::start_with(Setup {
        top: "relay_networks = [\"127.0.0.0/8\"]".into(),
        smtp: format!(
            "[queue]\nretry_intervals = [\"1h\"]\nmx_port = {hop_port}\nmta_sts_port = {}\ntls_ca_files = [{:?}, {:?}]\n[dns]\nnameservers = [\"127.0.0.1:{}\"]\n",
            policies.port, mx_cert, policy_cert, dns.port
        ),
        ..Setup::default()
    });
    let enforced = send(&a, "daniel@localhost", &["tyler@sts.test"], "enforced");
    let wrong_name = send(&a, "daniel@localhost", &["tyler@wrongname.test"], "wrong name");
    let no_match = send(&a, "daniel@localhost", &["tyler@nomatch.test"], "no match");
    send(&a, "daniel@localhost", &["tyler@testing.test"], "testing");
    wait_until("two deliveries", || hop.mailbox_now("tyler").len() == 2);
    wait_until("two deferrals", || a.log().iter().filter(|l| l.contains("delivery deferred")).count() >= 2);
    let delivered = hop.mailbox("tyler");
    let subjects: Vec<bool> = ["Subject: enforced", "Subject: testing"].iter().map(|s| delivered.iter().any(|m| m.contains(s))).collect();
    assert_eq!(subjects, [true, true], "{delivered:?}");
    let enforced_copy = delivered.iter().find(|m| m.contains("Subject: enforced")).unwrap();
    assert!(enforced_copy.contains("with ESMTPS"), "over TLS: {enforced_copy}");
    let list = Command::new(wasmail_bin()).args(["queue", "list", "--config"]).arg(a.dir.path().join("wasmail.toml")).output().unwrap();
    let list = String::from_utf8_lossy(&list.stdout).into_owned();
    assert!(!list.contains(&enforced), "{list}");
    // An entry: its line, then its recipients' indented lines.
    let entry = |id: &str| -> String {
        let mut lines = list.lines().skip_while(|l| !l.starts_with(id));
        let first = lines.next().unwrap_or_default().to_string();
        lines.take_while(|l| l.starts_with(' ')).fold(first, |all, l| all + "\n" + l)
    };
    assert!(entry(&wrong_name).contains("TLS handshake") && entry(&wrong_name).contains("certificate"), "{list}");
    assert!(entry(&no_match).contains("MTA-STS policy names (mx9.nomatch.test)"), "{list}");
    assert!(a.logged(|l| l.contains("MTA-STS policy fetched") && l.contains("sts.test")));
    // The policy was fetched once per domain and is kept on disk for the next start.
    assert!(a.data_dir().join("mta-sts/sts.test.json").exists());

    // `wasmail tls report`: today's sessions, by policy, in RFC 8460's JSON.
    let today = String::from_utf8(Command::new("date").args(["-u", "+%Y-%m-%d"]).output().unwrap().stdout).unwrap();
    let report = |domain: &str| -> Value {
        let output = Command::new(wasmail_bin())
            .args(["tls", "report", domain, "--date", today.trim(), "--config"])
            .arg(a.dir.path().join("wasmail.toml"))
            .output()
            .unwrap();
        assert!(output.status.success(), "{domain}: {}", String::from_utf8_lossy(&output.stderr));
        serde_json::from_slice(&output.stdout).unwrap()
    };
    let sts = report("sts.test");
    assert_eq!(sts["policies"][0]["policy"]["policy-type"], "sts");
    assert_eq!(sts["policies"][0]["policy"]["policy-string"][2], "mx: mx1.sts.test");
    assert_eq!(sts["policies"][0]["summary"]["total-successful-session-count"], 1);
    let wrong = report("wrongname.test");
    assert_eq!(wrong["policies"][0]["summary"]["total-successful-session-count"], 0);
    assert_eq!(wrong["policies"][0]["failure-details"][0]["result-type"], "certificate-host-mismatch", "{wrong}");
    assert_eq!(wrong["policies"][0]["failure-details"][0]["receiving-mx-hostname"], "mx1.wrongname.test");
    // testing: the check failed (reported), the mail went anyway.
    let testing = report("testing.test");
    assert_eq!(testing["policies"][0]["failure-details"][0]["result-type"], "certificate-host-mismatch", "{testing}");
    assert_eq!(testing["policies"][0]["summary"]["total-failure-session-count"], 1);
    let none = Command::new(wasmail_bin())
        .args(["tls", "report", "nobody.test", "--date", today.trim(), "--config"])
        .arg(a.dir.path().join("wasmail.toml"))
        .output()
        .unwrap();
    assert!(!none.status.success() && String::from_utf8_lossy(&none.stderr).contains("no TLS session to nobody.test"));
}

/// An MTA-STS policy larger than 64 KiB (here 16 MiB) is refused as it arrives, without the
/// server holding it: the domain counts as having no policy (an enforce policy naming another
/// MX would otherwise keep the mail), and the server's memory does not grow by the policy.
#[test]
fn an_mta_sts_policy_past_its_bound_is_refused_as_it_arrives() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = certificate(&dir.path().join("policy"), &["mta-sts.big.test"]);
    let padding = "# padding\r\n".repeat(16 * 1024 * 1024 / 11);
    let policy = format!("version: STSv1\r\nmode: enforce\r\nmx: nowhere.example\r\nmax_age: 86400\r\n{padding}");
    let policies = policy_server(dir.path(), &cert, &key, &serde_json::json!({ "mta-sts.big.test": policy }));
    let dns = DnsServer::start(&serde_json::json!({
        "big.test": {"MX": [[10, "mx1.big.test"]]},
        "mx1.big.test": {"A": ["127.0.0.1"]},
        "_mta-sts.big.test": {"TXT": ["v=STSv1; id=1"]},
        "mta-sts.big.test": {"A": ["127.0.0.1"]},
    }));
    let hop_port = free_port();
    let hop = Server::start_with(Setup { domains: vec!["big.test".into()], listen: Some(format!("127.0.0.1:{hop_port}")), ..Setup::default() });
    let a = Server::start_with(Setup {
        top: "relay_networks = [\"127.0.0.0/8\"]".into(),
        smtp: format!(
            "[queue]\nmx_port = {hop_port}\nmta_sts_port = {}\ntls_ca_files = [{cert:?}]\n[dns]\nnameservers = [\"127.0.0.1:{}\"]\n",
            policies.port, dns.port
        ),
        ..Setup::default()
    });
    let before = a.rss_kib();
    send(&a, "daniel@localhost", &["tyler@big.test"], "no policy");
    wait_until("the delivery", || !hop.mailbox_now("tyler").is_empty());
    assert!(a.logged(|l| l.contains("cannot fetch the MTA-STS policy") && l.contains("larger than 65536 octets")), "{:?}", a.log());
    let grown = a.rss_kib().saturating_sub(before);
    assert!(grown < 8 * 1024, "the server grew by {grown} KiB while refusing a 16 MiB policy");
}

/// The DNSSEC-signed test DNS server (tests/clients/dnssec_server.py, Debian's python3 with
/// dnspython): its port, and the trust anchor file it wrote.
struct SignedDns {
    _helper: Helper,
    port: u16,
    anchor: std::path::PathBuf,
}

fn signed_dns(dir: &std::path::Path, zone: &str, records: &Value) -> SignedDns {
    let file = dir.join("zone.json");
    std::fs::write(&file, records.to_string()).unwrap();
    let anchor = dir.join("anchor.txt");
    let port = free_port();
    let mut command = Command::new("/usr/bin/python3");
    command.arg(client_script("dnssec_server.py")).arg(port.to_string()).arg(zone).args([&file, &anchor]);
    SignedDns { _helper: Helper::start(command), port, anchor }
}

/// DANE (RFC 7672), `tls = "dane"`, with a signed zone whose key the relay trusts: an MX host
/// whose TLSA record names its key gets the mail over TLS; one whose record names another key
/// keeps it waiting (never in the clear); one without TLSA gets it opportunistically. The
/// TLS report names the TLSA policy.
#[test]
fn dane_delivers_to_a_matching_tlsa_and_keeps_mail_from_a_mismatch() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = certificate(&dir.path().join("mx"), &["mx1.dane.test"]);
    let hop_port = free_port();
    let tlsa = |data: &str| serde_json::json!({ "TLSA": [format!("3 1 1 {data}")] });
    let mut zone = serde_json::Map::new();
    for domain in ["good.dane.test", "wrong.dane.test", "none.dane.test"] {
        zone.insert(domain.into(), serde_json::json!({"MX": [format!("10 mx1.{domain}.")]}));
        zone.insert(format!("mx1.{domain}"), serde_json::json!({"A": ["127.0.0.1"]}));
    }
    zone.insert(format!("_{hop_port}._tcp.mx1.good.dane.test"), tlsa(&format!("spki-sha256:{}", cert.display())));
    zone.insert(format!("_{hop_port}._tcp.mx1.wrong.dane.test"), tlsa(&"ab".repeat(32)));
    let dns = signed_dns(dir.path(), "dane.test.", &Value::Object(zone));
    let hop = mx_with_certificate(hop_port, &["good.dane.test", "wrong.dane.test", "none.dane.test"], &cert, &key);
    let a = Server::start_with(Setup {
        top: "relay_networks = [\"127.0.0.0/8\"]".into(),
        smtp: format!(
            "[queue]\ntls = \"dane\"\nmta_sts = false\nretry_intervals = [\"1h\"]\nmx_port = {hop_port}\n[dns]\nnameservers = [\"127.0.0.1:{}\"]\ndnssec_trust_anchor = {:?}\n",
            dns.port, dns.anchor
        ),
        ..Setup::default()
    });
    send(&a, "daniel@localhost", &["tyler@good.dane.test"], "dane");
    let wrong = send(&a, "daniel@localhost", &["tyler@wrong.dane.test"], "wrong key");
    send(&a, "daniel@localhost", &["tyler@none.dane.test"], "no tlsa");
    wait_until("two deliveries", || hop.mailbox_now("tyler").len() == 2);
    wait_until("a deferral", || a.log().iter().any(|l| l.contains("delivery deferred")));
    let delivered = hop.mailbox("tyler");
    let dane_copy = delivered.iter().find(|m| m.contains("Subject: dane")).expect("delivered under DANE");
    assert!(dane_copy.contains("with ESMTPS"), "{dane_copy}");
    assert!(delivered.iter().any(|m| m.contains("Subject: no tlsa")));
    let list = Command::new(wasmail_bin()).args(["queue", "list", "--config"]).arg(a.dir.path().join("wasmail.toml")).output().unwrap();
    let list = String::from_utf8_lossy(&list.stdout).into_owned();
    assert!(list.contains(&wrong) && list.contains("TLS handshake"), "{list}");
    let today = String::from_utf8(Command::new("date").args(["-u", "+%Y-%m-%d"]).output().unwrap().stdout).unwrap();
    let report = Command::new(wasmail_bin())
        .args(["tls", "report", "good.dane.test", "--date", today.trim(), "--config"])
        .arg(a.dir.path().join("wasmail.toml"))
        .output()
        .unwrap();
    let report: Value = serde_json::from_slice(&report.stdout).unwrap();
    assert_eq!(report["policies"][0]["policy"]["policy-type"], "tlsa", "{report}");
    assert_eq!(report["policies"][0]["summary"]["total-successful-session-count"], 1);
}
