//! Faults detected at the cabinet become alarms on the server: raised once, cleared when the
//! condition ends, a flapping door is one alarm, and operators acknowledge and clear.

use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::{AgentCtl, Api, Receiver, World, eventually, wait_online};

const CAB: &str = "hall-cab-9";

pub(crate) async fn alarms(api: &Api, query: &str) -> Vec<Value> {
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
    // Prometheus sees it too.
    assert_eq!(
        api.metric("lockerfleet_alarms_open{kind=\"forced_open\"}")
            .await,
        1.0
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

const PRINTER: &str = "hall-printer-1";
const DUTY_PHONE: &str = "+8613800000009";

/// Raises a fault through the fake hardware, waits for its one alarm, clears it, and checks
/// that exactly one alarm (count 1) was raised and cleared by the device.
async fn one_alarm_raised_and_cleared(
    api: &Api,
    agent: &AgentCtl,
    device: &str,
    (raise, clear, kind, box_no): (&str, &str, &str, Option<u16>),
) {
    let answer = agent.send(raise).await;
    assert!(answer.get("error").is_none(), "{raise}: {answer}");
    let q = format!("device={device}&kind={kind}");
    let on_box = |a: &Value| a["box"] == box_no.map_or(Value::Null, |b| json!(b));
    let alarm = wait_alarm(api, &q, &format!("{kind} raised"), on_box).await;
    assert_eq!(alarm["state"], json!("active"), "{alarm}");
    let answer = agent.send(clear).await;
    assert!(answer.get("error").is_none(), "{clear}: {answer}");
    wait_alarm(
        api,
        &format!("state=cleared&{q}"),
        &format!("{kind} cleared"),
        |a| a["id"] == alarm["id"] && a["cleared_by"] == json!("device"),
    )
    .await;
    let all: Vec<Value> = alarms(api, &format!("state=all&{q}"))
        .await
        .into_iter()
        .filter(on_box)
        .collect();
    assert_eq!(all.len(), 1, "{kind}: {all:?}");
    assert_eq!(all[0]["count"], json!(1), "{kind}: {all:?}");
}

#[tokio::test]
async fn device_and_station_faults_raise_one_alarm_each_and_reach_on_duty_staff() {
    let world = World::new(&[CAB, PRINTER]);
    let sms = Receiver::start(0).await;
    let sms_url = sms.url("/sms");
    let server = world.server_with(
        "127.0.0.1:0",
        "127.0.0.1:0",
        &["--sms-gateway-url", &sms_url],
    );
    let api = server.api();
    let (s, r) = api
        .post(
            "/api/v1/sites",
            json!({"id": "hall", "kind": "service_hall", "name": "City service hall",
                   "lat": 23.1291, "lon": 113.2644}),
        )
        .await;
    assert_eq!(s, 201, "{r}");
    for (device, boxes) in [(CAB, 8), (PRINTER, 0)] {
        let boxes: Vec<Value> = (1..=boxes)
            .map(|b| json!({"box": b, "size": "M"}))
            .collect();
        let (s, r) = api
            .put(
                &format!("/api/v1/cabinets/{device}"),
                json!({"site_id": "hall", "name": device, "boxes": boxes}),
            )
            .await;
        assert_eq!(s, 200, "{r}");
    }
    // Going on duty needs a phone to be reached at.
    let (s, r) = api
        .post(
            "/api/v1/staff",
            json!({"id": "duty-1", "name": "Zhao Min", "site_id": "hall",
                   "credential": "card-7788"}),
        )
        .await;
    assert_eq!(s, 201, "{r}");
    let (s, r) = api
        .put("/api/v1/staff/duty-1/duty", json!({"on_duty": true}))
        .await;
    assert_eq!(s, 422, "{r}");
    let (s, r) = api
        .post(
            "/api/v1/staff",
            json!({"id": "duty-2", "name": "Chen Jie", "site_id": "hall",
                   "credential": "card-7789", "phone": DUTY_PHONE, "on_duty": true}),
        )
        .await;
    assert_eq!(s, 201, "{r}");
    assert_eq!(r["phone"], json!("+86*******0009"), "{r}");

    let beat = ["--heartbeat-secs", "1"];
    let config = world.path("agent.toml");
    std::fs::write(&config, format!("id = '{CAB}'\npoll_interval_ms = 5\n")).expect("config");
    let cabinet = world.agent_ctl(
        CAB,
        server.mqtt,
        &["--config", &config.display().to_string(), beat[0], beat[1]],
    );
    let printer = world.agent_ctl(
        PRINTER,
        server.mqtt,
        &["--profile", "printer", beat[0], beat[1]],
    );
    wait_online(&api, CAB).await;
    // Every presence layer is visible per device. A heartbeat sent before the agent's first
    // read of its signals honestly says power "unknown"; the next one says what was read.
    let cab = eventually(Duration::from_secs(20), "cabinet heartbeat", || async {
        api.device(CAB).await.filter(|d| {
            d["layers"]["heartbeat"] == json!("fresh") && d["power"] != json!("unknown")
        })
    })
    .await;
    assert_eq!(
        (&cab["layers"]["session"], &cab["layers"]["lock_bus"]),
        (&json!("up"), &json!("ok")),
        "{cab}"
    );
    assert_eq!(
        (&cab["profile"], &cab["power"]),
        (&json!("locker"), &json!("mains"))
    );
    let prn = eventually(Duration::from_secs(20), "printer heartbeat", || async {
        api.device(PRINTER)
            .await
            .filter(|d| d["online"] == json!(true) && d["profile"] == json!("printer"))
    })
    .await;
    assert_eq!(prn["layers"]["lock_bus"], json!("absent"), "{prn}");
    assert_eq!(prn["station"]["paper"], json!("ok"), "{prn}");

    for fault in [
        ("bus down", "bus up", "lock_bus_unreachable", None),
        ("power battery", "power mains", "on_battery", None),
        ("tamper open", "tamper closed", "tamper", None),
        (
            "occupied 2 true",
            "occupied 2 false",
            "sensor_fault",
            Some(2),
        ),
    ] {
        one_alarm_raised_and_cleared(&api, &cabinet, CAB, fault).await;
    }
    for fault in [
        ("paper low", "paper ok", "paper_low", None),
        ("paper out", "paper ok", "paper_out", None),
        ("paper_jam on", "paper_jam off", "paper_jam", None),
        ("toner low", "toner ok", "toner_low", None),
        ("service on", "service off", "needs_service", None),
    ] {
        one_alarm_raised_and_cleared(&api, &printer, PRINTER, fault).await;
    }

    // The critical tamper alarm reached the on-duty member of staff, naming where it is.
    let text = sms
        .wait("/sms", "tamper SMS", |v| {
            v["to"] == json!(DUTY_PHONE)
                && v["text"]
                    .as_str()
                    .is_some_and(|t| t.contains(&format!("tamper at {CAB} (City service hall)")))
        })
        .await;
    assert!(text.body.contains("critical"), "{}", text.body);
    // Minor station faults are not texted until they escalate.
    assert!(
        !sms.all("/sms").iter().any(|r| r.body.contains("paper")),
        "a warning was texted"
    );
    // All cleared: the fleet gauges say so (and count the cabinet's 8 free boxes).
    assert_eq!(
        api.metric("lockerfleet_alarms_open{kind=\"tamper\"}").await,
        0.0
    );
    assert_eq!(api.metric("lockerfleet_boxes{state=\"free\"}").await, 8.0);
    let (_, tamper) = api.get("/api/v1/alarms?state=all&kind=tamper").await;
    assert_eq!(
        tamper["alarms"][0]["notify_outcome"],
        json!("notified"),
        "{tamper}"
    );
}

#[tokio::test]
async fn a_hung_agent_is_offline_after_grace_and_missed_heartbeats() {
    let world = World::new(&[CAB]);
    let server = world.server_with("127.0.0.1:0", "127.0.0.1:0", &["--offline-grace-secs", "1"]);
    let api = server.api();
    let agent = world.agent_ctl(CAB, server.mqtt, &["--heartbeat-secs", "1"]);
    wait_online(&api, CAB).await;
    eventually(Duration::from_secs(20), "heartbeats", || async {
        api.device(CAB)
            .await
            .filter(|d| d["layers"]["heartbeat"] == json!("fresh"))
    })
    .await;
    // Frozen: its TCP session stays up (the broker's keep-alive is 15 s), but it beats no more.
    let pid = agent.proc.child.id().to_string();
    let signal = |sig: &str| {
        let ok = std::process::Command::new("kill")
            .args([sig, &pid])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "kill {sig} {pid}");
    };
    signal("-STOP");
    let frozen = std::time::Instant::now();
    let offline = wait_alarm(&api, "kind=device_offline", "device_offline alarm", |a| {
        a["device_id"] == json!(CAB)
    })
    .await;
    // Detected within grace (1 s) + two heartbeat intervals (2 s) + one sweep (1 s), plus slack.
    assert!(
        frozen.elapsed() < Duration::from_secs(8),
        "took {:?}",
        frozen.elapsed()
    );
    assert!(
        offline["evidence"]
            .as_str()
            .is_some_and(|e| e.contains("no heartbeat")),
        "{offline}"
    );
    let dev = api.device(CAB).await.expect("device");
    assert_eq!(
        (&dev["layers"]["session"], &dev["layers"]["heartbeat"]),
        (&json!("up"), &json!("late")),
        "{dev}"
    );
    signal("-CONT");
    wait_alarm(
        &api,
        "state=cleared&kind=device_offline",
        "device_offline cleared",
        |a| a["id"] == offline["id"],
    )
    .await;
    let (_, log) = api.get(&format!("/api/v1/devices/{CAB}/presence")).await;
    let layers: Vec<(Value, Value)> = log["presence"]
        .as_array()
        .expect("presence log")
        .iter()
        .map(|r| (r["layer"].clone(), r["online"].clone()))
        .collect();
    assert_eq!(
        layers[..2],
        [
            (json!("heartbeat"), json!(true)),
            (json!("heartbeat"), json!(false))
        ],
        "{log}"
    );
    drop(agent);
}
