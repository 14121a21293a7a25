//! A session's plugin instances and the hook calls.
//!
//! An instance is made at the first hook of the session that the plugin asked for (not at
//! connect), so a session that never reaches a plugin's hook costs it nothing. `on-reset` and
//! `on-reply` go only to instances that exist: a plugin that has not run in this session has
//! no session state to reset and nothing to add.
//!
//! Calls are async (`call_async` on a fiber): a guest runs inside the session's task and
//! yields to the scheduler at every epoch tick, so a slow plugin does not hold a worker
//! thread. Every call runs under the plugin's CPU deadline and memory limit. A failure — trap,
//! timeout, memory limit, invalid return — is logged with the plugin's name and kind, the
//! instance is dropped (the next hook gets a fresh one), and the plugin's policy decides:
//! `open` skips the hook, `closed` answers 451 4.3.0.
//!
//! An instance holds a slot of the engine's pool for its life. When none is free the session
//! waits up to `[plugins] pool_wait` for one and is then answered 451 4.3.2 whatever the
//! policy: a plugin that did not run did not fail, and is never skipped.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use wasmtime::Store;

use super::bindings::{delivery_types, mime_types, types as wit, Plugin};
use super::state::State;
use super::validate::{self, Decision};
use super::{arm_deadline, new_store, FailurePolicy, Hook, Registry, HEADER_OVERHEAD};
use crate::smtp::proto::{codes, Reply};

/// A plugin's instance in one session.
struct Instance {
    /// Its own store: limits, WASI context, deadline.
    store: Store<State>,
    /// The typed exports.
    bindings: Plugin,
    /// Its slot in the engine's instance pool, given back when the instance is dropped.
    _slot: OwnedSemaphorePermit,
}

/// How a call failed, for the log and the failure metric's `kind`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    Trap(String),
    Timeout,
    Memory,
    Invalid(String),
    /// No instance could be made: every slot of the pool stayed in use for `pool_wait`. Not
    /// the plugin's fault, and never a reason to skip it.
    Pool,
}

impl Failure {
    pub fn kind(&self) -> &'static str {
        match self {
            Failure::Trap(_) => "trap",
            Failure::Timeout => "timeout",
            Failure::Memory => "memory",
            Failure::Invalid(_) => "invalid",
            Failure::Pool => "pool",
        }
    }
}

/// What the data hooks decided, with the header changes of the plugins that let it pass.
pub struct DataOutcome {
    /// What happens to the message.
    pub decision: Decision,
    /// Changes to apply when it is stored, in plugin order.
    pub header_changes: Vec<wit::HeaderChange>,
}

pub struct SessionPlugins {
    /// The loaded plugins and the engine.
    pub(super) registry: Arc<Registry>,
    /// One slot per plugin, in registry order; None until first needed or after a failure.
    instances: Vec<Option<Instance>>,
    /// The session id, for the plugins' log lines.
    session: Arc<str>,
    /// `name: verdict` of each plugin that ran for the current command, for `on-reply`.
    pub(super) ran: Vec<String>,
}

impl SessionPlugins {
    pub fn new(registry: Arc<Registry>, session: &str) -> SessionPlugins {
        let instances = registry.plugins.iter().map(|_| None).collect();
        SessionPlugins { registry, instances, session: session.into(), ran: Vec::new() }
    }

    /// Whether plugin `index` has an instance in this session.
    pub(super) fn has_instance(&self, index: usize) -> bool {
        self.instances[index].is_some()
    }

    /// Starts a new command: forgets which plugins ran for the previous one.
    pub fn begin_command(&mut self) {
        self.ran.clear();
    }

    /// Makes `call` on plugin `index`'s instance, making the instance if needed, timed for
    /// the metrics.
    ///
    /// The lines a plugin's call logs (its `host.log`, its stderr, its store's errors) name
    /// the plugin, the hook and the session themselves. A log span around each call would say
    /// the same for any line, but measured here it cost several percent of a message's CPU
    /// time with plugins on every stage, for lines that all name them already.
    pub(super) async fn call(&mut self, index: usize, call: &Call<'_>) -> Result<Output, Failure> {
        let started = std::time::Instant::now();
        let result = self.call_timed(index, call).await;
        crate::metrics::get().plugin_call(self.registry.plugins[index].name(), call.hook(), started.elapsed());
        result
    }

