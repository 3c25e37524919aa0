//! The demo as a newcomer meets it: `fleet-sim demo` (the same as `lockerfleet demo`) in a
//! terminal, its history written first, then the console: the overview has today's usage
//! rate, the usage screen a saturated hall, the planning screen a plan from measured usage,
//! and the work lists overdue items — before anything of the live day could fill them.

use std::time::Duration;

use serde_json::Value;

use crate::harness::{Tmux, bin};

/// `GET {api}{path}` with the demo's admin token, as JSON.
async fn get_json(api: &str, token: &str, path: String) -> Value {
    reqwest::Client::new()
        .get(format!("{api}{path}"))
        .bearer_auth(token.trim())
        .send()
        .await
        .expect("API answers")
        .json::<Value>()
        .await
        .expect("JSON")
}

/// The first `http://...` address on the console's header line.
fn api_of(screen: &str) -> Option<String> {
    let start = screen.find("http://")?;
    let rest = &screen[start..];
    Some(rest[..rest.find(char::is_whitespace).unwrap_or(rest.len())].to_owned())
}

#[tokio::test]
async fn the_demo_opens_on_two_weeks_of_figures() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().expect("tempdir");
    let console = Tmux::start(
        &format!("lf-demo-{}", std::process::id()),
        150,
        40,
        &format!(
            "{} demo --lang en --cabinets 8 --sites 2 --stations 0 --history-days 14 --data-dir {}",
            bin("fleet-sim").display(),
            dir.path().join("demo").display()
        ),
    );
    // The history is written before the console opens (a debug build takes longer).
    let overview = console
        .wait_longer_for(
            Duration::from_secs(240),
            "the console on the demo",
            "enterprise cluster 2",
        )
        .await;
    let hall = overview
        .lines()
        .find(|l| l.contains("service hall 1"))
        .expect("the hall's row");
    let today: Vec<u32> = hall
        .split_whitespace()
        .filter_map(|w| w.strip_suffix('%')?.parse().ok())
        .collect();
    assert!(
        today.iter().any(|p| *p >= 50),
        "the hall's usage rate today is well above zero: {hall}\n{overview}"
    );

    console.keys(&["6"]);
    let usage = console
        .wait_for("the usage screen with a saturated hall", "SATURATED")
        .await;
    assert!(usage.contains("service hall 1"), "{usage}");
    console.keys(&["7"]);
    let plan = console
        .wait_for(
            "the planning screen with a plan",
            "Where the next clusters go",
        )
        .await;
    assert!(plan.contains("Erlang"), "{plan}");
    // The plan on the map: the demo city's demand, its sites and the first recommendation.
    console.keys(&["m"]);
    // Waited for by a site's mark, drawn last: a capture mid-redraw may hold the title only.
    let map = console.wait_for("the planning map", "■").await;
    assert!(
        map.contains("◆1") && map.contains("walking radius"),
        "{map}"
    );
    console.keys(&["m"]);

    // Through the API behind it: overdue items wait, and no occupancy sensor contradicts
    // what the history left in the boxes.
    let api = api_of(&overview).expect("the API address on the header");
    let token =
        std::fs::read_to_string(dir.path().join("demo/server/admin-token")).expect("admin token");
    let get = |path: String| get_json(&api, &token, path);
    let overdue = get("/api/v1/worklists/overdue".into()).await;
    assert!(
        overdue["items"].as_array().is_some_and(|a| !a.is_empty()),
        "{overdue}"
    );
    let faults = get("/api/v1/alarms?kind=sensor_fault&state=all".into()).await;
    assert_eq!(
        faults["alarms"].as_array().map(Vec::len),
        Some(0),
        "{faults}"
    );
    let plan = get("/api/v1/planning/recommendations".into()).await;
    assert!(
        plan["measured_dwell_hours"]
            .as_f64()
            .is_some_and(|h| h > 1.0),
        "the plan is sized from the measured dwell: {plan}"
    );
    // The same plan for QGIS or a web map: GeoJSON, one point per recommended site.
    let geo = get("/api/v1/planning/recommendations?format=geojson".into()).await;
    assert_eq!(geo["type"], "FeatureCollection", "{geo}");
    let recommended = geo["features"]
        .as_array()
        .map(|f| {
            f.iter()
                .filter(|f| f["properties"]["kind"] == "recommended_site")
                .count()
        })
        .unwrap_or(0);
    assert_eq!(
        Some(recommended),
        plan["recommendations"].as_array().map(Vec::len),
        "{geo}"
    );

    console.keys(&["q"]);
    crate::harness::eventually(Duration::from_secs(30), "the demo to stop", || async {
        (!console.alive()).then_some(())
    })
    .await;
}

/// `lockerfleet demo --lang zh-CN` (headless): the status lines in Chinese, and the fleet is
/// the source document's service centre — a 政务服务大厅, three 企业聚集区 and a 驿站, with
/// Chinese names for sites and helpers, as the API serves them to any client.
#[tokio::test]
async fn the_demo_runs_as_a_chinese_service_centre() {
    use std::io::BufRead;
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut child = std::process::Command::new(bin("fleet-sim"))
        .args(["demo", "--headless", "--lang", "zh-CN", "--cabinets", "10"])
        .args(["--sites", "5", "--stations", "1", "--history-days", "0"])
        .args(["--duration", "30", "--status-every", "1", "--data-dir"])
        .arg(dir.path().join("demo"))
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("fleet-sim demo");
    // Lines read on a thread of their own (the read blocks), handed over as they come.
    let stdout = child.stdout.take().expect("stdout");
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut seen: Vec<String> = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(120), async {
        while let Some(l) = rx.recv().await {
            let done = l.contains("告警：");
            seen.push(l);
            if done {
                break;
            }
        }
    })
    .await;
    let out = seen.join("\n");
    assert!(read.is_ok(), "no status lines in 120 s:\n{out}");
    assert!(out.contains("LockerFleet 演示"), "{out}");
    assert!(out.contains("设备在线"), "{out}");
    let api = api_of(&out).expect("the API address");
    let token =
        std::fs::read_to_string(dir.path().join("demo/server/admin-token")).expect("admin token");
    let get = |path: &'static str| get_json(&api, &token, path.to_owned());
    let sites = get("/api/v1/sites").await;
    let sites = sites["sites"].as_array().cloned().unwrap_or_default();
    let of_kind = |k: &str| {
        sites
            .iter()
            .filter(|s| s["kind"] == k)
            .filter_map(|s| s["name"].as_str().map(str::to_owned))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        of_kind("service_hall"),
        ["市民中心政务服务大厅"],
        "{sites:?}"
    );
    let clusters = of_kind("enterprise_cluster");
    assert_eq!(clusters.len(), 3, "{sites:?}");
    assert!(
        clusters.iter().all(|n| n.ends_with("企业聚集区")),
        "{clusters:?}"
    );
    assert!(
        of_kind("station").iter().all(|n| n.ends_with("驿站")),
        "{sites:?}"
    );
    let staff = get("/api/v1/staff").await;
    assert!(staff.to_string().contains("张敏"), "{staff}");
    let _ = child.kill();
    let _ = child.wait();
}
