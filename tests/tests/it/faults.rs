//! Faults injected for real: the server killed with SIGKILL at random moments while ten
//! agents stream 100,000 events. Every event must be in the database exactly once.
//!
//! The moments are drawn from a seed printed at the start; `LOCKERFLEET_FAULT_SEED=N`
//! replays a run.

use std::time::{Duration, Instant};

use crate::harness::{Api, PrivatePg, World, eventually, wait_online};

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

/// Each device's receipt mark, as the API reports it (0 when unknown).
pub(crate) async fn marks(api: &Api, ids: &[String]) -> Vec<(String, u64)> {
    answered_marks(api, ids)
        .await
        .unwrap_or_else(|| ids.iter().map(|id| (id.clone(), 0)).collect())
}

/// [`marks`], or None while the API cannot read them (e.g. 503 during a database failover).
pub(crate) async fn answered_marks(api: &Api, ids: &[String]) -> Option<Vec<(String, u64)>> {
    let (status, body) = api.get("/api/v1/devices").await;
    if status != 200 {
        return None;
    }
    Some(
        ids.iter()
            .map(|id| {
                let mark = body["devices"]
                    .as_array()
                    .and_then(|ds| ds.iter().find(|d| d["id"] == id.as_str()))
                    .and_then(|d| d["acked_seq"].as_u64())
                    .unwrap_or(0);
                (id.clone(), mark)
            })
            .collect(),
    )
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

/// Reads the events table itself (SQLite or PostgreSQL): every device holds exactly the
/// seqs `1..=mark`, each once, and at least `simulated` occupancy events (a lost one would
/// show as fewer; an agent may record more of its own: the fake sensor races the agent's own
/// sensor poll under load, so a change can be seen twice or raise a sensor fault, each with
/// its own seq).
pub(crate) async fn assert_every_event_once(
    url: &str,
    marks: &[(String, u64)],
    simulated: u64,
    context: &str,
) {
    sqlx::any::install_default_drivers();
    let db = sqlx::AnyPool::connect(url)
        .await
        .expect("open the database");
    let mut rows: Vec<(String, i64, i64, i64, i64)> = sqlx::query_as(
        "SELECT device_id, COUNT(*), COUNT(DISTINCT seq), MIN(seq), MAX(seq) FROM events
         GROUP BY device_id ORDER BY device_id",
    )
    .fetch_all(&db)
    .await
    .expect("count events");
    rows.retain(|r| marks.iter().any(|(id, _)| *id == r.0));
    let kinds: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT device_id, kind, COUNT(*) FROM events GROUP BY device_id, kind ORDER BY 1, 2",
    )
    .fetch_all(&db)
    .await
    .expect("kinds");
    db.close().await;
    let expected: Vec<(String, i64, i64, i64, i64)> = marks
        .iter()
        .map(|(id, n)| (id.clone(), *n as i64, *n as i64, 1, *n as i64))
        .collect();
    assert_eq!(rows, expected, "(id, rows, distinct, min, max) {context}");
    for (id, _) in marks {
        let occupancy = kinds
            .iter()
            .find(|(d, k, _)| d == id && k == "occupancy")
            .map_or(0, |r| r.2);
        assert!(occupancy >= simulated as i64, "{id}: {kinds:?} {context}");
    }
    let extra: Vec<_> = kinds
        .iter()
        .filter(|(_, k, _)| k != "occupancy" && k != "started")
        .collect();
    eprintln!("events besides the simulated ones: {extra:?}");
}

