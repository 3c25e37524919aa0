//! Storage tests, each run on SQLite and on PostgreSQL.
//!
//! The PostgreSQL variants are `#[ignore]`d so a plain `cargo test` without a database says
//! so instead of passing silently; `.ci/run` starts a throwaway cluster, sets
//! `LOCKERFLEET_TEST_POSTGRES_URL` and runs them with `--include-ignored`. Without the variable
//! they fail loudly.

use std::future::Future;

use fleet_server::store::{CreateOutcome, IngestBatch, NewCommand, Store};
use protocol::{
    AckStatus, BoxNo, BoxState, CommandId, CommandStatus, DeviceId, Event, EventBody, StateSnapshot,
};

fn dev(s: &str) -> DeviceId {
    DeviceId::parse(s).expect("id")
}

fn b(n: u16) -> BoxNo {
    BoxNo::new(n).expect("box")
}

fn door(seq: u64, n: u16, open: bool) -> Event {
    Event {
        seq,
        ts: seq as i64 * 10,
        body: EventBody::Door { box_no: b(n), open },
    }
}

fn batch(device: &DeviceId, events: Vec<Event>, mark: u64) -> IngestBatch {
    IngestBatch {
        received_at: 1_000,
        events: events.into_iter().map(|e| (device.clone(), e)).collect(),
        snapshots: vec![],
        marks: [(device.clone(), mark)].into_iter().collect(),
        ..IngestBatch::default()
    }
}

pub(crate) async fn with_sqlite<F, Fut>(test: F)
where
    F: FnOnce(Store) -> Fut,
    Fut: Future<Output = ()>,
{
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display());
    let store = Store::connect(&url).await.expect("sqlite store");
    test(store.clone()).await;
    store.close().await;
}

/// A fresh database on the test server for each test, dropped afterwards.
pub(crate) async fn with_postgres<F, Fut>(test: F)
where
    F: FnOnce(Store) -> Fut,
    Fut: Future<Output = ()>,
{
    with_empty_postgres(|url| async move {
        let store = Store::connect(&url).await.expect("postgres store");
        test(store.clone()).await;
        store.close().await;
    })
    .await;
}

/// An empty database on the test server, named by its URL, dropped afterwards.
pub(crate) async fn with_empty_postgres<F, Fut>(test: F)
where
    F: FnOnce(String) -> Fut,
    Fut: Future<Output = ()>,
{
    let base = std::env::var("LOCKERFLEET_TEST_POSTGRES_URL").expect(
        "LOCKERFLEET_TEST_POSTGRES_URL is not set: PostgreSQL tests need a server \
         (`.ci/run` starts one; or export postgres://USER@HOST:PORT/postgres)",
    );
    sqlx::any::install_default_drivers();
    let name = format!("lf_test_{}", uuid_like());
    let admin = sqlx::AnyPool::connect(&base)
        .await
        .expect("connect to test PostgreSQL");
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&admin)
        .await
        .expect("create test database");
    let url = match base.rfind('/') {
        Some(i) if i > "postgres://".len() => format!("{}/{name}", &base[..i]),
        _ => panic!("LOCKERFLEET_TEST_POSTGRES_URL must end in /DBNAME"),
    };
    test(url).await;
    sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE {name}")))
        .execute(&admin)
        .await
        .expect("drop test database");
}

fn uuid_like() -> String {
    use std::time::{SystemTime, UNIX_EPOCH};
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{}_{}", std::process::id(), nanos)
}

on_both!(
    events_are_stored_exactly_once,
    older_events_never_override_newer_state,
    receipt_marks_only_rise,
    command_lifecycle_moves_forward_only,
    idempotency_key_returns_the_first_command,
    undelivered_commands_expire,
    presence_is_logged,
    a_delivered_command_never_expires_and_fails_without_outcome,
    a_command_created_as_sent_is_stored_as_its_row,
    the_rule_in_memory_is_the_rule_in_storage,
    a_command_result_moves_its_command_with_the_event,
    the_audit_chain_shows_a_changed_removed_or_foreign_row,
    archived_audit_rows_leave_a_chain_that_still_holds,
    concurrent_audited_changes_extend_one_chain,
    presence_heard_by_every_replica_is_logged_once,
    one_replica_leads_and_another_takes_over,
    heartbeats_are_written_together_and_never_go_back,
    demand_without_monthly_cases_reads_back_as_unknown,
);

/// A demand point may come without monthly cases: it reads back unknown, not as 0 cases.
async fn demand_without_monthly_cases_reads_back_as_unknown(store: Store) {
    use domain::planner::DemandPoint;
    let point = |id: &str, cases: Option<f64>| DemandPoint {
        id: id.into(),
        name: format!("block {id}"),
        lat: 23.1,
        lon: 113.2,
        enterprises: 12,
        monthly_cases: cases,
        cluster: None,
    };
    let points = vec![
        point("a", Some(0.0)),
        point("b", None),
        point("c", Some(7.5)),
    ];
    store.replace_demand(&points).await.expect("stored");
    assert_eq!(store.demand_points().await.expect("read"), points);
}

