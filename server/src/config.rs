//! The TOML configuration. Every key has a default, so `wasmail serve` runs with no file;
//! `wasmail.example.toml` at the repository root documents each key. A bad file is reported
//! as `FILE:LINE: key `a.b`: what is wrong`, and the command exits with code 2.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration as StdDuration;

use ipnet::IpNet;
use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;

/// The whole configuration, after defaults and command-line overrides.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// The name this server uses in its greeting, EHLO reply and Received headers.
    pub hostname: String,
    /// Mailboxes and, later, the queue, plugin state and the compiled-plugin cache.
    pub data_dir: PathBuf,
    /// Domains whose recipients are delivered here.
    pub domains: Vec<String>,
    /// `NAME:ARGON2-PHC-HASH` lines; missing or empty means development mode.
    pub users_file: PathBuf,
    /// `/etc/aliases` syntax.
    pub aliases_file: PathBuf,
    /// Clients in these networks may relay without AUTH.
    pub relay_networks: Vec<IpNet>,
    /// `user+tag@domain` delivers to `user`; empty turns the feature off.
    pub recipient_delimiter: String,
    /// Log lines as JSON (one object per line) or as human-readable text.
    pub log_format: LogFormat,
    pub smtp: SmtpConfig,
    pub pop3: Pop3Config,
    pub imap: ImapConfig,
    pub tls: TlsConfig,
    pub auth: AuthConfig,
    pub mime: MimeConfig,
    pub quota: QuotaConfig,
    pub queue: QueueConfig,
    pub dns: DnsConfig,
    pub dkim: DkimConfig,
    pub auth_results: AuthResultsConfig,
    pub srs: SrsConfig,
    /// Next hop per recipient domain (`"example.org" = "127.0.0.1:2626"`); `"*"` is the
    /// smarthost for every other domain; without either, MX records decide.
    pub routes: std::collections::BTreeMap<String, String>,
    pub plugins: PluginsConfig,
    pub metrics: MetricsConfig,
    pub server: ServerConfig,
    /// What loading found worth a warning (a key kept under an old name), for the log at
    /// start and for `check-config`.
    #[serde(skip)]
    pub warnings: Vec<String>,
}

/// The resolver the queue (MX, and later authentication and plugins) uses.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DnsConfig {
    /// DNS servers (`"127.0.0.1:53"`); empty: the system's (`/etc/resolv.conf`).
    /// `queue.nameservers`, the older name, is taken when this is empty.
    pub nameservers: Vec<SocketAddr>,
    /// DNSKEY records (zone-file lines) DNSSEC validation trusts, for DANE; empty: the root
    /// zone's keys, built in.
    pub dnssec_trust_anchor: PathBuf,
}

/// DKIM signing (RFC 6376) of mail that authenticated users and `relay_networks` send.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DkimConfig {
    /// `[[dkim.signer]]`: one per signing domain (and selector).
    pub signer: Vec<DkimSigner>,
}

/// One signing key: mail whose `From:` is in `domain` (or below it) is signed with it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DkimSigner {
    /// The `d=` domain; the `From:` header's domain must be it or one of its subdomains.
    pub domain: String,
    /// The `s=` selector: the key is published at `SELECTOR._domainkey.DOMAIN`.
    pub selector: String,
    /// PEM private key (PKCS#8, RSA or Ed25519; a PKCS#1 RSA key too), relative to the config
    /// file's folder; `wasmail dkim keygen` writes one.
    pub key_file: PathBuf,
    /// The header fields to sign (those present); empty: the default list.
    #[serde(default)]
    pub headers: Vec<String>,
}

/// The checks of mail received (SPF, DKIM, DMARC, ARC) and their `Authentication-Results:`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthResultsConfig {
    /// Check mail from clients that are neither authenticated nor in `relay_networks`.
    pub enabled: bool,
}

impl Default for AuthResultsConfig {
    fn default() -> Self {
        AuthResultsConfig { enabled: true }
    }
}

/// SRS for mail forwarded to other domains (`authenticity::srs`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SrsConfig {
    /// Rewrite the envelope sender of forwarded mail, and take bounces to rewritten addresses.
    pub enabled: bool,
    /// The domain of rewritten addresses; empty: `hostname`. Its MX must lead here.
    pub domain: String,
    /// The HMAC secret's file; empty: `DATA_DIR/srs.secret`, made (32 random octets, hex,
    /// mode 0600) when missing. Another secret voids the addresses already sent out.
    pub secret_file: PathBuf,
}

impl Default for SrsConfig {
    fn default() -> Self {
        SrsConfig { enabled: true, domain: String::new(), secret_file: PathBuf::new() }
    }
}

/// The Prometheus endpoint.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// `"127.0.0.1:9325"` serves the metrics at `/metrics`; empty: no endpoint.
    #[serde(deserialize_with = "optional_address")]
    pub listen: Option<SocketAddr>,
}

/// The process as a whole.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// After SIGTERM, how long sessions in progress may go on before they are told to close.
    pub shutdown_grace: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig { shutdown_grace: Duration(StdDuration::from_secs(30)) }
    }
}

/// An address, or the empty string for none.
fn optional_address<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<SocketAddr>, D::Error> {
    let text = String::deserialize(deserializer)?;
    if text.is_empty() {
        return Ok(None);
    }
    text.parse().map(Some).map_err(|_| de::Error::custom(format!("not an address (IP:PORT) or \"\": {text:?}")))
}

