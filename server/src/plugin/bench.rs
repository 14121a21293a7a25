//! `wasmail plugin bench DIR`: what plugins cost, measured the way a session pays it — the
//! instantiation of every loaded plugin (fresh `Store`, WASI context, `InstancePre`
//! instantiation from the pool) and one hook call on an existing instance.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context as _;

use super::bindings::types as wit;
use super::{arm_deadline, new_store, Hook, LoadOptions, MimeLimits, MimeOutcome, PoolOptions, Registry, SessionPlugins};

/// Microsecond figures, averaged.
pub struct Figures {
    pub plugins: usize,
    /// Instantiating all loaded plugins for one session.
    pub session_instantiation_us: f64,
    /// One `on-mail-from` call on an existing instance, per plugin that has the hook.
    pub hook_call_us: f64,
    /// Which plugin the hook call was measured on.
    pub hook_plugin: String,
}

pub async fn measure(dir: &Path, rounds: u32) -> anyhow::Result<Figures> {
    let scratch = std::env::temp_dir().join(format!("wasmail-bench-{}", std::process::id()));
    std::fs::create_dir_all(&scratch)?;
    let registry =
        Registry::load(LoadOptions { previous: None, dir, data_dir: &scratch, hostname: "bench", pool: PoolOptions::for_holders(100) }).await?;
    anyhow::ensure!(!registry.plugins.is_empty(), "no enabled plugins in {}", dir.display());
    let session: Arc<str> = "bench".into();
    let hostname: Arc<str> = "bench".into();

    // Whole sessions' worth of instantiations (and the drops that free their slots), after
    // a warm-up.
    let mut elapsed = std::time::Duration::ZERO;
    for round in 0..rounds + 10 {
        let started = Instant::now();
        let mut instances = Vec::new();
        for plugin in &registry.plugins {
            let mut store = new_store(&registry.engine, &plugin.shared, Arc::clone(&session), Arc::clone(&hostname));
            arm_deadline(&mut store, plugin.settings().call_timeout.0);
            let instance = plugin.pre.instantiate_async(&mut store).await.map_err(|e| anyhow::anyhow!("{e:#}"))?;
            instances.push((store, instance));
        }
        drop(instances);
        if round >= 10 {
            elapsed += started.elapsed();
        }
    }
    let session_instantiation_us = elapsed.as_secs_f64() * 1e6 / f64::from(rounds);

    // One hook call: on-mail-from of the first plugin that has it, with a realistic argument.
    let index = registry.plugins.iter().position(|p| p.wants(Hook::MailFrom)).unwrap_or(0);
    let plugin = &registry.plugins[index];
    let mut store = new_store(&registry.engine, &plugin.shared, Arc::clone(&session), Arc::clone(&hostname));
    arm_deadline(&mut store, std::time::Duration::from_secs(3600));
    let instance = plugin.pre.instantiate_async(&mut store).await.map_err(|e| anyhow::anyhow!("{e:#}"))?;
    let info = wit::AddressInfo {
        address: "daniel@client.example".into(),
        params: vec![wit::Param { keyword: "SIZE".into(), value: Some("4096".into()) }],
        client_ip: "192.0.2.1".into(),
    };
    let guest = instance.wasmail_plugin_session();
    for _ in 0..100 {
        guest.call_on_mail_from(&mut store, &info).await.map_err(|e| anyhow::anyhow!("{e:#}"))?;
    }
    let calls = rounds * 10;
    let started = Instant::now();
    for _ in 0..calls {
        guest.call_on_mail_from(&mut store, &info).await.map_err(|e| anyhow::anyhow!("{e:#}"))?;
    }
    let hook_call_us = started.elapsed().as_secs_f64() * 1e6 / f64::from(calls);
    let _ = std::fs::remove_dir_all(&scratch);
    Ok(Figures { plugins: registry.plugins.len(), session_instantiation_us, hook_call_us, hook_plugin: plugin.name().to_string() })
}

/// What handling one message costs.
pub struct MimeFigures {
    pub file: String,
    pub size: usize,
    /// Parts the handlers replaced or removed (the output's parts that differ from the input).
    pub changed_parts: usize,
    pub messages_per_second: f64,
    /// Input octets per second, in millions.
    pub megabytes_per_second: f64,
}

/// `wasmail plugin bench-mime DIR MESSAGE...`: each message, in CRLF form as SMTP has it, goes
/// through what the end of DATA does — the limit check (a parse), a new session's plugins
/// (instantiated at their first call), every matching handler, and the rewrite — `rounds`
/// times.
pub async fn measure_mime(dir: &Path, files: &[std::path::PathBuf], rounds: u32) -> anyhow::Result<Vec<MimeFigures>> {
    let scratch = std::env::temp_dir().join(format!("wasmail-bench-mime-{}", std::process::id()));
    std::fs::create_dir_all(&scratch)?;
    let registry = Arc::new(
        Registry::load(LoadOptions { previous: None, dir, data_dir: &scratch, hostname: "bench", pool: PoolOptions::for_holders(100) }).await?,
    );
    let limits = MimeLimits { parse: wasmail_mime::Limits::default(), body: 10 << 20, max_message: 25 << 20 };
    let mut out = Vec::new();
    for file in files {
        let raw = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
        let content = crate::store::lf_to_crlf(&raw);
        let mut changed_parts = 0;
        let run = |registry: &Arc<Registry>| {
            let registry = Arc::clone(registry);
            let content = &content;
            let limits = &limits;
            async move {
                // black_box: the parse's result is otherwise unused; nothing may let the
                // optimizer drop it from what is timed.
                std::hint::black_box(wasmail_mime::parse(std::hint::black_box(content), &limits.parse).map_err(|e| anyhow::anyhow!("{e}"))?);
                let mut session = SessionPlugins::new(registry, "bench");
                match session.on_mime(content, limits).await {
                    MimeOutcome::Pass(rewritten) => anyhow::Ok(rewritten),
                    MimeOutcome::Refuse(reply) => anyhow::bail!("a handler refused the message: {reply}"),
                }
            }
        };
        // Warm-up, and what changed.
        if let Some(rewritten) = run(&registry).await? {
            changed_parts = changed(&content, &rewritten);
        }
        let started = Instant::now();
        for _ in 0..rounds {
            std::hint::black_box(run(&registry).await?);
        }
        let seconds = started.elapsed().as_secs_f64();
        out.push(MimeFigures {
            file: file.file_name().unwrap_or_default().to_string_lossy().into_owned(),
            size: content.len(),
            changed_parts,
            messages_per_second: f64::from(rounds) / seconds,
            megabytes_per_second: content.len() as f64 * f64::from(rounds) / seconds / 1e6,
        });
    }
    let _ = std::fs::remove_dir_all(&scratch);
    Ok(out)
}

/// Leaves whose bytes differ between two versions of a message with the same structure.
fn changed(before: &[u8], after: &[u8]) -> usize {
    let limits = wasmail_mime::Limits::default();
    let (Ok(a), Ok(b)) = (wasmail_mime::parse(before, &limits), wasmail_mime::parse(after, &limits)) else { return 0 };
    a.leaves().iter().zip(b.leaves().iter()).filter(|(x, y)| before[x.part.body.clone()] != after[y.part.body.clone()]).count()
}