fn heartbeat(uptime_s: u64, power: protocol::Power) -> protocol::Heartbeat {
    protocol::Heartbeat {
        v: 1,
        ts: 0,
        interval_s: 30,
        profile: protocol::Profile::Locker,
        uptime_s,
        lock_bus: protocol::BusHealth::Ok,
        power,
        outbox_pending: uptime_s,
        station: None,
        clock_offset_ms: None,
    }
}

/// Many devices' heartbeats in one batch (more than one multi-row statement's worth), each
/// with its own receive time; an older heartbeat written later (another replica's flush)
/// leaves the newer one in place.
async fn heartbeats_are_written_together_and_never_go_back(store: Store) {
    use protocol::Power;
    let ids: Vec<DeviceId> = (0..1_200).map(|i| dev(&format!("hb-{i}"))).collect();
    let many = IngestBatch {
        received_at: 5_000,
        heartbeats: ids
            .iter()
            .enumerate()
            .map(|(i, d)| {
                (
                    d.clone(),
                    heartbeat(i as u64, Power::Mains),
                    1_000 + i as i64,
                )
            })
            .collect(),
        ..IngestBatch::default()
    };
    store.ingest(&many).await.expect("ingest");
    for i in [0usize, 499, 500, 1_199] {
        let d = store.device(&ids[i]).await.expect("read").expect("device");
        assert_eq!(d.device.heartbeat_at, Some(1_000 + i as i64));
        assert_eq!(d.device.last_seen, Some(1_000 + i as i64));
        assert_eq!(d.device.uptime_s, Some(i as i64));
        assert_eq!(d.device.power.as_deref(), Some("mains"));
    }
    // Newer, then an older one arriving after it.
    let one = |at: i64, power| IngestBatch {
        received_at: at,
        heartbeats: vec![(ids[0].clone(), heartbeat(9, power), at)],
        ..IngestBatch::default()
    };
    store
        .ingest(&one(9_000, Power::Battery))
        .await
        .expect("newer");
    store
        .ingest(&one(8_000, Power::Mains))
        .await
        .expect("older");
    let d = store.device(&ids[0]).await.expect("read").expect("device");
    assert_eq!(d.device.heartbeat_at, Some(9_000));
    assert_eq!(d.device.power.as_deref(), Some("battery"));
}

