//! The integration tests of `tpf-core`, linked into one test binary: the
//! conformance suite of every port on every provider (memory, file, and the
//! AWS providers against `moto_server`), the in-process and socket HTTP tests
//! of the release-admin and worker-lifecycle routes, and the REST transport.
//! One binary instead of one per file keeps the debug build small and the
//! link count low on 2-core CI machines; tests that set process environment
//! variables (`aws_secrets.rs`, `http_common.rs`) stay in binaries of their own.

mod support;

mod conformance_artifact_store;
mod conformance_await_store;
mod conformance_execution_store;
mod conformance_release_registry;
mod conformance_worker_registry;
mod dynamo_engine_store;
mod dynamo_registries;
mod dynamo_write_counts;
mod http_releases;
mod http_socket;
mod http_worker_probe;
mod http_workers;
mod rest_transport;
mod s3_artifacts;
mod sqs_queue;
