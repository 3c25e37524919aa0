//! Retention on SQLite and PostgreSQL: what a pass removes and what it must keep (events not
//! yet receipted, open alarms, unfinished commands, recent rows), box hours folded into days
//! with every daily figure unchanged, marks that let the next pass start where this one
//! stopped, and a pass told to stop between steps.

use domain::alarms::AlarmKind;
use fleet_server::store::retention::{Class, RetentionPolicy};
use fleet_server::store::usage::{Bucket, Level, RollupRow, Scope, UsageQuery, UsageReport};
use fleet_server::store::{IngestBatch, NewCommand, Store};
use protocol::{CommandId, CommandStatus, Event, EventBody};
use std::time::Duration;

use crate::flows::{HOUR, NOW, b, dev, hall};

const DAY: i64 = 24 * HOUR;
/// The pass runs 200 days after the cabinet was set up.
const RNOW: i64 = NOW + 200 * DAY;
/// Beijing: the days box hours fold into start at 16:00 UTC.
const OFFSET_MIN: i32 = 480;

fn policy() -> RetentionPolicy {
    RetentionPolicy {
        utc_offset_minutes: OFFSET_MIN,
        batch_rows: 200,
        pause: Duration::ZERO,
        ..RetentionPolicy::default()
    }
}

fn never() -> bool {
    false
}

/// `seqs` received at `at`, the device's receipt mark then `mark`.
async fn ingest(store: &Store, seqs: std::ops::RangeInclusive<u64>, at: i64, mark: u64) {
    let d = dev("cab-r");
    let events = seqs
        .map(|seq| {
            (
                d.clone(),
                Event {
                    seq,
                    ts: at,
                    body: EventBody::Door {
                        box_no: b(1),
                        open: seq % 2 == 1,
                    },
                },
            )
        })
        .collect();
    store
        .ingest(&IngestBatch {
            received_at: at,
            events,
            marks: [(d, mark)].into_iter().collect(),
            ..IngestBatch::default()
        })
        .await
        .expect("ingest");
}

async fn seqs(store: &Store) -> Vec<i64> {
    store
        .events(&dev("cab-r"), 0, 10_000)
        .await
        .expect("events")
        .iter()
        .map(|e| e.seq)
        .collect()
}

/// Local midnight (Beijing) at or before `t`.
fn local_day(t: i64) -> i64 {
    let off = i64::from(OFFSET_MIN) * 60_000;
    t - (t + off).rem_euclid(DAY)
}

/// Box 1's usage in `bucket`s over `[from, to)`, Beijing days.
async fn box_usage(store: &Store, bucket: Bucket, from: i64, to: i64) -> UsageReport {
    store
        .usage(&UsageQuery {
            scope: Scope::Box("cab-r".into(), 1),
            from,
            to,
            bucket,
            utc_offset_ms: i64::from(OFFSET_MIN) * 60_000,
            now: RNOW,
        })
        .await
        .expect("usage")
}

async fn box_days(store: &Store, from: i64, to: i64) -> UsageReport {
    box_usage(store, Bucket::Day, from, to).await
}

/// Hours of box 1 in `[from, to)` with a row of their own (a use in it).
async fn hour_rows(store: &Store, from: i64, to: i64) -> usize {
    let r = box_usage(store, Bucket::Hour, from, to).await;
    r.buckets.iter().filter(|f| f.uses > 0).count()
}

