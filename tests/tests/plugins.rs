//! End-to-end plugin tests over TCP, with the components that scripts/build-plugins.sh built:
//! the example plugins (VERB, ONEX, XUSR, greylisting), claimed parameters, the sandbox test
//! plugins under both failure policies, and load errors.

use std::process::Command;
use std::time::{Duration, Instant};

use wasmail_tests::{plugin_path, wasmail_bin, Client, Server, Setup};

fn examples() -> Setup {
    Setup::default().plugin("verb", None).plugin("onex", None).plugin("xusr", None)
}

#[test]
fn ehlo_lists_the_plugin_keywords() {
    let server = Server::start_with(examples());
    let mut c = server.connect();
    c.reply();
    let ehlo = c.expect("EHLO client.test", 250);
    for keyword in ["VERB", "ONEX", "XUSR"] {
        assert!(ehlo.lines.iter().any(|l| l == keyword), "{keyword} missing from {:?}", ehlo.lines);
    }
    // The core keywords are still there, and HELP still last of them.
    assert!(ehlo.lines.contains(&"PIPELINING".to_string()));
    // Without plugins, none of them.
    let plain = Server::start();
    let mut c = plain.connect();
    c.reply();
    assert!(!c.expect("EHLO client.test", 250).lines.iter().any(|l| l == "VERB"));
    assert_eq!(c.expect("VERB", 500).text(), "5.5.2 Command unrecognized");
}

#[test]
fn verb_makes_replies_verbose() {
    let server = Server::start_with(examples());
    let mut c = server.connect();
    c.greet();
    // Before VERB, replies are the plain ones.
    assert_eq!(c.expect("MAIL FROM:<a@client.test>", 250).lines, ["2.1.0 Sender ok"]);
    c.expect("RSET", 250);
    assert_eq!(c.expect("VERB", 250).text(), "2.0.0 Verbose mode");
    assert!(c.expect("VERB now", 501).text().starts_with("5.5.4 "));
    let mail = c.expect("MAIL FROM:<a@client.test>", 250);
    // ONEX and XUSR are modes that were not switched on: their hooks do not run.
    assert_eq!(mail.lines, ["2.1.0 MAIL: the server accepted it (250)", "2.1.0 plugins run: none", "2.1.0 Sender ok"]);
    let refused = c.expect("RCPT TO:<x@elsewhere.example>", 550);
    assert_eq!(refused.lines[0], "5.7.1 RCPT: the server refused it (550)");
    assert_eq!(refused.lines.last().unwrap(), "5.7.1 <x@elsewhere.example>: Relay access denied");
    c.expect("RCPT TO:<tyler@localhost>", 250);
    c.expect("DATA", 354);
    c.send("Subject: verbose\r\n\r\nhi\r\n.\r\n");
    let data = c.reply();
    assert_eq!(data.code, 250);
    assert_eq!(data.lines[1], "2.0.0 plugins run: none");
    assert!(data.lines[2].ends_with("Message accepted for delivery"));
    // Once XUSR and ONEX are on, their hooks run and VERB names them.
    c.expect("XUSR", 250);
    c.expect("ONEX", 250);
    assert_eq!(c.expect("MAIL FROM:<a@client.test>", 250).lines[1], "2.1.0 plugins run: onex: continue");
    c.expect("RCPT TO:<tyler@localhost>", 250);
    c.expect("DATA", 354);
    c.send("Subject: verbose too\r\n\r\nhi\r\n.\r\n");
    assert_eq!(c.reply().lines[1], "2.0.0 plugins run: xusr: continue");
    assert_eq!(server.mailbox("tyler").len(), 2);
}

#[test]
fn onex_allows_one_transaction() {
    let server = Server::start_with(examples());
    let mut c = server.connect();
    c.greet();
    // Without ONEX, any number of transactions.
    for _ in 0..2 {
        assert_eq!(c.send_mail("a@client.test", &["tyler@localhost"], "Subject: before\r\n\r\nx\r\n").code, 250);
    }
    assert_eq!(c.expect("ONEX", 250).text(), "2.0.0 Only one transaction");
    assert_eq!(c.send_mail("a@client.test", &["tyler@localhost"], "Subject: the one\r\n\r\nx\r\n").code, 250);
    assert_eq!(c.expect("MAIL FROM:<a@client.test>", 503).text(), "5.5.1 Only one transaction per session after ONEX");
    assert_eq!(server.mailbox("tyler").len(), 3);
    // Another session is not limited.
    let mut other = server.connect();
    other.greet();
    assert_eq!(other.send_mail("a@client.test", &["tyler@localhost"], "Subject: other\r\n\r\nx\r\n").code, 250);
}

