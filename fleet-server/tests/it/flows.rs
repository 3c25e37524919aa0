//! Storage of the service flows on SQLite and PostgreSQL: allocation, exactly-once keypad
//! events, time-up sweeps, late deposits, reminders, code material.

use domain::flows::{Flow, Size, Trigger};
use fleet_server::store::{
    IngestBatch, Issued, NewItem, Placement, Presence, SiteRow, StaffRow, Store,
};
use protocol::{AckStatus, BoxNo, DeviceId, Event, EventBody, ItemId, StaffId};

pub(crate) const NOW: i64 = 1_764_288_000_000;
pub(crate) const HOUR: i64 = 3_600_000;

pub(crate) fn dev(s: &str) -> DeviceId {
    DeviceId::parse(s).expect("id")
}

pub(crate) fn b(n: u16) -> BoxNo {
    BoxNo::new(n).expect("box")
}

/// A service hall at `NOW`.
pub(crate) async fn service_hall(store: &Store, id: &str) {
    store
        .upsert_site(
            &SiteRow {
                id: id.into(),
                kind: domain::flows::SiteKind::ServiceHall,
                name: "Hall".into(),
                address: String::new(),
                lat: 23.0,
                lon: 113.0,
                lang: None,
                time_zone: None,
                created_at: NOW,
                updated_at: NOW,
            },
            "test",
        )
        .await
        .expect("site");
}

/// Site "hall" with cabinet `cab` of boxes S, S(accessible), M, L.
pub(crate) async fn hall(store: &Store, cab: &str) {
    service_hall(store, "hall").await;
    store
        .upsert_cabinet(
            &dev(cab),
            "hall",
            "Entrance",
            &[
                (b(1), Size::S, false),
                (b(2), Size::S, true),
                (b(3), Size::M, false),
                (b(4), Size::L, false),
            ],
            NOW,
            "test",
        )
        .await
        .expect("cabinet");
}

pub(crate) fn item(id: &str, flow: Flow, size: Size, until: i64) -> NewItem {
    NewItem {
        id: ItemId::parse(id).expect("item"),
        flow,
        case_number: format!("CASE-{id}"),
        phone: "13812345678".into(),
        size,
        accessible: false,
        created_by: "platform".into(),
        idempotency_key: None,
        created_at: NOW,
        valid_from: NOW,
        valid_until: until,
        deadline: (flow == Flow::Supplement).then_some(until),
        due_by: (flow == Flow::Pickup).then_some(NOW + HOUR),
    }
}

pub(crate) fn issued(
    _: &str,
    _: &DeviceId,
    _: BoxNo,
    _: &[protocol::CodeGrant],
) -> Result<Issued, fleet_server::store::StoreError> {
    Ok(Issued {
        code_tag: "ab".repeat(32),
        sms_sealed: "sealed".into(),
    })
}

pub(crate) fn at_hall() -> Placement {
    Placement {
        sites: vec!["hall".into()],
        device: None,
    }
}

pub(crate) async fn reserve(store: &Store, it: NewItem) -> Option<i64> {
    store
        .reserve(&it, &at_hall(), issued)
        .await
        .expect("reserve")
        .map(|a| a.item.box_no)
}

pub(crate) fn keypad(device: &DeviceId, seq: u64, ts: i64, body: EventBody) -> IngestBatch {
    IngestBatch {
        received_at: ts,
        events: vec![(device.clone(), Event { seq, ts, body })],
        snapshots: vec![],
        marks: [(device.clone(), seq)].into_iter().collect(),
        ..IngestBatch::default()
    }
}

pub(crate) fn staff_open(box_no: u16) -> EventBody {
    EventBody::StaffOpen {
        staff: StaffId::parse("helper-1").expect("staff"),
        box_no: b(box_no),
        status: AckStatus::Opened,
    }
}

async fn state(store: &Store, id: &str) -> String {
    store
        .item(id)
        .await
        .expect("item")
        .expect("exists")
        .state
        .to_string()
}

