//! Unit tests of the agent's tasks: clock, recorder, commands, keypad, uplink.

use std::sync::Arc;
use std::time::{Duration, Instant};

use protocol::{
    AckStatus, BoxNo, BoxState, BusHealth, CodeSync, Command, CommandAction, DeviceId, EventBody,
    FaultKind, Power, RejectReason,
};
use rumqttc::{AsyncClient, MqttOptions};
use tokio::sync::{Mutex, Notify};
use tokio_util::sync::CancellationToken;

use crate::*;
use crate::{clock::*, commands::*, entry::*, watch::*};

#[test]
fn the_server_clock_is_adopted_only_beyond_network_delay() {
    let window = |s: &[i64]| s.iter().copied().collect::<std::collections::VecDeque<_>>();
    // Two hours behind: adopted at the first receipt.
    assert_eq!(adopt_offset(0, &window(&[7_200_000])), Some(7_200_000));
    // 300 ms of transit: not a wrong clock.
    assert_eq!(adopt_offset(0, &window(&[-300])), None);
    // A receipt delayed 4 s by a busy server, among prompt ones: the delay is not taken
    // for a clock change (it only ever makes a sample lower).
    assert_eq!(adopt_offset(0, &window(&[-20, -4_000, -35])), None);
    assert_eq!(
        adopt_offset(7_200_000, &window(&[7_199_990, 7_196_000])),
        None
    );
    // The clock was fixed meanwhile: back to zero once the old samples are gone.
    assert_eq!(adopt_offset(7_200_000, &window(&[7_199_990, -10])), None);
    assert_eq!(adopt_offset(7_200_000, &window(&[-10, -40])), Some(-10));
}
use protocol::CommandId;

async fn ctx(dir: &std::path::Path, jam_rate: f64) -> (Arc<Ctx<FakeLocks>>, Arc<FakeLocks>) {
    ctx_of(
        dir,
        FakeConfig {
            close_after: Duration::from_secs(60),
            jam_rate,
            ..FakeConfig::locker(4)
        },
    )
    .await
}

async fn ctx_of(dir: &std::path::Path, fc: FakeConfig) -> (Arc<Ctx<FakeLocks>>, Arc<FakeLocks>) {
    let profile = fc.profile;
    let fake = Arc::new(FakeLocks::new(fc));
    let boxes = fake.boxes();
    let outbox = Arc::new(Outbox::open(dir, Durability::Normal).await.expect("outbox"));
    let stats = Arc::new(AgentStats::default());
    let notify = Arc::new(Notify::new());
    let known = BoxNo::all(boxes)
        .map(|b| BoxState {
            box_no: b,
            door_open: false,
            occupied: Some(false),
        })
        .collect();
    let faults = Arc::new(
        Faults::load(
            outbox.clone(),
            boxes,
            Duration::from_millis(2_100),
            Duration::from_secs(120),
        )
        .await
        .expect("faults"),
    );
    let clock = Arc::new(Clock::default());
    let recorder = Arc::new(Recorder {
        clock: clock.clone(),
        known: Mutex::new(known),
        changed_at: Default::default(),
        outbox: outbox.clone(),
        notify: notify.clone(),
        stats: stats.clone(),
        faults,
    });
    // A client whose event loop never runs: acks queue up and are never sent, which is
    // what an agent without network does.
    let (client, _eventloop) = AsyncClient::new(MqttOptions::new("cab-t", "localhost", 1), 64);
    let cfg = AgentConfig {
        id: "cab-t".into(),
        data_dir: dir.to_path_buf(),
        jam_timeout_ms: 100,
        poll_interval_ms: 5,
        profile,
        ..AgentConfig::default()
    };
    let id = DeviceId::parse("cab-t").expect("id");
    let codes = Arc::new(
        CodeBook::load(id.clone(), outbox.clone(), cfg.lockout())
            .await
            .expect("code book"),
    );
    let staging = crate::update::Staging::load(
        &cfg.data_dir,
        None,
        protocol::release::Version::parse(crate::AGENT_VERSION).expect("version"),
    )
    .await;
    let central = crate::central::Central::load(&mut cfg.clone()).await;
    let ctx = Arc::new(Ctx {
        staging: Mutex::new(staging),
        clock,
        box_locks: (0..boxes).map(|_| Mutex::new(())).collect(),
        cfg,
        id,
        driver: fake.clone(),
        outbox,
        recorder,
        client,
        stats,
        notify,
        codes,
        health: std::sync::Mutex::new(HealthNow {
            lock_bus: BusHealth::Ok,
            power: Power::Unknown,
            station: None,
        }),
        started: Instant::now(),
        commands_in_flight: Default::default(),
        keypad_at: std::sync::Mutex::new(None),
        install: CancellationToken::new(),
        central: Mutex::new(central),
        restart: CancellationToken::new(),
        config_tx: tokio::sync::mpsc::channel(1).0,
        diagnosing: Mutex::new(()),
    });
    (ctx, fake)
}