#[test]
fn xusr_adds_date_and_message_id() {
    let server = Server::start_with(examples());
    let mut c = server.connect();
    c.greet();
    // Without XUSR nothing is added.
    assert_eq!(c.send_mail("a@client.test", &["tyler@localhost"], "Subject: relayed\r\n\r\nx\r\n").code, 250);
    assert_eq!(c.expect("XUSR", 250).text(), "2.0.0 Initial submission");
    assert_eq!(c.send_mail("a@client.test", &["tyler@localhost"], "Subject: submitted\r\n\r\nx\r\n").code, 250);
    let kept = "Subject: complete\r\nDate: Mon, 1 Jan 2024 00:00:00 +0000\r\nMessage-ID: <mine@client.test>\r\n\r\nx\r\n";
    assert_eq!(c.send_mail("a@client.test", &["tyler@localhost"], kept).code, 250);
    let mail = server.mailbox("tyler");
    let relayed = mail.iter().find(|m| m.contains("Subject: relayed")).unwrap();
    assert!(!relayed.contains("\nDate:") && !relayed.contains("\nMessage-ID:"), "{relayed}");
    let submitted = mail.iter().find(|m| m.contains("Subject: submitted")).unwrap();
    let date = submitted.lines().find_map(|l| l.strip_prefix("Date: ")).expect("Date added");
    // RFC 5322 3.3: `Sun, 29 Nov 2026 19:45:24 +0000`.
    assert!(date.len() == 31 && date.ends_with(" +0000") && date.as_bytes()[3] == b',', "{date}");
    let id = submitted.lines().find_map(|l| l.strip_prefix("Message-ID: ")).expect("Message-ID added");
    assert!(id.starts_with('<') && id.ends_with("@mx.test>"), "{id}");
    let complete = mail.iter().find(|m| m.contains("Subject: complete")).unwrap();
    assert_eq!(complete.matches("Date:").count(), 1);
    assert!(complete.contains("Message-ID: <mine@client.test>"));
}

#[test]
fn greylisting_defers_then_accepts_and_remembers_across_restarts() {
    let toml = "enabled = true\n[config]\ndelay = \"2\"\n";
    let setup = Setup::default().plugin("greylist", Some(toml));
    let mut server = Server::start_with(setup);
    let mut c = server.connect();
    c.greet();
    c.expect("MAIL FROM:<sender@client.test>", 250);
    let first = c.expect("RCPT TO:<tyler@localhost>", 450);
    assert!(first.text().starts_with("4.7.1 Greylisted, please try again in "), "{first:?}");
    // An immediate retry is still too early; another recipient is a new triple.
    c.expect("RCPT TO:<tyler@localhost>", 450);
    c.expect("RCPT TO:<hunt@localhost>", 450);
    c.expect("QUIT", 221);

    // The plugin's store persists in the data directory: restart the server.
    server.kill9();
    let dir = std::mem::replace(&mut server.dir, tempfile::tempdir().unwrap());
    let config = dir.path().join("wasmail.toml");
    let server = Server::spawn(dir, &["serve", "--config", config.to_str().unwrap()]);
    std::thread::sleep(Duration::from_millis(2100));
    let mut c = server.connect();
    c.greet();
    c.expect("MAIL FROM:<sender@client.test>", 250);
    c.expect("RCPT TO:<tyler@localhost>", 250);
    // A different sender is greylisted on its own.
    c.expect("RSET", 250);
    c.expect("MAIL FROM:<other@client.test>", 250);
    c.expect("RCPT TO:<tyler@localhost>", 450);
}

#[test]
fn claimed_parameters_reach_their_plugin_instead_of_555() {
    let plain = Server::start();
    let mut c = plain.connect();
    c.greet();
    assert_eq!(c.expect("MAIL FROM:<a@client.test> XTRACE=on", 555).text(), "5.5.4 Unsupported parameter XTRACE");

    let server = Server::start_with(Setup::default().plugin("policy", None));
    let mut c = server.connect();
    c.greet();
    assert_eq!(c.expect("MAIL FROM:<a@client.test> XTRACE=reject", 550).text(), "5.7.1 XTRACE says no");
    c.expect("MAIL FROM:<a@client.test> XTRACE=on", 250);
    assert_eq!(c.expect("RCPT TO:<tyler@localhost> XPRIO=defer", 451).text(), "4.7.0 XPRIO says later for 127.0.0.1");
    c.expect("RCPT TO:<tyler@localhost> XPRIO=high", 250);
    // Parameters no plugin claims are still refused.
    assert!(c.expect("RCPT TO:<hunt@localhost> XOTHER=1", 555).text().contains("XOTHER"));
}

