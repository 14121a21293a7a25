//! The wasm plugin host.
//!
//! - `bindings`: `bindgen!` over `wit/`, the one contract host and SDK share.
//! - [`Registry`] (this file): one `Engine` for the process (pooling allocator, epoch
//!   interruption, compiled components cached on disk by content hash), every plugin of the
//!   plugin directory compiled once into an `InstancePre`, its manifest read and checked, and
//!   the verbs, keywords and parameters it claims.
//! - `session`: [`SessionPlugins`], a session's lazily made instances and the hook calls, with
//!   each plugin's limits and failure policy.
//! - `state`: a `Store`'s data: WASI with nothing granted, the memory limiter, the `host`
//!   interface (log, config, clock, key-value store).
//! - `kv`, `settings`, `validate`: the key-value store, `NAME.toml`, and the checks on every
//!   value a guest returns.

pub mod bench;
mod bindings;
pub mod delivery;
pub mod kv;
mod mime;
mod session;
pub mod settings;
mod state;
pub mod validate;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context as _};
use tokio::sync::Semaphore;
use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Cache, CacheConfig, Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store};

pub use bindings::types::{AddressInfo, ConnectInfo, EhloKeyword, Envelope, Header, HeaderChange, HeloInfo, Hook, Manifest, Param};
/// The checks of mail received, as plugins see them (`host.authentication`).
pub use bindings::wasmail::plugin::host::{AuthResult, AuthenticationResults, DkimCheck, DmarcCheck, DmarcPolicy, SpfCheck};
pub use mime::{MimeLimits, MimeOutcome};
pub use session::SessionPlugins;
pub use settings::{FailurePolicy, PluginSettings};
pub use validate::Decision;

use bindings::{Plugin, PluginPre};
use state::{Limiter, State, StderrToLog};

/// What one header field costs in a guest beyond its text (the two string pointers and
/// lengths of the canonical ABI), when header fields are measured against `argument_room`.
pub const HEADER_OVERHEAD: usize = 16;

/// WASI resources (streams, pollables) one instance may hold at once: a plugin needs a
/// handful; past this many the call that makes another traps (wasmtime's own default, a
/// million, would let one instance hold a hundred megabytes of host memory).
const MAX_RESOURCES: usize = 1024;

/// The epoch ticks this often: a running guest yields, and its deadline is checked, at each
/// tick.
const EPOCH_TICK: Duration = Duration::from_millis(5);

/// What every instance of a plugin shares: its identity, settings and key-value store.
pub struct Shared {
    /// The file stem of `NAME.wasm`: the name in logs, config and the data directory.
    pub name: String,
    /// From `NAME.toml`.
    pub settings: PluginSettings,
    /// Its key-value store (the same one across reloads: one writer per file).
    pub kv: Arc<kv::KvStore>,
}

/// A loaded plugin.
pub struct Loaded {
    /// Name, settings and key-value store, which every instance's state points to.
    pub shared: Arc<Shared>,
    /// What the plugin said it adds, checked.
    pub manifest: Manifest,
    /// Compiled, linked, ready to instantiate.
    pre: PluginPre<State>,
    /// The WIT package version the component was built against (`0.1.0`, `0.1.1`).
    pub wit: String,
}

impl Loaded {
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    pub fn settings(&self) -> &PluginSettings {
        &self.shared.settings
    }

    /// The most octets of arguments (header fields, a part's body) the host copies into this
    /// plugin in one call: a quarter of its memory limit, checked before the copy, so that
    /// what a client sent can never make the plugin run out of memory and be skipped.
    pub fn argument_room(&self) -> usize {
        usize::try_from(self.shared.settings.memory_limit.0 / 4).unwrap_or(usize::MAX)
    }

    pub fn wants(&self, hook: Hook) -> bool {
        self.manifest.hooks.contains(&hook)
    }

    /// Whether a hook may make an instance, or only use one a verb made.
    pub fn hooks_need_verb(&self) -> bool {
        self.manifest.activated_by_verb
    }
}

