//! The whole clustered topology losing two machines at once (issue 24): a RabbitMQ node and
//! the PostgreSQL primary killed together under load, with two server replicas on the
//! cluster and pg_auto_failover. Cabinets keep opening boxes for their codes throughout,
//! every event is stored exactly once, and a remote open is done once or reported failed —
//! never done twice.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::broker_cluster::every_device_progresses;
use crate::faults::{assert_every_event_once, settled_marks, streaming_agents_with};
use crate::flows::{CAB, setup, wait_codes_synced};
use crate::harness::{Api, AutoFailover, RabbitCluster, Receiver, World, eventually, wait_online};

/// A drop-off at the hall; its one-time code.
async fn dropoff(platform: &Api, case: &str) -> (String, String) {
    let (s, r) = platform
        .post(
            "/api/v1/reservations",
            json!({"flow": "dropoff", "case_number": case, "phone": "13812345678",
                   "site_id": "hall", "size": "S"}),
        )
        .await;
    assert_eq!(s, 201, "{r}");
    (
        r["reservation_id"].as_str().expect("id").to_owned(),
        r["code"].as_str().expect("code").to_owned(),
    )
}

/// The code typed at the cabinet opens a box; the person closes it again.
async fn code_opens(cabinet: &crate::harness::AgentCtl, code: &str, when: &str) {
    let out = cabinet.send(&format!("code {code}")).await;
    assert_eq!(out["outcome"], "opened", "code {when}: {out}");
    let b = out["box"].as_u64().expect("box");
    cabinet.send(&format!("close {b}")).await;
}

/// Door openings of box `b` the cabinet recorded (from its stored events).
async fn openings(api: &Api, b: u64) -> usize {
    api.events(CAB)
        .await
        .iter()
        .filter(|e| e["kind"] == "door" && e["body"]["box"] == b && e["body"]["open"] == true)
        .count()
}

