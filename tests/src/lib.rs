//! Test harness: spawns the real `wasmail` binary on a free loopback port with a temporary
//! data directory, and speaks raw SMTP to it. Real clients (lettre, Python's smtplib, swaks)
//! are driven from the tests themselves; [`imap::Imap`] is a raw IMAP client.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub mod imap;

/// The `wasmail` binary built beside the test executables (`target/debug/wasmail`), or the
/// one named by `WASMAIL_BIN`.
pub fn wasmail_bin() -> PathBuf {
    if let Some(path) = std::env::var_os("WASMAIL_BIN") {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().expect("test executable path");
    // target/debug/deps/test-HASH -> target/debug/wasmail
    let bin = exe.parent().and_then(Path::parent).expect("target dir").join("wasmail");
    assert!(bin.exists(), "{} is missing: run `cargo build -p wasmail` before the tests", bin.display());
    bin
}

/// Runs `wasmail user add NAME --password-stdin --config CONFIG`; returns whether it succeeded.
pub fn user_add(config: &Path, name: &str, password: &str) -> bool {
    let mut add = Command::new(wasmail_bin())
        .args(["user", "add", name, "--password-stdin", "--config"])
        .arg(config)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn wasmail user add");
    add.stdin.take().unwrap().write_all(format!("{password}\n").as_bytes()).unwrap();
    add.wait().unwrap().success()
}

/// A running server and its temporary folder. Dropping it kills the server.
pub struct Server {
    child: Child,
    pub smtp: SocketAddr,
    /// The POP3 listener, if the server has one.
    pub pop3: Option<SocketAddr>,
    /// The IMAP listener, if the server has one.
    pub imap: Option<SocketAddr>,
    /// Every listener by the protocol its log line names (`smtp`, `submission`,
    /// `submissions`, `pop3`, `pop3s`, `imap`, `imaps`), the first of each.
    pub listeners: std::collections::HashMap<String, SocketAddr>,
    pub dir: tempfile::TempDir,
    /// The file the server's stderr (its log) goes to.
    log_path: PathBuf,
}

/// Options for [`Server::start_with`].
#[derive(Default, Clone)]
pub struct Setup {
    /// Extra top-level TOML keys (before any table).
    pub top: String,
    /// Extra keys for the `[smtp]` table.
    pub smtp: String,
    /// Contents of the aliases file.
    pub aliases: Option<String>,
    /// Users to add (password "secret") with `wasmail user add`.
    pub users: Vec<String>,
    /// Plugins to install: (component path, installed name, NAME.toml contents).
    pub plugins: Vec<(PathBuf, String, Option<String>)>,
    /// Local domains; empty means `localhost` and `example.test`.
    pub domains: Vec<String>,
    /// The SMTP listen address; None means `127.0.0.1:0` (a free port).
    pub listen: Option<String>,
    /// Extra keys for the `[pop3]` table.
    pub pop3: String,
    /// Extra keys for the `[imap]` table.
    pub imap: String,
    /// Keys for the `[auth]` table; empty means short penalty delays for tests.
    pub auth: String,
    /// A self-signed certificate (`wasmail cert self-signed`) and a listener of each TLS
    /// kind: submission, submissions, pop3s, imaps.
    pub tls: bool,
    /// Runs the server with this limit on the size of any file it writes, in KiB (`ulimit
    /// -f`, with SIGXFSZ ignored so that a write past it fails with EFBIG): a way to make
    /// one write fail — a large one — while small ones succeed.
    pub file_size_limit_kib: Option<u64>,
    /// `WASMAIL_FAILPOINT` for this start only (not for [`Server::restarted`]): the server
    /// aborts, as kill -9 would stop it, at the point of that name.
    pub failpoint: Option<String>,
}

/// Runs `tests/clients/SCRIPT` with python3 on `files` and returns what it printed (the
/// scripts print JSON); fails the test if it fails.
pub fn python(script: &str, files: &[PathBuf]) -> Vec<u8> {
    let output = Command::new("python3")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("clients").join(script))
        .args(files)
        .output()
        .expect("python3 is needed for this test");
    assert!(output.status.success(), "{script}: {}", String::from_utf8_lossy(&output.stderr));
    output.stdout
}