/// Each device's mark once all are past `past` and none moved for 3 s (an agent may add
/// events of its own, e.g. a fault it noticed, so a sum of marks is no finish line); on a
/// timeout, says which device stopped where.
pub(crate) async fn settled_marks(
    api: &Api,
    ids: &[String],
    past: u64,
    within: Duration,
) -> Vec<(String, u64)> {
    let until = Instant::now() + within;
    let mut last = Vec::new();
    loop {
        let now = marks(api, ids).await;
        if now.iter().all(|(_, m)| *m > past) && now == last {
            return now;
        }
        assert!(
            Instant::now() < until,
            "not every event receipted after {within:?}; marks per device: {now:?}"
        );
        last = now;
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
}

/// One agent per id, each making `events` simulated occupancy changes at `per_sec`.
pub(crate) fn streaming_agents(
    world: &World,
    mqtt: std::net::SocketAddr,
    ids: &[String],
    per_sec: u32,
    events: u64,
) -> Vec<crate::harness::Proc> {
    streaming_agents_with(world, mqtt, ids, per_sec, events, &[])
}

/// [`streaming_agents`] with more agent flags (e.g. `--server` with every broker node).
pub(crate) fn streaming_agents_with(
    world: &World,
    mqtt: std::net::SocketAddr,
    ids: &[String],
    per_sec: u32,
    events: u64,
    extra: &[&str],
) -> Vec<crate::harness::Proc> {
    let (rate, limit) = (per_sec.to_string(), events.to_string());
    ids.iter()
        .map(|id| {
            let mut args = vec![
                "--fake-activity-per-sec",
                &rate,
                "--fake-activity-limit",
                &limit,
            ];
            args.extend_from_slice(extra);
            world.agent(id, mqtt, &args)
        })
        .collect()
}

#[tokio::test]
async fn a_server_killed_at_random_moments_under_load_stores_every_event_once() {
    let ids: Vec<String> = (0..AGENTS).map(|i| format!("cab-k{i:02}")).collect();
    let world = World::new(&ids.iter().map(String::as_str).collect::<Vec<_>>());
    let mut server = world.server();
    let (mqtt, http) = (server.mqtt.to_string(), server.http.to_string());
    let _agents = streaming_agents(&world, server.mqtt, &ids, 1000, EVENTS);
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
    let final_marks = settled_marks(&api, &ids, EVENTS, Duration::from_secs(240)).await;
    let url = format!("sqlite://{}", world.path("server/fleet.db").display());
    assert_every_event_once(&url, &final_marks, EVENTS, "").await;
    eprintln!(
        "every event (at least {total}) stored exactly once across {KILLS} kills in {:.1} s",
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

/// PostgreSQL stopped (as on a crash) while agents stream events, then started again: the
/// server says `degraded` and answers 503 meanwhile, agents keep their events, and after the
/// restart every event is stored exactly once and health is back to `ok`.
#[tokio::test]
#[ignore = "needs PostgreSQL binaries: run .ci/run, or apt-get install postgresql and pass --include-ignored"]
async fn postgres_stopped_under_load_degrades_then_recovers_losing_nothing() {
    const PER_AGENT: u64 = 3_000;
    let ids: Vec<String> = (0..3).map(|i| format!("cab-pg{i}")).collect();
    let world = World::new(&ids.iter().map(String::as_str).collect::<Vec<_>>());
    let pg = PrivatePg::start(&world.path("pg"));
    let url = pg.url();
    let server = world.server_with("127.0.0.1:0", "127.0.0.1:0", &["--database-url", &url]);
    let api = server.api();
    let _agents = streaming_agents(&world, server.mqtt, &ids, 300, PER_AGENT);
    let total = (PER_AGENT + 1) * ids.len() as u64;
    eventually(Duration::from_secs(60), "a third receipted", || async {
        (receipted(&api, &ids).await >= total / 3).then_some(())
    })
    .await;
    pg.ctl("stop");
    let health = eventually(Duration::from_secs(20), "health degraded", || async {
        let (status, body) = api.get("/healthz").await;
        (status == 503).then_some(body)
    })
    .await;
    assert_eq!(health["status"], "degraded", "{health}");
    let (status, body) = api.get("/api/v1/sites").await;
    assert_eq!(status, 503, "{body}");
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.contains("database is unavailable")),
        "{body}"
    );
    let stalled = receipted(&api, &ids).await;
    // Down for a while: the agents keep recording and wait for receipts.
    tokio::time::sleep(Duration::from_secs(3)).await;
    pg.ctl("start");
    let final_marks = settled_marks(&api, &ids, PER_AGENT, Duration::from_secs(120)).await;
    eventually(Duration::from_secs(20), "health ok again", || async {
        let (status, _) = api.get("/healthz").await;
        (status == 200).then_some(())
    })
    .await;
    let context = format!("{stalled} receipted at the stop");
    assert_every_event_once(&url, &final_marks, PER_AGENT, &context).await;
}

/// An outbox file that is not a database (a bad sector, a half-written image): the agent
/// moves it aside, starts a fresh outbox instead of failing in a restart loop, and tells the
/// server with a `lost` event before anything else it records.
#[tokio::test]
async fn an_agent_with_a_damaged_outbox_starts_and_tells_the_server() {
    let world = World::new(&["cab-o"]);
    let server = world.server();
    let api = server.api();
    let data = world.path("agent-cab-o");
    std::fs::create_dir_all(&data).expect("data dir");
    std::fs::write(data.join("outbox.db"), vec![0x5a; 16_384]).expect("garbage outbox");
    let _agent = world.agent(
        "cab-o",
        server.mqtt,
        &[
            "--fake-activity-per-sec",
            "50",
            "--fake-activity-limit",
            "20",
        ],
    );
    wait_online(&api, "cab-o").await;
    let events = eventually(Duration::from_secs(30), "22 events stored", || async {
        let events = api.events("cab-o").await;
        (events.len() == 22).then_some(events)
    })
    .await;
    let kinds: Vec<&str> = events.iter().filter_map(|e| e["kind"].as_str()).collect();
    assert_eq!(kinds[..2], ["lost", "started"], "{events:?}");
    let detail = events[0]["body"]["detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains("outbox file damaged") && detail.contains("not a database"),
        "{detail}"
    );
    let kept = std::fs::read_dir(&data)
        .expect("data dir")
        .filter_map(|e| e.ok())
        .any(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("outbox.db.damaged-")
        });
    assert!(kept, "the damaged file is kept for inspection");
}

