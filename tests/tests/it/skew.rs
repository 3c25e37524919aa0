//! Version skew and a rolling upgrade (issue 25), against the previous release's own binaries
//! (`tests/previous-release`, built by `.ci/previous-release`): its agent on this server and
//! this agent on its server each do what PROTOCOL.md promises — the cabinet's events stored
//! once and receipted, codes verified at the cabinet, remote opens — and two server replicas
//! on PostgreSQL are upgraded one at a time while a cabinet streams and remote opens go on.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::flows::{CAB, dropoff_at_hall, setup, wait_codes_synced, wait_state};
use crate::harness::{
    AgentCtl, Api, Mosquitto, PrivatePg, World, eventually, previous, wait_online,
};

/// The service through one cabinet: a drop-off code typed at it opens its box and moves the
/// item; a remote open through the API opens a box; every event the agent numbered is
/// stored, with no gap.
async fn the_service_works(admin: &Api, agent: &AgentCtl) {
    let platform = setup(admin).await;
    wait_online(admin, CAB).await;
    wait_codes_synced(admin).await;
    let r = dropoff_at_hall(&platform, "GZ-SKEW-1").await;
    wait_codes_synced(admin).await;
    let code = r["code"].as_str().expect("code");
    let b = r["box"].as_u64().expect("box");
    let out = agent.send(&format!("code {code}")).await;
    assert_eq!(
        out,
        json!({"outcome": "opened", "box": b, "status": "opened"})
    );
    agent.send(&format!("close {b}")).await;
    wait_state(
        &platform,
        r["reservation_id"].as_str().expect("id"),
        "in_box",
    )
    .await;

    let (s, cmd) = admin.open(CAB, 8, json!({"reason": "version skew"})).await;
    assert_eq!(s, 202, "{cmd}");
    let done = admin
        .wait_command(
            cmd["command_id"].as_str().expect("id"),
            Duration::from_secs(20),
        )
        .await;
    assert_eq!(done["status"], "opened", "{done}");

    // Everything numbered is stored once, from 1 up to the receipted mark.
    let seqs = eventually(
        Duration::from_secs(20),
        "events stored up to the mark",
        || async {
            let mark = admin.device(CAB).await?["acked_seq"].as_u64()?;
            let seqs: Vec<u64> = admin
                .events(CAB)
                .await
                .iter()
                .filter_map(|e| e["seq"].as_u64())
                .collect();
            (mark > 0 && seqs.len() as u64 == mark).then_some(seqs)
        },
    )
    .await;
    let mut sorted = seqs.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, (1..=seqs.len() as u64).collect::<Vec<_>>());
    let (s, gaps) = admin.get("/api/v1/system/event-gaps").await;
    if s == 200 {
        assert_eq!(gaps["gaps"], json!([]), "{gaps}");
    }
}

#[tokio::test]
#[ignore = "needs the previous release's binaries: run .ci/run, or .ci/previous-release and pass --include-ignored"]
async fn the_previous_releases_agent_works_with_this_server() {
    let world = World::new(&[CAB]);
    let server = world.server();
    let agent = world.agent_ctl_bin(
        &previous("device-agent"),
        CAB,
        server.mqtt,
        &["--fake-close-after-ms", "60000"],
    );
    the_service_works(&server.api(), &agent).await;
}

#[tokio::test]
#[ignore = "needs the previous release's binaries: run .ci/run, or .ci/previous-release and pass --include-ignored"]
async fn this_agent_works_with_the_previous_releases_server() {
    let world = World::new(&[CAB]);
    let server = world.server_bin(&previous("fleet-server"), &[]);
    let agent = world.agent_ctl(CAB, server.mqtt, &["--fake-close-after-ms", "60000"]);
    the_service_works(&server.api(), &agent).await;
}

