//! Benchmarks of the tpf-lambda coordinator (issue 6).
//!
//! The benches live in `benches/` (`cargo bench -p tpf-bench`); this library
//! holds what they share: [`latency`], the percentile summary criterion does
//! not give (it reports mean and median only) and its JSON report; and
//! [`load`], the load driver behind the `tpf-load` binary.

pub mod latency;
pub mod load;
