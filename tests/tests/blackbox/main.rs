//! Black-box tests (`#[ignore]`, run by `infra/test.sh` with `--ignored`):
//! the functions started the way the README does, under `cargo lambda watch`,
//! driven over real sockets.

mod common;

mod admin;
mod engine;
