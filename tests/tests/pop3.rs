//! POP3 end to end: the RFC 1939 example session replayed over TCP, Python's poplib, fetchmail,
//! the maildrop lock, deletions only at QUIT (and durable), wrong passwords, wrong states.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

use wasmail_tests::{Server, Setup};

/// A server with users hunt and tyler (password "secret") and three messages for hunt.
fn with_mail() -> Server {
    let server = Server::start_with(Setup { users: vec!["hunt".into(), "tyler".into()], ..Setup::default() });
    let mut c = server.connect();
    c.greet();
    for (i, body) in ["first message", ".a line with a leading dot", "third"].iter().enumerate() {
        let reply = c.send_mail("daniel@client.example", &["hunt@localhost"], &format!("Subject: message {}\r\n\r\n.{body}\r\n", i + 1));
        assert_eq!(reply.code, 250);
    }
    server.wait_for_queue();
    server
}

struct Pop {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Pop {
    fn connect(server: &Server) -> Pop {
        let stream = TcpStream::connect(server.pop3.expect("a POP3 listener")).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut pop = Pop { reader: BufReader::new(stream.try_clone().unwrap()), writer: stream };
        let greeting = pop.line();
        assert!(greeting.starts_with("+OK ") && greeting.contains("POP3 server ready"), "{greeting}");
        pop
    }

    fn line(&mut self) -> String {
        let mut line = String::new();
        self.reader.read_line(&mut line).unwrap();
        assert!(line.ends_with("\r\n"), "{line:?}");
        line.trim_end_matches("\r\n").to_string()
    }

    fn cmd(&mut self, command: &str) -> String {
        self.writer.write_all(format!("{command}\r\n").as_bytes()).unwrap();
        self.line()
    }

    /// The raw body of a multi-line response, up to (not including) the `.` line, with its
    /// octets as sent.
    fn multiline(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        loop {
            let mut line = Vec::new();
            self.reader.read_until(b'\n', &mut line).unwrap();
            assert!(line.ends_with(b"\r\n"));
            if line == b".\r\n" {
                return out;
            }
            out.extend_from_slice(&line);
        }
    }