#[test]
fn connect_and_helo_hooks_can_refuse() {
    let server = Server::start_with(Setup::default().plugin("policy", None));
    let mut c = server.connect();
    c.reply();
    assert_eq!(c.expect("HELO refuse.test", 550).text(), "5.7.1 That name is refused");
    // Refused HELO means no greeting: MAIL is still out of sequence.
    c.expect("MAIL FROM:<a@client.test>", 503);
    c.expect("EHLO client.test", 250);
    c.expect("MAIL FROM:<a@client.test>", 250);

    let server = Server::start_with(Setup::default().plugin("policy", Some("[config]\nrefuse_connect = \"yes\"\n")));
    let mut c = server.connect();
    let refused = c.reply();
    assert_eq!((refused.code, refused.text()), (554, "5.7.1 127.0.0.1 is not welcome here".to_string()));
    assert!(c.is_closed(Duration::from_secs(5)));
}

/// A session that sends one message; returns the replies to MAIL and to the end of data
/// (None when MAIL was refused).
fn try_message(server: &Server, subject: &str) -> (u16, Option<u16>) {
    let mut c = server.connect();
    c.greet();
    let mail = c.command("MAIL FROM:<a@client.test>");
    if mail.code != 250 {
        return (mail.code, None);
    }
    c.expect("RCPT TO:<tyler@localhost>", 250);
    c.expect("DATA", 354);
    c.send(format!("Subject: {subject}\r\n\r\nx\r\n.\r\n"));
    (mail.code, Some(c.reply().code))
}

fn misbehaving(name: &str, policy: &str) -> Server {
    let toml = format!("fail = \"{policy}\"\ncall_timeout = \"100ms\"\nmemory_limit = \"16MiB\"\n");
    Server::start_with(Setup::default().plugin(name, Some(&toml)))
}

#[test]
fn misbehaving_plugins_fail_open() {
    for (name, kind) in [("loop", "timeout"), ("memory-hog", "memory"), ("panic", "trap")] {
        let server = misbehaving(name, "open");
        let started = Instant::now();
        // The hook is skipped: every message is accepted and stored, in several sessions.
        for i in 0..3 {
            assert_eq!(try_message(&server, &format!("{name} {i}")), (250, Some(250)), "{name}");
        }
        assert_eq!(server.mailbox("tyler").len(), 3, "{name}");
        assert!(started.elapsed() < Duration::from_secs(20), "{name} took {:?}", started.elapsed());
        let log = server.log();
        let failure = log.iter().find(|l| l.contains("plugin failed")).unwrap_or_else(|| panic!("{name}: no failure logged"));
        assert!(failure.contains(&format!("\"plugin\":\"{name}\"")) && failure.contains(&format!("\"kind\":\"{kind}\"")), "{failure}");
    }
    // What a plugin writes to stderr (here, the panic message) reaches the log, tagged.
    let server = misbehaving("panic", "open");
    try_message(&server, "stderr");
    let log = server.log();
    assert!(
        log.iter().any(|l| l.contains("stderr: the panic plugin panics on MAIL FROM:<a@client.test>") && l.contains("\"plugin\":\"panic\"")),
        "{log:#?}"
    );
}

#[test]
fn misbehaving_plugins_fail_closed() {
    for name in ["loop", "memory-hog", "panic"] {
        let server = misbehaving(name, "closed");
        // MAIL is deferred, so the client keeps its message and tries later: nothing lost.
        let mut c = server.connect();
        c.greet();
        assert_eq!(c.expect("MAIL FROM:<a@client.test>", 451).text(), "4.3.0 Local error in processing, try again later");
        // The same session and other sessions go on being served.
        c.expect("NOOP", 250);
        let mut other = server.connect();
        other.greet();
        other.expect("NOOP", 250);
        assert!(server.mailbox("tyler").is_empty());
        assert!(server.logged(|l| l.contains("plugin failed") && l.contains(&format!("\"plugin\":\"{name}\""))), "{name}");
    }
}

