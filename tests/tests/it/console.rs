//! The operator console driven like a person: the real `fleet-console` binary in a tmux
//! pseudo-terminal (send-keys, capture-pane) against a real server and agent. An operator
//! opens a box with a reason and sees it open, acknowledges an alarm, looks at the alarm's
//! cabinet remotely (doctor report, log lines) and at the fleet's rollouts.

use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::{Tmux, World, bin, eventually, wait_online};

const CAB: &str = "hall-cab-7";

/// A service hall named `site` with one six-box cabinet named `cabinet`, its agent online.
async fn hall_with_a_cabinet(
    world: &World,
    server: &crate::harness::Server,
    site: &str,
    cabinet: &str,
) -> crate::harness::AgentCtl {
    let admin = server.api();
    let (s, r) = admin
        .post(
            "/api/v1/sites",
            json!({"id": "hall", "kind": "service_hall", "name": site,
                   "lat": 23.1, "lon": 113.2}),
        )
        .await;
    assert_eq!(s, 201, "{r}");
    let boxes: Vec<Value> = (1..=6).map(|b| json!({"box": b, "size": "M"})).collect();
    let (s, r) = admin
        .put(
            &format!("/api/v1/cabinets/{CAB}"),
            json!({"site_id": "hall", "name": cabinet, "boxes": boxes}),
        )
        .await;
    assert_eq!(s, 200, "{r}");
    let agent = world.agent_ctl(CAB, server.mqtt, &["--fake-close-after-ms", "60000"]);
    wait_online(&admin, CAB).await;
    agent
}

