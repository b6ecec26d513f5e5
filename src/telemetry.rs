//! Logs: human-readable by default, one JSON object per line for services.
//! Always on stderr, so command output on stdout stays clean.
//!
//! Values logged come from outside too (invoice numbers, reasons, token names): in the
//! human format their control characters are escaped (`\n`, `\r`, `\t`, `\u{1b}`...),
//! so one event is always one line and no value can forge another. JSON escapes them
//! by itself.

use std::fmt;

use tracing::field::{Field, Visit};
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::format::{FormatFields, Writer};
use tracing_subscriber::EnvFilter;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Default)]
pub enum LogFormat {
    #[default]
    Human,
    Json,
}

/// Installs the global subscriber, writing to stderr. `RELANCE_LOG` (or `RUST_LOG`)
/// overrides `default_level` with a filter such as `info,relance::store=debug`.
///
/// With `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) set, the
/// spans (HTTP requests, ticks, deliveries) are also exported as OpenTelemetry traces
/// over OTLP/HTTP (protobuf), configured by the standard `OTEL_*` variables; call
/// [`shutdown`] before the process exits so the last ones are sent.
pub fn init(format: LogFormat, default_level: &str) {
    let filter = std::env::var("RELANCE_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .ok()
        .and_then(|f| EnvFilter::try_new(f).ok())
        .unwrap_or_else(|| EnvFilter::new(format!("{default_level},sqlx=warn")));
    // Colours only on a terminal: escape codes in a log file or a journal are noise.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let Some(tracer) = otlp::tracer() else {
        // `try_init` also routes the `log` records of dependencies into it.
        let _ = tracing_subscriber::util::SubscriberInitExt::try_init(dispatch(
            format,
            filter,
            ansi,
            std::io::stderr,
        ));
        return;
    };
    use tracing_subscriber::layer::SubscriberExt as _;
    let human = (format == LogFormat::Human).then(|| {
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(ansi)
            .fmt_fields(EscapedFields)
            .with_target(false)
    });
    let json = (format == LogFormat::Json).then(|| {
        tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_writer(std::io::stderr)
    });
    let subscriber = tracing_subscriber::registry()
        .with(filter)
        .with(human)
        .with(json)
        .with(tracing_opentelemetry::layer().with_tracer(tracer));
    let _ = tracing_subscriber::util::SubscriberInitExt::try_init(subscriber);
}

/// Sends the traces not yet exported and stops the exporter (nothing without OTLP).
pub fn shutdown() {
    otlp::shutdown();
}

/// OpenTelemetry traces over OTLP/HTTP, on when the standard endpoint variable is set.
mod otlp {
    use std::sync::OnceLock;

    use opentelemetry::trace::TracerProvider as _;
    use opentelemetry_otlp::{Protocol, WithExportConfig as _};
    use opentelemetry_sdk::trace::{SdkTracerProvider, Tracer};
    use opentelemetry_sdk::Resource;

    static PROVIDER: OnceLock<SdkTracerProvider> = OnceLock::new();

    fn set(var: &str) -> bool {
        std::env::var(var).is_ok_and(|v| !v.trim().is_empty())
    }

