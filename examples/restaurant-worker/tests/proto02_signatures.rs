//! PROTO-02: the example worker's request authentication over real HTTP
//! (`EXECUTION.md` §7.2, §7.9 rules 1–7).

mod common;

use common::*;
use restaurant_worker::time::{format_rfc3339_ms, now_ms};
use restaurant_worker::{WorkerConfig, WorkerIdentity};
use serde_json::Value;
use tpf_core::domain::worker_protocol::{
    CAPABILITIES_PATH, EXECUTE_PATH, NONCE_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER,
};

fn valid_body() -> Vec<u8> {
    order_command(&uuid::Uuid::new_v4().to_string(), &sample_order())
        .to_string()
        .into_bytes()
}

#[tokio::test]
async fn proto02_unsigned_calls_are_401() {
    let w = spawn(config()).await;
    let res = w.post_raw(&valid_body(), &[]).await;
    assert_eq!(res.status(), 401);
    let res = w.get_raw(&[]).await;
    assert_eq!(res.status(), 401);
}

#[tokio::test]
async fn proto02_missing_or_blank_header_is_401() {
    let w = spawn(config()).await;
    let body = valid_body();
    let full = signed_headers(
        SECRET,
        "POST",
        EXECUTE_PATH,
        &now_timestamp(),
        &fresh_nonce(),
        &body,
    );
    for skip in 0..3 {
        let partial: Vec<_> = full
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != skip)
            .map(|(_, h)| h.clone())
            .collect();
        assert_eq!(
            w.post_raw(&body, &partial).await.status(),
            401,
            "without {}",
            full[skip].0
        );
        let mut blank = full.clone();
        blank[skip].1 = "  ".into();
        assert_eq!(
            w.post_raw(&body, &blank).await.status(),
            401,
            "blank {}",
            full[skip].0
        );
    }
}

#[tokio::test]
async fn proto02_bad_signature_is_401() {
    let w = spawn(config()).await;
    let body = valid_body();
    let ts = now_timestamp();
    // Wrong secret.
    let headers = signed_headers(
        "another-secret",
        "POST",
        EXECUTE_PATH,
        &ts,
        &fresh_nonce(),
        &body,
    );
    assert_eq!(w.post_raw(&body, &headers).await.status(), 401);
    // Signed over other bytes than those sent.
    let headers = signed_headers(SECRET, "POST", EXECUTE_PATH, &ts, &fresh_nonce(), b"{}");
    assert_eq!(w.post_raw(&body, &headers).await.status(), 401);
    // Signed with the wrong method, or a path that is not the fixed protocol path.
    let headers = signed_headers(SECRET, "GET", EXECUTE_PATH, &ts, &fresh_nonce(), &body);
    assert_eq!(w.post_raw(&body, &headers).await.status(), 401);
    let headers = signed_headers(
        SECRET,
        "POST",
        &format!("/prefix{EXECUTE_PATH}"),
        &ts,
        &fresh_nonce(),
        &body,
    );
    assert_eq!(w.post_raw(&body, &headers).await.status(), 401);
    // Garbage signature.
    let nonce = fresh_nonce();
    let headers = vec![
        (TIMESTAMP_HEADER, ts.clone()),
        (NONCE_HEADER, nonce),
        (SIGNATURE_HEADER, "00".repeat(32)),
    ];
    assert_eq!(w.post_raw(&body, &headers).await.status(), 401);
    // Capabilities signed as execute.
    let headers = signed_headers(SECRET, "POST", EXECUTE_PATH, &ts, &fresh_nonce(), b"");
    assert_eq!(w.get_raw(&headers).await.status(), 401);
}

#[tokio::test]
async fn proto02_timestamp_outside_tolerance_is_401() {
    let w = spawn(config()).await;
    let body = valid_body();
    for offset_ms in [-180_000i64, 180_000] {
        let ts = format_rfc3339_ms(now_ms() + offset_ms);
        let headers = signed_headers(SECRET, "POST", EXECUTE_PATH, &ts, &fresh_nonce(), &body);
        assert_eq!(
            w.post_raw(&body, &headers).await.status(),
            401,
            "offset {offset_ms}"
        );
    }
    // Inside the window (in either direction) is fine.
    for offset_ms in [-60_000i64, 60_000] {
        let ts = format_rfc3339_ms(now_ms() + offset_ms);
        let headers = signed_headers(SECRET, "POST", EXECUTE_PATH, &ts, &fresh_nonce(), &body);
        assert_eq!(
            w.post_raw(&body, &headers).await.status(),
            200,
            "offset {offset_ms}"
        );
    }
}

#[tokio::test]
async fn proto02_timestamp_not_rfc3339_is_401() {
    let w = spawn(config()).await;
    let body = valid_body();
    let now = now_ms();
    let iso_no_zone = format_rfc3339_ms(now).trim_end_matches('Z').to_string();
    for ts in [now.to_string(), iso_no_zone, "yesterday".to_string()] {
        let headers = signed_headers(SECRET, "POST", EXECUTE_PATH, &ts, &fresh_nonce(), &body);
        assert_eq!(w.post_raw(&body, &headers).await.status(), 401, "{ts}");
    }
    // An offset instead of Z, without a fraction, is accepted (and signed as sent).
    let secs = now / 1000;
    let plus_one = format_rfc3339_ms(secs * 1000 + 3_600_000);
    let ts = format!("{}+01:00", &plus_one[..19]);
    let headers = signed_headers(SECRET, "POST", EXECUTE_PATH, &ts, &fresh_nonce(), &body);
    assert_eq!(w.post_raw(&body, &headers).await.status(), 200, "{ts}");
}

