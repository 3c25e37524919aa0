//! Faults detected at the cabinet become alarms on the server: raised once, cleared when the
//! condition ends, a flapping door is one alarm, and operators acknowledge and clear.

use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::{Api, World, eventually, wait_online};

const CAB: &str = "hall-cab-9";

async fn alarms(api: &Api, query: &str) -> Vec<Value> {
    let (s, v) = api.get(&format!("/api/v1/alarms?{query}")).await;
    assert_eq!(s, 200, "{v}");
    v["alarms"].as_array().cloned().unwrap_or_default()
}

async fn wait_alarm(api: &Api, query: &str, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
    eventually(Duration::from_secs(20), what, || async {
        alarms(api, query).await.into_iter().find(|a| pred(a))
    })
    .await
}

#[tokio::test]
async fn door_faults_raise_one_alarm_and_clear() {
    let world = World::new(&[CAB]);
    let config = world.path("agent.toml");
    // Sensors read every 5 ms so every flap is seen; a door open 1 s is left open.
    std::fs::write(
        &config,
        format!("id = '{CAB}'\npoll_interval_ms = 5\ndoor_open_alarm_secs = 1\n"),
    )
    .expect("config");
    let server = world.server();
    let api = server.api();
    let agent = world.agent_ctl(
        CAB,
        server.mqtt,
        &["--config", &config.display().to_string()],
    );
    wait_online(&api, CAB).await;

    // Forced open: a door opened with no pulse.
    agent.send("open 3").await;
    let forced = wait_alarm(&api, "kind=forced_open", "forced_open alarm", |a| {
        a["box"] == json!(3)
    })
    .await;
    assert_eq!(
        (forced["severity"].clone(), forced["state"].clone()),
        (json!("critical"), json!("active"))
    );
    assert!(
        forced["evidence"]
            .as_str()
            .is_some_and(|e| e.contains("no unlock pulse")),
        "{forced}"
    );
    // Left open past the alarm time.
    wait_alarm(&api, "kind=door_left_open", "door_left_open alarm", |a| {
        a["box"] == json!(3)
    })
    .await;
    agent.send("close 3").await;
    for kind in ["forced_open", "door_left_open"] {
        wait_alarm(
            &api,
            &format!("state=cleared&kind={kind}"),
            &format!("{kind} cleared"),
            |a| a["cleared_by"] == json!("device"),
        )
        .await;
    }

    // A flapping door: 100 flaps, one alarm counting them.
    for _ in 0..100 {
        agent.send("open 5").await;
        tokio::time::sleep(Duration::from_millis(12)).await;
        agent.send("close 5").await;
        tokio::time::sleep(Duration::from_millis(12)).await;
    }
    // The sensors are polled, so under load some flaps pass unseen; what matters is that
    // every flap seen lands in the one alarm.
    let flapping = eventually(
        Duration::from_secs(20),
        "the flaps folded into one alarm",
        || async {
            let all: Vec<Value> = alarms(&api, "state=all&kind=forced_open")
                .await
                .into_iter()
                .filter(|a| a["box"] == json!(5))
                .collect();
            (all.len() == 1
                && all[0]["count"].as_i64() >= Some(5)
                && all[0]["state"] == json!("cleared"))
            .then(|| all[0].clone())
        },
    )
    .await;
    let (_, detail) = api
        .get(&format!(
            "/api/v1/alarms/{}",
            flapping["id"].as_str().expect("id")
        ))
        .await;
    let reopened = detail["history"]
        .as_array()
        .expect("history")
        .iter()
        .filter(|h| h["detail"] == json!("raised again (flapping)"))
        .count() as i64;
    assert_eq!(
        reopened + 1,
        flapping["count"].as_i64().expect("count"),
        "{detail}"
    );
    assert_eq!(
        alarms(&api, "state=all&kind=forced_open")
            .await
            .iter()
            .filter(|a| a["box"] == json!(5))
            .count(),
        1,
        "{flapping}"
    );

    // An agent restart while a fault is active does not raise it again.
    agent.send("open 7").await;
    let a7 = wait_alarm(&api, "kind=forced_open", "box 7 alarm", |a| {
        a["box"] == json!(7)
    })
    .await;
    let mut agent = agent;
    agent.proc.kill9();
    let agent = world.agent_ctl(
        CAB,
        server.mqtt,
        &["--config", &config.display().to_string()],
    );
    // The fake doors are new after a restart (closed): the agent finds box 7 closed and
    // clears the fault once; it never raises a second alarm.
    wait_alarm(
        &api,
        "state=cleared&kind=forced_open",
        "box 7 cleared",
        |a| a["id"] == a7["id"],
    )
    .await;
    let (_, detail) = api
        .get(&format!(
            "/api/v1/alarms/{}",
            a7["id"].as_str().expect("id")
        ))
        .await;
    assert_eq!(detail["alarm"]["count"], json!(1), "{detail}");
    drop(agent);
}

