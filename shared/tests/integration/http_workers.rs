//! worker-lifecycle through the router, in process (`RELEASES.md` §6, §10
//! "Worker lifecycle"), plus the common rules shown on its routes.

use crate::support;

use serde_json::{json, Value};
use std::sync::Arc;
use support::*;
use tpf_core::ports::WorkerRegistry;

const DIGEST: &str = "sha256:e94a8a17af6867438729f19cdedcd8ea8f30fc0c940f8c08257452dc706b2501";

fn worker(id: &str) -> Value {
    json!({
        "workerId": id,
        "contractVersion": "sha256:4be1f0c27a9d",
        "releaseVersion": "2025.01.0",
        "protocol": "REST",
        "endpoint": "https://kitchen-1.internal:8181",
        "artifactId": "restaurant-approval-monolith",
        "artifactDigest": DIGEST,
    })
}

async fn register(app: &TestApp, body: &Value) -> Resp {
    req("POST", &format!("{WORKERS}/register"))
        .admin()
        .json(body)
        .send(app)
        .await
}

async fn events(app: &TestApp, worker: &str) -> Vec<tpf_core::domain::worker::WorkerEvent> {
    let deps = app.workers.as_ref().unwrap();
    deps.registry
        .worker_events("acme", "restaurant-approval", worker)
        .await
        .unwrap()
}

#[tokio::test]
async fn wl01_register_returns_the_13_member_healthy_record() {
    let app = worker_app(Options::default());
    let mut body = worker("kitchen-1");
    body.as_object_mut().unwrap().remove("artifactId");
    body["unknownMember"] = json!({"ignored": true}); // COM-06
    body["endpoint"] = json!(null); // null = absent …
    body["protocol"] = json!(" Local "); // … and non-rest needs no endpoint
    let r = register(&app, &body).await;
    let v = r.assert_ok();
    assert_eq!(v.as_object().unwrap().len(), 13, "{v}");
    assert_eq!(v["state"], "HEALTHY");
    assert_eq!(v["protocol"], "local");
    assert_eq!(v["endpoint"], "");
    assert_eq!(v["artifactId"], "");
    assert_eq!(v["artifactDigest"], DIGEST);
    assert_eq!(v["tenantId"], "acme");
    assert_eq!(v["pipelineId"], "restaurant-approval");
    assert_eq!(v["registeredAtEpochMs"], T0);
    assert_eq!(v["lastHeartbeatAtEpochMs"], T0);
    assert_eq!(v["drainingSinceEpochMs"], 0);
    let stored = app.workers.as_ref().unwrap().registry.get_worker(
        "acme",
        "restaurant-approval",
        "kitchen-1",
    );
    assert_eq!(stored.await.unwrap().unwrap().state_version, 1);
}

#[tokio::test]
async fn wl02_member_errors_in_table_order() {
    let app = worker_app(Options::default());
    let cases: Vec<(&str, Value, &str)> = vec![
        ("workerId", json!(null), "MISSING_FIELD"),
        ("workerId", json!("  "), "MISSING_FIELD"),
        ("workerId", json!("a/b"), "INVALID_ID"),
        ("workerId", json!(7), "INVALID_FIELD"),
        ("contractVersion", json!(null), "MISSING_FIELD"),
        ("releaseVersion", json!("a..b"), "INVALID_ID"),
        ("protocol", json!(null), "MISSING_FIELD"),
        ("protocol", json!("9rest"), "INVALID_FIELD"),
        ("protocol", json!("a_b"), "INVALID_FIELD"),
        ("endpoint", json!("ftp://kitchen"), "INVALID_FIELD"),
        ("endpoint", json!("https://user@kitchen"), "INVALID_FIELD"),
        ("endpoint", json!("https://kitchen/?q=1"), "INVALID_FIELD"),
        ("endpoint", json!("https://kitchen/#f"), "INVALID_FIELD"),
        ("endpoint", json!(""), "INVALID_FIELD"),
        ("endpoint", json!("kitchen:8181"), "INVALID_FIELD"),
        ("artifactId", json!("a\u{7}b"), "INVALID_FIELD"),
        ("artifactDigest", json!("sha256:ABC"), "INVALID_FIELD"),
        (
            "artifactDigest",
            json!(DIGEST.to_uppercase().replace("SHA256", "sha256")),
            "INVALID_FIELD",
        ),
    ];
    for (member, value, code) in cases {
        let mut body = worker("kitchen-1");
        body[member] = value.clone();
        let r = register(&app, &body).await;
        r.assert_error(400, code);
        assert!(
            r.body["message"].as_str().unwrap().contains(member),
            "{member}={value}: {}",
            r.body
        );
    }
    // Nothing was stored by any refused registration.
    let list = req("GET", WORKERS).admin().send(&app).await;
    assert_eq!(list.assert_ok(), &json!([]));
}

