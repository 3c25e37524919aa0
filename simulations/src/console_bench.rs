//! `fleet-sim bench console`: how long the operator console takes to handle a key and redraw
//! with a large fleet on screen (1,000 sites, a site of 1,000 cabinets, 1,000 alarms), into
//! ratatui's in-memory backend — the work per frame minus the terminal write, which ratatui
//! limits to the cells that changed.

use std::time::Instant;

use hdrhistogram::Histogram;
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyEventState, KeyModifiers};
use tui::app::{App, Msg};
use tui::model::{Alarm, BoxView, Cabinet, CabinetDetail, Link, Overview, SiteOverview};

#[derive(Debug, Clone, clap::Args)]
pub struct ConsoleOptions {
    /// Sites, cabinets in the site on screen, and alarms.
    #[arg(long, default_value_t = 1000)]
    pub size: usize,
    /// Key presses (each followed by a full redraw) per screen and terminal size.
    #[arg(long, default_value_t = 2000)]
    pub frames: usize,
    /// Demand points of the city on the planning map (each also drawn, the largest as discs).
    #[arg(long, default_value_t = 5000)]
    pub demand_points: usize,
}

/// A city for the planning map: `n` demand points in clusters of uneven size (a seeded
/// sequence), 50 recommendations with their walking radius, 20 sites in service.
fn city(n: usize) -> (tui::model::Plan, tui::model::PlanMap) {
    use tui::model::{DemandPoint, ExistingSite, Plan, PlanMap, PlanParams, Recommendation};
    let mut x: u64 = 2018;
    let mut next = || {
        x = x
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (x >> 33) as f64 / f64::from(1u32 << 31)
    };
    let centres: Vec<(f64, f64)> = (0..40)
        .map(|_| (113.1 + next() * 0.4, 23.0 + next() * 0.3))
        .collect();
    let demand = (0..n)
        .map(|i| {
            let (lon, lat) = centres[(next() * next() * 40.0) as usize % 40];
            DemandPoint {
                id: format!("d{i}"),
                name: String::new(),
                lon: lon + (next() - 0.5) * 0.03,
                lat: lat + (next() - 0.5) * 0.025,
                enterprises: 1 + (next().powi(3) * 200.0) as u32,
                monthly_cases: Some(10.0),
                cluster: None,
            }
        })
        .collect();
    let recommendations = (0..50)
        .map(|i| Recommendation {
            rank: i + 1,
            candidate_id: format!("c{i}"),
            name: format!("Candidate {i}"),
            lon: centres[i % 40].0,
            lat: centres[i % 40].1,
            ..Recommendation::default()
        })
        .collect();
    let existing = (0..20)
        .map(|i| ExistingSite {
            id: format!("s{i}"),
            name: format!("Site {i}"),
            lon: centres[(i * 3) % 40].0 + 0.01,
            lat: centres[(i * 3) % 40].1,
            boxes: 24,
            occupancy: next(),
            peak_occupancy: 0.9,
            unmet_per_day: 0.0,
        })
        .collect();
    let plan = Plan {
        params: PlanParams {
            radius_m: 500.0,
            ..PlanParams::default()
        },
        recommendations,
        ..Plan::default()
    };
    (plan, PlanMap { demand, existing })
}

fn key(c: KeyCode) -> KeyEvent {
    KeyEvent {
        code: c,
        modifiers: KeyModifiers::NONE,
        kind: KeyEventKind::Press,
        state: KeyEventState::NONE,
    }
}

