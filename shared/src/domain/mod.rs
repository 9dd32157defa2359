//! Plain types and rules of the coordinator. No I/O lives here.

pub mod awaits;
pub mod contract;
pub mod cursor;
pub mod dead_letter;
pub mod descriptor;
pub mod envelope;
pub mod execution;
pub mod ids;
pub mod ijson;
pub mod location;
pub mod release;
pub mod resume_token;
pub mod selection;
pub mod strict_json;
pub mod values;
pub mod worker;
pub mod worker_protocol;
pub mod zipscan;