async fn events_are_stored_exactly_once(store: Store) {
    let d = dev("cab-1");
    let first = batch(&d, vec![door(1, 1, true), door(2, 1, false)], 2);
    assert_eq!(store.ingest(&first).await.expect("ingest"), 2);
    // The same events again plus one new: only the new one counts.
    let again = batch(
        &d,
        vec![door(1, 1, true), door(2, 1, false), door(3, 2, true)],
        3,
    );
    assert_eq!(store.ingest(&again).await.expect("ingest"), 1);
    let events = store.events(&d, 0, 100).await.expect("events");
    assert_eq!(
        events.iter().map(|e| e.seq).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    assert_eq!(events[2].kind, "door");
    assert_eq!(events[2].body["open"], true);
    assert_eq!(store.totals().await.expect("totals").events, 3);
}

/// On PostgreSQL a batch of plain events (doors, occupancy, a lost record) is stored by one
/// statement, any other batch by a transaction of several: the same events, out of order,
/// repeated and spread over batches, must leave the same rows either way — compared column
/// by column. Each batch goes once for a cabinet and a neighbour with no mark (plain) and once
/// for their twins beside a fault of a third cabinet (not plain). The boxes of a restart exist
/// first, with the columns' defaults. On SQLite both go through the transaction.
async fn plain_batches_store_what_batches_with_effects_store(url: String) {
    let store = Store::connect(&url).await.expect("store");
    let raw = sqlx::AnyPool::connect(&url)
        .await
        .expect("a pool of our own");
    let (plain, twin, faulty) = (dev("cab-plain"), dev("cab-twin"), dev("cab-faulty"));
    let (plain_x, twin_x) = (dev("cab-plain-x"), dev("cab-twin-x"));
    for d in [&plain, &twin] {
        let started = Event {
            seq: 1,
            ts: 900,
            body: EventBody::Started {
                boxes: 2,
                agent_version: "1.0.0".into(),
            },
        };
        store
            .ingest(&batch(d, vec![started], 1))
            .await
            .expect("restart");
    }
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    let mut next = |n: u64| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng % n
    };
    let (mut high, mut fault_seq) = (1u64, 0u64);
    for round in 0..120u64 {
        let mut events = Vec::new();
        for _ in 0..1 + next(6) {
            // Mostly new, some repeated or late: seqs up to 7 below the highest sent.
            let seq = (high + 1).saturating_sub(next(8)).max(2);
            high = high.max(seq);
            let box_no = b(1 + next(3) as u16);
            let body = match next(7) {
                0..=2 => EventBody::Door {
                    box_no,
                    open: next(2) == 0,
                },
                3..=5 => EventBody::Occupancy {
                    box_no,
                    occupied: next(2) == 0,
                },
                // Quotes, a backslash, a line break, braces, commas, NULL and 中文: stored as sent.
                _ => EventBody::Lost {
                    detail: format!("Record \"{seq}\" torn\n{{\"n\": [{seq}]}}, NULL \\ 记录损坏"),
                },
            };
            events.push(Event {
                seq,
                ts: 1_000 + seq as i64 * 7 + next(3) as i64,
                body,
            });
        }
        let received_at = 5_000 + round as i64;
        let mark = high.saturating_sub(next(3));
        let unmarked = Event {
            seq: round + 1,
            ts: 2_000,
            body: EventBody::Occupancy {
                box_no: b(1),
                occupied: round % 3 == 0,
            },
        };
        let mut alone = IngestBatch {
            received_at,
            ..batch(&plain, events.clone(), mark)
        };
        alone.events.push((plain_x.clone(), unmarked.clone()));
        fault_seq += 1;
        let mut mixed = IngestBatch {
            received_at,
            ..batch(&twin, events, mark)
        };
        mixed.events.push((twin_x.clone(), unmarked));
        mixed.events.push((
            faulty.clone(),
            Event {
                seq: fault_seq,
                ts: 1_000,
                body: EventBody::Fault {
                    box_no: None,
                    fault: protocol::FaultKind::ForcedOpen,
                    active: fault_seq % 2 == 1,
                    evidence: String::new(),
                },
            },
        ));
        mixed.marks.insert(faulty.clone(), fault_seq);
        let stored_alone = store.ingest(&alone).await.expect("plain batch");
        let stored_mixed = store.ingest(&mixed).await.expect("batch with effects");
        assert_eq!(stored_alone + 1, stored_mixed, "round {round}: new events");
    }
    type Rows = Vec<(i64, i64, i64, Option<i64>, Option<i64>, i64, Option<i64>)>;
    let boxes = |d: DeviceId| {
        let raw = raw.clone();
        async move {
            sqlx::query_as::<_, (i64, i64, i64, Option<i64>, Option<i64>, i64, Option<i64>)>(
                "SELECT box_no, door_open, door_seq, door_changed_at, occupied, occupied_seq,
                        occupied_changed_at FROM boxes WHERE device_id = $1 ORDER BY box_no",
            )
            .bind(d.as_str().to_owned())
            .fetch_all(&raw)
            .await
            .expect("boxes")
        }
    };
    let device = |d: DeviceId| {
        let raw = raw.clone();
        async move {
            sqlx::query_as::<_, (i64, Option<i64>, i64, i64, Option<String>)>(
                "SELECT acked_seq, last_seen, created_at, boxes, agent_version
                 FROM devices WHERE device_id = $1",
            )
            .bind(d.as_str().to_owned())
            .fetch_optional(&raw)
            .await
            .expect("device")
        }
    };
    let events = |d: DeviceId| {
        let store = store.clone();
        async move { store.events(&d, 0, 1_000).await.expect("events") }
    };
    let plain_boxes: Rows = boxes(plain.clone()).await;
    assert_eq!(plain_boxes, boxes(twin.clone()).await);
    assert_eq!(
        plain_boxes.len(),
        3,
        "two from the restart, one from the events"
    );
    assert!(plain_boxes.iter().any(|r| r.4.is_some()) && plain_boxes.iter().any(|r| r.1 == 1));
    assert_eq!(boxes(plain_x.clone()).await, boxes(twin_x.clone()).await);
    let plain_row = device(plain.clone()).await;
    assert_eq!(plain_row, device(twin.clone()).await);
    assert_eq!(plain_row.map(|r| r.1), Some(Some(5_119)));
    // A device that sent events without a mark has no row either way.
    assert_eq!(
        (device(plain_x.clone()).await, device(twin_x.clone()).await),
        (None, None)
    );
    let plain_events = events(plain).await;
    assert_eq!(plain_events, events(twin).await);
    assert!(plain_events.iter().any(|e| e.kind == "lost"));
    assert_eq!(events(plain_x).await, events(twin_x).await);
    raw.close().await;
    store.close().await;
}

#[tokio::test]
async fn plain_batches_store_what_batches_with_effects_store_sqlite() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display());
    plain_batches_store_what_batches_with_effects_store(url).await;
}

#[tokio::test]
#[ignore = "needs PostgreSQL: run .ci/run, or set LOCKERFLEET_TEST_POSTGRES_URL and pass --include-ignored"]
async fn plain_batches_store_what_batches_with_effects_store_postgres() {
    with_empty_postgres(plain_batches_store_what_batches_with_effects_store).await;
}

async fn older_events_never_override_newer_state(store: Store) {
    let d = dev("cab-2");
    // A snapshot at seq 10 says box 1 is open and occupied.
    let snap = IngestBatch {
        received_at: 5,
        events: vec![],
        snapshots: vec![(
            d.clone(),
            StateSnapshot {
                v: 1,
                seq: 10,
                ts: 100,
                boxes: vec![
                    BoxState {
                        box_no: b(1),
                        door_open: true,
                        occupied: Some(true),
                    },
                    BoxState {
                        box_no: b(2),
                        door_open: false,
                        occupied: Some(false),
                    },
                ],
            },
        )],
        ..IngestBatch::default()
    };
    store.ingest(&snap).await.expect("snapshot");
    // A backlog event from before the snapshot arrives later: it must not win.
    store
        .ingest(&batch(&d, vec![door(4, 1, false), door(11, 2, true)], 0))
        .await
        .expect("backlog");
    let detail = store.device(&d).await.expect("query").expect("device");
    let by_box = |n: i64| detail.boxes.iter().find(|x| x.box_no == n).expect("box");
    assert_eq!(by_box(1).door, "open", "seq 4 is older than the snapshot");
    assert_eq!(by_box(1).occupied, Some(true));
    assert_eq!(by_box(2).door, "open", "seq 11 is newer than the snapshot");
}

