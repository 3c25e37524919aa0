//! Remote diagnostics through real processes: an operator fetches a cabinet's doctor report and
//! its newest log lines over the cabinet's own connection, raises its log level from the
//! server without a restart, and a request made while the cabinet is away is answered when it
//! is back. Viewers read, only operators ask, and every request is audited.

use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::{Api, World, eventually, wait_online};

const CAB: &str = "diag-1";

fn path() -> String {
    format!("/api/v1/devices/{CAB}/diagnostics")
}

async fn ask(api: &Api, body: Value) -> Value {
    let (s, r) = api.post(&path(), body).await;
    assert_eq!(s, 200, "answered within wait_secs: {r}");
    assert_eq!(r["state"], "answered", "{r}");
    r
}

fn lines(r: &Value) -> Vec<Value> {
    r["report"]["lines"].as_array().cloned().unwrap_or_default()
}

#[tokio::test]
async fn a_cabinet_answers_doctor_and_logs_remotely_and_its_log_level_changes_live() {
    let world = World::new(&[CAB]);
    let server = world.server_with("127.0.0.1:0", "127.0.0.1:0", &[]);
    let api = server.api();
    let agent = world.agent_ctl(CAB, server.mqtt, &["--boxes", "4"]);
    wait_online(&api, CAB).await;

    // Refused before anything is sent.
    for (body, status, why) in [
        (
            json!({"kind": "logs", "lines": 0}),
            400,
            "lines must be 1 to 1000",
        ),
        (
            json!({"kind": "logs", "lines": 1001}),
            400,
            "lines must be 1 to 1000",
        ),
        (
            json!({"kind": "doctor", "lines": 5}),
            400,
            "lines is for kind",
        ),
        (
            json!({"kind": "logs", "wait_secs": 31}),
            400,
            "wait_secs must be 0 to 30",
        ),
        (json!({"kind": "bogus"}), 422, "unknown variant `bogus`"),
    ] {
        let (s, r) = api.post(&path(), body.clone()).await;
        assert_eq!(s, status, "{body}: {r}");
        assert!(
            r["error"].as_str().is_some_and(|e| e.contains(why)),
            "{body}: {r}"
        );
    }
    let (s, r) = api
        .post(
            "/api/v1/devices/nobody/diagnostics",
            json!({"kind": "doctor"}),
        )
        .await;
    assert_eq!(s, 404, "{r}");

    // A fresh doctor report from the running agent.
    let doctor = ask(&api, json!({"kind": "doctor", "wait_secs": 20})).await;
    let checks = doctor["report"]["checks"].as_array().expect("checks");
    for name in crate::harness::DOCTOR_CHECKS {
        let c = checks
            .iter()
            .find(|c| c["name"] == name)
            .unwrap_or_else(|| panic!("no {name} check: {doctor}"));
        assert_eq!(c["ok"], true, "{name}: {doctor}");
    }
    assert_eq!(doctor["summary"], "all 6 checks pass", "{doctor}");

    // A citizen types a code (a wrong one: the agent logs the refusal, never the digits).
    let typed = agent.send("code 73915064").await;
    assert_eq!(typed["outcome"], "rejected", "{typed}");

    // The newest log lines, at the level the agent started with.
    let logs = ask(&api, json!({"kind": "logs", "lines": 50, "wait_secs": 20})).await;
    assert!(
        !logs.to_string().contains("73915064"),
        "a typed code reached the log: {logs}"
    );
    let got = lines(&logs);
    assert!(!got.is_empty() && got.len() <= 50, "{logs}");
    assert!(
        got.iter().any(|l| l["text"]
            .as_str()
            .is_some_and(|t| t.contains("diagnostics sent"))),
        "the doctor answer before is in the ring: {logs}"
    );
    assert!(got.iter().all(|l| l["level"] != "DEBUG"), "{logs}");
    assert_eq!(logs["report"]["level"], "info,rumqttc=warn,sqlx=warn");

    // Central configuration raises the level live; the next lines include debug ones.
    let (s, r) = api
        .put(
            &format!("/api/v1/config/device/{CAB}"),
            json!({"settings": {"log_level": 4}}),
        )
        .await;
    assert_eq!(s, 200, "{r}");
    eventually(Duration::from_secs(20), "log_level applied", || async {
        let (_, c) = api.get(&format!("/api/v1/devices/{CAB}/config")).await;
        (c["drift"] == json!(false) && c["applied"]["state"] == "applied").then_some(())
    })
    .await;
    let logs = ask(&api, json!({"kind": "logs", "lines": 20, "wait_secs": 20})).await;
    assert!(
        logs["report"]["level"]
            .as_str()
            .is_some_and(|l| l.starts_with("debug,")),
        "{logs}"
    );
    assert!(
        lines(&logs).iter().any(|l| l["level"] == "DEBUG"
            && l["text"]
                .as_str()
                .is_some_and(|t| t.contains("diagnostics request received"))),
        "{logs}"
    );

    // Viewers read the requests and answers; only operators ask.
    let (_, t) = api
        .post("/api/v1/tokens", json!({"name": "wall", "role": "viewer"}))
        .await;
    let viewer = api.with_token(t["token"].as_str().expect("token"));
    let (s, list) = viewer.get(&path()).await;
    assert_eq!(s, 200, "{list}");
    let all = list["diagnostics"].as_array().expect("list");
    assert_eq!(all.len(), 3, "{list}");
    assert!(all.iter().all(|d| d.get("report").is_none()), "{list}");
    let id = doctor["id"].as_str().expect("id");
    let (s, one) = viewer.get(&format!("{}/{id}", path())).await;
    assert_eq!(s, 200, "{one}");
    assert_eq!(one["report"]["kind"], "doctor", "{one}");
    let (s, _) = viewer.post(&path(), json!({"kind": "doctor"})).await;
    assert_eq!(s, 403);

    // Asked while the cabinet is away: pending, then answered once it is back.
    drop(agent);
    eventually(Duration::from_secs(20), "offline", || async {
        api.device(CAB)
            .await
            .filter(|d| d["online"] == json!(false))
    })
    .await;
    let (s, pending) = api.post(&path(), json!({"kind": "doctor"})).await;
    assert_eq!(s, 202, "{pending}");
    assert_eq!(pending["state"], "pending");
    let (s, same) = api.post(&path(), json!({"kind": "doctor"})).await;
    assert_eq!(s, 202, "{same}");
    assert_eq!(
        same["id"], pending["id"],
        "one pending request of a kind, not two"
    );
    let _back = world.agent(CAB, server.mqtt, &["--boxes", "4"]);
    let pid = pending["id"].as_str().expect("id");
    let answered = eventually(Duration::from_secs(30), "answered when back", || async {
        let (_, r) = api.get(&format!("{}/{pid}", path())).await;
        (r["state"] == "answered").then_some(r)
    })
    .await;
    assert_eq!(answered["report"]["kind"], "doctor", "{answered}");

    let actions = api.audit_actions(100).await;
    let requested = actions
        .iter()
        .filter(|a| *a == "diagnostics_requested")
        .count();
    assert_eq!(
        requested, 4,
        "doctor, logs, logs, doctor when away: {actions:?}"
    );
}