/// Every loaded plugin, in order, and what they claim.
pub struct Registry {
    /// The one engine of the process for plugins: pooling allocator, epoch interruption.
    engine: Engine,
    /// What the engine's pool was sized for: a reload keeps the engine while its plugins fit.
    pool: Option<PoolSize>,
    /// Free instance slots of the pool: an instance takes one for its life, so that a session
    /// waits for a slot instead of the pool refusing the instantiation.
    pub(crate) slots: Arc<Semaphore>,
    /// How long a session waits for a slot.
    pub(crate) pool_wait: Duration,
    /// Sorted by `order`, then name.
    plugins: Vec<Arc<Loaded>>,
    /// Verb to the index of the plugin that answers it.
    verbs: HashMap<String, usize>,
    /// MAIL parameter keyword to its plugin.
    mail_params: HashMap<String, usize>,
    /// RCPT parameter keyword to its plugin.
    rcpt_params: HashMap<String, usize>,
    /// The server's host name, for `host.hostname`.
    hostname: Arc<str>,
}

/// What an engine's instance pool holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct PoolSize {
    /// Bytes of linear memory per instance.
    max_memory: usize,
    /// Component instances.
    instances: u32,
}

/// Where plugins are loaded from and what the engine is sized for.
pub struct LoadOptions<'a> {
    /// The registry in use, on a reload: its engine is kept when the new set fits its pool,
    /// and a plugin loaded again keeps its key-value store.
    pub previous: Option<&'a Registry>,
    /// The plugin folder.
    pub dir: &'a Path,
    /// The data directory: plugin stores and the compile cache live under it.
    pub data_dir: &'a Path,
    /// The server's host name, for `host.hostname`.
    pub hostname: &'a str,
    /// How the instance pool is sized.
    pub pool: PoolOptions,
}

/// The most instances a computed pool holds. Each slot maps a fiber stack with a guard page
/// and reserves linear memory; 50,000 slots passed Linux's default limit of 65,530 mappings
/// per process and the engine could not be made. Past this, sessions wait for a slot.
const MAX_POOL: usize = 10_000;

/// How the instance pool is sized and how long a session waits for a free instance.
#[derive(Debug, Clone, Copy)]
pub struct PoolOptions {
    /// What can hold instances at once — SMTP sessions on every listener and queue
    /// deliveries —: the pool holds an instance of every plugin for each.
    pub holders: usize,
    /// `[plugins] max_instances`: the operator's size instead of the computed one.
    pub max_instances: Option<u32>,
    /// `[plugins] pool_wait`.
    pub wait: Duration,
}

impl PoolOptions {
    /// For tools and benchmarks: room for `holders` sessions, the default wait.
    pub fn for_holders(holders: usize) -> PoolOptions {
        PoolOptions { holders, max_instances: None, wait: Duration::from_secs(10) }
    }

    /// Component instances in the pool for `plugins` plugins.
    fn instances(&self, plugins: usize) -> u32 {
        match self.max_instances {
            Some(n) => n.clamp(1, MAX_POOL as u32),
            None => (self.holders.max(1).saturating_mul(plugins.max(1))).clamp(100, MAX_POOL) as u32,
        }
    }
}

impl Registry {
    /// A registry with no plugins (no plugin directory).
    pub fn empty(hostname: &str) -> Registry {
        Registry {
            engine: Engine::default(),
            pool: None,
            slots: Arc::new(Semaphore::new(0)),
            pool_wait: Duration::ZERO,
            plugins: Vec::new(),
            verbs: HashMap::new(),
            mail_params: HashMap::new(),
            rcpt_params: HashMap::new(),
            hostname: hostname.into(),
        }
    }

