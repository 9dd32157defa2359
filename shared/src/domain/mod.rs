//! Plain types and rules of the coordinator. No I/O lives here.

pub mod contract;
pub mod cursor;
pub mod descriptor;
pub mod ids;
pub mod ijson;
pub mod location;
pub mod release;
pub mod strict_json;
pub mod values;
pub mod worker;
pub mod zipscan;