async fn receipt_marks_only_rise(store: Store) {
    let d = dev("cab-3");
    store
        .ingest(&batch(&d, vec![door(1, 1, true)], 7))
        .await
        .expect("ingest");
    assert_eq!(store.acked_seq(&d).await.expect("mark"), 7);
    store
        .ingest(&batch(&d, vec![door(1, 1, true)], 3))
        .await
        .expect("ingest");
    assert_eq!(store.acked_seq(&d).await.expect("mark"), 7);
}

fn new_command(
    id: &str,
    device: &DeviceId,
    key: Option<&str>,
    created: i64,
    ttl: i64,
) -> NewCommand {
    NewCommand {
        id: CommandId::parse(id).expect("id"),
        device: device.clone(),
        box_no: b(3),
        actor: "op-anna".into(),
        reason: "citizen locked out".into(),
        idempotency_key: key.map(str::to_owned),
        created_at: created,
        expires_at: created + ttl,
        sent_at: None,
    }
}

async fn command_lifecycle_moves_forward_only(store: Store) {
    let d = dev("cab-4");
    store
        .ingest(&batch(&d, vec![door(1, 1, false)], 1))
        .await
        .expect("device");
    let c = new_command("c1", &d, None, 1_000, 30_000);
    assert!(matches!(
        store.create_command(&c).await.expect("create"),
        CreateOutcome::Created
    ));
    let id = &c.id;
    let adv = |s: CommandStatus, at: i64| {
        let store = store.clone();
        let id = id.clone();
        async move {
            store
                .advance_command(&id, s, at, None)
                .await
                .expect("advance")
        }
    };
    assert!(adv(CommandStatus::Sent, 1_001).await.is_some());
    assert!(adv(CommandStatus::Delivered, 1_002).await.is_some());
    let done = adv(CommandStatus::Opened, 1_005).await.expect("opened");
    assert_eq!(done.status.as_str(), "opened");
    assert_eq!(done.latency_ms, Some(5));
    // Late or repeated messages change nothing.
    assert!(adv(CommandStatus::Sent, 1_010).await.is_none());
    assert!(adv(CommandStatus::Delivered, 1_010).await.is_none());
    assert!(adv(CommandStatus::Jammed, 1_010).await.is_none());
    assert!(adv(CommandStatus::Expired, 1_010).await.is_none());
    let audit = store.audit(Some(&d), None, 10).await.expect("audit");
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0].actor, "op-anna");
    assert_eq!(audit[0].reason.as_deref(), Some("citizen locked out"));
    assert_eq!(audit[0].result.as_deref(), Some("opened"));
    assert_eq!(audit[0].latency_ms, Some(5));
    let _ = AckStatus::Opened;
}

async fn idempotency_key_returns_the_first_command(store: Store) {
    let d = dev("cab-5");
    store
        .ingest(&batch(&d, vec![door(1, 1, false)], 1))
        .await
        .expect("device");
    let first = new_command("k1", &d, Some("ticket-42"), 1_000, 30_000);
    assert!(matches!(
        store.create_command(&first).await.expect("first"),
        CreateOutcome::Created
    ));
    let second = new_command("k2", &d, Some("ticket-42"), 2_000, 30_000);
    match store.create_command(&second).await.expect("second") {
        CreateOutcome::Existing(row) => assert_eq!(row.command_id.as_str(), "k1"),
        CreateOutcome::Created => panic!("a reused idempotency key created a second command"),
    }
    assert!(store.command("k2").await.expect("query").is_none());
}

async fn undelivered_commands_expire(store: Store) {
    let d = dev("cab-6");
    store
        .ingest(&batch(&d, vec![door(1, 1, false)], 1))
        .await
        .expect("device");
    let c = new_command("e1", &d, None, 1_000, 500);
    store.create_command(&c).await.expect("create");
    assert_eq!(
        store
            .pending_commands(Some(&d), 1_200)
            .await
            .expect("pending")
            .len(),
        1
    );
    assert!(
        store
            .expire_commands(1_400)
            .await
            .expect("early")
            .is_empty()
    );
    let expired = store.expire_commands(1_600).await.expect("expire");
    assert_eq!(expired.len(), 1);
    assert_eq!(expired[0].status.as_str(), "expired");
    assert!(
        store
            .pending_commands(Some(&d), 1_600)
            .await
            .expect("pending")
            .is_empty()
    );
    // A delivery report after expiry cannot revive it; a physical outcome is recorded.
    assert!(
        store
            .advance_command(&c.id, CommandStatus::Delivered, 1_700, None)
            .await
            .expect("adv")
            .is_none()
    );
    let row = store
        .advance_command(&c.id, CommandStatus::Opened, 1_800, Some("door opened"))
        .await
        .expect("adv")
        .expect("physical outcome recorded");
    assert_eq!(row.status.as_str(), "opened");
}

