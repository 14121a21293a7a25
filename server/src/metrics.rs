//! Prometheus metrics: the process-wide counters, gauges and histograms, their text
//! exposition (format 0.0.4), and the `/metrics` endpoint (`[metrics] listen`).
//!
//! The families are fixed here, named as Prometheus asks (`wasmail_` prefix, base units,
//! `_total` on counters). Label values come from a closed set (protocols, results, hooks) or
//! from the operator (plugin names), never from a client, so the number of series stays
//! bounded. A family is a list of series under a mutex: an update costs far less than the
//! work it counts (a connection, a message, a hook call).

use std::fmt::Write as _;
use std::sync::{LazyLock, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Upper bounds of the plugin latency buckets, in seconds: 50 µs (an instantiation is about
/// that) to the largest sensible call timeout.
const CALL_BUCKETS: [f64; 14] = [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0];

/// Counters keyed by their label values.
struct Counters {
    name: &'static str,
    help: &'static str,
    labels: &'static [&'static str],
    values: Mutex<SeriesList<u64>>,
}

impl Counters {
    const fn new(name: &'static str, help: &'static str, labels: &'static [&'static str]) -> Counters {
        Counters { name, help, labels, values: Mutex::new(Vec::new()) }
    }

    fn add(&self, labels: &[&str], n: u64) {
        debug_assert_eq!(labels.len(), self.labels.len(), "{}", self.name);
        *series(&mut self.values.lock().expect("metrics lock"), labels) += n;
    }

    fn inc(&self, labels: &[&str]) {
        self.add(labels, 1);
    }

    fn write(&self, out: &mut String) {
        let _ = writeln!(out, "# HELP {} {}\n# TYPE {} counter", self.name, self.help, self.name);
        let list = sorted(&self.values.lock().expect("metrics lock"));
        for (values, n) in &list {
            let _ = writeln!(out, "{}{} {n}", self.name, label_set(self.labels, values, None));
        }
    }
}

/// The series of a family: few (label values are a closed set or plugin names), so a list
/// searched in place beats a map keyed by owned strings.
type SeriesList<T> = Vec<(Vec<String>, T)>;

/// The value of the series with `labels`, made on first use.
fn series<'a, T: Default>(list: &'a mut SeriesList<T>, labels: &[&str]) -> &'a mut T {
    let found = list.iter().position(|(k, _)| k.iter().map(String::as_str).eq(labels.iter().copied()));
    let index = found.unwrap_or_else(|| {
        list.push((labels.iter().map(|l| l.to_string()).collect(), T::default()));
        list.len() - 1
    });
    &mut list[index].1
}

/// The series sorted by label values, for a stable exposition.
fn sorted<T: Clone>(list: &SeriesList<T>) -> SeriesList<T> {
    let mut list = list.clone();
    list.sort_by(|a, b| a.0.cmp(&b.0));
    list
}

/// One histogram series: cumulative bucket counts are made at exposition.
#[derive(Default, Clone)]
struct Series {
    buckets: [u64; CALL_BUCKETS.len()],
    count: u64,
    sum: f64,
}

struct Histograms {
    name: &'static str,
    help: &'static str,
    labels: &'static [&'static str],
    values: Mutex<SeriesList<Series>>,
}

impl Histograms {
    const fn new(name: &'static str, help: &'static str, labels: &'static [&'static str]) -> Histograms {
        Histograms { name, help, labels, values: Mutex::new(Vec::new()) }
    }

    fn observe(&self, labels: &[&str], seconds: f64) {
        let mut values = self.values.lock().expect("metrics lock");
        let series = series(&mut values, labels);
        if let Some(i) = CALL_BUCKETS.iter().position(|&le| seconds <= le) {
            series.buckets[i] += 1;
        }
        series.count += 1;
        series.sum += seconds;
    }

    fn write(&self, out: &mut String) {
        let _ = writeln!(out, "# HELP {} {}\n# TYPE {} histogram", self.name, self.help, self.name);
        let list = sorted(&self.values.lock().expect("metrics lock"));
        for (values, series) in &list {
            let mut cumulative = 0;
            for (le, n) in CALL_BUCKETS.iter().zip(series.buckets) {
                cumulative += n;
                let _ = writeln!(out, "{}_bucket{} {cumulative}", self.name, label_set(self.labels, values, Some(&le.to_string())));
            }
            let _ = writeln!(out, "{}_bucket{} {}", self.name, label_set(self.labels, values, Some("+Inf")), series.count);
            let _ = writeln!(out, "{}_sum{} {}", self.name, label_set(self.labels, values, None), series.sum);
            let _ = writeln!(out, "{}_count{} {}", self.name, label_set(self.labels, values, None), series.count);
        }
    }
}

