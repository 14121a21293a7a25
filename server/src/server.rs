//! `wasmail serve`: load what the configuration names, bind the listeners, serve until a
//! signal; reload on SIGHUP, shut down gracefully on SIGTERM or SIGINT.
//!
//! Reload builds a whole new [`Context`] (config, users and aliases, plugins, certificate)
//! beside the running one and swaps it in only when every part loaded: a broken part leaves
//! the old set running and is logged as one error. Sessions keep the context they were
//! accepted with; the store, the queue, the login and rate records and the listeners live
//! across reloads. Settings that only a restart can change (listeners, data directory, host
//! name, connection caps, queue workers, metrics address, log format) keep their running
//! values and are logged as needing a restart.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::Context as _;
use tokio::net::TcpListener;

use crate::config::Config;
use crate::connection::accept::Contexts;
use crate::directory::Directory;
use crate::lifecycle::{PidFile, Shutdown, Stage};
use crate::plugin::{LoadOptions, PoolOptions, Registry};
use crate::queue::Queue;
use crate::smtp::Port;
use crate::store::Maildir;
use crate::Context;

/// Reads the configuration again: the file, with the command line's overrides on top.
pub type ConfigSource = Box<dyn Fn() -> anyhow::Result<Config> + Send + Sync>;

/// The context new sessions get, and how to make the next one.
pub struct Live {
    current: RwLock<Arc<Context>>,
    source: ConfigSource,
    /// The plugin directory was named on the command line: its absence is an error.
    plugins_required: bool,
    /// One reload at a time.
    reloading: tokio::sync::Mutex<()>,
}

impl Contexts for Live {
    /// The context a session accepted now is served with.
    fn current(&self) -> Arc<Context> {
        Arc::clone(&self.current.read().expect("live context"))
    }
}

impl Live {
    /// Loads the configuration, users, aliases, plugins and certificate again and, if all of
    /// them load, makes them the set new sessions use. On error nothing changes.
    pub async fn reload(&self) -> anyhow::Result<()> {
        let _one = self.reloading.lock().await;
        let old = self.current();
        let mut config = (self.source)()?;
        let restart = keep_restart_settings(&old.config, &mut config);
        let parts = Parts::load(&config, self.plugins_required, Some(&old.plugins)).await?;
        old.queue.reconfigure(parts.queue_settings(&config));
        let ctx = Context {
            directory: parts.directory,
            store: Arc::clone(&old.store),
            queue: Arc::clone(&old.queue),
            plugins: parts.plugins,
            tls: parts.tls,
            dns: parts.dns,
            dkim: parts.dkim,
            srs: parts.srs,
            penalty: Arc::new(old.penalty.reconfigured(&config.auth)),
            abuse: Arc::new(old.abuse.reconfigured(&config.smtp)),
            shutdown: Arc::clone(&old.shutdown),
            config,
        };
        let (plugins, users) = (ctx.plugins.names().collect::<Vec<_>>().join(" "), ctx.directory.user_count());
        // Swapped before it is logged: whoever reads the line gets the new set.
        *self.current.write().expect("live context") = Arc::new(ctx);
        if !restart.is_empty() {
            tracing::warn!(keys = restart.join(" "), "changed in the config but only a restart applies them; running on the old values");
        }
        tracing::info!(plugins, users, "reloaded: new sessions use the new set");
        Ok(())
    }
}

/// The settings that only a restart applies. Where `new` differs from `running`, the running
/// value is put back into `new` and the key is returned.
fn keep_restart_settings(running: &Config, new: &mut Config) -> Vec<&'static str> {
    let mut changed = Vec::new();
    macro_rules! keep {
        ($($field:ident).+, $key:expr) => {
            if format!("{:?}", running.$($field).+) != format!("{:?}", new.$($field).+) {
                new.$($field).+ = running.$($field).+.clone();
                changed.push($key);
            }
        };
    }
    keep!(hostname, "hostname");
    keep!(data_dir, "data_dir");
    keep!(log_format, "log_format");
    keep!(smtp.listen, "smtp.listen");
    keep!(smtp.submission_listen, "smtp.submission_listen");
    keep!(smtp.submissions_listen, "smtp.submissions_listen");
    keep!(smtp.max_connections, "smtp.max_connections");
    keep!(smtp.max_connections_per_address, "smtp.max_connections_per_address");
    keep!(pop3.listen, "pop3.listen");
    keep!(pop3.tls_listen, "pop3.tls_listen");
    keep!(pop3.max_connections, "pop3.max_connections");
    keep!(pop3.max_connections_per_address, "pop3.max_connections_per_address");
    keep!(imap.listen, "imap.listen");
    keep!(imap.tls_listen, "imap.tls_listen");
    keep!(imap.max_connections, "imap.max_connections");
    keep!(imap.max_connections_per_address, "imap.max_connections_per_address");
    keep!(queue.workers, "queue.workers");
    keep!(metrics.listen, "metrics.listen");
    changed
}

