//! Logging: JSON lines through `tracing`, one object per event with the
//! request span's fields (request id, function, tenant) flattened in.
//! `RUST_LOG` filters (default `info`; release-like builds compile `trace`
//! out, workspace `Cargo.toml`).
//!
//! The filter is `tracing_subscriber`'s `Targets` (`target=level` directives
//! and a bare default level, e.g. `info,tpf_core=debug`), not `EnvFilter`:
//! `EnvFilter` links a regex engine (about 1 MB of every bootstrap) for span
//! and field filters a coordinator's logs do not need. An unparsable
//! `RUST_LOG` falls back to `info`.

use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// The log filter `RUST_LOG` (or nothing) asks for.
fn filter_from(rust_log: Option<&str>) -> Targets {
    rust_log
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .and_then(|v| v.parse::<Targets>().ok())
        .unwrap_or_else(|| Targets::new().with_default(LevelFilter::INFO))
}

/// Installs the JSON subscriber once per process; later calls are no-ops.
pub fn init() {
    let filter = filter_from(std::env::var("RUST_LOG").ok().as_deref());
    let _ = tracing_subscriber::fmt()
        .json()
        .with_current_span(true)
        .with_span_list(false)
        .flatten_event(true)
        .with_target(false)
        .with_ansi(false)
        .finish()
        .with(filter)
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing::Level;

    #[test]
    fn rust_log_directives_select_levels_and_anything_else_means_info() {
        let f = filter_from(Some("warn,tpf_core=debug"));
        assert!(f.would_enable("tpf_core::actions", &Level::DEBUG));
        assert!(!f.would_enable("hyper", &Level::INFO));
        assert!(f.would_enable("hyper", &Level::WARN));
        for default in [None, Some(""), Some("  "), Some("tpf_core=[{x}]")] {
            let f = filter_from(default);
            assert!(f.would_enable("anything", &Level::INFO), "{default:?}");
            assert!(!f.would_enable("anything", &Level::DEBUG), "{default:?}");
        }
    }
}