#[tokio::test]
async fn proto02_replayed_nonce_is_401() {
    let w = spawn(config()).await;
    let body = valid_body();
    let headers = signed_headers(
        SECRET,
        "POST",
        EXECUTE_PATH,
        &now_timestamp(),
        &fresh_nonce(),
        &body,
    );
    assert_eq!(w.post_raw(&body, &headers).await.status(), 200);
    assert_eq!(w.post_raw(&body, &headers).await.status(), 401);
    // A nonce is single-use across routes too.
    let nonce = fresh_nonce();
    let ts = now_timestamp();
    let caps = signed_headers(SECRET, "GET", CAPABILITIES_PATH, &ts, &nonce, b"");
    assert_eq!(w.get_raw(&caps).await.status(), 200);
    let exec = signed_headers(SECRET, "POST", EXECUTE_PATH, &ts, &nonce, &body);
    assert_eq!(w.post_raw(&body, &exec).await.status(), 401);
}

#[tokio::test]
async fn proto02_valid_signed_execute_is_200() {
    let w = spawn(config()).await;
    let res = w.post_signed(&valid_body()).await;
    assert_eq!(res.status(), 200);
    assert!(res
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json")));
    let envelope: Value = res.json().await.unwrap();
    assert_eq!(envelope["outcome"], "WAITING_EXTERNAL");
}

#[tokio::test]
async fn proto02_signed_capabilities_return_the_identity() {
    let w = spawn(config()).await;
    let headers = signed_headers(
        SECRET,
        "GET",
        CAPABILITIES_PATH,
        &now_timestamp(),
        &fresh_nonce(),
        b"",
    );
    let res = w.get_raw(&headers).await;
    assert_eq!(res.status(), 200);
    let caps: Value = res.json().await.unwrap();
    let id = WorkerIdentity::demo();
    assert_eq!(
        caps,
        serde_json::json!({
            "protocolVersion": "1",
            "providerName": "rest",
            "pipelineId": "restaurant-approval",
            "contractVersion": id.contract_version,
            "releaseVersion": id.release_version,
            "artifactId": "restaurant-approval-monolith",
            "artifactDigest": id.artifact_digest,
            "payloadEncodings": ["application/tpf-transition-envelope+json"],
            "workerProtocols": ["rest"],
        })
    );
}

#[tokio::test]
async fn proto02_unresolvable_secret_is_503() {
    let var = "RESTAURANT_WORKER_TEST_SECRET_THAT_IS_NEVER_SET_7f3a";
    assert!(std::env::var(var).is_err());
    let reference = format!("env:{var}");
    let config = WorkerConfig::from_lookup(|name| match name {
        "TPF_WORKER_SHARED_SECRET_REF" => Some(reference.clone()),
        _ => None,
    })
    .unwrap();
    let w = spawn(config).await;
    let body = valid_body();
    // Rule 1 comes first: even a call signed with some secret, or unsigned.
    let headers = signed_headers(
        SECRET,
        "POST",
        EXECUTE_PATH,
        &now_timestamp(),
        &fresh_nonce(),
        &body,
    );
    assert_eq!(w.post_raw(&body, &headers).await.status(), 503);
    assert_eq!(w.post_raw(&body, &[]).await.status(), 503);
    assert_eq!(w.get_raw(&[]).await.status(), 503);
}

#[tokio::test]
async fn secret_from_an_env_reference_is_used() {
    // PATH is set in every test environment; use it as the secret's variable.
    let secret = std::env::var("PATH").expect("PATH is set");
    let config = WorkerConfig::from_lookup(|name| match name {
        "TPF_WORKER_SHARED_SECRET_REF" => Some("env:PATH".to_string()),
        _ => None,
    })
    .unwrap();
    let w = spawn(config).await;
    let body = valid_body();
    let headers = signed_headers(
        &secret,
        "POST",
        EXECUTE_PATH,
        &now_timestamp(),
        &fresh_nonce(),
        &body,
    );
    assert_eq!(w.post_raw(&body, &headers).await.status(), 200);
}

#[tokio::test]
async fn signature_is_checked_before_the_body_and_invalid_commands_are_400() {
    let w = spawn(config()).await;
    // Invalid JSON, unsigned: authentication answers first.
    assert_eq!(w.post_raw(b"{not json", &[]).await.status(), 401);
    // Signed: 400 for anything that is not a §7.3 command.
    let mut unknown_member = order_command("e-1", &sample_order());
    unknown_member["extra"] = Value::Bool(true);
    let mut missing_member = order_command("e-1", &sample_order());
    missing_member.as_object_mut().unwrap().remove("traceId");
    let mut negative_step = order_command("e-1", &sample_order());
    negative_step["currentStepIndex"] = serde_json::json!(-1);
    for body in [
        b"{not json".to_vec(),
        Vec::new(),
        b"null".to_vec(),
        b"[]".to_vec(),
        unknown_member.to_string().into_bytes(),
        missing_member.to_string().into_bytes(),
        negative_step.to_string().into_bytes(),
    ] {
        let res = w.post_signed(&body).await;
        assert_eq!(res.status(), 400, "{}", String::from_utf8_lossy(&body));
    }
}
