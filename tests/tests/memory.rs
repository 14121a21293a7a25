//! Memory bounded per connection: each test makes one connection do what used to make the
//! server's memory grow with the bytes a client sent or asked for, and reads the server's
//! resident size from /proc while the client does not read.

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use wasmail_tests::{raw_connection, read_line, Server, Setup};

/// The most a hostile connection may add to the server's resident size here. The server's
/// own baseline (wasmtime, caches) is measured before the test's connection starts.
const BOUND_KIB: u64 = 64 * 1024;

/// The largest resident size seen over `period` (sampled), minus `baseline`.
fn growth_over(server: &Server, baseline: u64, period: Duration) -> u64 {
    let deadline = Instant::now() + period;
    let mut peak = server.rss_kib();
    while Instant::now() < deadline {
        peak = peak.max(server.rss_kib());
        std::thread::sleep(Duration::from_millis(50));
    }
    peak.saturating_sub(baseline)
}

/// A 5 MB message (lines of 100 octets) in tyler's mailbox, delivered over SMTP.
fn server_with_a_large_message() -> Server {
    let server = Server::start_with(Setup { users: vec!["tyler".into()], ..Setup::default() });
    let body: String = (0..50_000).map(|i| format!("{i:07} {}\r\n", "m".repeat(90))).collect();
    let mut c = server.connect();
    c.greet();
    assert_eq!(c.send_mail("daniel@client.example", &["tyler@localhost"], &format!("Subject: big\r\n\r\n{body}")).code, 250);
    assert_eq!(server.mailbox("tyler").len(), 1);
    server
}

/// Before login, LITERAL+ literals in one unfinished command (each under max_literal) used to
/// be buffered without bound. Now the whole command is bounded by
/// `[imap] max_command_before_login` (64 KiB) as it arrives: the literals are refused and
/// skipped unread, and the session goes on.
#[test]
fn imap_literals_before_login_do_not_add_up() {
    let server = Server::start();
    let (mut reader, mut writer) = raw_connection(server.imap.unwrap(), Duration::from_secs(30));
    assert!(read_line(&mut reader).starts_with("* OK"));
    let baseline = server.rss_kib();
    let megabyte = vec![b'u'; 1 << 20];
    writer.write_all(b"a LOGIN {1048576+}\r\n").unwrap();
    for _ in 0..200 {
        writer.write_all(&megabyte).unwrap();
        writer.write_all(b" {1048576+}\r\n").unwrap();
    }
    writer.write_all(&megabyte).unwrap();
    writer.write_all(b"\r\nb NOOP\r\n").unwrap();
    let growth = growth_over(&server, baseline, Duration::from_millis(500));
    let first = read_line(&mut reader);
    assert!(first.starts_with("a NO [TOOBIG]"), "{first}");
    let second = read_line(&mut reader);
    assert!(second.starts_with("b OK"), "the session goes on after the skipped literals: {second}");
    let growth = growth.max(server.rss_kib().saturating_sub(baseline));
    assert!(growth < BOUND_KIB, "200 MiB of literals before login grew the server by {growth} KiB");
}

/// 200 pipelined `RETR 1` of a 5 MB message, never read: the replies go out as they are made
/// and the session waits for the client, instead of piling up a gigabyte of output.
#[test]
fn pop3_pipelined_retrs_wait_for_the_client() {
    let server = server_with_a_large_message();
    let (mut reader, mut writer) = raw_connection(server.pop3.unwrap(), Duration::from_secs(30));
    assert!(read_line(&mut reader).starts_with("+OK"));
    writer.write_all(b"USER tyler\r\nPASS secret\r\n").unwrap();
    assert!(read_line(&mut reader).starts_with("+OK"));
    assert!(read_line(&mut reader).starts_with("+OK"), "login");
    let baseline = server.rss_kib();
    writer.write_all("RETR 1\r\n".repeat(200).as_bytes()).unwrap();
    let growth = growth_over(&server, baseline, Duration::from_secs(3));
    assert!(growth < BOUND_KIB, "200 pipelined RETRs of 5 MB grew the server by {growth} KiB");
    // The client reads now: every reply comes, whole.
    let mut first = Vec::new();
    let mut total = 0u64;
    let mut buffer = vec![0u8; 1 << 20];
    let expected = 200 * 5_000_000u64;
    while total < expected {
        let n = reader.read(&mut buffer).unwrap();
        assert!(n > 0, "the connection closed after {total} octets");
        if first.len() < 64 {
            first.extend_from_slice(&buffer[..n.min(64)]);
        }
        total += n as u64;
    }
    assert!(first.starts_with(b"+OK 5"), "{}", String::from_utf8_lossy(&first));
}

