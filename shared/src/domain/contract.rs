//! `pipeline-contract.json` (`RELEASES.md` §2.2): structural checks and the
//! identity comparison with the descriptor. The contract is stored as read.

use std::collections::HashSet;

use serde_json::{Map, Value};

use crate::domain::ijson::check_numbers;
use crate::domain::strict_json::{parse_value, StrictJsonError};
use crate::error::{ApiError, ErrorCode};

/// Largest contract accepted, in bytes (reading stops there).
pub const MAX_CONTRACT_BYTES: usize = 1_048_576;

/// Optional string members of a step.
const STEP_STRINGS: [&str; 8] = [
    "authoredName",
    "kind",
    "cardinality",
    "inputTypeId",
    "outputTypeId",
    "runtimeClass",
    "clientClass",
    "awaitTransport",
];

/// Parses and checks a contract's structure → 400 `CONTRACT_INVALID`.
pub fn parse_contract(bytes: &[u8]) -> Result<Value, ApiError> {
    if bytes.len() > MAX_CONTRACT_BYTES {
        return Err(invalid("the contract is larger than 1048576 bytes"));
    }
    let value = parse_value(bytes).map_err(|e| match e {
        StrictJsonError::Empty => invalid("the contract is empty"),
        StrictJsonError::NotUtf8 => invalid("the contract is not valid UTF-8"),
        StrictJsonError::Invalid(why) => invalid(format!("the contract is not valid JSON: {why}")),
        StrictJsonError::NotObject => invalid("the contract must be a JSON object"),
    })?;
    let Value::Object(obj) = &value else {
        return Err(invalid("the contract must be a JSON object"));
    };
    // parse_value succeeded, so the bytes are UTF-8.
    let text =
        std::str::from_utf8(bytes).map_err(|_| invalid("the contract is not valid UTF-8"))?;
    check_numbers(text).map_err(|why| invalid(format!("the contract breaks I-JSON: {why}")))?;
    check_structure(obj)?;
    Ok(value)
}

fn check_structure(obj: &Map<String, Value>) -> Result<(), ApiError> {
    let schema_version = match present(obj, "schemaVersion") {
        None => return Err(invalid("contract schemaVersion is required")),
        Some(v) => match integer(v) {
            Some(n @ 1..=3) => n,
            _ => return Err(invalid("contract schemaVersion must be 1, 2 or 3")),
        },
    };
    for member in ["pipelineId", "contractVersion", "contractHash"] {
        match present(obj, member) {
            None => return Err(invalid(format!("contract {member} is required"))),
            Some(Value::String(s)) if !s.trim().is_empty() => {}
            Some(_) => {
                return Err(invalid(format!(
                    "contract {member} must be a non-blank string"
                )))
            }
        }
    }
    for member in ["platform", "transport", "module", "runtimeLayout"] {
        optional_string(obj, member, member)?;
    }
    if !matches!(present(obj, "pluginHost"), None | Some(Value::Bool(_))) {
        return Err(invalid("contract pluginHost must be a boolean"));
    }
    match present(obj, "steps") {
        None => {}
        Some(Value::Array(steps)) => check_steps(steps)?,
        Some(_) => return Err(invalid("contract steps must be an array of step objects")),
    }
    match present(obj, "capabilities") {
        None => {}
        Some(Value::Object(caps)) => {
            if !matches!(
                present(caps, "localTransitionExecution"),
                None | Some(Value::Bool(_))
            ) {
                return Err(invalid(
                    "contract capabilities.localTransitionExecution must be a boolean",
                ));
            }
            match present(caps, "transitionWorkerProtocols") {
                None => {}
                Some(Value::Array(items)) if items.iter().all(Value::is_string) => {}
                Some(_) => return Err(invalid(
                    "contract capabilities.transitionWorkerProtocols must be an array of strings",
                )),
            }
        }
        Some(_) => return Err(invalid("contract capabilities must be an object")),
    }
    if !matches!(
        present(obj, "canonicalTypes"),
        None | Some(Value::Object(_))
    ) {
        return Err(invalid("contract canonicalTypes must be an object"));
    }
    optional_string(
        obj,
        "canonicalCatalogFingerprint",
        "canonicalCatalogFingerprint",
    )?;
    match present(obj, "composition") {
        None => {}
        Some(Value::Object(_)) if schema_version == 3 => {}
        Some(Value::Object(_)) => {
            return Err(invalid(
                "contract composition is only allowed with schemaVersion 3",
            ))
        }
        Some(_) => return Err(invalid("contract composition must be an object")),
    }
    Ok(())
}