/// When delivery is tried again, and for how long.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QueueConfig {
    /// Waits between attempts after a temporary failure; the last one repeats.
    pub retry_intervals: Vec<Duration>,
    /// A message still undelivered this long after it arrived fails for good.
    pub max_age: Duration,
    /// After this long undelivered, senders who asked (NOTIFY=DELAY) are told.
    pub delay_warning: Duration,
    /// Local deliveries (into mailboxes) in progress at once.
    pub workers: usize,
    /// Relay sessions to other servers in progress at once: their own slots, so that slow
    /// remote hosts (which any sender can name) never hold the ones local delivery needs.
    pub relay_workers: usize,
    /// The relay client's wait for the greeting and for each reply to EHLO, MAIL, RCPT and
    /// RSET, as a whole reply (RFC 5321 4.5.3.2: 5 minutes); DATA's 354 waits at most 2
    /// minutes within it.
    pub relay_command_timeout: Duration,
    /// The relay client's wait for the reply to the end of data (RFC 5321 4.5.3.2.6: 10
    /// minutes), and for each 64 KiB block of the message to be taken (3 minutes in the RFC,
    /// never more than this).
    pub relay_data_timeout: Duration,
    /// The older name of `dns.nameservers` (read into it, with a warning).
    pub nameservers: Vec<SocketAddr>,
    /// The port mail exchangers found through MX records listen on.
    pub mx_port: u16,
    /// TLS with the next hop: `"may"` (STARTTLS when offered), `"encrypt"` (required),
    /// `"none"`.
    pub tls: TlsLevel,
    /// MTA-STS (RFC 8461) for mail to domains found by MX: a domain's policy applies on top
    /// of `tls`.
    pub mta_sts: bool,
    /// The port of MTA-STS policy hosts (`https://mta-sts.DOMAIN/`): 443, but in tests.
    pub mta_sts_port: u16,
    /// PEM certificates trusted beside the system's roots when a certificate is checked (an
    /// MTA-STS policy host, a mail exchanger under an `enforce` policy): a private CA.
    pub tls_ca_files: Vec<PathBuf>,
}

/// `[queue] tls`: what the relay client does about TLS with the next hop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TlsLevel {
    /// Never STARTTLS.
    None,
    /// STARTTLS whenever the next hop offers it; in the clear when it does not, or when the
    /// handshake fails (then on a new connection to the same address, at once).
    #[default]
    May,
    /// STARTTLS or nothing: a next hop that does not offer it, or whose handshake fails,
    /// is not given the mail (the attempt is deferred, never made in the clear).
    Encrypt,
    /// DANE (RFC 7672): an MX host with TLSA records, found through DNSSEC-secure MX and
    /// TLSA lookups, gets the mail only over TLS with a certificate its records name; the
    /// others as `may`.
    Dane,
}

impl TlsLevel {
    /// The opportunistic level a session without DANE runs at (`dane` is `may` there).
    pub fn opportunistic(self) -> TlsLevel {
        match self {
            TlsLevel::Dane => TlsLevel::May,
            other => other,
        }
    }
}

impl Default for QueueConfig {
    fn default() -> Self {
        let minutes = |m: u64| Duration(StdDuration::from_secs(m * 60));
        QueueConfig {
            retry_intervals: vec![minutes(1), minutes(5), minutes(15), minutes(60)],
            max_age: Duration(StdDuration::from_secs(5 * 86400)),
            delay_warning: Duration(StdDuration::from_secs(4 * 3600)),
            workers: 16,
            relay_workers: 16,
            relay_command_timeout: minutes(5),
            relay_data_timeout: minutes(10),
            nameservers: Vec::new(),
            mx_port: 25,
            tls: TlsLevel::May,
            mta_sts: true,
            mta_sts_port: 443,
            tls_ca_files: Vec::new(),
        }
    }
}

/// The POP3 server.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Pop3Config {
    /// Addresses of the POP3 listeners; empty for none.
    pub listen: Vec<SocketAddr>,
    /// Implicit-TLS listeners (pop3s, port 995).
    pub tls_listen: Vec<SocketAddr>,
    /// Idle time before the session is closed without UPDATE (RFC 1939 3: at least 10 min).
    pub idle_timeout: Duration,
    /// Concurrent POP3 sessions.
    pub max_connections: usize,
    /// Concurrent POP3 sessions from one client address.
    pub max_connections_per_address: usize,
}

impl Default for Pop3Config {
    fn default() -> Self {
        Pop3Config {
            listen: vec!["127.0.0.1:2110".parse().expect("valid default address")],
            tls_listen: Vec::new(),
            idle_timeout: Duration(StdDuration::from_secs(600)),
            max_connections: 500,
            max_connections_per_address: 20,
        }
    }
}

/// The server's certificate and key. TLS is on when both files exist (STARTTLS and STLS are
/// then offered); a TLS listener without them is a start-up error.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// PEM certificate chain, the server's certificate first.
    pub cert: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

impl Default for TlsConfig {
    fn default() -> Self {
        TlsConfig { cert: PathBuf::from("cert.pem"), key: PathBuf::from("key.pem") }
    }
}

