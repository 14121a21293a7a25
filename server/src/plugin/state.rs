//! The data of one plugin instance's `Store`: its WASI context (nothing granted), its memory
//! limiter, and what the `host` interface reaches (config, key-value store, names for logs).

use std::sync::Arc;

use wasmtime::component::ResourceTable;
use wasmtime::ResourceLimiter;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::bindings::wasmail::plugin::{host, types};
use super::Shared;

/// Caps linear memory and tables, and remembers that the cap was hit so that the failure can
/// be reported as "memory" rather than as a plain trap.
pub struct Limiter {
    /// Bytes of linear memory an instance may have.
    pub memory: usize,
    /// Set when a grow past `memory` was refused.
    pub hit: bool,
}

impl ResourceLimiter for Limiter {
    fn memory_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        if desired > self.memory {
            self.hit = true;
            // An error (not `Ok(false)`) traps at once instead of letting the guest's
            // allocator spin on a failed grow.
            return Err(wasmtime::format_err!("memory limit of {} bytes reached", self.memory));
        }
        Ok(true)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        Ok(desired <= 100_000)
    }
}

pub struct State {
    /// When the current call must end; checked at every epoch tick.
    pub deadline: Option<std::time::Instant>,
    /// Set when a call was stopped at its deadline, to report "timeout".
    pub timed_out: bool,
    /// WASI with no preopened directories, no network, no environment.
    pub wasi: WasiCtx,
    /// WASI's resources (streams and the like).
    pub table: ResourceTable,
    /// The memory limit, and whether it was hit.
    pub limiter: Limiter,
    /// The plugin this instance belongs to: its name, config and key-value store.
    pub plugin: Arc<Shared>,
    /// The session id, for log lines.
    pub session: Arc<str>,
    /// The hook being called, for log lines ("instantiate" while the instance is made).
    pub hook: &'static str,
    /// The server's host name, for `host.hostname`.
    pub hostname: Arc<str>,
    /// The checks of the current transaction, for `host.authentication`; set before each
    /// session hook call.
    pub authentication: Option<Arc<host::AuthenticationResults>>,
}

impl WasiView for State {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

impl types::Host for State {}

impl host::Host for State {
    fn log(&mut self, level: host::Level, message: String) {
        let (plugin, session, hook) = (self.plugin.name.as_str(), &*self.session, self.hook);
        match level {
            host::Level::Trace => tracing::trace!(plugin, hook, session, "{message}"),
            host::Level::Debug => tracing::debug!(plugin, hook, session, "{message}"),
            host::Level::Info => tracing::info!(plugin, hook, session, "{message}"),
            host::Level::Warn => tracing::warn!(plugin, hook, session, "{message}"),
            host::Level::Error => tracing::error!(plugin, hook, session, "{message}"),
        }
    }

    fn config(&mut self, key: String) -> Option<String> {
        self.plugin.settings.config.get(&key).cloned()
    }

    fn hostname(&mut self) -> String {
        self.hostname.to_string()
    }

    fn now_ms(&mut self) -> u64 {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
    }

    fn authentication(&mut self) -> Option<host::AuthenticationResults> {
        self.authentication.as_deref().cloned()
    }

    fn kv_get(&mut self, key: String) -> Option<Vec<u8>> {
        self.plugin.kv.get(&key)
    }

    fn kv_set(&mut self, key: String, value: Vec<u8>) -> Result<(), String> {
        let limit = usize::try_from(self.plugin.settings.kv_limit.0).unwrap_or(usize::MAX);
        self.plugin.kv.set(&key, &value, limit)
    }

    fn kv_delete(&mut self, key: String) {
        self.plugin.kv.delete(&key)
    }
}

/// The guest's stderr: each line becomes a log line tagged with the plugin's name.
pub struct StderrToLog {
    /// The plugin's name, for the log lines.
    pub plugin: Arc<str>,
    /// The session id: WASI writes the stream from a task of its own, outside the session's
    /// log span, so the line names it itself.
    pub session: Arc<str>,
}

impl wasmtime_wasi::cli::IsTerminal for StderrToLog {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl wasmtime_wasi::cli::StdoutStream for StderrToLog {
    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(LineLogger { plugin: Arc::clone(&self.plugin), session: Arc::clone(&self.session), partial: Vec::new() })
    }
}

/// Splits what the guest writes into lines and logs each one.
struct LineLogger {
    plugin: Arc<str>,
    session: Arc<str>,
    /// The start of a line whose end has not been written yet (at most 4 KiB kept).
    partial: Vec<u8>,
}

impl tokio::io::AsyncWrite for LineLogger {
    fn poll_write(mut self: std::pin::Pin<&mut Self>, _cx: &mut std::task::Context<'_>, buf: &[u8]) -> std::task::Poll<std::io::Result<usize>> {
        for &b in buf {
            if b == b'\n' {
                if !self.partial.is_empty() {
                    let line = String::from_utf8_lossy(&self.partial).into_owned();
                    tracing::info!(plugin = &*self.plugin, session = &*self.session, "stderr: {line}");
                }
                self.partial.clear();
            } else if self.partial.len() < 4096 {
                self.partial.push(b);
            }
        }
        std::task::Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: std::pin::Pin<&mut Self>, _cx: &mut std::task::Context<'_>) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: std::pin::Pin<&mut Self>, _cx: &mut std::task::Context<'_>) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}