/// `FETCH 1 (BODY.PEEK[] x 60)` of a 5 MB message, never read: rendered and written a piece
/// at a time, not 300 MB at once; 65 items are refused.
#[test]
fn imap_fetch_of_many_bodies_is_written_a_piece_at_a_time() {
    let server = server_with_a_large_message();
    let (mut reader, mut writer) = raw_connection(server.imap.unwrap(), Duration::from_secs(30));
    assert!(read_line(&mut reader).starts_with("* OK"));
    writer.write_all(b"a LOGIN tyler secret\r\nb SELECT INBOX\r\n").unwrap();
    loop {
        let line = read_line(&mut reader);
        assert!(!line.is_empty() && !line.starts_with("b NO") && !line.starts_with("b BAD"), "{line}");
        if line.starts_with("b OK") {
            break;
        }
    }
    writer.write_all(format!("c FETCH 1 ({})\r\n", vec!["BODY.PEEK[]"; 65].join(" ")).as_bytes()).unwrap();
    let refused = read_line(&mut reader);
    assert!(refused.starts_with("c BAD") && refused.contains("FETCH items"), "{refused}");
    let baseline = server.rss_kib();
    writer.write_all(format!("d FETCH 1 ({})\r\n", vec!["BODY.PEEK[]"; 60].join(" ")).as_bytes()).unwrap();
    let growth = growth_over(&server, baseline, Duration::from_secs(3));
    assert!(growth < BOUND_KIB, "FETCH of 60 bodies of 5 MB grew the server by {growth} KiB");
    // Read it all: one response with 60 literals of the message's size, then the tagged OK.
    let mut literals = 0;
    let mut line = read_line(&mut reader);
    while !line.starts_with("d ") {
        assert!(!line.is_empty(), "the connection closed");
        let announced = line.trim_end().strip_suffix('}').and_then(|l| l.rsplit_once('{')).map(|(_, size)| size.parse::<usize>().unwrap());
        if let Some(size) = announced {
            let mut literal = vec![0u8; size];
            reader.read_exact(&mut literal).unwrap();
            assert!(literal.starts_with(b"Return-Path:") || literal.starts_with(b"Received:"), "a literal is the message");
            literals += 1;
        }
        line = read_line(&mut reader);
    }
    assert!(line.starts_with("d OK"), "{line}");
    assert_eq!(literals, 60);
}

/// 100,000 SELECTs of mailboxes that do not exist, pipelined: each used to leave a change
/// counter behind for its name, for the life of the server. Now only folders a session has
/// selected keep one.
#[test]
fn selects_of_missing_mailboxes_leave_nothing_behind() {
    let server = Server::start_with(Setup { users: vec!["tyler".into()], ..Setup::default() });
    let (mut reader, mut writer) = raw_connection(server.imap.unwrap(), Duration::from_secs(120));
    assert!(read_line(&mut reader).starts_with("* OK"));
    writer.write_all(b"a LOGIN tyler secret\r\n").unwrap();
    assert!(read_line(&mut reader).starts_with("a OK"));
    let baseline = server.rss_kib();
    let count = 100_000;
    let reader_thread = std::thread::spawn(move || {
        let mut refused = 0;
        while refused < count {
            let line = read_line(&mut reader);
            assert!(!line.is_empty(), "the connection closed after {refused} SELECTs");
            if line.starts_with("s") && line.contains(" NO ") {
                refused += 1;
            }
        }
    });
    let mut batch = String::new();
    for n in 0..count {
        batch.push_str(&format!("s{n} SELECT \"nothing/here/under/this/long/name/{n:08}\"\r\n"));
        if batch.len() > 64 * 1024 {
            writer.write_all(batch.as_bytes()).unwrap();
            batch.clear();
        }
    }
    writer.write_all(batch.as_bytes()).unwrap();
    reader_thread.join().unwrap();
    let growth = server.rss_kib().saturating_sub(baseline);
    assert!(growth < 16 * 1024, "{count} SELECTs of missing mailboxes grew the server by {growth} KiB");
}