/// When passwords may cross the network, and what submission checks.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// Password authentication without TLS: "loopback" (only from 127.0.0.0/8 and ::1),
    /// "never" or "always". Where it is not allowed, SMTP does not offer AUTH, POP3 offers
    /// neither USER nor SASL PLAIN, and IMAP says LOGINDISABLED, until TLS is on.
    pub plaintext: Plaintext,
    /// Once a client has authenticated (on any port; on the submission ports it always has),
    /// MAIL FROM must be an address of that user.
    pub submission_sender_check: bool,
    /// The wait before answering a failed login; it doubles with each further failure from
    /// the same address, up to `failure_delay_max`.
    pub failure_delay: Duration,
    pub failure_delay_max: Duration,
    /// Failures from one address, or for one user name from one address, after which
    /// logins from there are refused without a password check until `failure_window` has
    /// passed without a failure.
    pub max_failures: u32,
    pub failure_window: Duration,
    /// Argon2id cost of new password hashes (`wasmail user add` and `passwd`).
    pub argon2_memory_kib: u32,
    pub argon2_iterations: u32,
    pub argon2_parallelism: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Plaintext {
    Loopback,
    Never,
    Always,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            plaintext: Plaintext::Loopback,
            submission_sender_check: true,
            failure_delay: Duration(StdDuration::from_secs(2)),
            failure_delay_max: Duration(StdDuration::from_secs(15)),
            max_failures: 10,
            failure_window: Duration(StdDuration::from_secs(15 * 60)),
            argon2_memory_kib: 19_456,
            argon2_iterations: 2,
            argon2_parallelism: 1,
        }
    }
}

impl AuthConfig {
    pub fn hash_cost(&self) -> crate::users::HashCost {
        crate::users::HashCost { memory_kib: self.argon2_memory_kib, iterations: self.argon2_iterations, parallelism: self.argon2_parallelism }
    }

    /// Whether a password may be sent on this connection.
    pub fn password_allowed(&self, tls: bool, peer: std::net::IpAddr) -> bool {
        tls || match self.plaintext {
            Plaintext::Always => true,
            Plaintext::Never => false,
            Plaintext::Loopback => peer.is_loopback() || peer.to_canonical().is_loopback(),
        }
    }
}

/// The IMAP listener (RFC 3501) and its limits.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ImapConfig {
    /// Addresses of the IMAP listeners; empty for none.
    pub listen: Vec<SocketAddr>,
    /// Implicit-TLS listeners (imaps, port 993).
    pub tls_listen: Vec<SocketAddr>,
    /// Literals (APPEND's message) above this are refused before they are read.
    pub max_literal: ByteSize,
    /// Command text (literals not counted) above this is refused, the rest discarded.
    pub max_line: ByteSize,
    /// One command before login, text and literals together: LOGIN and AUTHENTICATE need
    /// little, the largest ID command RFC 2971 allows (30 fields of 1024 octets) about 32 KB,
    /// and a client that has not logged in may not make the server hold more. After login a
    /// command may hold `max_line` of text and `max_literal` of literals.
    pub max_command_before_login: ByteSize,
    /// Idle time before the session is closed (RFC 3501 5.4: at least 30 minutes); IDLE
    /// restarts it, as clients re-issue IDLE within it.
    pub idle_timeout: Duration,
    /// Concurrent IMAP sessions.
    pub max_connections: usize,
    /// Concurrent IMAP sessions from one client address (several devices of one household
    /// share an address, each with a few connections).
    pub max_connections_per_address: usize,
}

impl Default for ImapConfig {
    fn default() -> Self {
        ImapConfig {
            listen: vec!["127.0.0.1:2143".parse().expect("valid default address")],
            tls_listen: Vec::new(),
            max_literal: ByteSize(25 * 1024 * 1024),
            max_line: ByteSize(64 * 1024),
            max_command_before_login: ByteSize(64 * 1024),
            idle_timeout: Duration(StdDuration::from_secs(30 * 60)),
            max_connections: 500,
            max_connections_per_address: 50,
        }
    }
}

/// Per-user limits on what the mailboxes hold, all folders together (IMAP QUOTA, RFC 9208).
/// Checked before a message is stored: a delivery over a limit waits in the queue (4.2.2,
/// mailbox full) and is retried until the user makes room or `queue.max_age` bounces it;
/// APPEND and COPY over a limit answer `NO [OVERQUOTA]`. Soft limits: sessions storing at
/// the same moment may together pass one by a message each.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QuotaConfig {
    /// Octets (RFC822.SIZE, summed); 0: no limit.
    pub storage: ByteSize,
    /// Messages; 0: no limit.
    pub messages: u64,
}

impl QuotaConfig {
    /// Whether any limit is set.
    pub fn is_set(&self) -> bool {
        self.storage.0 > 0 || self.messages > 0
    }

    /// Whether a mailbox holding `held` (octets, messages) may take `more` (octets, messages).
    pub fn allows(&self, held: (u64, u64), more: (u64, u64)) -> bool {
        (self.storage.0 == 0 || held.0 + more.0 <= self.storage.0) && (self.messages == 0 || held.1 + more.1 <= self.messages)
    }
}

