//! Logging: JSON lines through `tracing`, one object per event with the
//! request span's fields (request id, function, tenant) flattened in.
//! `RUST_LOG` filters (default `info`).

/// Installs the JSON subscriber once per process; later calls are no-ops.
pub fn init() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(true)
        .with_span_list(false)
        .flatten_event(true)
        .with_target(false)
        .with_ansi(false)
        .try_init();
}