/// Runs `work` while another thread samples the server's resident size; returns what `work`
/// returned and the largest growth seen over `baseline`.
fn peak_growth_during<T>(server: &Server, baseline: u64, work: impl FnOnce() -> T) -> (T, u64) {
    let done = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|scope| {
        let sampler = scope.spawn(|| {
            let mut peak = server.rss_kib();
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                peak = peak.max(server.rss_kib());
                std::thread::sleep(Duration::from_millis(20));
            }
            peak.max(server.rss_kib())
        });
        let result = work();
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        let peak = sampler.join().unwrap();
        (result, peak.saturating_sub(baseline))
    })
}

/// 24 MB of `a:` header fields with a data hook on (xusr, which adds a Message-ID): the host
/// used to hand all six million fields to the plugin — a gigabyte of host memory — and the
/// plugin, out of memory and fail-open, was skipped; with `on_limit = "pass"` the message was
/// then stored. Now the `[mime]` header limits hold before any plugin sees the header: the
/// message is refused, the server's memory stays near the message's own size, and a message
/// within the limits still goes through the plugin.
#[test]
fn a_header_flood_never_makes_a_data_hook_be_skipped() {
    let setup = Setup { users: vec!["tyler".into()], smtp: "[mime]\non_limit = \"pass\"\n".into(), ..Setup::default() };
    let server = Server::start_with(setup.plugin("xusr", None));
    let mut c = server.connect();
    c.greet();
    c.expect("XUSR", 250);
    c.expect("MAIL FROM:<daniel@client.example>", 250);
    c.expect("RCPT TO:<tyler@localhost>", 250);
    c.expect("DATA", 354);
    let baseline = server.rss_kib();
    let (reply, growth) = peak_growth_during(&server, baseline, || {
        let flood = b"a:\r\n".repeat(6_000_000);
        c.send(&flood);
        c.send(b"\r\nbody\r\n.\r\n");
        c.reply()
    });
    assert_eq!((reply.code, reply.text().as_str()), (552, "5.3.4 Message refused: a header section with more than 1000 fields"));
    // The content itself (24 MB, buffered as it must be to judge it) and no more.
    assert!(growth < BOUND_KIB, "24 MB of header fields grew the server by {growth} KiB");
    // Within the limits, the same plugin runs: it adds the missing Message-ID.
    let fields: String = (0..900).map(|i| format!("X-Field-{i}: {}\r\n", "v".repeat(80))).collect();
    assert_eq!(c.send_mail("daniel@client.example", &["tyler@localhost"], &format!("{fields}\r\nbody\r\n")).code, 250);
    let stored = server.mailbox("tyler");
    assert_eq!(stored.len(), 1, "only the message within the limits is stored");
    assert!(stored[0].contains("\nMessage-ID: <"), "xusr ran on the message within the limits");

    // Limits raised past what the plugin's memory takes: the header is measured against the
    // plugin's memory (a quarter of memory_limit) before it is copied, and the message is
    // refused rather than the plugin failing and being skipped.
    let setup =
        Setup { users: vec!["tyler".into()], smtp: "[mime]\nmax_header_size = \"16MiB\"\nmax_header_fields = 100000\n".into(), ..Setup::default() };
    let server = Server::start_with(setup.plugin("xusr", Some("memory_limit = \"16MiB\"\n")));
    let mut c = server.connect();
    c.greet();
    c.expect("XUSR", 250);
    let folded = vec!["v".repeat(100); 25].join("\r\n "); // 2.5 KB, in lines under 998 octets
    let fields: String = (0..2000).map(|i| format!("X-Field-{i}: {folded}\r\n")).collect();
    let reply = c.send_mail("daniel@client.example", &["tyler@localhost"], &format!("{fields}\r\nbody\r\n"));
    assert_eq!((reply.code, reply.text().as_str()), (552, "5.3.4 Message header too large for the filter xusr"));
    assert!(server.mailbox("tyler").is_empty());
}

