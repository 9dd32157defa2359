//! The load driver of issue 6 item 2 (`tpf-load`): builds a stack
//! ([`stack`]), drives many executions of the restaurant-approval pipeline
//! through the API from concurrent clients ([`driver`], [`client`]), and
//! reports executions/s and latency percentiles against the issue's
//! throughput budgets.

pub mod client;
pub mod driver;
pub mod stack;

use serde_json::{json, Value};

/// Why a load run could not be made (failed executions are counted in the
/// result, not reported as errors).
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The command line asks for something impossible.
    #[error("usage: {0}")]
    Usage(String),
    /// Building or starting the stack failed.
    #[error("setup: {0}")]
    Setup(String),
    /// A request could not be sent or its answer read.
    #[error("transport: {0}")]
    Transport(String),
    /// The result file could not be written.
    #[error("write {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
}

/// The throughput budget of a stack, in executions/s (`None`:
/// report only).
pub fn budget(kind: stack::StackKind) -> Option<f64> {
    match kind {
        stack::StackKind::Memory => Some(1_000.0),
        stack::StackKind::File => Some(200.0),
        stack::StackKind::Moto => None,
    }
}

/// The machine the run was made on: CPU model, cores, load average (other
/// processes share the cores; the load says how quiet they were).
pub fn machine() -> Value {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, m)| m.trim().to_string())
        })
        .unwrap_or_default();
    let nproc = std::thread::available_parallelism().map_or(0, |n| n.get());
    json!({"nproc": nproc, "cpu": cpu, "loadAvg": load_average(), "os": std::env::consts::OS, "arch": std::env::consts::ARCH})
}

/// `/proc/loadavg`'s 1, 5 and 15 minute figures, or empty.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}
