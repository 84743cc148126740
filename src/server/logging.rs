//! Logging: one global subscriber whose filter (`log.level`) and format
//! (`log.format`) a config reload can change without a restart.
//!
//! Both sit behind `tracing_subscriber::reload` layers: the filter is a
//! global `EnvFilter`, the formatter a boxed `fmt` layer, text or JSON. A
//! reload stores new ones through the handles kept here.

use std::sync::OnceLock;

use tracing_subscriber::layer::{Layer, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{reload, EnvFilter, Registry};

use crate::config::{LogConfig, LogFormat};

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
    let layer = tracing_subscriber::fmt::layer()
        .with_target(true)
        .with_ansi(ansi);
    match format {
        LogFormat::Text => Box::new(layer),
        LogFormat::Json => Box::new(layer.json().flatten_event(true)),
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