#[test]
fn invalid_values_from_a_plugin_are_refused() {
    // Open: each invalid value is ignored, the message goes through without the bad header.
    let server = misbehaving("bad-reply", "open");
    let mut c = server.connect();
    c.greet();
    assert_eq!(c.send_mail("a@client.test", &["tyler@localhost"], "Subject: through\r\n\r\nx\r\n").code, 250);
    // A claimed verb is known even when its hook fails: 451 4.3.0, not "unrecognized".
    assert_eq!(c.expect("XBAD", 451).text(), "4.3.0 Local error in processing, try again later");
    let mail = server.mailbox("tyler");
    assert_eq!(mail.len(), 1);
    assert!(!mail[0].contains("Bad:Name"));
    assert!(!mail[0].contains("smuggled"));
    let invalid = server.log().iter().filter(|l| l.contains("\"kind\":\"invalid\"")).count();
    assert_eq!(invalid, 4, "mail-from, rcpt-to, data and command each logged once");
    // Each invalid answer dropped the instance: every hook ran on a fresh one.
    let calls: Vec<String> = server.log().into_iter().filter(|l| l.contains("of this instance")).collect();
    assert_eq!(calls.len(), 4, "{calls:?}");
    assert!(calls.iter().all(|l| l.contains("call 1 of this instance")), "{calls:?}");

    // Closed: each one defers.
    let server = misbehaving("bad-reply", "closed");
    let mut c = server.connect();
    c.greet();
    c.expect("MAIL FROM:<a@client.test>", 451);
    assert_eq!(c.expect("XBAD", 451).text(), "4.3.0 Local error in processing, try again later");
    assert!(server.mailbox("tyler").is_empty());
}

fn serve_with_plugins(files: &[(&str, &[u8])]) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    let plugins = dir.path().join("plugins");
    std::fs::create_dir(&plugins).unwrap();
    for (name, bytes) in files {
        std::fs::write(plugins.join(name), bytes).unwrap();
    }
    let output = Command::new(wasmail_bin())
        .args(["serve", "--smtp-listen", "127.0.0.1:0", "--pop3-listen", "127.0.0.1:0", "--imap-listen", "127.0.0.1:0", "--plugins"])
        .arg(&plugins)
        .current_dir(dir.path())
        .output()
        .unwrap();
    (output.status.code(), String::from_utf8_lossy(&output.stderr).into_owned())
}

#[test]
fn load_errors_are_clear() {
    let (code, stderr) = serve_with_plugins(&[("broken.wasm", b"\0asm this is not a component")]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("broken.wasm: not a valid WebAssembly component"), "{stderr}");

    let missing = std::fs::read(plugin_path("missing-import")).unwrap();
    let (code, stderr) = serve_with_plugins(&[("missing-import.wasm", &missing)]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("missing-import.wasm: cannot be linked") && stderr.contains("wasmail-test:missing/nowhere"), "{stderr}");

    let verb = std::fs::read(plugin_path("verb")).unwrap();
    let (code, stderr) = serve_with_plugins(&[("verb.wasm", &verb), ("verb2.wasm", &verb)]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("plugins verb and verb2 both claim the EHLO keyword VERB"), "{stderr}");

    let (code, stderr) = serve_with_plugins(&[("verb.wasm", &verb), ("verb.toml", b"order = 1\nfail = \"maybe\"\n")]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("verb.toml:2: key `fail`"), "{stderr}");

    // --plugins names a folder that must exist.
    let output = Command::new(wasmail_bin())
        .args([
            "serve",
            "--smtp-listen",
            "127.0.0.1:0",
            "--pop3-listen",
            "127.0.0.1:0",
            "--imap-listen",
            "127.0.0.1:0",
            "--plugins",
            "/nonexistent/plugins",
        ])
        .current_dir(tempfile::tempdir().unwrap().path())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("/nonexistent/plugins does not exist"));
}

#[test]
fn plugin_inspect_prints_the_manifest() {
    let output = Command::new(wasmail_bin()).args(["plugin", "inspect"]).arg(plugin_path("verb")).output().unwrap();
    assert!(output.status.success());
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.contains("name:          verb\n"), "{text}");
    assert!(text.contains("wit:           wasmail:plugin@0.1.1\n"), "{text}");
    assert!(text.contains("ehlo keywords: VERB\n"), "{text}");
    assert!(text.contains("verbs:         VERB\n"), "{text}");
    assert!(text.contains("hooks:         reply (once a verb was used)\n"), "{text}");
    let output = Command::new(wasmail_bin()).args(["plugin", "inspect"]).arg(plugin_path("policy")).output().unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.contains("mail params:   XTRACE\n") && text.contains("rcpt params:   XPRIO\n"), "{text}");
    // The greylist plugin ships disabled.
    let output = Command::new(wasmail_bin()).args(["plugin", "inspect"]).arg(plugin_path("greylist")).output().unwrap();
    assert!(String::from_utf8_lossy(&output.stdout).contains("enabled:       false\n"));
}