pub(crate) async fn allocation_takes_the_smallest_fitting_free_box(store: Store) {
    hall(&store, "cab-a").await;
    let until = NOW + HOUR;
    assert_eq!(
        reserve(&store, item("i1", Flow::Dropoff, Size::S, until)).await,
        Some(1)
    );
    let mut accessible = item("i2", Flow::Dropoff, Size::S, until);
    accessible.accessible = true;
    assert_eq!(
        reserve(&store, accessible).await,
        Some(2),
        "the accessible box"
    );
    assert_eq!(
        reserve(&store, item("i3", Flow::Dropoff, Size::S, until)).await,
        Some(3),
        "M for S"
    );
    // Box 4 out of service: nothing is left, and the refusal is counted.
    assert!(
        store
            .set_box_service(&dev("cab-a"), b(4), false, Some("hinge"), NOW, "test")
            .await
            .expect("svc")
    );
    assert_eq!(
        reserve(&store, item("i4", Flow::Dropoff, Size::S, until)).await,
        None
    );
    assert_eq!(
        store.unmet_demand(0).await.expect("demand"),
        vec![(Some("hall".into()), 1)]
    );
    // Back in service; and a cancelled reservation frees its box.
    assert!(
        store
            .set_box_service(&dev("cab-a"), b(4), true, None, NOW, "test")
            .await
            .expect("svc")
    );
    assert_eq!(
        reserve(&store, item("i5", Flow::Dropoff, Size::L, until)).await,
        Some(4)
    );
    let cancelled = store
        .trigger_item("i1", Trigger::Cancel, "platform", None, NOW)
        .await
        .expect("cancel");
    assert!(cancelled.is_some());
    assert_eq!(
        reserve(&store, item("i6", Flow::Dropoff, Size::S, until)).await,
        Some(1)
    );
    let views = store.box_views(&dev("cab-a")).await.expect("views");
    assert!(
        views.iter().all(|v| v.state.as_str() == "reserved"),
        "{views:?}"
    );
}

pub(crate) async fn allocation_prefers_online_cabinets(store: Store) {
    hall(&store, "cab-a").await;
    hall(&store, "cab-b").await;
    store
        .presence(&dev("cab-b"), 1, true, "connected", NOW)
        .await
        .expect("online");
    let a = store
        .reserve(
            &item("o1", Flow::Dropoff, Size::S, NOW + HOUR),
            &at_hall(),
            issued,
        )
        .await
        .expect("reserve")
        .expect("a box");
    assert_eq!(
        a.item.device_id, "cab-b",
        "the online cabinet, though cab-a sorts first"
    );
    // When only the offline cabinet has room, it is used (its code arrives on reconnect).
    for i in 0..3 {
        reserve(
            &store,
            item(&format!("o{}", i + 2), Flow::Dropoff, Size::S, NOW + HOUR),
        )
        .await;
    }
    let last = store
        .reserve(
            &item("o9", Flow::Dropoff, Size::S, NOW + HOUR),
            &at_hall(),
            issued,
        )
        .await
        .expect("reserve")
        .expect("a box");
    assert_eq!(last.item.device_id, "cab-a");
}

pub(crate) async fn concurrent_reservations_never_share_a_box(store: Store) {
    hall(&store, "cab-c").await;
    let mut tasks = Vec::new();
    for i in 0..12 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            reserve(
                &store,
                item(&format!("c{i}"), Flow::Dropoff, Size::S, NOW + HOUR),
            )
            .await
        }));
    }
    let mut boxes = Vec::new();
    for t in tasks {
        if let Some(b) = t.await.expect("task") {
            boxes.push(b);
        }
    }
    boxes.sort();
    assert_eq!(boxes, vec![1, 2, 3, 4], "each box once");
    assert_eq!(store.unmet_demand(0).await.expect("demand")[0].1, 8);
}