#[tokio::test]
async fn com10_first_failing_member_wins() {
    let app = worker_app(Options::default());
    let body = json!({"protocol": "not valid!", "releaseVersion": "a/b"});
    register(&app, &body)
        .await
        .assert_error(400, "MISSING_FIELD");
    let body = json!({"workerId": "w", "contractVersion": "c", "releaseVersion": "a/b", "protocol": "not valid!"});
    register(&app, &body).await.assert_error(400, "INVALID_ID");
}

#[tokio::test]
async fn com09_lengths_count_unicode_scalar_values() {
    let app = worker_app(Options::default());
    for (value, ok) in [
        ("é".repeat(256), true),
        ("😀".repeat(256), true),
        ("😀".repeat(257), false),
    ] {
        let mut body = worker("kitchen-1");
        body["artifactId"] = json!(value);
        let r = register(&app, &body).await;
        assert_eq!(r.status.as_u16(), if ok { 200 } else { 400 }, "{}", r.body);
    }
}

#[tokio::test]
async fn wl03_heartbeat_or_drain_of_unknown_worker_is_404_and_creates_nothing() {
    let app = worker_app(Options::default());
    for op in ["heartbeat", "drain"] {
        req("POST", &format!("{WORKERS}/ghost/{op}"))
            .admin()
            .send(&app)
            .await
            .assert_error(404, "WORKER_NOT_FOUND");
    }
    assert_eq!(
        req("GET", WORKERS).admin().send(&app).await.assert_ok(),
        &json!([])
    );
    assert!(events(&app, "ghost").await.is_empty());
}

#[tokio::test]
async fn wl04_heartbeat_moves_only_last_heartbeat_never_backwards() {
    let app = worker_app(Options::default());
    let before = register(&app, &worker("kitchen-1"))
        .await
        .assert_ok()
        .clone();
    app.clock.advance(5_000);
    let after = req("POST", &format!("{WORKERS}/kitchen-1/heartbeat"))
        .admin()
        .send(&app)
        .await;
    let after = after.assert_ok().clone();
    assert_eq!(after["lastHeartbeatAtEpochMs"], T0 + 5_000);
    for (k, v) in before.as_object().unwrap() {
        if k != "lastHeartbeatAtEpochMs" {
            assert_eq!(&after[k], v, "{k}");
        }
    }
    // A clock behind the stored heartbeat does not move it backwards.
    app.clock.set(T0 + 1_000);
    let r = req("POST", &format!("{WORKERS}/kitchen-1/heartbeat"))
        .admin()
        .send(&app)
        .await;
    assert_eq!(r.assert_ok()["lastHeartbeatAtEpochMs"], T0 + 5_000);
}

#[tokio::test]
async fn wl05_drain_is_sticky_and_a_second_drain_writes_nothing() {
    let app = worker_app(Options::default());
    register(&app, &worker("kitchen-1")).await.assert_ok();
    app.clock.advance(1_000);
    let d = req("POST", &format!("{WORKERS}/kitchen-1/drain"))
        .admin()
        .send(&app)
        .await;
    assert_eq!(d.assert_ok()["state"], "DRAINING");
    assert_eq!(d.body["drainingSinceEpochMs"], T0 + 1_000);
    app.clock.advance(1_000);
    let h = req("POST", &format!("{WORKERS}/kitchen-1/heartbeat"))
        .admin()
        .send(&app)
        .await;
    assert_eq!(h.assert_ok()["state"], "DRAINING");
    let version_before = entry(&app, "kitchen-1").await.state_version;
    app.clock.advance(1_000);
    let d2 = req("POST", &format!("{WORKERS}/kitchen-1/drain"))
        .admin()
        .send(&app)
        .await;
    assert_eq!(d2.assert_ok()["drainingSinceEpochMs"], T0 + 1_000);
    assert_eq!(entry(&app, "kitchen-1").await.state_version, version_before);
    assert_eq!(events(&app, "kitchen-1").await.len(), 2); // REGISTER, DRAIN
}

