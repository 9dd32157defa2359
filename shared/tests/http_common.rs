//! Rules common to every endpoint (`API.md` §1; EXECUTION.md §11 AUTH-*,
//! COM-*; RELEASES.md §10 RAC-01/02/04/06/11), shown on the release and
//! worker routes and the health routes.

#[path = "integration/support/mod.rs"]
mod support;

use serde_json::{json, Value};
use support::*;

fn worker_body() -> Value {
    json!({"workerId": "w1", "contractVersion": "c1", "releaseVersion": "r1", "protocol": "local"})
}

#[tokio::test]
async fn rac01_admin_disabled_hides_every_admin_route_before_auth_but_not_health() {
    for app in [
        worker_app(Options {
            admin_enabled: false,
            ..Options::default()
        }),
        release_app(Options {
            admin_enabled: false,
            ..Options::default()
        }),
    ] {
        for (m, p) in [
            ("GET", WORKERS.to_string()),
            ("POST", format!("{WORKERS}/register")),
            ("POST", format!("{WORKERS}/w1/heartbeat")),
            ("POST", format!("{WORKERS}/w1/drain")),
            ("GET", RELEASES.to_string()),
            ("POST", format!("{RELEASES}/register")),
            ("GET", format!("{RELEASES}/active")),
            ("GET", format!("{RELEASES}/activations")),
            ("GET", format!("{RELEASES}/1.0")),
            ("POST", format!("{RELEASES}/1.0/activate")),
            ("DELETE", format!("{RELEASES}/1.0/activate")),
        ] {
            // No token at all: still 404, not 401.
            req(m, &p)
                .send(&app)
                .await
                .assert_error(404, "ROUTE_NOT_FOUND");
        }
        for p in ["/tpf/health", "/q/health/live"] {
            assert_eq!(req("GET", p).send(&app).await.assert_ok()["status"], "ok");
        }
    }
}

#[tokio::test]
async fn health_names_the_function_and_version() {
    let app = worker_app(Options::default());
    let v = req("GET", "/tpf/health").send(&app).await;
    assert_eq!(
        v.assert_ok(),
        &json!({"status": "ok", "function": "worker-lifecycle", "version": tpf_core::VERSION})
    );
    let cp = control_plane_app(Options::default());
    assert_eq!(
        req("GET", "/q/health/live").send(&cp).await.assert_ok()["function"],
        "control-plane"
    );
}

#[tokio::test]
async fn auth01_02_04_missing_wrong_other_scheme_or_blank_token_is_401() {
    let app = worker_app(Options::default());
    let url = WORKERS;
    let cases: Vec<Vec<(&str, String)>> = vec![
        vec![],
        vec![("authorization", "Bearer wrong".into())],
        vec![("authorization", format!("Basic {ADMIN}"))],
        vec![("authorization", "Bearer    ".into())],
        vec![
            ("authorization", format!("Bearer {ADMIN}")),
            ("authorization", format!("Bearer {ADMIN}")),
        ],
        vec![("authorization", format!("Bearer {CONTROL}"))], // RAC-02: the control-plane token
    ];
    for headers in cases {
        let mut r = req("GET", url);
        for (k, v) in &headers {
            r = r.header(k, v);
        }
        let resp = r.send(&app).await;
        resp.assert_error(401, "UNAUTHORIZED");
        assert_eq!(resp.headers["www-authenticate"], "Bearer realm=\"tpf\"");
        assert!(
            !resp.body.to_string().contains(ADMIN),
            "RAC-12: no token in messages"
        );
    }
}

#[tokio::test]
async fn auth03_scheme_is_case_insensitive() {
    let app = worker_app(Options::default());
    for scheme in ["bearer", "BEARER", "Bearer"] {
        req("GET", WORKERS)
            .header("authorization", &format!("{scheme}  {ADMIN}"))
            .send(&app)
            .await
            .assert_ok();
    }
}

#[tokio::test]
async fn auth06_08_env_reference_resolves_and_unresolvable_is_503_then_retried() {
    let var = "TPF_TEST_ADMIN_TOKEN_FOR_AUTH06";
    std::env::remove_var(var);
    let app = worker_app(Options {
        admin_token: env_token(var),
        ..Options::default()
    });
    let r = req("GET", WORKERS).admin().send(&app).await;
    r.assert_error(503, "AUTH_UNAVAILABLE");
    assert_eq!(r.headers["retry-after"], "5");
    // Failures are not cached: once the variable exists, the next request resolves it.
    std::env::set_var(var, ADMIN);
    req("GET", WORKERS).admin().send(&app).await.assert_ok();
}