/// Runs the sensor poll until `done` holds for the recorded fault changes.
async fn poll_until(
    ctx: &Arc<Ctx<FakeLocks>>,
    what: &str,
    done: impl Fn(&[(u16, FaultKind, bool)]) -> bool,
) -> Vec<(u16, FaultKind, bool)> {
    let cancel = CancellationToken::new();
    let task = tokio::spawn(watch(ctx.clone(), cancel.clone()));
    let deadline = Instant::now() + Duration::from_secs(5);
    let found = loop {
        let f = faults_in(&events(ctx).await);
        if done(&f) {
            break f;
        }
        assert!(Instant::now() < deadline, "{what}: only {f:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    cancel.cancel();
    let _ = task.await;
    found
}

#[tokio::test]
async fn diagnostics_answer_with_doctor_checks_log_lines_or_why_not() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (ctx, fake) = ctx(dir.path(), 0.0).await;
    let ask = |ask, expires_at| protocol::DiagnosticsRequest {
        v: 1,
        request_id: "d-1".into(),
        expires_at,
        ask,
    };
    let later = ctx.clock.now_ms() + 60_000;
    fake.set_bus_down(true);
    match crate::diagnose::body(&ctx, &ask(protocol::DiagnosticsAsk::Doctor, later)).await {
        protocol::DiagnosticsBody::Doctor { checks } => {
            let board = checks
                .iter()
                .find(|c| c.name == "lock board")
                .expect("board");
            assert!(!board.ok, "{checks:?}");
            let clock = checks.iter().find(|c| c.name == "clock").expect("clock");
            assert!(
                clock.ok && clock.detail.contains("of the server's"),
                "{checks:?}"
            );
        }
        other => panic!("not a doctor report: {other:?}"),
    }
    match crate::diagnose::body(
        &ctx,
        &ask(protocol::DiagnosticsAsk::Logs { lines: 5 }, later),
    )
    .await
    {
        protocol::DiagnosticsBody::Logs { lines, .. } => assert!(lines.len() <= 5),
        other => panic!("not logs: {other:?}"),
    }
    let expired = ask(protocol::DiagnosticsAsk::Doctor, ctx.clock.now_ms() - 1);
    match crate::diagnose::body(&ctx, &expired).await {
        protocol::DiagnosticsBody::Refused { reason } => assert!(reason.contains("expired")),
        other => panic!("not refused: {other:?}"),
    }
}

#[tokio::test]
async fn bus_power_and_tamper_are_raised_and_cleared_once() {
    let dir = tempfile::tempdir().expect("tmp");
    let (ctx, fake) = ctx(dir.path(), 0.0).await;
    fake.set_bus_down(true);
    fake.set_on_battery(true);
    fake.set_tamper(true);
    let raised = [
        (0, FaultKind::LockBusUnreachable, true),
        (0, FaultKind::OnBattery, true),
        (0, FaultKind::Tamper, true),
    ];
    let f = poll_until(&ctx, "raised", |f| raised.iter().all(|r| f.contains(r))).await;
    assert_eq!(f.len(), 3, "each raised once: {f:?}");
    assert!(matches!(
        ctx.health.lock().expect("health").lock_bus,
        BusHealth::Unreachable { .. }
    ));
    assert_eq!(ctx.health.lock().expect("health").power, Power::Battery);
    fake.set_bus_down(false);
    fake.set_on_battery(false);
    fake.set_tamper(false);
    let f = poll_until(&ctx, "cleared", |f| f.len() >= 6).await;
    let mut cleared: Vec<_> = f[3..].to_vec();
    cleared.sort();
    assert_eq!(
        cleared,
        vec![
            (0, FaultKind::LockBusUnreachable, false),
            (0, FaultKind::OnBattery, false),
            (0, FaultKind::Tamper, false),
        ]
    );
    assert_eq!(ctx.health.lock().expect("health").lock_bus, BusHealth::Ok);
}

#[tokio::test]
async fn station_peripherals_raise_their_faults() {
    let dir = tempfile::tempdir().expect("tmp");
    let (ctx, fake) = ctx_of(
        dir.path(),
        FakeConfig {
            profile: protocol::Profile::Printer,
            ..FakeConfig::locker(0)
        },
    )
    .await;
    fake.set_station(|s| {
        s.paper = protocol::Level::Low;
        s.paper_jam = true;
    })
    .expect("station");
    let f = poll_until(&ctx, "paper", |f| f.len() >= 2).await;
    assert_eq!(
        f,
        vec![
            (0, FaultKind::PaperLow, true),
            (0, FaultKind::PaperJam, true)
        ]
    );
    // Out replaces low; the jam is cleared.
    fake.set_station(|s| {
        s.paper = protocol::Level::Out;
        s.paper_jam = false;
    })
    .expect("station");
    let f = poll_until(&ctx, "out", |f| f.len() >= 5).await;
    assert_eq!(
        f[2..].to_vec(),
        vec![
            (0, FaultKind::PaperLow, false),
            (0, FaultKind::PaperOut, true),
            (0, FaultKind::PaperJam, false)
        ]
    );
    assert_eq!(
        ctx.health.lock().expect("health").lock_bus,
        BusHealth::Absent
    );
}

#[tokio::test]
async fn occupancy_changing_behind_a_shut_door_is_a_sensor_fault() {
    let dir = tempfile::tempdir().expect("tmp");
    let (ctx, _fake) = ctx(dir.path(), 0.0).await;
    let b1 = BoxNo::new(1).expect("box");
    let r = &ctx.recorder;
    // Behind a shut door: fault; the reading going back clears it.
    r.observe(b1, false, Some(true)).await.expect("observe");
    r.observe(b1, false, Some(false)).await.expect("observe");
    // A real use: pulse, open, place, shut; no fault.
    assert_eq!(open_and_record(&ctx, b1).await.0, AckStatus::Opened);
    r.observe(b1, true, Some(true)).await.expect("observe");
    r.observe(b1, false, Some(true)).await.expect("observe");
    // Emptied behind the shut door: fault; the door opening clears it (and is forced).
    r.observe(b1, false, Some(false)).await.expect("observe");
    r.observe(b1, true, Some(false)).await.expect("observe");
    let f: Vec<_> = faults_in(&events(&ctx).await)
        .into_iter()
        .filter(|f| f.1 == FaultKind::SensorFault)
        .collect();
    assert_eq!(
        f,
        vec![
            (1, FaultKind::SensorFault, true),
            (1, FaultKind::SensorFault, false),
            (1, FaultKind::SensorFault, true),
            (1, FaultKind::SensorFault, false),
        ]
    );
}

fn faults_in(events: &[EventBody]) -> Vec<(u16, FaultKind, bool)> {
    events
        .iter()
        .filter_map(|e| match e {
            EventBody::Fault {
                box_no,
                fault,
                active,
                ..
            } => Some((box_no.map_or(0, BoxNo::get), *fault, *active)),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn a_door_opened_without_a_pulse_is_forced_open_once() {
    let dir = tempfile::tempdir().expect("tmp");
    let b2 = BoxNo::new(2).expect("box");
    {
        let (ctx, fake) = ctx(dir.path(), 0.0).await;
        fake.open_by_hand(b2).expect("open");
        ctx.recorder
            .observe(b2, true, Some(false))
            .await
            .expect("observe");
        // The same reading again changes nothing.
        ctx.recorder
            .observe(b2, true, Some(false))
            .await
            .expect("observe");
        assert_eq!(
            faults_in(&events(&ctx).await),
            vec![(2, FaultKind::ForcedOpen, true)]
        );
        ctx.outbox.close().await;
    }
    // A restart with the door still open does not raise it again.
    let (ctx, _fake) = ctx(dir.path(), 0.0).await;
    assert!(
        ctx.recorder
            .faults
            .is_active(Some(b2), FaultKind::ForcedOpen)
    );
    assert!(
        !ctx.recorder
            .faults
            .raise(Some(b2), FaultKind::ForcedOpen, String::new(), now_ms())
            .await
            .expect("raise"),
        "raised twice"
    );
}

#[tokio::test]
async fn a_pulsed_door_is_not_forced_and_closing_clears() {
    let dir = tempfile::tempdir().expect("tmp");
    let (ctx, fake) = ctx(dir.path(), 0.0).await;
    let b1 = BoxNo::new(1).expect("box");
    assert_eq!(open_and_record(&ctx, b1).await.0, AckStatus::Opened);
    assert!(
        faults_in(&events(&ctx).await).is_empty(),
        "a pulsed open is no fault"
    );
    fake.close(b1).expect("close");
    ctx.recorder
        .observe(b1, false, Some(false))
        .await
        .expect("observe");
    // Now by hand: forced; closing clears it, once.
    fake.open_by_hand(b1).expect("open");
    ctx.recorder
        .observe(b1, true, Some(false))
        .await
        .expect("observe");
    ctx.recorder
        .observe(b1, false, Some(false))
        .await
        .expect("observe");
    assert_eq!(
        faults_in(&events(&ctx).await),
        vec![
            (1, FaultKind::ForcedOpen, true),
            (1, FaultKind::ForcedOpen, false)
        ]
    );
}

#[tokio::test]
async fn a_jam_is_raised_and_cleared_by_the_next_good_pulse() {
    let dir = tempfile::tempdir().expect("tmp");
    let b3 = BoxNo::new(3).expect("box");
    {
        let (jammy, _fake) = ctx(dir.path(), 1.0).await;
        assert_eq!(open_and_record(&jammy, b3).await.0, AckStatus::Jammed);
        assert_eq!(open_and_record(&jammy, b3).await.0, AckStatus::Jammed);
        jammy.outbox.close().await;
    }
    // Repaired and restarted: the first good pulse clears the jam.
    let (fixed, _fake) = ctx(dir.path(), 0.0).await;
    assert_eq!(open_and_record(&fixed, b3).await.0, AckStatus::Opened);
    assert_eq!(
        faults_in(&events(&fixed).await),
        vec![
            (3, FaultKind::LockJam, true),
            (3, FaultKind::LockJam, false)
        ]
    );
}

#[tokio::test]
async fn a_keypad_lock_is_a_fault_while_it_lasts_also_across_a_restart() {
    let dir = tempfile::tempdir().expect("tmp");
    {
        let (ctx, _fake) = ctx(dir.path(), 0.0).await;
        ctx.outbox
            .lock_keypad(now_ms() + 300, 5, now_ms())
            .await
            .expect("lock");
        ctx.outbox.close().await;
    }
    // Restarted while locked: the code book knows, and the fault is raised once.
    let (ctx, _fake) = ctx(dir.path(), 0.0).await;
    let until = sync_lockout_fault(&ctx).await.expect("locked");
    assert!(sync_lockout_fault(&ctx).await.is_some());
    sleep_until_ms(&Clock::default(), Some(until)).await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    assert_eq!(sync_lockout_fault(&ctx).await, None);
    assert_eq!(
        faults_in(&events(&ctx).await),
        vec![
            (0, FaultKind::KeypadLocked, true),
            (0, FaultKind::KeypadLocked, false)
        ]
    );
}

const MASTER: &[u8] = b"test master secret";

/// A grant set as the server would send it: (item, box, code, window, needs deposit).
fn sync(version: u64, grants: &[(&str, u16, &str, i64, i64, bool)]) -> CodeSync {
    let device = DeviceId::parse("cab-t").expect("id");
    let key = protocol::code::CabinetKey::derive(MASTER, &device);
    let salt = [7u8; 16];
    CodeSync {
        v: 1,
        version,
        key: key.to_hex(),
        grants: grants
            .iter()
            .map(|(item, b, code, nb, na, dep)| {
                let item = protocol::ItemId::parse(item).expect("item");
                let box_no = BoxNo::new(*b).expect("box");
                let binding = protocol::code::Binding {
                    device: &device,
                    item: &item,
                    box_no,
                    not_before: *nb,
                    not_after: *na,
                };
                protocol::CodeGrant {
                    tag: protocol::code::code_tag(&key, &binding, code),
                    item,
                    box_no,
                    not_before: *nb,
                    not_after: *na,
                    needs_deposit: *dep,
                    pickup: *dep,
                }
            })
            .collect(),
        staff: vec![protocol::StaffCredential {
            staff: protocol::StaffId::parse("helper-1").expect("staff"),
            salt: "07".repeat(16),
            hash: protocol::code::staff_hash("card-0042", &salt, 10),
            iterations: 10,
        }],
        report_since: None,
    }
}

/// Item it-1, box 1, code 48151623, valid for ten minutes.
async fn one_grant(ctx: &Ctx<FakeLocks>, now: i64) {
    let s = sync(
        1,
        &[("it-1", 1, "48151623", now - 1000, now + 600_000, false)],
    );
    assert!(ctx.codes.apply(s, now).await.expect("apply"));
}

fn code(c: &str) -> KeypadEntry {
    KeypadEntry::Code(c.into())
}

fn opened(b: u16) -> EntryOutcome {
    EntryOutcome::Opened {
        box_no: BoxNo::new(b).expect("box"),
        status: AckStatus::Opened,
    }
}

fn rejected(reason: RejectReason) -> EntryOutcome {
    EntryOutcome::Rejected { reason }
}

async fn events(ctx: &Ctx<FakeLocks>) -> Vec<EventBody> {
    ctx.outbox
        .read_after(0, 1000)
        .await
        .expect("read")
        .into_iter()
        .map(|e| e.body)
        .collect()
}

/// A poll's reading taken before a pulse's outcome (or the keypad, or the simulator)
/// recorded a newer state is stale: recording it would log a change back and forth.
#[tokio::test]
async fn a_reading_older_than_the_last_record_is_dropped() {
    let dir = tempfile::tempdir().expect("tmp");
    let (ctx, _fake) = ctx(dir.path(), 0.0).await;
    let b = BoxNo::new(1).expect("box");
    let read_at = Instant::now();
    assert!(
        ctx.recorder
            .observe(b, true, Some(false))
            .await
            .expect("record")
    );
    let stale = ctx
        .recorder
        .observe_reading(b, false, Some(false), read_at)
        .await
        .expect("stale");
    assert!(!stale, "a reading from before the record");
    let fresh = ctx
        .recorder
        .observe_reading(b, false, Some(false), Instant::now())
        .await
        .expect("fresh");
    assert!(fresh, "the next poll's reading is the truth");
    let doors: Vec<EventBody> = events(&ctx)
        .await
        .into_iter()
        .filter(|e| matches!(e, EventBody::Door { .. }))
        .collect();
    assert_eq!(doors.len(), 2, "{doors:?}");
}

#[tokio::test]
async fn a_code_opens_its_box_once_also_after_a_restart() {
    let dir = tempfile::tempdir().expect("tmp");
    let now = now_ms();
    {
        let (ctx, fake) = ctx(dir.path(), 0.0).await;
        assert!(
            ctx.codes
                .apply(
                    sync(
                        1,
                        &[("it-1", 2, "48151623", now - 1000, now + 60_000, false)]
                    ),
                    now
                )
                .await
                .expect("apply")
        );
        assert_eq!(handle_entry(&ctx, code("48151623")).await, opened(2));
        fake.close(BoxNo::new(2).expect("box")).expect("close");
        assert_eq!(
            handle_entry(&ctx, code("48151623")).await,
            rejected(RejectReason::Used)
        );
        assert_eq!(fake.pulses(), 1);
        let ev = events(&ctx).await;
        assert!(ev.iter().any(|e| matches!(e, EventBody::CodeUsed { item, status: AckStatus::Opened, .. } if item.as_str() == "it-1")));
        assert!(
            ev.iter()
                .any(|e| matches!(e, EventBody::CodesApplied { version: 1, .. }))
        );
        ctx.outbox.close().await;
    }
    // A restart, and the server (not yet told) sends the same grant again.
    let (ctx, fake) = ctx(dir.path(), 0.0).await;
    assert!(
        ctx.codes
            .apply(
                sync(
                    2,
                    &[("it-1", 2, "48151623", now - 1000, now + 60_000, false)]
                ),
                now
            )
            .await
            .expect("apply")
    );
    assert_eq!(
        handle_entry(&ctx, code("48151623")).await,
        rejected(RejectReason::Used)
    );
    assert_eq!(fake.pulses(), 0);
}

#[tokio::test]
async fn a_restored_servers_set_is_answered_with_what_the_cabinet_knows() {
    let dir = tempfile::tempdir().expect("tmp");
    let (ctx, _fake) = ctx(dir.path(), 0.0).await;
    let now = now_ms();
    let grants = [
        ("used-here", 1, "11111111", now - 1000, now + 60_000, false),
        ("waiting", 2, "22222222", now - 1000, now + 60_000, true),
        ("gone-by", 3, "33333333", now - 120_000, now - 60_000, false),
    ];
    let restored = |version, grants: &[(&str, u16, &str, i64, i64, bool)]| CodeSync {
        report_since: Some(now - 1000),
        ..sync(version, grants)
    };
    assert!(ctx.codes.apply(sync(1, &grants), now).await.expect("apply"));
    assert_eq!(handle_entry(&ctx, code("11111111")).await, opened(1));
    // The server heard of the use and leaves the grant out: nothing to say.
    assert!(
        ctx.codes
            .apply(sync(2, &grants[1..]), now)
            .await
            .expect("apply")
    );
    // Restored from a backup older than all of it, it knows none of them and asks.
    assert!(ctx.codes.apply(restored(3, &[]), now).await.expect("apply"));
    // One that missed the use sends the used grant again.
    assert!(
        ctx.codes
            .apply(restored(4, &grants[..1]), now)
            .await
            .expect("apply")
    );
    let applied: Vec<_> = events(&ctx)
        .await
        .into_iter()
        .filter_map(|e| match e {
            EventBody::CodesApplied {
                version,
                spent,
                dropped,
            } => Some((version, spent, dropped)),
            _ => None,
        })
        .collect();
    assert_eq!(applied.len(), 4, "{applied:?}");
    for quiet in &applied[..2] {
        assert!(
            quiet.1.is_empty() && quiet.2.is_empty(),
            "unasked: {quiet:?}"
        );
    }
    // Left out: the one still in its window, with its tag and flow, and the one used here
    // (its grant kept with the use); not the one past its window and never used.
    let dropped: Vec<(&str, bool, bool)> = applied[2]
        .2
        .iter()
        .map(|d| (d.grant.item.as_str(), d.used_at.is_some(), d.grant.pickup))
        .collect();
    assert_eq!(
        dropped,
        vec![("waiting", false, true), ("used-here", true, false)]
    );
    assert_eq!(applied[2].2[0].grant, sync(9, &grants[1..2]).grants[0]);
    assert_eq!(applied[2].2[1].grant, sync(9, &grants[..1]).grants[0]);
    let spent: Vec<&str> = applied[3].1.iter().map(|s| s.item.as_str()).collect();
    assert_eq!(spent, vec!["used-here"]);
    assert!(applied[3].1[0].used_at >= now);
}

#[tokio::test]
async fn windows_deposits_and_other_cabinets_codes_are_judged_locally() {
    let dir = tempfile::tempdir().expect("tmp");
    let (ctx, fake) = ctx(dir.path(), 0.0).await;
    let now = now_ms();
    let s = sync(
        5,
        &[
            ("early", 1, "11111111", now + 60_000, now + 120_000, false),
            ("late", 2, "22222222", now - 120_000, now - 60_000, false),
            ("pickup", 3, "33333333", now - 1000, now + 60_000, true),
        ],
    );
    assert!(ctx.codes.apply(s.clone(), now).await.expect("apply"));
    assert!(
        !ctx.codes.apply(s, now).await.expect("same version"),
        "a repeat is ignored"
    );
    assert_eq!(
        handle_entry(&ctx, code("11111111")).await,
        rejected(RejectReason::NotYetValid)
    );
    assert_eq!(
        handle_entry(&ctx, code("22222222")).await,
        rejected(RejectReason::Expired)
    );
    assert_eq!(
        handle_entry(&ctx, code("33333333")).await,
        rejected(RejectReason::NotReady)
    );
    // Staff load box 3 (offline as far as the agent knows): the pick-up code now works.
    let staff = KeypadEntry::Staff {
        credential: "card-0042".into(),
        box_no: 3,
    };
    assert_eq!(handle_entry(&ctx, staff).await, opened(3));
    fake.close(BoxNo::new(3).expect("box")).expect("close");
    assert_eq!(handle_entry(&ctx, code("33333333")).await, opened(3));
    assert_eq!(fake.pulses(), 2);
    let ev = events(&ctx).await;
    assert!(
        ev.iter().any(
            |e| matches!(e, EventBody::StaffOpen { staff, .. } if staff.as_str() == "helper-1")
        )
    );
    // None of that counted as guessing.
    assert_eq!(ctx.codes.locked_until(), 0);
}

#[tokio::test]
async fn five_wrong_codes_lock_the_keypad_across_a_restart() {
    let dir = tempfile::tempdir().expect("tmp");
    let now = now_ms();
    {
        let (ctx, fake) = ctx(dir.path(), 0.0).await;
        one_grant(&ctx, now).await;
        for wrong in ["00000001", "00000002", "12", "00000004"] {
            assert!(matches!(
                handle_entry(&ctx, code(wrong)).await,
                EntryOutcome::Rejected { .. }
            ));
        }
        let wrong_staff = KeypadEntry::Staff {
            credential: "card-9999".into(),
            box_no: 1,
        };
        assert!(matches!(
            handle_entry(&ctx, wrong_staff).await,
            EntryOutcome::LockedOut { .. }
        ));
        // Locked: even the right code is refused, and nothing is pulsed.
        assert!(matches!(
            handle_entry(&ctx, code("48151623")).await,
            EntryOutcome::LockedOut { .. }
        ));
        assert_eq!(fake.pulses(), 0);
        let ev = events(&ctx).await;
        assert_eq!(
            ev.iter()
                .filter(|e| matches!(e, EventBody::KeypadLocked { failures: 5, .. }))
                .count(),
            1
        );
        assert!(ev.iter().any(|e| matches!(
            e,
            EventBody::CodeRejected {
                reason: RejectReason::LockedOut,
                ..
            }
        )));
        ctx.outbox.close().await;
    }
    let (ctx, fake) = ctx(dir.path(), 0.0).await;
    assert!(
        matches!(
            handle_entry(&ctx, code("48151623")).await,
            EntryOutcome::LockedOut { .. }
        ),
        "a restart does not unlock"
    );
    assert_eq!(fake.pulses(), 0);
}

#[tokio::test]
async fn a_code_use_interrupted_by_a_restart_stays_spent_and_is_reported() {
    let dir = tempfile::tempdir().expect("tmp");
    let now = now_ms();
    {
        let (ctx, _fake) = ctx(dir.path(), 0.0).await;
        one_grant(&ctx, now).await;
        let m = ctx.codes.verify("48151623", now).expect("verifies");
        // Recorded as spent, then the process "dies" before the pulse is reported.
        assert!(ctx.codes.spend(&m, now).await.expect("spend"));
        ctx.outbox.close().await;
    }
    let (ctx, fake) = ctx(dir.path(), 0.0).await;
    assert_eq!(
        handle_entry(&ctx, code("48151623")).await,
        rejected(RejectReason::Used)
    );
    assert_eq!(fake.pulses(), 0);
    let unreported = ctx.outbox.unreported_code_uses().await.expect("read");
    assert_eq!(
        unreported.len(),
        1,
        "the test ctx does not run start(); start() reports these"
    );
}

fn open_cmd(id: &str, box_no: u16, expires_in_ms: i64) -> Command {
    Command {
        v: 1,
        command_id: CommandId::parse(id).expect("id"),
        issued_at: now_ms(),
        expires_at: now_ms() + expires_in_ms,
        action: CommandAction::Open {
            box_no: BoxNo::new(box_no).expect("box"),
        },
    }
}

async fn journal(ctx: &Ctx<FakeLocks>, id: &str) -> Option<outbox::Journal> {
    ctx.outbox
        .journal(&CommandId::parse(id).expect("id"))
        .await
        .expect("journal")
}

#[tokio::test]
async fn a_command_delivered_twice_pulses_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (ctx, fake) = ctx(dir.path(), 0.0).await;
    let cmd = open_cmd("c1", 2, 30_000);
    execute(ctx.clone(), cmd.clone()).await;
    execute(ctx.clone(), cmd).await;
    assert_eq!(fake.pulses(), 1);
    assert_eq!(
        journal(&ctx, "c1").await,
        Some(outbox::Journal::Done(AckStatus::Opened, None))
    );
}

#[tokio::test]
async fn an_expired_command_is_never_pulsed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (ctx, fake) = ctx(dir.path(), 0.0).await;
    execute(ctx.clone(), open_cmd("c2", 1, -1)).await;
    assert_eq!(fake.pulses(), 0);
    assert!(matches!(
        journal(&ctx, "c2").await,
        Some(outbox::Journal::Done(AckStatus::Expired, Some(_)))
    ));
    assert!(
        !fake
            .door_open(BoxNo::new(1).expect("box"))
            .await
            .expect("read")
    );
}

#[tokio::test]
async fn a_command_interrupted_by_a_restart_is_not_pulsed_again() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cmd = open_cmd("c3", 1, 30_000);
    {
        // The previous process journaled the command and died around the pulse.
        let (ctx, _) = ctx(dir.path(), 0.0).await;
        let b = BoxNo::new(1).expect("box");
        assert!(
            ctx.outbox
                .begin_command(&cmd.command_id, b, now_ms())
                .await
                .expect("begin")
        );
        ctx.outbox.close().await;
    }
    let (ctx, fake) = ctx(dir.path(), 0.0).await;
    execute(ctx.clone(), cmd).await;
    assert_eq!(fake.pulses(), 0);
    assert!(matches!(
        journal(&ctx, "c3").await,
        Some(outbox::Journal::Done(AckStatus::Failed, Some(_)))
    ));
}

#[tokio::test]
async fn outcomes_come_from_the_door_sensor() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (ctx, fake) = ctx(dir.path(), 1.0).await;
    execute(ctx.clone(), open_cmd("j1", 3, 30_000)).await;
    assert!(matches!(
        journal(&ctx, "j1").await,
        Some(outbox::Journal::Done(AckStatus::Jammed, Some(_)))
    ));
    fake.open_by_hand(BoxNo::new(4).expect("box"))
        .expect("open");
    execute(ctx.clone(), open_cmd("a1", 4, 30_000)).await;
    assert_eq!(
        journal(&ctx, "a1").await,
        Some(outbox::Journal::Done(AckStatus::AlreadyOpen, None))
    );
    assert_eq!(fake.pulses(), 1, "an open door is not pulsed");
    // Every outcome also went into the outbox as a durable event.
    let events = ctx.outbox.read_after(0, 100).await.expect("read");
    assert_eq!(
        events
            .iter()
            .filter(|e| matches!(e.body, EventBody::CommandResult { .. }))
            .count(),
        2
    );
}

