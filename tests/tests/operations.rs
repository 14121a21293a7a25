//! Operations: reload (SIGHUP and `wasmail reload`) under load, a broken set kept out,
//! graceful shutdown, and the Prometheus endpoint read by a real parser.

use std::collections::HashMap;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustix::process::Signal;
use wasmail_tests::{plugin_path, python, wasmail_bin, Client, Server, Setup};

/// `wasmail reload --config` for `server`, which waits for the server's answer. Returns
/// whether the reload took; the command's exit code, its message and the log agree.
fn reload(server: &Server) -> bool {
    let (done, failed) = (server.log_count("reloaded: new sessions"), server.log_count("reload failed"));
    let out = Command::new(wasmail_bin()).args(["reload", "--config"]).arg(server.config_path()).output().expect("wasmail reload");
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    if out.status.success() {
        assert!(stdout.contains("reloaded: new sessions use the new set"), "{stdout}");
        assert_eq!(server.log_count("reloaded: new sessions"), done + 1, "the server logged it before answering");
        true
    } else {
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains("the reload failed, the server runs on its previous set: "), "{stderr}");
        assert_eq!(server.log_count("reload failed"), failed + 1, "the server logged it before answering");
        false
    }
}

/// Runs `ask` (which asks for a reload) and waits for the outcome.
fn reload_with(server: &Server, ask: impl FnOnce()) -> bool {
    let (done, failed) = (server.log_count("reloaded: new sessions"), server.log_count("reload failed"));
    ask();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if server.log_count("reloaded: new sessions") > done {
            return true;
        }
        if server.log_count("reload failed") > failed {
            return false;
        }
        assert!(Instant::now() < deadline, "no reload outcome logged");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The EHLO keywords a new session is offered.
fn ehlo_keywords(server: &Server) -> Vec<String> {
    let mut c = server.connect();
    assert_eq!(c.reply().code, 220);
    let reply = c.expect("EHLO client.test", 250);
    c.expect("QUIT", 221);
    reply.lines[1..].iter().map(|l| l.split_whitespace().next().unwrap_or("").to_string()).collect()
}

fn install(server: &Server, plugin: &str) {
    std::fs::create_dir_all(server.plugins_dir()).unwrap();
    std::fs::copy(plugin_path(plugin), server.plugins_dir().join(format!("{plugin}.wasm"))).unwrap();
}

#[test]
fn reload_under_load_adds_and_removes_a_plugin_for_new_sessions_only() {
    let server = Arc::new(Server::start_with(Setup { users: vec!["tyler".into()], ..Setup::default() }));
    assert!(!ehlo_keywords(&server).contains(&"XUSR".to_string()));

    // Clients send the whole time, a new session per message; each records its reply codes.
    let stop = Arc::new(AtomicBool::new(false));
    let senders: Vec<_> = (0..3)
        .map(|n| {
            let (server, stop) = (Arc::clone(&server), Arc::clone(&stop));
            std::thread::spawn(move || {
                let mut sent = 0;
                while !stop.load(Ordering::Relaxed) {
                    let mut c = server.connect();
                    c.greet();
                    let reply = c.send_mail("load@client.test", &["tyler@localhost"], &format!("Subject: load {n}-{sent}\r\n\r\nbody\r\n"));
                    assert_eq!(reply.code, 250, "{reply:?}");
                    c.expect("QUIT", 221);
                    sent += 1;
                }
                sent
            })
        })
        .collect();

    // A session that starts before the plugin arrives keeps the set it started with.
    let mut before = server.connect();
    before.greet();
    std::thread::sleep(Duration::from_millis(300));
    install(&server, "xusr");
    assert!(reload(&server), "the reload with xusr added took");
    assert!(ehlo_keywords(&server).contains(&"XUSR".to_string()), "a new session sees the new keyword");
    let old = before.expect("EHLO client.test", 250);
    assert!(!old.lines.iter().any(|l| l.starts_with("XUSR")), "a session in progress keeps its set: {old:?}");
    assert_eq!(before.command("XUSR").code, 500, "and does not get the new verb");
    let mut during = server.connect();
    during.greet();
    assert_eq!(during.command("XUSR").code, 250, "the new verb works in a new session");
    std::thread::sleep(Duration::from_millis(300));

    std::fs::remove_file(server.plugins_dir().join("xusr.wasm")).unwrap();
    assert!(reload(&server), "the reload with xusr removed took");
    assert!(!ehlo_keywords(&server).contains(&"XUSR".to_string()), "the keyword is gone for new sessions");
    // The session that started with xusr still has it.
    assert_eq!(during.command("XUSR").code, 250, "a session keeps the plugins it started with");
    during.expect("QUIT", 221);
    before.expect("QUIT", 221);
    std::thread::sleep(Duration::from_millis(300));

    stop.store(true, Ordering::Relaxed);
    let sent: usize = senders.into_iter().map(|t| t.join().expect("no sender failed")).sum();
    assert!(sent >= 6, "the load ran through both reloads ({sent} messages)");
    assert_eq!(server.mailbox("tyler").len(), sent, "every message answered 250 was delivered");
}

#[test]
fn a_broken_set_on_reload_keeps_the_old_one() {
    let setup = Setup { plugins: vec![(plugin_path("xusr"), "xusr".into(), None)], ..Setup::default() };
    let server = Server::start_with(setup);
    assert!(ehlo_keywords(&server).contains(&"XUSR".to_string()));

    // Not a component: the reload fails, naming the file (in the log and in what
    // `wasmail reload` says); the old set stays.
    std::fs::write(server.plugins_dir().join("broken.wasm"), b"\0asm but not really").unwrap();
    install(&server, "onex");
    assert!(!reload(&server));
    assert!(server.logged(|l| l.contains("reload failed") && l.contains("broken.wasm")));
    let out = Command::new(wasmail_bin()).args(["reload", "--config"]).arg(server.config_path()).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("broken.wasm"), "{out:?}");
    let keywords = ehlo_keywords(&server);
    assert!(keywords.contains(&"XUSR".to_string()) && !keywords.contains(&"ONEX".to_string()), "not half-reloaded: {keywords:?}");
    std::fs::remove_file(server.plugins_dir().join("broken.wasm")).unwrap();

    // Two plugins claiming one keyword: refused as a whole.
    std::fs::copy(plugin_path("xusr"), server.plugins_dir().join("xusr-again.wasm")).unwrap();
    assert!(!reload(&server));
    assert!(server.logged(|l| l.contains("reload failed") && l.contains("both claim the EHLO keyword XUSR")));
    assert!(!ehlo_keywords(&server).contains(&"ONEX".to_string()));
    std::fs::remove_file(server.plugins_dir().join("xusr-again.wasm")).unwrap();

    // A config that does not parse: refused, naming the file and line.
    let config = std::fs::read_to_string(server.config_path()).unwrap();
    std::fs::write(server.config_path(), format!("{config}\n[smtp\n")).unwrap();
    // `wasmail reload` reads the config too (for the data directory), and says so first.
    let out = Command::new(wasmail_bin()).args(["reload", "--config"]).arg(server.config_path()).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("wasmail.toml:"), "{out:?}");
    assert!(!reload_with(&server, || server.signal(Signal::HUP)));
    assert!(server.logged(|l| l.contains("reload failed") && l.contains("wasmail.toml")));
    std::fs::write(server.config_path(), &config).unwrap();

    // Fixed: the next reload takes all of it.
    assert!(reload(&server));
    let keywords = ehlo_keywords(&server);
    assert!(keywords.contains(&"XUSR".to_string()) && keywords.contains(&"ONEX".to_string()), "{keywords:?}");
    // A listener change is reported as needing a restart; the old listener keeps serving.
    std::fs::write(server.config_path(), config.replace("[smtp]\n", "[smtp]\nsubmission_listen = [\"127.0.0.1:0\"]\n")).unwrap();
    assert!(reload(&server));
    assert!(server.logged(|l| l.contains("only a restart applies them") && l.contains("smtp.submission_listen")));
    assert!(ehlo_keywords(&server).contains(&"XUSR".to_string()));
}

