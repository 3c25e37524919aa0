//! A history written at its own times (`fleet_server::backfill`, the demo's past) on SQLite and
//! PostgreSQL: it reads as if it had been lived — item history, audit, usage and unmet demand
//! dated in the past and agreeing with a rebuild, SMS counted sent when they fell due, windows
//! ended by the sweep with no cabinet ever online, and what exists left alone.

use domain::flows::Size;
use fleet_server::ServerConfig;
use fleet_server::backfill::Backfill;
use fleet_server::secrets::Secrets;
use fleet_server::service::{Reservation, ReservationRequest, ServiceError};
use fleet_server::store::usage::{Bucket, Scope, UsageQuery};
use fleet_server::store::{SiteRow, Store};
use protocol::{AckStatus, BoxNo, EventBody, ItemId, RejectReason, StaffId};

use crate::flows::{HOUR, NOW, b, dev};

const DAY: i64 = 24 * HOUR;
const MIN: i64 = 60_000;

fn request(flow: &str) -> ReservationRequest {
    ReservationRequest {
        flow: flow.into(),
        case_number: "GZ2026-000042".into(),
        phone: "13812345678".into(),
        site_id: Some("hall".into()),
        device_id: None,
        near: None,
        size: None,
        accessible: false,
        valid_from: None,
        valid_until: None,
        deadline: None,
        idempotency_key: None,
        lang: None,
    }
}

fn box_of(r: &Reservation) -> BoxNo {
    BoxNo::new(u16::try_from(r.item.box_no).expect("box")).expect("box")
}

fn code_used(r: &Reservation) -> EventBody {
    EventBody::CodeUsed {
        item: ItemId::parse(&r.reservation_id).expect("item id"),
        box_no: box_of(r),
        status: AckStatus::Opened,
    }
}

fn staff_open(staff: &StaffId, box_no: BoxNo) -> EventBody {
    EventBody::StaffOpen {
        staff: staff.clone(),
        box_no,
        status: AckStatus::Opened,
    }
}

async fn states(store: &Store, id: &str) -> Vec<(i64, String)> {
    store
        .item_history(id)
        .await
        .expect("history")
        .into_iter()
        .map(|h| (h.at, h.state))
        .collect()
}

