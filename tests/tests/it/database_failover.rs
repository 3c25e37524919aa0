//! The database tier for real (issue 24): PostgreSQL with a synchronous standby and automatic
//! failover (Debian's pg_auto_failover), the server given both hosts. The primary's machine
//! dies under load: the standby is promoted, the server follows it by itself, and every
//! event is stored exactly once — none that was receipted is lost.

use std::time::{Duration, Instant};

use crate::faults::{answered_marks, assert_every_event_once, settled_marks, streaming_agents};
use crate::harness::{Api, AutoFailover, World, eventually, wait_online};

#[tokio::test]
#[ignore = "needs pg_auto_failover: run .ci/run, or apt-get install postgresql-15-auto-failover pg-auto-failover-cli and pass --include-ignored"]
async fn the_primary_dies_under_load_and_the_server_follows_the_promoted_standby() {
    const PER_AGENT: u64 = 3_000;
    let ids: Vec<String> = (0..4).map(|i| format!("cab-p{i}")).collect();
    let mut all: Vec<&str> = ids.iter().map(String::as_str).collect();
    all.push("cab-open");
    let world = World::new(&all);
    let db = AutoFailover::start();
    let url = db.url();
    let server = world.server_with("127.0.0.1:0", "127.0.0.1:0", &["--database-url", &url]);
    let api = server.api();
    let _opener = world.agent("cab-open", server.mqtt, &[]);
    wait_online(&api, "cab-open").await;
    let _agents = streaming_agents(&world, server.mqtt, &ids, 150, PER_AGENT);
    eventually(Duration::from_secs(60), "events stored", || async {
        (api.metric("lockerfleet_events_stored_total").await > 1_000.0).then_some(())
    })
    .await;

    let old = db.primary();
    db.kill9(old);
    let killed = Instant::now();
    // The first answer after the kill comes from the standby (the old primary is gone): its
    // marks are what was committed, and so replicated, before the kill. Storing again means
    // every mark rising past that — a commit on the promoted standby.
    let committed = loop {
        if let Some(marks) = answered_marks(&api, &ids).await {
            break marks;
        }
        assert!(
            killed.elapsed() < Duration::from_secs(90),
            "the API read nothing for 90 s after the primary died; the monitor says:\n{}",
            db.state()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    loop {
        let now = answered_marks(&api, &ids).await.unwrap_or_default();
        if now.len() == committed.len()
            && now
                .iter()
                .zip(&committed)
                .all(|((_, n), (_, b))| n > b || *n > PER_AGENT)
        {
            break;
        }
        assert!(
            killed.elapsed() < Duration::from_secs(90),
            "not storing 90 s after the primary died; the monitor says:\n{}",
            db.state()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!(
        "primary node{old} killed: every cabinet storing on the promoted standby after {:.1} s; the monitor says:\n{}",
        killed.elapsed().as_secs_f64(),
        db.state()
    );
    // The promoted standby commits alone until the old primary rejoins: receipts are held,
    // the cabinets keep those events.
    eventually(
        Duration::from_secs(30),
        "receipts held while the promoted standby is alone",
        || async { (api.metric("lockerfleet_receipts_held_total").await > 0.0).then_some(()) },
    )
    .await;
    let new = db.primary();
    assert_ne!(new, old, "the standby was promoted");
    let (status, body) = api
        .open(
            "cab-open",
            1,
            serde_json::json!({ "reason": "after a failover" }),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    let id = body["command_id"].as_str().expect("command id").to_owned();
    let done = api.wait_command(&id, Duration::from_secs(30)).await;
    assert_eq!(done["status"], "opened", "{done}");

    // Nothing committed before the kill is missing on the promoted standby (synchronous
    // replication), and what is stored is each device's events once, without a gap.
    let stored = prefixes(&db.node_url(new), &ids).await;
    for ((id, max), (_, before)) in stored.iter().zip(&committed) {
        assert!(
            max >= before,
            "{id}: {max} stored after the failover, {before} before it"
        );
    }

    // The old primary's machine comes back: it rejoins as the standby (rewound if it had
    // WAL the new primary never got), commits are on two machines again and every cabinet
    // gets its receipts.
    db.restart(old);
    let back = Instant::now();
    rejoined_and_whole(&db, &api, &ids, PER_AGENT).await;
    eprintln!(
        "old primary node{old} back as standby; every event receipted {:.1} s later ({} receipts held meanwhile)",
        back.elapsed().as_secs_f64(),
        api.metric("lockerfleet_receipts_held_total").await
    );
}

/// Each device's highest stored seq, after checking its events are exactly 1..=max, once.
async fn prefixes(url: &str, ids: &[String]) -> Vec<(String, u64)> {
    sqlx::any::install_default_drivers();
    let db = sqlx::AnyPool::connect(url)
        .await
        .expect("open the database");
    let mut out = Vec::new();
    for id in ids {
        let (rows, distinct, min, max): (i64, i64, Option<i64>, Option<i64>) = sqlx::query_as(
            "SELECT COUNT(*), COUNT(DISTINCT seq), MIN(seq), MAX(seq) FROM events WHERE device_id = $1",
        )
        .bind(id.as_str())
        .fetch_one(&db)
        .await
        .expect("count events");
        let max = max.unwrap_or(0);
        assert_eq!(
            (rows, distinct, min.unwrap_or(1)),
            (max, max, 1),
            "{id}: events must be 1..={max}, each once"
        );
        out.push((id.clone(), max as u64));
    }
    db.close().await;
    out
}

#[tokio::test]
#[ignore = "needs pg_auto_failover: run .ci/run, or apt-get install postgresql-15-auto-failover pg-auto-failover-cli and pass --include-ignored"]
async fn with_the_standby_down_receipts_wait_until_commits_are_on_two_machines() {
    const PER_AGENT: u64 = 2_000;
    let ids: Vec<String> = (0..3).map(|i| format!("cab-s{i}")).collect();
    let world = World::new(&ids.iter().map(String::as_str).collect::<Vec<_>>());
    let db = AutoFailover::start();
    let url = db.url();
    let server = world.server_with("127.0.0.1:0", "127.0.0.1:0", &["--database-url", &url]);
    let api = server.api();
    let _agents = streaming_agents(&world, server.mqtt, &ids, 50, PER_AGENT);
    eventually(Duration::from_secs(60), "events stored", || async {
        (api.metric("lockerfleet_receipts_sent_total").await > 10.0).then_some(())
    })
    .await;
    assert_eq!(api.metric("lockerfleet_receipts_held_total").await, 0.0);

    // The standby's machine dies. pg_auto_failover blocks commits until it calls the standby
    // unhealthy, then drops synchronous replication: from then on commits are on one machine,
    // and the server stores events but holds their receipts.
    let standby = 3 - db.primary();
    db.kill9(standby);
    let killed = Instant::now();
    while api.metric("lockerfleet_receipts_held_total").await == 0.0 {
        assert!(
            killed.elapsed() < Duration::from_secs(90),
            "no receipt held 90 s after the standby died; the monitor says:\n{}\nserver metrics: sent {} receipts, stored {} events",
            db.state(),
            api.metric("lockerfleet_receipts_sent_total").await,
            api.metric("lockerfleet_events_stored_total").await,
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!(
        "standby node{standby} killed: receipts held from {:.1} s on",
        killed.elapsed().as_secs_f64()
    );
    // The cabinets, unreceipted, keep their events and send them again (one batch in flight
    // waits for its receipt); each is stored once and its receipt held again.
    let sent = api.metric("lockerfleet_receipts_sent_total").await;
    let held = api.metric("lockerfleet_receipts_held_total").await;
    tokio::time::sleep(Duration::from_secs(8)).await;
    assert!(
        api.metric("lockerfleet_receipts_held_total").await > held,
        "the resent batches were stored and their receipts held too"
    );
    assert_eq!(
        api.metric("lockerfleet_receipts_sent_total").await,
        sent,
        "no receipt while commits are on one machine"
    );

    // The standby's machine comes back under load: it catches up, the monitor makes
    // replication synchronous again, and receipts go out for everything kept meanwhile.
    db.restart(standby);
    let back = Instant::now();
    while api.metric("lockerfleet_receipts_sent_total").await == sent {
        assert!(
            back.elapsed() < Duration::from_secs(120),
            "no receipt 120 s after the standby came back; the monitor says:\n{}\nits log:\n{}",
            db.state(),
            db.log_tail(standby)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!(
        "standby node{standby} back: receipts sent again after {:.1} s",
        back.elapsed().as_secs_f64()
    );
    rejoined_and_whole(&db, &api, &ids, PER_AGENT).await;
}

/// Once every cabinet has everything receipted: each device's events are stored once,
/// without a gap, on both machines (the rejoined one holds them too).
async fn rejoined_and_whole(db: &AutoFailover, api: &Api, ids: &[String], simulated: u64) {
    let marks = settled_marks(api, ids, simulated, Duration::from_secs(180)).await;
    for node in [1, 2] {
        let url = db.node_url(node);
        eventually(
            Duration::from_secs(30),
            "the standby replayed every event",
            || async {
                prefixes(&url, ids)
                    .await
                    .iter()
                    .zip(&marks)
                    .all(|((_, stored), (_, mark))| stored == mark)
                    .then_some(())
            },
        )
        .await;
        assert_every_event_once(&url, &marks, simulated, &format!("on node{node}")).await;
    }
}