pub(crate) async fn a_pass_removes_what_is_old_and_keeps_what_is_not(store: Store) {
    hall(&store, "cab-r").await;
    let d = dev("cab-r");

    // Events: 1..=450 long ago and receipted; 451..=460 long ago but the receipt mark stops at
    // 455 (the cabinet still holds 456..); 461..=470 recent.
    ingest(&store, 1..=450, RNOW - 120 * DAY, 450).await;
    ingest(&store, 451..=460, RNOW - 100 * DAY, 455).await;
    ingest(&store, 461..=470, RNOW - 10 * DAY, 455).await;

    // Presence: three changes long ago, two recent.
    for (i, at) in [
        RNOW - 95 * DAY,
        RNOW - 94 * DAY,
        RNOW - 93 * DAY,
        RNOW - 5 * DAY,
        RNOW - DAY,
    ]
    .into_iter()
    .enumerate()
    {
        store
            .presence(&d, i as u64, i % 2 == 0, "test", at)
            .await
            .expect("presence");
    }

    // Commands: finished long ago (goes), finished recently and one still open (both stay).
    let mut ids = Vec::new();
    for (n, (created, finish)) in [
        (RNOW - 100 * DAY, true),
        (RNOW - 2 * DAY, true),
        (RNOW - 100 * DAY, false),
    ]
    .into_iter()
    .enumerate()
    {
        let id = CommandId::parse(&format!("c{n:031}")).expect("command id");
        store
            .create_command(&NewCommand {
                id: id.clone(),
                device: d.clone(),
                box_no: b(2),
                actor: "test".into(),
                reason: "retention".into(),
                idempotency_key: None,
                created_at: created,
                expires_at: created + 30_000,
                sent_at: Some(created),
            })
            .await
            .expect("command");
        if finish {
            store
                .advance_command(&id, CommandStatus::Opened, created + 1_000, None)
                .await
                .expect("advance");
        }
        ids.push(id);
    }

    // Alarms: one cleared long ago (goes with its history), one open as long (stays).
    store
        .server_alarm(
            "cab-r",
            AlarmKind::DeviceOffline,
            true,
            "gone",
            RNOW - 400 * DAY,
        )
        .await
        .expect("alarm");
    store
        .server_alarm(
            "cab-r",
            AlarmKind::DeviceOffline,
            false,
            "back",
            RNOW - 399 * DAY,
        )
        .await
        .expect("clear");
    store
        .server_alarm(
            "cab-r",
            AlarmKind::ClockSkew,
            true,
            "skew",
            RNOW - 398 * DAY,
        )
        .await
        .expect("open alarm");

    // Box hours: three whole local days 100 days ago, every hour used once, and one day of
    // hours 10 days ago.
    let old_day = local_day(RNOW - 100 * DAY);
    let new_day = local_day(RNOW - 10 * DAY);
    let mut rows = Vec::new();
    for start in [old_day, old_day + DAY, old_day + 2 * DAY, new_day] {
        for h in 0..24 {
            rows.push(RollupRow {
                key: "cab-r".into(),
                box_no: Some(1),
                hour: start + h * HOUR,
                occupied_ms: 1_000 * (h + 1),
                held_ms: 2_000 * (h + 1),
                oos_ms: 0,
                uses: 1,
                unmet: h % 2,
            });
        }
    }
    store
        .load_rollups(Level::Box, &rows)
        .await
        .expect("rollups");
    let days_before = box_days(&store, old_day, old_day + 3 * DAY).await;
    assert_eq!(days_before.totals.uses, 72, "{days_before:?}");
    assert_eq!(hour_rows(&store, old_day, old_day + 3 * DAY).await, 72);

    let report = store
        .retention_pass(&policy(), RNOW, &never)
        .await
        .expect("pass");

    // Events: the receipted old ones went, in several steps; 456.. stay.
    assert_eq!(report.of(Class::Events), 455);
    assert_eq!(seqs(&store).await, (456..=470).collect::<Vec<_>>());
    // Presence: the three old changes.
    assert_eq!(report.of(Class::Presence), 3);
    assert_eq!(store.presence_log(&d, 100).await.expect("log").len(), 2);
    // Commands: only the old finished one.
    assert_eq!(report.of(Class::Commands), 1);
    assert!(store.command(ids[0].as_str()).await.expect("c").is_none());
    assert!(store.command(ids[1].as_str()).await.expect("c").is_some());
    assert!(store.command(ids[2].as_str()).await.expect("c").is_some());
    // Alarms: the cleared one and its history rows; the open one stays.
    assert!(report.of(Class::Alarms) >= 2, "{report:?}");
    let left = store
        .alarms(&fleet_server::store::AlarmFilter {
            limit: 100,
            ..Default::default()
        })
        .await
        .expect("alarms");
    assert_eq!(left.len(), 1, "{left:?}");
    assert_eq!(left[0].kind, AlarmKind::ClockSkew);
    // Box hours: 3 old days of 24 rows became 3 rows; the recent day is untouched; every
    // daily figure reads as before.
    assert_eq!(report.of(Class::BoxHours), 69);
    let days_after = box_days(&store, old_day, old_day + 3 * DAY).await;
    assert_eq!(days_after.totals, days_before.totals);
    assert_eq!(days_after.buckets, days_before.buckets);
    assert_eq!(hour_rows(&store, old_day, old_day + 3 * DAY).await, 3);
    assert_eq!(hour_rows(&store, new_day, new_day + DAY).await, 24);
    // Items are kept by default.
    assert_eq!(report.of(Class::Items), 0);

    // The marks say how far each class was cleared; a second pass finds nothing.
    let marks = store.retention_marks().await.expect("marks");
    let events_mark = marks
        .iter()
        .find(|m| m.class == Class::Events)
        .expect("events mark");
    assert_eq!(events_mark.before, RNOW - 90 * DAY);
    assert_eq!(events_mark.rows, 455);
    let boxes_mark = marks
        .iter()
        .find(|m| m.class == Class::BoxHours)
        .expect("box mark");
    assert_eq!(boxes_mark.before, local_day(RNOW - 90 * DAY));
    let again = store
        .retention_pass(&policy(), RNOW + HOUR, &never)
        .await
        .expect("second pass");
    assert!(again.removed.iter().all(|(_, n)| *n == 0), "{again:?}");
    assert_eq!(
        box_days(&store, old_day, old_day + 3 * DAY).await.totals,
        days_before.totals
    );

    // Once the receipt mark moves on and the events age, they go too.
    ingest(&store, 471..=471, RNOW + 85 * DAY, 471).await;
    let later = store
        .retention_pass(&policy(), RNOW + 95 * DAY, &never)
        .await
        .expect("later pass");
    assert_eq!(later.of(Class::Events), 15);
    assert_eq!(seqs(&store).await, vec![471]);
}

pub(crate) async fn a_pass_told_to_stop_keeps_its_marks_where_they_were(store: Store) {
    hall(&store, "cab-r").await;
    ingest(&store, 1..=1_000, RNOW - 120 * DAY, 1_000).await;
    // Asked before the first class (go on) and after each step (stop).
    let asked = std::sync::atomic::AtomicU32::new(0);
    let stop = || asked.fetch_add(1, std::sync::atomic::Ordering::Relaxed) >= 1;
    let report = store
        .retention_pass(&policy(), RNOW, &stop)
        .await
        .expect("pass");
    // One step of 200, then it stopped: no class was finished, no mark moved.
    assert_eq!(report.of(Class::Events), 200);
    assert_eq!(seqs(&store).await.len(), 800);
    assert!(
        store
            .retention_marks()
            .await
            .expect("marks")
            .iter()
            .all(|m| m.before == 0),
        "a stopped pass must not claim its cutoff"
    );
    let rest = store
        .retention_pass(&policy(), RNOW, &never)
        .await
        .expect("pass");
    assert_eq!(rest.of(Class::Events), 800);
}

on_both!(
    a_pass_removes_what_is_old_and_keeps_what_is_not,
    a_pass_told_to_stop_keeps_its_marks_where_they_were,
);