    /// Loads every enabled `*.wasm` of the directory. Errors name the file and what is wrong.
    pub async fn load(options: LoadOptions<'_>) -> anyhow::Result<Registry> {
        let mut found = Vec::new();
        let entries = std::fs::read_dir(options.dir).with_context(|| format!("cannot read the plugin directory {}", options.dir.display()))?;
        for entry in entries {
            let path = entry?.path();
            if path.extension().is_some_and(|e| e == "wasm") {
                let settings = PluginSettings::load(&path.with_extension("toml"))?;
                let name = path.file_stem().unwrap_or_default().to_string_lossy().into_owned();
                if !settings.enabled {
                    tracing::info!(plugin = name, "plugin disabled in its .toml; not loaded");
                    continue;
                }
                found.push((name, path, settings));
            }
        }
        found.sort_by(|a, b| (a.2.order, &a.0).cmp(&(b.2.order, &b.0)));
        let max_memory = found.iter().map(|f| f.2.memory_limit.0 as usize).max().unwrap_or(64 << 20);
        let instances = options.pool.instances(found.len());
        let wanted = PoolSize { max_memory, instances };
        let engine = match options.previous {
            Some(previous) if previous.pool.is_some_and(|p| p.max_memory >= max_memory && p.instances >= instances) => previous.engine.clone(),
            _ => make_engine(Some(&options.data_dir.join("plugin-cache")), max_memory, instances)?,
        };
        let linker = make_linker(&engine)?;
        // A kept engine keeps its pool, and the count of its free slots with it.
        let (pool, slots) = match options.previous {
            Some(previous) if Engine::same(&previous.engine, &engine) => (previous.pool, Arc::clone(&previous.slots)),
            _ => (Some(wanted), Arc::new(Semaphore::new(instances as usize))),
        };
        if !found.is_empty() {
            tracing::info!(instances = pool.map_or(0, |p| p.instances), holders = options.pool.holders, "plugin instance pool");
        }

        let mut registry = Registry {
            engine,
            pool,
            slots,
            pool_wait: options.pool.wait,
            plugins: Vec::new(),
            verbs: HashMap::new(),
            mail_params: HashMap::new(),
            rcpt_params: HashMap::new(),
            hostname: options.hostname.into(),
        };
        let mut keywords: HashMap<String, String> = HashMap::new();
        for (name, path, settings) in found {
            let started = std::time::Instant::now();
            let kv = options.previous.and_then(|p| p.plugins.iter().find(|l| l.name() == name)).map(|l| Arc::clone(&l.shared.kv));
            let loaded = load_one(&registry.engine, &linker, &name, &path, settings, options.data_dir, &registry.hostname, kv).await?;
            let index = registry.plugins.len();
            for keyword in &loaded.manifest.ehlo_keywords {
                if let Some(other) = keywords.insert(keyword.name.clone(), name.clone()) {
                    bail!("plugins {other} and {name} both claim the EHLO keyword {}", keyword.name);
                }
            }
            for (claims, table, what) in [
                (&loaded.manifest.verbs, &mut registry.verbs, "verb"),
                (&loaded.manifest.mail_params, &mut registry.mail_params, "MAIL parameter"),
                (&loaded.manifest.rcpt_params, &mut registry.rcpt_params, "RCPT parameter"),
            ] {
                for claim in claims {
                    if let Some(other) = table.insert(claim.clone(), index) {
                        bail!("plugins {} and {name} both claim the {what} {claim}", registry.plugins[other].name());
                    }
                }
            }
            tracing::info!(
                plugin = name,
                version = loaded.manifest.version,
                verbs = loaded.manifest.verbs.join(" "),
                keywords = loaded.manifest.ehlo_keywords.iter().map(|k| k.name.as_str()).collect::<Vec<_>>().join(" "),
                order = loaded.settings().order,
                fail = ?loaded.settings().fail,
                millis = started.elapsed().as_millis() as u64,
                "plugin loaded"
            );
            registry.plugins.push(Arc::new(loaded));
        }
        Ok(registry)
    }

