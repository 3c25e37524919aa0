//! Faults injected for real: the server killed with SIGKILL at random moments while ten
//! agents stream 100,000 events. Every event must be in the database exactly once.
//!
//! The moments are drawn from a seed printed at the start; `LOCKERFLEET_FAULT_SEED=N`
//! replays a run.

use std::time::{Duration, Instant};

use crate::harness::{Api, World, eventually, wait_online};

const AGENTS: usize = 10;
/// Occupancy changes each agent makes; with its `started` event, `EVENTS + 1` per device.
const EVENTS: u64 = 10_000;
const KILLS: usize = 3;

/// xorshift64*: enough to spread kill moments, and replayable from the printed seed.
struct Moments(u64);

impl Moments {
    fn new() -> Moments {
        let seed = std::env::var("LOCKERFLEET_FAULT_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos() as u64)
                    .unwrap_or(7)
            })
            .max(1);
        eprintln!("fault moments from LOCKERFLEET_FAULT_SEED={seed}");
        Moments(seed)
    }

    /// Uniform in `0..n`.
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n.max(1)
    }
}

/// Events the server has receipted, summed over the devices (from each device's mark).
async fn receipted(api: &Api, ids: &[String]) -> u64 {
    let (_, body) = api.get("/api/v1/devices").await;
    body["devices"]
        .as_array()
        .map(|ds| {
            ds.iter()
                .filter(|d| {
                    d["id"]
                        .as_str()
                        .is_some_and(|id| ids.iter().any(|x| x == id))
                })
                .filter_map(|d| d["acked_seq"].as_u64())
                .sum()
        })
        .unwrap_or(0)
}

#[tokio::test]
async fn a_server_killed_at_random_moments_under_load_stores_every_event_once() {
    let ids: Vec<String> = (0..AGENTS).map(|i| format!("cab-k{i:02}")).collect();
    let world = World::new(&ids.iter().map(String::as_str).collect::<Vec<_>>());
    let mut server = world.server();
    let (mqtt, http) = (server.mqtt.to_string(), server.http.to_string());
    let limit = EVENTS.to_string();
    let _agents: Vec<_> = ids
        .iter()
        .map(|id| {
            world.agent(
                id,
                server.mqtt,
                &[
                    "--fake-activity-per-sec",
                    "1000",
                    "--fake-activity-limit",
                    &limit,
                ],
            )
        })
        .collect();
    let total = (EVENTS + 1) * AGENTS as u64;
    let mut moments = Moments::new();
    let started = Instant::now();
    for kill in 0..KILLS {
        // Somewhere in each quarter of the run, by what the server has receipted.
        let from = total * (kill as u64 + 1) / (KILLS as u64 + 1);
        let at = from + moments.below(total / (KILLS as u64 + 1) / 2);
        let api = server.api();
        eventually(
            Duration::from_secs(120),
            &format!("{at} events receipted before kill {}", kill + 1),
            || async { (receipted(&api, &ids).await >= at).then_some(()) },
        )
        .await;
        tokio::time::sleep(Duration::from_millis(moments.below(200))).await;
        server.kill9();
        eprintln!(
            "kill {} at {:.1} s, {} events receipted",
            kill + 1,
            started.elapsed().as_secs_f64(),
            at
        );
        // Down for a moment: agents keep recording into their outboxes.
        tokio::time::sleep(Duration::from_millis(moments.below(1_500))).await;
        server = world.server_on(&mqtt, &http);
    }
    let api = server.api();
    for id in &ids {
        wait_online(&api, id).await;
    }
    eventually(
        Duration::from_secs(240),
        &format!("all {total} events receipted"),
        || async { (receipted(&api, &ids).await == total).then_some(()) },
    )
    .await;

    // The database itself: per device, EVENTS + 1 rows with seqs 1..=EVENTS + 1.
    let db = sqlx::SqlitePool::connect(&format!(
        "sqlite://{}",
        world.path("server/fleet.db").display()
    ))
    .await
    .expect("open the database");
    let rows: Vec<(String, i64, i64, i64, i64)> = sqlx::query_as(
        "SELECT device_id, COUNT(*), COUNT(DISTINCT seq), MIN(seq), MAX(seq) FROM events
         GROUP BY device_id ORDER BY device_id",
    )
    .fetch_all(&db)
    .await
    .expect("count events");
    db.close().await;
    let n = (EVENTS + 1) as i64;
    let expected: Vec<(String, i64, i64, i64, i64)> =
        ids.iter().map(|id| (id.clone(), n, n, 1, n)).collect();
    assert_eq!(
        rows, expected,
        "events per device: (id, rows, distinct, min, max)"
    );
    eprintln!(
        "{total} events stored exactly once across {KILLS} kills in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

/// An agent killed at random moments around remote opens (before the command arrives, after
/// it is journaled, after the pulse): after its restart every command ends, no box was
/// pulsed twice, and every `opened` box was pulsed exactly once. The fake lock board writes
/// each pulse to a synced file before it takes effect, so a pulse survives the kill.
#[tokio::test]
async fn an_agent_killed_during_opens_never_pulses_a_box_twice() {
    let world = World::new(&["cab-p"]);
    let server = world.server();
    let api = server.api();
    let log = world.path("pulses.log");
    let log_arg = log.display().to_string();
    let extra = ["--fake-pulse-log", log_arg.as_str()];
    let mut agent = world.agent("cab-p", server.mqtt, &extra);
    wait_online(&api, "cab-p").await;
    let mut moments = Moments::new();
    let mut commands = Vec::new();
    for b in 1..=6u16 {
        let (s, body) = api
            .open(
                "cab-p",
                b,
                serde_json::json!({"reason": "fault injection", "ttl_secs": 60}),
            )
            .await;
        assert_eq!(s, 202, "{body}");
        let id = body["command_id"].as_str().expect("command id").to_owned();
        tokio::time::sleep(Duration::from_millis(moments.below(40))).await;
        agent.kill9();
        agent = world.agent("cab-p", server.mqtt, &extra);
        commands.push((b, id));
    }
    let mut outcomes = Vec::new();
    for (b, id) in &commands {
        let cmd = api.wait_command(id, Duration::from_secs(90)).await;
        let pulses = std::fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .filter(|l| *l == format!("box {b}"))
            .count();
        let status = cmd["status"].as_str().unwrap_or_default().to_owned();
        assert!(pulses <= 1, "box {b} pulsed {pulses} times: {cmd}");
        if status == "opened" {
            assert_eq!(pulses, 1, "box {b} reported opened without a pulse: {cmd}");
        }
        outcomes.push((*b, status, pulses));
    }
    eprintln!("(box, status, pulses): {outcomes:?}");
    drop(agent);
}
