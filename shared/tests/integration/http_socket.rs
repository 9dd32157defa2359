//! The same router served on a real TCP socket (as a local server would)
//! and driven by an HTTP client: headers, status lines and bodies survive
//! the wire, not only `tower::oneshot`.

use crate::support;

use serde_json::{json, Value};
use support::*;

async fn serve(app: &TestApp) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let router = app.router.clone();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    format!("http://{addr}")
}

#[tokio::test]
async fn worker_lifecycle_over_a_socket() {
    let app = worker_app(Options::default());
    let base = serve(&app).await;
    let client = reqwest::Client::new();
    let body = json!({"workerId": "w1", "contractVersion": "c1", "releaseVersion": "r1", "protocol": "rest", "endpoint": "http://127.0.0.1:1"});
    let r = client
        .post(format!("{base}{WORKERS}/register"))
        .bearer_auth(ADMIN)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/json");
    assert!(r.headers().contains_key("x-request-id"));
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["state"], "HEALTHY");

    let r = client
        .delete(format!("{base}{WORKERS}"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
    assert_eq!(r.headers()["allow"], "GET");
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["code"], "METHOD_NOT_ALLOWED");

    let r = client.get(format!("{base}{WORKERS}")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["www-authenticate"], "Bearer realm=\"tpf\"");

    let r = client
        .post(format!("{base}{WORKERS}/register"))
        .bearer_auth(ADMIN)
        .body(vec![b'a'; 300_000])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);

    let r = client
        .get(format!("{base}/elsewhere"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(r.json::<Value>().await.unwrap()["code"], "ROUTE_NOT_FOUND");
}

#[tokio::test]
async fn release_admin_over_a_socket() {
    let app = release_app(Options::default());
    let base = serve(&app).await;
    let demo = demo_release::write_release(&app.root, &demo_release::DemoSpec::default()).unwrap();
    let client = reqwest::Client::new();
    let r = client
        .post(format!("{base}{RELEASES}/register"))
        .bearer_auth(ADMIN)
        .json(&json!({"releaseDescriptorPath": demo.descriptor_path}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = client
        .post(format!("{base}{RELEASES}/2025.01.0/activate"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["status"], "ACTIVE");
}
