//! The relay client against next hops it should not trust, and the ESMTP parameters it
//! passes on: a next hop is any host a sender names (a bounce to their domain), so its
//! replies are bounded as they arrive and each stage has a deadline; client-supplied
//! parameters never carry a CR LF into the relayed commands.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use wasmail_tests::{Server, Setup};

/// A server that relays `remote.test` to `port`, with one local delivery slot and one relay
/// slot, retries every second and `relay_command_timeout` as given.
fn relay(port: u16, command_timeout: &str) -> Server {
    Server::start_with(Setup {
        top: "relay_networks = [\"127.0.0.0/8\"]".into(),
        smtp: format!(
            "[queue]\nretry_intervals = [\"1s\"]\nworkers = 1\nrelay_workers = 1\nrelay_command_timeout = \"{command_timeout}\"\n\
             [routes]\n\"remote.test\" = \"127.0.0.1:{port}\"\n"
        ),
        ..Setup::default()
    })
}

fn send(server: &Server, from: &str, to: &str, subject: &str) {
    let mut c = server.connect();
    c.greet();
    let reply = c.send_mail(from, &[to], &format!("Subject: {subject}\r\n\r\nbody\r\n"));
    assert_eq!(reply.code, 250, "{reply:?}");
}

/// A next hop on a free port that runs `serve` on each connection, in a thread of its own.
fn peer(serve: impl Fn(TcpStream) + Clone + Send + 'static) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            let serve = serve.clone();
            std::thread::spawn(move || serve(stream));
        }
    });
    port
}

/// A next hop that greets with a line that never ends: the client gives up at 2 KiB instead
/// of reading it into memory, and the entry is deferred.
#[test]
fn an_endless_reply_line_is_cut_off() {
    let port = peer(|mut stream| {
        let _ = stream.write_all(b"220-");
        let chunk = vec![b'a'; 64 * 1024];
        // 256 MiB, or until the client hangs up.
        for _ in 0..4096 {
            if stream.write_all(&chunk).is_err() {
                return;
            }
        }
    });
    let server = relay(port, "5m");
    let baseline = server.rss_kib();
    send(&server, "daniel@client.example", "someone@remote.test", "to a hostile peer");
    assert!(server.logged(|l| l.contains("reply line longer than 2048 octets")), "the long line was not refused");
    let growth = server.rss_kib().saturating_sub(baseline);
    assert!(growth < 64 * 1024, "the peer's endless line grew the server by {growth} KiB");
    assert_eq!(server.queued().len(), 1, "deferred, not lost");
}

/// A next hop that drips its greeting a byte every half second: the whole reply must come
/// within `relay_command_timeout` (2 s here), not each line within 5 minutes. Meanwhile a
/// local message is delivered at once: the relay has slots of its own.
#[test]
fn a_dripping_peer_is_given_up_on_and_does_not_hold_local_delivery() {
    let port = peer(|mut stream| {
        let _ = stream.write_all(b"220-");
        while stream.write_all(b"a").is_ok() {
            std::thread::sleep(Duration::from_millis(500));
        }
    });
    let server = relay(port, "2s");
    send(&server, "daniel@client.example", "someone@remote.test", "to a slow peer");
    // The relay attempt is under way (connected, reading the greeting).
    std::thread::sleep(Duration::from_millis(300));
    let start = Instant::now();
    send(&server, "daniel@client.example", "tyler@localhost", "local");
    let deadline = Instant::now() + Duration::from_secs(10);
    while server.mailbox_now("tyler").is_empty() {
        assert!(Instant::now() < deadline, "the local message waited for the relay");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(start.elapsed() < Duration::from_secs(10));
    assert!(server.logged(|l| l.contains("no whole reply within 2 s")), "the dripping peer was not given up on");
    assert_eq!(server.queued().len(), 1, "the remote message is deferred, not lost");
}

/// A next hop with DSN that records the MAIL and RCPT lines it gets.
fn recording_peer() -> (u16, mpsc::Receiver<String>) {
    let (tx, rx) = mpsc::channel();
    (peer(move |stream| serve_recording(stream, tx.clone())), rx)
}

fn serve_recording(stream: TcpStream, tx: mpsc::Sender<String>) {
    serve_recording_with(stream, tx, false)
}

/// [`serve_recording`]; with `broken_tls`, EHLO offers STARTTLS, which is answered 220 and
/// then with octets that are no TLS handshake (and the connection closed).
fn serve_recording_with(stream: TcpStream, tx: mpsc::Sender<String>, broken_tls: bool) {
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    let _ = writer.write_all(b"220 peer.test ESMTP\r\n");
    let mut in_data = false;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        if in_data {
            if line == ".\r\n" {
                in_data = false;
                let _ = writer.write_all(b"250 2.0.0 queued\r\n");
            }
            continue;
        }
        let _ = tx.send(line.clone());
        let verb = line.split([' ', ':', '\r']).next().unwrap_or("").to_ascii_uppercase();
        let reply: &[u8] = match verb.as_str() {
            "EHLO" if broken_tls => b"250-peer.test\r\n250-STARTTLS\r\n250-DSN\r\n250 PIPELINING\r\n",
            "EHLO" => b"250-peer.test\r\n250-DSN\r\n250 PIPELINING\r\n",
            "STARTTLS" => {
                let _ = writer.write_all(b"220 2.0.0 go ahead\r\n");
                std::thread::sleep(Duration::from_millis(100));
                let _ = writer.write_all(b"this is not a TLS server hello\r\n");
                return;
            }
            "DATA" => {
                in_data = true;
                b"354 go on\r\n"
            }
            "QUIT" => {
                let _ = writer.write_all(b"221 bye\r\n");
                return;
            }
            _ => b"250 2.0.0 ok\r\n",
        };
        let _ = writer.write_all(reply);
    }
}