/// A helper process a test runs beside the server (a DNS server, an HTTPS policy host): it
/// prints `ready` once it listens; dropping this stops it.
pub struct Helper {
    child: Child,
}

impl Helper {
    /// Spawns `command` and waits for its `ready` line.
    pub fn start(mut command: Command) -> Helper {
        let program = format!("{command:?}");
        let mut child = command.stdout(Stdio::piped()).spawn().unwrap_or_else(|e| panic!("{program}: {e}"));
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line).expect("the helper's first line");
        assert_eq!(line.trim(), "ready", "{program} did not start");
        Helper { child }
    }
}

impl Drop for Helper {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A script of tests/clients.
pub fn client_script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("clients").join(name)
}

/// The test DNS server (tests/clients/dns_server.py) on a free port, answering from its own
/// table and `records` (JSON: name -> type -> values). Dropping it stops it.
pub struct DnsServer {
    _helper: Helper,
    pub port: u16,
    /// Holds the records file.
    _dir: tempfile::TempDir,
}

impl DnsServer {
    pub fn start(records: &serde_json::Value) -> DnsServer {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("records.json");
        std::fs::write(&file, records.to_string()).expect("write records");
        let port = free_port();
        let mut command = Command::new("python3");
        command.arg(client_script("dns_server.py")).arg(port.to_string()).arg(&file);
        DnsServer { _helper: Helper::start(command), port, _dir: dir }
    }
}

/// The message files in a Maildir folder's `new/`, sorted by name.
pub fn new_files(maildir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(maildir.join("new")).map(|d| d.map(|e| e.unwrap().path()).collect()).unwrap_or_default();
    files.sort();
    files
}

/// A port that was free a moment ago (for a server that must listen where another expects it).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

impl Setup {
    /// With this POP3 `idle_timeout`.
    pub fn pop3_idle(mut self, idle: &str) -> Setup {
        self.pop3 = format!("idle_timeout = \"{idle}\"\n");
        self
    }

    /// Installs a built plugin (`target/plugins/NAME.wasm` or `target/test-plugins/NAME.wasm`)
    /// under its own name, with `toml` as its NAME.toml.
    pub fn plugin(mut self, name: &str, toml: Option<&str>) -> Setup {
        self.plugins.push((plugin_path(name), name.to_string(), toml.map(str::to_string)));
        self
    }
}

/// The workspace's `target/` folder.
pub fn target_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root").join("target")
}

/// A built plugin component: an example from `target/plugins` or a sandbox test plugin from
/// `target/test-plugins`.
pub fn plugin_path(name: &str) -> PathBuf {
    let dir = target_dir();
    for folder in ["plugins", "test-plugins"] {
        let path = dir.join(folder).join(format!("{name}.wasm"));
        if path.exists() {
            return path;
        }
    }
    panic!("plugin {name} is not built: run scripts/build-plugins.sh (scripts/test does)");
}

impl Server {
    pub fn start() -> Server {
        Server::start_with(Setup::default())
    }

