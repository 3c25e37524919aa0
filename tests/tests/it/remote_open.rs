//! Remote open through the real path: API → server → broker → agent → fake lock → door
//! sensor → ack → API, audited; and expiry when the device is away.

use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::{World, eventually, wait_online};

#[tokio::test]
async fn remote_open_round_trip_is_audited() {
    let w = World::new(&["cab-r"]);
    let server = w.server();
    let api = server.api();
    let _agent = w.agent("cab-r", server.mqtt, &["--fake-close-after-ms", "60000"]);
    wait_online(&api, "cab-r").await;

    let (status, body) = api
        .open(
            "cab-r",
            3,
            json!({"reason": "citizen locked out at night", "idempotency_key": "t-1"}),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    // Online: stored as sent and published in the same step.
    assert_eq!(body["status"], "sent", "{body}");
    let id = body["command_id"].as_str().expect("command id").to_owned();
    // One long poll answers with the outcome as soon as there is one.
    let asked = std::time::Instant::now();
    let (code, cmd) = api
        .get(&format!("/api/v1/commands/{id}?wait_secs=15"))
        .await;
    assert_eq!(code, 200, "{cmd}");
    assert_eq!(cmd["status"], "opened", "{cmd}");
    assert!(asked.elapsed() < Duration::from_secs(10), "{cmd}");
    for field in ["sent_at", "delivered_at", "finished_at", "latency_ms"] {
        assert!(cmd[field].is_i64(), "{field} missing: {cmd}");
    }

    // The same idempotency key gives the same command, not a second pulse.
    let (status, again) = api
        .open(
            "cab-r",
            3,
            json!({"reason": "double click", "idempotency_key": "t-1"}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(again["command_id"], json!(id));

    let (_, audit) = api.get("/api/v1/audit?device=cab-r").await;
    let entries = audit["entries"].as_array().expect("entries");
    assert_eq!(entries.len(), 1, "{audit}");
    let e = &entries[0];
    assert_eq!(e["actor"], "admin");
    assert_eq!(e["reason"], "citizen locked out at night");
    assert_eq!(e["result"], "opened");
    assert!(e["latency_ms"].is_i64());

    // The door event reached the box state and the durable outcome reached the event log.
    eventually(
        Duration::from_secs(10),
        "box 3 open in device state",
        || async {
            api.device("cab-r").await.filter(|d| {
                d["boxes"]
                    .as_array()
                    .is_some_and(|b| b.iter().any(|x| x["box"] == 3 && x["door"] == "open"))
            })
        },
    )
    .await;
    eventually(
        Duration::from_secs(10),
        "command_result event stored",
        || async {
            let events = api.events("cab-r").await;
            events
                .iter()
                .any(|e| e["kind"] == "command_result" && e["body"]["command_id"] == json!(id))
                .then_some(())
        },
    )
    .await;

    // Opening an already open box is reported as such.
    let (_, body) = api.open("cab-r", 3, json!({"reason": "second try"})).await;
    let cmd = api
        .wait_command(
            body["command_id"].as_str().expect("id"),
            Duration::from_secs(15),
        )
        .await;
    assert_eq!(cmd["status"], "already_open");
}

#[tokio::test]
async fn roles_and_bad_requests_get_clear_errors() {
    let w = World::new(&["cab-x"]);
    let server = w.server();
    let api = server.api();
    let _agent = w.agent("cab-x", server.mqtt, &[]);
    wait_online(&api, "cab-x").await;

    let (status, created) = api
        .post(
            "/api/v1/tokens",
            json!({"name": "night desk", "role": "viewer"}),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let viewer = api.with_token(created["token"].as_str().expect("token"));
    assert_eq!(viewer.get("/api/v1/devices").await.0, 200);
    let (status, err) = viewer.open("cab-x", 1, json!({"reason": "x"})).await;
    assert_eq!(status, 403);
    assert!(
        err["error"]
            .as_str()
            .is_some_and(|m| m.contains("operator")),
        "{err}"
    );

    let (status, err) = api.with_token("").get("/api/v1/devices").await;
    assert_eq!(status, 401, "{err}");
    let (status, _) = api
        .with_token("wrong-token-wrong-token")
        .get("/api/v1/devices")
        .await;
    assert_eq!(status, 401);

    let (status, err) = api.open("cab-x", 1, json!({})).await;
    assert_eq!(status, 422, "{err}");
    assert!(
        err["error"].as_str().is_some_and(|m| m.contains("reason")),
        "{err}"
    );
    let (status, err) = api.open("cab-x", 1, json!({"reason": "  "})).await;
    assert_eq!(status, 400, "{err}");
    let (status, err) = api.open("cab-x", 99, json!({"reason": "r"})).await;
    assert_eq!(status, 404, "{err}");
    let (status, err) = api.open("nobody", 1, json!({"reason": "r"})).await;
    assert_eq!(status, 404, "{err}");
    let (status, err) = api.open("bad/id", 1, json!({"reason": "r"})).await;
    assert!(status == 400 || status == 404, "{status} {err}");
    let (status, err) = api.open("cab-x", 0, json!({"reason": "r"})).await;
    assert_eq!(status, 400, "{err}");
    // A path parameter out of its type's range: the JSON error shape, not axum's text.
    let (status, err) = api
        .put(
            "/api/v1/cabinets/cab-x/boxes/70000/service",
            json!({"in_service": true}),
        )
        .await;
    assert_eq!(status, 400, "{err}");
    assert!(
        err["error"]
            .as_str()
            .is_some_and(|m| m.starts_with("invalid path")),
        "{err}"
    );
    let (status, err) = api.get("/api/v1/commands/nothing?wait_secs=31").await;
    assert_eq!(status, 400, "{err}");
    assert!(
        err["error"]
            .as_str()
            .is_some_and(|m| m.contains("wait_secs")),
        "{err}"
    );
    let (status, err) = api.get("/api/v1/commands/nothing?wait_secs=2").await;
    assert_eq!(status, 404, "an unknown command is not waited for: {err}");
    let (_, audit) = api.get("/api/v1/audit").await;
    let opens: Vec<&Value> = audit["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .filter(|e| e["action"] == "remote_open")
        .collect();
    assert!(
        opens.is_empty(),
        "refused requests audited as opens: {audit}"
    );
}

#[tokio::test]
async fn expired_command_never_opens_a_door() {
    let w = World::new(&["cab-e"]);
    let server = w.server();
    let api = server.api();
    {
        // Register the device, then take it away.
        let _agent = w.agent("cab-e", server.mqtt, &[]);
        wait_online(&api, "cab-e").await;
    }
    eventually(Duration::from_secs(30), "cab-e offline", || async {
        api.device("cab-e")
            .await
            .filter(|d| d["online"] == json!(false))
    })
    .await;
    let (status, body) = api
        .open("cab-e", 2, json!({"reason": "stuck", "ttl_secs": 3}))
        .await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["status"], "queued", "offline: not sent: {body}");
    let id = body["command_id"].as_str().expect("id").to_owned();
    // A long poll that runs out answers with the current, unfinished status.
    let (code, cmd) = api.get(&format!("/api/v1/commands/{id}?wait_secs=1")).await;
    assert_eq!((code, &cmd["status"]), (200, &json!("queued")), "{cmd}");
    let cmd = api.wait_command(&id, Duration::from_secs(10)).await;
    assert_eq!(cmd["status"], "expired", "{cmd}");

    // The device comes back: the stale open must not happen.
    let _agent = w.agent("cab-e", server.mqtt, &[]);
    wait_online(&api, "cab-e").await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (_, cmd) = api.get(&format!("/api/v1/commands/{id}")).await;
    assert_eq!(cmd["status"], "expired");
    let events = api.events("cab-e").await;
    assert!(
        !events
            .iter()
            .any(|e| e["kind"] == "door" || e["kind"] == "command_result"),
        "a door moved or a command ran: {events:?}"
    );
}