#[test]
fn sigterm_during_data_answers_421_and_loses_no_acknowledged_message() {
    let setup = Setup { users: vec!["tyler".into()], top: "[server]\nshutdown_grace = \"1s\"\n".into(), ..Setup::default() };
    let mut server = Server::start_with(setup);
    let mut c = server.connect();
    c.greet();
    let reply = c.send_mail("a@client.test", &["tyler@localhost"], "Subject: acknowledged\r\n\r\nkept\r\n");
    assert_eq!(reply.code, 250);
    c.expect("MAIL FROM:<a@client.test>", 250);
    c.expect("RCPT TO:<tyler@localhost>", 250);
    c.expect("DATA", 354);
    c.send("Subject: cut off\r\n\r\nhalf a message");
    // POP3 and IMAP sessions in progress hear about it too.
    let mut pop3 = Client::connect(server.pop3.unwrap());
    let mut imap = Client::connect(server.imap.unwrap());
    assert!(pop3.read_line().unwrap().starts_with("+OK"));
    assert!(imap.read_line().unwrap().starts_with("* OK"));
    // One POP3 client in the middle of AUTH, waiting at the continuation.
    let mut pop3_auth = Client::connect(server.pop3.unwrap());
    assert!(pop3_auth.read_line().unwrap().starts_with("+OK"));
    pop3_auth.send("AUTH PLAIN\r\n");
    assert!(pop3_auth.read_line().unwrap().starts_with("+ "));

    let signalled = Instant::now();
    server.signal(Signal::TERM);
    // Draining: no new connections.
    std::thread::sleep(Duration::from_millis(200));
    assert!(std::net::TcpStream::connect(server.smtp).is_err(), "the listener closes at once");
    // After the grace period the session is told, in the middle of DATA.
    let closing = c.reply();
    assert_eq!(closing.code, 421, "{closing:?}");
    assert!(closing.text().starts_with("4.3.2 "), "{closing:?}");
    assert!(signalled.elapsed() >= Duration::from_millis(900), "not before the grace period: {:?}", signalled.elapsed());
    assert!(c.is_closed(Duration::from_secs(5)));
    let pop3_text = pop3.read_to_close(Duration::from_secs(10));
    assert!(pop3_text.contains("-ERR [SYS/TEMP] server shutting down"), "{pop3_text:?}");
    let pop3_auth_text = pop3_auth.read_to_close(Duration::from_secs(10));
    assert!(pop3_auth_text.contains("-ERR [SYS/TEMP] server shutting down"), "{pop3_auth_text:?}");
    let imap_text = imap.read_to_close(Duration::from_secs(10));
    assert!(imap_text.contains("* BYE Server shutting down"), "{imap_text:?}");
    let status = server.wait_exit(Duration::from_secs(20)).expect("wasmail exited");
    assert!(status.success(), "exit status {status:?}");
    assert!(!server.data_dir().join("wasmail.pid").exists(), "the pid file is removed");

    // The acknowledged message is there (delivered, or in the queue and delivered on the next
    // start); the one cut off is not; no Maildir file is left half-written in tmp/.
    let server = server.restarted();
    let mail = server.mailbox("tyler");
    assert_eq!(mail.len(), 1, "{mail:?}");
    assert!(mail[0].contains("Subject: acknowledged"));
    let tmp = server.data_dir().join("mail/tyler/tmp");
    let leftovers: Vec<_> = std::fs::read_dir(&tmp).map(|d| d.filter_map(Result::ok).map(|e| e.path()).collect()).unwrap_or_default();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn metrics_parse_with_prometheus_client_and_plugin_counters_move() {
    let setup = Setup {
        users: vec!["tyler".into()],
        top: "[metrics]\nlisten = \"127.0.0.1:0\"\n".into(),
        plugins: vec![(plugin_path("xusr"), "xusr".into(), None), (plugin_path("panic"), "panic".into(), Some("fail = \"open\"\n".into()))],
        ..Setup::default()
    };
    let server = Server::start_with(setup);
    let port = server.port("metrics");
    let first = scrape(port);
    for i in 0..3 {
        let mut c = server.connect();
        c.greet();
        c.expect("XUSR", 250);
        // The panic plugin traps in mail-from; fail = "open" lets the message through.
        let reply = c.send_mail("a@client.test", &["tyler@localhost"], &format!("Subject: {i}\r\n\r\nbody\r\n"));
        assert_eq!(reply.code, 250);
        c.expect("QUIT", 221);
    }
    server.wait_for_queue();
    let second = scrape(port);
    let moved = |name: &str, labels: &[(&str, &str)]| value(&second, name, labels) - value(&first, name, labels);
    assert_eq!(moved("wasmail_plugin_calls_total", &[("plugin", "xusr"), ("hook", "command")]), 3.0);
    assert_eq!(moved("wasmail_plugin_call_seconds_count", &[("plugin", "xusr"), ("hook", "command")]), 3.0);
    assert_eq!(moved("wasmail_plugin_call_seconds_bucket", &[("plugin", "xusr"), ("hook", "command"), ("le", "+Inf")]), 3.0);
    assert_eq!(moved("wasmail_plugin_calls_total", &[("plugin", "panic"), ("hook", "mail-from")]), 3.0);
    assert_eq!(moved("wasmail_plugin_failures_total", &[("plugin", "panic"), ("hook", "mail-from"), ("kind", "trap")]), 3.0);
    assert_eq!(moved("wasmail_connections_total", &[("protocol", "smtp")]), 3.0);
    assert_eq!(moved("wasmail_smtp_transactions_total", &[("result", "accepted"), ("class", "2xx")]), 3.0);
    assert!(moved("wasmail_smtp_received_bytes_total", &[]) > 0.0);
    assert_eq!(moved("wasmail_deliveries_total", &[("result", "delivered"), ("transport", "local")]), 3.0);
    assert_eq!(value(&second, "wasmail_queue_messages", &[]), 0.0);
    assert_eq!(value(&second, "wasmail_plugins_loaded", &[]), 2.0);
    // A POP3 login counts too.
    let mut pop3 = Client::connect(server.pop3.unwrap());
    assert!(pop3.read_line().unwrap().starts_with("+OK"));
    pop3.send("USER tyler\r\nPASS secret\r\nQUIT\r\n");
    let session = pop3.read_to_close(Duration::from_secs(10));
    assert_eq!(session.matches("+OK").count(), 3, "{session}");
    let third = scrape(port);
    assert_eq!(value(&third, "wasmail_logins_total", &[("protocol", "pop3"), ("result", "success")]), 1.0);

    // A plugin dropped into the running server's directory, then `wasmail reload`: its
    // keyword is in the next EHLO and its calls show in /metrics.
    install(&server, "onex");
    assert!(reload(&server));
    assert!(ehlo_keywords(&server).contains(&"ONEX".to_string()));
    let mut c = server.connect();
    c.greet();
    c.expect("ONEX", 250);
    c.expect("QUIT", 221);
    let fourth = scrape(port);
    assert_eq!(value(&fourth, "wasmail_plugin_calls_total", &[("plugin", "onex"), ("hook", "command")]), 1.0);
    assert_eq!(value(&fourth, "wasmail_plugins_loaded", &[]), 3.0);
    assert_eq!(value(&fourth, "wasmail_reloads_total", &[("result", "success")]), 1.0);
}

/// The samples of `/metrics` as prometheus_client's parser reads them: name, labels, value.
type Samples = Vec<(String, HashMap<String, String>, f64)>;

fn scrape(port: u16) -> Samples {
    let out = python("metrics_parse.py", &[format!("http://127.0.0.1:{port}/metrics").into()]);
    let samples: Vec<serde_json::Value> = serde_json::from_slice(&out).expect("JSON from metrics_parse.py");
    samples
        .into_iter()
        .map(|s| {
            let labels = s["labels"].as_object().unwrap().iter().map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string())).collect();
            (s["name"].as_str().unwrap().to_string(), labels, s["value"].as_f64().unwrap())
        })
        .collect()
}