async fn presence_is_logged(store: Store) {
    let d = dev("cab-7");
    store
        .presence(&d, 1, true, "connected from 127.0.0.1:5000", 10)
        .await
        .expect("on");
    store
        .presence(&d, 1, false, "keep-alive timeout", 20)
        .await
        .expect("off");
    let log = store.presence_log(&d, 10).await.expect("log");
    assert_eq!(log.len(), 2);
    assert!(!log[0].online);
    assert_eq!(log[0].reason, "keep-alive timeout");
    let devices = store.devices().await.expect("devices");
    assert!(!devices[0].online);
    assert_eq!(store.mark_all_offline(30).await.expect("reset"), 0);
}

async fn a_delivered_command_never_expires_and_fails_without_outcome(store: Store) {
    let d = dev("cab-8");
    store
        .ingest(&batch(&d, vec![door(1, 1, false)], 1))
        .await
        .expect("device");
    let c = new_command("d1", &d, None, 1_000, 500);
    store.create_command(&c).await.expect("create");
    store
        .advance_command(&c.id, CommandStatus::Delivered, 1_100, None)
        .await
        .expect("adv")
        .expect("delivered");
    // Past its time to live, but delivered: the sweep must leave it alone.
    assert!(
        store
            .expire_commands(2_000)
            .await
            .expect("sweep")
            .is_empty()
    );
    assert!(
        store
            .advance_command(&c.id, CommandStatus::Expired, 2_000, None)
            .await
            .expect("adv")
            .is_none(),
        "a delivered command was expired"
    );
    assert!(
        store
            .fail_stale_delivered(60_000, 120_000)
            .await
            .expect("early")
            .is_empty()
    );
    let failed = store
        .fail_stale_delivered(130_000, 120_000)
        .await
        .expect("stale");
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].status.as_str(), "failed");
    assert!(
        failed[0]
            .detail
            .as_deref()
            .is_some_and(|d| d.contains("no outcome"))
    );
}

async fn a_command_created_as_sent_is_stored_as_its_row(store: Store) {
    let d = dev("cab-8");
    store
        .ingest(&batch(&d, vec![door(1, 1, false)], 1))
        .await
        .expect("device");
    let mut c = new_command("c8", &d, None, 1_000, 30_000);
    c.sent_at = Some(1_000);
    store.create_command(&c).await.expect("create");
    let stored = store.command("c8").await.expect("read").expect("row");
    // The API answers with `row()` without reading back: it must be what was stored.
    assert_eq!(stored, c.row());
    assert_eq!(stored.status.as_str(), "sent");
    // Already sent: a `sent` ack changes nothing, delivery and outcome still move it on.
    assert!(
        store
            .advance_command(&c.id, CommandStatus::Sent, 1_001, None)
            .await
            .expect("sent")
            .is_none()
    );
    let done = store
        .advance_command(&c.id, CommandStatus::Opened, 1_004, None)
        .await
        .expect("opened")
        .expect("changed");
    assert_eq!((done.status.as_str(), done.latency_ms), ("opened", Some(4)));
    // Only undelivered commands were re-sent or expire; this one is finished.
    assert!(
        store
            .pending_commands(Some(&d), 1_005)
            .await
            .expect("pending")
            .is_empty()
    );
}

/// On SQLite a large ingest batch is stored in turns and hands the one writer back between
/// them: a remote open created while the batch is being stored commits before the batch's
/// last turn, not after all of it (ADR 0030). The command's audit row must have keypad rows
/// of the same batch after it in the audit chain.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_waits_for_one_ingest_turn_not_the_batch() {
    with_sqlite(|store| async move {
        let d = dev("cab-0");
        store
            .ingest(&batch(&d, vec![door(1, 1, false)], 1))
            .await
            .expect("device");
        // 2,000 cabinets with a keypad event each (51 a cabinet): 500 turns of four.
        let mut big = IngestBatch {
            received_at: 2_000,
            ..IngestBatch::default()
        };
        for n in 0..2_000 {
            let device = dev(&format!("cab-{:04}", n + 1));
            big.events.push((
                device.clone(),
                Event {
                    seq: 1,
                    ts: 2_000,
                    body: EventBody::KeypadLocked {
                        until: 3_000,
                        failures: 5,
                    },
                },
            ));
            big.marks.insert(device, 1);
        }
        assert!(
            big.turns(fleet_server::store::TURN_COST)
                .expect("turns")
                .len()
                > 100
        );
        let ingesting = {
            let store = store.clone();
            tokio::spawn(async move { store.ingest(&big).await.expect("ingest") })
        };
        // Once the first turn is in, create a command.
        let count = || async {
            sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM events WHERE kind = 'keypad_locked'")
                .fetch_one(store.writer_for_tests())
                .await
                .expect("count")
        };
        while count().await == 0 {
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        let c = new_command("turn1", &d, None, 2_500, 30_000);
        store.create_command(&c).await.expect("create");
        assert_eq!(ingesting.await.expect("join"), 2_000);
        let seq = |sql: &'static str| {
            let store = store.clone();
            async move {
                sqlx::query_scalar::<_, i64>(sql)
                    .fetch_one(store.writer_for_tests())
                    .await
                    .expect("seq")
            }
        };
        let command = seq("SELECT seq FROM audit WHERE command_id = 'turn1'").await;
        let last = seq("SELECT MAX(seq) FROM audit").await;
        assert!(
            command < last,
            "the command waited for the whole batch (audit seq {command} of {last})"
        );
    })
    .await;
}

