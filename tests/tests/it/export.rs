//! Time series export against a real InfluxDB v2 write API: VictoriaMetrics (apt) accepts
//! `POST /api/v2/write` and gives points back through `/api/v1/export`. The server starts
//! while the database is down, spools, and once it is up every door event arrives with its
//! value and time; device health and usage rollups arrive as well.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::{Api, World, eventually, reserved_port, wait_online};

pub(crate) const CAB: &str = "cab-export";

/// A VictoriaMetrics process on `addr`, storing in `dir`; killed on drop.
struct Victoria(Child);

impl Victoria {
    fn start(addr: SocketAddr, dir: &Path) -> Victoria {
        let bin = "victoria-metrics";
        let child = Command::new(bin)
            .arg(format!("-httpListenAddr={addr}"))
            .arg(format!("-storageDataPath={}", dir.display()))
            .arg("-loggerLevel=ERROR")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start {bin} ({e}): install it with `apt-get install victoria-metrics` (.ci/run does)")
            });
        Victoria(child)
    }
}

impl Drop for Victoria {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Series matching `selector`, as VictoriaMetrics exports them (one JSON object per line).
async fn export(client: &reqwest::Client, vm: SocketAddr, selector: &str) -> Vec<Value> {
    let encoded: String = selector
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect();
    let Ok(r) = client
        .get(format!("http://{vm}/api/v1/export?match[]={encoded}"))
        .send()
        .await
    else {
        return vec![];
    };
    let text = r.text().await.unwrap_or_default();
    text.lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

#[tokio::test]
#[ignore = "needs victoria-metrics: run .ci/run, or apt-get install victoria-metrics and pass --include-ignored"]
async fn points_spool_while_influx_is_down_and_all_arrive_when_it_is_up() {
    let world = World::new(&[CAB]);
    let vm_addr = SocketAddr::from(([127, 0, 0, 1], reserved_port().expect("free port")));
    let config = world.path("server.toml");
    std::fs::write(
        &config,
        format!(
            "influx_url = 'http://{vm_addr}'\ninflux_org = 'lockerfleet'\n\
             influx_bucket = 'fleet'\ninflux_token = 'test-token'\ninflux_usage_secs = 1\n"
        ),
    )
    .expect("config");
    let server = world.server_with(
        "127.0.0.1:0",
        "127.0.0.1:0",
        &["--config", &config.display().to_string()],
    );
    let api = server.api();
    site_and_cabinet(&api).await;
    let agent = world.agent_ctl(CAB, server.mqtt, &["--heartbeat-secs", "1"]);
    wait_online(&api, CAB).await;

    // InfluxDB is down: door events are stored, their points wait in the spool.
    // Each change waits until the server has stored it, so a busy machine (the tests run in
    // parallel) cannot make the agent's door poll miss a short open.
    let doors = || async {
        api.events(CAB)
            .await
            .into_iter()
            .filter(|e| e["kind"] == json!("door") && e["box"] == json!(2))
            .count()
    };
    for n in 0..10 {
        agent
            .send(if n % 2 == 0 { "open 2" } else { "close 2" })
            .await;
        eventually(
            Duration::from_secs(20),
            "the door change stored",
            || async { (doors().await == n + 1).then_some(()) },
        )
        .await;
    }
    eventually(
        Duration::from_secs(20),
        "failed writes and a spool",
        || async {
            let errors = api.metric("lockerfleet_influx_write_errors_total").await;
            let spool = api.metric("lockerfleet_influx_spool_points").await;
            (errors > 0.0 && spool >= 10.0).then_some(())
        },
    )
    .await;

    let dir = world.path("victoria");
    let _vm = Victoria::start(vm_addr, &dir);
    let stored: Vec<Value> = eventually(Duration::from_secs(10), "ten door events", || async {
        let doors: Vec<Value> = api
            .events(CAB)
            .await
            .into_iter()
            .filter(|e| e["kind"] == json!("door") && e["box"] == json!(2))
            .collect();
        (doors.len() == 10).then_some(doors)
    })
    .await;
    let client = reqwest::Client::new();
    let selector = format!("{{__name__=\"door_open\",device=\"{CAB}\",box=\"2\"}}");
    let series = eventually(
        Duration::from_secs(30),
        "door points in VictoriaMetrics",
        || {
            let (client, selector) = (&client, &selector);
            async move {
                let s = export(client, vm_addr, selector).await;
                let n = s
                    .first()
                    .and_then(|x| x["values"].as_array().map(Vec::len))
                    .unwrap_or(0);
                (n >= 10).then_some(s)
            }
        },
    )
    .await;
    assert_eq!(series.len(), 1, "one series: {series:?}");
    assert_eq!(series[0]["metric"]["site"], json!("hall"), "site tag");
    // Value and time of each stored event, as InfluxDB has them.
    let values: Vec<f64> = series[0]["values"]
        .as_array()
        .expect("values")
        .iter()
        .filter_map(Value::as_f64)
        .collect();
    let times: Vec<i64> = series[0]["timestamps"]
        .as_array()
        .expect("timestamps")
        .iter()
        .filter_map(Value::as_i64)
        .collect();
    let expected: Vec<(i64, f64)> = stored
        .iter()
        .map(|e| {
            let open = e["body"]["open"].as_bool().expect("open");
            (e["ts"].as_i64().expect("ts"), if open { 1.0 } else { 0.0 })
        })
        .collect();
    let got: Vec<(i64, f64)> = times.into_iter().zip(values).collect();
    assert_eq!(got, expected);

    // Health from heartbeats and usage from the rollups come too.
    let health = format!("{{__name__=\"device_health_uptime_s\",device=\"{CAB}\"}}");
    eventually(Duration::from_secs(30), "device health points", || {
        let (client, health) = (&client, &health);
        async move { (!export(client, vm_addr, health).await.is_empty()).then_some(()) }
    })
    .await;
    let usage = "{__name__=\"usage_box_hours\",site=\"hall\",kind=\"service_hall\"}";
    let series = eventually(Duration::from_secs(30), "usage points", || {
        let client = &client;
        async move {
            let s = export(client, vm_addr, usage).await;
            s.iter()
                .any(|x| {
                    x["values"]
                        .as_array()
                        .is_some_and(|v| v.iter().any(|v| v.as_f64().unwrap_or(0.0) > 0.0))
                })
                .then_some(s)
        }
    })
    .await;
    // Usage points sit at hour starts.
    let ts = series[0]["timestamps"][0].as_i64().expect("usage time");
    assert_eq!(ts % 3_600_000, 0, "usage at an hour start: {ts}");

    // Everything spooled was written; nothing was dropped.
    eventually(Duration::from_secs(10), "an empty spool", || async {
        (api.metric("lockerfleet_influx_spool_points").await == 0.0).then_some(())
    })
    .await;
    assert_eq!(
        api.metric("lockerfleet_influx_points_dropped_total").await,
        0.0
    );
    assert!(api.metric("lockerfleet_influx_points_written_total").await >= 10.0);
}

pub(crate) async fn site_and_cabinet(api: &Api) {
    let (s, body) = api
        .post(
            "/api/v1/sites",
            json!({"id": "hall", "kind": "service_hall", "name": "Hall", "address": "1 Square",
                   "lat": 23.1, "lon": 113.2}),
        )
        .await;
    assert_eq!(s, 201, "{body}");
    let boxes: Vec<Value> = (1..=8)
        .map(|i| json!({"box": i, "size": "M", "accessible": false}))
        .collect();
    let (s, body) = api
        .put(
            &format!("/api/v1/cabinets/{CAB}"),
            json!({"site_id": "hall", "name": "Entrance", "boxes": boxes}),
        )
        .await;
    assert_eq!(s, 200, "{body}");
}