/// What a reload makes anew.
pub struct Parts {
    pub directory: Arc<Directory>,
    pub plugins: Arc<Registry>,
    pub tls: Option<Arc<crate::tls::Tls>>,
    /// The resolver for `[dns] nameservers`.
    pub dns: Arc<crate::dns::Dns>,
    /// The `[[dkim.signer]]` keys.
    pub dkim: Arc<crate::authenticity::signing::Signers>,
    /// `[srs]`, when on.
    pub srs: Option<Arc<crate::authenticity::srs::Srs>>,
    /// The relay client's TLS where certificates are checked (the system's roots and
    /// `[queue] tls_ca_files`).
    pub verified_tls: Arc<rustls::ClientConfig>,
}

impl Parts {
    /// Loads the users, aliases, plugins and certificate. Errors name the file (and line
    /// where there is one). `plugins_required`: the plugin directory was named on the command
    /// line, so its absence is an error rather than "no plugins".
    pub async fn load(config: &Config, plugins_required: bool, previous: Option<&Registry>) -> anyhow::Result<Parts> {
        let directory = Arc::new(Directory::load(config)?);
        let dir = &config.plugins.dir;
        let plugins = if dir.is_dir() {
            let options = LoadOptions { previous, dir, data_dir: &config.data_dir, hostname: &config.hostname, pool: pool_options(config) };
            Registry::load(options).await?
        } else if plugins_required {
            anyhow::bail!("plugin directory {} does not exist", dir.display());
        } else {
            tracing::info!(dir = %dir.display(), "no plugin directory; running without plugins");
            Registry::empty(&config.hostname)
        };
        let tls = load_tls(config)?;
        let dns = Arc::new(crate::dns::Dns::with_trust_anchor(&config.dns.nameservers, config.dns.dnssec_trust_anchor.clone()));
        let dkim = Arc::new(crate::authenticity::signing::Signers::load(&config.dkim)?);
        let srs = crate::authenticity::srs::Srs::load(&config.srs, &config.data_dir, &config.hostname)?.map(Arc::new);
        let verified_tls = crate::tls::verifying_client(&config.queue.tls_ca_files)?;
        Ok(Parts { directory, plugins: Arc::new(plugins), tls, dns, dkim, srs, verified_tls })
    }

    fn queue_settings(&self, config: &Config) -> crate::queue::Settings {
        let router: Arc<dyn crate::queue::Router> = Arc::clone(&self.directory) as _;
        let settings = crate::queue::Settings::new(router, Arc::clone(&self.plugins), config.queue.clone(), &config.routes, Arc::clone(&self.dns));
        crate::queue::Settings {
            header_limits: config.mime.limits(),
            quota: config.quota.clone(),
            srs: self.srs.clone(),
            dkim: Arc::clone(&self.dkim),
            verified_tls: config.queue.mta_sts.then(|| Arc::clone(&self.verified_tls)),
            ..settings
        }
    }
}

/// The plugin instance pool: instances are held by SMTP sessions — up to `max_connections` on
/// each SMTP listener (25, 587 and 465 alike) — and by queue deliveries (local and relay
/// workers).
fn pool_options(config: &Config) -> PoolOptions {
    let smtp = &config.smtp;
    let listeners = smtp.listen.len() + smtp.submission_listen.len() + smtp.submissions_listen.len();
    let holders = listeners.max(1) * smtp.max_connections + config.queue.workers + config.queue.relay_workers;
    PoolOptions {
        holders,
        max_instances: (config.plugins.max_instances > 0).then_some(config.plugins.max_instances),
        wait: config.plugins.pool_wait.0,
    }
}