#[tokio::test]
async fn a_jammed_lock_is_an_alarm_operators_acknowledge_and_clear() {
    let world = World::new(&[CAB]);
    let server = world.server();
    let api = server.api();
    let _agent = world.agent(CAB, server.mqtt, &["--fake-jam-rate", "1"]);
    wait_online(&api, CAB).await;
    let (s, r) = api.open(CAB, 2, json!({"reason": "citizen stuck"})).await;
    assert_eq!(s, 202, "{r}");
    let cmd = api
        .wait_command(
            r["command_id"].as_str().expect("id"),
            Duration::from_secs(20),
        )
        .await;
    assert_eq!(cmd["status"], json!("jammed"));
    let jam = wait_alarm(
        &api,
        "kind=lock_jam&severity=major",
        "lock_jam alarm",
        |a| a["box"] == json!(2),
    )
    .await;
    let id = jam["id"].as_str().expect("id").to_owned();
    // Viewers cannot acknowledge; a note is required.
    let (_, v) = api
        .post("/api/v1/tokens", json!({"name": "wall", "role": "viewer"}))
        .await;
    let viewer = api.with_token(v["token"].as_str().expect("token"));
    let (s, _) = viewer
        .post(&format!("/api/v1/alarms/{id}/ack"), json!({"note": "seen"}))
        .await;
    assert_eq!(s, 403);
    let (s, r) = api
        .post(&format!("/api/v1/alarms/{id}/ack"), json!({"note": " "}))
        .await;
    assert_eq!(s, 400, "{r}");
    let (s, r) = api
        .post(
            &format!("/api/v1/alarms/{id}/ack"),
            json!({"note": "technician on the way"}),
        )
        .await;
    assert_eq!((s, r["state"].clone()), (200, json!("acknowledged")), "{r}");
    let (s, r) = api
        .post(
            &format!("/api/v1/alarms/{id}/ack"),
            json!({"note": "again"}),
        )
        .await;
    assert_eq!(s, 409, "{r}");
    let (s, r) = api
        .post(
            &format!("/api/v1/alarms/{id}/clear"),
            json!({"note": "lock replaced"}),
        )
        .await;
    assert_eq!((s, r["state"].clone()), (200, json!("cleared")), "{r}");
    let (_, detail) = api.get(&format!("/api/v1/alarms/{id}")).await;
    let states: Vec<&str> = detail["history"]
        .as_array()
        .expect("history")
        .iter()
        .filter_map(|h| h["state"].as_str())
        .collect();
    assert_eq!(states, ["active", "acknowledged", "cleared"], "{detail}");
    let (s, r) = api.get("/api/v1/alarms?severity=dire").await;
    assert_eq!(s, 400, "{r}");
}

#[tokio::test]
async fn an_offline_cabinet_raises_one_alarm_and_suppresses_its_boxes() {
    let world = World::new(&[CAB]);
    let server = world.server_with("127.0.0.1:0", "127.0.0.1:0", &["--offline-grace-secs", "1"]);
    let api = server.api();
    let mut agent = world.agent_ctl(CAB, server.mqtt, &["--max-backoff-ms", "300"]);
    wait_online(&api, CAB).await;
    agent.send("open 4").await;
    wait_alarm(&api, "kind=forced_open", "forced_open", |a| {
        a["box"] == json!(4)
    })
    .await;
    agent.proc.kill9();
    let offline = wait_alarm(&api, "kind=device_offline", "device_offline alarm", |a| {
        a["device_id"] == json!(CAB)
    })
    .await;
    assert_eq!(offline["severity"], json!("major"));
    let boxed = wait_alarm(&api, "kind=forced_open", "suppressed box alarm", |a| {
        a["box"] == json!(4)
    })
    .await;
    assert_eq!(boxed["suppressed"], json!(true), "{boxed}");
    let _agent = world.agent_ctl(CAB, server.mqtt, &[]);
    wait_alarm(
        &api,
        "state=cleared&kind=device_offline",
        "device_offline cleared",
        |a| a["id"] == offline["id"],
    )
    .await;
    assert_eq!(alarms(&api, "state=all&kind=device_offline").await.len(), 1);
}
