//! SMTP abuse limits: connections per address, messages and recipients per minute and per
//! session, recipient probing and its block, slow-drip clients, and VRFY/EXPN that tell
//! nothing when they are off.

use std::io::Write;
use std::time::{Duration, Instant};

use wasmail_tests::{Server, Setup};

fn with_smtp(smtp: &str) -> Server {
    Server::start_with(Setup { users: vec!["tyler".into(), "hunt".into()], smtp: smtp.into(), ..Setup::default() })
}

#[test]
fn connections_per_address_are_capped() {
    let server = with_smtp("max_connections_per_address = 2\n");
    let mut first = server.connect();
    first.greet();
    let mut second = server.connect();
    second.greet();
    let mut third = server.connect();
    let refused = third.reply();
    assert_eq!(refused.code, 421);
    assert!(refused.text().starts_with("4.7.0 ") && refused.text().contains("from your address"), "{refused:?}");
    first.expect("QUIT", 221);
    drop(first);
    std::thread::sleep(Duration::from_millis(200));
    let mut again = server.connect();
    again.greet();
}

#[test]
fn messages_and_recipients_per_minute_and_per_session() {
    let server = with_smtp("rate_exempt = []\nmax_messages_per_minute = 2\nmax_recipients_per_minute = 3\n");
    let mut c = server.connect();
    c.greet();
    c.expect("MAIL FROM:<a@client.test>", 250);
    for _ in 0..3 {
        c.expect("RCPT TO:<tyler@localhost>", 250);
    }
    let over = c.expect("RCPT TO:<hunt@localhost>", 452);
    assert!(over.text().starts_with("4.7.0 Too many recipients from your address"), "{over:?}");
    c.expect("RSET", 250);
    c.expect("MAIL FROM:<a@client.test>", 250);
    c.expect("RSET", 250);
    let over = c.expect("MAIL FROM:<a@client.test>", 450);
    assert!(over.text().starts_with("4.7.0 Too many messages from your address"), "{over:?}");
    // Loopback is exempt by default; the per-session cap still holds.
    let server = Server::start_with(Setup { users: vec!["tyler".into()], smtp: "max_messages_per_connection = 2\n".into(), ..Setup::default() });
    let mut c = server.connect();
    c.greet();
    for _ in 0..2 {
        c.expect("MAIL FROM:<a@client.test>", 250);
        c.expect("RSET", 250);
    }
    let closed = c.expect("MAIL FROM:<a@client.test>", 421);
    assert!(closed.text().contains("Too many messages in one session"), "{closed:?}");
}

#[test]
fn recipient_probing_ends_the_session_and_blocks_the_address() {
    let server = with_smtp("max_unknown_recipients = 3\nprobe_block = \"1m\"\n");
    let mut c = server.connect();
    c.greet();
    c.expect("MAIL FROM:<a@client.test>", 250);
    for name in ["admin", "info", "sales"] {
        c.expect(&format!("RCPT TO:<{name}@localhost>"), 550);
    }
    let closed = c.expect("RCPT TO:<jobs@localhost>", 421);
    assert!(closed.text().starts_with("4.7.0 ") && closed.text().contains("unknown recipients"), "{closed:?}");
    let mut again = server.connect();
    let refused = again.reply();
    assert_eq!(refused.code, 421);
    assert!(refused.text().contains("blocked"), "{refused:?}");
    assert!(server.logged(|l| l.contains("recipient probing, blocking the address")));
}

#[test]
fn slow_drip_clients_are_cut_off() {
    // A command line must be complete within command_timeout of its first byte...
    let server = with_smtp("command_timeout = \"1s\"\n");
    let stream = std::net::TcpStream::connect(server.smtp).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut reader = std::io::BufReader::new(stream.try_clone().unwrap());
    let mut banner = String::new();
    std::io::BufRead::read_line(&mut reader, &mut banner).unwrap();
    let start = Instant::now();
    // One byte every 150 ms: each read comes well within the timeout, the line never ends.
    let mut writer = stream;
    let dripper = std::thread::spawn(move || {
        for byte in b"NOOP NOOP NOOP NOOP NOOP NOOP NOOP" {
            if writer.write_all(&[*byte]).is_err() {
                break;
            }
            std::thread::sleep(Duration::from_millis(150));
        }
    });
    let mut reply = String::new();
    std::io::BufRead::read_line(&mut reader, &mut reply).unwrap();
    assert!(reply.starts_with("421 4.4.2 "), "{reply:?}");
    assert!(start.elapsed() < Duration::from_millis(2500), "cut off at the line deadline, not a byte timeout");
    dripper.join().unwrap();
    // ...and no session outlives max_session_time, however busy.
    let server = with_smtp("max_session_time = \"2s\"\n");
    let mut c = server.connect();
    c.greet();
    let start = Instant::now();
    loop {
        let reply = c.command("NOOP");
        if reply.code == 421 {
            assert!(reply.text().contains("session too long"), "{reply:?}");
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(5), "the session was not ended");
        std::thread::sleep(Duration::from_millis(300));
    }
    assert!(start.elapsed() >= Duration::from_millis(1500));
}

#[test]
fn vrfy_and_expn_tell_nothing_when_off() {
    let server = Server::start_with(Setup { users: vec!["tyler".into()], aliases: Some("staff: tyler\n".into()), ..Setup::default() });
    let mut c = server.connect();
    c.greet();
    let known = c.command("VRFY tyler");
    let unknown = c.command("VRFY nobody");
    assert_eq!((known.code, known.text()), (unknown.code, unknown.text()));
    assert_eq!(known.code, 252);
    let known = c.command("EXPN staff");
    let unknown = c.command("EXPN nothing");
    assert_eq!((known.code, known.text()), (unknown.code, unknown.text()));
    assert_eq!(known.code, 502);
}

/// Drips `bytes` one every 150 ms to `addr` after reading the greeting, and returns the first
/// line the server sends back and how long it took.
fn drip(addr: std::net::SocketAddr, bytes: &'static [u8]) -> (String, Duration) {
    let stream = std::net::TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut reader = std::io::BufReader::new(stream.try_clone().unwrap());
    let mut greeting = String::new();
    std::io::BufRead::read_line(&mut reader, &mut greeting).unwrap();
    let start = Instant::now();
    let mut writer = stream;
    let dripper = std::thread::spawn(move || {
        for byte in bytes {
            if writer.write_all(&[*byte]).is_err() {
                break;
            }
            std::thread::sleep(Duration::from_millis(150));
        }
    });
    let mut line = String::new();
    std::io::BufRead::read_line(&mut reader, &mut line).unwrap();
    let took = start.elapsed();
    dripper.join().unwrap();
    (line, took)
}

#[test]
fn pop3_and_imap_cut_off_slow_drip_clients_too() {
    let server = Server::start_with(Setup { pop3: "idle_timeout = \"1s\"\n".into(), imap: "idle_timeout = \"1s\"\n".into(), ..Setup::default() });
    let (line, took) = drip(server.pop3.unwrap(), b"USER tyler USER tyler USER tyler");
    assert!(line.starts_with("-ERR idle for too long"), "{line:?}");
    assert!(took < Duration::from_millis(2500), "{took:?}");
    let (line, took) = drip(server.imap.unwrap(), b"a1 NOOP a1 NOOP a1 NOOP a1 NOOP");
    assert!(line.starts_with("* BYE "), "{line:?}");
    assert!(took < Duration::from_millis(2500), "{took:?}");
}