/// `wasmail check-config`: loads what `serve` and a reload load — the configuration, users,
/// aliases, certificate and every plugin, checked for conflicts — without listening and
/// without touching the running server's files (plugin stores open in a scratch folder).
/// Returns a summary; an error names the file and what is wrong.
pub async fn check(config: &Config, plugins_required: bool) -> anyhow::Result<String> {
    let scratch = std::env::temp_dir().join(format!("wasmail-check-{}", std::process::id()));
    let _cleanup = RemoveOnDrop(scratch.clone());
    let mut config = config.clone();
    let cache = config.data_dir.join("plugin-cache");
    // Compiled plugins are cached in the data directory when it exists (so that the reload
    // that follows finds them compiled); everything else goes to the scratch folder.
    config.data_dir = scratch.clone();
    std::fs::create_dir_all(&scratch).with_context(|| format!("cannot create {}", scratch.display()))?;
    if cache.is_dir() {
        let _ = std::fs::remove_dir(scratch.join("plugin-cache"));
        std::os::unix::fs::symlink(std::fs::canonicalize(&cache)?, scratch.join("plugin-cache"))?;
    }
    let parts = Parts::load(&config, plugins_required, None).await?;
    let mut report = String::new();
    let mut line = |text: String| {
        report.push_str(&text);
        report.push('\n');
    };
    line(format!("config:   ok ({} local domain(s): {})", config.domains.len(), config.domains.join(", ")));
    for warning in &config.warnings {
        line(format!("warning:  {warning}"));
    }
    line(match parts.directory.user_count() {
        0 => format!("users:    none in {} (development mode)", config.users_file.display()),
        n => format!("users:    {n} in {}", config.users_file.display()),
    });
    line(if config.aliases_file.exists() {
        format!("aliases:  {} (read)", config.aliases_file.display())
    } else {
        format!("aliases:  none ({} does not exist)", config.aliases_file.display())
    });
    line(match &parts.tls {
        Some(_) => format!("tls:      {} and {}", config.tls.cert.display(), config.tls.key.display()),
        None => "tls:      off (no certificate)".to_string(),
    });
    let names: Vec<&str> = parts.plugins.names().collect();
    line(if names.is_empty() {
        format!("plugins:  none ({})", config.plugins.dir.display())
    } else {
        format!("plugins:  {} from {}: {}", names.len(), config.plugins.dir.display(), names.join(", "))
    });
    for keyword in parts.plugins.ehlo_lines() {
        line(format!("          EHLO {keyword}"));
    }
    drop(line);
    Ok(report)
}