    async fn call_timed(&mut self, index: usize, call: &Call<'_>) -> Result<Output, Failure> {
        let plugin = Arc::clone(&self.registry.plugins[index]);
        let timeout = plugin.settings().call_timeout.0;
        if self.instances[index].is_none() {
            let slot = pool_slot(Arc::clone(&self.registry.slots), self.registry.pool_wait, plugin.name()).await?;
            let mut store = new_store(&self.registry.engine, &plugin.shared, Arc::clone(&self.session), Arc::clone(&self.registry.hostname));
            arm_deadline(&mut store, timeout);
            match plugin.pre.instantiate_async(&mut store).await {
                Ok(bindings) => self.instances[index] = Some(Instance { store, bindings, _slot: slot }),
                // Another kind of slot (core instances, memories, tables) ran out first.
                Err(e) if e.downcast_ref::<wasmtime::PoolConcurrencyLimitError>().is_some() => {
                    tracing::error!(plugin = plugin.name(), "plugin instance pool exhausted: {e:#}");
                    return Err(Failure::Pool);
                }
                Err(e) => return Err(classify(&e, &store)),
            }
        }
        let instance = self.instances[index].as_mut().expect("made above");
        arm_deadline(&mut instance.store, timeout);
        instance.store.data_mut().hook = call.hook();
        match invoke(&instance.bindings, &mut instance.store, call).await {
            Ok(value) => Ok(value),
            Err(e) => {
                let failure = classify(&e, &instance.store);
                // The instance may be half-way through anything: never call it again.
                self.instances[index] = None;
                Err(failure)
            }
        }
    }

    /// Logs a failure and returns the reply the policy gives (None for `open`). A full pool
    /// is answered 451 4.3.2 under either policy: the plugin did not fail, it did not run.
    pub(super) fn failed(&self, index: usize, hook: &str, failure: &Failure) -> Option<Reply> {
        let plugin = &self.registry.plugins[index];
        let policy = plugin.settings().fail;
        let detail = match failure {
            Failure::Trap(d) | Failure::Invalid(d) => d.as_str(),
            Failure::Timeout => "call timeout exceeded",
            Failure::Memory => "memory limit reached",
            Failure::Pool => {
                // Logged where the wait ended.
                crate::metrics::get().plugin_failure(plugin.name(), hook, failure.kind());
                return Some(Reply::new(451, codes::TEMP_OVERLOAD, "Too busy to check this now, try again later"));
            }
        };
        tracing::warn!(plugin = plugin.name(), hook, kind = failure.kind(), policy = ?policy, "plugin failed: {detail}");
        crate::metrics::get().plugin_failure(plugin.name(), hook, failure.kind());
        match policy {
            FailurePolicy::Open => None,
            FailurePolicy::Closed => Some(Reply::local_error()),
        }
    }

    /// Runs a verdict hook on every plugin that wants it, in order, until one decides.
    async fn verdict_hook(&mut self, hook: Hook, name: &str, call: Call<'_>) -> Decision {
        for index in 0..self.registry.plugins.len() {
            if !self.should_call(index, hook) {
                continue;
            }
            let decision = self.call(index, &call).await.and_then(|output| match output {
                Output::Verdict(v) => validate::verdict(&v).map_err(Failure::Invalid),
                _ => unreachable!("a verdict hook returns a verdict"),
            });
            match decision {
                Ok(decision) => {
                    self.ran.push(format!("{}: {}", self.registry.plugins[index].name(), label(&decision)));
                    match decision {
                        Decision::Continue => {}
                        other => return other,
                    }
                }
                Err(failure) => {
                    self.ran.push(format!("{}: failed ({})", self.registry.plugins[index].name(), failure.kind()));
                    if let Some(reply) = self.failed(index, name, &failure) {
                        return Decision::Refuse(reply);
                    }
                }
            }
        }
        Decision::Continue
    }

    pub async fn on_connect(&mut self, info: &wit::ConnectInfo) -> Decision {
        self.verdict_hook(Hook::Connect, "connect", Call::Connect(info)).await
    }

    pub async fn on_helo(&mut self, info: &wit::HeloInfo) -> Decision {
        self.verdict_hook(Hook::Helo, "helo", Call::Helo(info)).await
    }