/// The test agents' clock: this machine's, no skew, nothing learned.
fn now_ms() -> i64 {
    Clock::default().now_ms()
}

#[tokio::test]
async fn an_install_waits_while_someone_is_at_the_cabinet() {
    use crate::update::install::busy;
    let dir = tempfile::tempdir().expect("dir");
    let (ctx, _fake) = ctx(dir.path(), 0.0).await;
    assert_eq!(
        busy(&ctx).await.as_deref(),
        Some("not connected to the server")
    );
    ctx.stats.connected.store(true, Ordering::Relaxed);
    assert_eq!(busy(&ctx).await, None);

    ctx.recorder.known.lock().await[2].door_open = true;
    assert_eq!(busy(&ctx).await.as_deref(), Some("door 3 open"));
    ctx.recorder.known.lock().await[2].door_open = false;

    ctx.commands_in_flight.fetch_add(1, Ordering::Relaxed);
    assert_eq!(busy(&ctx).await.as_deref(), Some("1 command(s) under way"));
    ctx.commands_in_flight.fetch_sub(1, Ordering::Relaxed);

    // A citizen starts typing a code: the keypad loop notes it, and the cabinet is busy.
    let (keypad, keys) = SoftKeypad::new();
    let cancel = CancellationToken::new();
    let task = tokio::spawn(crate::entry::keypad_loop(
        ctx.clone(),
        keypad,
        cancel.clone(),
    ));
    assert_eq!(
        keys.enter(crate::KeypadEntry::Typing).await,
        Some(crate::EntryOutcome::Noted)
    );
    assert_eq!(
        busy(&ctx).await.as_deref(),
        Some("someone is using the keypad")
    );
    cancel.cancel();
    task.await.expect("keypad loop");
}

