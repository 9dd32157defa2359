//! Latency summaries: p50, p99 and mean of a set of per-request samples,
//! a budget to hold them against, and the JSON report the benches write.
//!
//! Percentiles are nearest-rank: `pq` is the smallest sample that at least
//! `q` of all samples do not exceed (`sorted[ceil(q * n) - 1]`), so p99 of
//! 20 000 samples is the 19 800th smallest one.

use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The summary of one set of samples, in nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    /// How many samples.
    pub samples: usize,
    pub min_ns: u64,
    pub p50_ns: u64,
    pub p90_ns: u64,
    pub p99_ns: u64,
    pub p999_ns: u64,
    pub max_ns: u64,
    pub mean_ns: f64,
}

/// The nearest-rank `q`-quantile (`0 < q <= 1`) of ascending `sorted`;
/// `None` when it is empty.
pub fn percentile(sorted: &[u64], q: f64) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

impl Summary {
    /// Summarises `samples`; `None` when there are none.
    pub fn of(samples: &[Duration]) -> Option<Summary> {
        let mut ns: Vec<u64> = samples.iter().map(|d| d.as_nanos() as u64).collect();
        ns.sort_unstable();
        let p = |q| percentile(&ns, q);
        Some(Summary {
            samples: ns.len(),
            min_ns: *ns.first()?,
            p50_ns: p(0.50)?,
            p90_ns: p(0.90)?,
            p99_ns: p(0.99)?,
            p999_ns: p(0.999)?,
            max_ns: *ns.last()?,
            mean_ns: ns.iter().map(|&n| n as f64).sum::<f64>() / ns.len() as f64,
        })
    }

    /// The summary as JSON, in microseconds (`p50Us`, `p99Us`, …).
    pub fn to_json(&self) -> Value {
        let us = |ns: u64| ns as f64 / 1000.0;
        json!({
            "samples": self.samples,
            "minUs": us(self.min_ns),
            "p50Us": us(self.p50_ns),
            "p90Us": us(self.p90_ns),
            "p99Us": us(self.p99_ns),
            "p999Us": us(self.p999_ns),
            "maxUs": us(self.max_ns),
            "meanUs": self.mean_ns / 1000.0,
        })
    }
}

/// The budget of a route: an upper bound on its p99 (the budgets
/// are all p99 bounds).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Budget {
    /// The bound on p99, in microseconds.
    pub p99_max_us: f64,
}

impl Budget {
    /// Whether `s` holds the budget.
    pub fn met_by(&self, s: &Summary) -> bool {
        s.p99_ns as f64 / 1000.0 <= self.p99_max_us
    }

    /// The budget as JSON: `{"p99MaxUs": 50.0}`.
    pub fn to_json(&self) -> Value {
        json!({"p99MaxUs": self.p99_max_us})
    }
}

/// The result of one route: its summary, its budget if it has one.
#[derive(Debug, Clone)]
pub struct RouteResult {
    pub route: String,
    pub summary: Summary,
    pub budget: Option<Budget>,
    /// Anything else to report beside the summary (e.g. criterion's estimates).
    pub extra: Value,
}

impl RouteResult {
    /// The route as JSON: the summary's members, `budget`, `budgetMet`, `extra`.
    pub fn to_json(&self) -> Value {
        let mut v = self.summary.to_json();
        v["route"] = json!(self.route);
        v["budget"] = self.budget.map_or(Value::Null, |b| b.to_json());
        v["budgetMet"] = self
            .budget
            .map_or(Value::Null, |b| json!(b.met_by(&self.summary)));
        if !self.extra.is_null() {
            v["extra"] = self.extra.clone();
        }
        v
    }
}

/// A plain-text table of `results` (µs), one route a line, for the console.
pub fn table(results: &[RouteResult]) -> String {
    let mut out = format!(
        "{:<18} {:>7} {:>9} {:>9} {:>9} {:>9} {:>9}  {}\n",
        "route", "n", "p50 µs", "p99 µs", "p99.9 µs", "mean µs", "max µs", "budget"
    );
    for r in results {
        let s = &r.summary;
        let us = |ns: u64| ns as f64 / 1000.0;
        let budget = match r.budget {
            Some(b) => format!(
                "p99 ≤ {} µs: {}",
                b.p99_max_us,
                if b.met_by(s) { "met" } else { "MISSED" }
            ),
            None => "-".to_string(),
        };
        out.push_str(&format!(
            "{:<18} {:>7} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>9.1}  {}\n",
            r.route,
            s.samples,
            us(s.p50_ns),
            us(s.p99_ns),
            us(s.p999_ns),
            s.mean_ns / 1000.0,
            us(s.max_ns),
            budget
        ));
    }
    out
}

/// Writes `report` (pretty JSON) to `path`, creating its directory.
pub fn write_json(path: &Path, report: &Value) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let text = serde_json::to_string_pretty(report).map_err(std::io::Error::other)?;
    std::fs::write(path, text + "\n")
}

/// The cargo target directory of the running bench binary
/// (`<target>/<profile>/deps/<bench>`), or `target` when that cannot be told.
pub fn target_dir() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.ancestors().nth(3).map(Path::to_path_buf))
        .unwrap_or_else(|| PathBuf::from("target"))
}