    pub async fn on_mail_from(&mut self, info: &wit::AddressInfo) -> Decision {
        self.verdict_hook(Hook::MailFrom, "mail-from", Call::MailFrom(info)).await
    }

    pub async fn on_rcpt_to(&mut self, info: &wit::AddressInfo) -> Decision {
        self.verdict_hook(Hook::RcptTo, "rcpt-to", Call::RcptTo(info)).await
    }

    /// Runs the data hooks. Header changes are collected from each plugin that lets the
    /// message pass, in plugin order.
    pub async fn on_data(&mut self, envelope: &wit::Envelope, headers: &[wit::Header]) -> DataOutcome {
        let mut changes = Vec::new();
        for index in 0..self.registry.plugins.len() {
            if !self.should_call(index, Hook::Data) {
                continue;
            }
            let plugin = &self.registry.plugins[index];
            let size: usize = headers.iter().map(|h| h.name.len() + h.value.len() + HEADER_OVERHEAD).sum();
            if size > plugin.argument_room() {
                // Never skipped, whatever its failure policy: the message is refused instead.
                tracing::info!(plugin = plugin.name(), size, room = plugin.argument_room(), "header too large for the plugin's memory");
                self.ran.push(format!("{}: header too large", plugin.name()));
                let text = format!("Message header too large for the filter {}", plugin.name());
                return DataOutcome { decision: Decision::Refuse(Reply::new(552, codes::MAILBOX_FULL_SIZE, text)), header_changes: Vec::new() };
            }
            let result = self.call(index, &Call::Data(envelope, headers)).await.and_then(|output| {
                let Output::Data(r) = output else { unreachable!("on-data returns a data result") };
                let decision = validate::verdict(&r.verdict).map_err(Failure::Invalid)?;
                if r.header_changes.len() > MAX_HEADER_CHANGES {
                    return Err(Failure::Invalid(format!("more than {MAX_HEADER_CHANGES} header changes ({})", r.header_changes.len())));
                }
                for change in &r.header_changes {
                    check_change(change).map_err(Failure::Invalid)?;
                }
                Ok((decision, r.header_changes))
            });
            match result {
                Ok((decision, header_changes)) => {
                    self.ran.push(format!("{}: {}", self.registry.plugins[index].name(), label(&decision)));
                    match decision {
                        Decision::Continue => changes.extend(header_changes),
                        Decision::Accept => {
                            changes.extend(header_changes);
                            return DataOutcome { decision: Decision::Accept, header_changes: changes };
                        }
                        other => return DataOutcome { decision: other, header_changes: Vec::new() },
                    }
                }
                Err(failure) => {
                    self.ran.push(format!("{}: failed ({})", self.registry.plugins[index].name(), failure.kind()));
                    if let Some(reply) = self.failed(index, "data", &failure) {
                        return DataOutcome { decision: Decision::Refuse(reply), header_changes: Vec::new() };
                    }
                }
            }
        }
        DataOutcome { decision: Decision::Continue, header_changes: changes }
    }

    /// The transaction ended: tell the instances that exist and asked.
    pub async fn on_reset(&mut self) {
        if !self.any_instance_wants(Hook::Reset) {
            return;
        }
        self.reset_hooks().await
    }

    /// Whether plugin `index` gets `hook` now: it asked for it, and it is not a plugin whose
    /// hooks wait for its verb while that verb has not been used.
    fn should_call(&self, index: usize, hook: Hook) -> bool {
        let plugin = &self.registry.plugins[index];
        plugin.wants(hook) && (self.instances[index].is_some() || !plugin.hooks_need_verb())
    }

    /// Whether any plugin gets `hook` now (so that the session can skip building its
    /// arguments).
    pub fn wants(&self, hook: Hook) -> bool {
        (0..self.registry.plugins.len()).any(|index| self.should_call(index, hook))
    }

    /// Whether plugin `index` has an instance in this session and asked for `hook` (reset and
    /// reply go only to instances that exist).
    fn instance_wants(&self, index: usize, hook: Hook) -> bool {
        self.instances[index].is_some() && self.registry.plugins[index].wants(hook)
    }

    fn any_instance_wants(&self, hook: Hook) -> bool {
        (0..self.registry.plugins.len()).any(|index| self.instance_wants(index, hook))
    }

