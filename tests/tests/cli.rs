//! The command line: configuration errors (file, line, key, exit code 2), users, and running
//! on the embedded defaults with no configuration file.

use std::process::Command;

use wasmail_tests::{user_add, wasmail_bin, Server};

fn serve_with(config: &str) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, config).unwrap();
    let output = Command::new(wasmail_bin()).args(["serve", "--config"]).arg(&path).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).replace(&dir.path().display().to_string(), "DIR");
    (output.status.code().unwrap_or(-1), stderr)
}

#[test]
fn bad_config_names_file_line_and_key_and_exits_2() {
    let (code, stderr) = serve_with("hostname = \"mx.test\"\n\n[smtp]\nmax_message_size = \"lots\"\n");
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.starts_with("wasmail: DIR/bad.toml:4: key `smtp.max_message_size`: "), "{stderr}");

    let (code, stderr) = serve_with("[smtp]\nlisten = [\"127.0.0.1:2525\"]\nvrfy = \"yes\"\n");
    assert_eq!(code, 2);
    assert!(stderr.contains("bad.toml:3: key `smtp.vrfy`"), "{stderr}");

    let (code, stderr) = serve_with("domans = [\"localhost\"]\n");
    assert_eq!(code, 2);
    assert!(stderr.contains("bad.toml:1") && stderr.contains("unknown field `domans`"), "{stderr}");

    let (code, stderr) = serve_with("domains = []\n");
    assert_eq!(code, 2);
    assert!(stderr.contains("bad.toml:1: key `domains`: at least one local domain"), "{stderr}");

    let (code, stderr) = serve_with("[smtp\n");
    assert_eq!(code, 2);
    assert!(stderr.contains("bad.toml:1"), "{stderr}");

    let output = Command::new(wasmail_bin()).args(["serve", "--config", "/nonexistent/wasmail.toml"]).output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("/nonexistent/wasmail.toml: cannot read"));
}

#[test]
fn bad_aliases_or_users_file_names_the_line_and_exits_2() {
    let (code, stderr) = {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("aliases"), "postmaster: root\nbackup: |/usr/bin/backup\n").unwrap();
        std::fs::write(dir.path().join("wasmail.toml"), "[smtp]\nlisten = [\"127.0.0.1:0\"]\n").unwrap();
        let output = Command::new(wasmail_bin()).args(["serve", "--config"]).arg(dir.path().join("wasmail.toml")).output().unwrap();
        (output.status.code(), String::from_utf8_lossy(&output.stderr).into_owned())
    };
    assert_eq!(code, Some(2));
    assert!(stderr.contains("aliases:2: backup: pipes to commands"), "{stderr}");

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("users"), "tyler:hunter2\n").unwrap();
    std::fs::write(dir.path().join("wasmail.toml"), "[smtp]\nlisten = [\"127.0.0.1:0\"]\n").unwrap();
    let output = Command::new(wasmail_bin()).args(["serve", "--config"]).arg(dir.path().join("wasmail.toml")).output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("users:1: not a PHC hash string"));
}

#[test]
fn user_add_and_list() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("wasmail.toml");
    std::fs::write(&config, "users_file = \"users\"\n").unwrap();
    for name in ["tyler", "Hunt"] {
        assert!(user_add(&config, name, "correct horse"));
    }
    let users = std::fs::read_to_string(dir.path().join("users")).unwrap();
    assert!(users.lines().all(|l| l.contains(":$argon2id$")), "{users}");
    assert!(!users.contains("correct horse"));
    let list = Command::new(wasmail_bin()).args(["user", "list", "--config"]).arg(&config).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&list.stdout), "hunt\ntyler\n");
    // A duplicate and a name that is not a safe folder name are refused.
    assert!(!user_add(&config, "tyler", "x"));
    assert!(!user_add(&config, "../etc", "x"));
}

#[test]
fn user_passwd_and_del_take_effect_on_a_running_server() {
    let server = Server::start_with(wasmail_tests::Setup { users: vec!["tyler".into(), "hunt".into()], ..Default::default() });
    let config = server.dir.path().join("wasmail.toml");
    let login = |password: &str| {
        use std::io::{BufRead, BufReader, Write};
        let stream = std::net::TcpStream::connect(server.imap.unwrap()).unwrap();
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut writer = stream;
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        writer.write_all(format!("a LOGIN tyler \"{password}\"\r\n").as_bytes()).unwrap();
        line.clear();
        reader.read_line(&mut line).unwrap();
        line.starts_with("a OK")
    };
    assert!(login("secret"));
    let mut passwd = Command::new(wasmail_bin())
        .args(["user", "passwd", "TYLER", "--password-stdin", "--config"])
        .arg(&config)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut passwd.stdin.take().unwrap(), b"new password\n").unwrap();
    assert!(passwd.wait().unwrap().success());
    assert!(!login("secret") && login("new password"));
    let del = Command::new(wasmail_bin()).args(["user", "del", "tyler", "--config"]).arg(&config).output().unwrap();
    assert!(del.status.success(), "{}", String::from_utf8_lossy(&del.stderr));
    assert!(!login("new password"));
    let list = Command::new(wasmail_bin()).args(["user", "list", "--config"]).arg(&config).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&list.stdout), "hunt\n");
    // Mail for a removed user is refused; a second del names the problem.
    let mut c = server.connect();
    c.greet();
    c.expect("MAIL FROM:<a@client.test>", 250);
    c.expect("RCPT TO:<tyler@localhost>", 550);
    let again = Command::new(wasmail_bin()).args(["user", "del", "tyler", "--config"]).arg(&config).output().unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("no user tyler"));
}

#[test]
fn users_mode_only_users_receive_and_new_users_take_effect_without_restart() {
    let server = Server::start_with(wasmail_tests::Setup { users: vec!["tyler".into()], ..Default::default() });
    let mut c = server.connect();
    c.greet();
    c.expect("MAIL FROM:<a@client.test>", 250);
    c.expect("RCPT TO:<tyler@localhost>", 250);
    c.expect("RCPT TO:<hunt@localhost>", 550);
    assert!(user_add(&server.dir.path().join("wasmail.toml"), "hunt", "pw"));
    c.expect("RCPT TO:<hunt@localhost>", 250);
}

#[test]
fn serve_without_a_config_file_uses_the_embedded_defaults() {
    let dir = tempfile::tempdir().unwrap();
    // Port 0 instead of 2525 so that the test never collides with a running server.
    let server = Server::spawn(dir, &["serve", "--smtp-listen", "127.0.0.1:0", "--pop3-listen", "127.0.0.1:0", "--imap-listen", "127.0.0.1:0"]);
    let mut c = server.connect();
    c.greet();
    assert_eq!(c.send_mail("a@client.test", &["anyone@localhost"], "Subject: defaults\r\n\r\nhi\r\n").code, 250);
    // Data lands in ./wasmail-data, development mode gives anyone a mailbox (delivery runs
    // from the queue, after the reply).
    let maildir = server.dir.path().join("wasmail-data/mail/anyone");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while wasmail_tests::read_maildir(&maildir).is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert_eq!(wasmail_tests::read_maildir(&maildir).len(), 1);
    assert!(server.logged(|l| l.contains("development mode")));
    c.expect("MAIL FROM:<a@client.test>", 250);
    c.expect("RCPT TO:<x@example.test>", 550);
}