fn check_steps(steps: &[Value]) -> Result<(), ApiError> {
    let mut seen = HashSet::new();
    for (i, step) in steps.iter().enumerate() {
        let Value::Object(step) = step else {
            return Err(invalid(format!("contract steps[{i}] must be an object")));
        };
        let index = match present(step, "index") {
            None => return Err(invalid(format!("contract steps[{i}].index is required"))),
            Some(v) => match integer(v) {
                Some(n) if n >= 0 => n,
                _ => {
                    return Err(invalid(format!(
                        "contract steps[{i}].index must be an integer of at least 0"
                    )))
                }
            },
        };
        if !seen.insert(index) {
            return Err(invalid(format!(
                "contract steps[{i}].index {index} is not unique"
            )));
        }
        for member in STEP_STRINGS {
            optional_string(step, member, &format!("steps[{i}].{member}"))?;
        }
    }
    Ok(())
}

/// Contract `pipelineId`/`contractVersion` must equal the descriptor's
/// exactly (not trimmed) → else 400 `CONTRACT_MISMATCH`.
pub fn check_identity(
    contract: &Value,
    pipeline_id: &str,
    contract_version: &str,
) -> Result<(), ApiError> {
    for (member, expected) in [
        ("pipelineId", pipeline_id),
        ("contractVersion", contract_version),
    ] {
        if contract.get(member).and_then(Value::as_str) != Some(expected) {
            return Err(ApiError::new(
                ErrorCode::ContractMismatch,
                format!("contract {member} does not equal the descriptor's {member} {expected:?}"),
            ));
        }
    }
    Ok(())
}

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::new(ErrorCode::ContractInvalid, message)
}

/// A member's value, `null` counting as absent.
fn present<'a>(obj: &'a Map<String, Value>, member: &str) -> Option<&'a Value> {
    obj.get(member).filter(|v| !v.is_null())
}

/// A JSON integer (no fraction, no exponent), else None. serde_json reads
/// the literal `-0` as the double −0.0, which is accepted as 0 (`API.md`
/// §1.3); the text `-0.0` cannot be told apart from it once parsed.
fn integer(v: &Value) -> Option<i128> {
    let Value::Number(n) = v else { return None };
    n.as_i64()
        .map(i128::from)
        .or_else(|| n.as_u64().map(i128::from))
        .or_else(|| {
            n.as_f64()
                .filter(|f| *f == 0.0 && f.is_sign_negative())
                .map(|_| 0)
        })
}

