//! `fleet-sim bench history`: how long the demo's history takes to write (the newcomer waits
//! for it before the console opens), and what it leaves: items, the hall's occupancy, the
//! database's size. Default: the demo's fleet (50 cabinets of 24 boxes at 5 sites), 14 days.

use std::time::Instant;

use anyhow::Context;

use crate::fleet::FleetSpec;
use crate::layout::Layout;

#[derive(Debug, Clone, clap::Args)]
pub struct HistoryOptions {
    #[arg(long, default_value_t = 14)]
    pub days: u32,
    #[arg(long, default_value_t = 50)]
    pub cabinets: usize,
    #[arg(long, default_value_t = 5)]
    pub sites: usize,
    #[arg(long, default_value_t = 24)]
    pub boxes: u16,
    /// Database (default: SQLite in a temp dir, as the demo's).
    #[arg(long)]
    pub database_url: Option<String>,
    /// Leave the writer's thread free to move between CPUs (the demo pins it to one).
    #[arg(long)]
    pub unpinned: bool,
}

pub async fn history(o: HistoryOptions) -> anyhow::Result<()> {
    anyhow::ensure!(
        o.sites > 0 && o.cabinets > 0,
        "--sites and --cabinets must be at least 1"
    );
    let dir = tempfile::tempdir()?;
    let cfg = fleet_server::ServerConfig {
        data_dir: dir.path().join("server"),
        database_url: o.database_url.clone(),
        ..Default::default()
    };
    let spec = FleetSpec {
        sites: o.sites,
        cabinets: o.cabinets,
        boxes: o.boxes,
        ..FleetSpec::default()
    };
    let layout = Layout::of(&spec);
    let now = fleet_server::now_ms();
    let t0 = Instant::now();
    let s = crate::history::load(
        cfg.clone(),
        layout,
        o.days,
        2018,
        now,
        std::sync::Arc::new(()),
        !o.unpinned,
    )
    .await?;
    let took = t0.elapsed();
    println!(
        "history of {} days, {} cabinets x {} boxes at {} sites{}: {:.1} s",
        o.days,
        o.cabinets,
        o.boxes,
        o.sites,
        if o.unpinned { ", unpinned" } else { "" },
        took.as_secs_f64()
    );
    println!("  {}", s.line(l10n::Lang::En));
    println!(
        "  {:.0} reservations/s written (each with its code, SMS, keypad and staff opens, rollups)",
        s.reserved as f64 / took.as_secs_f64()
    );
    let store = fleet_server::store::Store::connect(&cfg.database_url())
        .await
        .context("reopening the history")?;
    let sat = store
        .saturation(now, 0, 0.8, 5, 7)
        .await
        .context("saturation")?;
    for site in sat {
        let (lo, hi) = site
            .daily
            .iter()
            .fold((f64::MAX, 0.0f64), |(lo, hi), d| (lo.min(*d), hi.max(*d)));
        println!(
            "  {:<8} occupancy over 7 days {:>5.1}% (days {:.1}-{:.1}%), days above 80%: {} ({})",
            site.site_id,
            site.occupancy * 100.0,
            lo * 100.0,
            hi * 100.0,
            site.days_above,
            if site.saturated {
                "saturated"
            } else {
                "not saturated"
            }
        );
    }
    store.close().await;
    let db = cfg.data_dir.join("fleet.db");
    if o.database_url.is_none()
        && let Ok(m) = std::fs::metadata(&db)
    {
        println!("  database {:.1} MB", m.len() as f64 / 1e6);
    }
    Ok(())
}