    async fn reset_hooks(&mut self) {
        for index in 0..self.registry.plugins.len() {
            if !self.instance_wants(index, Hook::Reset) {
                continue;
            }
            if let Err(failure) = self.call(index, &Call::Reset).await {
                // Nothing to refuse at a reset; the instance is gone and the log says why.
                let _ = self.failed(index, "reset", &failure);
            }
        }
    }

    /// A claimed verb. Returns None if no plugin claims it; otherwise the reply and whether to
    /// close the connection.
    pub async fn on_command(&mut self, verb: &str, args: &str) -> Option<(Reply, bool)> {
        let index = *self.registry.verbs.get(verb)?;
        let result = self.call(index, &Call::Command(verb, args)).await.and_then(|output| {
            let Output::Command(r) = output else { unreachable!("on-command returns a command result") };
            validate::reply(&r.reply).map(|reply| (reply, r.close)).map_err(Failure::Invalid)
        });
        Some(match result {
            Ok(answer) => answer,
            Err(failure) => match self.failed(index, "command", &failure) {
                Some(reply) => (reply, false),
                // Open: as if the verb were not there.
                None => (Reply::new(500, codes::SYNTAX, "Command unrecognized"), false),
            },
        })
    }

    /// Lets the instances that asked add lines to a reply (before its last line).
    pub async fn on_reply(&mut self, verb: &str, reply: Reply) -> Reply {
        if !self.any_instance_wants(Hook::Reply) {
            return reply;
        }
        let context = wit::ReplyContext { verb: verb.to_string(), reply: to_wit(&reply), plugins: self.ran.clone() };
        let mut reply = reply;
        for index in 0..self.registry.plugins.len() {
            if !self.instance_wants(index, Hook::Reply) {
                continue;
            }
            let result = self.call(index, &Call::Reply(&context)).await.and_then(|output| {
                let Output::Lines(lines) = output else { unreachable!("on-reply returns lines") };
                validate::extra_lines(&lines).map(|()| lines).map_err(Failure::Invalid)
            });
            match result {
                Ok(lines) if !lines.is_empty() => {
                    let last = reply.lines.pop().unwrap_or_default();
                    reply.lines.extend(lines);
                    reply.lines.push(last);
                }
                Ok(_) => {}
                Err(failure) => {
                    if let Some(tempfail) = self.failed(index, "reply", &failure) {
                        return tempfail;
                    }
                }
            }
        }
        reply
    }
}

/// Header changes one `on-data` answer may make.
const MAX_HEADER_CHANGES: usize = 100;