/// On SQLite a batch is stored in turns (ADR 0030). When a later turn fails, what earlier
/// turns stored is already in the caller's `Stored`; the caller retries the whole batch with
/// it, and the events stored the first time are neither counted nor acted on again: one
/// alarm per fault, every event once, each cabinet's mark set.
#[tokio::test]
async fn a_later_turn_failing_is_retried_without_counting_or_acting_twice() {
    with_sqlite(|store| async move {
        // Six cabinets with a fault each (51 a cabinet): turns of four, then two.
        let mut faults = IngestBatch {
            received_at: 3_000,
            ..IngestBatch::default()
        };
        for c in ["a", "b", "c", "d", "e", "f"] {
            let device = dev(&format!("cab-{c}"));
            faults.events.push((
                device.clone(),
                Event {
                    seq: 1,
                    ts: 3_000,
                    body: EventBody::Fault {
                        box_no: Some(b(2)),
                        fault: protocol::FaultKind::ForcedOpen,
                        active: true,
                        evidence: format!("cabinet {c}"),
                    },
                },
            ));
            faults.marks.insert(device, 1);
        }
        let turns = faults.turns(fleet_server::store::TURN_COST).expect("turns");
        assert_eq!(turns.len(), 2);
        let raw = store.writer_for_tests();
        // The last cabinet's event cannot be stored: the second turn fails, whole.
        sqlx::query(
            "CREATE TRIGGER refuse_f BEFORE INSERT ON events WHEN NEW.device_id = 'cab-f'
             BEGIN SELECT RAISE(ABORT, 'disk full, as injected'); END",
        )
        .execute(raw)
        .await
        .expect("trigger");
        let mut stored = fleet_server::store::Stored::new();
        let err = store
            .ingest_replicated(&faults, &mut stored)
            .await
            .expect_err("the second turn fails");
        assert!(err.to_string().contains("injected"), "{err}");
        assert_eq!(stored.inserted, 4, "the first turn is stored and counted");
        let count = |sql: &'static str| async move {
            sqlx::query_scalar::<_, i64>(sql)
                .fetch_one(raw)
                .await
                .expect("count")
        };
        assert_eq!(count("SELECT COUNT(*) FROM events").await, 4);
        assert_eq!(count("SELECT COUNT(*) FROM alarms").await, 4);
        sqlx::query("DROP TRIGGER refuse_f")
            .execute(raw)
            .await
            .expect("drop");
        // The writer retries the same batch with the same `Stored`.
        store
            .ingest_replicated(&faults, &mut stored)
            .await
            .expect("the retry");
        assert_eq!(stored.inserted, 6, "every event counted once");
        assert_eq!(count("SELECT COUNT(*) FROM events").await, 6);
        assert_eq!(
            count("SELECT COUNT(*) FROM alarms").await,
            6,
            "one alarm per fault"
        );
        assert_eq!(
            count("SELECT COUNT(*) FROM devices WHERE acked_seq = 1").await,
            6
        );
    })
    .await;
}

/// A cabinet's durable `command_result` moves its command in the transaction that stores the
/// event (once receipted, nothing would bring it again), only for the cabinet the command
/// was for, and says what it moved; a repeat moves nothing.
async fn a_command_result_moves_its_command_with_the_event(store: Store) {
    let (d, other) = (dev("cab-r"), dev("cab-q"));
    for x in [&d, &other] {
        store
            .ingest(&batch(x, vec![door(1, 1, false)], 1))
            .await
            .expect("device");
    }
    let mut c = new_command("cr1", &d, None, 1_000, 30_000);
    c.sent_at = Some(1_000);
    store.create_command(&c).await.expect("create");
    let result = |seq: u64, status: AckStatus| Event {
        seq,
        ts: 1_500,
        body: EventBody::CommandResult {
            command_id: c.id.clone(),
            box_no: b(3),
            status,
            detail: Some("door sensor changed".into()),
        },
    };
    // Another cabinet's report of it changes nothing.
    let (_, effects) = store
        .ingest_with_effects(&batch(&other, vec![result(2, AckStatus::Jammed)], 2))
        .await
        .expect("ingest");
    assert!(effects.commands.is_empty());
    // `delivered` travels as the fast ack only; the outcome moves the command.
    let (_, effects) = store
        .ingest_with_effects(&batch(
            &d,
            vec![
                result(2, AckStatus::Delivered),
                result(3, AckStatus::Opened),
            ],
            3,
        ))
        .await
        .expect("ingest");
    let moved: Vec<_> = effects
        .commands
        .iter()
        .map(|r| (r.row.command_id.as_str(), r.row.status, r.was, r.moved))
        .collect();
    assert_eq!(
        moved,
        vec![("cr1", CommandStatus::Opened, CommandStatus::Sent, true)]
    );
    let row = store.command("cr1").await.expect("read").expect("row");
    assert_eq!(row.status, CommandStatus::Opened);
    assert_eq!(row.detail.as_deref(), Some("door sensor changed"));
    assert_eq!(row.finished_at, Some(1_000), "the batch's received_at");
    // The retransmitted event is stored once and moves nothing; storage's row is reported,
    // for the command book to settle on.
    let (inserted, effects) = store
        .ingest_with_effects(&batch(&d, vec![result(3, AckStatus::Opened)], 3))
        .await
        .expect("ingest");
    assert_eq!(inserted, 0);
    assert_eq!(effects.commands.len(), 1);
    assert!(!effects.commands[0].moved);
    assert_eq!(effects.commands[0].row, row);
}