async fn entry(app: &TestApp, worker: &str) -> tpf_core::domain::worker::WorkerEntry {
    let deps = app.workers.as_ref().unwrap();
    deps.registry
        .get_worker("acme", "restaurant-approval", worker)
        .await
        .unwrap()
        .unwrap()
}

#[tokio::test]
async fn wl06_reregister_after_drain_is_healthy_with_the_new_identity() {
    let app = worker_app(Options::default());
    register(&app, &worker("kitchen-1")).await.assert_ok();
    req("POST", &format!("{WORKERS}/kitchen-1/drain"))
        .admin()
        .send(&app)
        .await
        .assert_ok();
    app.clock.advance(10);
    let mut body = worker("kitchen-1");
    body["releaseVersion"] = json!("2025.02.0");
    let r = register(&app, &body).await;
    let v = r.assert_ok();
    assert_eq!(v["state"], "HEALTHY");
    assert_eq!(v["drainingSinceEpochMs"], 0);
    assert_eq!(v["releaseVersion"], "2025.02.0");
    assert_eq!(v["registeredAtEpochMs"], T0 + 10);
}

async fn state(app: &TestApp) -> String {
    let list = req("GET", WORKERS).admin().send(app).await;
    list.body[0]["state"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn wl07_staleness_follows_the_clock_strictly() {
    let app = worker_app(Options {
        stale_after_ms: 1_000,
        ..Options::default()
    });
    app.clock.set(1_000);
    register(&app, &worker("kitchen-1")).await.assert_ok();
    app.clock.set(2_000);
    assert_eq!(state(&app).await, "HEALTHY");
    app.clock.set(2_001);
    assert_eq!(state(&app).await, "STALE");
    let hb = req("POST", &format!("{WORKERS}/kitchen-1/heartbeat"))
        .admin()
        .send(&app)
        .await;
    assert_eq!(hb.assert_ok()["state"], "HEALTHY");

    let never = worker_app(Options {
        stale_after_ms: 0,
        ..Options::default()
    });
    never.clock.set(1_000);
    register(&never, &worker("kitchen-1")).await.assert_ok();
    never.clock.set(i64::MAX / 2);
    assert_eq!(state(&never).await, "HEALTHY");
}

#[tokio::test]
async fn wl08_list_filters_orders_and_pages() {
    let app = worker_app(Options::default());
    for (id, release) in [
        ("w3", "r1"),
        ("w1", "r1"),
        ("w2", "r2"),
        ("w5", "r1"),
        ("w4", "r1"),
    ] {
        let mut body = worker(id);
        body["releaseVersion"] = json!(release);
        register(&app, &body).await.assert_ok();
    }
    let all = req("GET", WORKERS).admin().send(&app).await;
    let ids: Vec<_> = all
        .assert_ok()
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["workerId"].clone())
        .collect();
    assert_eq!(ids, vec!["w1", "w2", "w3", "w4", "w5"]);
    assert!(!all.headers.contains_key("x-tpf-next-cursor"));

    // Filtered by releaseVersion r1 (w1, w3, w4, w5), two per page.
    let mut seen = Vec::new();
    let mut url = format!("{WORKERS}?releaseVersion=r1&limit=2");
    loop {
        let page = req("GET", &url).admin().send(&app).await;
        let items = page.assert_ok().as_array().unwrap().clone();
        seen.extend(
            items
                .iter()
                .map(|w| w["workerId"].as_str().unwrap().to_string()),
        );
        match page.headers.get("x-tpf-next-cursor") {
            Some(c) => {
                assert_eq!(items.len(), 2, "every page but the last is full");
                url = format!(
                    "{WORKERS}?releaseVersion=r1&limit=2&cursor={}",
                    c.to_str().unwrap()
                );
            }
            None => break,
        }
    }
    assert_eq!(seen, vec!["w1", "w3", "w4", "w5"]);

    // A cursor used with other filters, or garbage, is refused.
    let first = req("GET", &format!("{WORKERS}?releaseVersion=r1&limit=2"))
        .admin()
        .send(&app)
        .await;
    let cursor = first.headers["x-tpf-next-cursor"]
        .to_str()
        .unwrap()
        .to_string();
    req(
        "GET",
        &format!("{WORKERS}?releaseVersion=r2&cursor={cursor}"),
    )
    .admin()
    .send(&app)
    .await
    .assert_error(400, "INVALID_CURSOR");
    req("GET", &format!("{WORKERS}?cursor=bm90LWpzb24"))
        .admin()
        .send(&app)
        .await
        .assert_error(400, "INVALID_CURSOR");
    req("GET", &format!("{WORKERS}?releaseVersion=a%2Fb"))
        .admin()
        .send(&app)
        .await
        .assert_error(400, "INVALID_ID");
    req("GET", &format!("{WORKERS}?limit=0"))
        .admin()
        .send(&app)
        .await
        .assert_error(400, "INVALID_PARAMETER");
    req("GET", &format!("{WORKERS}?limit=1&limit=2"))
        .admin()
        .send(&app)
        .await
        .assert_error(400, "INVALID_PARAMETER");
    // Blank filter = not given.
    let blank = req("GET", &format!("{WORKERS}?releaseVersion=%20"))
        .admin()
        .send(&app)
        .await;
    assert_eq!(blank.assert_ok().as_array().unwrap().len(), 5);
}

#[tokio::test]
async fn wl09_events_atomic_with_entry_and_heartbeats_write_none() {
    for file_workers in [false, true] {
        let app = worker_app(Options {
            file_workers,
            ..Options::default()
        });
        register(&app, &worker("kitchen-1")).await.assert_ok();
        req("POST", &format!("{WORKERS}/kitchen-1/heartbeat"))
            .admin()
            .send(&app)
            .await
            .assert_ok();
        req("POST", &format!("{WORKERS}/kitchen-1/heartbeat"))
            .admin()
            .send(&app)
            .await
            .assert_ok();
        req("POST", &format!("{WORKERS}/kitchen-1/drain"))
            .admin()
            .send(&app)
            .await
            .assert_ok();
        let e = entry(&app, "kitchen-1").await;
        assert_eq!(e.state_version, 4, "register, 2 heartbeats, drain");
        let ev = events(&app, "kitchen-1").await;
        let versions: Vec<u64> = ev.iter().map(|e| e.state_version).collect();
        assert_eq!(versions, vec![1, 4], "no heartbeat events; gaps allowed");
        assert_eq!(ev[1].snapshot, e, "the drain event snapshots the entry");
    }
}

#[tokio::test]
async fn wl09_concurrent_heartbeats_lose_no_update() {
    let app = Arc::new(worker_app(Options {
        file_workers: true,
        ..Options::default()
    }));
    register(&app, &worker("kitchen-1")).await.assert_ok();
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let app = app.clone();
        tasks.push(tokio::spawn(async move {
            let mut ok = 0;
            for _ in 0..5 {
                let r = req("POST", &format!("{WORKERS}/kitchen-1/heartbeat"))
                    .admin()
                    .send(&app)
                    .await;
                match r.status.as_u16() {
                    200 => ok += 1,
                    409 => assert_eq!(r.code(), "CONCURRENT_MODIFICATION"),
                    other => panic!("unexpected {other}: {}", r.body),
                }
            }
            ok
        }));
    }
    let mut written = 0;
    for t in tasks {
        written += t.await.unwrap();
    }
    assert_eq!(entry(&app, "kitchen-1").await.state_version, 1 + written);
}

