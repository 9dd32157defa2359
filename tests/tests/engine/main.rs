//! Whole-stack tests of the engine, linked into one test binary: every
//! action against a real HTTP worker on memory and file providers, the
//! multi-process races, the Lambda dispatcher event handling, the end-to-end
//! flow on DynamoDB/S3/SQS (moto) and the SAM template checks.

/// One moto_server for every AWS test of this binary.
#[path = "../../../shared/tests/integration/support/moto.rs"]
mod moto;

mod aws_faults;
mod aws_flow;
mod aws_requests;
mod aws_support;
mod engine_awaits;
mod engine_bad_input;
mod engine_complete;
mod engine_concurrency;
mod engine_dispatch;
mod engine_extensions;
mod engine_failures;
mod engine_flow;
mod engine_redrive;
mod engine_status;
mod engine_submit;
mod engine_sweep;
mod lambda_dispatcher;
mod multi_process;
mod multi_process_complete;
mod template;
