//! Logging: JSON lines on stdout (what CloudWatch Logs ingests), one object per line, with the
//! fields of the current span (request id, correlation id, event id) on every line. Starting it
//! also starts the metrics recorder (`crate::metrics`) and, where an OTLP endpoint is configured,
//! the span exporter (`crate::traces`), since every function's `main` begins here.

use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::{fmt, prelude::*, EnvFilter};

/// Installs the JSON subscriber. The level comes from `RUST_LOG` (default `info`).
/// Safe to call more than once: later calls do nothing.
pub fn init_logging() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let json = fmt::layer()
        .json()
        .flatten_event(true)
        .with_current_span(true)
        .with_span_list(false)
        .with_target(false)
        .with_ansi(false);
    // `RUST_LOG` picks what is logged, not what is traced: spans are exported at `info` whatever
    // the log level, so a quieter log keeps its traces.
    let spans = crate::traces::exporting_layer().map(|layer| layer.with_filter(LevelFilter::INFO));
    let _ = tracing_subscriber::registry().with(json.with_filter(filter)).with(spans).try_init();
    crate::metrics::init();
}