pub(crate) async fn keypad_events_move_items_exactly_once(store: Store) {
    hall(&store, "cab-k").await;
    let d = dev("cab-k");
    assert_eq!(
        reserve(&store, item("p1", Flow::Pickup, Size::S, NOW + 24 * HOUR)).await,
        Some(1)
    );
    assert_eq!(state(&store, "p1").await, "awaiting_deposit");
    // Staff deposit: the item is in the box and its held code SMS is released.
    let (_, effects) = store
        .ingest_with_effects(&keypad(&d, 1, NOW + 1, staff_open(1)))
        .await
        .expect("ingest");
    assert_eq!(state(&store, "p1").await, "in_box");
    assert!(effects.notify && effects.codes_changed == vec![d.clone()]);
    let counts = store.notification_counts().await.expect("counts");
    assert!(
        counts.contains(&("sms".into(), "pending".into(), 1)),
        "{counts:?}"
    );
    // The retransmitted staff open changes nothing.
    store
        .ingest(&keypad(&d, 1, NOW + 1, staff_open(1)))
        .await
        .expect("again");
    assert_eq!(store.item_history("p1").await.expect("history").len(), 2);
    // Pick-up with the code frees the box.
    let used = EventBody::CodeUsed {
        item: ItemId::parse("p1").expect("id"),
        box_no: b(1),
        status: AckStatus::Opened,
    };
    store
        .ingest(&keypad(&d, 2, NOW + 2, used))
        .await
        .expect("used");
    assert_eq!(state(&store, "p1").await, "picked_up");
    // The box is taken by the next pick-up; a late duplicate of the old staff open must not
    // count as its deposit.
    assert_eq!(
        reserve(&store, item("p2", Flow::Pickup, Size::S, NOW + 24 * HOUR)).await,
        Some(1)
    );
    store
        .ingest(&keypad(&d, 1, NOW + 1, staff_open(1)))
        .await
        .expect("dup");
    assert_eq!(state(&store, "p2").await, "awaiting_deposit");
    // A staff open from long before p2 was reserved (an offline cabinet catching up) is not
    // p2's deposit either.
    store
        .ingest(&keypad(&d, 4, NOW - 3_600_000, staff_open(1)))
        .await
        .expect("old open");
    assert_eq!(state(&store, "p2").await, "awaiting_deposit");
    // The cabinet confirms its codes.
    store
        .ingest(&keypad(
            &d,
            3,
            NOW + 3,
            EventBody::CodesApplied {
                version: 42,
                spent: vec![],
                dropped: vec![],
            },
        ))
        .await
        .expect("applied");
    let cab = store.cabinet(&d).await.expect("cab").expect("exists");
    assert_eq!(cab.codes_applied, 42);
    let audit = store.audit(Some(&d), None, 100).await.expect("audit");
    assert_eq!(audit.iter().filter(|a| a.action == "staff_open").count(), 2);
    assert_eq!(audit.iter().filter(|a| a.action == "code_open").count(), 1);
}

pub(crate) async fn time_up_expires_overdues_and_staff_retrieve(store: Store) {
    hall(&store, "cab-t").await;
    let d = dev("cab-t");
    reserve(&store, item("d1", Flow::Dropoff, Size::S, NOW + HOUR)).await;
    reserve(&store, item("s1", Flow::Supplement, Size::S, NOW + HOUR)).await;
    reserve(&store, item("p1", Flow::Pickup, Size::M, NOW + HOUR)).await;
    store
        .ingest(&keypad(&d, 1, NOW, staff_open(3)))
        .await
        .expect("deposit");
    let later = NOW + 2 * HOUR;
    // Offline cabinets are not judged: a code may have been used there.
    assert!(
        store
            .items_timed_out(later, 60_000, 100, Presence::Live)
            .await
            .expect("due")
            .is_empty()
    );
    // A history written at its own times takes every cabinet as online throughout.
    assert_eq!(
        store
            .items_timed_out(later, 60_000, 100, Presence::Assumed)
            .await
            .expect("due")
            .len(),
        3
    );
    store
        .presence(&d, 1, true, "connected", NOW)
        .await
        .expect("online");
    let due = store
        .items_timed_out(later, 60_000, 100, Presence::Live)
        .await
        .expect("due");
    assert_eq!(due.len(), 3, "{due:?}");
    for i in &due {
        store
            .trigger_item(&i.id, Trigger::TimeUp, "system", None, later)
            .await
            .expect("time up");
    }
    assert_eq!(state(&store, "d1").await, "expired");
    assert_eq!(state(&store, "s1").await, "overdue");
    assert_eq!(state(&store, "p1").await, "overdue");
    let overdue = store
        .worklist_overdue(Some(&["hall".to_owned()]), 0)
        .await
        .expect("overdue");
    assert_eq!(overdue.len(), 2);
    // Staff take the uncollected licence back out.
    store
        .ingest(&keypad(&d, 2, later + 1, staff_open(3)))
        .await
        .expect("retrieve");
    let p1 = store.item("p1").await.expect("item").expect("exists");
    assert_eq!(
        (p1.state.as_str(), p1.finished_by.as_deref()),
        ("retrieved", Some("staff:helper-1"))
    );
    // Every box is free again.
    let views = store.box_views(&d).await.expect("views");
    assert!(
        views.iter().all(|v| v.state.as_str() == "free"),
        "{views:?}"
    );
}

