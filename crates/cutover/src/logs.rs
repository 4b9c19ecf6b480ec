//! Log lines in one format: the tracing log on stderr and the event lines of
//! `cutover run` on stdout are both human-readable text (colour only when
//! stderr is a terminal) or, with `--log-format json`, one JSON object per
//! line (`ts`, `level`, `target` or `event`, `message`, then the fields).
//! The event lines are the `tracing` events of target
//! [`cutover_control::telemetry::EVENTS`], printed whatever `CUTOVER_LOG` says.

use std::fmt;
use std::io::IsTerminal;
use std::sync::OnceLock;

use cutover_control::telemetry::EVENTS;
use serde_json::{Map, Value, json};
use tracing::field::{Field, Visit};
use tracing_subscriber::filter::filter_fn;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{Layer, fmt as tfmt};

use crate::cli::LogFormat;

static JSON: OnceLock<bool> = OnceLock::new();

/// Why the log could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum LogsError {
    /// `$CUTOVER_LOG_FORMAT` names neither log format.
    #[error("CUTOVER_LOG_FORMAT: {value:?} is not text or json")]
    UnknownFormat { value: String },
    /// A tracing subscriber was already installed in this process.
    #[error("setting up the log: {source}")]
    Install {
        #[source]
        source: tracing_subscriber::util::TryInitError,
    },
}

/// Sets up the tracing log (filter from `CUTOVER_LOG`, default `warn`) in
/// `format`, else `$CUTOVER_LOG_FORMAT`, else text.
pub fn init(format: Option<LogFormat>) -> Result<(), LogsError> {
    let format = match format {
        Some(f) => f,
        None => match std::env::var("CUTOVER_LOG_FORMAT").ok().as_deref() {
            None | Some("") | Some("text") => LogFormat::Text,
            Some("json") => LogFormat::Json,
            Some(other) => return Err(LogsError::UnknownFormat { value: other.to_string() }),
        },
    };
    let json = format == LogFormat::Json;
    let _ = JSON.set(json);
    let filter = tracing_subscriber::EnvFilter::try_from_env("CUTOVER_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let lines = EventLines.with_filter(filter_fn(|m| m.target() == EVENTS));
    let not_lines = filter_fn(|m| m.target() != EVENTS);
    let log = tfmt::layer().with_writer(std::io::stderr);
    let registry = tracing_subscriber::registry().with(lines);
    let installed = if json {
        registry.with(log.event_format(JsonLines).with_filter(not_lines).with_filter(filter)).try_init()
    } else {
        registry
            .with(log.with_ansi(std::io::stderr().is_terminal()).with_filter(not_lines).with_filter(filter))
            .try_init()
    };
    installed.map_err(|source| LogsError::Install { source })
}

/// True with `--log-format json`.
pub fn json() -> bool {
    JSON.get().copied().unwrap_or(false)
}

/// One event line of `cutover run` (health changes, incidents, decisions,
/// runbooks) on stdout: `<ts> <message>`, or a JSON object with `fields`.
pub fn event(level: &str, kind: &str, message: &str, fields: Value) {
    let ts = cutover_core::time::rfc3339(std::time::SystemTime::now());
    if json() {
        let mut obj = Map::new();
        obj.insert("ts".into(), json!(ts));
        obj.insert("level".into(), json!(level));
        obj.insert("event".into(), json!(kind));
        obj.insert("message".into(), json!(message));
        if let Value::Object(f) = fields {
            obj.extend(f);
        }
        println!("{}", Value::Object(obj));
    } else if level == "error" {
        eprintln!("{ts} {message}");
    } else {
        println!("{ts} {message}");
    }
}

/// A line of `cutover run` about the process itself (start-up, listeners,
/// stop) on stdout: the message as is, or a JSON object with `fields`.
pub fn say(kind: &str, message: &str, fields: Value) {
    if json() {
        event("info", kind, message, fields);
    } else {
        println!("{message}");
    }
}

/// Prints the event lines of [`cutover_control::telemetry`] with [`event`]:
/// the kind from the field `event`, the fields from the JSON object in the
/// field `fields`.
struct EventLines;

impl<S: tracing::Subscriber> Layer<S> for EventLines {
    fn on_event(&self, e: &tracing::Event<'_>, _ctx: Context<'_, S>) {
        let mut f = Fields(Map::new());
        e.record(&mut f);
        let text = |k: &str| f.0.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
        let fields = serde_json::from_str(&text("fields")).unwrap_or(Value::Object(Map::new()));
        let level = e.metadata().level().as_str().to_ascii_lowercase();
        event(&level, &text("event"), &text("message"), fields);
    }
}

/// The tracing log as JSON lines.
struct JsonLines;

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(&self, _ctx: &FmtContext<'_, S, N>, mut w: Writer<'_>, event: &tracing::Event<'_>) -> fmt::Result {
        let meta = event.metadata();
        let mut obj = Map::new();
        obj.insert("ts".into(), json!(cutover_core::time::rfc3339(std::time::SystemTime::now())));
        obj.insert("level".into(), json!(meta.level().as_str().to_ascii_lowercase()));
        obj.insert("target".into(), json!(meta.target()));
        let mut fields = Fields(Map::new());
        event.record(&mut fields);
        obj.extend(fields.0);
        writeln!(w, "{}", Value::Object(obj))
    }
}

struct Fields(Map<String, Value>);

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0.insert(field.name().into(), json!(format!("{value:?}")));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().into(), json!(value));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().into(), json!(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().into(), json!(value));
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().into(), json!(value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().into(), json!(value));
    }
}