/// The value of the sample `name` whose labels include `labels` (0 if there is none).
fn value(samples: &Samples, name: &str, labels: &[(&str, &str)]) -> f64 {
    samples.iter().filter(|(n, l, _)| n == name && labels.iter().all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))).map(|(_, _, v)| *v).sum()
}

#[test]
fn every_line_of_a_session_carries_its_id_and_plugin_lines_the_plugin() {
    let setup = Setup { plugins: vec![(plugin_path("panic"), "panic".into(), Some("fail = \"open\"\n".into()))], ..Setup::default() };
    let server = Server::start_with(setup);
    let mut c = server.connect();
    c.greet();
    // A transaction logs a line; the panic plugin's stderr and its failure log inside the call.
    assert_eq!(c.send_mail("a@client.test", &["hunt@localhost"], "Subject: x\r\n\r\nx\r\n").code, 250);
    c.expect("QUIT", 221);
    assert!(server.logged(|l| l.contains("\"stderr: the panic plugin panics")));
    let lines: Vec<serde_json::Value> = server.log().iter().map(|l| serde_json::from_str(l).expect("every line is JSON")).collect();
    let stderr = lines.iter().find(|l| l["message"].as_str().unwrap_or("").starts_with("stderr: the panic plugin")).unwrap();
    let session = stderr["session"].as_str().expect("a plugin's line carries the session").to_string();
    assert_eq!(stderr["plugin"], "panic");
    let of_session: Vec<&serde_json::Value> = lines.iter().filter(|l| l["session"] == session.as_str()).collect();
    let failed = of_session.iter().find(|l| l["message"].as_str().unwrap_or("").contains("plugin failed")).expect("the failure, in the session");
    assert!(failed["plugin"] == "panic" && failed["hook"] == "mail-from", "{failed}");
    assert!(of_session.iter().any(|l| l["queue_id"].is_string()), "the transaction's line is in the session: {of_session:#?}");
    assert!(
        of_session
            .iter()
            .filter(|l| !l["message"].as_str().unwrap_or("").starts_with("stderr: "))
            .all(|l| l["protocol"] == "smtp" && l["timestamp"].is_string()),
        "{of_session:#?}"
    );

    // `--log-format text` overrides the file: human-readable lines.
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(wasmail_bin())
        .args(["serve", "--log-format", "text", "--smtp-listen", "127.0.0.1:0", "--pop3-listen", "127.0.0.1:0", "--imap-listen", "127.0.0.1:0"])
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .current_dir(dir.path())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = rustix::process::Pid::from_raw(out.id() as i32).unwrap();
    let started = Instant::now();
    while !std::fs::exists(dir.path().join("data/wasmail.pid")).unwrap() {
        assert!(started.elapsed() < Duration::from_secs(20), "the text-logging server did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    rustix::process::kill_process(pid, Signal::TERM).unwrap();
    let out = out.wait_with_output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stderr);
    let started_line = text.lines().find(|l| l.contains("wasmail started")).expect("a start line");
    assert!(!started_line.starts_with('{') && started_line.contains("INFO"), "{started_line}");
}

#[test]
fn check_config_loads_everything_serve_would_and_names_what_is_wrong() {
    let setup = Setup { plugins: vec![(plugin_path("xusr"), "xusr".into(), None)], users: vec!["tyler".into()], ..Setup::default() };
    let server = Server::start_with(setup);
    let check = || Command::new(wasmail_bin()).args(["check-config", "--config"]).arg(server.config_path()).output().unwrap();
    let kv_before = inode(&server.data_dir().join("plugins/xusr/kv.log"));
    let out = check();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(text.contains("users:    1 in") && text.contains("plugins:  1 from") && text.contains("EHLO XUSR"), "{text}");
    // It does not touch the running server's plugin state (a store opened anew is rewritten).
    assert_eq!(inode(&server.data_dir().join("plugins/xusr/kv.log")), kv_before);

    install(&server, "onex");
    std::fs::copy(plugin_path("onex"), server.plugins_dir().join("onex-again.wasm")).unwrap();
    let out = check();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("both claim the EHLO keyword ONEX"), "{out:?}");
    std::fs::remove_file(server.plugins_dir().join("onex-again.wasm")).unwrap();

    std::fs::write(server.plugins_dir().join("onex.toml"), "order = \"first\"\n").unwrap();
    let out = check();
    assert_eq!(out.status.code(), Some(2));
    let error = String::from_utf8_lossy(&out.stderr);
    assert!(error.contains("onex.toml:1") && error.contains("order"), "{error}");
    std::fs::remove_file(server.plugins_dir().join("onex.toml")).unwrap();

    assert!(check().status.success());
}