pub(crate) async fn late_deposits_are_flagged_and_reminders_queued_once(store: Store) {
    hall(&store, "cab-l").await;
    let d = dev("cab-l");
    reserve(&store, item("p1", Flow::Pickup, Size::S, NOW + 10 * HOUR)).await;
    reserve(&store, item("p2", Flow::Pickup, Size::S, NOW + 10 * HOUR)).await;
    // due_by is NOW + 1 h.
    assert!(
        store
            .flag_late_deposits(NOW)
            .await
            .expect("flag")
            .is_empty()
    );
    let late = store
        .flag_late_deposits(NOW + 2 * HOUR)
        .await
        .expect("flag");
    assert_eq!(late.len(), 2);
    assert!(
        store
            .flag_late_deposits(NOW + 3 * HOUR)
            .await
            .expect("flag")
            .is_empty(),
        "once"
    );
    assert_eq!(
        store
            .worklist_overdue(None, 0)
            .await
            .expect("overdue")
            .len(),
        2
    );
    store
        .ingest(&keypad(&d, 1, NOW, staff_open(1)))
        .await
        .expect("deposit");
    let body = |_: &fleet_server::store::ItemRow| "{}".to_owned();
    assert_eq!(
        store.queue_reminders(NOW, HOUR, body).await.expect("r"),
        0,
        "not yet"
    );
    assert_eq!(
        store
            .queue_reminders(NOW + 9 * HOUR + 1, HOUR, body)
            .await
            .expect("r"),
        1
    );
    assert_eq!(
        store
            .queue_reminders(NOW + 9 * HOUR + 2, HOUR, body)
            .await
            .expect("r"),
        0,
        "once"
    );
}

pub(crate) async fn code_material_holds_live_grants_and_site_staff(store: Store) {
    hall(&store, "cab-m").await;
    let d = dev("cab-m");
    reserve(&store, item("d1", Flow::Dropoff, Size::S, NOW + HOUR)).await;
    reserve(&store, item("p1", Flow::Pickup, Size::S, NOW + HOUR)).await;
    reserve(&store, item("d2", Flow::Dropoff, Size::S, NOW + HOUR)).await;
    store
        .trigger_item("d2", Trigger::Cancel, "platform", None, NOW)
        .await
        .expect("cancel");
    let staff = |id: &str, site: Option<&str>| StaffRow {
        id: id.into(),
        name: id.into(),
        site_id: site.map(str::to_owned),
        active: true,
        created_at: NOW,
        phone: None,
        on_duty: false,
    };
    for (id, site) in [
        ("everywhere", None),
        ("here", Some("hall")),
        ("elsewhere", Some("park")),
    ] {
        assert!(
            store
                .insert_staff(&staff(id, site), None, "00", &"cd".repeat(32), 10, "test")
                .await
                .expect("staff")
        );
    }
    assert!(
        !store
            .insert_staff(&staff("here", None), None, "00", "x", 1, "test")
            .await
            .expect("dup")
    );
    assert!(
        store
            .deactivate_staff("everywhere", NOW, "test")
            .await
            .expect("deactivate")
    );
    let fleet_server::store::CodeMaterial {
        version,
        grants,
        staff,
        report_since,
    } = store
        .code_material(&d)
        .await
        .expect("material")
        .expect("cabinet");
    assert!(version >= NOW, "versions follow the clock");
    assert_eq!(report_since, None, "never restored");
    let mut items: Vec<(&str, bool)> = grants
        .iter()
        .map(|g| (g.item.as_str(), g.needs_deposit))
        .collect();
    items.sort();
    assert_eq!(items, vec![("d1", false), ("p1", true)]);
    let names: Vec<&str> = staff.iter().map(|s| s.staff.as_str()).collect();
    assert_eq!(names, vec!["here"]);
    // A new code is drawn against the grants the cabinet's set carries, read in the
    // reservation's own transaction (the service takes a code none of them accepts).
    let handed = std::sync::Mutex::new(Vec::new());
    store
        .reserve(
            &item("d3", Flow::Dropoff, Size::S, NOW + HOUR),
            &at_hall(),
            |site, device, b, live| {
                *handed.lock().expect("lock") = live.to_vec();
                issued(site, device, b, live)
            },
        )
        .await
        .expect("reserve")
        .expect("a free box");
    let handed = handed.into_inner().expect("lock");
    assert_eq!(
        handed, grants,
        "the set's grants, as code_material reads them"
    );
    assert!(
        store
            .code_material(&dev("unknown"))
            .await
            .expect("none")
            .is_none()
    );
}