/// The command's outcome, asked of whichever replica answers (one may be restarting).
async fn outcome(apis: &[Api; 2], id: &str) -> Result<String, String> {
    let until = Instant::now() + Duration::from_secs(30);
    let mut last = String::new();
    while Instant::now() < until {
        for api in apis {
            let path = format!("/api/v1/commands/{id}");
            if let Some((200, cmd)) = api.try_send(reqwest::Method::GET, &path, None).await {
                let status = cmd["status"].as_str().unwrap_or_default().to_owned();
                if crate::harness::COMMAND_OUTCOMES.contains(&status.as_str()) {
                    return Ok(status);
                }
                last = cmd.to_string();
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(format!("no outcome within 30 s: {last}"))
}

/// Remote opens one after the other through whichever replica answers, until told to stop:
/// (opens asked, the ones that did not end `opened`, the longest wait for a replica to take
/// one).
async fn keep_opening(
    apis: [Api; 2],
    stop: tokio::sync::watch::Receiver<bool>,
) -> (u32, Vec<String>, Duration) {
    let (mut asked, mut failed, mut longest) = (0u32, Vec::new(), Duration::ZERO);
    let path = format!("/api/v1/devices/{CAB}/boxes/3/open");
    while !*stop.borrow() {
        let started = Instant::now();
        let mut taken = None;
        // A replica being restarted refuses the connection: the other takes it.
        while taken.is_none() && started.elapsed() < Duration::from_secs(30) {
            for api in &apis {
                let body = json!({"reason": "rolling upgrade"});
                if let Some((202, cmd)) =
                    api.try_send(reqwest::Method::POST, &path, Some(body)).await
                    && let Some(id) = cmd["command_id"].as_str()
                {
                    taken = Some(id.to_owned());
                    break;
                }
            }
            if taken.is_none() {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        longest = longest.max(started.elapsed());
        asked += 1;
        match taken {
            Some(id) => match outcome(&apis, &id).await {
                Ok(s) if s == "opened" => {}
                other => failed.push(format!("{id}: {other:?}")),
            },
            None => failed.push("no replica took the open for 30 s".into()),
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    (asked, failed, longest)
}

#[tokio::test]
#[ignore = "needs mosquitto, PostgreSQL and the previous release's binaries: run .ci/run, or .ci/previous-release and pass --include-ignored"]
async fn replicas_upgraded_one_at_a_time_on_postgresql_keep_the_service_up() {
    const EVENTS: u64 = 1_500;
    let world = World::new(&[CAB]);
    let pg = PrivatePg::start(&world.path("pg"));
    let broker = Mosquitto::start(&world);
    let (url, db, config) = (
        broker.url(),
        pg.url(),
        crate::external_broker::replica_config(&world),
    );
    let flags = [
        "--external-broker",
        url.as_str(),
        "--database-url",
        db.as_str(),
        "--config",
        config.as_str(),
    ];
    // Each replica keeps its HTTP address across its restart, as a configured one would.
    let (http_a, http_b) = (
        format!(
            "127.0.0.1:{}",
            crate::harness::reserved_port().expect("port")
        ),
        format!(
            "127.0.0.1:{}",
            crate::harness::reserved_port().expect("port")
        ),
    );
    let flags_a = [&flags[..], &["--http-listen", http_a.as_str()]].concat();
    let flags_b = [&flags[..], &["--http-listen", http_b.as_str()]].concat();
    let old = previous("fleet-server");
    let mut a = world.ready_replica_bin(&old, "replica-a", &flags_a).await;
    let mut b = world.ready_replica_bin(&old, "replica-b", &flags_b).await;
    let _agent = world.agent(
        CAB,
        broker.addr,
        &[
            "--fake-close-after-ms",
            "100",
            "--fake-activity-per-sec",
            "40",
            "--fake-activity-limit",
            &EVENTS.to_string(),
        ],
    );
    wait_online(&a.api(), CAB).await;
    let (api_a, api_b) = (a.api(), b.api());
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let opener = tokio::spawn(keep_opening([api_a.clone(), api_b.clone()], stop_rx));
    tokio::time::sleep(Duration::from_secs(3)).await;

    // One at a time, as a service manager restarts them: stopped, the new binary started on
    // the same data (the first new one migrates the schema under the old one still running).
    a.terminate();
    let a2 = world.ready_replica("replica-a", &flags_a).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    b.terminate();
    let b2 = world.ready_replica("replica-b", &flags_b).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop_tx.send(true).expect("stop");
    let (asked, failed, longest) = opener.await.expect("opener");
    eprintln!(
        "{asked} remote opens during the upgrade; the longest wait for a replica {longest:?}"
    );
    assert!(asked >= 10, "only {asked} opens");
    if !failed.is_empty() {
        for log in ["replica-a.log", "replica-b.log", "hall-cab-1.log"] {
            let text = std::fs::read_to_string(world.path(log)).unwrap_or_default();
            eprintln!(
                "---- {log}\n{}",
                text.lines()
                    .filter(|l| failed.iter().any(|f| l.contains(&f[..32])))
                    .collect::<Vec<_>>()
                    .join("\n")
            );
        }
        eprintln!("kept {}", world.dir.path().display());
        std::mem::forget(world);
    }
    assert!(
        failed.is_empty(),
        "opens that failed during the upgrade: {failed:?}"
    );

    // Both on the new version lead and follow, and the stream was stored once, whole.
    let leaders =
        a2.api().metric("lockerfleet_leader").await + b2.api().metric("lockerfleet_leader").await;
    assert_eq!(leaders, 1.0);
    let ids = vec![CAB.to_owned()];
    let marks =
        crate::faults::settled_marks(&a2.api(), &ids, EVENTS, Duration::from_secs(120)).await;
    crate::faults::assert_every_event_once(&db, &marks, EVENTS, "after the rolling upgrade").await;
}
