//! The restaurant flow through the engine in one process: submit → worker
//! (real HTTP) → await → pending → complete → resume → result
//! (EXECUTION.md §11 E2E-01 in process; SUB-01, WORK-01, WORK-11, COMP-01/02).

use serde_json::{json, Value};
use tpf_tests::*;

#[tokio::test]
async fn restaurant_flow_approved_and_declined() {
    for approved in [true, false] {
        let h = Harness::new(Options::default()).await;
        let sub = h.submit(submit_body("Ada Lovelace", None)).await;
        let v = sub.ok().clone();
        let id = v["executionId"].as_str().unwrap().to_string();
        assert_eq!(v["duplicate"], false);
        assert_eq!(
            v["statusUrl"],
            format!("/tpf/control-plane/tenants/acme/executions/{id}")
        );
        assert_eq!(h.status(&id).await["status"], "QUEUED");

        let out = h.drive().await;
        assert_eq!(
            out,
            vec![Processed::Committed(
                tpf_core::domain::execution::ExecutionStatus::WaitingExternal
            )]
        );
        let st = h.status(&id).await;
        assert_eq!(st["status"], "WAITING_EXTERNAL");
        assert_eq!(st["stepIndex"], 2);
        assert_eq!(st["nextDueAtEpochMs"], Value::Null);

        let pending = h
            .call("GET", "/tpf/control-plane/tenants/acme/interactions/pending?stepId=ProcessAwaitRestaurantDecisionService", CONTROL, None)
            .await;
        let items = pending.ok().as_array().unwrap().clone();
        assert_eq!(items.len(), 1);
        let i = &items[0];
        assert_eq!(i.as_object().unwrap().len(), 15);
        assert_eq!(i["transportType"], "interaction-api");
        assert_eq!(i["executionId"], id.as_str());
        let order_id = i["requestPayload"]["orderId"].as_str().unwrap().to_string();

        let done = h
            .call(
                "POST",
                "/tpf/control-plane/tenants/acme/interactions/complete",
                CONTROL,
                Some(json!({"interactionId": i["interactionId"], "responsePayload": decision(&order_id, approved), "actor": "kitchen-tablet-3"})),
            )
            .await;
        assert_eq!(done.ok()["duplicate"], false);
        assert_eq!(done.body["status"], "COMPLETED");
        let st = h.status(&id).await;
        assert_eq!(
            (st["status"].as_str(), st["stepIndex"].as_u64()),
            (Some("QUEUED"), Some(3))
        );

        h.drive().await;
        let result = h
            .call(
                "GET",
                &format!("/tpf/control-plane/tenants/acme/executions/{id}/result"),
                CONTROL,
                None,
            )
            .await;
        let r = result.ok();
        assert_eq!(r["status"]["status"], "SUCCEEDED");
        assert_eq!(r["status"]["stepIndex"], 3);
        let payload: Value =
            serde_json::from_str(r["resultPayload"]["payload"].as_str().unwrap()).unwrap();
        assert_eq!(
            payload["outcome"],
            if approved { "APPROVED" } else { "DECLINED" }
        );

        let types: Vec<String> = h
            .history(&id)
            .await
            .iter()
            .map(|e| e["type"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(
            types,
            [
                "SUBMITTED",
                "CLAIMED",
                "WAITING_EXTERNAL",
                "RESUMED",
                "CLAIMED",
                "SUCCEEDED"
            ]
        );
        assert!(h.dead_letters.all().is_empty());
    }
}
