//! Ports implemented over HTTP: the REST worker transport (`EXECUTION.md` §7).

pub mod rest;

pub use rest::RestWorkerTransport;