#[tokio::test]
async fn rac05_another_tenants_worker_is_not_found_and_its_list_empty() {
    let app = worker_app(Options::default());
    register(&app, &worker("kitchen-1")).await.assert_ok();
    let other = "/tpf/admin/tenants/globex/pipelines/restaurant-approval/workers";
    assert_eq!(
        req("GET", other).admin().send(&app).await.assert_ok(),
        &json!([])
    );
    req("POST", &format!("{other}/kitchen-1/heartbeat"))
        .admin()
        .send(&app)
        .await
        .assert_error(404, "WORKER_NOT_FOUND");
    req("POST", &format!("{other}/kitchen-1/drain"))
        .admin()
        .send(&app)
        .await
        .assert_error(404, "WORKER_NOT_FOUND");
}

/// A registry that is always down: any access is a 503.
struct DownRegistry;

#[async_trait::async_trait]
impl WorkerRegistry for DownRegistry {
    async fn get_worker(
        &self,
        _: &str,
        _: &str,
        _: &str,
    ) -> Result<Option<tpf_core::domain::worker::WorkerEntry>, tpf_core::error::StoreError> {
        Err(tpf_core::error::StoreError::Unavailable("down".into()))
    }
    async fn write_worker(
        &self,
        _: &tpf_core::domain::worker::WorkerEntry,
        _: Option<u64>,
        _: Option<&tpf_core::domain::worker::WorkerEvent>,
    ) -> Result<tpf_core::ports::WorkerWrite, tpf_core::error::StoreError> {
        Err(tpf_core::error::StoreError::Unavailable("down".into()))
    }
    async fn list_workers(
        &self,
        _: &str,
        _: &str,
        _: Option<&str>,
        _: usize,
    ) -> Result<Vec<tpf_core::domain::worker::WorkerEntry>, tpf_core::error::StoreError> {
        Err(tpf_core::error::StoreError::Unavailable("down".into()))
    }
    async fn worker_events(
        &self,
        _: &str,
        _: &str,
        _: &str,
    ) -> Result<Vec<tpf_core::domain::worker::WorkerEvent>, tpf_core::error::StoreError> {
        Err(tpf_core::error::StoreError::Unavailable("down".into()))
    }
}