/// Removes a scratch folder when dropped.
struct RemoveOnDrop(std::path::PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Loads everything and opens the store and the queue: the first context.
pub async fn build_context(config: Config, plugins_required: bool) -> anyhow::Result<Arc<Context>> {
    let parts = Parts::load(&config, plugins_required, None).await?;
    let store = Maildir::new(&config.data_dir, &config.hostname)
        .with_context(|| format!("cannot create the mail store under {}", config.data_dir.display()))?;
    let store: Arc<dyn crate::store::MailStore> = Arc::new(store);
    let shutdown = Arc::new(Shutdown::default());
    let queue = Queue::open(&config.data_dir, &config.hostname, Arc::clone(&store), parts.queue_settings(&config), Arc::clone(&shutdown))
        .with_context(|| format!("cannot open the queue under {}", config.data_dir.display()))?;
    let penalty = Arc::new(crate::sasl::Penalty::new(&config.auth));
    let abuse = Arc::new(crate::abuse::Abuse::new(&config.smtp));
    Ok(Arc::new(Context {
        directory: parts.directory,
        store,
        queue: Arc::new(queue),
        plugins: parts.plugins,
        tls: parts.tls,
        dns: parts.dns,
        dkim: parts.dkim,
        srs: parts.srs,
        penalty,
        abuse,
        shutdown,
        config,
    }))
}

/// The certificate and key, if `[tls]` names files that exist. Only one of them, a file that
/// does not load, or a TLS listener without them is an error.
fn load_tls(config: &Config) -> anyhow::Result<Option<Arc<crate::tls::Tls>>> {
    let (cert, key) = (&config.tls.cert, &config.tls.key);
    let tls_listeners = !config.smtp.submissions_listen.is_empty() || !config.pop3.tls_listen.is_empty() || !config.imap.tls_listen.is_empty();
    match (cert.exists(), key.exists()) {
        (true, true) => {
            let tls = crate::tls::Tls::load(cert, key)?;
            tracing::info!(cert = %cert.display(), "TLS on: STARTTLS and STLS are offered");
            Ok(Some(Arc::new(tls)))
        }
        (false, false) if !tls_listeners => {
            tracing::info!(cert = %cert.display(), "no certificate: TLS is off (`wasmail cert self-signed` writes a pair)");
            Ok(None)
        }
        (false, false) => {
            anyhow::bail!("a TLS listener is configured but {} does not exist ([tls] cert; `wasmail cert self-signed` writes a pair)", cert.display())
        }
        (true, false) => anyhow::bail!("{} exists but the key {} does not ([tls] key)", cert.display(), key.display()),
        (false, true) => anyhow::bail!("{} exists but the certificate {} does not ([tls] cert)", key.display(), cert.display()),
    }
}

/// Binds one listener; errors name the address and the config key.
async fn bind(addr: &std::net::SocketAddr, key: &str, protocol: &str) -> anyhow::Result<TcpListener> {
    let listener = TcpListener::bind(addr).await.with_context(|| format!("cannot listen on {addr} ({key})"))?;
    // Tests and operators read the real address from this line (port 0 picks one).
    tracing::info!(protocol, addr = %listener.local_addr()?, "listening");
    Ok(listener)
}

/// Binds every listener, then serves until SIGINT or SIGTERM, reloading on SIGHUP.
pub async fn run(ctx: Arc<Context>, source: ConfigSource, plugins_required: bool) -> anyhow::Result<()> {
    let config = &ctx.config;
    let mut smtp_listeners = Vec::new();
    for (addrs, port, key, protocol) in [
        (&config.smtp.listen, Port::Mx, "smtp.listen", "smtp"),
        (&config.smtp.submission_listen, Port::Submission, "smtp.submission_listen", "submission"),
        (&config.smtp.submissions_listen, Port::Submissions, "smtp.submissions_listen", "submissions"),
    ] {
        for addr in addrs {
            smtp_listeners.push((bind(addr, key, protocol).await?, port, protocol));
        }
    }
    let mut pop3_listeners = Vec::new();
    for (addrs, implicit_tls, key, protocol) in
        [(&config.pop3.listen, false, "pop3.listen", "pop3"), (&config.pop3.tls_listen, true, "pop3.tls_listen", "pop3s")]
    {
        for addr in addrs {
            pop3_listeners.push((bind(addr, key, protocol).await?, implicit_tls));
        }
    }
    let mut imap_listeners = Vec::new();
    for (addrs, implicit_tls, key, protocol) in
        [(&config.imap.listen, false, "imap.listen", "imap"), (&config.imap.tls_listen, true, "imap.tls_listen", "imaps")]
    {
        for addr in addrs {
            imap_listeners.push((bind(addr, key, protocol).await?, implicit_tls));
        }
    }
    let metrics_listener = match config.metrics.listen {
        Some(addr) => Some(bind(&addr, "metrics.listen", "metrics").await?),
        None => None,
    };
    if ctx.directory.development_mode() {
        tracing::warn!(
            users_file = %config.users_file.display(),
            "development mode: no users file, so every local part of {} has a mailbox",
            config.domains.join(", ")
        );
    }
    // The handlers go in before the pid file appears: whoever reads the pid may signal at once,
    // and a SIGTERM before them would kill the process without its shutdown.
    let mut hangup = signal(tokio::signal::unix::SignalKind::hangup());
    let mut terminate = signal(tokio::signal::unix::SignalKind::terminate());
    let mut interrupt = signal(tokio::signal::unix::SignalKind::interrupt());
    let _pid_file = PidFile::create(&config.data_dir)?;
    // What was queued before a restart or a crash is delivered first.
    let recovered = ctx.queue.recover().with_context(|| format!("cannot read the queue in {}", ctx.queue.spool().dir().display()))?;
    if recovered > 0 {
        tracing::info!(entries = recovered, "delivering what the queue held from before");
    }
    tokio::spawn(Arc::clone(&ctx.queue).watch_requests());
    let live = Arc::new(Live { current: RwLock::new(Arc::clone(&ctx)), source, plugins_required, reloading: tokio::sync::Mutex::new(()) });
    if let Some(listener) = metrics_listener {
        let live = Arc::clone(&live);
        tokio::spawn(crate::metrics::serve(listener, move || {
            let ctx = live.current();
            let (queue_messages, queue_oldest_seconds) = ctx.queue.size_and_age();
            crate::metrics::Gauges { sessions: ctx.shutdown.sessions(), queue_messages, queue_oldest_seconds, plugins: ctx.plugins.names().count() }
        }));
    }
    tracing::info!(hostname = config.hostname, data_dir = %config.data_dir.display(), pid = std::process::id(), "wasmail started");
    let mut tasks = tokio::task::JoinSet::new();
    for (listener, port, protocol) in smtp_listeners {
        tasks.spawn(crate::smtp::serve(listener, Arc::clone(&live) as Arc<dyn Contexts>, port, protocol));
    }
    let locks = Arc::new(crate::pop3::Locks::default());
    for (listener, implicit_tls) in pop3_listeners {
        tasks.spawn(crate::pop3::serve(listener, Arc::clone(&live) as Arc<dyn Contexts>, Arc::clone(&locks), implicit_tls));
    }
    let structures = Arc::new(crate::imap::StructureCache::default());
    for (listener, implicit_tls) in imap_listeners {
        tasks.spawn(crate::imap::serve(listener, Arc::clone(&live) as Arc<dyn Contexts>, Arc::clone(&structures), implicit_tls));
    }
    loop {
        tokio::select! {
            _ = hangup.recv() => {
                tracing::info!("SIGHUP: reloading");
                let outcome = live.reload().await;
                crate::metrics::get().reload(outcome.is_ok());
                if let Err(e) = &outcome {
                    tracing::error!(error = format!("{e:#}"), "reload failed; still running on the previous set");
                }
                crate::lifecycle::write_reload_status(&ctx.config.data_dir, &outcome);
            }
            _ = terminate.recv() => break,
            _ = interrupt.recv() => break,
        }
    }
    drop(ctx);
    // A second SIGTERM or SIGINT during the grace period cuts it short.
    let again = async move {
        tokio::select! {
            _ = terminate.recv() => {}
            _ = interrupt.recv() => {}
        }
    };
    shut_down(&live.current(), tasks, again).await;
    Ok(())
}

fn signal(kind: tokio::signal::unix::SignalKind) -> tokio::signal::unix::Signal {
    tokio::signal::unix::signal(kind).expect("install a signal handler")
}

/// The stages of [`crate::lifecycle`]: stop accepting, give sessions their grace, tell the
/// rest to close, let deliveries in flight finish.
async fn shut_down(ctx: &Context, mut listeners: tokio::task::JoinSet<()>, again: impl std::future::Future<Output = ()>) {
    let shutdown = &ctx.shutdown;
    let grace = ctx.config.server.shutdown_grace.0;
    tracing::info!(sessions = shutdown.sessions(), grace_seconds = grace.as_secs_f64(), "shutting down: closing the listeners");
    shutdown.enter(Stage::Draining);
    while listeners.join_next().await.is_some() {}
    tokio::select! {
        _ = shutdown.all_sessions_ended() => {}
        _ = tokio::time::sleep(grace) => {
            tracing::info!(sessions = shutdown.sessions(), "grace period over: telling the sessions left to close");
        }
        _ = again => {
            tracing::info!(sessions = shutdown.sessions(), "signalled again: telling the sessions left to close now");
        }
    }
    shutdown.enter(Stage::Closing);
    // A session ends at its next read; one in the middle of a command (a message being
    // written to the spool, a plugin call) finishes the command first.
    if tokio::time::timeout(Duration::from_secs(10), shutdown.all_sessions_ended()).await.is_err() {
        tracing::warn!(sessions = shutdown.sessions(), "sessions still busy after 10 s; exiting without them");
    }
    // A delivery attempt in flight finishes; past the deadline it stays in the spool and the
    // next start completes it (without second copies: see `queue`).
    if tokio::time::timeout(Duration::from_secs(10), ctx.queue.attempts_finished()).await.is_err() {
        tracing::warn!("deliveries still in flight after 10 s; the queue keeps them for the next start");
    }
    tracing::info!("wasmail stopped");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plugin_pool_counts_every_smtp_listener_and_the_queue() {
        let mut config = Config::default();
        let addr: std::net::SocketAddr = "127.0.0.1:0".parse().unwrap();
        config.smtp.listen = vec![addr];
        config.smtp.submission_listen = vec![addr];
        config.smtp.submissions_listen = vec![addr];
        config.smtp.max_connections = 40;
        let pool = pool_options(&config);
        assert_eq!(pool.holders, 3 * 40 + 16 + 16, "40 sessions on each of 25, 587 and 465, and the queue's workers");
        assert_eq!(pool.wait, std::time::Duration::from_secs(10));
    }
}
