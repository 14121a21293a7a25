//! The `wasmail` command line.

use std::io::{BufRead, IsTerminal};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use wasmail::config::{Config, LogFormat};

#[derive(Parser)]
#[command(name = "wasmail", version, about = "A mail server extended by WebAssembly plugins")]
struct Cli {
    #[command(subcommand)]
    command: Commands,
}

#[derive(Subcommand)]
enum Commands {
    /// Run the server (SMTP on 127.0.0.1:2525 by default). SIGHUP reloads; SIGTERM and
    /// SIGINT shut down gracefully.
    Serve {
        #[command(flatten)]
        options: ServeOptions,
        /// Log lines as JSON objects or as text; overrides `log_format`.
        #[arg(long, value_enum)]
        log_format: Option<LogFormatArg>,
    },
    /// Check the configuration, users, aliases, certificate and every plugin (loaded and
    /// checked for conflicts) as `serve` would load them, without listening: run it before a
    /// reload. Exit code 0 when all is well, 2 otherwise.
    CheckConfig {
        #[command(flatten)]
        options: ServeOptions,
    },
    /// Ask the running server to load its configuration, users, aliases, certificate and
    /// plugins again (SIGHUP to the pid in DATA_DIR/wasmail.pid), and wait for the outcome:
    /// exit 0 if the new set was taken, 1 with the server's error if it kept the old one.
    Reload {
        /// TOML configuration file (for `data_dir`).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Overrides `data_dir`.
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Work with plugins.
    Plugin {
        #[command(subcommand)]
        command: PluginCommands,
    },
    /// Manage the users file.
    User {
        #[command(subcommand)]
        command: UserCommands,
    },
    /// TLS certificates.
    Cert {
        #[command(subcommand)]
        command: CertCommands,
    },
    /// Check SPF (RFC 7208) as the server does for mail received: like spfquery.
    Spf {
        #[command(subcommand)]
        command: SpfCommands,
    },
    /// SMTP TLS reporting (RFC 8460).
    Tls {
        #[command(subcommand)]
        command: TlsCommands,
    },
    /// DKIM keys.
    Dkim {
        #[command(subcommand)]
        command: DkimCommands,
    },
    /// Look at and act on the delivery queue (like mailq, postqueue -f, postsuper -d).
    Queue {
        /// TOML configuration file (for `data_dir`).
        #[arg(long, global = true)]
        config: Option<PathBuf>,
        /// Overrides `data_dir`.
        #[arg(long, global = true)]
        data_dir: Option<PathBuf>,
        #[command(subcommand)]
        command: QueueCommands,
    },
}

/// What `serve` and `check-config` load: the file and the command line's overrides.
#[derive(clap::Args, Clone)]
struct ServeOptions {
    /// TOML configuration file; without one the embedded defaults apply.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Overrides `data_dir`.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Overrides `smtp.listen` (repeat for several addresses; port 0 picks a free port).
    #[arg(long = "smtp-listen")]
    smtp_listen: Vec<SocketAddr>,
    /// Overrides `pop3.listen` (repeat for several).
    #[arg(long = "pop3-listen")]
    pop3_listen: Vec<SocketAddr>,
    /// Overrides `imap.listen` (repeat for several).
    #[arg(long = "imap-listen")]
    imap_listen: Vec<SocketAddr>,
    /// Overrides `domains` (repeat for several).
    #[arg(long = "domain")]
    domains: Vec<String>,
    /// Overrides `plugins.dir`: load every `*.wasm` in DIR (which must exist).
    #[arg(long)]
    plugins: Option<PathBuf>,
}

impl ServeOptions {
    /// Reads the file (or the defaults) and applies the overrides. A reload calls it again.
    fn load(&self) -> anyhow::Result<Config> {
        let mut config = Config::load(self.config.as_deref())?;
        if let Some(dir) = &self.data_dir {
            config.data_dir = dir.clone();
        }
        for (overriding, listen) in
            [(&self.smtp_listen, &mut config.smtp.listen), (&self.pop3_listen, &mut config.pop3.listen), (&self.imap_listen, &mut config.imap.listen)]
        {
            if !overriding.is_empty() {
                *listen = overriding.clone();
            }
        }
        if !self.domains.is_empty() {
            config.domains = self.domains.clone();
        }
        if let Some(dir) = &self.plugins {
            config.plugins.dir = dir.clone();
        }
        Ok(config)
    }
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum LogFormatArg {
    Json,
    Text,
}

#[derive(Subcommand)]
enum QueueCommands {
    /// List the queued messages and their recipients.
    List,
    /// Ask the running server to try every queued message now (or those for DOMAIN).
    Flush { domain: Option<String> },
    /// Remove a message from the queue without delivering it.
    Remove { id: String },
}

#[derive(Subcommand)]
enum PluginCommands {
    /// Print what a plugin adds: EHLO keywords, verbs, parameters, hooks, MIME types.
    Inspect {
        /// The plugin component (`NAME.wasm`; `NAME.toml` beside it is read too).
        file: PathBuf,
    },
    /// Measure the plugins of DIR: one session's instantiation of all of them, one hook call.
    Bench {
        dir: PathBuf,
        /// Sessions to time (hook calls: ten times as many).
        #[arg(long, default_value_t = 2000)]
        rounds: u32,
    },
    /// Measure the MIME handlers of DIR on each MESSAGE file: parsing, every handler call (in
    /// a fresh session's instances) and writing the message out again, as after DATA.
    BenchMime {
        dir: PathBuf,
        #[arg(required = true)]
        messages: Vec<PathBuf>,
        /// Times each message is handled.
        #[arg(long, default_value_t = 1000)]
        rounds: u32,
    },
}

#[derive(Subcommand)]
enum CertCommands {
    /// Write a self-signed certificate and its key, for local use and tests: to the files
    /// `[tls] cert` and `key` name, or to DIR/cert.pem and DIR/key.pem. Existing files are
    /// never overwritten.
    SelfSigned {
        #[arg(long)]
        out: Option<PathBuf>,
        #[arg(long)]
        config: Option<PathBuf>,
        /// A name the certificate is for (repeat); default: the host name, localhost,
        /// 127.0.0.1 and ::1.
        #[arg(long = "name")]
        names: Vec<String>,
    },
}

#[derive(Subcommand)]
enum SpfCommands {
    /// Print SPF's result and the domain whose record decided it, for a client address, its
    /// HELO name and a MAIL FROM address (empty: the null sender, whose HELO name is checked),
    /// through `[dns] nameservers`: `pass example.org`.
    Check {
        /// The client's IP address.
        #[arg(long)]
        ip: std::net::IpAddr,
        /// The HELO/EHLO name.
        #[arg(long)]
        helo: String,
        /// The MAIL FROM address; empty or absent for `<>`.
        #[arg(long, default_value = "")]
        sender: String,
        /// TOML configuration file (for `hostname` and `[dns]`).
        #[arg(long)]
        config: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum TlsCommands {
    /// Print the RFC 8460 report (JSON) of the relay's TLS sessions to DOMAIN on one day
    /// (UTC), from what the server recorded in DATA_DIR/tlsrpt. Exit code 1 when nothing was
    /// recorded for the domain that day.
    Report {
        domain: String,
        /// The day, YYYY-MM-DD; default yesterday (reports cover whole days).
        #[arg(long)]
        date: Option<String>,
        /// TOML configuration file (for `data_dir` and `hostname`).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Overrides `data_dir`.
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum DkimCommands {
    /// Write a new DKIM private key (PKCS#8 PEM, mode 0600; never over an existing file) and
    /// print the DNS TXT record that publishes its public key, for a `[[dkim.signer]]`.
    Keygen {
        /// The signing domain (`d=`).
        #[arg(long)]
        domain: String,
        /// The selector (`s=`): the record goes at SELECTOR._domainkey.DOMAIN.
        #[arg(long)]
        selector: String,
        /// rsa (every verifier knows it) or ed25519 (RFC 8463; short, but not yet checked by
        /// every receiver: publish both under two selectors to use it).
        #[arg(long, value_enum, default_value = "rsa")]
        algorithm: KeyAlgorithmArg,
        /// RSA key size.
        #[arg(long, default_value_t = 2048)]
        bits: usize,
        /// Where to write the key; default DATA_DIR/dkim/SELECTOR.DOMAIN.key.
        #[arg(long)]
        out: Option<PathBuf>,
        /// TOML configuration file (for `data_dir`).
        #[arg(long)]
        config: Option<PathBuf>,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum KeyAlgorithmArg {
    Rsa,
    Ed25519,
}

#[derive(Subcommand)]
enum UserCommands {
    /// Add a user (with a mailbox) to the users file.
    Add {
        name: String,
        /// Read the password from the first line of standard input instead of the terminal.
        #[arg(long)]
        password_stdin: bool,
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// List the users.
    List {
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Give a user a new password.
    Passwd {
        name: String,
        /// Read the password from the first line of standard input instead of the terminal.
        #[arg(long)]
        password_stdin: bool,
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Remove a user from the users file (the mailbox stays on disk).
    Del {
        name: String,
        #[arg(long)]
        config: Option<PathBuf>,
    },
}

/// Exit code for a bad configuration (as with usage errors).
const EXIT_CONFIG: u8 = 2;

/// glibc raises its mmap threshold each time a large block is freed, up to 32 MiB, so that
/// later large blocks come from the heap instead. Each password check (argon2) takes 19 MiB
/// for a moment: once the threshold had risen, the heap grew by about half a megabyte per
/// login that stayed connected (the small allocations of the session cut the freed block, and
/// the next check took new space above them) — 10,000 logged-in IMAP sessions held 4.6 GB.
/// A fixed threshold keeps every block of 256 KiB or more in its own mapping, returned to the
/// system when freed. Measured with `bench/session-memory.sh`.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn fix_the_mmap_threshold() {
    extern "C" {
        fn mallopt(param: std::ffi::c_int, value: std::ffi::c_int) -> std::ffi::c_int;
    }
    const M_MMAP_THRESHOLD: std::ffi::c_int = -3;
    // SAFETY: mallopt only changes the allocator's parameters; it is called before any
    // thread other than this one exists.
    unsafe {
        mallopt(M_MMAP_THRESHOLD, 256 * 1024);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn fix_the_mmap_threshold() {}

fn main() -> ExitCode {
    fix_the_mmap_threshold();
    let cli = Cli::parse();
    match cli.command {
        Commands::Serve { options, log_format } => {
            let config = match options.load() {
                Ok(config) => config,
                Err(e) => return config_error(e),
            };
            let format = match log_format {
                Some(LogFormatArg::Json) => LogFormat::Json,
                Some(LogFormatArg::Text) => LogFormat::Text,
                None => config.log_format,
            };
            wasmail::logging::init(format);
            for warning in &config.warnings {
                tracing::warn!("{warning}");
            }
            let plugins_required = options.plugins.is_some();
            let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
            let ctx = match runtime.block_on(wasmail::server::build_context(config, plugins_required)) {
                Ok(ctx) => ctx,
                Err(e) => return config_error(e),
            };
            let source: wasmail::server::ConfigSource = Box::new(move || options.load());
            let result = runtime.block_on(wasmail::server::run(ctx, source, plugins_required));
            // Work on the blocking pool (a Maildir file being written) finishes before exit.
            runtime.shutdown_timeout(std::time::Duration::from_secs(10));
            match result {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("wasmail: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Commands::CheckConfig { options } => {
            let config = match options.load() {
                Ok(config) => config,
                Err(e) => return config_error(e),
            };
            match small_runtime().block_on(wasmail::server::check(&config, options.plugins.is_some())) {
                Ok(report) => {
                    print!("{report}");
                    ExitCode::SUCCESS
                }
                Err(e) => config_error(e),
            }
        }
        Commands::Reload { config, data_dir } => {
            let mut config = match Config::load(config.as_deref()) {
                Ok(config) => config,
                Err(e) => return config_error(e),
            };
            if let Some(dir) = data_dir {
                config.data_dir = dir;
            }
            match wasmail::lifecycle::reload(&config.data_dir, std::time::Duration::from_secs(120)) {
                Ok(pid) => {
                    println!("wasmail (pid {pid}) reloaded: new sessions use the new set");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("wasmail: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Commands::Plugin { command: PluginCommands::Inspect { file } } => match small_runtime().block_on(wasmail::plugin::inspect(&file)) {
            Ok((manifest, settings, wit)) => {
                print!("{}", wasmail::plugin::describe(&manifest, &settings, &wit));
                ExitCode::SUCCESS
            }
            Err(e) => config_error(format!("{e:#}")),
        },
        Commands::Plugin { command: PluginCommands::Bench { dir, rounds } } => {
            match small_runtime().block_on(wasmail::plugin::bench::measure(&dir, rounds)) {
                Ok(f) => {
                    println!("plugins loaded:                       {}", f.plugins);
                    println!("instantiate all for one session (us): {:.1}", f.session_instantiation_us);
                    println!("one hook call, on-mail-from (us):     {:.2} ({})", f.hook_call_us, f.hook_plugin);
                    ExitCode::SUCCESS
                }
                Err(e) => config_error(format!("{e:#}")),
            }
        }
        Commands::Plugin { command: PluginCommands::BenchMime { dir, messages, rounds } } => {
            match small_runtime().block_on(wasmail::plugin::bench::measure_mime(&dir, &messages, rounds)) {
                Ok(figures) => {
                    for f in figures {
                        println!(
                            "{}: {} octets, {} part(s) changed: {:.0} messages/s, {:.1} MB/s",
                            f.file, f.size, f.changed_parts, f.messages_per_second, f.megabytes_per_second
                        );
                    }
                    ExitCode::SUCCESS
                }
                Err(e) => config_error(format!("{e:#}")),
            }
        }
        Commands::Cert { command: CertCommands::SelfSigned { out, config, names } } => {
            let config = match Config::load(config.as_deref()) {
                Ok(config) => config,
                Err(e) => return config_error(e),
            };
            let (cert, key) = match out {
                Some(dir) => (dir.join("cert.pem"), dir.join("key.pem")),
                None => (config.tls.cert.clone(), config.tls.key.clone()),
            };
            for path in [&cert, &key] {
                if path.exists() {
                    eprintln!("wasmail: {} exists; remove it first (nothing was written)", path.display());
                    return ExitCode::FAILURE;
                }
            }
            let names = if names.is_empty() { vec![config.hostname.clone(), "localhost".into(), "127.0.0.1".into(), "::1".into()] } else { names };
            match wasmail::tls::write_self_signed(&names, &cert, &key) {
                Ok(()) => {
                    println!("wrote {} and {} for {}", cert.display(), key.display(), names.join(", "));
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("wasmail: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Commands::Spf { command: SpfCommands::Check { ip, helo, sender, config } } => {
            let config = match Config::load(config.as_deref()) {
                Ok(config) => config,
                Err(e) => return config_error(e),
            };
            let dns = wasmail::dns::Dns::new(&config.dns.nameservers);
            let client = wasmail::authenticity::verify::Client { ip, helo: &helo, sender: &sender, hostname: &config.hostname };
            let checked = small_runtime().block_on(async {
                let auth = dns.authenticator().map_err(str::to_string)?;
                Ok::<_, String>(wasmail::authenticity::verify::check_spf(auth, &client).await)
            });
            match checked {
                Ok(spf) => {
                    println!("{} {}", spf.result.as_str(), spf.domain);
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("wasmail: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Commands::Tls { command: TlsCommands::Report { domain, date, config, data_dir } } => {
            use wasmail::queue::tlsrpt;
            let mut config = match Config::load(config.as_deref()) {
                Ok(config) => config,
                Err(e) => return config_error(e),
            };
            if let Some(dir) = data_dir {
                config.data_dir = dir;
            }
            let today = wasmail::queue::now() / 86400;
            let day = match date.as_deref().map(tlsrpt::parse_date) {
                None => today - 1,
                Some(Some(day)) => day,
                Some(None) => {
                    eprintln!("wasmail: --date {}: not a date (YYYY-MM-DD)", date.unwrap_or_default());
                    return ExitCode::from(2);
                }
            };
            match tlsrpt::report(&config.data_dir.join("tlsrpt"), &domain, day, &config.hostname) {
                Ok(Some(report)) => {
                    println!("{}", serde_json::to_string_pretty(&report).expect("JSON"));
                    ExitCode::SUCCESS
                }
                Ok(None) => {
                    eprintln!("wasmail: no TLS session to {domain} was recorded on {}", tlsrpt::date(day));
                    ExitCode::FAILURE
                }
                Err(e) => {
                    eprintln!("wasmail: cannot read {}: {e}", config.data_dir.join("tlsrpt").display());
                    ExitCode::FAILURE
                }
            }
        }
        Commands::Dkim { command: DkimCommands::Keygen { domain, selector, algorithm, bits, out, config } } => {
            use wasmail::authenticity::keys;
            let config = match Config::load(config.as_deref()) {
                Ok(config) => config,
                Err(e) => return config_error(e),
            };
            let domain = domain.trim_end_matches('.').to_ascii_lowercase();
            if wasmail_proto::address::check_domain(&domain).is_err() || wasmail_proto::address::check_domain(&selector).is_err() {
                eprintln!("wasmail: --domain and --selector must be domain names (labels of letters, digits and hyphens)");
                return ExitCode::from(2);
            }
            let path = out.unwrap_or_else(|| config.data_dir.join("dkim").join(format!("{selector}.{domain}.key")));
            let algorithm = match algorithm {
                KeyAlgorithmArg::Rsa => keys::Algorithm::Rsa,
                KeyAlgorithmArg::Ed25519 => keys::Algorithm::Ed25519,
            };
            if path.exists() {
                eprintln!("wasmail: {} exists; remove it first or name another with --out (nothing was written)", path.display());
                return ExitCode::FAILURE;
            }
            let written = keys::generate(algorithm, bits).and_then(|key| keys::write_key(&path, &key.pem).map(|()| key));
            match written {
                Ok(key) => {
                    eprintln!("wrote {}; publish this record, then add a [[dkim.signer]] naming the file:", path.display());
                    println!("{}", key.record(&domain, &selector));
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("wasmail: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Commands::Queue { config, data_dir, command } => {
            let mut config = match Config::load(config.as_deref()) {
                Ok(config) => config,
                Err(e) => return config_error(e),
            };
            if let Some(dir) = data_dir {
                config.data_dir = dir;
            }
            queue_command(&config, command)
        }
        Commands::User { command } => match command {
            UserCommands::Add { name, password_stdin, config } => with_new_password(config, password_stdin, |config, password| {
                wasmail::users::add_user(&config.users_file, &name, password, config.auth.hash_cost())
                    .map(|()| format!("added user {} to {}", name.to_ascii_lowercase(), config.users_file.display()))
            }),
            UserCommands::Passwd { name, password_stdin, config } => with_new_password(config, password_stdin, |config, password| {
                wasmail::users::set_password(&config.users_file, &name, password, config.auth.hash_cost())
                    .map(|()| format!("changed the password of {} in {}", name.to_ascii_lowercase(), config.users_file.display()))
            }),
            UserCommands::Del { name, config } => {
                let config = match Config::load(config.as_deref()) {
                    Ok(config) => config,
                    Err(e) => return config_error(e),
                };
                match wasmail::users::remove_user(&config.users_file, &name) {
                    Ok(()) => {
                        println!(
                            "removed {} from {} (the mailbox stays in {})",
                            name.to_ascii_lowercase(),
                            config.users_file.display(),
                            config.data_dir.display()
                        );
                        ExitCode::SUCCESS
                    }
                    Err(e) => {
                        eprintln!("wasmail: {e:#}");
                        ExitCode::FAILURE
                    }
                }
            }
            UserCommands::List { config } => {
                let config = match Config::load(config.as_deref()) {
                    Ok(config) => config,
                    Err(e) => return config_error(e),
                };
                match wasmail::users::Users::load(&config.users_file) {
                    Ok(users) => {
                        for name in users.names() {
                            println!("{name}");
                        }
                        ExitCode::SUCCESS
                    }
                    Err(e) => config_error(e),
                }
            }
        },
    }
}

/// A one-thread runtime for the commands that load plugins but serve nothing.
fn queue_command(config: &Config, command: QueueCommands) -> ExitCode {
    use wasmail::queue::{admin, Spool};
    let spool = match Spool::open(&config.data_dir) {
        Ok(spool) => spool,
        Err(e) => {
            eprintln!("wasmail: cannot open the queue under {}: {e}", config.data_dir.display());
            return ExitCode::FAILURE;
        }
    };
    let result = match command {
        QueueCommands::List => admin::list(&spool).and_then(|text| print_quietly(&text)),
        QueueCommands::Flush { domain } => admin::request_flush(&spool, domain.as_deref()).and_then(|()| {
            print_quietly(&format!(
                "flush requested{}; a running server acts on it within a second\n",
                domain.map(|d| format!(" for {d}")).unwrap_or_default()
            ))
        }),
        QueueCommands::Remove { id } => match admin::remove(&spool, &id, std::time::Duration::from_secs(30)) {
            Ok(admin::Removal::Removed) => print_quietly(&format!("{id}: removed\n")),
            Ok(admin::Removal::Pending) => {
                print_quietly(&format!("{id}: removal requested; the server removes it when its current delivery attempt ends\n"))
            }
            Ok(admin::Removal::Missing) => {
                eprintln!("wasmail: {id}: no such queue entry");
                return ExitCode::FAILURE;
            }
            Err(e) => Err(e),
        },
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("wasmail: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Writes to standard output; a reader that went away (`wasmail queue list | head -1`) ends
/// the output quietly, as `ls | head` does, instead of a panic.
fn print_quietly(text: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}

fn small_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime")
}

fn config_error(e: impl std::fmt::Display) -> ExitCode {
    eprintln!("wasmail: {e:#}");
    ExitCode::from(EXIT_CONFIG)
}

/// `user add` and `user passwd`: loads the config, reads the password, runs `change` and
/// prints what it says it did.
fn with_new_password(config: Option<PathBuf>, password_stdin: bool, change: impl FnOnce(&Config, &str) -> anyhow::Result<String>) -> ExitCode {
    let config = match Config::load(config.as_deref()) {
        Ok(config) => config,
        Err(e) => return config_error(e),
    };
    let password = match read_password(password_stdin) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("wasmail: cannot read the password: {e}");
            return ExitCode::FAILURE;
        }
    };
    match change(&config, &password) {
        Ok(done) => {
            println!("{done}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("wasmail: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn read_password(from_stdin: bool) -> std::io::Result<String> {
    if from_stdin || !std::io::stdin().is_terminal() {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)?;
        return Ok(line.trim_end_matches(['\r', '\n']).to_string());
    }
    let first = rpassword::prompt_password("Password: ")?;
    let second = rpassword::prompt_password("Again: ")?;
    if first != second {
        return Err(std::io::Error::other("the passwords differ"));
    }
    Ok(first)
}