fn inode(path: &std::path::Path) -> u64 {
    std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
}

#[test]
fn the_systemd_unit_verifies_and_its_commands_parse() {
    let unit = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../contrib/wasmail.service")).unwrap();
    for setting in [
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
        "ReadWritePaths=/var/lib/wasmail",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "AmbientCapabilities=CAP_NET_BIND_SERVICE",
        "CapabilityBoundingSet=CAP_NET_BIND_SERVICE",
    ] {
        assert!(unit.lines().any(|l| l == setting), "{setting}");
    }
    // systemd's own checker, on the unit with the binary where this build put it.
    let dir = tempfile::tempdir().unwrap();
    let bin = wasmail_bin();
    std::fs::write(dir.path().join("wasmail.service"), unit.replace("/usr/local/bin/wasmail", bin.to_str().unwrap())).unwrap();
    let out = Command::new("systemd-analyze").args(["verify", "--man=no"]).arg(dir.path().join("wasmail.service")).output().expect("systemd-analyze");
    assert!(out.status.success() && out.stderr.is_empty(), "{}", String::from_utf8_lossy(&out.stderr));
    // Each wasmail command line of the unit is one the CLI accepts.
    for line in unit.lines().filter(|l| l.starts_with("Exec") && l.contains("/usr/local/bin/wasmail ")) {
        let args: Vec<&str> = line.split_once("/usr/local/bin/wasmail ").unwrap().1.split_whitespace().collect();
        let out = Command::new(&bin).args(&args).arg("--help").output().unwrap();
        assert!(out.status.success(), "{line}: {}", String::from_utf8_lossy(&out.stderr));
    }
}