    /// The EHLO lines the plugins add, in plugin order.
    /// Whether some plugin asked for `hook` (outside a session: modes activated by a verb
    /// never apply).
    pub fn plugins_with(&self, hook: Hook) -> bool {
        self.plugins.iter().any(|p| p.wants(hook) && !p.hooks_need_verb())
    }

    /// The smallest `argument_room` of the plugins with `hook`: what a value given to all of
    /// them must fit in.
    pub fn argument_room(&self, hook: Hook) -> usize {
        self.plugins.iter().filter(|p| p.wants(hook)).map(|p| p.argument_room()).min().unwrap_or(usize::MAX)
    }

    pub fn ehlo_lines(&self) -> impl Iterator<Item = String> + '_ {
        self.plugins.iter().flat_map(|p| &p.manifest.ehlo_keywords).map(ehlo_line)
    }

    /// The loaded plugins' names, in order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.plugins.iter().map(|p| p.name())
    }

    pub fn claims_mail_param(&self, keyword: &str) -> bool {
        self.mail_params.contains_key(keyword)
    }

    pub fn claims_rcpt_param(&self, keyword: &str) -> bool {
        self.rcpt_params.contains_key(keyword)
    }
}

/// The engine: component model, epoch interruption for CPU deadlines, the pooling allocator
/// sized for `instances` instances of at most `max_memory` bytes, and the on-disk cache of
/// compiled code (keyed by a hash of the component and the engine's settings).
fn make_engine(cache_dir: Option<&Path>, max_memory: usize, instances: u32) -> anyhow::Result<Engine> {
    let mut config = Config::new();
    config.wasm_component_model(true);
    config.epoch_interruption(true);
    // Guest code runs on fibers of this size; deep recursion traps at max_wasm_stack first.
    config.async_stack_size(1 << 20);
    config.max_wasm_stack(512 * 1024);
    if let Some(dir) = cache_dir {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        // wasmtime wants an absolute path.
        let dir = std::fs::canonicalize(dir).with_context(|| format!("cannot resolve {}", dir.display()))?;
        let mut cache = CacheConfig::new();
        cache.with_directory(&dir);
        config.cache(Some(Cache::new(cache).map_err(|e| anyhow::anyhow!("cannot use the compile cache in {}: {e:#}", dir.display()))?));
    }
    let mut pool = PoolingAllocationConfig::default();
    pool.total_component_instances(instances);
    // A Rust wasip2 component holds a few core instances (the program and WASI adapters).
    pool.total_core_instances(instances * 8);
    pool.total_memories(instances * 2);
    pool.total_tables(instances * 8);
    pool.max_memory_size(max_memory);
    // Fibers for `call_async`: one per hook call in flight.
    pool.total_stacks(instances);
    // Reset a freed slot by rewriting the pages the instance touched (found with Linux's
    // PAGEMAP_SCAN, kernel 6.7+) instead of madvise: unmapping pages in a multi-threaded
    // process costs a TLB shootdown on every core, which profiling showed to be the largest
    // cost of a session's instances. Older kernels fall back to madvise.
    pool.linear_memory_keep_resident(2 << 20);
    pool.table_keep_resident(8 << 10);
    pool.pagemap_scan(wasmtime::Enabled::Auto);
    config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    // Reserve only what the largest limit allows, so that thousands of slots stay cheap in
    // address space; bounds checks are explicit beyond the guard.
    config.memory_reservation(max_memory as u64);
    config.memory_guard_size(2 << 20);
    config.memory_reservation_for_growth(0);
    let engine = Engine::new(&config).map_err(|e| anyhow::anyhow!("cannot create the wasm engine: {e:#}"))?;
    start_epoch_ticker(&engine);
    Ok(engine)
}

fn make_linker(engine: &Engine) -> anyhow::Result<Linker<State>> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(|e| anyhow::anyhow!("linking WASI: {e:#}"))?;
    Plugin::add_to_linker::<State, HasSelf<State>>(&mut linker, |state| state).map_err(|e| anyhow::anyhow!("linking the host interface: {e:#}"))?;
    Ok(linker)
}

