//! `tpf-core`: every piece of logic of the tpf-lambda coordinator.
//!
//! The binaries in `functions/` only wire this crate together: they read
//! [`config::Config`], build providers with [`wiring`], and hand the
//! [`http::router`] to `lambda_http::run`.
//!
//! Layers, from the inside out:
//! - [`domain`]: plain types and rules (ids, descriptors, contracts, release
//!   and worker records); pure functions, no I/O.
//! - [`ports`]: the traits the actions need (registries, artifact store,
//!   clock, secret resolution).
//! - [`providers`]: one module per backend (`memory`, `file`, …).
//! - [`actions`]: the single-shot actions, one file each, no HTTP types.
//! - [`http`]: routing, authentication, request checks and JSON errors.

pub mod actions;
pub mod config;
pub mod domain;
pub mod error;
pub mod http;
pub mod lambda_events;
pub mod ports;
pub mod providers;
pub mod telemetry;
pub mod wiring;

/// Product version reported by the health route and the OpenAPI document.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
