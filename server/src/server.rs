//! `wasmail serve`: load what the configuration names, bind the listeners, run until a signal.

use std::sync::Arc;

use anyhow::Context as _;
use tokio::net::TcpListener;

use crate::config::Config;
use crate::directory::Directory;
use crate::plugin::{LoadOptions, Registry};
use crate::queue::Queue;
use crate::smtp::Port;
use crate::store::Maildir;
use crate::Context;

/// Loads the users, aliases and plugins and opens the store. Errors name the file (and line
/// where there is one). `plugins_required`: the plugin directory was named on the command
/// line, so its absence is an error rather than "no plugins".
pub async fn build_context(config: Config, plugins_required: bool) -> anyhow::Result<Arc<Context>> {
    let directory = Arc::new(Directory::load(&config)?);
    let store = Maildir::new(&config.data_dir, &config.hostname)
        .with_context(|| format!("cannot create the mail store under {}", config.data_dir.display()))?;
    let dir = &config.plugins.dir;
    let plugins = if dir.is_dir() {
        Registry::load(LoadOptions { dir, data_dir: &config.data_dir, hostname: &config.hostname, max_sessions: config.smtp.max_connections }).await?
    } else if plugins_required {
        anyhow::bail!("plugin directory {} does not exist", dir.display());
    } else {
        tracing::info!(dir = %dir.display(), "no plugin directory; running without plugins");
        Registry::empty(&config.hostname)
    };
    let store: Arc<dyn crate::store::MailStore> = Arc::new(store);
    let router: Arc<dyn crate::queue::Router> = Arc::clone(&directory) as _;
    let plugins = Arc::new(plugins);
    let queue =
        Queue::open(&config.data_dir, &config.hostname, Arc::clone(&store), router, config.queue.clone(), &config.routes, Arc::clone(&plugins))
            .with_context(|| format!("cannot open the queue under {}", config.data_dir.display()))?;
    let tls = load_tls(&config)?;
    let penalty = Arc::new(crate::sasl::Penalty::new(&config.auth));
    let abuse = Arc::new(crate::abuse::Abuse::new(&config.smtp));
    Ok(Arc::new(Context { config, directory, store, queue: Arc::new(queue), plugins, tls, penalty, abuse }))
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

/// Binds every listener, then serves until SIGINT or SIGTERM.
pub async fn run(ctx: Arc<Context>) -> anyhow::Result<()> {
    let mut listeners = Vec::new();
    let smtp = &ctx.config.smtp;
    for (addrs, port, key, protocol) in [
        (&smtp.listen, Port::Mx, "smtp.listen", "smtp"),
        (&smtp.submission_listen, Port::Submission, "smtp.submission_listen", "submission"),
        (&smtp.submissions_listen, Port::Submissions, "smtp.submissions_listen", "submissions"),
    ] {
        for addr in addrs {
            let listener = TcpListener::bind(addr).await.with_context(|| format!("cannot listen on {addr} ({key})"))?;
            // Tests and operators read the real address from this line (port 0 picks one).
            tracing::info!(protocol, addr = %listener.local_addr()?, "listening");
            listeners.push((listener, port));
        }
    }
    let mut pop3_listeners = Vec::new();
    for (addrs, implicit_tls, key, protocol) in
        [(&ctx.config.pop3.listen, false, "pop3.listen", "pop3"), (&ctx.config.pop3.tls_listen, true, "pop3.tls_listen", "pop3s")]
    {
        for addr in addrs {
            let listener = TcpListener::bind(addr).await.with_context(|| format!("cannot listen on {addr} ({key})"))?;
            tracing::info!(protocol, addr = %listener.local_addr()?, "listening");
            pop3_listeners.push((listener, implicit_tls));
        }
    }
    let mut imap_listeners = Vec::new();
    for (addrs, implicit_tls, key, protocol) in
        [(&ctx.config.imap.listen, false, "imap.listen", "imap"), (&ctx.config.imap.tls_listen, true, "imap.tls_listen", "imaps")]
    {
        for addr in addrs {
            let listener = TcpListener::bind(addr).await.with_context(|| format!("cannot listen on {addr} ({key})"))?;
            tracing::info!(protocol, addr = %listener.local_addr()?, "listening");
            imap_listeners.push((listener, implicit_tls));
        }
    }
    if ctx.directory.development_mode() {
        tracing::warn!(
            users_file = %ctx.config.users_file.display(),
            "development mode: no users file, so every local part of {} has a mailbox",
            ctx.config.domains.join(", ")
        );
    }
    // What was queued before a restart or a crash is delivered first.
    let recovered = ctx.queue.recover().with_context(|| format!("cannot read the queue in {}", ctx.queue.spool().dir().display()))?;
    if recovered > 0 {
        tracing::info!(entries = recovered, "delivering what the queue held from before");
    }
    tokio::spawn(Arc::clone(&ctx.queue).watch_flush_requests());
    tracing::info!(hostname = ctx.config.hostname, data_dir = %ctx.config.data_dir.display(), "wasmail started");
    for (listener, port) in listeners {
        tokio::spawn(crate::smtp::serve(listener, Arc::clone(&ctx), port));
    }
    let locks = Arc::new(crate::pop3::Locks::default());
    for (listener, implicit_tls) in pop3_listeners {
        tokio::spawn(crate::pop3::serve(listener, Arc::clone(&ctx), Arc::clone(&locks), implicit_tls));
    }
    let structures = Arc::new(crate::imap::StructureCache::default());
    for (listener, implicit_tls) in imap_listeners {
        tokio::spawn(crate::imap::serve(listener, Arc::clone(&ctx), Arc::clone(&structures), implicit_tls));
    }
    shutdown_signal().await;
    // Every message answered 250 is in the spool; sessions in flight simply end, and
    // deliveries in progress are finished at the next start (without second copies).
    tracing::info!("shutting down");
    Ok(())
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