/// Central configuration: live settings take effect at once and are reported applied with
/// what is in effect; one that needs a restart is stored and reported waiting (this agent has
/// no supervisor, so it says the next start); an out-of-range set is refused by name and
/// nothing changes.
#[tokio::test]
async fn a_configuration_is_applied_live_stored_for_a_restart_or_refused() {
    use protocol::settings::Settings;
    use protocol::{ConfigProgress, ConfigSync};
    let dir = tempfile::tempdir().expect("tmp");
    let (ctx, _fake) = ctx(dir.path(), 0.0).await;
    let live = Settings {
        door_open_alarm_secs: Some(45),
        keypad_lockout_secs: Some(900),
        ..Default::default()
    };
    let sync = |version: &str, settings: Settings| ConfigSync {
        v: 1,
        version: version.into(),
        settings,
    };
    crate::central::on_sync(&ctx, sync("v-live", live.clone())).await;
    assert_eq!(
        ctx.recorder.faults.door_open_alarm(),
        Duration::from_secs(45)
    );
    assert_eq!(ctx.codes.lockout().lock_ms, 900_000);
    let stored = std::fs::read_to_string(dir.path().join(crate::central::FILE)).expect("stored");
    assert!(stored.contains("v-live"), "{stored}");

    let mut restart = live.clone();
    restart.heartbeat_secs = Some(17);
    crate::central::on_sync(&ctx, sync("v-restart", restart)).await;
    // Out of range: refused, the stored set and the live values stay.
    crate::central::on_sync(
        &ctx,
        sync(
            "v-bad",
            Settings {
                door_open_alarm_secs: Some(1),
                ..Default::default()
            },
        ),
    )
    .await;
    assert_eq!(
        ctx.recorder.faults.door_open_alarm(),
        Duration::from_secs(45)
    );
    let stored = std::fs::read_to_string(dir.path().join(crate::central::FILE)).expect("stored");
    assert!(stored.contains("v-restart"), "{stored}");

    let reports: Vec<(String, ConfigProgress, Option<String>)> = events(&ctx)
        .await
        .into_iter()
        .filter_map(|e| match e {
            EventBody::Config {
                version,
                state,
                reason,
                ..
            } => Some((version, state, reason)),
            _ => None,
        })
        .collect();
    assert_eq!(reports.len(), 3, "{reports:?}");
    assert_eq!(
        (reports[0].0.as_str(), reports[0].1),
        ("v-live", ConfigProgress::Applied)
    );
    assert_eq!(
        (reports[1].0.as_str(), reports[1].1),
        ("v-restart", ConfigProgress::WaitingRestart)
    );
    let why = reports[1].2.clone().unwrap_or_default();
    assert!(
        why.contains("heartbeat_secs") && why.contains("next start"),
        "{why}"
    );
    assert_eq!(reports[2].1, ConfigProgress::Refused);
    assert!(
        reports[2]
            .2
            .as_deref()
            .is_some_and(|r| r.contains("door_open_alarm_secs")),
        "{reports:?}"
    );
    assert!(
        !ctx.restart.is_cancelled(),
        "no supervisor: no restart asked"
    );
}
