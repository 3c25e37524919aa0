//! `fleet-sim bench usage`: how long usage reports take over a large fleet's history — by
//! default 90 days of hourly rollups over 1,000 cabinets of 20 boxes in 50 sites, with 30% of
//! the boxes holding an item now — on SQLite or PostgreSQL. Goal: a 90-day report ≤ 200 ms.

use std::time::{Duration, Instant};

use anyhow::Context;
use domain::flows::{Flow, Size};
use fleet_server::store::usage::{Bucket, Level, RollupRow, Scope, UsageQuery};
use fleet_server::store::{Issued, NewItem, Placement, SiteRow, Store};
use protocol::{BoxNo, DeviceId, ItemId};

const HOUR: i64 = 3_600_000;
const DAY: i64 = 24 * HOUR;

#[derive(Debug, Clone, clap::Args)]
pub struct UsageOptions {
    #[arg(long, default_value_t = 1000)]
    pub cabinets: usize,
    #[arg(long, default_value_t = 50)]
    pub sites: usize,
    #[arg(long, default_value_t = 20)]
    pub boxes: u16,
    /// Days of history.
    #[arg(long, default_value_t = 90)]
    pub days: i64,
    /// Share of boxes holding an item now (open intervals a report adds from current state).
    #[arg(long, default_value_t = 0.3)]
    pub held_share: f64,
    /// Timed runs of each report.
    #[arg(long, default_value_t = 20)]
    pub runs: usize,
    /// Database (default: a SQLite file in a temp dir).
    #[arg(long)]
    pub database_url: Option<String>,
}

/// A diurnal occupancy in 0..1 for hour of day `h`, varied per cabinet and day.
fn occupancy(h: i64, cab: usize, day: i64) -> f64 {
    let base = match h {
        0..=6 => 0.35,
        7..=9 => 0.55,
        10..=16 => 0.85,
        17..=20 => 0.7,
        _ => 0.45,
    };
    let wobble = ((cab as i64 * 7919 + day * 104_729 + h * 31) % 21) as f64 / 100.0 - 0.1;
    (base + wobble).clamp(0.0, 1.0)
}