/// The server shows a reported outcome before its write by applying storage's rule in memory
/// (`CommandRow::advanced`): for every sequence of three reports, from either initial status,
/// with and without details, both must agree on every step and on the row that results.
async fn the_rule_in_memory_is_the_rule_in_storage(store: Store) {
    let d = dev("cab-9");
    store
        .ingest(&batch(&d, vec![door(1, 1, false)], 1))
        .await
        .expect("device");
    // Every status, `queued` too (which neither ever takes as a report).
    let reports = CommandStatus::ALL;
    let mut n = 0;
    for sent in [false, true] {
        for a in reports {
            for b in reports {
                for c in reports {
                    n += 1;
                    let mut new = new_command(&format!("r{n}"), &d, None, 1_000, 30_000);
                    new.sent_at = sent.then_some(1_000);
                    store.create_command(&new).await.expect("create");
                    let mut row = new.row();
                    for (i, status) in [a, b, c].into_iter().enumerate() {
                        let at = 1_001 + i as i64;
                        let detail = (n + i) % 2 == 0;
                        let detail = detail.then(|| format!("report {i}"));
                        let in_memory = row.advanced(status, at, detail.as_deref());
                        let stored = store
                            .advance_command(&new.id, status, at, detail.as_deref())
                            .await
                            .expect("advance");
                        assert_eq!(stored, in_memory, "{a:?} {b:?} {c:?} at step {i}");
                        if let Some(next) = stored {
                            row = next;
                        }
                    }
                    let read = store.command(new.id.as_str()).await.expect("read");
                    assert_eq!(read, Some(row), "{a:?} {b:?} {c:?}");
                }
            }
        }
    }
}

/// Archives of the oldest audit rows: the database keeps the rest and continues its chain
/// from the last archived row (also when every row was archived); the archives verify from
/// the first row, in order, and an edited archive is caught.
async fn archived_audit_rows_leave_a_chain_that_still_holds(store: Store) {
    use fleet_server::audit_archive::{archive, verify_archives};
    let d = dev("cab-8");
    store
        .ingest(&batch(&d, vec![door(1, 1, false)], 1))
        .await
        .expect("device");
    for i in 0..6 {
        let c = new_command(&format!("a{i}"), &d, None, 1_000 + i, 30_000);
        store.create_command(&c).await.expect("create");
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let first = dir.path().join("audit-1.jsonl");
    let a = archive(&store, 1_003, &first).await.expect("archive");
    assert_eq!((a.rows, a.first_seq, a.last_seq), (3, 1, 3));
    let v = store.verify_audit().await.expect("verify");
    assert_eq!(
        (v.starts_after, v.rows, v.head_seq, &v.broken),
        (3, 3, 6, &None)
    );
    let (seq, hash, rows) = verify_archives(std::slice::from_ref(&first)).expect("archive holds");
    assert_eq!((seq, rows), (3, 3));
    assert_eq!(hash, a.last_hash);
    let again = archive(&store, 1_003, &dir.path().join("none.jsonl")).await;
    assert!(again.is_err(), "nothing older is left to archive");

    // Everything else too: the next row continues the chain from the anchor.
    let second = dir.path().join("audit-2.jsonl");
    let b = archive(&store, 10_000, &second).await.expect("archive all");
    assert_eq!((b.first_seq, b.last_seq), (4, 6));
    let c = new_command("a6", &d, None, 20_000, 30_000);
    store.create_command(&c).await.expect("create");
    let v = store.verify_audit().await.expect("verify");
    assert_eq!(
        (v.starts_after, v.rows, v.head_seq, &v.broken),
        (6, 1, 7, &None)
    );
    let both = [first.clone(), second.clone()];
    assert_eq!(verify_archives(&both).expect("in order").0, 6);
    let err = verify_archives(&[second.clone(), first.clone()]).expect_err("out of order");
    assert!(err.to_string().contains("give every archive"), "{err}");

    // An archive edited after the fact.
    let text = std::fs::read_to_string(&first).expect("read");
    std::fs::write(&first, text.replacen("\"a1\"", "\"x1\"", 1)).expect("edit");
    let err = verify_archives(&both).expect_err("edited");
    assert!(err.to_string().contains("the archive was changed"), "{err}");
}

async fn the_audit_chain_shows_a_changed_removed_or_foreign_row(store: Store) {
    let d = dev("cab-9");
    store
        .ingest(&batch(&d, vec![door(1, 1, false)], 1))
        .await
        .expect("device");
    let empty = store.verify_audit().await.expect("verify");
    assert_eq!((empty.rows, empty.head_seq, empty.broken), (0, 0, None));
    for (i, id) in ["c1", "c2", "c3", "c4"].iter().enumerate() {
        let c = new_command(id, &d, None, 1_000 + i as i64, 30_000);
        store.create_command(&c).await.expect("create");
    }
    let good = store.verify_audit().await.expect("verify");
    assert_eq!((good.rows, good.head_seq, &good.broken), (4, 4, &None));
    let listed = store.audit(Some(&d), None, 10).await.expect("audit");
    assert_eq!(listed[0].seq, Some(4));
    assert_eq!(listed[0].hash.as_deref(), Some(good.head_hash.as_str()));

    let db = store.writer_for_tests();
    // The database refuses plain edits and deletions of audit rows ...
    for sql in [
        "UPDATE audit SET reason = 'routine' WHERE seq = 2",
        "DELETE FROM audit WHERE seq = 3",
    ] {
        let err = sqlx::query(sql).execute(db).await.expect_err("refused");
        assert!(err.to_string().contains("append-only"), "{err}");
    }
    // ... so the intruder drops the guard first; the chain still shows what was done.
    let unguard: &[&str] = match store.kind() {
        fleet_server::store::DbKind::Sqlite => &[
            "DROP TRIGGER audit_no_update",
            "DROP TRIGGER audit_no_delete",
        ],
        fleet_server::store::DbKind::Postgres => &["DROP TRIGGER audit_no_change ON audit"],
    };
    for sql in unguard {
        sqlx::query(*sql).execute(db).await.expect("drop the guard");
    }
    let exec = |sql: &'static str| async move {
        sqlx::query(sql).execute(db).await.expect("tamper");
    };
    // A reason edited after the fact.
    exec("UPDATE audit SET reason = 'routine' WHERE seq = 2").await;
    let v = store.verify_audit().await.expect("verify");
    let broken = v.broken.expect("an edited row breaks the chain");
    assert_eq!((broken.seq, broken.audit_id.as_deref()), (2, Some("c2")));
    assert!(broken.why.contains("hash does not match"), "{}", broken.why);
    assert_eq!(v.rows, 1);
    exec("UPDATE audit SET reason = 'citizen locked out' WHERE seq = 2").await;
    assert_eq!(store.verify_audit().await.expect("verify").broken, None);

    // A row removed from the middle.
    exec("DELETE FROM audit WHERE seq = 3").await;
    let broken = store
        .verify_audit()
        .await
        .expect("verify")
        .broken
        .expect("gap");
    assert_eq!(broken.seq, 3);
    assert!(
        broken.why.contains("rows 3 to 3 are missing"),
        "{}",
        broken.why
    );

    // A row slipped in without a place in the chain.
    exec("DELETE FROM audit WHERE seq = 4").await;
    assert_eq!(store.verify_audit().await.expect("verify").broken, None);
    exec(
        "INSERT INTO audit (audit_id, ts, actor, action) VALUES ('forged', 5, 'x', 'remote_open')",
    )
    .await;
    let broken = store
        .verify_audit()
        .await
        .expect("verify")
        .broken
        .expect("foreign");
    assert!(
        broken.why.contains("1 rows carry no place"),
        "{}",
        broken.why
    );
}