    /// The tracer spans are exported through, when OTLP is configured.
    pub(super) fn tracer() -> Option<Tracer> {
        let wanted =
            set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") || set("OTEL_EXPORTER_OTLP_ENDPOINT");
        let disabled = std::env::var("OTEL_SDK_DISABLED").is_ok_and(|v| v.trim() == "true");
        if !wanted || disabled {
            return None;
        }
        // The exporter's HTTP client is a blocking one, used from the batch processor's
        // own thread: it is made (and later dropped) outside the async runtime.
        let built = std::thread::spawn(|| {
            opentelemetry_otlp::SpanExporter::builder()
                .with_http()
                .with_protocol(Protocol::HttpBinary)
                .build()
                .map(|exporter| {
                    let mut resource = Resource::builder();
                    if !set("OTEL_SERVICE_NAME") {
                        resource = resource.with_service_name("relance");
                    }
                    let resource = resource
                        .with_attribute(opentelemetry::KeyValue::new(
                            "service.version",
                            env!("CARGO_PKG_VERSION"),
                        ))
                        .build();
                    SdkTracerProvider::builder()
                        .with_batch_exporter(exporter)
                        .with_resource(resource)
                        .build()
                })
        })
        .join();
        match built {
            Ok(Ok(provider)) => {
                let tracer = provider.tracer("relance");
                let _ = PROVIDER.set(provider);
                Some(tracer)
            }
            Ok(Err(e)) => {
                eprintln!("relance: OpenTelemetry traces are off: {e}");
                None
            }
            Err(_) => None,
        }
    }

    pub(super) fn shutdown() {
        if let Some(provider) = PROVIDER.get() {
            let provider = provider.clone();
            // Outside the async runtime, as the client was made.
            let _ = std::thread::spawn(move || {
                if let Err(e) = provider.shutdown() {
                    eprintln!("relance: the last OpenTelemetry traces could not be sent: {e}");
                }
            })
            .join();
        }
    }
}

/// The subscriber [`init`] installs, writing to `writer` instead: for a program that
/// embeds the service (or runs several) and routes each one's log itself, with
/// `tracing::dispatcher::set_default` on the threads that run it.
pub fn dispatch<W>(format: LogFormat, filter: EnvFilter, ansi: bool, writer: W) -> tracing::Dispatch
where
    W: for<'a> tracing_subscriber::fmt::MakeWriter<'a> + Send + Sync + 'static,
{
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(ansi);
    match format {
        LogFormat::Human => builder
            .fmt_fields(EscapedFields)
            .with_target(false)
            .finish()
            .into(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .finish()
            .into(),
    }
}

/// Formats an event's or a span's fields as `name=value`, the message first, with the
/// control characters of every value (and of the message) escaped.
#[derive(Debug, Clone, Copy, Default)]
pub struct EscapedFields;

impl<'w> FormatFields<'w> for EscapedFields {
    fn format_fields<R: RecordFields>(&self, writer: Writer<'w>, fields: R) -> fmt::Result {
        let mut v = EscapingVisitor {
            writer,
            first: true,
            result: Ok(()),
        };
        fields.record(&mut v);
        v.result
    }
}

struct EscapingVisitor<'w> {
    writer: Writer<'w>,
    first: bool,
    result: fmt::Result,
}

impl EscapingVisitor<'_> {
    fn write(&mut self, field: &Field, value: &str) {
        if self.result.is_err() || field.name().starts_with("log.") {
            return;
        }
        let sep = if self.first { "" } else { " " };
        self.first = false;
        let escaped = escape_control(value);
        self.result = if field.name() == "message" {
            write!(self.writer, "{sep}{escaped}")
        } else if self.writer.has_ansi_escapes() {
            write!(self.writer, "{sep}\x1b[3m{}\x1b[0m={escaped}", field.name())
        } else {
            write!(self.writer, "{sep}{}={escaped}", field.name())
        };
    }
}

impl Visit for EscapingVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.write(field, value);
        } else {
            // Quoted, as the default format does for strings.
            self.write(field, &format!("{value:?}"));
        }
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.write(field, &value.to_string());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.write(field, &format!("{value:?}"));
    }
}

/// `text` with its control characters escaped: `\n`, `\r`, `\t`, others as `\u{..}`.
pub fn escape_control(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\u{{{:x}}}", u32::from(c))),
            c => out.push(c),
        }
    }
    std::borrow::Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(escape_control("plain"), "plain");
        assert_eq!(
            escape_control("a\nINFO forged\r\t\u{1b}[2J\0"),
            "a\\nINFO forged\\r\\t\\u{1b}[2J\\u{0}"
        );
    }
}