/// A component built against `wasmail:plugin@0.1.0` (xusr, kept as built before 0.1.1 added
/// `host.authentication`) loads and runs unchanged: its imports are a subset of what 0.1.1
/// offers and its exports are found by semver.
#[test]
fn a_plugin_built_against_wit_0_1_0_still_loads_and_runs() {
    let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/plugins/xusr-0.1.0.wasm");
    let output = Command::new(wasmail_bin()).args(["plugin", "inspect"]).arg(&fixture).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(String::from_utf8_lossy(&output.stdout).contains("wit:           wasmail:plugin@0.1.0\n"));
    let output = Command::new(wasmail_bin()).args(["plugin", "inspect"]).arg(plugin_path("xusr")).output().unwrap();
    assert!(String::from_utf8_lossy(&output.stdout).contains("wit:           wasmail:plugin@0.1.1\n"), "a new build targets 0.1.1");

    let mut setup = Setup::default();
    setup.plugins.push((fixture, "xusr".into(), None));
    let server = Server::start_with(setup);
    let mut c = server.connect();
    c.greet();
    assert!(c.expect("EHLO client.test", 250).text().contains("XUSR"));
    assert_eq!(c.expect("XUSR", 250).text(), "2.0.0 Initial submission");
    assert_eq!(c.send_mail("a@client.test", &["tyler@localhost"], "Subject: old plugin\r\n\r\nx\r\n").code, 250);
    let stored = server.mailbox("tyler");
    assert!(stored[0].contains("\nMessage-ID: <") && stored[0].contains("@mx.test>"), "its on-data ran: {}", stored[0]);
}

#[test]
fn a_plugin_session_costs_nothing_until_its_hook_runs() {
    // Sessions that never reach a hook still work with every example plugin loaded, and
    // many sessions at once do not exhaust the instance pool.
    let server = Server::start_with(examples().plugin("policy", None));
    let mut clients: Vec<Client> = (0..30).map(|_| server.connect()).collect();
    for c in &mut clients {
        c.greet();
        c.expect("VERB", 250);
        c.expect("MAIL FROM:<a@client.test>", 250);
    }
    for c in &mut clients {
        c.expect("QUIT", 221);
    }
}

/// The instance pool is a shared resource: when it is full, a session waits up to
/// `[plugins] pool_wait` for a slot and is then answered 451 4.3.2. It used to be skipped, as
/// if the plugin had failed open: filling the SMTP listeners turned every filter off.
#[test]
fn a_full_plugin_pool_is_waited_for_and_never_skips_a_plugin() {
    let setup = Setup { smtp: "[plugins]\nmax_instances = 2\npool_wait = \"3s\"\n".into(), ..Setup::default() };
    // greylist with no delay: its MAIL hook makes an instance the session keeps.
    let server = Server::start_with(setup.plugin("greylist", Some("[config]\ndelay = \"0\"\n")));
    let mut holders: Vec<Client> = (0..2).map(|_| server.connect()).collect();
    for c in &mut holders {
        c.greet();
        c.expect("MAIL FROM:<daniel@client.example>", 250);
    }
    let mut third = server.connect();
    third.greet();
    let started = Instant::now();
    let reply = third.command("MAIL FROM:<daniel@client.example>");
    assert_eq!((reply.code, reply.text().as_str()), (451, "4.3.2 Too busy to check this now, try again later"));
    assert!(started.elapsed() >= Duration::from_secs(3), "it waited pool_wait first");
    assert!(server.logged(|l| l.contains("plugin instance pool exhausted") && l.contains("greylist")));
    assert!(!server.log().iter().any(|l| l.contains("plugin failed")), "not logged as a plugin failure");
    // A session that ends gives its slot to the one waiting.
    third.send("MAIL FROM:<daniel@client.example>\r\n");
    let waits = || server.log().iter().filter(|l| l.contains("plugin instance pool full; waiting")).count();
    let deadline = Instant::now() + Duration::from_secs(30);
    while waits() < 2 {
        assert!(Instant::now() < deadline, "the second MAIL never waited for a slot");
        std::thread::sleep(Duration::from_millis(20));
    }
    holders.remove(0).expect("QUIT", 221);
    assert_eq!(third.reply().code, 250, "the waiting session got the slot");
    third.expect("RCPT TO:<tyler@localhost>", 250);
}