    pub fn start_with(setup: Setup) -> Server {
        let dir = tempfile::tempdir().expect("temp dir");
        let config = dir.path().join("wasmail.toml");
        std::fs::write(
            &config,
            format!(
                "hostname = \"mx.test\"\ndata_dir = \"data\"\ndomains = [{}]\n{}\n[auth]\n{}\
                 [pop3]\nlisten = [\"127.0.0.1:0\"]\n{}[imap]\nlisten = [\"127.0.0.1:0\"]\n{}[smtp]\nlisten = [\"{}\"]\n{}\n",
                if setup.domains.is_empty() {
                    "\"localhost\", \"example.test\"".to_string()
                } else {
                    setup.domains.iter().map(|d| format!("\"{d}\"")).collect::<Vec<_>>().join(", ")
                },
                setup.top,
                if setup.auth.is_empty() { "failure_delay = \"100ms\"\nfailure_delay_max = \"400ms\"\n".to_string() } else { setup.auth.clone() },
                setup.pop3 + if setup.tls { "tls_listen = [\"127.0.0.1:0\"]\n" } else { "" },
                setup.imap + if setup.tls { "tls_listen = [\"127.0.0.1:0\"]\n" } else { "" },
                setup.listen.as_deref().unwrap_or("127.0.0.1:0"),
                setup.smtp + if setup.tls { "submission_listen = [\"127.0.0.1:0\"]\nsubmissions_listen = [\"127.0.0.1:0\"]\n" } else { "" }
            ),
        )
        .expect("write config");
        if !setup.plugins.is_empty() {
            let plugins = dir.path().join("plugins");
            std::fs::create_dir_all(&plugins).expect("plugin dir");
            for (source, name, toml) in &setup.plugins {
                std::fs::copy(source, plugins.join(format!("{name}.wasm"))).expect("copy plugin");
                if let Some(toml) = toml {
                    std::fs::write(plugins.join(format!("{name}.toml")), toml).expect("write plugin toml");
                }
            }
        }
        if setup.tls {
            let made = Command::new(wasmail_bin())
                .args(["cert", "self-signed", "--config"])
                .arg(&config)
                .args(["--name", "mx.test", "--name", "localhost", "--name", "127.0.0.1"])
                .output()
                .expect("wasmail cert self-signed");
            assert!(made.status.success(), "wasmail cert self-signed: {}", String::from_utf8_lossy(&made.stderr));
        }
        if let Some(aliases) = &setup.aliases {
            std::fs::write(dir.path().join("aliases"), aliases).expect("write aliases");
        }
        for user in &setup.users {
            assert!(user_add(&config, user, "secret"), "wasmail user add {user}");
        }
        let args = ["serve", "--config", config.to_str().unwrap()];
        if let Some(point) = &setup.failpoint {
            let mut command = Command::new(wasmail_bin());
            command.args(args).env("WASMAIL_FAILPOINT", point);
            return Server::spawn_command(dir, command);
        }
        match setup.file_size_limit_kib {
            None => Server::spawn(dir, &args),
            Some(kib) => {
                // An ignored signal stays ignored across exec.
                let mut command = Command::new("bash");
                command.arg("-c").arg(format!("trap '' XFSZ; ulimit -f {kib}; exec \"$0\" \"$@\"")).arg(wasmail_bin()).args(args);
                Server::spawn_command(dir, command)
            }
        }
    }

    /// Spawns `wasmail ARGS` in `dir` and waits until it has started.
    ///
    /// The server's stderr (its log) goes to a file in `dir`, not a pipe: a line the server
    /// wrote before it answered a client is in the file when the test reads the answer, so a
    /// test can check the log right after a reply without racing a reader thread.
    pub fn spawn(dir: tempfile::TempDir, args: &[&str]) -> Server {
        let mut command = Command::new(wasmail_bin());
        command.args(args);
        Server::spawn_command(dir, command)
    }