/// Limits of the MIME parser and what happens beyond them.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MimeConfig {
    /// Multipart and message/rfc822 levels below the top.
    pub max_depth: usize,
    /// Parts in one message, containers included.
    pub max_parts: usize,
    /// Header fields in one header section (the message's or a part's).
    pub max_header_fields: usize,
    /// Octets in one header section.
    pub max_header_size: ByteSize,
    /// A message beyond a limit: "reject" (552 5.3.4) or "pass" (stored unchanged, without
    /// MIME handlers).
    pub on_limit: OnLimit,
    /// Part bodies larger than this (decoded) are not passed to MIME handlers; the handler
    /// still sees the part's headers and size.
    pub handler_body_limit: ByteSize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnLimit {
    Reject,
    Pass,
}

impl Default for MimeConfig {
    fn default() -> Self {
        let limits = wasmail_mime::Limits::default();
        MimeConfig {
            max_depth: limits.max_depth,
            max_parts: limits.max_parts,
            max_header_fields: limits.max_header_fields,
            max_header_size: ByteSize(limits.max_header_size as u64),
            on_limit: OnLimit::Reject,
            handler_body_limit: ByteSize(10 * 1024 * 1024),
        }
    }
}

impl MimeConfig {
    pub fn limits(&self) -> wasmail_mime::Limits {
        wasmail_mime::Limits {
            max_depth: self.max_depth,
            max_parts: self.max_parts,
            max_header_fields: self.max_header_fields,
            max_header_size: self.max_header_size.0 as usize,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PluginsConfig {
    /// Folder of `*.wasm` plugins, each with an optional `NAME.toml`. A missing folder means
    /// no plugins, unless it was named on the command line.
    pub dir: PathBuf,
    /// Plugin instances that may exist at once (at most 10,000); 0 (the default) computes it: one of every
    /// plugin for every SMTP session the listeners allow (`max_connections` on each) and
    /// every queue delivery (`workers` + `relay_workers`), at least 100 and at most 10,000 (each slot costs mappings; beyond, sessions wait).
    pub max_instances: u32,
    /// How long a session waits for a free instance when they are all in use; then it is
    /// answered 451 4.3.2 (the plugin is never skipped).
    pub pool_wait: Duration,
}

impl Default for PluginsConfig {
    fn default() -> Self {
        PluginsConfig { dir: PathBuf::from("plugins"), max_instances: 0, pool_wait: Duration(StdDuration::from_secs(10)) }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SmtpConfig {
    /// Addresses of the port-25-style listeners.
    pub listen: Vec<SocketAddr>,
    /// Submission listeners (port 587, RFC 6409): STARTTLS, then AUTH before MAIL.
    pub submission_listen: Vec<SocketAddr>,
    /// Implicit-TLS submission listeners (port 465, RFC 8314): AUTH before MAIL.
    pub submissions_listen: Vec<SocketAddr>,
    /// Advertised in EHLO SIZE; larger messages get 552 5.3.4.
    pub max_message_size: ByteSize,
    /// More RCPTs than this in one transaction get 452 4.5.3.
    pub max_recipients: usize,
    /// Answer VRFY for real (true) or with 252 (false), as careful sites do.
    pub vrfy: bool,
    /// Answer EXPN (true) or refuse it with 502 (false).
    pub expn: bool,
    /// Longest text line in a message, without CRLF (RFC 5322 2.1.1: 998).
    pub max_line_length: usize,
    /// What to do with a bare LF or bare CR in message content: "reject" (550 5.5.2) or
    /// "accept". Rejecting closes the door on SMTP smuggling through downstream servers.
    pub bare_line_ending: BareLineEnding,
    /// Idle time allowed while waiting for a command (RFC 5321 4.5.3.2.7: at least 5 min).
    pub command_timeout: Duration,
    /// Idle time allowed while receiving message content (RFC 5321 4.5.3.2.6: 3 min
    /// minimum between blocks; 10 min is the customary total).
    pub data_timeout: Duration,
    /// Concurrent SMTP sessions; one more is answered 421 4.3.2 and closed.
    pub max_connections: usize,
    /// Concurrent sessions from one client address; one more gets 421 4.7.0.
    pub max_connections_per_address: usize,
    /// Messages in one session; MAIL after that gets 421 4.7.0 and the session ends.
    pub max_messages_per_connection: u32,
    /// Messages (MAIL) and recipients (RCPT) from one address per minute; beyond them 450/452
    /// 4.7.0 until the minute is over. 0: no limit.
    pub max_messages_per_minute: u32,
    pub max_recipients_per_minute: u32,
    /// Addresses the per-minute rates do not apply to.
    pub rate_exempt: Vec<IpNet>,
    /// Unknown recipients one session may try; the next gets 421 4.7.0, and the address is
    /// refused for `probe_block` (directory harvesting).
    pub max_unknown_recipients: u32,
    pub probe_block: Duration,
    /// A session longer than this is closed with 421 4.4.2, however busy (slow-drip clients).
    pub max_session_time: Duration,
    /// Bad commands tolerated in a session before 421 and close.
    pub max_errors: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Json,
    Text,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BareLineEnding {
    Reject,
    Accept,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            hostname: default_hostname(),
            data_dir: PathBuf::from("wasmail-data"),
            domains: vec!["localhost".into()],
            users_file: PathBuf::from("users"),
            aliases_file: PathBuf::from("aliases"),
            relay_networks: Vec::new(),
            recipient_delimiter: "+".into(),
            log_format: LogFormat::Json,
            smtp: SmtpConfig::default(),
            pop3: Pop3Config::default(),
            imap: ImapConfig::default(),
            tls: TlsConfig::default(),
            auth: AuthConfig::default(),
            mime: MimeConfig::default(),
            quota: QuotaConfig::default(),
            queue: QueueConfig::default(),
            dns: DnsConfig::default(),
            dkim: DkimConfig::default(),
            auth_results: AuthResultsConfig::default(),
            srs: SrsConfig::default(),
            routes: Default::default(),
            plugins: PluginsConfig::default(),
            metrics: MetricsConfig::default(),
            server: ServerConfig::default(),
            warnings: Vec::new(),
        }
    }
}

impl Default for SmtpConfig {
    fn default() -> Self {
        SmtpConfig {
            listen: vec!["127.0.0.1:2525".parse().expect("valid default address")],
            submission_listen: Vec::new(),
            submissions_listen: Vec::new(),
            max_message_size: ByteSize(25 * 1024 * 1024),
            max_recipients: 100,
            vrfy: false,
            expn: false,
            max_line_length: 998,
            bare_line_ending: BareLineEnding::Reject,
            command_timeout: Duration(StdDuration::from_secs(300)),
            data_timeout: Duration(StdDuration::from_secs(600)),
            max_connections: 500,
            // Postfix's smtpd_client_connection_count_limit.
            max_connections_per_address: 50,
            max_messages_per_connection: 1000,
            max_messages_per_minute: 120,
            max_recipients_per_minute: 1000,
            rate_exempt: vec!["127.0.0.0/8".parse().expect("valid network"), "::1/128".parse().expect("valid network")],
            max_unknown_recipients: 20,
            probe_block: Duration(StdDuration::from_secs(600)),
            max_session_time: Duration(StdDuration::from_secs(3600)),
            max_errors: 10,
        }
    }
}

fn default_hostname() -> String {
    gethostname::gethostname().to_string_lossy().into_owned()
}

/// A configuration error, with the place it comes from.
#[derive(Debug)]
pub struct ConfigError {
    pub file: PathBuf,
    /// 1-based line, when the error has a place in the file.
    pub line: Option<usize>,
    /// Dotted key path such as `smtp.listen`, when known.
    pub key: Option<String>,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if let Some(key) = &self.key {
            write!(f, ": key `{key}`")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for ConfigError {}

impl Config {
    /// Reads `path`, or returns the embedded defaults when there is none. Relative paths in
    /// the file are taken relative to the file's folder; without a file, to the working
    /// directory.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        let Some(path) = path else {
            let config = Config::default();
            config.validate(Path::new("(defaults)"), "")?;
            return Ok(config);
        };
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: path.to_path_buf(),
            line: None,
            key: None,
            message: format!("cannot read: {e}"),
        })?;
        let mut config = Config::parse(&text, path)?;
        let base = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        for p in [
            &mut config.data_dir,
            &mut config.users_file,
            &mut config.aliases_file,
            &mut config.plugins.dir,
            &mut config.tls.cert,
            &mut config.tls.key,
        ]
        .into_iter()
        .chain(config.dkim.signer.iter_mut().map(|s| &mut s.key_file))
        .chain(Some(&mut config.srs.secret_file).filter(|p| !p.as_os_str().is_empty()))
        .chain(config.queue.tls_ca_files.iter_mut())
        .chain(Some(&mut config.dns.dnssec_trust_anchor).filter(|p| !p.as_os_str().is_empty()))
        {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
        Ok(config)
    }

    /// Parses and validates the text of a config file named `file` (for messages).
    pub fn parse(text: &str, file: &Path) -> Result<Config, ConfigError> {
        let mut config: Config = parse_toml(text, file)?;
        config.validate(file, text)?;
        config.take_old_names(file, text)?;
        Ok(config)
    }

    /// Keys kept under their older names: read into the new ones, each with a warning.
    fn take_old_names(&mut self, file: &Path, text: &str) -> Result<(), ConfigError> {
        if !self.queue.nameservers.is_empty() {
            let line = line_of_key(text, "queue.nameservers");
            if !self.dns.nameservers.is_empty() && self.dns.nameservers != self.queue.nameservers {
                return Err(ConfigError {
                    file: file.to_path_buf(),
                    line,
                    key: Some("queue.nameservers".into()),
                    message: "differs from dns.nameservers, which replaces it: keep only dns.nameservers".into(),
                });
            }
            let place = line.map_or(String::new(), |l| format!(":{l}"));
            self.warnings
                .push(format!("{}{place}: queue.nameservers is now dns.nameservers ([dns] nameservers = [...]); read as that", file.display()));
            self.dns.nameservers = std::mem::take(&mut self.queue.nameservers);
        }
        Ok(())
    }

    /// Checks what the types alone cannot.
    fn validate(&self, file: &Path, text: &str) -> Result<(), ConfigError> {
        let fail =
            |key: &str, message: String| ConfigError { file: file.to_path_buf(), line: line_of_key(text, key), key: Some(key.to_string()), message };
        if self.hostname.is_empty() || self.hostname.contains(|c: char| c.is_whitespace() || c.is_control()) {
            return Err(fail("hostname", format!("{:?} is not a host name", self.hostname)));
        }
        if self.domains.is_empty() {
            return Err(fail("domains", "at least one local domain is needed".into()));
        }
        for (domain, route) in &self.routes {
            if let Err(e) = split_route(route) {
                // Route keys are domains, with dots: find the line by hand.
                let line = text.lines().position(|l| l.trim_start().trim_start_matches('"').starts_with(domain.as_str())).map(|i| i + 1);
                return Err(ConfigError {
                    file: file.to_path_buf(),
                    line,
                    key: Some(format!("routes.\"{domain}\"")),
                    message: format!("{route:?}: {e}"),
                });
            }
        }
        for domain in &self.domains {
            if wasmail_proto::address::check_domain(domain).is_err() || domain.starts_with('[') {
                return Err(fail("domains", format!("{domain:?} is not a domain name")));
            }
        }
        for (i, signer) in self.dkim.signer.iter().enumerate() {
            let key = |name: &str| format!("dkim.signer[{i}].{name}");
            let line = text.match_indices("[[dkim.signer]]").nth(i).map(|(at, _)| text[..at].lines().count() + 1);
            let fail = |name: &str, message: String| ConfigError { file: file.to_path_buf(), line, key: Some(key(name)), message };
            if wasmail_proto::address::check_domain(&signer.domain).is_err() || signer.domain.starts_with('[') {
                return Err(fail("domain", format!("{:?} is not a domain name", signer.domain)));
            }
            // RFC 6376 3.1: a selector is one or more dot-separated sub-domain labels.
            if wasmail_proto::address::check_domain(&signer.selector).is_err() || signer.selector.starts_with('[') {
                return Err(fail("selector", format!("{:?} is not a selector (labels of letters, digits and hyphens)", signer.selector)));
            }
            if let Some(bad) = signer.headers.iter().find(|h| h.is_empty() || !h.bytes().all(|b| b.is_ascii_graphic() && b != b':')) {
                return Err(fail("headers", format!("{bad:?} is not a header field name")));
            }
        }
        if !self.srs.domain.is_empty() && (wasmail_proto::address::check_domain(&self.srs.domain).is_err() || self.srs.domain.starts_with('[')) {
            return Err(fail("srs.domain", format!("{:?} is not a domain name", self.srs.domain)));
        }
        if self.recipient_delimiter.chars().count() > 1 || self.recipient_delimiter.contains(['@', '.', '"', ' ']) {
            return Err(fail("recipient_delimiter", "must be empty or one character other than @ . \" and space".into()));
        }
        if self.smtp.listen.is_empty() {
            return Err(fail("smtp.listen", "at least one listen address is needed".into()));
        }
        if self.smtp.max_message_size.0 == 0 {
            return Err(fail("smtp.max_message_size", "must be more than 0".into()));
        }
        if argon2::Params::new(self.auth.argon2_memory_kib, self.auth.argon2_iterations, self.auth.argon2_parallelism, None).is_err() {
            return Err(fail("auth.argon2_memory_kib", "argon2 needs memory >= 8 KiB per lane, iterations >= 1, parallelism >= 1".into()));
        }
        if self.auth.max_failures == 0 {
            return Err(fail("auth.max_failures", "must be at least 1".into()));
        }
        if self.imap.max_command_before_login.0 < 1024 {
            return Err(fail("imap.max_command_before_login", "must be at least 1024".into()));
        }
        if self.imap.max_line.0 < 1024 {
            return Err(fail("imap.max_line", "must be at least 1024".into()));
        }
        if self.imap.max_connections == 0 {
            return Err(fail("imap.max_connections", "must be at least 1".into()));
        }
        if self.imap.idle_timeout.0.is_zero() {
            return Err(fail("imap.idle_timeout", "must be more than 0".into()));
        }
        if self.smtp.max_recipients == 0 {
            return Err(fail("smtp.max_recipients", "must be at least 1".into()));
        }
        if self.smtp.max_line_length < 78 {
            return Err(fail("smtp.max_line_length", "must be at least 78 (RFC 5322 2.1.1)".into()));
        }
        for (key, value) in [
            ("smtp.max_connections_per_address", self.smtp.max_connections_per_address),
            ("pop3.max_connections_per_address", self.pop3.max_connections_per_address),
            ("imap.max_connections_per_address", self.imap.max_connections_per_address),
        ] {
            if value == 0 {
                return Err(fail(key, "must be at least 1".into()));
            }
        }
        if self.smtp.max_messages_per_connection == 0 {
            return Err(fail("smtp.max_messages_per_connection", "must be at least 1".into()));
        }
        if self.smtp.max_connections == 0 {
            return Err(fail("smtp.max_connections", "must be at least 1".into()));
        }
        for (key, value) in [("smtp.command_timeout", self.smtp.command_timeout), ("smtp.data_timeout", self.smtp.data_timeout)] {
            if value.0.is_zero() {
                return Err(fail(key, "must be more than 0".into()));
            }
        }
        Ok(())
    }

    pub fn is_local_domain(&self, domain: &str) -> bool {
        self.domains.iter().any(|d| d.eq_ignore_ascii_case(domain))
    }
}

/// Deserializes TOML, turning errors into `FILE:LINE: key `a.b`: message`.
pub fn parse_toml<T: serde::de::DeserializeOwned>(text: &str, file: &Path) -> Result<T, ConfigError> {
    let deserializer = toml::Deserializer::new(text);
    serde_path_to_error::deserialize(deserializer).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        ConfigError {
            file: file.to_path_buf(),
            line: inner.span().map(|span| line_of_offset(text, span.start)),
            key: (path != ".").then_some(path),
            message: inner.message().to_string(),
        }
    })
}

fn line_of_offset(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].bytes().filter(|&b| b == b'\n').count() + 1
}