#[tokio::test]
async fn rac03_com02_tenant_admission_precedes_any_store_access() {
    let app = worker_app(Options {
        allowed_tenants: Some(vec!["globex".into()]),
        worker_registry: Some(Arc::new(DownRegistry)),
        ..Options::default()
    });
    register(&app, &worker("kitchen-1"))
        .await
        .assert_error(403, "TENANT_NOT_ALLOWED");
    req("GET", WORKERS)
        .admin()
        .send(&app)
        .await
        .assert_error(403, "TENANT_NOT_ALLOWED");
    // An allowed tenant reaches the store, which is down: 503 with Retry-After.
    let r = req("GET", "/tpf/admin/tenants/globex/pipelines/p/workers")
        .admin()
        .send(&app)
        .await;
    r.assert_error(503, "DEPENDENCY_UNAVAILABLE");
    assert_eq!(r.headers["retry-after"], "5");
    // Unset list allows every tenant.
    let open = worker_app(Options::default());
    req("GET", WORKERS).admin().send(&open).await.assert_ok();
}

#[tokio::test]
async fn com04_rac11_routes_without_body_ignore_any_body() {
    let app = worker_app(Options::default());
    register(&app, &worker("kitchen-1")).await.assert_ok();
    for op in ["heartbeat", "drain"] {
        let r = req("POST", &format!("{WORKERS}/kitchen-1/{op}"))
            .admin()
            .header("content-type", "text/plain")
            .raw(vec![b'{'; 300_000])
            .send(&app)
            .await;
        r.assert_ok();
    }
    let after = events(&app, "kitchen-1").await;
    assert_eq!(
        after.last().map(|e| e.event_type),
        Some(tpf_core::domain::worker::WorkerEventType::Drain),
        "the drain with a body took effect"
    );
    // The list (a GET) ignores a body too, even one that is not JSON, is
    // not declared as JSON and is over the 256 KiB limit.
    let r = req("GET", WORKERS)
        .admin()
        .header("content-type", "text/plain")
        .raw(vec![b'{'; 300_000])
        .send(&app)
        .await;
    let list = r.assert_ok().as_array().unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["workerId"], "kitchen-1");
    assert_eq!(list[0]["state"], "DRAINING");
}

async fn nothing_stored(app: &TestApp) {
    let list = req("GET", WORKERS).admin().send(app).await;
    assert_eq!(list.assert_ok(), &json!([]), "no worker listed");
    assert!(events(app, "kitchen-1").await.is_empty(), "no event");
}

#[tokio::test]
async fn register_refuses_malformed_json_other_media_types_and_wrong_tokens_storing_nothing() {
    let app = worker_app(Options::default());
    let url = format!("{WORKERS}/register");
    let valid = serde_json::to_vec(&worker("kitchen-1")).unwrap();
    let mut duplicate = worker("kitchen-1").to_string();
    duplicate.insert_str(1, r#""workerId":"kitchen-1","#);
    assert_register_refusals(&app, &url, None, &valid, duplicate.into_bytes(), || {
        nothing_stored(&app)
    })
    .await;
    // The same body with the admin token registers.
    let r = req("POST", &url).admin().raw(valid).send(&app).await;
    assert_eq!(r.assert_ok()["state"], "HEALTHY");
    assert_eq!(events(&app, "kitchen-1").await.len(), 1);
}
