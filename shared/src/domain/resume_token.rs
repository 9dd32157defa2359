//! Resume tokens (`EXECUTION.md` §8.9): `base64url(P) "." base64url(HMAC)`,
//! minted by workers' await transports and only validated here.

use base64::engine::general_purpose::{URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::domain::awaits::AwaitInteraction;

fn b64(part: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD
        .decode(part.trim_end_matches('='))
        .ok()
        .or_else(|| URL_SAFE.decode(part).ok())
}

/// The two non-blank parts, or `None` when malformed (rule 1).
fn parts(token: &str) -> Option<(&str, &str)> {
    let (p, s) = token.split_once('.')?;
    (!p.trim().is_empty() && !s.trim().is_empty() && !s.contains('.')).then_some((p, s))
}

/// The decoded payload object of a token, without checking the signature
/// (the lookup hint of a token-only completion).
pub fn payload(token: &str) -> Option<Value> {
    let (p, _) = parts(token)?;
    serde_json::from_slice::<Value>(&b64(p)?)
        .ok()
        .filter(Value::is_object)
}

/// The `interactionId` hint of a token, if it decodes.
pub fn interaction_hint(token: &str) -> Option<String> {
    payload(token)?
        .get("interactionId")?
        .as_str()
        .map(str::to_string)
}

/// Mints a token (tests and example workers).
pub fn mint(secret: &str, payload: &Value) -> String {
    let p = URL_SAFE_NO_PAD.encode(payload.to_string());
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(p.as_bytes());
    format!(
        "{p}.{}",
        URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    )
}

/// Rules 1–4 of §8.9 against the resolved interaction.
pub fn validate(secret: &str, token: &str, i: &AwaitInteraction) -> bool {
    let Some((p, s)) = parts(token) else {
        return false;
    };
    let (Some(_), Some(sig)) = (b64(p), b64(s)) else {
        return false;
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(p.as_bytes());
    let expected = mac.finalize().into_bytes();
    if !bool::from(expected.as_slice().ct_eq(&sig)) {
        return false;
    }
    let Some(v) = payload(token) else {
        return false;
    };
    let s = |k: &str| v.get(k).and_then(Value::as_str);
    let deadline_ok = match v.get("deadlineEpochMs") {
        Some(Value::Number(n)) => n.as_i64() == Some(i.deadline_epoch_ms),
        Some(Value::String(d)) => {
            d.bytes().all(|b| b.is_ascii_digit())
                && d.parse::<i64>().ok() == Some(i.deadline_epoch_ms)
        }
        _ => false,
    };
    s("tenantId") == Some(&i.tenant_id)
        && s("interactionId") == Some(&i.interaction_id)
        && s("correlationId") == Some(&i.correlation_id)
        && s("executionId") == Some(&i.execution_id)
        && s("stepId") == Some(&i.step_id)
        && deadline_ok
}

#[cfg(test)]
mod tests {
    use super::*;

    const VECTOR: &str = "eyJ0ZW5hbnRJZCI6ImFjbWUiLCJpbnRlcmFjdGlvbklkIjoiYzFhMmIzZDQtZTVmNi00YTdiLThjOWQtMGUxZjJhM2I0YzVkIiwiY29ycmVsYXRpb25JZCI6IjBmNmU3ZDhjLTliMGEtM2MxZC04ZTJmLTRhNWI2YzdkOGU5ZiIsImV4ZWN1dGlvbklkIjoiN2QzYzlmMmUtNGIxYS00YzhlLTlmNmQtMmE1YjhjMWUwZjM0Iiwic3RlcElkIjoiUHJvY2Vzc0F3YWl0UmVzdGF1cmFudERlY2lzaW9uU2VydmljZSIsImRlYWRsaW5lRXBvY2hNcyI6MTczNjkzOTQwMDAwMCwiaXNzdWVkQXRFcG9jaE1zIjoxNzM2OTM3NjAwMDAwfQ.MkvmOVC9IoJQRmtTjDtB2-Jad3KoP8zXWR7GvorP0hw";

    fn example() -> AwaitInteraction {
        serde_json::from_value(serde_json::json!({
            "tenantId": "acme", "executionId": "7d3c9f2e-4b1a-4c8e-9f6d-2a5b8c1e0f34",
            "stepId": "ProcessAwaitRestaurantDecisionService", "stepIndex": 2,
            "outputType": "x", "interactionId": "c1a2b3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d",
            "correlationId": "0f6e7d8c-9b0a-3c1d-8e2f-4a5b6c7d8e9f", "idempotencyKey": "k",
            "version": 2, "status": "DISPATCHED", "requestPayload": null, "responsePayload": null,
            "unitId": "u", "transportType": "interaction-api", "deadlineEpochMs": 1736939400000i64,
            "createdAtEpochMs": 1736937600000i64, "updatedAtEpochMs": 1736937600400i64, "ttlEpochS": 1737025800
        }))
        .unwrap()
    }

    #[test]
    fn comp13_spec_vector_validates_against_the_example_interaction() {
        let i = example();
        assert!(validate("tpf-demo-resume-secret", VECTOR, &i));
        assert!(!validate("other-secret", VECTOR, &i));
        let mut other = i.clone();
        other.step_id = "Another".into();
        assert!(!validate("tpf-demo-resume-secret", VECTOR, &other));
        let tampered = VECTOR.replacen("eyJ0", "eyJ1", 1);
        assert!(!validate("tpf-demo-resume-secret", &tampered, &i));
        for bad in ["", "abc", "a.b.c", ".x", "x."] {
            assert!(!validate("tpf-demo-resume-secret", bad, &i), "{bad}");
        }
        assert_eq!(
            interaction_hint(VECTOR).as_deref(),
            Some("c1a2b3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d")
        );
    }

    #[test]
    fn minted_tokens_round_trip() {
        let i = example();
        let p = serde_json::json!({"tenantId": "acme", "interactionId": i.interaction_id, "correlationId": i.correlation_id,
            "executionId": i.execution_id, "stepId": i.step_id, "deadlineEpochMs": "1736939400000", "issuedAtEpochMs": 1});
        assert!(validate("s", &mint("s", &p), &i));
    }
}