fn host_hog(mode: &str, extra: &str) -> Server {
    let toml = format!("call_timeout = \"5s\"\nmemory_limit = \"32MiB\"\n{extra}[config]\nmode = \"{mode}\"\n");
    Server::start_with(Setup { users: vec!["tyler".into()], ..Setup::default() }.plugin("host-hog", Some(&toml)))
}

/// A plugin's key-value store used to take up to 100,000 values of 64 KiB (6.5 GB) of the
/// server's memory. Now it holds at most the plugin's `kv_limit` (16 MiB by default): the
/// plugin (host-hog in `kv` mode, which tries to store 2,000 values of 64 KiB and says how
/// far it got) is told the store is full, in every session, and the server stays small.
#[test]
fn a_plugin_store_holds_at_most_its_limit() {
    let server = host_hog("kv", "");
    let baseline = server.rss_kib();
    for _ in 0..3 {
        let mut c = server.connect();
        c.greet();
        let reply = c.command("MAIL FROM:<daniel@client.example>");
        assert_eq!(reply.code, 550);
        assert!(reply.text().contains("stored 255: store full (16777216 octets, kv_limit)"), "{}", reply.text());
    }
    let growth = server.rss_kib().saturating_sub(baseline);
    assert!(growth < BOUND_KIB, "a full plugin store grew the server by {growth} KiB");
    // The operator's own limit.
    let server = host_hog("kv", "kv_limit = \"1MiB\"\n");
    let mut c = server.connect();
    c.greet();
    assert!(c.command("MAIL FROM:<daniel@client.example>").text().contains("stored 15: store full (1048576 octets, kv_limit)"));
}

/// A plugin that takes WASI streams without end used to fill wasmtime's resource table (a
/// million entries) in host memory; now the 1,025th traps, and the trap is an ordinary
/// plugin failure.
#[test]
fn a_plugin_holds_at_most_1024_resources() {
    let server = host_hog("resources", "");
    let baseline = server.rss_kib();
    let mut c = server.connect();
    c.greet();
    // host-hog is fail-open: the trap skips it and MAIL goes on.
    c.expect("MAIL FROM:<daniel@client.example>", 250);
    assert!(server.logged(|l| l.contains("plugin failed") && l.contains("\"kind\":\"trap\"") && l.contains("resource table has no free keys")));
    let growth = server.rss_kib().saturating_sub(baseline);
    assert!(growth < BOUND_KIB, "WASI resources grew the server by {growth} KiB");
}

/// 400,000 header changes from `on-data`: refused as invalid (at most 100); what the runtime
/// copied out of the plugin to find that out is bounded by the plugin's memory.
#[test]
fn header_changes_past_the_bound_are_an_invalid_answer() {
    let server = host_hog("changes", "");
    let baseline = server.rss_kib();
    let mut c = server.connect();
    c.greet();
    assert_eq!(c.send_mail("daniel@client.example", &["tyler@localhost"], "Subject: hi\r\n\r\nbody\r\n").code, 250);
    assert!(server.logged(|l| l.contains("plugin failed") && l.contains("more than 100 header changes (400000)")));
    let growth = server.rss_kib().saturating_sub(baseline);
    assert!(growth < BOUND_KIB, "400,000 header changes grew the server by {growth} KiB");
    let stored = server.mailbox("tyler");
    assert_eq!(stored.len(), 1, "fail-open: the message went on without the plugin's changes");
}
