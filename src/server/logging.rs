//! Logging: one global subscriber whose filter (`log.level`) and format
//! (`log.format`) a config reload can change without a restart.
//!
//! Both sit behind `tracing_subscriber::reload` layers: the filter is a
//! global `EnvFilter`, the formatter a boxed `fmt` layer, text or JSON. A
//! reload stores new ones through the handles kept here.
//!
//! Every event emitted while a request's phase runs carries that request's
//! `request_id` (the access line's), added by [`WithRequestId`] from
//! [`request_id::in_request`]'s thread-local rather than by a span per
//! request, which the hot path could not afford.

use std::fmt;
use std::sync::OnceLock;

use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::{FormatEvent, FormatFields, Writer};
use tracing_subscriber::fmt::{FmtContext, MakeWriter};
use tracing_subscriber::layer::{Layer, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{reload, EnvFilter, Registry};

use crate::config::{LogConfig, LogFormat};
use crate::proxy::request_id;

type Format = Box<dyn Layer<Registry> + Send + Sync>;
type Formatted = tracing_subscriber::layer::Layered<reload::Layer<Format, Registry>, Registry>;

/// The handles of the installed subscriber.
struct Handles {
    format: reload::Handle<Format, Registry>,
    filter: reload::Handle<EnvFilter, Formatted>,
}

static HANDLES: OnceLock<Handles> = OnceLock::new();

fn format(format: LogFormat) -> Format {
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    format_to(format, ansi, std::io::stdout)
}

/// [`format`] into any writer (the tests' buffer).
fn format_to<W>(format: LogFormat, ansi: bool, writer: W) -> Format
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    // The formats' own ANSI setting, not only the layer's: WithRequestId
    // formats into a plain buffer, which would otherwise lose the colours.
    let text = tracing_subscriber::fmt::format()
        .with_target(true)
        .with_ansi(ansi);
    let layer = tracing_subscriber::fmt::layer()
        .with_ansi(ansi)
        .with_writer(writer);
    match format {
        LogFormat::Text => Box::new(layer.event_format(WithRequestId {
            json: false,
            inner: text,
        })),
        // No span fields in JSON: sessiongate opens no spans, and the JSON
        // formatter panics on a span opened before a reload from text
        // (tracing-subscriber's SerializableSpan expects its own fields).
        LogFormat::Json => Box::new(
            layer.json().event_format(WithRequestId {
                json: true,
                inner: text
                    .json()
                    .flatten_event(true)
                    .with_current_span(false)
                    .with_span_list(false),
            }),
        ),
    }
}

/// `log.level` was checked by `config` to parse; "info" is the fallback.
fn filter(level: &str) -> EnvFilter {
    EnvFilter::try_new(level).unwrap_or_else(|_| EnvFilter::new("info"))
}

/// Install the global subscriber (text or JSON on stdout).
pub fn init(config: &crate::config::Config) {
    let log = &config.log;
    let (format_layer, format_handle) = reload::Layer::new(format(log.format));
    let (filter_layer, filter_handle) = reload::Layer::new(filter(&log.level));
    // try_init: a second call (tests) keeps the first subscriber.
    if tracing_subscriber::registry()
        .with(format_layer)
        .with(filter_layer)
        .try_init()
        .is_ok()
    {
        let _ = HANDLES.set(Handles {
            format: format_handle,
            filter: filter_handle,
        });
    }
}

/// Apply a reloaded `[log]`: the level at once, the format if it changed.
pub(super) fn apply(old: &LogConfig, new: &LogConfig) {
    let Some(h) = HANDLES.get() else { return };
    if old.level != new.level {
        if let Err(e) = h.filter.reload(filter(&new.level)) {
            tracing::warn!(error = %e, "log.level not applied");
        }
    }
    if old.format != new.format {
        if let Err(e) = h.format.reload(format(new.format)) {
            tracing::warn!(error = %e, "log.format not applied");
        }
    }
}

/// An event format that adds `request_id` to the events of a request's
/// phases: a field like the event's own, at the end of a text line and first
/// in a JSON object. Events that name a `request_id` themselves (the access
/// line) are left as they are.
struct WithRequestId<E> {
    json: bool,
    inner: E,
}

impl<S, N, E> FormatEvent<S, N> for WithRequestId<E>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'w> FormatFields<'w> + 'static,
    E: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let own = event.metadata().fields().field("request_id").is_some();
        request_id::with_current(|id| {
            let Some(id) = id.filter(|_| !own) else {
                return self.inner.format_event(ctx, writer, event);
            };
            // Only events inside a request that are not its access line
            // (warnings, mostly) come here, so a buffer per event is cheap.
            let mut line = String::new();
            self.inner
                .format_event(ctx, Writer::new(&mut line), event)?;
            match self.json {
                true => match line.strip_prefix('{') {
                    Some(rest) => write!(writer, "{{\"request_id\":\"{id}\",{rest}"),
                    None => writer.write_str(&line),
                },
                false => match line.strip_suffix('\n') {
                    Some(head) => writeln!(writer, "{head} request_id={id}"),
                    None => write!(writer, "{line} request_id={id}"),
                },
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use http::HeaderValue;

    use super::*;
    use crate::proxy::request_id::{in_request, LogId};

    /// What the formatter wrote.
    #[derive(Clone, Default)]
    struct Written(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Written {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'w> MakeWriter<'w> for Written {
        type Writer = Written;
        fn make_writer(&'w self) -> Written {
            self.clone()
        }
    }

    /// The lines of: a warning outside any request, then inside request
    /// `req-7` a warning with a field and the request's access line.
    fn lines(format: LogFormat) -> Vec<String> {
        let written = Written::default();
        let subscriber =
            tracing_subscriber::registry().with(format_to(format, false, written.clone()));
        tracing::subscriber::with_default(subscriber, || {
            tracing::warn!("outside");
            futures::executor::block_on(in_request(
                LogId::of(&HeaderValue::from_static("req-7")),
                Box::pin(async {
                    tracing::warn!(user = "alice", "inside");
                    tracing::info!(target: "access", request_id = "req-7", status = 200);
                }),
            ));
        });
        let text = String::from_utf8(written.0.lock().unwrap().clone()).unwrap();
        text.lines().map(str::to_owned).collect()
    }

    #[test]
    fn text_lines_inside_a_request_end_with_its_id() {
        let lines = lines(LogFormat::Text);
        assert_eq!(lines.len(), 3, "{lines:#?}");
        assert!(!lines[0].contains("request_id"), "{}", lines[0]);
        assert!(
            lines[1].ends_with("inside user=\"alice\" request_id=req-7"),
            "{}",
            lines[1]
        );
        assert_eq!(lines[2].matches("request_id").count(), 1, "{}", lines[2]);
    }

    #[test]
    fn json_events_inside_a_request_have_its_id_once() {
        let lines = lines(LogFormat::Json);
        assert_eq!(lines[2].matches("request_id").count(), 1, "{}", lines[2]);
        let events: Vec<serde_json::Value> = lines
            .iter()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect();
        assert_eq!(events.len(), 3);
        assert_eq!(events[0]["message"], "outside");
        assert!(events[0].get("request_id").is_none(), "{}", events[0]);
        assert_eq!(events[1]["message"], "inside");
        assert_eq!(events[1]["user"], "alice");
        assert_eq!(events[1]["request_id"], "req-7");
        assert_eq!(events[2]["request_id"], "req-7");
        assert_eq!(events[2]["target"], "access");
    }
}