#[tokio::test]
async fn com01_unknown_paths_are_json_404_and_wrong_methods_405_with_allow() {
    let app = worker_app(Options::default());
    for p in [
        "/",
        "/nope",
        "/tpf",
        "/tpf/admin/tenants/acme",
        &format!("{WORKERS}/"),
        "/tpf/health/",
    ] {
        req("GET", p)
            .send(&app)
            .await
            .assert_error(404, "ROUTE_NOT_FOUND");
    }
    let r = req("DELETE", WORKERS).admin().send(&app).await;
    r.assert_error(405, "METHOD_NOT_ALLOWED");
    assert_eq!(r.headers["allow"], "GET");
    let r = req("GET", &format!("{WORKERS}/register")).send(&app).await;
    r.assert_error(405, "METHOD_NOT_ALLOWED");
    assert_eq!(r.headers["allow"], "POST");
    let r = req("POST", "/tpf/health").send(&app).await;
    r.assert_error(405, "METHOD_NOT_ALLOWED");
}

#[tokio::test]
async fn rac06_get_on_register_is_405() {
    let app = release_app(Options::default());
    let r = req("GET", &format!("{RELEASES}/register"))
        .admin()
        .send(&app)
        .await;
    r.assert_error(405, "METHOD_NOT_ALLOWED");
    assert_eq!(r.headers["allow"], "POST");
}

#[tokio::test]
async fn rac04_com03_path_ids_are_decoded_once_and_literals_never() {
    let app = worker_app(Options::default());
    let long = "a".repeat(129);
    for tenant in ["a%23b", "a%2Fb", "a..b", long.as_str(), "%FF", "a%2", "-a"] {
        let p = format!("/tpf/admin/tenants/{tenant}/pipelines/p/workers");
        let r = req("GET", &p).admin().send(&app).await;
        r.assert_error(400, "INVALID_ID");
        assert!(r.body["message"].as_str().unwrap().contains("tenantId"));
    }
    let r = req("POST", &format!("{WORKERS}/w%2F1/heartbeat"))
        .admin()
        .send(&app)
        .await;
    r.assert_error(400, "INVALID_ID");
    // A percent-encoded literal segment matches nothing.
    req("GET", "/tpf/admin/tenants/acme/pipelines/p/w%6Frkers")
        .admin()
        .send(&app)
        .await
        .assert_error(404, "ROUTE_NOT_FOUND");
    // An encoded parameter that decodes to a valid id is fine.
    req("GET", "/tpf/admin/tenants/ac%6De/pipelines/p/workers")
        .admin()
        .send(&app)
        .await
        .assert_ok();
    // Path ids are checked after authentication.
    req("GET", "/tpf/admin/tenants/a..b/pipelines/p/workers")
        .send(&app)
        .await
        .assert_error(401, "UNAUTHORIZED");
}

#[tokio::test]
async fn com04_body_over_256_kib_is_413_before_parsing() {
    let app = worker_app(Options::default());
    let big = vec![b'x'; 262_145];
    req("POST", &format!("{WORKERS}/register"))
        .admin()
        .raw(big)
        .send(&app)
        .await
        .assert_error(413, "PAYLOAD_TOO_LARGE");
    // Exactly 262 144 bytes is read (and here is invalid JSON, so 400).
    let edge = vec![b' '; 262_144];
    req("POST", &format!("{WORKERS}/register"))
        .admin()
        .raw(edge)
        .send(&app)
        .await
        .assert_error(400, "INVALID_JSON");
    let mut padded = serde_json::to_vec(&worker_body()).unwrap();
    padded.resize(262_144, b' ');
    req("POST", &format!("{WORKERS}/register"))
        .admin()
        .raw(padded)
        .send(&app)
        .await
        .assert_ok();
}

#[tokio::test]
async fn com05_malformed_non_object_duplicate_or_too_deep_json_is_400() {
    let app = worker_app(Options::default());
    let deep = |levels: usize| {
        let mut b = worker_body();
        let mut v = json!(1);
        for _ in 0..levels - 1 {
            v = json!([v]);
        }
        b["extra"] = v; // the top-level object is level 1, "extra" array levels follow
        serde_json::to_vec(&b).unwrap()
    };
    let bodies: Vec<Vec<u8>> = vec![
        b"{".to_vec(),
        b"[]".to_vec(),
        b"\"x\"".to_vec(),
        b"".to_vec(),
        b"   ".to_vec(),
        vec![0xff, 0xfe],
        br#"{"workerId":"w1","workerId":"w2","contractVersion":"c","releaseVersion":"r","protocol":"local"}"#.to_vec(),
        deep(128),
    ];
    for body in bodies {
        let r = req("POST", &format!("{WORKERS}/register"))
            .admin()
            .raw(body.clone())
            .send(&app)
            .await;
        r.assert_error(400, "INVALID_JSON");
    }
    let r = req("POST", &format!("{WORKERS}/register"))
        .admin()
        .raw(b"".to_vec())
        .send(&app)
        .await;
    assert_eq!(r.body["message"], "request body is required");
    req("POST", &format!("{WORKERS}/register"))
        .admin()
        .raw(deep(127))
        .send(&app)
        .await
        .assert_ok();
}