#[tokio::test]
async fn an_operator_opens_a_box_and_acknowledges_an_alarm_in_the_console() {
    let world = World::new(&[CAB]);
    let server = world.server();
    let admin = server.api();
    let agent = hall_with_a_cabinet(&world, &server, "City service hall", "Entrance").await;
    let (s, t) = admin
        .post(
            "/api/v1/tokens",
            json!({"name": "night-desk", "role": "operator"}),
        )
        .await;
    assert_eq!(s, 201, "{t}");
    let token = t["token"].as_str().expect("token");

    let console = Tmux::start(
        &format!("lf-console-{}", std::process::id()),
        100,
        30,
        &format!(
            "{} --server http://{} --token {token} --lang en",
            bin("fleet-console").display(),
            server.http
        ),
    );
    let overview = console
        .wait_for("the overview with the site", "City service hall")
        .await;
    assert!(overview.contains("● live"), "{overview}");
    assert!(overview.contains("night-desk (operator)"), "{overview}");

    // Site → its cabinet's boxes → box 4 → open with a reason → seen opened.
    console.keys(&["Enter"]);
    console.wait_for("the cabinet's boxes", "4MF").await;
    console.keys(&["Tab", "Right", "Right", "Right", "o"]);
    console.wait_for("the open dialog", "Remote open").await;
    console.keys(&["Enter"]);
    console
        .wait_for("a reason demanded", "a reason is required")
        .await;
    console.text("citizen locked out at night");
    console.keys(&["Enter"]);
    let opened = console
        .wait_for("the open's lifecycle", "delivered → opened")
        .await;
    assert!(opened.contains(&format!("open {CAB} box 4")), "{opened}");
    let (_, audit) = admin.get(&format!("/api/v1/audit?device={CAB}")).await;
    let entry = audit["entries"]
        .as_array()
        .and_then(|e| {
            e.iter()
                .find(|e| e["action"] == json!("remote_open"))
                .cloned()
        })
        .expect("remote open audited");
    assert_eq!(
        (
            &entry["box"],
            &entry["reason"],
            &entry["actor"],
            &entry["result"]
        ),
        (
            &json!(4),
            &json!("citizen locked out at night"),
            &json!("night-desk"),
            &json!("opened")
        ),
        "{entry}"
    );

    // A forced door: the alarm appears live; the operator acknowledges it with a note.
    agent.send("open 2").await;
    console.keys(&["3"]);
    console.wait_for("the alarm on screen", "forced open").await;
    console.keys(&["a"]);
    console
        .wait_for("the acknowledge dialog", "Acknowledge alarm")
        .await;
    console.text("guard on the way");
    console.keys(&["Enter"]);
    console
        .wait_for("acknowledged on screen", "acknowledged")
        .await;
    let (_, a) = admin.get("/api/v1/alarms?kind=forced_open").await;
    assert_eq!(a["alarms"][0]["state"], json!("acknowledged"), "{a}");
    assert_eq!(a["alarms"][0]["ack_note"], json!("guard on the way"), "{a}");

    // The alarm's cabinet, looked at remotely: its doctor report, then its log lines.
    console.keys(&["d"]);
    let doctor = console
        .wait_for("the cabinet's doctor report", "all 6 checks pass")
        .await;
    assert!(doctor.contains("PASS  lock board"), "{doctor}");
    // Apart: Escape followed at once by a key reads as Alt+key.
    console.keys(&["Escape"]);
    tokio::time::sleep(Duration::from_millis(300)).await;
    console.keys(&["g"]);
    console
        .wait_for("the cabinet's log lines", "logging at info")
        .await;
    console.keys(&["Escape"]);
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Fleet: no rollouts yet, and the one cabinet runs its desired configuration.
    console.keys(&["8"]);
    // Waits for the configuration panel, drawn after the deployments list: a capture may
    // catch a redraw half done.
    let fleet = console
        .wait_for(
            "the fleet screen",
            "every device runs its desired configuration",
        )
        .await;
    assert!(fleet.contains("no deployments yet"), "{fleet}");

    // Usage: the hall's row with its hours and days; Planning: why there is no plan yet.
    console.keys(&["6"]);
    let usage = console
        .wait_for("the usage screen", "Occupancy per hour")
        .await;
    assert!(usage.contains("City service hall"), "{usage}");
    console.keys(&["7"]);
    // The server's reason (409, conflict) after the console's words; wrapped, so joined.
    let plan = console
        .wait_for("the planning screen without inputs", "No plan:")
        .await;
    let joined: String = plan.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        joined.contains("409 conflicts with the current state"),
        "{plan}"
    );
    assert!(joined.contains("no demand points yet"), "{plan}");

    // q quits and the process ends (tmux closes the session with it).
    console.keys(&["q"]);
    eventually(Duration::from_secs(10), "the console to exit", || async {
        (!console.alive()).then_some(())
    })
    .await;
}

/// Reads SSE events from a response until `pred` matches one; returns `(event, data)`.
pub(crate) async fn next_event(
    res: &mut reqwest::Response,
    buf: &mut String,
    pred: impl Fn(&str, &Value) -> bool,
) -> (String, Value) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        while let Some(end) = buf.find("\n\n") {
            let frame: String = buf.drain(..end + 2).collect();
            let mut event = String::new();
            let mut data = String::new();
            for line in frame.lines() {
                if let Some(v) = line.strip_prefix("event:") {
                    event = v.trim().to_owned();
                } else if let Some(v) = line.strip_prefix("data:") {
                    data.push_str(v.trim());
                }
            }
            let v: Value = serde_json::from_str(&data).unwrap_or(Value::Null);
            if pred(&event, &v) {
                return (event, v);
            }
        }
        let chunk = tokio::time::timeout_at(deadline, res.chunk())
            .await
            .expect("the awaited change notice")
            .expect("stream read")
            .expect("stream open");
        buf.push_str(&String::from_utf8_lossy(&chunk));
    }
}

