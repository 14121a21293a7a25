//! Logging on stderr: one JSON object per line (the default), or text for a terminal.
//!
//! A JSON line is flat: `timestamp`, `level`, `message`, then the fields of every span the
//! event is in (outermost first) and the event's own fields, so that a session's lines carry
//! `session` (and `protocol`, `peer`) at the top level, where
//! `jq 'select(.session == "S...")'` finds them. The lines a plugin makes the server write
//! (its `host.log`, its stderr, its failures) name `plugin` themselves, and `hook` where the
//! call is known (see `plugin::session`).

use std::fmt;

use serde_json::Value;
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::{JsonFields, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

use crate::config::LogFormat;

/// Installs the global subscriber. The level comes from `WASMAIL_LOG` (default `info`).
pub fn init(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("WASMAIL_LOG").unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.fmt_fields(JsonFields::new()).event_format(FlatJson).init(),
        LogFormat::Text => builder.init(),
    }
}

/// The JSON line format.
pub struct FlatJson;

/// Fields in the order they were first set; a later value for a name replaces the earlier.
#[derive(Default)]
struct Fields(Vec<(String, Value)>);

impl Fields {
    fn set(&mut self, name: &str, value: Value) {
        match self.0.iter_mut().find(|(n, _)| n == name) {
            Some(slot) => slot.1 = value,
            None => self.0.push((name.to_string(), value)),
        }
    }
}

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.set(field.name(), Value::String(format!("{value:?}")));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.set(field.name(), Value::String(value.to_string()));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.set(field.name(), value.into());
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.set(field.name(), value.into());
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.set(field.name(), value.into());
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.set(field.name(), value.into());
    }
}

impl<S, N> FormatEvent<S, N> for FlatJson
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(&self, ctx: &FmtContext<'_, S, N>, mut writer: Writer<'_>, event: &Event<'_>) -> fmt::Result {
        let mut fields = Fields::default();
        fields.set("timestamp", Value::String(chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true)));
        fields.set("level", Value::String(event.metadata().level().to_string()));
        fields.set("message", Value::String(String::new()));
        if let Some(scope) = ctx.event_scope() {
            for span in scope.from_root() {
                let extensions = span.extensions();
                // With `JsonFields`, a span's fields were formatted as one JSON object.
                let Some(formatted) = extensions.get::<FormattedFields<N>>() else { continue };
                if let Ok(Value::Object(map)) = serde_json::from_str::<Value>(formatted) {
                    for (name, value) in map {
                        fields.set(&name, value);
                    }
                }
            }
        }
        event.record(&mut fields);
        fields.set("target", Value::String(event.metadata().target().to_string()));
        let mut line = String::with_capacity(256);
        line.push('{');
        for (i, (name, value)) in fields.0.iter().enumerate() {
            if i > 0 {
                line.push(',');
            }
            line.push_str(&Value::String(name.clone()).to_string());
            line.push(':');
            line.push_str(&value.to_string());
        }
        line.push('}');
        writeln!(writer, "{line}")
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    use super::*;

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl Write for Buffer {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn span_fields_are_flattened_into_every_line() {
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let subscriber = tracing_subscriber::fmt().with_writer(move || writer.clone()).fmt_fields(JsonFields::new()).event_format(FlatJson).finish();
        tracing::subscriber::with_default(subscriber, || {
            let session = tracing::info_span!("session", protocol = "smtp", session = "S1");
            let _in_session = session.enter();
            tracing::info!(queue_id = "Q1", size = 42u64, "queued");
            let plugin = tracing::info_span!("plugin", plugin = "greylist", hook = "rcpt-to");
            let _in_plugin = plugin.enter();
            tracing::warn!("from \"inside\"");
        });
        let text = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert_eq!(lines[0]["message"], "queued");
        assert_eq!(lines[0]["session"], "S1");
        assert_eq!(lines[0]["protocol"], "smtp");
        assert_eq!(lines[0]["size"], 42);
        assert_eq!(lines[0].get("plugin"), None);
        assert_eq!(lines[1]["message"], "from \"inside\"");
        assert_eq!(lines[1]["session"], "S1");
        assert_eq!(lines[1]["plugin"], "greylist");
        assert_eq!(lines[1]["level"], "WARN");
        assert!(text.lines().next().unwrap().starts_with("{\"timestamp\":"), "{text}");
    }
}