#[tokio::test]
#[ignore = "needs rabbitmq-server and pg_auto_failover: run .ci/run, or apt-get install rabbitmq-server postgresql-15-auto-failover pg-auto-failover-cli and pass --include-ignored"]
async fn a_broker_node_and_the_database_primary_killed_together_lose_nothing() {
    const AGENTS: usize = 4;
    const PER_AGENT: u64 = 6_000;
    let ids: Vec<String> = (0..AGENTS).map(|i| format!("cab-w{i}")).collect();
    let mut all: Vec<&str> = ids.iter().map(String::as_str).collect();
    all.push(CAB);
    let world = World::new(&all);
    let db = AutoFailover::start();
    let cluster = RabbitCluster::start(&world, 3);
    let sms = Receiver::start(0).await;
    let (url, dburl, config, sms_url) = (
        cluster.amqps_url(),
        db.url(),
        crate::external_broker::replica_config(&world),
        sms.url("/sms"),
    );
    let flags = [
        "--external-broker",
        url.as_str(),
        "--database-url",
        dburl.as_str(),
        "--config",
        config.as_str(),
        "--sms-gateway-url",
        sms_url.as_str(),
    ];
    // One after the other: the first creates the schema and the master secret.
    let a = world.ready_replica("replica-a", &flags).await;
    let b = world.ready_replica("replica-b", &flags).await;
    let (api_a, api) = (a.api(), b.api());

    let platform = setup(&api).await;
    let servers = cluster.agent_servers();
    let cabinet = world.agent_ctl(CAB, cluster.mqtt[0], &["--server", &servers]);
    let _agents = streaming_agents_with(
        &world,
        cluster.mqtt[0],
        &ids,
        150,
        PER_AGENT,
        &["--server", &servers],
    );
    wait_online(&api, CAB).await;
    let mut reservations = Vec::new();
    for n in 0..3 {
        reservations.push(dropoff(&platform, &format!("GZ-2026-W{n}")).await);
    }
    wait_codes_synced(&api).await;
    code_opens(&cabinet, &reservations[0].1, "before the kills").await;
    eventually(Duration::from_secs(60), "events stored", || async {
        let stored = api_a.metric("lockerfleet_events_stored_total").await
            + api.metric("lockerfleet_events_stored_total").await;
        (stored > 2_000.0).then_some(())
    })
    .await;

    // A remote open asked for just before the kills, its outcome not yet known.
    let (status, body) = api
        .open(CAB, 6, json!({ "reason": "just before the kills" }))
        .await;
    assert_eq!(status, 202, "{body}");
    let mut asked = vec![(6, body["command_id"].as_str().expect("id").to_owned())];

    // Two machines die at once: broker node 1 (the agents' first) and the database primary.
    let primary = db.primary();
    cluster.kill9(1);
    db.kill9(primary);
    let killed = Instant::now();

    // The cabinet verifies codes by itself: a code opens its box while both are down.
    code_opens(
        &cabinet,
        &reservations[1].1,
        "with a broker node and the database down",
    )
    .await;
    // One asked for during the failover; the API may refuse it (503) while no database answers.
    let (status, body) = api
        .open(CAB, 7, json!({ "reason": "during the failover" }))
        .await;
    match status {
        202 => asked.push((7, body["command_id"].as_str().expect("id").to_owned())),
        503 => eprintln!("the remote open asked during the failover: refused (503)"),
        other => panic!("remote open during the failover: {other} {body}"),
    }

    let storing = every_device_progresses(&api, &ids, PER_AGENT).await;
    eprintln!(
        "broker node 1 and database node{primary} killed: every cabinet storing again after {storing:.1} s (as measured from the kill: {:.1} s)",
        killed.elapsed().as_secs_f64()
    );
    eventually(
        Duration::from_secs(30),
        "receipts held while the promoted database is alone",
        // By whichever replica reads the cabinets' partitions now (either may hold them all).
        || async {
            let held = api_a.metric("lockerfleet_receipts_held_total").await
                + api.metric("lockerfleet_receipts_held_total").await;
            (held > 0.0).then_some(())
        },
    )
    .await;
    code_opens(&cabinet, &reservations[2].1, "after the failover").await;
    let (status, body) = api
        .open(CAB, 8, json!({ "reason": "after the failover" }))
        .await;
    assert_eq!(status, 202, "{body}");
    let after = body["command_id"].as_str().expect("command id").to_owned();
    let done = api.wait_command(&after, Duration::from_secs(30)).await;
    assert_eq!(done["status"], "opened", "{done}");
    cabinet.send("close 8").await;

    // Both machines come back and rejoin; then nothing is lost or doubled.
    cluster.restart(1);
    db.restart(primary);
    let marks = settled_marks(&api, &ids, PER_AGENT, Duration::from_secs(240)).await;
    let new = db.primary();
    assert_ne!(new, primary, "the standby was promoted");
    assert_every_event_once(
        &db.node_url(new),
        &marks,
        PER_AGENT,
        "broker node 1 and the database primary killed together",
    )
    .await;
    assert_every_event_once(
        &db.node_url(primary),
        &marks,
        PER_AGENT,
        "on the old primary, rejoined as standby",
    )
    .await;

    // What the cabinet did while the server could not hear it reached it once: each code's
    // box taken (the drop-offs are in their boxes), and the remote opens done at most once.
    for (id, _) in &reservations {
        eventually(Duration::from_secs(60), "drop-off in its box", || async {
            let (_, v) = platform.get(&format!("/api/v1/items/{id}")).await;
            (v["item"]["state"] == "in_box").then_some(())
        })
        .await;
    }
    // Each remote open asked around the kills is done once or reported failed, never twice.
    for (b, id) in &asked {
        let outcome: Value = api.wait_command(id, Duration::from_secs(120)).await;
        let status = outcome["status"].as_str().unwrap_or_default().to_owned();
        let opened = openings(&api, *b).await;
        match status.as_str() {
            "opened" => assert_eq!(opened, 1, "box {b} opened once: {outcome}"),
            "failed" | "expired" => assert_eq!(opened, 0, "box {b} not opened: {outcome}"),
            other => panic!("the open of box {b} ended {other}: {outcome}"),
        }
        eprintln!("the remote open of box {b} asked around the kills: {status}");
    }
    assert_eq!(
        openings(&api, 8).await,
        1,
        "the open after the failover, once"
    );
    for id in &ids {
        wait_online(&api, id).await;
    }
}
