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
use wasmail_proto::smtp::{codes, Reply};
use wasmtime::Store;

use super::bindings::{delivery_types, mime_types, types as wit, Plugin};
use super::state::State;
use super::validate::{self, Decision};
use super::{arm_deadline, new_store, FailurePolicy, Hook, Registry, HEADER_OVERHEAD};

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

/// Which plugins a call goes to (see [`SessionPlugins::reached`]).
#[derive(Debug, Clone, Copy)]
pub(super) enum Reach {
    /// Those that list the hook.
    Listed(Hook),
    /// Those that list it and have an instance in this session: `on-reset` and `on-reply` (a
    /// plugin that has not run has no session state to reset and nothing to add).
    Existing(Hook),
    /// The MIME handlers: those that subscribed to content types.
    Mime,
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
    /// Boxed: an instance is about 300 bytes and most sessions make one or none, while
    /// every session holds a slot for each loaded plugin (10,000 idle sessions with the 11
    /// example plugins held 33 MB of empty slots unboxed).
    instances: Vec<Option<Box<Instance>>>,
    /// The session id, for the plugins' log lines.
    session: Arc<str>,
    /// `name: verdict` of each plugin that ran for the current command, for `on-reply`.
    pub(super) ran: Vec<String>,
    /// The checks of the current transaction, which `host.authentication` answers with.
    authentication: Option<Arc<super::AuthenticationResults>>,
}

impl SessionPlugins {
    pub fn new(registry: Arc<Registry>, session: &str) -> SessionPlugins {
        let instances = registry.plugins.iter().map(|_| None).collect();
        SessionPlugins { registry, instances, session: session.into(), ran: Vec::new(), authentication: None }
    }