/// Remote opens from many API requests at once (several writer connections on PostgreSQL):
/// every one is stored, each with its own place in one unbroken chain.
async fn concurrent_audited_changes_extend_one_chain(store: Store) {
    let d = dev("cab-10");
    store
        .ingest(&batch(&d, vec![door(1, 1, false)], 1))
        .await
        .expect("device");
    let tasks: Vec<_> = (0..40)
        .map(|i| {
            let store = store.clone();
            let c = new_command(&format!("c{i}"), &d, None, 1_000 + i, 30_000);
            tokio::spawn(async move { store.create_command(&c).await })
        })
        .collect();
    for t in tasks {
        t.await
            .expect("task")
            .expect("every concurrent create is stored");
    }
    let v = store.verify_audit().await.expect("verify");
    assert_eq!((v.rows, v.head_seq, v.broken), (40, 40, None));
}

/// External broker mode: every replica reports each presence word; one row per transition.
async fn presence_heard_by_every_replica_is_logged_once(store: Store) {
    let d = dev("cab-11");
    let changed = |online, at| {
        let (store, d) = (store.clone(), d.clone());
        async move {
            store
                .presence_change(&d, online, "replica word", at)
                .await
                .expect("presence")
        }
    };
    assert!(changed(true, 10).await, "a new device online");
    assert!(!changed(true, 11).await, "the second replica's copy");
    assert!(changed(false, 20).await);
    assert!(!changed(false, 21).await);
    assert!(changed(true, 30).await);
    let log = store.presence_log(&d, 10).await.expect("log");
    let seen: Vec<(i64, bool)> = log.iter().map(|r| (r.ts, r.online)).collect();
    assert_eq!(seen, [(30, true), (20, false), (10, true)]);
    let devices = store.devices().await.expect("devices");
    assert!(devices[0].online);
}

/// On PostgreSQL one store at a time holds the lead, and it passes on when released; SQLite
/// has one server only, which always leads.
async fn one_replica_leads_and_another_takes_over(store: Store) {
    let first = store
        .try_lead()
        .await
        .expect("ask")
        .expect("the first leads");
    let second = store.try_lead().await.expect("ask");
    if store.kind() == fleet_server::store::DbKind::Postgres {
        assert!(second.is_none(), "two leaders at once");
        drop(first);
        // The lock goes with the closed connection; the server notices within moments.
        let mut taken = None;
        for _ in 0..50 {
            taken = store.try_lead().await.expect("ask");
            if taken.is_some() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        let mut lead = taken.expect("the lead passes on");
        assert!(lead.alive().await);
    } else {
        assert!(second.is_some());
    }
}
