//! `pipeline-contract.json` (`RELEASES.md` §2.2): structural checks and the
//! identity comparison with the descriptor. The contract is stored as read.

use serde_json::Value;

use crate::error::ApiError;

/// Largest contract accepted, in bytes (reading stops there).
pub const MAX_CONTRACT_BYTES: usize = 1_048_576;

/// Parses and checks a contract's structure → 400 `CONTRACT_INVALID`.
pub fn parse_contract(bytes: &[u8]) -> Result<Value, ApiError> {
    let _ = bytes;
    todo!()
}

/// Contract `pipelineId`/`contractVersion` must equal the descriptor's
/// exactly (not trimmed) → else 400 `CONTRACT_MISMATCH`.
pub fn check_identity(contract: &Value, pipeline_id: &str, contract_version: &str) -> Result<(), ApiError> {
    let _ = (contract, pipeline_id, contract_version);
    todo!()
}