#[tokio::test]
async fn com07_media_type_rules() {
    let app = worker_app(Options::default());
    let body = serde_json::to_vec(&worker_body()).unwrap();
    let url = format!("{WORKERS}/register");
    for ct in ["text/plain", "application/x-www-form-urlencoded", "json"] {
        req("POST", &url)
            .admin()
            .header("content-type", ct)
            .raw(body.clone())
            .send(&app)
            .await
            .assert_error(415, "UNSUPPORTED_MEDIA_TYPE");
    }
    for ct in [
        "Application/JSON",
        "application/json; charset=utf-8",
        "application/merge-patch+json",
    ] {
        req("POST", &url)
            .admin()
            .header("content-type", ct)
            .raw(body.clone())
            .send(&app)
            .await
            .assert_ok();
    }
    // No Content-Type at all is read as JSON.
    req("POST", &url)
        .admin()
        .raw(body)
        .send(&app)
        .await
        .assert_ok();
}

#[tokio::test]
async fn com08_every_response_has_a_request_id_and_json() {
    let app = worker_app(Options::default());
    let a = req("GET", "/tpf/health").send(&app).await;
    let b = req("GET", "/tpf/health").send(&app).await;
    let id = |r: &Resp| r.headers["x-request-id"].to_str().unwrap().to_string();
    assert_ne!(id(&a), id(&b), "locally a fresh UUID per request");
    assert!(uuid::Uuid::parse_str(&id(&a)).is_ok());
    req("GET", "/missing")
        .send(&app)
        .await
        .assert_error(404, "ROUTE_NOT_FOUND");
}

/// A secret service fake: answers `ssm:` and `secretsmanager:` references.
struct FakeSecrets;

#[async_trait::async_trait]
impl tpf_core::ports::SecretResolver for FakeSecrets {
    async fn resolve(&self, reference: &tpf_core::config::SecretRef) -> Option<String> {
        use tpf_core::config::SecretRef::*;
        match reference {
            Ssm(name) if name == "/tpf/admin-token" => Some(format!(" {ADMIN}\n")),
            SecretsManager(id) if id == "tpf/admin" => Some(ADMIN.to_string()),
            _ => None,
        }
    }
}

#[tokio::test]
async fn auth07_ssm_and_secretsmanager_references_resolve_through_the_secret_port() {
    use std::sync::Arc;
    use tpf_core::config::{SecretRef, SecretSource};
    use tpf_core::providers::secrets::CachedSecret;
    for reference in [
        SecretRef::Ssm("/tpf/admin-token".into()),
        SecretRef::SecretsManager("tpf/admin".into()),
    ] {
        let token = CachedSecret::new(SecretSource::Reference(reference), Arc::new(FakeSecrets));
        let app = worker_app(Options {
            admin_token: Some(token),
            ..Options::default()
        });
        req("GET", WORKERS).admin().send(&app).await.assert_ok();
        req("GET", WORKERS)
            .header("authorization", "Bearer nope")
            .send(&app)
            .await
            .assert_error(401, "UNAUTHORIZED");
    }
    let missing = CachedSecret::new(
        SecretSource::Reference(SecretRef::Ssm("/absent".into())),
        Arc::new(FakeSecrets),
    );
    let app = worker_app(Options {
        admin_token: Some(missing),
        ..Options::default()
    });
    req("GET", WORKERS)
        .admin()
        .send(&app)
        .await
        .assert_error(503, "AUTH_UNAVAILABLE");
}

#[tokio::test]
async fn ext04_openapi_lists_exactly_the_routes_of_the_http_functions() {
    let app = control_plane_app(Options::default());
    let r = req("GET", "/tpf/openapi.json").send(&app).await;
    let doc = r.assert_ok().clone();
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(doc["info"]["version"], tpf_core::VERSION);
    for scheme in ["controlPlaneToken", "adminToken"] {
        assert_eq!(
            doc["components"]["securitySchemes"][scheme]["scheme"],
            "bearer"
        );
    }
    let mut documented = std::collections::BTreeSet::new();
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for method in ops.as_object().unwrap().keys() {
            documented.insert((method.to_uppercase(), path.clone()));
        }
    }
    let routed: std::collections::BTreeSet<(String, String)> = tpf_core::http::routes::ROUTES
        .iter()
        .map(|r| (r.method.as_str().to_string(), r.path.to_string()))
        .collect();
    assert_eq!(documented, routed);
    // Every $ref resolves.
    let text = doc.to_string();
    for piece in text.split("\"$ref\":\"#/components/").skip(1) {
        let target = piece.split('"').next().unwrap();
        let mut node = &doc["components"];
        for seg in target.split('/') {
            node = &node[seg];
        }
        assert!(!node.is_null(), "unresolved $ref {target}");
    }
}
