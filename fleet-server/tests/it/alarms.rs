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
        ..IngestBatch::default()
    }
}

/// Sweep settings: an offline grace of `grace_secs`, escalation after 15 minutes.
fn settings(
    grace_secs: u64,
    notify_per_site_hour: i64,
) -> fleet_server::runtime::alarms::AlarmSettings {
    fleet_server::runtime::alarms::AlarmSettings {
        offline_grace: std::time::Duration::from_secs(grace_secs),
        escalate_after: std::time::Duration::from_secs(900),
        notify_per_site_hour,
        lang: l10n::Lang::En,
        utc_offset_minutes: 0,
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

pub(crate) async fn a_flapping_door_is_one_alarm(store: Store) {
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
    assert_eq!(all[0].severity.as_str(), "critical");
    assert_eq!(all[0].box_no.map(|b| b.get()), Some(3));
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

pub(crate) async fn operators_acknowledge_and_clear_with_history(store: Store) {
    store
        .ingest(&fault(1, 2, FaultKind::LockJam, true))
        .await
        .expect("ingest");
    let a = store.alarms(&open_filter()).await.expect("open").remove(0);
    assert_eq!(a.state.as_str(), "active");
    let acked = match store
        .ack_alarm(&a.id, "token:night-desk", "technician called", NOW + 10)
        .await
        .expect("ack")
    {
        AlarmAction::Done(a) => a,
        _ => panic!("ack refused"),
    };
    assert_eq!(acked.state.as_str(), "acknowledged");
    assert_eq!(acked.acked_by.as_deref(), Some("token:night-desk"));
    assert!(matches!(
        store.ack_alarm(&a.id, "x", "again", NOW + 11).await.expect("ack"),
        AlarmAction::WrongState(s) if s.as_str() == "acknowledged"
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

pub(crate) async fn offline_devices_raise_one_alarm_and_suppress_their_boxes(store: Store) {
    use fleet_server::runtime::alarms::{Hearing, sweep_once};
    let d = DeviceId::parse("cab-f").expect("id");
    let settings = settings(1, 10);
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
    sweep_once(&store, settings, NOW + 1_500, Hearing::Since(0))
        .await
        .expect("sweep");
    assert_eq!(store.alarms(&open_filter()).await.expect("open").len(), 1);
    sweep_once(&store, settings, NOW + 3_000, Hearing::Since(0))
        .await
        .expect("sweep");
    sweep_once(&store, settings, NOW + 4_000, Hearing::Since(0))
        .await
        .expect("sweep again");
    let open = store.alarms(&open_filter()).await.expect("open");
    let offline: Vec<_> = open
        .iter()
        .filter(|a| a.kind.as_str() == "device_offline")
        .collect();
    assert_eq!(offline.len(), 1, "{open:?}");
    assert!(
        offline[0]
            .evidence
            .as_deref()
            .is_some_and(|e| e.contains("keep-alive timeout"))
    );
    let boxed = open
        .iter()
        .find(|a| a.kind.as_str() == "forced_open")
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
    sweep_once(&store, settings, NOW + 5_500, Hearing::Since(0))
        .await
        .expect("sweep");
    let open = store.alarms(&open_filter()).await.expect("open");
    assert_eq!(open.len(), 1, "{open:?}");
    assert!(!open[0].suppressed);
    // Nobody acknowledged it for 15 minutes: it escalates, once.
    let later = NOW + 16 * 60_000;
    sweep_once(&store, settings, later, Hearing::Since(0))
        .await
        .expect("sweep");
    sweep_once(&store, settings, later + 1_000, Hearing::Since(0))
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
        .filter(|h| h.state.as_str() == "escalated")
        .count();
    assert_eq!(escalations, 1);
}

fn heartbeat(at: i64) -> IngestBatch {
    let d = DeviceId::parse("cab-f").expect("id");
    IngestBatch {
        received_at: at,
        heartbeats: vec![(
            d,
            protocol::Heartbeat {
                v: 1,
                ts: at,
                interval_s: 2,
                profile: protocol::Profile::Locker,
                uptime_s: 1,
                lock_bus: protocol::BusHealth::Unreachable {
                    detail: "board 1 silent".into(),
                },
                power: protocol::Power::Mains,
                outbox_pending: 3,
                station: None,
                clock_offset_ms: None,
            },
            at,
        )],
        ..IngestBatch::default()
    }
}

/// `cab-f` connected at `NOW` and its first heartbeat 100 ms later.
async fn connected_and_beating(store: &Store) -> DeviceId {
    let d = DeviceId::parse("cab-f").expect("id");
    store
        .presence(&d, 1, true, "connected", NOW)
        .await
        .expect("on");
    store.ingest(&heartbeat(NOW + 100)).await.expect("beat");
    d
}

pub(crate) async fn a_hung_agent_behind_a_live_session_goes_offline_and_comes_back(store: Store) {
    use fleet_server::runtime::alarms::{Hearing, sweep_once};
    let d = connected_and_beating(&store).await;
    let settings = settings(1, 10);
    let dev = store.device(&d).await.expect("query").expect("device");
    assert_eq!(dev.device.layers.session, "up");
    assert_eq!(dev.device.layers.lock_bus, "unreachable");
    assert_eq!(dev.device.outbox_pending, Some(3));
    // Two intervals (4 s) plus the grace (1 s) after the last heartbeat: not yet, then yes.
    sweep_once(&store, settings, NOW + 5_000, Hearing::Since(0))
        .await
        .expect("sweep");
    assert!(store.alarms(&open_filter()).await.expect("open").is_empty());
    sweep_once(&store, settings, NOW + 5_200, Hearing::Since(0))
        .await
        .expect("sweep");
    sweep_once(&store, settings, NOW + 6_000, Hearing::Since(0))
        .await
        .expect("sweep again");
    let open = store.alarms(&open_filter()).await.expect("open");
    assert_eq!(open.len(), 1, "{open:?}");
    assert_eq!(open[0].kind.as_str(), "device_offline");
    assert!(
        open[0]
            .evidence
            .as_deref()
            .is_some_and(|e| e.contains("no heartbeat")),
        "{open:?}"
    );
    // It beats again: the alarm clears; both transitions are in the presence log.
    store.ingest(&heartbeat(NOW + 7_000)).await.expect("beat");
    sweep_once(&store, settings, NOW + 7_100, Hearing::Since(0))
        .await
        .expect("sweep");
    assert!(store.alarms(&open_filter()).await.expect("open").is_empty());
    let log = store.presence_log(&d, 10).await.expect("log");
    let layers: Vec<(&str, bool)> = log.iter().map(|r| (r.layer.as_str(), r.online)).collect();
    assert_eq!(
        layers,
        vec![("heartbeat", true), ("heartbeat", false), ("session", true)]
    );
}

/// A replica that lost its link to the broker did not hear heartbeats: silence while deaf
/// is no evidence, and after the link returns it counts only from then.
pub(crate) async fn heartbeats_a_deaf_replica_missed_are_not_held_against_a_device(store: Store) {
    use fleet_server::runtime::alarms::{Hearing, sweep_once};
    connected_and_beating(&store).await;
    let settings = settings(1, 10);
    // Deaf from before the heartbeats went missing until well past two intervals and the
    // grace (5.1 s): nothing raised.
    sweep_once(&store, settings, NOW + 9_000, Hearing::Deaf)
        .await
        .expect("sweep");
    assert!(store.alarms(&open_filter()).await.expect("open").is_empty());
    // Hearing again since NOW + 9 s: not before two intervals and the grace from then...
    let heard = Hearing::Since(NOW + 9_000);
    sweep_once(&store, settings, NOW + 13_900, heard)
        .await
        .expect("sweep");
    assert!(store.alarms(&open_filter()).await.expect("open").is_empty());
    // ...and then, still silent, it is offline.
    sweep_once(&store, settings, NOW + 14_100, heard)
        .await
        .expect("sweep");
    let open = store.alarms(&open_filter()).await.expect("open");
    assert_eq!(open.len(), 1, "{open:?}");
    assert_eq!(open[0].kind.as_str(), "device_offline");
}

pub(crate) async fn on_duty_staff_hear_of_alarms_within_the_site_rate_limit(store: Store) {
    use fleet_server::runtime::alarms::{Hearing, sweep_once};
    use fleet_server::store::StaffRow;
    // Device cab-f stands in site "hall"; its alarms concern the hall's staff only.
    super::flows::hall(&store, "cab-f").await;
    let staff = |id: &str, site: &str, on_duty: bool| StaffRow {
        id: id.into(),
        name: id.into(),
        site_id: Some(site.into()),
        active: true,
        created_at: NOW,
        phone: None,
        on_duty,
    };
    for (id, site, phone, on) in [
        ("nina", "hall", Some("+8613800000001"), true),
        ("otto", "hall", Some("+8613800000002"), false),
        ("park", "park", Some("+8613800000003"), true),
        ("pete", "hall", None, false),
    ] {
        assert!(
            store
                .insert_staff(&staff(id, site, on), phone, "00", "ab", 1, "test")
                .await
                .expect("staff")
        );
    }
    let settings = settings(60, 2);
    // Three critical alarms and a warning at the same site.
    for (seq, b) in [(1, 1), (2, 2), (3, 3)] {
        store
            .ingest(&fault(seq, b, FaultKind::ForcedOpen, true))
            .await
            .expect("ingest");
    }
    store
        .ingest(&fault(4, 4, FaultKind::DoorLeftOpen, true))
        .await
        .expect("ingest");
    sweep_once(&store, settings, NOW + 10_000, Hearing::Since(0))
        .await
        .expect("sweep");
    sweep_once(&store, settings, NOW + 11_000, Hearing::Since(0))
        .await
        .expect("sweep again");
    let sms: Vec<_> = store
        .due_notifications(NOW + 20_000, 100)
        .await
        .expect("due")
        .into_iter()
        .filter(|n| n.event == "alarm")
        .collect();
    assert_eq!(sms.len(), 2, "two alarms told, to nina only: {sms:?}");
    for n in &sms {
        let body: serde_json::Value =
            serde_json::from_str(n.body.as_deref().expect("body")).expect("json");
        assert_eq!(body["to"], "+8613800000001");
        let text = body["text"].as_str().expect("text");
        assert!(
            text.contains("critical alarm: forced open at cab-f box "),
            "{text}"
        );
        assert!(text.contains("(Hall)"), "the site by its name: {text}");
    }
    let mut outcomes: Vec<_> = store
        .alarms(&open_filter())
        .await
        .expect("alarms")
        .into_iter()
        .map(|a| (a.kind.as_str().to_owned(), a.notify_outcome))
        .collect();
    outcomes.sort();
    assert_eq!(
        outcomes,
        vec![
            ("door_left_open".to_owned(), None),
            ("forced_open".to_owned(), Some("notified".to_owned())),
            ("forced_open".to_owned(), Some("notified".to_owned())),
            ("forced_open".to_owned(), Some("rate_limited".to_owned())),
        ],
        "a warning is told only when it escalates; the third alarm hit the limit"
    );
    // Nobody acknowledged them: escalations are told too, within the same limit (already
    // reached this hour), and the minor alarm now gets its turn an hour later.
    let later = NOW + 2 * 3_600_000;
    sweep_once(&store, settings, later, Hearing::Since(0))
        .await
        .expect("sweep");
    let escalated: Vec<_> = store
        .alarms(&open_filter())
        .await
        .expect("alarms")
        .into_iter()
        .filter(|a| a.escalated_at.is_some())
        .collect();
    assert_eq!(escalated.len(), 4);
    let told = escalated
        .iter()
        .filter(|a| a.notify_outcome.as_deref() == Some("notified"))
        .count();
    assert_eq!(told, 2, "{escalated:?}");
    let history = store
        .alarm_history(&escalated[0].id)
        .await
        .expect("history");
    assert!(
        history.iter().any(|h| h.state.as_str() == "notified"),
        "{history:?}"
    );
}

on_both!(
    on_duty_staff_hear_of_alarms_within_the_site_rate_limit,
    a_hung_agent_behind_a_live_session_goes_offline_and_comes_back,
    heartbeats_a_deaf_replica_missed_are_not_held_against_a_device,
    a_flapping_door_is_one_alarm,
    offline_devices_raise_one_alarm_and_suppress_their_boxes,
    operators_acknowledge_and_clear_with_history,
);
