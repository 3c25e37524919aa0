//! Alarms on SQLite and PostgreSQL: one open alarm per condition, flapping folded into one,
//! exactly-once fault events, operator acknowledgement and clearing with history.

use fleet_server::store::{AlarmAction, AlarmFilter, IngestBatch, Store};
use protocol::{BoxNo, DeviceId, Event, EventBody, FaultKind};

const NOW: i64 = 1_764_288_000_000;

fn fault(seq: u64, b: u16, kind: FaultKind, active: bool) -> IngestBatch {
    let d = DeviceId::parse("cab-f").expect("id");
    IngestBatch {
        received_at: NOW + seq as i64,
        events: vec![(
            d.clone(),
            Event {
                seq,
                ts: NOW + seq as i64,
                body: EventBody::Fault {
                    box_no: BoxNo::new(b).ok(),
                    fault: kind,
                    active,
                    evidence: format!("seen at {seq}"),
                },
            },
        )],
        snapshots: vec![],
        marks: [(d, seq)].into_iter().collect(),
    }
}

fn open_filter() -> AlarmFilter {
    AlarmFilter {
        state: Some("open".into()),
        limit: 100,
        ..AlarmFilter::default()
    }
}

fn all_filter() -> AlarmFilter {
    AlarmFilter {
        state: Some("all".into()),
        limit: 100,
        ..AlarmFilter::default()
    }
}

pub async fn a_flapping_door_is_one_alarm(store: Store) {
    let mut seq = 0;
    for _ in 0..1000 {
        for active in [true, false] {
            seq += 1;
            store
                .ingest(&fault(seq, 3, FaultKind::ForcedOpen, active))
                .await
                .expect("ingest");
        }
    }
    let all = store.alarms(&all_filter()).await.expect("alarms");
    assert_eq!(all.len(), 1, "{all:?}");
    assert_eq!((all[0].count, all[0].state.as_str()), (1000, "cleared"));
    assert_eq!(all[0].severity, "critical");
    assert_eq!(all[0].box_no, Some(3));
    // A retransmitted event changes nothing.
    store
        .ingest(&fault(1, 3, FaultKind::ForcedOpen, true))
        .await
        .expect("dup");
    assert_eq!(
        store.alarms(&all_filter()).await.expect("alarms")[0].count,
        1000
    );
    // Other boxes and kinds are alarms of their own.
    store
        .ingest(&fault(seq + 1, 3, FaultKind::DoorLeftOpen, true))
        .await
        .expect("ingest");
    store
        .ingest(&fault(seq + 2, 4, FaultKind::ForcedOpen, true))
        .await
        .expect("ingest");
    assert_eq!(store.alarms(&open_filter()).await.expect("open").len(), 2);
}

pub async fn operators_acknowledge_and_clear_with_history(store: Store) {
    store
        .ingest(&fault(1, 2, FaultKind::LockJam, true))
        .await
        .expect("ingest");
    let a = store.alarms(&open_filter()).await.expect("open").remove(0);
    assert_eq!(a.state, "active");
    let acked = match store
        .ack_alarm(&a.id, "token:night-desk", "technician called", NOW + 10)
        .await
        .expect("ack")
    {
        AlarmAction::Done(a) => a,
        _ => panic!("ack refused"),
    };
    assert_eq!(acked.state, "acknowledged");
    assert_eq!(acked.acked_by.as_deref(), Some("token:night-desk"));
    assert!(matches!(
        store.ack_alarm(&a.id, "x", "again", NOW + 11).await.expect("ack"),
        AlarmAction::WrongState(s) if s == "acknowledged"
    ));
    // Raised again while acknowledged: counted, still one alarm, still acknowledged.
    store
        .ingest(&fault(2, 2, FaultKind::LockJam, true))
        .await
        .expect("ingest");
    let now = store.alarm(&a.id).await.expect("alarm").expect("exists");
    assert_eq!((now.count, now.state.as_str()), (2, "acknowledged"));
    assert!(matches!(
        store
            .clear_alarm(&a.id, "token:night-desk", "lock replaced", NOW + 20)
            .await
            .expect("clear"),
        AlarmAction::Done(_)
    ));
    assert!(matches!(
        store
            .clear_alarm("nope", "x", "n", NOW)
            .await
            .expect("clear"),
        AlarmAction::NotFound
    ));
    let history: Vec<String> = store
        .alarm_history(&a.id)
        .await
        .expect("history")
        .into_iter()
        .map(|h| format!("{} by {}", h.state, h.actor))
        .collect();
    assert_eq!(
        history,
        [
            "active by device",
            "acknowledged by token:night-desk",
            "cleared by token:night-desk"
        ]
    );
    // Cleared by an operator: the next fault is a new alarm, not a reopening.
    store
        .ingest(&fault(3, 2, FaultKind::LockJam, true))
        .await
        .expect("ingest");
    assert_eq!(store.alarms(&all_filter()).await.expect("all").len(), 2);
}