/// A hook call and its arguments.
pub(super) enum Call<'a> {
    Connect(&'a wit::ConnectInfo),
    Helo(&'a wit::HeloInfo),
    MailFrom(&'a wit::AddressInfo),
    RcptTo(&'a wit::AddressInfo),
    Data(&'a wit::Envelope, &'a [wit::Header]),
    Reset,
    Command(&'a str, &'a str),
    Reply(&'a wit::ReplyContext),
    Part(&'a mime_types::PartInfo),
    Route(&'a delivery_types::MessageInfo, &'a delivery_types::RecipientInfo),
    DeliveryResult(&'a delivery_types::MessageInfo, &'a str, &'a str, &'a str),
}

impl Call<'_> {
    /// The hook's name as the WIT package spells it, for logs and metrics.
    pub(super) fn hook(&self) -> &'static str {
        match self {
            Call::Connect(_) => "connect",
            Call::Helo(_) => "helo",
            Call::MailFrom(_) => "mail-from",
            Call::RcptTo(_) => "rcpt-to",
            Call::Data(..) => "data",
            Call::Reset => "reset",
            Call::Command(..) => "command",
            Call::Reply(_) => "reply",
            Call::Part(_) => "mime-part",
            Call::Route(..) => "route",
            Call::DeliveryResult(..) => "delivery-result",
        }
    }
}

/// What a hook call returned.
pub(super) enum Output {
    Verdict(wit::Verdict),
    Data(wit::DataResult),
    Unit,
    Command(wit::CommandResult),
    Lines(Vec<String>),
    Part(mime_types::PartResult),
    Decision(delivery_types::Decision),
}

async fn invoke(bindings: &Plugin, store: &mut Store<State>, call: &Call<'_>) -> wasmtime::Result<Output> {
    let guest = bindings.wasmail_plugin_session();
    Ok(match call {
        Call::Connect(info) => Output::Verdict(guest.call_on_connect(&mut *store, info).await?),
        Call::Helo(info) => Output::Verdict(guest.call_on_helo(&mut *store, info).await?),
        Call::MailFrom(info) => Output::Verdict(guest.call_on_mail_from(&mut *store, info).await?),
        Call::RcptTo(info) => Output::Verdict(guest.call_on_rcpt_to(&mut *store, info).await?),
        Call::Data(envelope, headers) => Output::Data(guest.call_on_data(&mut *store, envelope, headers).await?),
        Call::Reset => {
            guest.call_on_reset(&mut *store).await?;
            Output::Unit
        }
        Call::Command(verb, args) => Output::Command(guest.call_on_command(&mut *store, verb, args).await?),
        Call::Reply(context) => Output::Lines(guest.call_on_reply(&mut *store, context).await?),
        Call::Part(info) => Output::Part(bindings.wasmail_plugin_mime_handler().call_on_part(&mut *store, info).await?),
        Call::Route(message, recipient) => {
            Output::Decision(bindings.wasmail_plugin_delivery().call_route_recipient(&mut *store, message, recipient).await?)
        }
        Call::DeliveryResult(message, recipient, outcome, detail) => {
            bindings.wasmail_plugin_delivery().call_delivery_result(&mut *store, message, recipient, outcome, detail).await?;
            Output::Unit
        }
    })
}

fn label(decision: &Decision) -> &'static str {
    match decision {
        Decision::Continue => "continue",
        Decision::Accept => "accept",
        Decision::Refuse(r) if r.code >= 500 => "reject",
        Decision::Refuse(_) => "tempfail",
        Decision::Disconnect(_) => "disconnect",
        Decision::Discard => "discard",
    }
}

fn check_change(change: &wit::HeaderChange) -> Result<(), String> {
    let check_ref = |r: &wit::HeaderRef| {
        validate::header(&wit::Header { name: r.name.clone(), value: String::new() })?;
        if r.index == 0 {
            return Err("header index starts at 1".to_string());
        }
        Ok(())
    };
    match change {
        wit::HeaderChange::Add(h) | wit::HeaderChange::Insert((_, h)) => validate::header(h),
        wit::HeaderChange::Change((r, value)) => {
            check_ref(r)?;
            validate::header(&wit::Header { name: r.name.clone(), value: value.clone() })
        }
        wit::HeaderChange::Remove(r) => check_ref(r),
    }
}

/// Our reply as the WIT record, for `on-reply`.
fn to_wit(reply: &Reply) -> wit::Reply {
    wit::Reply {
        code: reply.code,
        enhanced: reply.enhanced.map(|e| wit::EnhancedCode { class: e.class, subject: e.subject, detail: e.detail }),
        lines: reply.lines.clone(),
    }
}

/// A slot of the instance pool: at once if one is free, else after waiting up to
/// `[plugins] pool_wait` for a session to end.
async fn pool_slot(slots: Arc<Semaphore>, wait: Duration, plugin: &str) -> Result<OwnedSemaphorePermit, Failure> {
    if let Ok(slot) = Arc::clone(&slots).try_acquire_owned() {
        return Ok(slot);
    }
    tracing::warn!(plugin, "plugin instance pool full; waiting up to {wait:?} for a free slot");
    match tokio::time::timeout(wait, slots.acquire_owned()).await {
        Ok(Ok(slot)) => Ok(slot),
        _ => {
            tracing::error!(plugin, "plugin instance pool exhausted: no slot came free in {wait:?} ([plugins] max_instances)");
            Err(Failure::Pool)
        }
    }
}

/// Names a failed call: the epoch deadline, the memory limiter, or any other trap.
fn classify(error: &wasmtime::Error, store: &Store<State>) -> Failure {
    if store.data().limiter.hit {
        return Failure::Memory;
    }
    if store.data().timed_out {
        return Failure::Timeout;
    }
    if let Some(trap) = error.downcast_ref::<wasmtime::Trap>() {
        if *trap == wasmtime::Trap::Interrupt {
            return Failure::Timeout;
        }
    }
    Failure::Trap(format!("{error:#}"))
}