fn optional_string(obj: &Map<String, Value>, member: &str, path: &str) -> Result<(), ApiError> {
    match present(obj, member) {
        None | Some(Value::String(_)) => Ok(()),
        Some(_) => Err(invalid(format!("contract {path} must be a string"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn minimal() -> Value {
        json!({
            "schemaVersion": 2,
            "pipelineId": "restaurant-approval",
            "contractVersion": "sha256:4be1f0c27a9d",
            "contractHash": "4be1f0c27a9d"
        })
    }

    fn full() -> Value {
        json!({
            "schemaVersion": 3,
            "pipelineId": "restaurant-approval",
            "contractVersion": "sha256:4be1f0c27a9d",
            "contractHash": "4be1f0c27a9d",
            "platform": "COMPUTE",
            "transport": "REST",
            "module": "monolith-svc",
            "runtimeLayout": "MONOLITH",
            "pluginHost": false,
            "steps": [
                {"index": 0, "authoredName": "Validate Order Request", "kind": "step",
                 "cardinality": "ONE_TO_ONE", "inputTypeId": "a", "outputTypeId": "b",
                 "runtimeClass": "x.Y", "clientClass": "x.Z"},
                {"index": 1, "kind": "await", "awaitTransport": "webhook", "futureMember": [1, 2]}
            ],
            "capabilities": {"localTransitionExecution": true, "transitionWorkerProtocols": ["rest"]},
            "canonicalTypes": {"a": {"fields": []}},
            "canonicalCatalogFingerprint": "abc",
            "composition": {"graph": {}},
            "unknown": {"kept": true}
        })
    }

    fn parse(v: &Value) -> Result<Value, ApiError> {
        parse_contract(v.to_string().as_bytes())
    }

    fn with(mut v: Value, f: impl FnOnce(&mut Value)) -> Value {
        f(&mut v);
        v
    }

    fn invalid_message(v: Value) -> String {
        let e = parse(&v).expect_err("contract must be refused");
        assert_eq!(e.code, ErrorCode::ContractInvalid, "{}", e.message);
        e.message
    }

    #[test]
    fn valid_contracts_are_returned_as_read() {
        assert_eq!(parse(&minimal()).unwrap(), minimal());
        assert_eq!(parse(&full()).unwrap(), full());
        let nulls = with(minimal(), |v| {
            v["steps"] = Value::Null;
            v["platform"] = Value::Null;
            v["composition"] = Value::Null;
        });
        assert_eq!(parse(&nulls).unwrap(), nulls);
        let neg_zero = br#"{"schemaVersion":1,"pipelineId":"p","contractVersion":"c","contractHash":"h","steps":[{"index":-0}]}"#;
        assert!(parse_contract(neg_zero).is_ok());
    }

    #[test]
    fn syntax_duplicates_numbers_and_top_level_type_are_contract_invalid() {
        for bad in [
            &b""[..],
            b"[1]",
            b"{",
            b"\xff",
            br#"{"schemaVersion":1,"schemaVersion":1}"#,
            br#"{"schemaVersion":1,"pipelineId":"p","contractVersion":"c","contractHash":"h","x":9007199254740993}"#,
            br#"{"schemaVersion":1,"pipelineId":"p","contractVersion":"c","contractHash":"h","x":1e400}"#,
        ] {
            let e = parse_contract(bad).unwrap_err();
            assert_eq!(e.code, ErrorCode::ContractInvalid);
        }
        let big = vec![b' '; MAX_CONTRACT_BYTES + 1];
        assert_eq!(
            parse_contract(&big).unwrap_err().code,
            ErrorCode::ContractInvalid
        );
    }

    #[test]
    fn schema_version_is_integer_one_to_three() {
        for sv in [json!(0), json!(4), json!(2.0), json!("2"), Value::Null] {
            let m = invalid_message(with(minimal(), |v| v["schemaVersion"] = sv));
            assert!(m.contains("schemaVersion"), "{m}");
        }
        let e = parse_contract(
            br#"{"schemaVersion":1e0,"pipelineId":"p","contractVersion":"c","contractHash":"h"}"#,
        );
        assert_eq!(e.unwrap_err().code, ErrorCode::ContractInvalid);
    }

    #[test]
    fn required_strings_are_non_blank() {
        for member in ["pipelineId", "contractVersion", "contractHash"] {
            for bad in [json!("  "), json!(1), Value::Null] {
                let m = invalid_message(with(minimal(), |v| v[member] = bad));
                assert!(m.contains(member), "{m}");
            }
        }
    }

    #[test]
    fn optional_members_have_their_types() {
        for (member, bad) in [
            ("platform", json!(1)),
            ("transport", json!(true)),
            ("module", json!([])),
            ("runtimeLayout", json!({})),
            ("pluginHost", json!("true")),
            ("steps", json!({})),
            ("capabilities", json!([])),
            ("canonicalTypes", json!("x")),
            ("canonicalCatalogFingerprint", json!({})),
            ("composition", json!([])),
        ] {
            let m = invalid_message(with(minimal(), |v| v[member] = bad));
            assert!(m.contains(member), "{member}: {m}");
        }
        for caps in [
            json!({"localTransitionExecution": "yes"}),
            json!({"transitionWorkerProtocols": "rest"}),
            json!({"transitionWorkerProtocols": [1]}),
        ] {
            let m = invalid_message(with(minimal(), |v| v["capabilities"] = caps));
            assert!(m.contains("capabilities."), "{m}");
        }
    }

    #[test]
    fn composition_needs_schema_version_three() {
        let m = invalid_message(with(minimal(), |v| v["composition"] = json!({})));
        assert!(m.contains("composition"), "{m}");
        assert!(parse(&with(minimal(), |v| {
            v["schemaVersion"] = json!(3);
            v["composition"] = json!({});
        }))
        .is_ok());
    }

    #[test]
    fn steps_need_unique_non_negative_integer_indexes() {
        for steps in [
            json!([1]),
            json!([{}]),
            json!([{"index": -1}]),
            json!([{"index": 1.0}]),
            json!([{"index": "0"}]),
            json!([{"index": 0}, {"index": 0}]),
            json!([{"index": 0, "awaitTransport": 5}]),
        ] {
            let m = invalid_message(with(minimal(), |v| v["steps"] = steps.clone()));
            assert!(m.contains("steps"), "{steps}: {m}");
        }
        assert!(parse(&with(minimal(), |v| v["steps"] =
            json!([{"index": 5}, {"index": 0, "kind": null}])))
        .is_ok());
    }

    #[test]
    fn identity_is_compared_exactly() {
        let c = minimal();
        assert!(check_identity(&c, "restaurant-approval", "sha256:4be1f0c27a9d").is_ok());
        let e = check_identity(&c, "other", "sha256:4be1f0c27a9d").unwrap_err();
        assert_eq!(e.code, ErrorCode::ContractMismatch);
        assert!(e.message.contains("pipelineId"), "{}", e.message);
        let e = check_identity(&c, "restaurant-approval", "sha256:other").unwrap_err();
        assert_eq!(e.code, ErrorCode::ContractMismatch);
        assert!(e.message.contains("contractVersion"), "{}", e.message);
        let padded = with(minimal(), |v| {
            v["pipelineId"] = json!(" restaurant-approval")
        });
        let e = check_identity(&padded, "restaurant-approval", "sha256:4be1f0c27a9d").unwrap_err();
        assert_eq!(e.code, ErrorCode::ContractMismatch);
    }
}