/// `{a="x",b="y"}` (with `le` last for a bucket), or nothing for no labels.
fn label_set(names: &[&str], values: &[String], le: Option<&str>) -> String {
    let mut pairs: Vec<String> = names.iter().zip(values).map(|(n, v)| format!("{n}=\"{}\"", escape(v))).collect();
    if let Some(le) = le {
        pairs.push(format!("le=\"{le}\""));
    }
    if pairs.is_empty() {
        String::new()
    } else {
        format!("{{{}}}", pairs.join(","))
    }
}

/// Label values escape backslash, double quote and newline (exposition format 0.0.4).
fn escape(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// What the server counts. Gauges that describe the present (queue, sessions) are read from
/// their owners at exposition; see [`Gauges`].
pub struct Metrics {
    connections: Counters,
    transactions: Counters,
    received_bytes: Counters,
    deliveries: Counters,
    relay_sessions: Counters,
    logins: Counters,
    reloads: Counters,
    plugin_calls: Counters,
    plugin_failures: Counters,
    plugin_seconds: Histograms,
}

static METRICS: LazyLock<Metrics> = LazyLock::new(|| {
    Metrics {
    connections: Counters::new("wasmail_connections_total", "Connections accepted, by listener protocol.", &["protocol"]),
    transactions: Counters::new(
        "wasmail_smtp_transactions_total",
        "SMTP messages (DATA or BDAT LAST) by result (accepted, discarded, rejected, deferred) and reply class.",
        &["result", "class"],
    ),
    received_bytes: Counters::new("wasmail_smtp_received_bytes_total", "Octets of message content received over SMTP.", &[]),
    deliveries: Counters::new(
        "wasmail_deliveries_total",
        "Delivery attempts per recipient, by result (delivered, deferred, failed) and where (local, relay).",
        &["result", "transport"],
    ),
    relay_sessions: Counters::new(
        "wasmail_relay_sessions_total",
        "Relay sessions that reached a next hop and sent MAIL, by TLS: tls, clear (not offered, refused, or [queue] tls = none), clear_after_failure (the handshake failed under tls = may).",
        &["tls"],
    ),
    logins: Counters::new("wasmail_logins_total", "Logins (SMTP AUTH, POP3, IMAP) by result (success, failure, blocked).", &["protocol", "result"]),
    reloads: Counters::new("wasmail_reloads_total", "Reloads (SIGHUP, wasmail reload) by result (success, failure).", &["result"]),
    plugin_calls: Counters::new("wasmail_plugin_calls_total", "Plugin hook calls.", &["plugin", "hook"]),
    plugin_failures: Counters::new(
        "wasmail_plugin_failures_total",
        "Failed plugin hook calls, by kind (trap, timeout, memory, invalid).",
        &["plugin", "hook", "kind"],
    ),
    plugin_seconds: Histograms::new("wasmail_plugin_call_seconds", "Wall time of plugin hook calls, instantiation included.", &["plugin", "hook"]),
}
});

/// The process's metrics.
pub fn get() -> &'static Metrics {
    &METRICS
}

/// The gauges, read when the metrics are scraped.
pub struct Gauges {
    /// Sessions open now, all protocols.
    pub sessions: usize,
    /// Entries in the queue.
    pub queue_messages: usize,
    /// Age of the oldest entry, in seconds (0 for an empty queue).
    pub queue_oldest_seconds: u64,
    /// Plugins loaded in the current set.
    pub plugins: usize,
}

impl Metrics {
    pub fn connection(&self, protocol: &str) {
        self.connections.inc(&[protocol]);
    }

    /// A message's final reply (after DATA or BDAT LAST) and its size.
    pub fn transaction(&self, result: &str, code: u16, octets: usize) {
        let class = match code {
            200..=299 => "2xx",
            400..=499 => "4xx",
            _ => "5xx",
        };
        self.transactions.inc(&[result, class]);
        self.received_bytes.add(&[], octets as u64);
    }

    pub fn delivery(&self, result: &str, transport: &str) {
        self.deliveries.inc(&[result, transport]);
    }

    /// A relay session that got as far as MAIL, by the TLS it ran under.
    pub fn relay_session(&self, tls: &str) {
        self.relay_sessions.inc(&[tls]);
    }

    pub fn login(&self, protocol: &str, result: &str) {
        self.logins.inc(&[protocol, result]);
    }

    pub fn reload(&self, ok: bool) {
        self.reloads.inc(&[if ok { "success" } else { "failure" }]);
    }