/// The line where a dotted key is set, found by reading the table headers and `key =` lines.
pub fn line_of_key(text: &str, dotted: &str) -> Option<usize> {
    let (table, key) = match dotted.rsplit_once('.') {
        Some((t, k)) => (t, k),
        None => ("", dotted),
    };
    let mut current = String::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if let Some(header) = line.strip_prefix('[').and_then(|l| l.split(']').next()) {
            current = header.trim().to_string();
        } else if current == table {
            let name = line.split('=').next().unwrap_or("").trim().trim_matches('"');
            if line.contains('=') && name == key {
                return Some(i + 1);
            }
        }
    }
    None
}

/// A size in octets, written as a number or as `"25MiB"`, `"512KiB"`, `"10MB"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ByteSize(pub u64);

impl std::str::FromStr for ByteSize {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        let (number, unit) = s.split_at(split);
        let number: u64 = number.parse().map_err(|_| format!("{s:?} is not a size such as \"25MiB\""))?;
        let factor: u64 = match unit.trim() {
            "" | "B" => 1,
            "KB" | "kB" => 1000,
            "KiB" => 1 << 10,
            "MB" => 1000 * 1000,
            "MiB" => 1 << 20,
            "GB" => 1000 * 1000 * 1000,
            "GiB" => 1 << 30,
            other => return Err(format!("unknown size unit {other:?} (use B, KiB, MiB, GiB, KB, MB or GB)")),
        };
        number.checked_mul(factor).map(ByteSize).ok_or_else(|| format!("{s:?} is too large"))
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = ByteSize;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a size in octets, or a string such as \"25MiB\"")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<ByteSize, E> {
                u64::try_from(v).map(ByteSize).map_err(|_| E::custom("a size cannot be negative"))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<ByteSize, E> {
                v.parse().map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

/// A duration written as `"300s"`, `"5m"`, `"1h"`, `"5d"` or `"200ms"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Duration(pub StdDuration);

impl std::str::FromStr for Duration {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        let (number, unit) = s.split_at(split);
        let n: u64 = number.parse().map_err(|_| format!("{s:?} is not a duration such as \"300s\" or \"5m\""))?;
        let d = match unit {
            "ms" => StdDuration::from_millis(n),
            "s" => StdDuration::from_secs(n),
            "m" => StdDuration::from_secs(n * 60),
            "h" => StdDuration::from_secs(n * 3600),
            "d" => StdDuration::from_secs(n * 86400),
            _ => return Err(format!("{s:?} needs a unit: ms, s, m, h or d")),
        };
        Ok(Duration(d))
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(de::Error::custom)
    }
}

/// Splits a `[routes]` value (a next hop) into host and port (25 when absent): checked
/// here when the config loads, used by the queue when it routes.
pub fn split_route(route: &str) -> Result<(String, u16), String> {
    let route = route.trim();
    if let Some(rest) = route.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or("unclosed [")?;
        let port = match after.strip_prefix(':') {
            Some(p) => p.parse().map_err(|_| format!("bad port {p:?}"))?,
            None if after.is_empty() => 25,
            None => return Err(format!("junk after ]: {after:?}")),
        };
        return Ok((host.to_string(), port));
    }
    match route.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') => Ok((host.to_string(), port.parse().map_err(|_| format!("bad port {port:?}"))?)),
        Some(_) => Err("an IPv6 address needs brackets: [::1]:25".into()),
        None if route.is_empty() => Err("empty route".into()),
        None => Ok((route.to_string(), 25)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("wasmail.toml"))
    }

    #[test]
    fn empty_file_gives_defaults() {
        let c = parse("").unwrap();
        assert_eq!(c.smtp.listen, vec!["127.0.0.1:2525".parse::<SocketAddr>().unwrap()]);
        assert_eq!(c.domains, vec!["localhost"]);
        assert_eq!(c.smtp.max_message_size, ByteSize(26214400));
        assert!(!c.smtp.vrfy && !c.smtp.expn);
    }

    #[test]
    fn values_are_read() {
        let c = parse(
            "domains = [\"example.org\"]\nrelay_networks = [\"10.0.0.0/8\"]\n[smtp]\nmax_message_size = \"10MiB\"\ncommand_timeout = \"5m\"\nvrfy = true\n",
        )
        .unwrap();
        assert_eq!(c.smtp.max_message_size, ByteSize(10 << 20));
        assert_eq!(c.smtp.command_timeout, Duration(StdDuration::from_secs(300)));
        assert!(c.smtp.vrfy);
        assert!(c.is_local_domain("EXAMPLE.org"));
    }

    #[test]
    fn queue_nameservers_is_read_as_dns_nameservers_with_a_warning() {
        let c = parse("[dns]\nnameservers = [\"127.0.0.1:5353\"]\n").unwrap();
        assert_eq!(c.dns.nameservers, vec!["127.0.0.1:5353".parse::<SocketAddr>().unwrap()]);
        assert!(c.warnings.is_empty());
        let c = parse("[queue]\nworkers = 2\nnameservers = [\"127.0.0.1:5353\"]\n").unwrap();
        assert_eq!(c.dns.nameservers, vec!["127.0.0.1:5353".parse::<SocketAddr>().unwrap()]);
        assert!(c.queue.nameservers.is_empty());
        assert_eq!(c.warnings.len(), 1);
        assert!(c.warnings[0].starts_with("wasmail.toml:3: queue.nameservers is now dns.nameservers"), "{:?}", c.warnings);
        // Both, the same: one warning; different: an error at the old key.
        assert!(parse("[dns]\nnameservers = [\"127.0.0.1:53\"]\n[queue]\nnameservers = [\"127.0.0.1:53\"]\n").is_ok());
        let e = parse("[dns]\nnameservers = [\"127.0.0.1:53\"]\n[queue]\nnameservers = [\"127.0.0.2:53\"]\n").unwrap_err();
        assert_eq!((e.line, e.key.as_deref()), (Some(4), Some("queue.nameservers")), "{e}");
    }

    #[test]
    fn errors_name_file_line_and_key() {
        let e = parse("hostname = \"mx\"\n\n[smtp]\nlisten = [\"nowhere\"]\n").unwrap_err();
        assert_eq!(e.line, Some(4), "{e}");
        assert!(e.key.as_deref().unwrap().starts_with("smtp.listen"), "{e}");
        assert!(e.to_string().starts_with("wasmail.toml:4: key `smtp.listen"), "{e}");

        let e = parse("[smtp]\nmax_recipients = 0\n").unwrap_err();
        assert_eq!((e.line, e.key.as_deref()), (Some(2), Some("smtp.max_recipients")), "{e}");

        let e = parse("[smtp]\ncommand_timeout = \"5 fortnights\"\n").unwrap_err();
        assert_eq!(e.line, Some(2), "{e}");

        let e = parse("[smtp]\nlisten_on = []\n").unwrap_err();
        assert!(e.message.contains("unknown field"), "{e}");
        assert_eq!(e.line, Some(2), "{e}");

        let e = parse("domains = \"localhost\"\n").unwrap_err();
        assert_eq!((e.line, e.key.as_deref()), (Some(1), Some("domains")), "{e}");

        let e = parse("relay_networks = [\"10.0.0.0/33\"]\n").unwrap_err();
        assert_eq!(e.line, Some(1), "{e}");

        assert!(parse("[smtp\n").is_err());
    }

    #[test]
    fn a_bad_dkim_signer_is_named_by_its_place_and_line() {
        let signer = |selector: &str| format!("[[dkim.signer]]\ndomain = \"example.org\"\nselector = \"{selector}\"\nkey_file = \"k\"\n");
        let config = parse(&signer("s1")).unwrap();
        assert_eq!(config.dkim.signer[0].key_file, Path::new("k"));
        let e = parse(&(signer("s1") + &signer("bad selector"))).unwrap_err();
        assert_eq!((e.line, e.key.as_deref()), (Some(5), Some("dkim.signer[1].selector")), "{e}");
        let e = parse("[[dkim.signer]]\ndomain = \"example.org\"\nselector = \"s1\"\n").unwrap_err();
        assert!(e.to_string().contains("key_file"), "{e}");
    }

    #[test]
    fn the_example_file_parses_to_the_defaults() {
        let example = parse(include_str!("../../wasmail.example.toml")).unwrap();
        let defaults = Config::default();
        // Every table and key but the host name, whose default is the machine's.
        let tables = |c: &Config| {
            format!("{:?}", (&c.smtp, &c.pop3, &c.imap, &c.tls, &c.auth, &c.mime, &c.queue, &c.routes, &c.plugins, &c.log_format))
                + &format!("{:?}", (&c.metrics, &c.server))
                + &format!("{:?}", (&c.data_dir, &c.domains, &c.users_file, &c.aliases_file, &c.relay_networks, &c.recipient_delimiter))
        };
        assert_eq!(tables(&example), tables(&defaults));
    }

    #[test]
    fn sizes_and_durations() {
        assert_eq!("64MiB".parse::<ByteSize>(), Ok(ByteSize(64 << 20)));
        assert_eq!("1000".parse::<ByteSize>(), Ok(ByteSize(1000)));
        assert!("12 parsecs".parse::<ByteSize>().is_err());
        assert_eq!("200ms".parse::<Duration>(), Ok(Duration(StdDuration::from_millis(200))));
        assert_eq!("5d".parse::<Duration>(), Ok(Duration(StdDuration::from_secs(432000))));
        assert!("5".parse::<Duration>().is_err());
    }

    #[test]
    fn routes_are_host_and_port() {
        assert_eq!(split_route("127.0.0.1:2626"), Ok(("127.0.0.1".into(), 2626)));
        assert_eq!(split_route("smtp.example.org"), Ok(("smtp.example.org".into(), 25)));
        assert_eq!(split_route("[::1]:2525"), Ok(("::1".into(), 2525)));
        assert!(split_route("::1:25").is_err());
        assert!(split_route("host:port").is_err());
        assert!(split_route("").is_err());
    }
}
