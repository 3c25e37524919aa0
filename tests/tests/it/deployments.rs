//! Deployments through real processes: a release rolled out in waves to supervised agents
//! selected by a label — a canary, then the rest, a cabinet offline during its wave updated
//! when it is back, then one cabinet taken back to the build before by a rollback deployment —
//! and a release that crashes at start halting the deployment after the
//! canary, which the cabinet takes back by itself while the other cabinets are never offered
//! it.

use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::{NEXT_VERSION, eventually, next_agent, wait_online};
use crate::install::{Fleet, fleet};
use crate::releases::host_target;

async fn deploy(f: &Fleet, body: Value) -> Value {
    let (s, r) = f.api.post("/api/v1/deployments", body).await;
    assert_eq!(s, 201, "{r}");
    r
}

/// Waits until the deployment is `state`; its detail then.
async fn until_state(f: &Fleet, id: &str, state: &str) -> Value {
    eventually(
        Duration::from_secs(120),
        &format!("deployment {state}"),
        || async {
            let (_, d) = f.api.get(&format!("/api/v1/deployments/{id}")).await;
            (d["deployment"]["state"] == state).then_some(d)
        },
    )
    .await
}

fn device_states(d: &Value) -> Vec<(String, u64, String)> {
    d["devices"]
        .as_array()
        .expect("devices")
        .iter()
        .map(|x| {
            (
                x["device_id"].as_str().unwrap_or_default().to_owned(),
                x["wave"].as_u64().unwrap_or(0),
                x["state"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn a_release_rolls_out_in_waves_and_a_cabinet_offline_in_its_wave_updates_when_back() {
    let next = std::fs::read(next_agent()).expect("next agent");
    let devices = ["wave-a", "wave-b", "wave-c"];
    let f = fleet(&devices, &["--release-bytes-per-sec", "50000000"]);
    f.publish(NEXT_VERSION, &next).await;
    let _a = f.supervised("wave-a", &[]);
    let _b = f.supervised("wave-b", &[]);
    wait_online(&f.api, "wave-a").await;
    wait_online(&f.api, "wave-b").await;
    // wave-c connected once (the server knows it) and is offline when the rollout starts.
    let c = f.supervised("wave-c", &[]);
    wait_online(&f.api, "wave-c").await;
    drop(c);

    // Refused with the field and why, nothing stored.
    for (body, why) in [
        (
            json!({"target": host_target(), "version": "9.9.9", "devices": devices}),
            "no release 9.9.9",
        ),
        (
            json!({"target": host_target(), "version": NEXT_VERSION, "devices": devices, "waves": ["0"]}),
            "field `waves`",
        ),
        (
            json!({"target": host_target(), "version": NEXT_VERSION}),
            "name the devices",
        ),
        (
            json!({"target": host_target(), "version": NEXT_VERSION, "devices": ["nobody"]}),
            "nobody never connected",
        ),
    ] {
        let (s, r) = f.api.post("/api/v1/deployments", body).await;
        assert_eq!(s, 422, "{r}");
        assert!(
            r["error"].as_str().is_some_and(|e| e.contains(why)),
            "{why}: {r}"
        );
    }

    // The three carry the board label the rollout selects; a bad label is refused by name.
    for dev in devices {
        let (s, r) = f
            .api
            .put(
                &format!("/api/v1/devices/{dev}/labels"),
                json!({"labels": {"board": "modbus-v2", "district": "福田区"}}),
            )
            .await;
        assert_eq!(s, 200, "{r}");
    }
    let (s, r) = f
        .api
        .put(
            "/api/v1/devices/wave-a/labels",
            json!({"labels": {"Board": "x"}}),
        )
        .await;
    assert_eq!(s, 422, "{r}");
    assert!(
        r["error"].as_str().is_some_and(|e| e.contains("\"Board\"")),
        "{r}"
    );
    let (_, dev) = f.api.get("/api/v1/devices/wave-c").await;
    assert_eq!(dev["labels"]["district"], "福田区", "{dev}");

    let d = deploy(
        &f,
        json!({"target": host_target(), "version": NEXT_VERSION,
               "labels": {"board": "modbus-v2"}, "waves": ["1", "100%"]}),
    )
    .await;
    let id = d["deployment"]["id"].as_str().expect("id").to_owned();
    assert_eq!(
        device_states(&d),
        [
            ("wave-a".into(), 1, "pending".into()),
            ("wave-b".into(), 2, "pending".into()),
            ("wave-c".into(), 2, "pending".into()),
        ]
    );

    // The canary goes first; the second wave starts only once it succeeded.
    f.reached("wave-a", NEXT_VERSION, "succeeded").await;
    f.reached("wave-b", NEXT_VERSION, "succeeded").await;
    let (_, d) = f.api.get(&format!("/api/v1/deployments/{id}")).await;
    assert_eq!(d["deployment"]["state"], "running", "{d}");
    assert_eq!(d["deployment"]["wave"], 2, "{d}");
    let states = device_states(&d);
    assert_eq!(states[2], ("wave-c".into(), 2, "pending".into()), "{d}");

    // wave-c comes back: it is offered the release, updates, and the deployment completes.
    let _c = f.supervised("wave-c", &[]);
    let d = until_state(&f, &id, "completed").await;
    assert!(
        device_states(&d).iter().all(|(_, _, s)| s == "succeeded"),
        "{d}"
    );
    for dev in devices {
        eventually(
            Duration::from_secs(30),
            "the new version reported",
            || async { (f.agent_version(dev).await == NEXT_VERSION).then_some(()) },
        )
        .await;
    }
    let actions = f.api.audit_actions(300).await;
    for a in [
        "deployment_created",
        "deployment_wave_passed",
        "deployment_completed",
    ] {
        assert!(actions.iter().any(|x| x == a), "{a} audited: {actions:?}");
    }
    assert_eq!(
        f.api
            .metric("lockerfleet_deployments{state=\"completed\"}")
            .await,
        1.0
    );
    let (s, list) = f.api.get("/api/v1/deployments").await;
    assert_eq!(s, 200);
    assert_eq!(list["deployments"][0]["waves"][1]["succeeded"], 2, "{list}");

    // Taken back by the server: the build before, signed as a release of its own version,
    // deployed explicitly as a rollback; the cabinet installs the older version and runs it.
    let old = env!("CARGO_PKG_VERSION");
    let first = std::fs::read(crate::harness::bin("device-agent")).expect("first agent");
    f.publish(old, &first).await;
    let back = deploy(
        &f,
        json!({"target": host_target(), "version": old, "rollback": true,
               "devices": ["wave-a"]}),
    )
    .await;
    assert_eq!(back["deployment"]["rollback"], true, "{back}");
    let back_id = back["deployment"]["id"].as_str().expect("id").to_owned();
    let d = until_state(&f, &back_id, "completed").await;
    assert_eq!(
        device_states(&d),
        [("wave-a".into(), 1, "succeeded".into())],
        "{d}"
    );
    eventually(
        Duration::from_secs(30),
        "the older version reported",
        || async { (f.agent_version("wave-a").await == old).then_some(()) },
    )
    .await;
    assert_eq!(
        f.agent_version("wave-b").await,
        NEXT_VERSION,
        "only wave-a was taken back"
    );
}

#[tokio::test]
async fn a_release_that_crashes_halts_the_deployment_after_the_canary() {
    let devices = ["halt-a", "halt-b", "halt-c"];
    let f = fleet(&devices, &[]);
    f.publish("0.99.1", b"#!/bin/sh\nexit 3\n").await;
    let _agents: Vec<_> = devices.iter().map(|d| f.supervised(d, &[])).collect();
    for d in devices {
        wait_online(&f.api, d).await;
    }
    let d = deploy(
        &f,
        json!({"target": host_target(), "version": "0.99.1", "devices": devices}),
    )
    .await;
    let id = d["deployment"]["id"].as_str().expect("id").to_owned();
    let d = until_state(&f, &id, "halted").await;
    let reason = d["deployment"]["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("wave 1: 1 of 1 failed")
            && reason.contains("exited with status 3 before confirming"),
        "{d}"
    );
    assert_eq!(
        device_states(&d),
        [
            ("halt-a".into(), 1, "rolled_back".into()),
            ("halt-b".into(), 2, "pending".into()),
            ("halt-c".into(), 2, "pending".into()),
        ]
    );
    wait_online(&f.api, "halt-a").await;
    assert_eq!(f.agent_version("halt-a").await, "0.1.0");
    // Nothing more is offered: the others never heard of the release.
    tokio::time::sleep(Duration::from_secs(3)).await;
    for dev in ["halt-b", "halt-c"] {
        let events = crate::releases::release_events(&f.api, dev).await;
        assert!(events.is_empty(), "{dev}: {events:?}");
    }
    // A halted deployment cannot resume; it can be cancelled.
    let (s, r) = f
        .api
        .post(&format!("/api/v1/deployments/{id}/resume"), json!({}))
        .await;
    assert_eq!(s, 409, "{r}");
    let (s, r) = f
        .api
        .post(
            &format!("/api/v1/deployments/{id}/cancel"),
            json!({"note": "crashes at start"}),
        )
        .await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(r["deployment"]["state"], "cancelled");
}