fn grant(item: &str, box_no: u16, pickup: bool, needs_deposit: bool) -> protocol::CodeGrant {
    protocol::CodeGrant {
        item: ItemId::parse(item).expect("item"),
        box_no: b(box_no),
        not_before: NOW,
        not_after: NOW + 24 * HOUR,
        tag: format!("{:0>64}", item.len()),
        needs_deposit,
        pickup,
    }
}

fn dropped(g: protocol::CodeGrant, used_at: Option<i64>) -> protocol::DroppedGrant {
    protocol::DroppedGrant {
        grant: g,
        used_at,
        deposited: false,
    }
}

/// After a restore from an older backup the cabinet answers the server's set with what it
/// knows: a use the server missed moves the item; codes issued after the backup come back as
/// items with their own grant (nothing issued again); a grant left out on purpose changes
/// nothing; and a second report changes nothing more.
pub(crate) async fn a_cabinets_report_rebuilds_what_a_restore_lost(store: Store) {
    hall(&store, "cab-r").await;
    let d = dev("cab-r");
    assert_eq!(
        reserve(&store, item("cx", Flow::Dropoff, Size::S, NOW + HOUR)).await,
        Some(1)
    );
    store
        .trigger_item("cx", Trigger::Cancel, "platform", None, NOW)
        .await
        .expect("cancel");
    assert_eq!(
        reserve(&store, item("kept", Flow::Dropoff, Size::S, NOW + HOUR)).await,
        Some(1)
    );
    assert_eq!(
        reserve(&store, item("kept-p", Flow::Pickup, Size::S, NOW + HOUR)).await,
        Some(2)
    );
    // The restore: every cabinet's next set asks what happened since the backup.
    store
        .record_restore(NOW - HOUR, NOW + 7, "test.backup")
        .await
        .expect("restore");
    let m = store
        .code_material(&d)
        .await
        .expect("material")
        .expect("cabinet");
    assert!(m.version >= NOW + 7, "{}", m.version);
    assert_eq!(m.report_since, Some(NOW - HOUR));
    let report = EventBody::CodesApplied {
        version: m.version as u64,
        spent: vec![protocol::SpentCode {
            item: ItemId::parse("kept").expect("id"),
            box_no: b(1),
            used_at: NOW + 5,
        }],
        dropped: vec![
            dropped(grant("cx", 1, false, false), None),
            dropped(grant("lost-d", 3, false, false), Some(NOW + 6)),
            dropped(grant("lost-p", 4, true, false), None),
            dropped(grant("lost-w", 2, false, false), None),
        ],
    };
    store
        .ingest(&keypad(&d, 1, NOW + 10, report.clone()))
        .await
        .expect("report");
    assert_eq!(state(&store, "kept").await, "in_box");
    assert_eq!(state(&store, "cx").await, "cancelled");
    assert_eq!(state(&store, "kept-p").await, "awaiting_deposit");
    let lost_d = store.item("lost-d").await.expect("item").expect("rebuilt");
    assert_eq!(
        (
            lost_d.state.as_str(),
            lost_d.flow,
            lost_d.box_no,
            lost_d.created_by.as_str()
        ),
        ("in_box", Flow::Dropoff, 3, "recovered")
    );
    assert_eq!(lost_d.in_box_at, Some(NOW + 6));
    assert_eq!(state(&store, "lost-p").await, "in_box");
    assert_eq!(state(&store, "lost-w").await, "reserved");
    let note = store.item_history("lost-w").await.expect("history");
    assert!(
        note.iter().any(|h| h
            .detail
            .as_deref()
            .is_some_and(|t| t.contains("held by item kept-p"))),
        "{note:?}"
    );
    // The next set carries the rebuilt grants with their own tags: the codes keep working.
    let m = store
        .code_material(&d)
        .await
        .expect("material")
        .expect("cabinet");
    assert_eq!(m.report_since, None, "answered: not asked again");
    let grants = m.grants;
    let mut held: Vec<(&str, bool, bool, String)> = grants
        .iter()
        .map(|g| (g.item.as_str(), g.pickup, g.needs_deposit, g.tag.clone()))
        .collect();
    held.sort();
    assert_eq!(
        held,
        vec![
            ("kept-p", true, true, "ab".repeat(32)),
            ("lost-p", true, false, grant("lost-p", 4, true, false).tag),
            ("lost-w", false, false, grant("lost-w", 2, false, false).tag),
        ]
    );
    let recovered = |a: &Vec<fleet_server::store::AuditRow>| {
        a.iter().filter(|r| r.action == "item_recovered").count()
    };
    assert_eq!(
        recovered(&store.audit(Some(&d), None, 100).await.expect("audit")),
        3
    );
    // The cabinet says it again with its next set: nothing more happens.
    store
        .ingest(&keypad(&d, 2, NOW + 20, report))
        .await
        .expect("again");
    assert_eq!(
        recovered(&store.audit(Some(&d), None, 100).await.expect("audit")),
        3
    );
    assert_eq!(state(&store, "lost-d").await, "in_box");
}

