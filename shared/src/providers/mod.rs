//! Implementations of the ports, one module per backend.

pub mod aws_requests;
pub mod aws_sdk;
pub mod aws_secrets;
pub mod dead_letters;
pub mod dynamo;
pub mod file;
pub mod http;
pub mod memory;
pub mod queues;
pub mod s3;
pub mod secrets;
pub mod sqs;