    pub fn plugin_call(&self, plugin: &str, hook: &str, took: Duration) {
        self.plugin_calls.inc(&[plugin, hook]);
        self.plugin_seconds.observe(&[plugin, hook], took.as_secs_f64());
    }

    pub fn plugin_failure(&self, plugin: &str, hook: &str, kind: &str) {
        self.plugin_failures.inc(&[plugin, hook, kind]);
    }

    /// The exposition text (format 0.0.4).
    pub fn render(&self, gauges: &Gauges) -> String {
        let mut out = String::with_capacity(8192);
        let _ = writeln!(out, "# HELP wasmail_build_info The running version.\n# TYPE wasmail_build_info gauge");
        let _ = writeln!(out, "wasmail_build_info{{version=\"{}\"}} 1", env!("CARGO_PKG_VERSION"));
        for (name, help, value) in [
            ("wasmail_sessions", "Sessions open now (SMTP, POP3, IMAP).", gauges.sessions as u64),
            ("wasmail_queue_messages", "Messages in the queue.", gauges.queue_messages as u64),
            ("wasmail_queue_oldest_message_age_seconds", "Age of the oldest message in the queue.", gauges.queue_oldest_seconds),
            ("wasmail_plugins_loaded", "Plugins in the current set.", gauges.plugins as u64),
        ] {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}");
        }
        for counters in [
            &self.connections,
            &self.transactions,
            &self.received_bytes,
            &self.deliveries,
            &self.relay_sessions,
            &self.logins,
            &self.reloads,
            &self.plugin_calls,
            &self.plugin_failures,
        ] {
            counters.write(&mut out);
        }
        self.plugin_seconds.write(&mut out);
        out
    }
}

/// Serves `/metrics` on `listener` until the process ends. `gauges` reads the present.
pub async fn serve(listener: TcpListener, gauges: impl Fn() -> Gauges + Send + Sync + 'static) {
    let gauges = std::sync::Arc::new(gauges);
    loop {
        let Ok((socket, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let gauges = std::sync::Arc::clone(&gauges);
        tokio::spawn(async move {
            let _ = tokio::time::timeout(Duration::from_secs(10), answer(socket, &*gauges)).await;
        });
    }
}

/// One HTTP/1.x request: `GET /metrics` gets the text; the connection closes after it.
async fn answer(mut socket: TcpStream, gauges: &(dyn Fn() -> Gauges + Send + Sync)) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = socket.read(&mut chunk).await?;
        if n == 0 || head.len() > 16 * 1024 {
            return Ok(());
        }
        head.extend_from_slice(&chunk[..n]);
    }
    let line = head.split(|&b| b == b'\n').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let mut words = line.split_whitespace();
    let (method, target) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
    let path = target.split('?').next().unwrap_or("");
    let (status, body) = match (method, path) {
        ("GET" | "HEAD", "/metrics") => ("200 OK", get().render(&gauges())),
        ("GET" | "HEAD", _) => ("404 Not Found", "Not found: the metrics are at /metrics\n".to_string()),
        _ => ("405 Method Not Allowed", "Only GET\n".to_string()),
    };
    let mut response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    if method != "HEAD" {
        response.extend_from_slice(body.as_bytes());
    }
    socket.write_all(&response).await?;
    socket.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_and_histograms_render_in_the_text_format() {
        let calls = Counters::new("t_calls_total", "Calls.", &["plugin", "hook"]);
        calls.inc(&["greylist", "rcpt-to"]);
        calls.inc(&["greylist", "rcpt-to"]);
        calls.inc(&["a\"b", "data"]);
        let mut out = String::new();
        calls.write(&mut out);
        assert!(out.contains("t_calls_total{plugin=\"greylist\",hook=\"rcpt-to\"} 2\n"), "{out}");
        assert!(out.contains("t_calls_total{plugin=\"a\\\"b\",hook=\"data\"} 1\n"), "{out}");

        let h = Histograms::new("t_seconds", "Time.", &["plugin"]);
        h.observe(&["x"], 0.0003);
        h.observe(&["x"], 2.0);
        let mut out = String::new();
        h.write(&mut out);
        assert!(out.contains("t_seconds_bucket{plugin=\"x\",le=\"0.00025\"} 0\n"), "{out}");
        assert!(out.contains("t_seconds_bucket{plugin=\"x\",le=\"0.0005\"} 1\n"), "{out}");
        assert!(out.contains("t_seconds_bucket{plugin=\"x\",le=\"1\"} 1\n"), "{out}");
        assert!(out.contains("t_seconds_bucket{plugin=\"x\",le=\"+Inf\"} 2\n"), "{out}");
        assert!(out.contains("t_seconds_count{plugin=\"x\"} 2\n"), "{out}");
    }
}