pub async fn offline_devices_raise_one_alarm_and_suppress_their_boxes(store: Store) {
    use fleet_server::alarms::{AlarmSettings, sweep_once};
    use std::time::Duration;
    let d = DeviceId::parse("cab-f").expect("id");
    let settings = AlarmSettings {
        offline_grace: Duration::from_secs(1),
        escalate_after: Duration::from_secs(900),
    };
    store
        .ingest(&fault(1, 2, FaultKind::ForcedOpen, true))
        .await
        .expect("ingest");
    store
        .presence(&d, 1, true, "connected", NOW)
        .await
        .expect("on");
    store
        .presence(&d, 1, false, "keep-alive timeout", NOW + 1_000)
        .await
        .expect("off");
    // Inside the grace nothing is raised (a flap).
    sweep_once(&store, settings, NOW + 1_500)
        .await
        .expect("sweep");
    assert_eq!(store.alarms(&open_filter()).await.expect("open").len(), 1);
    sweep_once(&store, settings, NOW + 3_000)
        .await
        .expect("sweep");
    sweep_once(&store, settings, NOW + 4_000)
        .await
        .expect("sweep again");
    let open = store.alarms(&open_filter()).await.expect("open");
    let offline: Vec<_> = open.iter().filter(|a| a.kind == "device_offline").collect();
    assert_eq!(offline.len(), 1, "{open:?}");
    assert!(
        offline[0]
            .evidence
            .as_deref()
            .is_some_and(|e| e.contains("keep-alive timeout"))
    );
    let boxed = open
        .iter()
        .find(|a| a.kind == "forced_open")
        .expect("box alarm");
    assert!(
        boxed.suppressed,
        "the box alarm of an offline cabinet is suppressed"
    );
    // Back online: the offline alarm clears, the box alarm is no longer suppressed.
    store
        .presence(&d, 2, true, "connected", NOW + 5_000)
        .await
        .expect("on");
    sweep_once(&store, settings, NOW + 5_500)
        .await
        .expect("sweep");
    let open = store.alarms(&open_filter()).await.expect("open");
    assert_eq!(open.len(), 1, "{open:?}");
    assert!(!open[0].suppressed);
    // Nobody acknowledged it for 15 minutes: it escalates, once.
    let later = NOW + 16 * 60_000;
    sweep_once(&store, settings, later).await.expect("sweep");
    sweep_once(&store, settings, later + 1_000)
        .await
        .expect("sweep");
    let a = store
        .alarm(&open[0].id)
        .await
        .expect("alarm")
        .expect("exists");
    assert_eq!(a.escalated_at, Some(later));
    let escalations = store
        .alarm_history(&a.id)
        .await
        .expect("history")
        .iter()
        .filter(|h| h.state == "escalated")
        .count();
    assert_eq!(escalations, 1);
}

on_both!(
    a_flapping_door_is_one_alarm,
    offline_devices_raise_one_alarm_and_suppress_their_boxes,
    operators_acknowledge_and_clear_with_history,
);