/// A store for one instance of a plugin: WASI with no directories, network or environment,
/// stderr into the log, the plugin's memory limit.
fn new_store(engine: &Engine, plugin: &Arc<Shared>, session: Arc<str>, hostname: Arc<str>) -> Store<State> {
    let wasi = wasmtime_wasi::WasiCtx::builder().stderr(StderrToLog { plugin: plugin.name.as_str().into(), session: Arc::clone(&session) }).build();
    let mut table = wasmtime::component::ResourceTable::new();
    table.set_max_capacity(MAX_RESOURCES);
    let state = State {
        deadline: None,
        timed_out: false,
        wasi,
        table,
        limiter: Limiter { memory: plugin.settings.memory_limit.0 as usize, hit: false },
        plugin: Arc::clone(plugin),
        session,
        hook: "instantiate",
        hostname,
        authentication: None,
    };
    let mut store = Store::new(engine, state);
    store.limiter(|state| &mut state.limiter);
    // At every epoch tick: past the call's deadline, trap; otherwise let other tasks run.
    store.epoch_deadline_callback(|mut ctx| {
        let state = ctx.data_mut();
        if state.deadline.is_some_and(|deadline| std::time::Instant::now() >= deadline) {
            state.timed_out = true;
            return Ok(wasmtime::UpdateDeadline::Interrupt);
        }
        Ok(wasmtime::UpdateDeadline::Yield(1))
    });
    store
}

/// Arms the CPU deadline of one call (instantiation included).
fn arm_deadline(store: &mut Store<State>, timeout: std::time::Duration) {
    store.data_mut().deadline = Some(std::time::Instant::now() + timeout);
    store.set_epoch_deadline(1);
}

async fn load_one(
    engine: &Engine,
    linker: &Linker<State>,
    name: &str,
    path: &Path,
    settings: PluginSettings,
    data_dir: &Path,
    hostname: &Arc<str>,
    kv: Option<Arc<kv::KvStore>>,
) -> anyhow::Result<Loaded> {
    let file = path.display();
    let bytes = std::fs::read(path).with_context(|| format!("{file}: cannot read"))?;
    let component = Component::from_binary(engine, &bytes).map_err(|e| anyhow::anyhow!("{file}: not a valid WebAssembly component: {e:#}"))?;
    // Fails here, naming the import, when the component needs something the host does not
    // offer.
    let instance_pre = linker.instantiate_pre(&component).map_err(|e| anyhow::anyhow!("{file}: cannot be linked: {e:#}"))?;
    let pre = PluginPre::new(instance_pre).map_err(|e| anyhow::anyhow!("{file}: does not export the wasmail:plugin world: {e:#}"))?;
    let wit = component
        .component_type()
        .exports(engine)
        .find_map(|(name, _)| name.strip_prefix("wasmail:plugin/session@").map(str::to_string))
        .unwrap_or_else(|| "unknown".into());
    let kv = match kv {
        Some(kv) => kv,
        None => {
            let kv_dir = data_dir.join("plugins").join(name);
            Arc::new(kv::KvStore::open(&kv_dir).with_context(|| format!("{file}: cannot open its store in {}", kv_dir.display()))?)
        }
    };
    let shared = Arc::new(Shared { name: name.to_string(), settings, kv });
    // Read the manifest from a throw-away instance, under the plugin's own limits.
    let mut store = new_store(engine, &shared, "load".into(), Arc::clone(hostname));
    arm_deadline(&mut store, shared.settings.call_timeout.0);
    let instance = pre.instantiate_async(&mut store).await.map_err(|e| anyhow::anyhow!("{file}: cannot be instantiated: {e:#}"))?;
    arm_deadline(&mut store, shared.settings.call_timeout.0);
    let manifest =
        instance.wasmail_plugin_session().call_get_manifest(&mut store).await.map_err(|e| anyhow::anyhow!("{file}: get-manifest failed: {e:#}"))?;
    validate::manifest(&manifest).map_err(|e| anyhow::anyhow!("{file}: bad manifest: {e}"))?;
    Ok(Loaded { shared, manifest, pre, wit })
}

