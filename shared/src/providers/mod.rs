//! Implementations of the ports, one module per backend.

pub mod file;
pub mod memory;
pub mod secrets;