/// The cabinet's disk fills up (the fake control socket's `disk full`: the outbox cannot grow):
/// the agent keeps running and online, says so once in its log, keeps trying, and when space
/// is back records the doors' and sensors' current state; the server's stream stays
/// contiguous, every event once.
#[tokio::test]
async fn an_agent_whose_disk_fills_keeps_running_and_records_again_when_space_returns() {
    let world = World::new(&["cab-d"]);
    let server = world.server();
    let api = server.api();
    let mut agent = world.agent_ctl("cab-d", server.mqtt, &[]);
    wait_online(&api, "cab-d").await;
    assert_eq!(
        agent.send("disk full").await,
        serde_json::json!({"ok": true})
    );
    // Sensor changes until the outbox has no room left for them.
    let log = world.path("cab-d.log");
    let full = "recording a sensor change failed";
    let mut occupied = false;
    let until = Instant::now() + Duration::from_secs(30);
    while !std::fs::read_to_string(&log)
        .unwrap_or_default()
        .contains(full)
    {
        assert!(Instant::now() < until, "the outbox never filled up");
        occupied = !occupied;
        for b in 1..=8 {
            agent.send(&format!("occupied {b} {occupied}")).await;
        }
        tokio::time::sleep(Duration::from_millis(120)).await;
    }
    let stored_while_full = api.events("cab-d").await.len();
    // Full for a while: still running, still online, the error said once.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        agent.proc.child.try_wait().expect("status").is_none(),
        "the agent exited on a full disk"
    );
    assert_eq!(api.device("cab-d").await.expect("known")["online"], true);
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert_eq!(text.matches(full).count(), 1, "said once, not every poll");

    // Space again: the current state is recorded and reaches the server.
    assert_eq!(agent.send("disk ok").await, serde_json::json!({"ok": true}));
    let finally = !occupied;
    agent.send(&format!("occupied 3 {finally}")).await;
    eventually(
        Duration::from_secs(20),
        "box 3's last state stored",
        || async {
            let device = api.device("cab-d").await?;
            let b3 = device["boxes"]
                .as_array()?
                .iter()
                .find(|b| b["box"] == 3)?
                .clone();
            (b3["occupied"] == finally).then_some(())
        },
    )
    .await;
    let events = api.events("cab-d").await;
    assert!(
        events.len() > stored_while_full,
        "nothing recorded after the disk had room"
    );
    crate::harness::assert_exactly_once_in_order(&events, events.len() as u64);
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(text.contains("the outbox takes writes again"), "{text}");
}