#[test]
fn a_second_signal_cuts_the_grace_period_short() {
    let mut server = Server::start_with(Setup { top: "[server]\nshutdown_grace = \"1h\"\n".into(), ..Setup::default() });
    let mut c = server.connect();
    c.greet();
    server.signal(Signal::INT);
    assert!(server.logged(|l| l.contains("shutting down: closing the listeners")));
    let signalled = Instant::now();
    server.signal(Signal::INT);
    let closing = c.reply();
    assert_eq!(closing.code, 421, "{closing:?}");
    assert!(signalled.elapsed() < Duration::from_secs(10));
    assert!(server.wait_exit(Duration::from_secs(20)).expect("exited").success());
}

#[test]
fn a_renewed_certificate_is_served_after_a_reload() {
    let server = Server::start_with(Setup { tls: true, ..Setup::default() });
    let port = server.port("imaps").to_string();
    let fingerprints = |cert: &std::path::Path| -> (String, String) {
        let out: serde_json::Value = serde_json::from_slice(&python("peer_cert.py", &[port.clone().into(), cert.to_path_buf()])).unwrap();
        (out["served"].as_str().unwrap().to_string(), out["file"].as_str().unwrap().to_string())
    };
    let (served, file) = fingerprints(&server.cert());
    assert_eq!(served, file, "the configured certificate is served");

    // Renewed: a new pair written beside, then moved over the old files, as certbot does.
    let renewed = server.dir.path().join("renewed");
    let made = Command::new(wasmail_bin()).args(["cert", "self-signed", "--name", "renewed.test", "--out"]).arg(&renewed).output().unwrap();
    assert!(made.status.success(), "{made:?}");
    std::fs::rename(renewed.join("cert.pem"), server.cert()).unwrap();
    std::fs::rename(renewed.join("key.pem"), server.dir.path().join("key.pem")).unwrap();
    assert_eq!(fingerprints(&server.cert()).0, served, "not before the reload");
    assert!(reload(&server));
    let (now_served, now_file) = fingerprints(&server.cert());
    assert_eq!(now_served, now_file, "the renewed certificate is served");
    assert_ne!(now_served, served);
}

/// A key under its older name (`[queue] nameservers`) still works: the server logs a warning
/// naming the new key, and check-config prints it.
#[test]
fn an_old_key_name_is_read_with_a_warning_in_the_log_and_from_check_config() {
    let server = Server::start_with(Setup { smtp: "[queue]\nnameservers = [\"127.0.0.1:53\"]\n".into(), ..Setup::default() });
    assert!(server.logged(|l| l.contains("queue.nameservers is now dns.nameservers") && l.contains("WARN")), "{:?}", server.log());
    let out = Command::new(wasmail_bin()).args(["check-config", "--config"]).arg(server.config_path()).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(text.lines().any(|l| l.starts_with("warning:  ") && l.contains("wasmail.toml:") && l.contains("dns.nameservers")), "{text}");
}