    fn login(server: &Server, user: &str) -> Pop {
        let mut pop = Pop::connect(server);
        assert!(pop.cmd(&format!("USER {user}")).starts_with("+OK"));
        let reply = pop.cmd("PASS secret");
        assert!(reply.starts_with("+OK"), "{reply}");
        pop
    }
}

/// Undoes dot-stuffing of a multi-line body.
fn unstuff(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for line in body.split_inclusive(|&b| b == b'\n') {
        out.extend_from_slice(line.strip_prefix(b".").unwrap_or(line));
    }
    out
}

#[test]
fn the_rfc_1939_session() {
    let server = with_mail();
    let mut pop = Pop::connect(&server);
    assert_eq!(pop.cmd("USER hunt"), "+OK User name accepted, password please");
    let pass = pop.cmd("PASS secret");
    assert!(pass.starts_with("+OK 3 messages in maildrop"), "{pass}");
    let stat = pop.cmd("STAT");
    let parts: Vec<&str> = stat.split(' ').collect();
    assert_eq!((parts[0], parts[1]), ("+OK", "3"), "{stat}");
    let total: usize = parts[2].parse().unwrap();
    // RETR sends exactly the octets STAT and LIST count (before dot-stuffing).
    let mut sizes = Vec::new();
    for n in 1..=3 {
        let list = pop.cmd(&format!("LIST {n}"));
        let size: usize = list.split(' ').nth(2).unwrap().parse().unwrap();
        sizes.push(size);
    }
    assert_eq!(sizes.iter().sum::<usize>(), total);
    assert_eq!(pop.cmd("RETR 1"), format!("+OK {} octets", sizes[0]));
    let first = unstuff(&pop.multiline());
    assert_eq!(first.len(), sizes[0]);
    assert!(String::from_utf8_lossy(&first).contains("Subject: message 1\r\n"));
    assert_eq!(pop.cmd("DELE 1"), "+OK message 1 deleted");
    assert_eq!(pop.cmd("RETR 2"), format!("+OK {} octets", sizes[1]));
    let second = pop.multiline();
    // The stored line ".a line..." (sent as "..a line..." over SMTP) is stuffed again by POP3.
    assert!(String::from_utf8_lossy(&second).contains("\r\n..a line with a leading dot\r\n"), "{}", String::from_utf8_lossy(&second));
    assert_eq!(unstuff(&second).len(), sizes[1]);
    assert_eq!(pop.cmd("DELE 3"), "+OK message 3 deleted");
    assert_eq!(pop.cmd("RETR 1"), "-ERR message already deleted");
    assert_eq!(pop.cmd("LIST 9"), "-ERR no such message");
    let quit = pop.cmd("QUIT");
    assert!(quit.starts_with("+OK ") && quit.ends_with("POP3 server signing off (1 messages left)"), "{quit}");
    let left = server.mailbox("hunt");
    assert_eq!(left.len(), 1);
    assert!(left[0].contains("Subject: message 2"));
}

#[test]
fn python_poplib_session() {
    let server = with_mail();
    let pop3 = server.pop3.unwrap();
    let output = Command::new("python3")
        .arg(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("clients/poplib_session.py"))
        .args([pop3.ip().to_string(), pop3.port().to_string(), "hunt".into(), "secret".into()])
        .output()
        .expect("python3 is needed for this test");
    assert!(output.status.success(), "{}\n{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
}

#[test]
fn fetchmail_downloads_a_mailbox_filled_over_smtp() {
    let server = Server::start_with(Setup { users: vec!["hunt".into()], ..Setup::default() });
    let mut c = server.connect();
    c.greet();
    for i in 0..1000 {
        assert_eq!(c.send_mail("daniel@client.example", &["hunt@localhost"], &format!("Subject: fetch {i}\r\n\r\nbody {i}\r\n")).code, 250);
    }
    server.wait_for_queue();
    let pop3 = server.pop3.unwrap();
    let out = server.dir.path().join("fetched");
    let rc = server.dir.path().join("fetchmailrc");
    std::fs::write(
        &rc,
        format!(
            "set no syslog\npoll {} service {} proto POP3 uidl\n  user hunt password secret is hunt here\n  keep sslproto ''\n  mda \"/bin/sh -c 'cat >> {}'\"\n",
            pop3.ip(),
            pop3.port(),
            out.display()
        ),
    )
    .unwrap();
    let mut perms = std::fs::metadata(&rc).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o600);
    std::fs::set_permissions(&rc, perms).unwrap();
    let fetch = || {
        Command::new("fetchmail")
            .args(["-f"])
            .arg(&rc)
            .args(["--idfile"])
            .arg(server.dir.path().join("fetchids"))
            .env("HOME", server.dir.path())
            .output()
            .expect("fetchmail (Debian package fetchmail) is needed for this test")
    };
    let first = fetch();
    let log = String::from_utf8_lossy(&first.stderr).into_owned() + &String::from_utf8_lossy(&first.stdout);
    assert!(first.status.success(), "{log}");
    let fetched = std::fs::read_to_string(&out).unwrap();
    for i in 0..1000 {
        assert!(fetched.contains(&format!("Subject: fetch {i}\n")), "message {i} missing: {log}");
    }
    // keep + UIDL: a second run finds nothing new (fetchmail exits 1 for "no mail").
    let second = fetch();
    assert_eq!(second.status.code(), Some(1), "{}", String::from_utf8_lossy(&second.stderr));
    assert_eq!(std::fs::read_to_string(&out).unwrap(), fetched);
    assert_eq!(server.mailbox("hunt").len(), 1000, "keep leaves the mail on the server");
}

#[test]
fn the_maildrop_is_locked_and_a_dropped_connection_deletes_nothing() {
    let server = with_mail();
    let mut first = Pop::login(&server, "hunt");
    let mut second = Pop::connect(&server);
    second.cmd("USER hunt");
    assert_eq!(second.cmd("PASS secret"), "-ERR [IN-USE] Maildrop already in use");
    // Another user is not affected.
    drop(Pop::login(&server, "tyler"));
    assert_eq!(first.cmd("DELE 1"), "+OK message 1 deleted");
    assert_eq!(first.cmd("DELE 2"), "+OK message 2 deleted");
    drop(first); // no QUIT: nothing is deleted, and the lock goes with the connection
    std::thread::sleep(Duration::from_millis(200));
    let mut again = Pop::login(&server, "hunt");
    assert!(again.cmd("STAT").starts_with("+OK 3 "));
    assert_eq!(again.cmd("DELE 2"), "+OK message 2 deleted");
    assert!(again.cmd("QUIT").ends_with("(2 messages left)"));
    // Deletions are durable: after a restart the maildrop still has two messages.
    let server = server.restarted();
    let mut pop = Pop::login(&server, "hunt");
    assert!(pop.cmd("STAT").starts_with("+OK 2 "));
}

#[test]
fn uids_are_stable_and_auth_plain_works() {
    let server = with_mail();
    let mut pop = Pop::login(&server, "hunt");
    assert_eq!(pop.cmd("UIDL"), "+OK unique-id listing follows");
    let uids = String::from_utf8(pop.multiline()).unwrap();
    pop.cmd("QUIT");
    // AUTH PLAIN with the response on its own line (RFC 5034), then inline.
    let mut pop = Pop::connect(&server);
    assert_eq!(pop.cmd("AUTH PLAIN"), "+ ");
    assert!(pop.cmd("AGh1bnQAc2VjcmV0").starts_with("+OK 3 messages"));
    pop.cmd("UIDL");
    assert_eq!(String::from_utf8(pop.multiline()).unwrap(), uids);
    pop.cmd("QUIT");
    let mut pop = Pop::connect(&server);
    assert!(pop.cmd("AUTH PLAIN AGh1bnQAc2VjcmV0").starts_with("+OK"));
    assert_eq!(pop.cmd("UIDL 2"), format!("+OK 2 {}", uids.lines().nth(1).unwrap().split(' ').nth(1).unwrap()));
}

#[test]
fn wrong_passwords_and_wrong_states_get_err() {
    let server = with_mail();
    let mut pop = Pop::connect(&server);
    assert!(pop.cmd("STAT").starts_with("-ERR "));
    assert!(pop.cmd("PASS secret").starts_with("-ERR "), "PASS before USER");
    assert!(pop.cmd("XYZZY").starts_with("-ERR unknown command"));
    assert!(pop.cmd(&"A".repeat(300)).starts_with("-ERR line too long"));
    for _ in 0..2 {
        pop.cmd("USER hunt");
        assert_eq!(pop.cmd("PASS wrong"), "-ERR [AUTH] Authentication failed");
    }
    pop.cmd("USER hunt");
    assert_eq!(pop.cmd("PASS wrong"), "-ERR [AUTH] Authentication failed");
    // The third failure closes the session.
    assert_eq!(pop.line(), "-ERR too many failed logins, closing");
    let mut rest = Vec::new();
    assert_eq!(pop.reader.read_to_end(&mut rest).unwrap(), 0);
    assert!(server.logged(|l| l.contains("\"login failed\"") && l.contains("\"protocol\":\"pop3\"")));
    // A logged-in session refuses USER again.
    let mut pop = Pop::login(&server, "hunt");
    assert_eq!(pop.cmd("USER tyler"), "-ERR already logged in");
    // PIPELINING (RFC 2449 6.6): several commands in one write, answered in order.
    pop.writer.write_all(b"NOOP\r\nSTAT\r\nLIST 1\r\n").unwrap();
    assert_eq!(pop.line(), "+OK");
    assert!(pop.line().starts_with("+OK 3 "));
    assert!(pop.line().starts_with("+OK 1 "));
    let capa = pop.cmd("CAPA");
    assert_eq!(capa, "+OK Capability list follows");
    let list = String::from_utf8(pop.multiline()).unwrap();
    assert!(list.contains("UIDL\r\n") && list.contains("SASL PLAIN\r\n") && !list.contains("STLS") && !list.contains("APOP"));
}

#[test]
fn getmail_retrieves_with_a_uidl_memory() {
    let server = with_mail();
    let pop3 = server.pop3.unwrap();
    let dir = server.dir.path().join("getmail");
    let maildir = dir.join("Maildir");
    // getmail will not deliver as root: then it delivers as nobody, into a folder nobody may
    // write.
    let root = String::from_utf8(Command::new("id").arg("-u").output().unwrap().stdout).unwrap().trim() == "0";
    for sub in ["", "tmp", "new", "cur"] {
        let path = maildir.join(sub);
        std::fs::create_dir_all(&path).unwrap();
        if root {
            std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
        }
    }
    let deliver_as = if root { "user = nobody\n" } else { "" };
    std::fs::write(
        dir.join("getmailrc"),
        format!(
            "[retriever]\ntype = SimplePOP3Retriever\nserver = {}\nport = {}\nusername = hunt\npassword = secret\n\n\
             [destination]\ntype = Maildir\npath = {}/\n{deliver_as}\n[options]\nread_all = false\ndelete = false\nverbose = 0\n",
            pop3.ip(),
            pop3.port(),
            maildir.display()
        ),
    )
    .unwrap();
    let getmail = || {
        Command::new("getmail")
            .arg("--getmaildir")
            .arg(&dir)
            .arg("--rcfile")
            .arg("getmailrc")
            .output()
            .expect("getmail (Debian package getmail6) is needed for this test")
    };
    let run = getmail();
    assert!(run.status.success(), "{}{}", String::from_utf8_lossy(&run.stdout), String::from_utf8_lossy(&run.stderr));
    let fetched = wasmail_tests::read_maildir(&maildir);
    assert_eq!(fetched.len(), 3);
    assert!(fetched.iter().any(|m| m.contains("Subject: message 2")));
    // read_all = false: the second run remembers the UIDs and takes nothing twice.
    let run = getmail();
    assert!(run.status.success());
    assert_eq!(wasmail_tests::read_maildir(&maildir).len(), 3);
}

#[test]
fn an_idle_session_is_closed_without_update() {
    let server = Server::start_with(Setup { users: vec!["hunt".into()], ..Setup::default() }.pop3_idle("1s"));
    let mut c = server.connect();
    c.greet();
    assert_eq!(c.send_mail("a@client.example", &["hunt@localhost"], "Subject: x\r\n\r\nx\r\n").code, 250);
    server.wait_for_queue();
    let mut pop = Pop::login(&server, "hunt");
    assert_eq!(pop.cmd("DELE 1"), "+OK message 1 deleted");
    assert_eq!(pop.line(), "-ERR idle for too long, closing");
    let mut again = Pop::login(&server, "hunt");
    assert!(again.cmd("STAT").starts_with("+OK 1 "), "the DELE of the timed-out session did not happen");
}