fn fleet(n: usize, now: i64) -> App {
    let mut app = App::new("http://bench", l10n::Lang::En);
    let sites = (0..n)
        .map(|i| SiteOverview {
            id: format!("site-{i:04}"),
            name: format!("Site {i:04}"),
            kind: domain::flows::SiteKind::EnterpriseCluster,
            devices: 10,
            devices_online: 10,
            boxes: 240,
            free: 120,
            occupied: 100,
            reserved: 20,
            uses_24h: (0..24).map(|h| (h * i as i64) % 9).collect(),
            ..SiteOverview::default()
        })
        .collect();
    let alarms = (0..n)
        .map(|i| Alarm {
            id: format!("{i:012}"),
            device_id: format!("site-0000-cab-{i:04}"),
            box_no: Some((i % 24 + 1) as u16),
            kind: domain::alarms::AlarmKind::Fault(protocol::FaultKind::ForcedOpen),
            severity: domain::alarms::Severity::Critical,
            state: domain::alarms::AlarmState::Active,
            site_id: Some("site-0000".into()),
            first_seen: now - 60_000,
            ..Alarm::default()
        })
        .collect();
    for m in [
        Msg::Link(Link::Live),
        Msg::Me("bench".into(), "operator".into()),
        Msg::Overview(Overview { at: now, sites }),
        Msg::Alarms(alarms),
    ] {
        app.on_msg(m, now);
    }
    app
}

/// Runs `frames` key presses with a redraw after each; returns per-frame microseconds.
fn frames(app: &mut App, w: u16, h: u16, n: usize, now: i64) -> anyhow::Result<Histogram<u64>> {
    let mut term = Terminal::new(TestBackend::new(w, h))?;
    let mut hist = Histogram::<u64>::new(3)?;
    for i in 0..n {
        // Down to the end and back up, so the list scrolls the whole way.
        let code = if (i / 500) % 2 == 0 {
            KeyCode::Down
        } else {
            KeyCode::Up
        };
        let t = Instant::now();
        app.on_key(key(code));
        term.draw(|f| tui::view::draw(f, app, now))?;
        hist.record(t.elapsed().as_micros() as u64)?;
    }
    Ok(hist)
}

pub fn console(o: ConsoleOptions) -> anyhow::Result<()> {
    let now = tui::now_ms();
    let started = Instant::now();
    let mut app = fleet(o.size, now);
    let load = started.elapsed();
    println!(
        "bench console: {} sites, {} cabinets in one site, {} alarms, a planning map of {} demand points; {} frames per case (model load {:.1} ms)",
        o.size,
        o.size,
        o.size,
        o.demand_points,
        o.frames,
        load.as_secs_f64() * 1000.0
    );
    println!("| screen | size | p50 µs | p99 µs | max µs |");
    println!("|---|---|---|---|---|");
    for (screen, keys) in [
        ("overview", vec![]),
        ("alarms", vec![KeyCode::Char('3')]),
        ("site", vec![KeyCode::Char('1'), KeyCode::Enter]),
        ("planning map", vec![KeyCode::Char('7'), KeyCode::Char('m')]),
    ] {
        for k in keys {
            app.on_key(key(k));
        }
        if screen == "planning map" {
            let (plan, map) = city(o.demand_points);
            app.on_msg(Msg::Plan(Ok(plan)), now);
            app.on_msg(Msg::PlanMap(map), now);
        }
        if screen == "site" {
            let cabinets = (0..o.size)
                .map(|i| Cabinet {
                    id: format!("site-0000-cab-{i:04}"),
                    online: i % 7 != 0,
                    ..Cabinet::default()
                })
                .collect();
            app.on_msg(Msg::Cabinets("site-0000".into(), cabinets), now);
            let view = CabinetDetail {
                cabinet: Cabinet {
                    id: "site-0000-cab-0000".into(),
                    ..Cabinet::default()
                },
                boxes: (1..=24)
                    .map(|b| BoxView {
                        box_no: b,
                        size: domain::flows::Size::M,
                        state: domain::flows::BoxStatus::Occupied,
                        ..BoxView::default()
                    })
                    .collect(),
            };
            app.on_msg(Msg::Cabinet(view, Vec::new()), now);
        }
        for (w, h) in [(80u16, 24u16), (160, 48)] {
            let hist = frames(&mut app, w, h, o.frames, now)?;
            println!(
                "| {screen} | {w}×{h} | {} | {} | {} |",
                hist.value_at_quantile(0.5),
                hist.value_at_quantile(0.99),
                hist.max()
            );
        }
    }
    Ok(())
}