/// ENVID and ORCPT whose xtext decodes to CR LF are refused (501), so nothing of them reaches
/// the next hop or a notice; a valid ENVID with an escaped `+` is relayed re-encoded.
#[test]
fn xtext_that_decodes_to_line_breaks_is_refused_and_valid_xtext_is_relayed_encoded() {
    let (port, lines) = recording_peer();
    let server = relay(port, "30s");
    let mut c = server.connect();
    c.greet();
    let reply = c.command("MAIL FROM:<daniel@client.example> ENVID=abc+0D+0ARSET+0D+0A");
    assert_eq!(reply.code, 501, "{reply:?}");
    c.expect("MAIL FROM:<daniel@client.example> ENVID=ok+2Bx+20y", 250);
    let reply = c.command("RCPT TO:<someone@remote.test> ORCPT=x-made-up;a+0D+0ABcc:+20victim@example.org");
    assert_eq!(reply.code, 501, "{reply:?}");
    c.expect("RCPT TO:<someone@remote.test> NOTIFY=FAILURE ORCPT=rfc822;some+2Bone@remote.test", 250);
    c.expect("DATA", 354);
    c.send("Subject: x\r\n\r\nbody\r\n.\r\n");
    assert_eq!(c.reply().code, 250);
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !seen.iter().any(|l: &String| l.starts_with("DATA")) {
        let left = deadline.saturating_duration_since(Instant::now());
        seen.push(lines.recv_timeout(left).unwrap_or_else(|_| panic!("the peer got: {seen:?}")));
    }
    let mail = seen.iter().find(|l| l.starts_with("MAIL FROM:")).expect("MAIL");
    assert_eq!(mail, "MAIL FROM:<daniel@client.example> ENVID=ok+2Bx+20y\r\n", "{seen:?}");
    let rcpt = seen.iter().find(|l| l.starts_with("RCPT TO:")).expect("RCPT");
    assert_eq!(rcpt, "RCPT TO:<someone@remote.test> NOTIFY=FAILURE ORCPT=rfc822;some+2Bone@remote.test\r\n", "{seen:?}");
    assert!(!seen.iter().any(|l| l.starts_with("RSET") || l == "\r\n"), "{seen:?}");
}

/// `[queue] tls = "may"` (the default) and a next hop that offers STARTTLS but whose
/// handshake fails: the mail is not kept back for it, it goes on a new connection in the
/// clear (without STARTTLS) at once.
#[test]
fn a_failed_handshake_under_may_is_followed_by_the_mail_in_the_clear() {
    let (tx, lines) = mpsc::channel();
    let port = peer(move |stream| serve_recording_with(stream, tx.clone(), true));
    let server = relay(port, "30s");
    send(&server, "daniel@client.example", "someone@remote.test", "tls broken");
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !seen.iter().any(|l: &String| l.starts_with("DATA")) {
        let left = deadline.saturating_duration_since(Instant::now());
        seen.push(lines.recv_timeout(left).unwrap_or_else(|_| panic!("the peer got: {seen:?}")));
    }
    let verbs: Vec<&str> = seen.iter().map(|l| l.split([' ', ':', '\r']).next().unwrap()).collect();
    assert_eq!(verbs, ["EHLO", "STARTTLS", "EHLO", "MAIL", "RCPT", "DATA"], "{seen:?}");
    server.wait_for_queue();
    assert!(server.logged(|l| l.contains("TLS with the next hop failed; relaying in the clear")), "{:?}", server.log());
    assert!(server.logged(|l| l.contains("\"relayed\"") && l.contains("no TLS, the handshake failed")), "{:?}", server.log());
}