    /// Like [`Server::spawn`], with the command line given whole.
    pub fn spawn_command(dir: tempfile::TempDir, mut command: Command) -> Server {
        let log_path = dir.path().join("server.log");
        let log_file = std::fs::File::create(&log_path).expect("create server.log");
        // A test that panics while another thread still holds the server never drops it:
        // the kernel kills the server when the thread that started it ends, so no server
        // outlives its test. (A `Server` is made and used on its test's thread.)
        // SAFETY: the closure only makes one prctl call, which is async-signal-safe.
        unsafe {
            use std::os::unix::process::CommandExt as _;
            command.pre_exec(|| rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL)).map_err(std::io::Error::from));
        }
        let mut child = command
            .current_dir(dir.path())
            .env("WASMAIL_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .expect("spawn wasmail");
        // The listeners log first; "wasmail started" comes once the queue has been read, and
        // only then is the server sure to stay up.
        let deadline = Instant::now() + Duration::from_secs(30);
        let lines = loop {
            let lines = read_lines(&log_path);
            if lines.iter().any(|l| l.contains("wasmail started")) {
                break lines;
            }
            let exited = matches!(child.try_wait(), Ok(Some(_)));
            if exited || Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("wasmail did not start; log:\n{}", read_lines(&log_path).join("\n"));
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let mut listeners = std::collections::HashMap::new();
        for line in lines.iter().filter(|l| l.contains("\"listening\"")) {
            if let Some(addr) = json_field(line, "addr") {
                let protocol = json_field(line, "protocol").unwrap_or_default();
                listeners.entry(protocol).or_insert_with(|| addr.parse::<SocketAddr>().expect("listen address"));
            }
        }
        let smtp = *listeners.get("smtp").expect("smtp listener");
        let (pop3, imap) = (listeners.get("pop3").copied(), listeners.get("imap").copied());
        Server { child, smtp, pop3, imap, listeners, dir, log_path }
    }

    /// The server's log lines so far.
    pub fn log(&self) -> Vec<String> {
        read_lines(&self.log_path)
    }

    /// Whether a log line matches within 10 s: for lines the server writes after its reply
    /// (delivery, work in the background).
    pub fn logged(&self, matches: impl Fn(&str) -> bool) -> bool {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if self.log().iter().any(|l| matches(l)) {
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The messages in `user`'s mailbox, once the queue has delivered everything it holds
    /// (delivery runs after the 250), sorted by file name.
    pub fn mailbox(&self, user: &str) -> Vec<String> {
        self.wait_for_queue();
        self.mailbox_now(user)
    }

    /// The messages in `user`'s mailbox now, whatever the queue still holds.
    pub fn mailbox_now(&self, user: &str) -> Vec<String> {
        read_maildir(&self.dir.path().join("data/mail").join(user))
    }

    /// The queue entries (ids) in the spool now.
    pub fn queued(&self) -> Vec<String> {
        // What `wasmail queue list` shows: the spool's classic files and its log alike.
        let (ok, out, err) = self.queue_command(&["list"]);
        assert!(ok, "wasmail queue list failed: {err}");
        let mut ids: Vec<String> = out
            .lines()
            .filter(|l| !l.starts_with(' ') && !l.starts_with("--") && !l.starts_with("Mail queue is empty"))
            .filter_map(|l| l.split_whitespace().next().map(str::to_string))
            .collect();
        ids.sort();
        ids
    }

    /// Waits (up to 30 s) until the queue is empty: every message delivered or failed.
    pub fn wait_for_queue(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !self.queued().is_empty() {
            assert!(Instant::now() < deadline, "the queue did not empty: {:?}", self.queued());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The files of `user`'s `new/`, sorted by name, once the queue is empty.
    pub fn mailbox_files(&self, user: &str) -> Vec<PathBuf> {
        self.wait_for_queue();
        new_files(&self.dir.path().join("data/mail").join(user))
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The self-signed certificate of a server started with `Setup::tls`.
    pub fn cert(&self) -> PathBuf {
        self.dir.path().join("cert.pem")
    }

    /// The port of a listener by protocol (`submission`, `imaps`, ...).
    pub fn port(&self, protocol: &str) -> u16 {
        self.listeners.get(protocol).unwrap_or_else(|| panic!("no {protocol} listener")).port()
    }

    /// The config file the server was started with.
    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("wasmail.toml")
    }

    /// The plugin directory of the config (`plugins/` beside it; it may not exist yet).
    pub fn plugins_dir(&self) -> PathBuf {
        self.dir.path().join("plugins")
    }

    /// Sends a signal (`HUP`, `TERM`, `INT`) to the server.
    pub fn signal(&self, signal: rustix::process::Signal) {
        let pid = rustix::process::Pid::from_raw(self.child.id() as i32).expect("a pid");
        rustix::process::kill_process(pid, signal).expect("signal wasmail");
    }

    /// Waits up to `timeout` for the server to exit; its status, or None if it still runs.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for wasmail") {
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The number of log lines that contain `text`.
    pub fn log_count(&self, text: &str) -> usize {
        self.log().iter().filter(|l| l.contains(text)).count()
    }

    /// Runs `wasmail queue ARGS --config` on this server's config: (success, stdout, stderr).
    pub fn queue_command(&self, args: &[&str]) -> (bool, String, String) {
        let output = Command::new(wasmail_bin()).arg("queue").args(args).arg("--config").arg(self.config_path()).output().expect("wasmail queue");
        (output.status.success(), String::from_utf8_lossy(&output.stdout).into_owned(), String::from_utf8_lossy(&output.stderr).into_owned())
    }

    /// The server's resident memory now, in KiB (`VmRSS` in `/proc/PID/status`).
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).expect("/proc/PID/status");
        let line = status.lines().find(|l| l.starts_with("VmRSS:")).expect("VmRSS");
        line.split_whitespace().nth(1).and_then(|n| n.parse().ok()).expect("VmRSS in kB")
    }

    /// SIGKILL, as a crash would.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Stops the server (SIGKILL, if it still runs) and starts it again on the same data
    /// and config, as an operator would after a crash.
    pub fn restarted(mut self) -> Server {
        self.kill9();
        let dir = std::mem::replace(&mut self.dir, tempfile::tempdir().expect("temp dir"));
        let config = dir.path().join("wasmail.toml");
        Server::spawn(dir, &["serve", "--config", config.to_str().expect("UTF-8 path")])
    }

    pub fn connect(&self) -> Client {
        match TcpStream::connect(self.smtp) {
            Ok(stream) => Client::over(stream),
            Err(e) => panic!("connect to {}: {e}; server log:\n{}", self.smtp, self.log().join("\n")),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// A raw connection to `addr` whose reads wait at most `timeout`: its reader and its writer.
pub fn raw_connection(addr: SocketAddr, timeout: Duration) -> (BufReader<TcpStream>, TcpStream) {
    let stream = TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(timeout)).unwrap();
    (BufReader::new(stream.try_clone().unwrap()), stream)
}

/// One line from a raw connection, line end included; empty once the server closed it.
pub fn read_line(reader: &mut BufReader<TcpStream>) -> String {
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    line
}

/// The lines of a file written so far (an unfinished last line included).
fn read_lines(path: &Path) -> Vec<String> {
    let bytes = std::fs::read(path).unwrap_or_default();
    String::from_utf8_lossy(&bytes).lines().map(str::to_string).collect()
}

/// The contents of every message in a Maildir's `new/` and `cur/`, sorted by file name.
pub fn read_maildir(dir: &Path) -> Vec<String> {
    let mut files = Vec::new();
    for sub in ["new", "cur"] {
        if let Ok(entries) = std::fs::read_dir(dir.join(sub)) {
            files.extend(entries.map(|e| e.unwrap().path()));
        }
    }
    files.sort();
    files.iter().map(|f| String::from_utf8_lossy(&std::fs::read(f).unwrap()).into_owned()).collect()
}

/// The value of `"key":"value"` in a JSON log line (enough for the fields the tests read).
pub fn json_field(line: &str, key: &str) -> Option<String> {
    let pattern = format!("\"{key}\":\"");
    let start = line.find(&pattern)? + pattern.len();
    let end = line[start..].find('"')? + start;
    Some(line[start..end].to_string())
}

/// One SMTP reply as read from the wire.
#[derive(Debug, Clone)]
pub struct Reply {
    pub code: u16,
    /// The text of each line, after `code-` or `code `.
    pub lines: Vec<String>,
}

impl Reply {
    /// The whole reply text, lines joined with `\n`.
    pub fn text(&self) -> String {
        self.lines.join("\n")
    }
}

/// A raw SMTP client: bytes out exactly as given, replies parsed.
pub struct Client {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Client {
    pub fn connect(addr: SocketAddr) -> Client {
        Client::over(TcpStream::connect(addr).expect("connect"))
    }

    fn over(stream: TcpStream) -> Client {
        stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        Client { stream, buf: Vec::new() }
    }

    pub fn send(&mut self, bytes: impl AsRef<[u8]>) {
        self.stream.write_all(bytes.as_ref()).expect("send");
    }

    /// Reads one reply (all its lines). Panics on EOF or timeout.
    pub fn reply(&mut self) -> Reply {
        self.try_reply().expect("connection closed before a reply")
    }

    /// Reads one reply, or None if the server closed the connection first.
    pub fn try_reply(&mut self) -> Option<Reply> {
        let mut lines = Vec::new();
        loop {
            let line = self.line()?;
            assert!(line.len() >= 3, "short reply line {line:?}");
            let code: u16 = line[..3].parse().unwrap_or_else(|_| panic!("bad reply line {line:?}"));
            let sep = line.as_bytes().get(3).copied().unwrap_or(b' ');
            lines.push(line.get(4..).unwrap_or("").to_string());
            if sep == b' ' {
                return Some(Reply { code, lines });
            }
            assert_eq!(sep, b'-', "bad reply line {line:?}");
        }
    }

    fn line(&mut self) -> Option<String> {
        loop {
            if let Some(pos) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let line = String::from_utf8(self.buf[..pos].to_vec()).expect("UTF-8 reply");
                self.buf.drain(..pos + 2);
                return Some(line);
            }
            let mut chunk = [0u8; 4096];
            match self.stream.read(&mut chunk) {
                Ok(0) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return None,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => panic!("read: {e}"),
            }
        }
    }

    /// Sends one command line (CRLF added) and returns the reply.
    pub fn command(&mut self, line: &str) -> Reply {
        self.send(format!("{line}\r\n"));
        self.reply()
    }

    /// Sends a command and asserts the reply code; returns the reply.
    pub fn expect(&mut self, line: &str, code: u16) -> Reply {
        let reply = self.command(line);
        assert_eq!(reply.code, code, "{line:?} -> {reply:?}");
        reply
    }

    /// Reads the greeting and says EHLO.
    pub fn greet(&mut self) {
        assert_eq!(self.reply().code, 220);
        self.expect("EHLO client.test", 250);
    }

    /// One line (without CRLF) of whatever protocol, or None at EOF.
    pub fn read_line(&mut self) -> Option<String> {
        self.line()
    }

    /// Everything the server sends until it closes the connection (at most `wait`).
    pub fn read_to_close(&mut self, wait: Duration) -> String {
        self.stream.set_read_timeout(Some(wait)).unwrap();
        let mut text = std::mem::take(&mut self.buf);
        let _ = self.stream.read_to_end(&mut text);
        String::from_utf8_lossy(&text).into_owned()
    }

    /// Whether the server has closed the connection (reads until EOF, at most `wait`).
    pub fn is_closed(&mut self, wait: Duration) -> bool {
        self.stream.set_read_timeout(Some(wait)).unwrap();
        let deadline = Instant::now() + wait;
        let mut chunk = [0u8; 4096];
        while Instant::now() < deadline {
            match self.stream.read(&mut chunk) {
                Ok(0) => return true,
                Ok(_) => continue,
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
                Err(_) => return false,
            }
        }
        false
    }

    /// A whole transaction with DATA; returns the final reply.
    pub fn send_mail(&mut self, from: &str, to: &[&str], content: &str) -> Reply {
        self.expect(&format!("MAIL FROM:<{from}>"), 250);
        for rcpt in to {
            self.expect(&format!("RCPT TO:<{rcpt}>"), 250);
        }
        self.expect("DATA", 354);
        self.send(content);
        self.send(".\r\n");
        self.reply()
    }
}