pub(crate) async fn a_history_reads_as_if_it_had_been_lived(store: Store) {
    let dir = tempfile::tempdir().expect("tempdir");
    let secrets = Secrets::create(&dir.path().join("master.key"), 0).expect("secret");
    let cfg = ServerConfig {
        data_dir: dir.path().to_owned(),
        ..ServerConfig::default()
    };
    let db = Backfill::new(store.clone(), secrets, &cfg);
    let t0 = NOW - 10 * DAY;
    let cab = dev("cab-h");
    let hall = SiteRow {
        id: "hall".into(),
        kind: domain::flows::SiteKind::ServiceHall,
        name: "Hall".into(),
        address: String::new(),
        lat: 23.0,
        lon: 113.0,
        lang: None,
        time_zone: None,
        created_at: 0,
        updated_at: 0,
    };
    assert!(db.site(&hall, t0).await.expect("site"));
    let boxes = [(b(1), Size::S, false), (b(2), Size::S, false)];
    assert!(
        db.cabinet(&cab, "hall", "Hall", &boxes, t0)
            .await
            .expect("cabinet")
    );
    assert!(
        db.staff("helper-1", "Li", Some("hall"), "card-0042", None, false, t0)
            .await
            .expect("staff")
    );
    let helper = StaffId::parse("helper-1").expect("staff id");

    // In time order, as the live server meets them. A licence booked at 9:00 and
    // deposited at 10:00 (its holder comes the next evening, below).
    let p = db
        .reserve(request("pickup"), "platform", t0 + 9 * HOUR)
        .await
        .expect("pick-up");
    assert!(
        p.code.is_some(),
        "the code is handed out, as to the platform"
    );
    db.keypad(&cab, &staff_open(&helper, box_of(&p)), t0 + 10 * HOUR)
        .await
        .expect("deposit");
    // Documents dropped 20 minutes after booking (a typo first), collected on the 16:30 round.
    let d = db
        .reserve(request("dropoff"), "platform", t0 + 14 * HOUR)
        .await
        .expect("drop-off");
    let typo = EventBody::CodeRejected {
        reason: RejectReason::Unknown,
        item: None,
    };
    db.keypad(&cab, &typo, t0 + 14 * HOUR + 19 * MIN)
        .await
        .expect("typo");
    db.keypad(&cab, &code_used(&d), t0 + 14 * HOUR + 20 * MIN)
        .await
        .expect("dropped");
    // Both boxes hold something at 15:00: a third is refused, and counted then.
    match db
        .reserve(request("dropoff"), "platform", t0 + 15 * HOUR)
        .await
    {
        Err(ServiceError::NoFreeBox { .. }) => {}
        other => panic!("expected no free box, got {other:?}"),
    }
    db.keypad(
        &cab,
        &staff_open(&helper, box_of(&d)),
        t0 + 16 * HOUR + 30 * MIN,
    )
    .await
    .expect("collected by staff");
    db.keypad(&cab, &code_used(&p), t0 + 33 * HOUR)
        .await
        .expect("collected");
    // Nobody comes for this one: its 48 h window ends and the sweep expires it, although no
    // cabinet was ever online (the live sweep would wait for one).
    let n = db
        .reserve(request("dropoff"), "platform", t0 + 40 * HOUR)
        .await
        .expect("no-show");
    db.sweep(t0 + 88 * HOUR + 2 * MIN).await.expect("sweep");

    assert_eq!(
        states(&store, &p.reservation_id).await,
        vec![
            (t0 + 9 * HOUR, "awaiting_deposit".into()),
            (t0 + 10 * HOUR, "in_box".into()),
            (t0 + 33 * HOUR, "picked_up".into()),
        ]
    );
    let d_states = states(&store, &d.reservation_id).await;
    assert_eq!(
        d_states.last(),
        Some(&(t0 + 16 * HOUR + 30 * MIN, "collected".into()))
    );
    let n_states = states(&store, &n.reservation_id).await;
    assert_eq!(
        n_states.last(),
        Some(&(t0 + 88 * HOUR + 2 * MIN, "expired".into()))
    );

    // The keypad's story is in the audit, at its times.
    let audit = store.audit(Some(&cab), None, 100).await.expect("audit");
    let at = |action: &str| -> Vec<i64> {
        let mut v: Vec<i64> = audit
            .iter()
            .filter(|a| a.action == action)
            .map(|a| a.ts)
            .collect();
        v.sort_unstable();
        v
    };
    assert_eq!(
        at("code_open"),
        vec![t0 + 14 * HOUR + 20 * MIN, t0 + 33 * HOUR]
    );
    assert_eq!(at("code_rejected"), vec![t0 + 14 * HOUR + 19 * MIN]);
    assert_eq!(at("staff_open").len(), 2);
    assert!(
        store.verify_audit().await.expect("verify").broken.is_none(),
        "the audit chain holds"
    );

    // Usage of the first day: 14 h of the licence (in from 10:00) and 2 h 10 min of the
    // documents in a box, two uses, one refusal; the boxes counted from t0 on.
    let first_day = UsageQuery {
        scope: Scope::Site("hall".into()),
        from: t0,
        to: t0 + DAY,
        bucket: Bucket::Day,
        utc_offset_ms: 0,
        now: NOW,
    };
    let day = store.usage(&first_day).await.expect("usage");
    let t = &day.totals;
    assert!((t.box_hours - 48.0).abs() < 1e-9, "{t:?}");
    assert!(
        (t.occupied_hours - (14.0 + 2.0 + 10.0 / 60.0)).abs() < 1e-6,
        "{t:?}"
    );
    assert_eq!((t.uses, t.unmet), (2, 1));
    store.rebuild_usage().await.expect("rebuild");
    let again = store.usage(&first_day).await.expect("usage");
    assert_eq!(
        again, day,
        "the rollups are what a rebuild from history makes"
    );

    // The SMS of the past count as sent when they fell due: the pick-up's when the licence
    // went in (not when it was booked), the drop-offs' when booked; none is left to send.
    let sent = db.deliver_notifications(NOW).await.expect("deliver");
    assert_eq!(sent, 3);
    assert!(
        store
            .due_notifications(NOW, 10)
            .await
            .expect("due")
            .is_empty()
    );
    let sent_at: Option<i64> = sqlx::query_scalar(
        "SELECT sent_at FROM notifications WHERE item_id = $1 AND state = 'sent'",
    )
    .bind(&p.reservation_id)
    .fetch_optional(store.writer_for_tests())
    .await
    .expect("sent_at");
    assert_eq!(sent_at, Some(t0 + 10 * HOUR));

    // What exists is left as it is: a history never rewrites the present.
    assert!(!db.site(&hall, t0 + DAY).await.expect("site again"));
    assert!(
        !db.cabinet(&cab, "hall", "Other", &boxes, t0 + DAY)
            .await
            .expect("cabinet again")
    );
    assert!(
        !db.staff("helper-1", "Li", Some("hall"), "card-0042", None, false, t0)
            .await
            .expect("staff again")
    );
    assert_eq!(
        store
            .cabinet(&cab)
            .await
            .expect("cabinet")
            .expect("cabinet")
            .name,
        "Hall"
    );
    assert_eq!(
        store.latest_item_activity().await.expect("latest"),
        Some(t0 + 88 * HOUR + 2 * MIN)
    );
}

on_both!(a_history_reads_as_if_it_had_been_lived);