pub async fn usage(o: UsageOptions) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let url = o.database_url.clone().unwrap_or_else(|| {
        format!(
            "sqlite://{}?mode=rwc",
            dir.path().join("usage.db").display()
        )
    });
    let store = Store::connect(&url)
        .await
        .with_context(|| format!("opening {url}"))?;
    let now = fleet_server::now_ms();
    let this_hour = now.div_euclid(HOUR) * HOUR;
    let start = this_hour - o.days * DAY;
    let setup = Instant::now();
    let per_site = o.cabinets.div_ceil(o.sites);
    let kinds = domain::flows::SiteKind::ALL;
    for s in 0..o.sites {
        store
            .upsert_site(
                &SiteRow {
                    id: format!("site-{s:03}"),
                    kind: kinds[s % kinds.len()],
                    name: format!("Site {s}"),
                    address: String::new(),
                    lat: 23.0 + s as f64 / 100.0,
                    lon: 113.0,
                    lang: None,
                    time_zone: None,
                    created_at: start,
                    updated_at: start,
                },
                "admin",
            )
            .await?;
    }
    let sizes: Vec<(BoxNo, Size, bool)> = (1..=o.boxes)
        .map(|n| {
            let size = [Size::S, Size::M, Size::L][usize::from(n) % 3];
            Ok((BoxNo::new(n)?, size, n == 1))
        })
        .collect::<anyhow::Result<_>>()?;
    let cab_id = |c: usize| format!("cab-{c:04}");
    for c in 0..o.cabinets {
        let device = DeviceId::parse(&cab_id(c))?;
        let site = format!("site-{:03}", c / per_site);
        store
            .upsert_cabinet(&device, &site, "cabinet", &sizes, start, "admin")
            .await?;
    }
    // History: every cabinet-hour and site-hour; the boxes of one cabinet for box reports.
    let boxes = i64::from(o.boxes);
    let mut cab_rows = Vec::new();
    let mut site_rows: std::collections::HashMap<(String, i64), RollupRow> = Default::default();
    let mut box_rows = Vec::new();
    for c in 0..o.cabinets {
        let site = format!("site-{:03}", c / per_site);
        for i in 0..o.days * 24 {
            let hour = start + i * HOUR;
            let (day, h) = (i / 24, i % 24);
            let occ = occupancy(h, c, day);
            let occupied = (occ * (boxes * HOUR) as f64) as i64;
            let row = RollupRow {
                key: cab_id(c),
                box_no: None,
                hour,
                occupied_ms: occupied,
                held_ms: occupied + occupied / 10,
                oos_ms: if (c + i as usize).is_multiple_of(97) {
                    HOUR
                } else {
                    0
                },
                uses: (occ * boxes as f64 / 3.0) as i64,
                unmet: i64::from(occ > 0.9),
            };
            let s = site_rows
                .entry((site.clone(), hour))
                .or_insert_with(|| RollupRow {
                    key: site.clone(),
                    hour,
                    ..RollupRow::default()
                });
            s.occupied_ms += row.occupied_ms;
            s.held_ms += row.held_ms;
            s.oos_ms += row.oos_ms;
            s.uses += row.uses;
            s.unmet += row.unmet;
            if c == 0 {
                for b in 1..=boxes {
                    box_rows.push(RollupRow {
                        key: cab_id(c),
                        box_no: Some(b),
                        hour,
                        occupied_ms: if occupancy(h, b as usize, day) > 0.5 {
                            HOUR
                        } else {
                            0
                        },
                        held_ms: HOUR / 2,
                        uses: 1,
                        ..RollupRow::default()
                    });
                }
            }
            cab_rows.push(row);
        }
    }
    let site_rows: Vec<RollupRow> = site_rows.into_values().collect();
    store.load_rollups(Level::Cabinet, &cab_rows).await?;
    store.load_rollups(Level::Site, &site_rows).await?;
    store.load_rollups(Level::Box, &box_rows).await?;
    // The server checkpoints SQLite's write-ahead log every second; do the same here, or
    // reads wade through a log of millions of rows.
    store.checkpoint().await?;
    eprintln!(
        "rollups loaded after {:.1} s",
        setup.elapsed().as_secs_f64()
    );
    // Items holding boxes now.
    let held = (o.cabinets as f64 * f64::from(o.boxes) * o.held_share) as usize;
    let issue = |_: &str, _: &DeviceId, _: BoxNo, _: &[protocol::CodeGrant]| {
        Ok(Issued {
            code_tag: "00".repeat(32),
            sms_sealed: String::new(),
        })
    };
    for i in 0..held {
        let site = format!("site-{:03}", (i * 7) % o.sites);
        let item = NewItem {
            id: ItemId::parse(&format!("bench-{i:07}"))?,
            flow: Flow::Dropoff,
            case_number: format!("CASE-{i}"),
            phone: "13812345678".into(),
            size: Size::S,
            accessible: false,
            created_by: "bench".into(),
            idempotency_key: None,
            created_at: now - (i as i64 % 48) * HOUR,
            valid_from: now - DAY,
            valid_until: now + DAY,
            deadline: None,
            due_by: None,
        };
        let placement = Placement {
            sites: vec![site],
            device: None,
        };
        store.reserve(&item, &placement, issue).await?;
        if i % 500 == 499 {
            store.checkpoint().await?;
        }
    }
    store.checkpoint().await?;
    println!(
        "fleet: {} cabinets × {} boxes in {} sites, {} days of hourly rollups ({} cabinet rows, {} site rows, {} box rows), {} items held now; database {}; set up in {:.1} s",
        o.cabinets,
        o.boxes,
        o.sites,
        o.days,
        cab_rows.len(),
        site_rows.len(),
        box_rows.len(),
        held,
        if url.starts_with("sqlite") {
            "SQLite"
        } else {
            "PostgreSQL"
        },
        setup.elapsed().as_secs_f64()
    );

    let from = now - o.days * DAY;
    let cases: Vec<(&str, Scope, Bucket)> = vec![
        ("fleet (all cabinets), by day", Scope::Fleet, Bucket::Day),
        ("fleet (all cabinets), by hour", Scope::Fleet, Bucket::Hour),
        (
            "site kind, by day",
            Scope::Kind("enterprise_cluster".into()),
            Bucket::Day,
        ),
        (
            "one site, by hour",
            Scope::Site("site-000".into()),
            Bucket::Hour,
        ),
        (
            "one cabinet, by hour",
            Scope::Cabinet(cab_id(0)),
            Bucket::Hour,
        ),
        ("one box, by hour", Scope::Box(cab_id(0), 1), Bucket::Hour),
    ];
    println!(
        "{:<34} {:>9} {:>9} {:>9}",
        "90-day report", "p50 ms", "p99 ms", "max ms"
    );
    for (name, scope, bucket) in cases {
        let q = UsageQuery {
            scope,
            from,
            to: now,
            bucket,
            utc_offset_ms: 8 * HOUR,
            now,
        };
        let mut times = Vec::with_capacity(o.runs);
        let mut occupancy = 0.0;
        for _ in 0..o.runs {
            let t = Instant::now();
            let r = store.usage(&q).await?;
            times.push(t.elapsed());
            occupancy = r.totals.occupancy;
        }
        let (p50, p99, max) = stats(&mut times);
        println!("{name:<34} {p50:>9.1} {p99:>9.1} {max:>9.1}   (occupancy {occupancy:.3})");
    }
    let mut times = Vec::new();
    for _ in 0..o.runs {
        let t = Instant::now();
        store.saturation(now, 8 * HOUR, 0.8, 5, 7).await?;
        times.push(t.elapsed());
    }
    let (p50, p99, max) = stats(&mut times);
    println!(
        "{:<34} {p50:>9.1} {p99:>9.1} {max:>9.1}",
        "saturation, all sites, 7 days"
    );
    store.close().await;
    Ok(())
}

fn stats(times: &mut [Duration]) -> (f64, f64, f64) {
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let at = |q: f64| ms(times[((times.len() - 1) as f64 * q).round() as usize]);
    (at(0.5), at(0.99), ms(times[times.len() - 1]))
}
