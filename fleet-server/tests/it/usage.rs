//! Usage rollups on SQLite and PostgreSQL: what items, refusals and out-of-service time add
//! per hour, the figures a report derives, a rebuild from history that agrees with the live
//! rollups, and saturation flags.

use domain::flows::{Flow, Size, Trigger};
use fleet_server::store::usage::{Bucket, Scope, UsageQuery, UsageReport};
use fleet_server::store::{NewItem, Placement, SiteRow, Store};

use crate::flows::{HOUR, NOW, b, dev, hall, issued, item, keypad, reserve, staff_open, used_code};

const DAY: i64 = 24 * HOUR;

async fn report(
    store: &Store,
    scope: Scope,
    bucket: Bucket,
    from: i64,
    to: i64,
    now: i64,
) -> UsageReport {
    store
        .usage(&UsageQuery {
            scope,
            from,
            to,
            bucket,
            utc_offset_ms: 0,
            now,
        })
        .await
        .expect("usage report")
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

/// Four hours of a hall of four boxes (see the comments for what each hour holds).
async fn four_hours(store: &Store) {
    hall(store, "cab-u").await;
    let d = dev("cab-u");
    let until = NOW + DAY;
    // i1: drop-off reserved at 0 h (box 1), placed at 1 h, collected by staff at 3 h.
    assert_eq!(
        reserve(store, item("i1", Flow::Dropoff, Size::S, until)).await,
        Some(1)
    );
    // p1: pick-up reserved at 0 h (box 2), deposited by staff at 2 h, still in the box.
    assert_eq!(
        reserve(store, item("p1", Flow::Pickup, Size::S, until)).await,
        Some(2)
    );
    // x1 holds the only L box for half an hour; x2 finds no L box: one unmet at 0 h.
    assert_eq!(
        reserve(store, item("x1", Flow::Dropoff, Size::L, until)).await,
        Some(4)
    );
    assert_eq!(
        reserve(store, item("x2", Flow::Dropoff, Size::L, until)).await,
        None
    );
    store
        .trigger_item("x1", Trigger::Cancel, "platform", None, NOW + HOUR / 2)
        .await
        .expect("cancel")
        .expect("cancelled");
    // Box 3 out of service from 1 h to 2 h.
    assert!(
        store
            .set_box_service(&d, b(3), false, Some("hinge"), NOW + HOUR, "test")
            .await
            .expect("out")
    );
    assert!(
        store
            .set_box_service(&d, b(3), true, None, NOW + 2 * HOUR, "test")
            .await
            .expect("back")
    );
    store
        .ingest(&keypad(&d, 1, NOW + HOUR, used_code("i1", 1)))
        .await
        .expect("placed");
    store
        .ingest(&keypad(&d, 2, NOW + 2 * HOUR, staff_open(2)))
        .await
        .expect("deposited");
    store
        .ingest(&keypad(&d, 3, NOW + 3 * HOUR, staff_open(1)))
        .await
        .expect("collected");
    assert_eq!(
        store
            .item("i1")
            .await
            .expect("i1")
            .expect("i1")
            .state
            .as_str(),
        "collected"
    );
    assert_eq!(
        store
            .item("p1")
            .await
            .expect("p1")
            .expect("p1")
            .state
            .as_str(),
        "in_box"
    );
}

pub(crate) async fn rollups_follow_items_and_agree_with_a_rebuild(store: Store) {
    four_hours(&store).await;
    let now = NOW + 4 * HOUR;
    let site = report(
        &store,
        Scope::Site("hall".into()),
        Bucket::Hour,
        NOW,
        now,
        now,
    )
    .await;
    assert_eq!(site.boxes, 4);
    let rows: Vec<(f64, f64, f64, i64, i64)> = site
        .buckets
        .iter()
        .map(|b| (b.box_hours, b.occupied_hours, b.held_hours, b.uses, b.unmet))
        .collect();
    assert_eq!(
        rows,
        vec![
            // 0 h: i1, p1 and half an hour of x1 held; x2 refused.
            (4.0, 0.0, 2.5, 0, 1),
            // 1 h: box 3 out of service; i1 placed.
            (3.0, 1.0, 2.0, 1, 0),
            // 2 h: i1 and p1 in their boxes; p1 deposited.
            (4.0, 2.0, 2.0, 1, 0),
            // 3 h: i1 collected at the start; p1 still in (open interval up to now).
            (4.0, 1.0, 1.0, 0, 0),
        ]
    );
    let t = &site.totals;
    assert!(
        close(t.box_hours, 15.0) && close(t.occupancy, 4.0 / 15.0),
        "{t:?}"
    );
    assert!(
        close(t.held_rate, 0.5) && close(t.turnover, 2.0 / (15.0 / 24.0)),
        "{t:?}"
    );
    assert_eq!((t.uses, t.unmet), (2, 1));
    assert_eq!(site.peak_hour, Some(2), "half the boxes occupied at 2 h");
    assert!(close(site.peak_hour_occupancy, 0.5));

    // The same through the cabinet (no unmet: the refusal named no cabinet) and one box.
    let cab = report(
        &store,
        Scope::Cabinet("cab-u".into()),
        Bucket::Hour,
        NOW,
        now,
        now,
    )
    .await;
    assert!(close(cab.totals.occupied_hours, 4.0) && cab.totals.unmet == 0);
    let box1 = report(
        &store,
        Scope::Box("cab-u".into(), 1),
        Bucket::Hour,
        NOW,
        now,
        now,
    )
    .await;
    assert_eq!(box1.boxes, 1);
    assert!(close(box1.totals.box_hours, 4.0) && close(box1.totals.occupied_hours, 2.0));
    assert!(close(box1.totals.held_hours, 3.0) && box1.totals.uses == 1);
    // Kind and fleet sum the sites.
    let kind = report(
        &store,
        Scope::Kind("service_hall".into()),
        Bucket::Hour,
        NOW,
        now,
        now,
    )
    .await;
    assert_eq!(kind.totals, site.totals);
    let fleet = report(&store, Scope::Fleet, Bucket::Hour, NOW, now, now).await;
    assert_eq!(fleet.totals, site.totals);
    // A day bucket holds the same hours (capacity ends at now, not at midnight).
    let day = report(
        &store,
        Scope::Site("hall".into()),
        Bucket::Day,
        NOW,
        now,
        now,
    )
    .await;
    assert_eq!(day.buckets.len(), 1);
    assert_eq!((day.from, day.to), (NOW, NOW + DAY));
    assert!(close(day.totals.occupancy, t.occupancy) && day.totals.uses == 2);

    // Rebuilt from item history and the unmet log, the rollups are what the live path made.
    store.rebuild_usage().await.expect("rebuild");
    let again = report(
        &store,
        Scope::Site("hall".into()),
        Bucket::Hour,
        NOW,
        now,
        now,
    )
    .await;
    assert_eq!(again, site);
    let box1_again = report(
        &store,
        Scope::Box("cab-u".into(), 1),
        Bucket::Hour,
        NOW,
        now,
        now,
    )
    .await;
    assert_eq!(box1_again, box1);
}

pub(crate) async fn reports_refuse_bad_ranges(store: Store) {
    hall(&store, "cab-r").await;
    let q = |from, to| UsageQuery {
        scope: Scope::Fleet,
        from,
        to,
        bucket: Bucket::Hour,
        utc_offset_ms: 0,
        now: NOW,
    };
    let err = store.usage(&q(NOW, NOW)).await.expect_err("empty range");
    assert!(err.to_string().contains("must be after"), "{err}");
    let err = store
        .usage(&q(NOW - 500 * DAY, NOW))
        .await
        .expect_err("too long");
    assert!(err.to_string().contains("at most"), "{err}");
    // Ninety days of an idle hall: all capacity, no use.
    let r = store.usage(&q(NOW - 90 * DAY, NOW)).await.expect("90 days");
    assert_eq!(r.buckets.len(), 90 * 24);
    assert_eq!(r.totals.box_hours, 0.0, "the cabinet was created at NOW");
}

pub(crate) async fn saturation_flags_sites_over_the_rate(store: Store) {
    hall(&store, "cab-h").await;
    // A one-box cluster whose box holds an item for ten days: saturated every day.
    store
        .upsert_site(
            &SiteRow {
                id: "park".into(),
                kind: domain::flows::SiteKind::EnterpriseCluster,
                name: "Park".into(),
                address: String::new(),
                lat: 23.1,
                lon: 113.1,
                lang: None,
                time_zone: None,
                created_at: NOW - 10 * DAY,
                updated_at: NOW - 10 * DAY,
            },
            "test",
        )
        .await
        .expect("site");
    let d = dev("cab-p");
    store
        .upsert_cabinet(
            &d,
            "park",
            "Lobby",
            &[(b(1), Size::M, false)],
            NOW - 10 * DAY,
            "test",
        )
        .await
        .expect("cabinet");
    let it = NewItem {
        created_at: NOW - 10 * DAY,
        valid_from: NOW - 10 * DAY,
        ..item("long", Flow::Dropoff, Size::M, NOW + DAY)
    };
    let placed = store
        .reserve(
            &it,
            &Placement {
                sites: vec!["park".into()],
                device: None,
            },
            issued,
        )
        .await
        .expect("reserve");
    assert!(placed.is_some());
    store
        .ingest(&keypad(&d, 1, NOW - 10 * DAY + HOUR, used_code("long", 1)))
        .await
        .expect("placed");
    let now = NOW + HOUR;
    let sites = store
        .saturation(now, 0, 0.8, 5, 7)
        .await
        .expect("saturation");
    let park = sites.iter().find(|s| s.site_id == "park").expect("park");
    assert_eq!(
        (park.days_above, park.saturated, park.daily.len()),
        (7, true, 7)
    );
    assert!(close(park.occupancy, 1.0));
    let hall = sites.iter().find(|s| s.site_id == "hall").expect("hall");
    assert_eq!((hall.days_above, hall.saturated), (0, false));
    // Even at a rate of 100% the park qualifies: its box was never free.
    let strict = store.saturation(now, 0, 1.0, 5, 7).await.expect("strict");
    assert!(
        strict
            .iter()
            .find(|s| s.site_id == "park")
            .expect("park")
            .saturated
    );
    // Per-site hours for the export: the park's box was full in each of the last two hours.
    let hours = store.site_hours(NOW - HOUR, 2, now).await.expect("hours");
    let (_, kind, park_hours) = hours.iter().find(|(s, _, _)| s == "park").expect("park");
    assert_eq!(*kind, domain::flows::SiteKind::EnterpriseCluster);
    assert!(
        park_hours.iter().all(|h| close(h.occupancy, 1.0)),
        "{park_hours:?}"
    );
}

on_both!(
    rollups_follow_items_and_agree_with_a_rebuild,
    reports_refuse_bad_ranges,
    saturation_flags_sites_over_the_rate,
);