    /// What the checks of the current transaction found so far (None: not checked, or no
    /// transaction); the session hooks called from now on see it.
    pub fn set_authentication(&mut self, results: Option<super::AuthenticationResults>) {
        self.authentication = results.map(Arc::new);
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
                Ok(bindings) => self.instances[index] = Some(Box::new(Instance { store, bindings, _slot: slot })),
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
        let state = instance.store.data_mut();
        state.hook = call.hook();
        state.authentication = self.authentication.clone();
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

    /// The plugins `reach` gives a call to now, in order.
    pub(super) fn reached(&self, reach: Reach) -> Vec<usize> {
        let plugins = &self.registry.plugins;
        (0..plugins.len())
            .filter(|&index| {
                let plugin = &plugins[index];
                // A plugin whose hooks wait for its verb runs only once the verb made its instance.
                let may_start = self.instances[index].is_some() || !plugin.hooks_need_verb();
                match reach {
                    Reach::Listed(hook) => plugin.wants(hook) && may_start,
                    Reach::Existing(hook) => plugin.wants(hook) && self.instances[index].is_some(),
                    Reach::Mime => !plugin.manifest.mime_types.is_empty() && may_start,
                }
            })
            .collect()
    }

    /// Calls plugin `index` and checks its answer with `check`. The one place a plugin's
    /// failure is handled: a trap, timeout, memory limit, full pool or an answer `check`
    /// refuses is recorded for `on-reply`, logged with the plugin's name and counted, and the
    /// plugin's policy decides — `Err(None)` under `open` (go on to the next plugin),
    /// `Err(Some(reply))` under `closed` (451 4.3.0), and for a full pool under either policy
    /// (451 4.3.2: the plugin did not fail, it did not run, and it is never skipped).
    pub(super) async fn ask<A>(
        &mut self,
        index: usize,
        call: &Call<'_>,
        check: impl FnOnce(Output) -> Result<A, String>,
    ) -> Result<A, Option<Reply>> {
        let failure = match self.call(index, call).await {
            Ok(output) => match check(output) {
                Ok(answer) => return Ok(answer),
                Err(why) => {
                    // An instance that answers nonsense may be in any state: like a trap, it
                    // is dropped, and the next hook gets a fresh one.
                    self.instances[index] = None;
                    Failure::Invalid(why)
                }
            },
            Err(failure) => failure,
        };
        let plugin = &self.registry.plugins[index];
        let hook = call.hook();
        self.ran.push(format!("{}: failed ({})", plugin.name(), failure.kind()));
        crate::metrics::get().plugin_failure(plugin.name(), hook, failure.kind());
        let policy = plugin.settings().fail;
        let detail = match &failure {
            Failure::Trap(d) | Failure::Invalid(d) => d.as_str(),
            Failure::Timeout => "call timeout exceeded",
            Failure::Memory => "memory limit reached",
            // Logged where the wait ended.
            Failure::Pool => return Err(Some(Reply::new(451, codes::TEMP_OVERLOAD, "Too busy to check this now, try again later"))),
        };
        tracing::warn!(plugin = plugin.name(), hook, kind = failure.kind(), policy = ?policy, "plugin failed: {detail}");
        match policy {
            FailurePolicy::Open => Err(None),
            FailurePolicy::Closed => Err(Some(Reply::local_error())),
        }
    }

    /// Records what plugin `index` answered, for `on-reply`'s list of the plugins that ran.
    pub(super) fn record(&mut self, index: usize, what: &str) {
        self.ran.push(format!("{}: {what}", self.registry.plugins[index].name()));
    }

    /// Runs a verdict hook on every plugin that wants it, in order, until one decides.
    async fn verdict_hook(&mut self, hook: Hook, call: Call<'_>) -> Decision {
        for index in self.reached(Reach::Listed(hook)) {
            let verdict = self
                .ask(index, &call, |output| {
                    let Output::Verdict(v) = output else { unreachable!("a verdict hook returns a verdict") };
                    validate::verdict(&v)
                })
                .await;
            match verdict {
                Ok(decision) => {
                    self.record(index, label(&decision));
                    if decision != Decision::Continue {
                        return decision;
                    }
                }
                Err(Some(reply)) => return Decision::Refuse(reply),
                Err(None) => {}
            }
        }
        Decision::Continue
    }

    pub async fn on_connect(&mut self, info: &wit::ConnectInfo) -> Decision {
        self.verdict_hook(Hook::Connect, Call::Connect(info)).await
    }

    pub async fn on_helo(&mut self, info: &wit::HeloInfo) -> Decision {
        self.verdict_hook(Hook::Helo, Call::Helo(info)).await
    }

    pub async fn on_mail_from(&mut self, info: &wit::AddressInfo) -> Decision {
        self.verdict_hook(Hook::MailFrom, Call::MailFrom(info)).await
    }

    pub async fn on_rcpt_to(&mut self, info: &wit::AddressInfo) -> Decision {
        self.verdict_hook(Hook::RcptTo, Call::RcptTo(info)).await
    }

    /// Runs the data hooks. Header changes are collected from each plugin that lets the
    /// message pass, in plugin order.
    pub async fn on_data(&mut self, envelope: &wit::Envelope, headers: &[wit::Header]) -> DataOutcome {
        let refuse = |reply| DataOutcome { decision: Decision::Refuse(reply), header_changes: Vec::new() };
        let mut changes = Vec::new();
        let size: usize = headers.iter().map(|h| h.name.len() + h.value.len() + HEADER_OVERHEAD).sum();
        for index in self.reached(Reach::Listed(Hook::Data)) {
            let plugin = &self.registry.plugins[index];
            if size > plugin.argument_room() {
                // Never skipped, whatever its failure policy: the message is refused instead.
                tracing::info!(plugin = plugin.name(), size, room = plugin.argument_room(), "header too large for the plugin's memory");
                let text = format!("Message header too large for the filter {}", plugin.name());
                self.record(index, "header too large");
                return refuse(Reply::new(552, codes::MAILBOX_FULL_SIZE, text));
            }
            let answer = self
                .ask(index, &Call::Data(envelope, headers), |output| {
                    let Output::Data(r) = output else { unreachable!("on-data returns a data result") };
                    let decision = validate::verdict(&r.verdict)?;
                    if r.header_changes.len() > MAX_HEADER_CHANGES {
                        return Err(format!("more than {MAX_HEADER_CHANGES} header changes ({})", r.header_changes.len()));
                    }
                    r.header_changes.iter().try_for_each(check_change)?;
                    Ok((decision, r.header_changes))
                })
                .await;
            match answer {
                Ok((decision, header_changes)) => {
                    self.record(index, label(&decision));
                    match decision {
                        Decision::Continue => changes.extend(header_changes),
                        Decision::Accept => {
                            changes.extend(header_changes);
                            return DataOutcome { decision: Decision::Accept, header_changes: changes };
                        }
                        other => return DataOutcome { decision: other, header_changes: Vec::new() },
                    }
                }
                Err(Some(reply)) => return refuse(reply),
                Err(None) => {}
            }
        }
        DataOutcome { decision: Decision::Continue, header_changes: changes }
    }

    /// The transaction ended: tell the instances that exist and asked.
    pub async fn on_reset(&mut self) {
        self.authentication = None;
        for index in self.reached(Reach::Existing(Hook::Reset)) {
            // Nothing to refuse at a reset; the instance is gone and the log says why.
            let _ = self.ask(index, &Call::Reset, |_| Ok(())).await;
        }
    }

    /// Whether any plugin gets `hook` now (so that the session or the delivery can skip
    /// building its arguments). A delivery has no verb, so a plugin whose hooks wait for one
    /// never gets a delivery hook.
    pub fn wants(&self, hook: Hook) -> bool {
        !self.reached(Reach::Listed(hook)).is_empty()
    }

    /// A claimed verb. Returns None if no plugin claims it; otherwise the reply and whether to
    /// close the connection.
    pub async fn on_command(&mut self, verb: &str, args: &str) -> Option<(Reply, bool)> {
        let index = *self.registry.verbs.get(verb)?;
        let answer = self
            .ask(index, &Call::Command(verb, args), |output| {
                let Output::Command(r) = output else { unreachable!("on-command returns a command result") };
                validate::reply(&r.reply).map(|reply| (reply, r.close))
            })
            .await;
        Some(match answer {
            Ok(answer) => answer,
            Err(Some(reply)) => (reply, false),
            // Open, but there is nothing to skip to: the verb is known, its answer failed.
            // 451 4.3.0, as `closed` answers: the client may try again.
            Err(None) => (Reply::local_error(), false),
        })
    }

    /// Lets the instances that asked add lines to a reply (before its last line).
    pub async fn on_reply(&mut self, verb: &str, reply: Reply) -> Reply {
        let called = self.reached(Reach::Existing(Hook::Reply));
        if called.is_empty() {
            return reply;
        }
        let context = wit::ReplyContext { verb: verb.to_string(), reply: to_wit(&reply), plugins: self.ran.clone() };
        let mut reply = reply;
        for index in called {
            let answer = self
                .ask(index, &Call::Reply(&context), |output| {
                    let Output::Lines(lines) = output else { unreachable!("on-reply returns lines") };
                    validate::extra_lines(&lines).map(|()| lines)
                })
                .await;
            match answer {
                Ok(lines) if !lines.is_empty() => {
                    let last = reply.lines.pop().unwrap_or_default();
                    reply.lines.extend(lines);
                    reply.lines.push(last);
                }
                Ok(_) | Err(None) => {}
                Err(Some(tempfail)) => return tempfail,
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
    /// The call's name for logs and metrics: the hook's, as the WIT package spells it, or the
    /// export's for the two calls a manifest does not list as hooks (a claimed verb, a part).
    pub(super) fn hook(&self) -> &'static str {
        let hook = match self {
            Call::Connect(_) => Hook::Connect,
            Call::Helo(_) => Hook::Helo,
            Call::MailFrom(_) => Hook::MailFrom,
            Call::RcptTo(_) => Hook::RcptTo,
            Call::Data(..) => Hook::Data,
            Call::Reset => Hook::Reset,
            Call::Reply(_) => Hook::Reply,
            Call::Route(..) => Hook::Route,
            Call::DeliveryResult(..) => Hook::DeliveryResult,
            Call::Command(..) => return "command",
            Call::Part(_) => return "mime-part",
        };
        hook.name()
    }
}

impl Hook {
    /// The hook's name as the WIT package spells it: in logs, metrics and `plugin inspect`.
    pub fn name(self) -> &'static str {
        match self {
            Hook::Connect => "connect",
            Hook::Helo => "helo",
            Hook::MailFrom => "mail-from",
            Hook::RcptTo => "rcpt-to",
            Hook::Data => "data",
            Hook::Reset => "reset",
            Hook::Reply => "reply",
            Hook::Route => "route",
            Hook::DeliveryResult => "delivery-result",
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