/// The cabinets whose code sets are resent: online, and their confirmed version behind.
pub(crate) async fn only_online_cabinets_behind_their_code_version_lag(store: Store) {
    for c in ["cab-a", "cab-b", "cab-off"] {
        hall(&store, c).await;
    }
    for c in ["cab-a", "cab-b"] {
        store
            .presence(&dev(c), 1, true, "connected", NOW)
            .await
            .expect("online");
    }
    assert_eq!(
        store.codes_lagging().await.expect("lagging"),
        ["cab-a", "cab-b"],
        "configured cabinets start behind; the offline one waits for its connect"
    );
    let version = store
        .code_material(&dev("cab-a"))
        .await
        .expect("material")
        .expect("cabinet")
        .version;
    store
        .ingest(&keypad(
            &dev("cab-a"),
            1,
            NOW,
            EventBody::CodesApplied {
                version: version as u64,
                spent: vec![],
                dropped: vec![],
            },
        ))
        .await
        .expect("confirmed");
    assert_eq!(store.codes_lagging().await.expect("lagging"), ["cab-b"]);
}

/// Site "hall" in the overview an hour after the day began at NOW.
async fn hall_overview(store: &Store) -> api_types::live::SiteOverview {
    store
        .overview(NOW + HOUR, NOW)
        .await
        .expect("overview")
        .into_iter()
        .find(|s| s.id == "hall")
        .expect("hall")
}

pub(crate) fn used_code(item: &str, box_no: u16) -> EventBody {
    EventBody::CodeUsed {
        item: ItemId::parse(item).expect("id"),
        box_no: b(box_no),
        status: AckStatus::Opened,
    }
}