/// One thread per engine moves the epoch forward; a call whose deadline passes traps. The
/// thread ends when the engine is dropped.
fn start_epoch_ticker(engine: &Engine) {
    let weak = engine.weak();
    std::thread::Builder::new()
        .name("wasm-epoch".into())
        .spawn(move || loop {
            std::thread::sleep(EPOCH_TICK);
            match weak.upgrade() {
                Some(engine) => engine.increment_epoch(),
                None => return,
            }
        })
        .expect("spawn the epoch thread");
}

/// `wasmail plugin inspect FILE`: compile, link, read the manifest, check it.
pub async fn inspect(path: &Path) -> anyhow::Result<(Manifest, PluginSettings, String)> {
    let engine = make_engine(None, 64 << 20, 10)?;
    let linker = make_linker(&engine)?;
    let settings = PluginSettings::load(&path.with_extension("toml"))?;
    let scratch = tempfile_dir()?;
    let name = path.file_stem().unwrap_or_default().to_string_lossy().into_owned();
    let loaded = load_one(&engine, &linker, &name, path, settings, &scratch, &Arc::from("inspect"), None).await?;
    let _ = std::fs::remove_dir_all(&scratch);
    let settings = loaded.settings().clone();
    Ok((loaded.manifest, settings, loaded.wit))
}

fn tempfile_dir() -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("wasmail-inspect-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// A keyword as the EHLO reply lists it: `NAME` or `NAME PARAMS`.
fn ehlo_line(keyword: &EhloKeyword) -> String {
    match &keyword.params {
        Some(params) => format!("{} {params}", keyword.name),
        None => keyword.name.clone(),
    }
}

/// The text `wasmail plugin inspect` prints; `wit` is the version of `wasmail:plugin` the
/// component was built against.
pub fn describe(manifest: &Manifest, settings: &PluginSettings, wit: &str) -> String {
    let list = |items: Vec<String>| {
        if items.is_empty() {
            "(none)".to_string()
        } else {
            items.join(" ")
        }
    };
    let keywords = manifest.ehlo_keywords.iter().map(ehlo_line);
    let hooks = manifest.hooks.iter().map(|h| h.name().to_string());
    format!(
        "name:          {}\nversion:       {}\nwit:           wasmail:plugin@{wit}\nehlo keywords: {}\nverbs:         {}\nmail params:   {}\nrcpt params:   {}\nhooks:         {}{}\nmime types:    {}\nenabled:       {}\norder:         {}\nfail:          {}\nmemory limit:  {} bytes\ncall timeout:  {} ms\n",
        manifest.name,
        manifest.version,
        list(keywords.collect()),
        list(manifest.verbs.clone()),
        list(manifest.mail_params.clone()),
        list(manifest.rcpt_params.clone()),
        list(hooks.collect()),
        if manifest.activated_by_verb { " (once a verb was used)" } else { "" },
        list(manifest.mime_types.clone()),
        settings.enabled,
        settings.order,
        match settings.fail {
            FailurePolicy::Open => "open",
            FailurePolicy::Closed => "closed",
        },
        settings.memory_limit.0,
        settings.call_timeout.0.as_millis(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pool_holds_an_instance_of_every_plugin_for_every_holder() {
        let pool = PoolOptions::for_holders(532);
        assert_eq!(pool.instances(10), 5320);
        assert_eq!(pool.instances(0), 532, "sized for one plugin when there are none yet");
        assert_eq!(PoolOptions::for_holders(3).instances(2), 100, "at least 100");
        assert_eq!(PoolOptions::for_holders(100_000).instances(10), 10_000, "at most 10,000");
        assert_eq!(PoolOptions { max_instances: Some(2), ..pool }.instances(10), 2, "the operator's size");
    }
}