#[tokio::test]
async fn the_change_stream_tells_what_changed() {
    let world = World::new(&[CAB]);
    let server = world.server();
    let api = server.api();
    let _agent = world.agent_ctl(CAB, server.mqtt, &[]);
    wait_online(&api, CAB).await;
    let http = reqwest::Client::new();
    let url = format!("http://{}/api/v1/stream", server.http);
    let refused = http.get(&url).send().await.expect("request");
    assert_eq!(refused.status(), 401, "the stream needs a token");
    let mut res = http
        .get(&url)
        .bearer_auth(crate::harness::ADMIN_TOKEN)
        .send()
        .await
        .expect("stream");
    assert_eq!(res.status(), 200);
    let mut buf = String::new();
    next_event(&mut res, &mut buf, |e, _| e == "hello").await;
    let (s, r) = api.open(CAB, 3, json!({"reason": "stream test"})).await;
    assert_eq!(s, 202, "{r}");
    let id = r["command_id"].as_str().expect("id").to_owned();
    // Every step of the command, ending in its outcome, then the door's device change.
    let (_, done) = next_event(&mut res, &mut buf, |e, v| {
        e == "command" && v["command_id"] == json!(id) && v["status"] == json!("opened")
    })
    .await;
    assert_eq!(done["device_id"], json!(CAB));
    next_event(&mut res, &mut buf, |e, v| {
        e == "device" && v["device_id"] == json!(CAB)
    })
    .await;
    // The overview the console draws from answers at once.
    let (s, o) = api.get("/api/v1/overview").await;
    assert_eq!(s, 200, "{o}");
    assert!(o["at"].as_i64().is_some() && o["sites"].is_array(), "{o}");
}

/// The same console for an operator who reads Chinese: `--lang zh-CN` (as `LANG=zh_CN.UTF-8`
/// would choose), every screen in Chinese, the remote open and the doctor report included.
#[tokio::test]
async fn the_console_speaks_chinese_to_an_operator_who_reads_it() {
    let world = World::new(&[CAB]);
    let server = world.server();
    let admin = server.api();
    let agent = hall_with_a_cabinet(&world, &server, "市政务服务大厅", "入口").await;
    let (s, t) = admin
        .post(
            "/api/v1/tokens",
            json!({"name": "值班台", "role": "operator"}),
        )
        .await;
    assert_eq!(s, 201, "{t}");
    let token = t["token"].as_str().expect("token");
    let console = Tmux::start(
        &format!("lf-console-zh-{}", std::process::id()),
        100,
        30,
        &format!(
            "env LANG=zh_CN.UTF-8 {} --server http://{} --token {token}",
            bin("fleet-console").display(),
            server.http
        ),
    );
    let overview = console
        .wait_for("the overview in Chinese", "市政务服务大厅")
        .await;
    for word in [
        "● 在线",
        "值班台 (操作员)",
        "1 总览",
        "3 告警",
        "站点",
        "空闲",
    ] {
        assert!(overview.contains(word), "{word}: {overview}");
    }
    console.keys(&["Enter"]);
    console.wait_for("the cabinet's boxes", "4MF").await;
    console.keys(&["Tab", "Right", "Right", "Right", "o"]);
    console.wait_for("the open dialog", "远程开箱").await;
    console.keys(&["Enter"]);
    console.wait_for("a reason demanded", "必须填写原因").await;
    console.text("citizen locked out");
    console.keys(&["Enter"]);
    console
        .wait_for("the open's lifecycle", "已送达 → 已开箱")
        .await;
    agent.send("open 2").await;
    console.keys(&["3"]);
    console.wait_for("the alarm in Chinese", "箱门被撬").await;
    console.keys(&["d"]);
    // The report is the cabinet's own (its agent reads English here); the frame is Chinese.
    let doctor = console.wait_for("the doctor report", "锁控板").await;
    assert!(doctor.contains("自检"), "{doctor}");
    console.keys(&["Escape"]);
    tokio::time::sleep(Duration::from_millis(300)).await;
    console.keys(&["q"]);
    eventually(Duration::from_secs(10), "the console to exit", || async {
        (!console.alive()).then_some(())
    })
    .await;
}