pub(crate) async fn the_overview_counts_boxes_uses_and_alarms_per_site(store: Store) {
    hall(&store, "cab-o").await;
    let d = dev("cab-o");
    // Box 1 holds a deposited pick-up (a use), box 3 is reserved, box 4 out of service.
    assert_eq!(
        reserve(&store, item("o1", Flow::Pickup, Size::S, NOW + 24 * HOUR)).await,
        Some(1)
    );
    store
        .ingest(&keypad(&d, 1, NOW + HOUR / 2, staff_open(1)))
        .await
        .expect("deposit");
    assert_eq!(
        reserve(&store, item("o2", Flow::Dropoff, Size::M, NOW + 24 * HOUR)).await,
        Some(3)
    );
    store
        .set_box_service(&d, b(4), false, Some("lock replaced"), NOW, "test")
        .await
        .expect("service");
    let jam = EventBody::Fault {
        box_no: Some(b(3)),
        fault: protocol::FaultKind::LockJam,
        active: true,
        evidence: String::new(),
    };
    store
        .ingest(&keypad(&d, 2, NOW + HOUR / 2, jam))
        .await
        .expect("fault");
    // The day began at NOW: box 1 has held its item for the last half hour of one hour.
    let site = hall_overview(&store).await;
    assert_eq!(
        (
            site.devices,
            site.devices_online,
            site.boxes,
            site.free,
            site.occupied,
            site.reserved,
            site.out_of_service
        ),
        (1, 0, 4, 1, 1, 1, 1),
        "{site:?}"
    );
    assert!((site.occupancy - 2.0 / 3.0).abs() < 1e-9, "{site:?}");
    assert_eq!(site.uses_24h.len(), 24);
    assert_eq!(site.uses_24h.iter().sum::<i64>(), 1, "{site:?}");
    assert_eq!(
        site.uses_24h[23], 1,
        "the deposit half an hour ago is in the last hour"
    );
    assert_eq!((site.faulty, site.alarms_open), (1, 1), "{site:?}");
    // The metrics' fleet-wide counts agree with the overview's.
    let counts = store.box_counts().await.expect("box counts");
    assert_eq!(
        counts,
        fleet_server::store::BoxCounts {
            free: 1,
            occupied: 1,
            reserved: 1,
            out_of_service: 1,
            faulty: 1
        }
    );
    // 0.5 box-hours held over 3 boxes in service for 1 hour.
    assert!((site.usage_today - 0.5 / 3.0).abs() < 1e-9, "{site:?}");
    // Collected: its half hour still counts today; nothing is held any more.
    store
        .ingest(&keypad(&d, 3, NOW + 3 * HOUR / 4, used_code("o1", 1)))
        .await
        .expect("picked up");
    let site = hall_overview(&store).await;
    assert!((site.usage_today - 0.25 / 3.0).abs() < 1e-9, "{site:?}");
}

on_both!(
    the_overview_counts_boxes_uses_and_alarms_per_site,
    allocation_takes_the_smallest_fitting_free_box,
    allocation_prefers_online_cabinets,
    concurrent_reservations_never_share_a_box,
    keypad_events_move_items_exactly_once,
    time_up_expires_overdues_and_staff_retrieve,
    late_deposits_are_flagged_and_reminders_queued_once,
    code_material_holds_live_grants_and_site_staff,
    only_online_cabinets_behind_their_code_version_lag,
    a_cabinets_report_rebuilds_what_a_restore_lost,
    lists_keep_to_the_sites_asked,
);

/// A token limited to sites reads through site lists: one site, several, every site.
async fn lists_keep_to_the_sites_asked(store: Store) {
    hall(&store, "cab-h").await;
    service_hall(&store, "an_nex").await;
    store
        .upsert_cabinet(
            &dev("cab-x"),
            "an_nex",
            "Annex",
            &[(b(1), Size::M, false)],
            NOW,
            "test",
        )
        .await
        .expect("cabinet");
    let ids = |rows: Vec<fleet_server::store::CabinetRow>| -> Vec<String> {
        rows.into_iter().map(|c| c.id).collect()
    };
    let list = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let hall_only = list(&["hall"]);
    let both = list(&["hall", "an_nex"]);
    // `_` is an ordinary character in a site id, not a wildcard.
    let lookalike = list(&["anxnex"]);
    assert_eq!(
        ids(store.cabinets(None).await.expect("all")),
        ["cab-h", "cab-x"]
    );
    assert_eq!(
        ids(store.cabinets(Some(&hall_only)).await.expect("hall")),
        ["cab-h"]
    );
    assert_eq!(
        ids(store.cabinets(Some(&both)).await.expect("both")),
        ["cab-h", "cab-x"]
    );
    assert!(
        store
            .cabinets(Some(&lookalike))
            .await
            .expect("none")
            .is_empty()
    );
    assert!(store.cabinets(Some(&[])).await.expect("empty").is_empty());
    let audit = store
        .audit(None, Some(&hall_only), 100)
        .await
        .expect("audit");
    let devices: Vec<_> = audit.iter().map(|a| a.device_id.as_deref()).collect();
    assert_eq!(
        devices,
        [Some("cab-h")],
        "configuration rows without a device stay out"
    );
    assert_eq!(audit[0].action, "cabinet_configured");
    assert_eq!(store.audit(None, None, 100).await.expect("all").len(), 4);
    assert!(
        store
            .worklist_collect(Some(&[]))
            .await
            .expect("empty")
            .is_empty()
    );
    assert!(
        store
            .items(None, None, Some(&lookalike), 10)
            .await
            .expect("none")
            .is_empty()
    );
}
