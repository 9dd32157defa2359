//! Implementations of the ports, one module per backend.

pub mod dead_letters;
pub mod file;
pub mod http;
pub mod memory;
pub mod queues;
pub mod secrets;
