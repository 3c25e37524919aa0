//! Snapshots of every console screen at 80×24 and at a wide 160×48, drawn from a fixed model
//! and clock with ratatui's `TestBackend`: a change to any screen is a visible diff.

use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyEventState, KeyModifiers};
use tui::app::{App, Msg, Pane, Screen};
use tui::model::{
    Alarm, AuditEntry, BoxView, Cabinet, CabinetDetail, Command, Item, Link, Overview,
    SiteOverview, Worklists,
};

use l10n::Lang;

const NOW: i64 = 1_764_288_000_000;

thread_local! {
    /// The language the test in progress draws in (every screen test runs in both).
    static LANG: std::cell::Cell<Lang> = const { std::cell::Cell::new(Lang::En) };
}

fn lang() -> Lang {
    LANG.with(|l| l.get())
}

/// Runs `test` once in English and once in Chinese; snapshots of the second run are named
/// `…_zh-CN_…`, and none of its screens may show an English word the fixture did not supply.
fn in_both_languages(test: impl Fn()) {
    for l in Lang::ALL {
        LANG.with(|c| c.set(l));
        test();
    }
    LANG.with(|c| c.set(Lang::En));
}

/// Whether `text` has `word` as a word, or as the start of one.
fn has_word(text: &str, word: &str) -> bool {
    // A word cut at an edge (of the screen, or of the map) counts as the word it was.
    text.split(|c: char| !c.is_ascii_alphabetic())
        .any(|w| w.starts_with(word) || w.ends_with(word))
}

/// A snapshot named for the language in use.
macro_rules! snap {
    ($name:expr, $value:expr) => {{
        let value = $value;
        let name = match lang() {
            Lang::En => $name.to_string(),
            l => format!("{}_{}", l.tag(), $name),
        };
        if lang() != Lang::En {
            untranslated(&name, &value);
        }
        insta::assert_snapshot!(name, value);
    }};
}

/// Words of three or more ASCII letters on a Chinese screen that are not data of the fixture,
/// key names or technical terms: strings the catalogues miss.
fn untranslated(name: &str, screen: &str) {
    const ALLOWED: &[&str] = &[
        // Key names, units, protocols and API paths stay as they are in both languages.
        "Enter",
        "Esc",
        "Tab",
        "PgUp",
        "PgDn",
        "Ctrl",
        "API",
        "POST",
        "GET",
        "api",
        "sites",
        "deployments",
        "TLS",
        "NTP",
        "MiB",
        "Erlang",
        "HJKL",
        "Shift",
        // The command line's commands are typed as they are.
        "site",
        "cabinet",
        "case",
        "alarm",
        "open",
        "LockerFleet",
        // TestBackend's own note under a line with wide characters.
        "Hidden",
        "multi",
        "width",
        "symbols",
    ];
    // The fixture's data: every string literal in this file (names, ids, reasons, log lines).
    let fixture: String = include_str!("main.rs")
        .split(char::from(34)) // a quote (a literal one here would be a quote too)
        .skip(1)
        .step_by(2)
        .collect::<Vec<_>>()
        .join(" ");
    let mut bad = Vec::new();
    for word in screen
        .split(|c: char| !c.is_ascii_alphabetic())
        .filter(|w| w.len() >= 3)
    {
        // A word the fixture itself supplies (names, ids, reasons, log lines) is data.
        if !ALLOWED.contains(&word) && !has_word(&fixture, word) {
            bad.push(word.to_owned());
        }
    }
    bad.sort();
    bad.dedup();
    assert!(
        bad.is_empty(),
        "{name}: untranslated on a Chinese screen: {bad:?}\n{screen}"
    );
}
const MIN: i64 = 60_000;

fn key(c: KeyCode) -> KeyEvent {
    KeyEvent {
        code: c,
        modifiers: KeyModifiers::NONE,
        kind: KeyEventKind::Press,
        state: KeyEventState::NONE,
    }
}

fn site(id: &str, name: &str, kind: &str, busy: u64) -> SiteOverview {
    SiteOverview {
        id: id.into(),
        name: name.into(),
        kind: api_types::SiteKind::parse(kind).expect("a site kind"),
        devices: 4,
        devices_online: 3,
        boxes: 96,
        free: 40,
        occupied: 38,
        reserved: 12,
        out_of_service: 2,
        faulty: 1,
        occupancy: 50.0 / 94.0,
        usage_today: 0.1 * busy as f64,
        uses_24h: (0..24).map(|h| ((h * busy) % 9) as i64).collect(),
        alarms_open: if busy > 1 { 2 } else { 0 },
    }
}

fn item(id: &str, flow: &str, state: &str, device: &str, b: u16, age_min: i64) -> Item {
    Item {
        id: id.into(),
        flow: api_types::Flow::parse(flow).expect("a flow"),
        case_number: format!("GZ-2026-{b:04}"),
        site_id: "hall".into(),
        device_id: device.into(),
        box_no: b,
        size: api_types::Size::M,
        state: api_types::ItemState::parse(state).expect("an item state"),
        created_at: NOW - age_min * MIN - 10 * MIN,
        updated_at: NOW - age_min * MIN,
        in_box_at: Some(NOW - age_min * MIN),
        due_by: (flow == "pickup").then_some(NOW + 90 * MIN),
        late_deposit: false,
        ..Default::default()
    }
}

fn alarm(id: &str, kind: &str, severity: &str, state: &str, b: Option<u16>) -> Alarm {
    Alarm {
        id: id.into(),
        device_id: "hall-cab-01".into(),
        box_no: b,
        kind: api_types::AlarmKind::parse(kind).expect("kind"),
        severity: api_types::Severity::parse(severity).expect("severity"),
        state: api_types::AlarmState::parse(state).expect("state"),
        site_id: Some("hall".into()),
        first_seen: NOW - 12 * MIN,
        last_seen: NOW - MIN,
        count: 3,
        evidence: Some("door opened with no unlock pulse in the preceding 3500 ms".into()),
        acked_by: (state == "acknowledged").then(|| "token:night-desk".into()),
        ack_note: (state == "acknowledged").then(|| "guard on the way".into()),
        escalated_at: None,
        suppressed: false,
        ..Default::default()
    }
}

fn cabinet() -> CabinetDetail {
    let states = ["free", "occupied", "reserved", "out_of_service"];
    CabinetDetail {
        cabinet: Cabinet {
            id: "hall-cab-01".into(),
            site_id: "hall".into(),
            name: "Entrance".into(),
            online: true,
            ..Default::default()
        },
        boxes: (1..=24u16)
            .map(|b| {
                let state = states[usize::from(b) % states.len()];
                BoxView {
                    box_no: b,
                    size: if b <= 12 {
                        api_types::Size::S
                    } else {
                        api_types::Size::M
                    },
                    accessible: b <= 2,
                    in_service: state != "out_of_service",
                    service_note: (state == "out_of_service").then(|| "lock replaced".into()),
                    state: api_types::BoxStatus::parse(state).expect("a box state"),
                    door_open: Some(b == 5),
                    item: (state == "occupied").then(|| {
                        let mut i = item("it", "dropoff", "in_box", "hall-cab-01", b, 95);
                        if b == 9 {
                            i.state = api_types::ItemState::Overdue;
                        }
                        i
                    }),
                }
            })
            .collect(),
    }
}

/// An operator's console with a fleet on it, as the data task would fill it.
fn loaded() -> App {
    let mut app = App::new("http://127.0.0.1:8080", lang());
    let at = NOW - 2_000;
    for m in [
        Msg::Link(Link::Live),
        Msg::Me("night-desk".into(), "operator".into()),
        Msg::Overview(Overview {
            at,
            sites: vec![
                site("hall", "City service hall", "service_hall", 3),
                site("park-a", "Science park A", "enterprise_cluster", 2),
                site("park-b", "Science park B", "enterprise_cluster", 1),
                site("stn-1", "Metro station", "station", 0),
            ],
        }),
        Msg::Alarms(vec![
            alarm("7f9c2a51e0b4", "forced_open", "critical", "active", Some(5)),
            alarm("1b2c3d4e5f60", "lock_jam", "major", "acknowledged", Some(9)),
            alarm("aa11bb22cc33", "on_battery", "minor", "active", None),
        ]),
        Msg::Worklists(Worklists {
            collect: vec![
                item("c1", "dropoff", "in_box", "hall-cab-01", 2, 200),
                item("c2", "supplement", "in_box", "hall-cab-02", 7, 30),
            ],
            deposit: vec![item(
                "d1",
                "pickup",
                "awaiting_deposit",
                "hall-cab-01",
                11,
                60,
            )],
            overdue: vec![],
        }),
        Msg::Audit(vec![
            AuditEntry {
                id: "e1".into(),
                ts: NOW - 3 * MIN,
                actor: "token:night-desk".into(),
                action: "remote_open".into(),
                device_id: Some("hall-cab-01".into()),
                box_no: Some(5),
                reason: Some("citizen locked out".into()),
                result: Some("opened".into()),
                latency_ms: Some(42),
                ..Default::default()
            },
            AuditEntry {
                id: "e2".into(),
                ts: NOW - 9 * MIN,
                actor: "keypad".into(),
                action: "code_open".into(),
                device_id: Some("hall-cab-01".into()),
                box_no: Some(5),
                reason: None,
                result: Some("opened".into()),
                latency_ms: None,
                ..Default::default()
            },
        ]),
    ] {
        app.on_msg(m, NOW);
    }
    app
}

/// The loaded console on the site screen, cabinet hall-cab-01, box 5 selected.
fn on_site() -> App {
    let mut app = loaded();
    app.on_key(key(KeyCode::Enter));
    app.on_msg(
        Msg::Cabinets(
            "hall".into(),
            vec![
                Cabinet {
                    id: "hall-cab-01".into(),
                    online: true,
                    ..Cabinet::default()
                },
                Cabinet {
                    id: "hall-cab-02".into(),
                    online: false,
                    ..Cabinet::default()
                },
            ],
        ),
        NOW,
    );
    let audit = app.model.audit.clone();
    app.on_msg(Msg::Cabinet(cabinet(), audit), NOW);
    app.on_key(key(KeyCode::Tab));
    for _ in 0..4 {
        app.on_key(key(KeyCode::Right));
    }
    assert_eq!(
        (app.screen, app.pane, app.sel_box),
        (Screen::Site, Pane::Boxes, 4)
    );
    app
}

fn screen(app: &App, w: u16, h: u16) -> String {
    let mut t = Terminal::new(TestBackend::new(w, h)).expect("terminal");
    t.draw(|f| tui::view::draw(f, app, NOW)).expect("draw");
    format!("{}", t.backend())
}

/// Snapshots one state at both sizes.
macro_rules! both {
    ($name:literal, $app:expr) => {{
        let app = $app;
        snap!(concat!($name, "_80x24"), screen(&app, 80, 24));
        snap!(concat!($name, "_160x48"), screen(&app, 160, 48));
    }};
}

#[test]
fn overview() {
    in_both_languages(|| {
        both!("overview", loaded());
    });
}

#[test]
fn overview_while_the_server_is_down() {
    in_both_languages(|| {
        let mut app = loaded();
        app.on_msg(
            Msg::Link(Link::Down("cannot connect (is the server running?)".into())),
            NOW,
        );
        snap!("overview_down_80x24", screen(&app, 80, 24));
    });
}

#[test]
fn site_grid_and_box_detail() {
    in_both_languages(|| {
        both!("site", on_site());
    });
}

#[test]
fn remote_open_dialog_and_live_lifecycle() {
    in_both_languages(|| {
        let mut app = on_site();
        app.on_key(key(KeyCode::Char('o')));
        for c in "citizen locked out".chars() {
            app.on_key(key(KeyCode::Char(c)));
        }
        both!("open_dialog", app.clone());
        app.on_key(key(KeyCode::Enter));
        let mut c = Command {
            command_id: "c1".into(),
            device_id: "hall-cab-01".into(),
            box_no: 5,
            status: api_types::CommandStatus::Delivered,
            ..Command::default()
        };
        app.on_msg(Msg::Opened(Ok(c.clone())), NOW);
        snap!("open_delivered_80x24", screen(&app, 80, 24));
        c.status = api_types::CommandStatus::Opened;
        c.latency_ms = Some(38);
        app.on_msg(Msg::Command(c), NOW);
        snap!("open_opened_80x24", screen(&app, 80, 24));
    });
}

#[test]
fn alarms_and_acknowledge_dialog() {
    in_both_languages(|| {
        let mut app = loaded();
        app.on_key(key(KeyCode::Char('3')));
        both!("alarms", app.clone());
        app.on_key(key(KeyCode::Char('a')));
        for c in "guard on the way".chars() {
            app.on_key(key(KeyCode::Char(c)));
        }
        snap!("ack_dialog_80x24", screen(&app, 80, 24));
    });
}

#[test]
fn work_lists_and_audit() {
    in_both_languages(|| {
        let mut app = loaded();
        app.on_key(key(KeyCode::Char('4')));
        both!("work", app.clone());
        app.on_key(key(KeyCode::Char('5')));
        both!("audit", app);
    });
}

#[test]
fn help_overlay_lists_every_key() {
    in_both_languages(|| {
        let mut app = loaded();
        app.on_key(key(KeyCode::Char('?')));
        both!("help", app);
    });
}

#[test]
fn a_thousand_cabinets_scroll_without_trouble() {
    in_both_languages(|| {
        // 1,000 sites' worth of rows: the selection far down is on screen.
        let mut app = loaded();
        let sites = (0..1000)
            .map(|i| site(&format!("s{i:04}"), &format!("Site {i:04}"), "community", 1))
            .collect();
        app.on_msg(Msg::Overview(Overview { at: NOW, sites }), NOW);
        for _ in 0..90 {
            app.on_key(key(KeyCode::PageDown));
        }
        assert_eq!(app.sel_site, 900);
        let s = screen(&app, 80, 24);
        assert!(s.contains("Site 0900"), "{s}");
    });
}

fn usage_figures() -> tui::model::Usage {
    use tui::model::{Saturation, SiteHours, SiteSaturation, Usage};
    let sites = [
        ("hall-1", "City service hall", "service_hall", 0.9),
        ("park-n", "North park", "enterprise_cluster", 0.55),
        ("park-s", "South park", "enterprise_cluster", 0.2),
    ];
    Usage {
        from: NOW - 23 * 60 * MIN,
        hours: sites
            .iter()
            .map(|(id, _, kind, peak)| SiteHours {
                site_id: (*id).into(),
                kind: api_types::SiteKind::parse(kind).expect("a site kind"),
                // A day's shape: quiet at night, busy in office hours.
                occupancy: (0..24)
                    .map(|h| {
                        if (9..18).contains(&h) {
                            *peak
                        } else {
                            peak / 4.0
                        }
                    })
                    .collect(),
                uses: vec![1; 24],
                unmet: vec![0; 24],
            })
            .collect(),
        saturation: Saturation {
            rate: 0.8,
            days: 5,
            window: 7,
            sites: sites
                .iter()
                .map(|(id, name, kind, peak)| SiteSaturation {
                    site_id: (*id).into(),
                    name: (*name).into(),
                    kind: api_types::SiteKind::parse(kind).expect("a site kind"),
                    boxes: 24,
                    days_above: if *peak > 0.8 { 6 } else { 0 },
                    saturated: *peak > 0.8,
                    occupancy: peak * 0.9,
                    daily: (0..7)
                        .map(|d| (peak - 0.05 * f64::from(d % 3)).max(0.0))
                        .collect(),
                })
                .collect(),
            ..Default::default()
        },
    }
}

/// Where the fixture city's clusters are (lon, lat): three parks and a market.
const PLACES: [(f64, f64); 4] = [
    (113.30, 23.16),
    (113.25, 23.10),
    (113.34, 23.09),
    (113.20, 23.14),
];

/// The city around them: demand points scattered about each place (a fixed sequence, so the
/// map is the same every run), and the service hall in use.
fn plan_map() -> tui::model::PlanMap {
    let mut x: u64 = 2018;
    let mut next = || {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (x >> 33) as f64 / f64::from(1u32 << 31)
    };
    let demand = (0..120)
        .map(|i| {
            let (lon, lat) = PLACES[i % 4];
            tui::model::DemandPoint {
                id: format!("d{i}"),
                name: String::new(),
                lon: lon + (next() - 0.5) * 0.02,
                lat: lat + (next() - 0.5) * 0.015,
                enterprises: 1 + (next() * 40.0) as u32,
                monthly_cases: Some(10.0),
                cluster: None,
            }
        })
        .collect();
    tui::model::PlanMap {
        demand,
        existing: vec![tui::model::ExistingSite {
            id: "hall-1".into(),
            name: "City service hall".into(),
            lat: 23.1291,
            lon: 113.2644,
            boxes: 24,
            occupancy: 0.86,
            peak_occupancy: 0.97,
            unmet_per_day: 3.0,
        }],
    }
}

fn plan() -> tui::model::Plan {
    use tui::model::{BoxesBySize, ClusterCoverage, Expansion, Plan, PlanParams, Recommendation};
    let rec = |rank: usize, name: &str, ent: u64, total: u32| Recommendation {
        rank,
        candidate_id: format!("g{rank}"),
        name: name.into(),
        enterprises_covered: ent,
        cases_covered: ent as f64 / 3.5,
        boxes: BoxesBySize {
            s: total / 2,
            m: total / 3,
            l: total - total / 2 - total / 3,
            total,
        },
        expected_usage: 0.62,
        overflow_probability: 0.039,
        capped: false,
        lon: PLACES[rank - 1].0,
        lat: PLACES[rank - 1].1,
        ..Default::default()
    };
    let cluster = |i: usize, name: &str, ent: u64, before: f64, after: f64| ClusterCoverage {
        lon: PLACES[i].0,
        lat: PLACES[i].1,
        cluster: name.into(),
        demand_points: 40,
        enterprises: ent,
        share_before: before,
        share_after: after,
        meets_target: after >= 0.5,
        ..Default::default()
    };
    Plan {
        enterprises: 2131,
        covered_before: 0,
        covered_after: 1948,
        share_before: 0.0,
        share_after: 0.914,
        params: PlanParams {
            radius_m: 500.0,
            overflow: 0.05,
            coverage_target: 0.5,
            ..Default::default()
        },
        recommendations: vec![
            rec(1, "North Industrial Park gate", 670, 37),
            rec(2, "Science Park plaza", 649, 39),
            rec(3, "Harbour Trade Zone lobby", 629, 41),
        ],
        points_without_cases: 0,
        expansions: vec![Expansion {
            site_id: "hall-1".into(),
            name: "City service hall".into(),
            boxes: 24,
            boxes_needed: 31,
            add: 7,
            ..Default::default()
        }],
        clusters: vec![
            cluster(0, "North Industrial Park", 670, 0.0, 1.0),
            cluster(2, "Harbour Trade Zone", 657, 0.0, 0.96),
            cluster(1, "Science Park", 649, 0.0, 1.0),
            cluster(3, "East market", 120, 0.1, 0.3),
        ],
    }
}

#[test]
fn usage_heatmap_trend_and_saturation() {
    in_both_languages(|| {
        let mut app = loaded();
        let actions = app.on_key(key(KeyCode::Char('6')));
        assert_eq!(app.screen, Screen::Usage);
        assert_eq!(
            actions,
            vec![tui::app::Action::Refresh, tui::app::Action::Usage]
        );
        snap!("usage_loading_80x24", screen(&app, 80, 24));
        app.on_msg(Msg::Usage(usage_figures()), NOW);
        both!("usage", app.clone());
        // The filter finds the saturated sites by that word.
        app.filter = "saturated".into();
        assert_eq!(app.usage_rows().len(), 1);
    });
}

#[test]
fn planning_recommendations_and_coverage() {
    in_both_languages(|| {
        let mut app = loaded();
        let actions = app.on_key(key(KeyCode::Char('7')));
        assert_eq!(app.screen, Screen::Planning);
        assert_eq!(
            actions,
            vec![tui::app::Action::Refresh, tui::app::Action::Planning]
        );
        app.on_msg(
            Msg::Plan(Err(
                "no demand points yet: upload them with PUT /api/v1/planning/demand (CSV or GeoJSON)"
                    .into(),
            )),
            NOW,
        );
        snap!("planning_no_demand_80x24", screen(&app, 80, 24));
        app.on_msg(Msg::Plan(Ok(plan())), NOW);
        app.on_key(key(KeyCode::Down));
        assert_eq!(app.sel_rec, 1);
        both!("planning", app.clone());
        // The map: points, the hall's use, each recommendation's walking radius, the
        // selected one named; zoomed in and panned, then back to every point.
        app.on_msg(Msg::PlanMap(plan_map()), NOW);
        app.on_key(key(KeyCode::Char('m')));
        both!("planning_map", app.clone());
        app.on_key(key(KeyCode::Char('+')));
        app.on_key(key(KeyCode::Char('+')));
        app.on_key(key(KeyCode::Char('L')));
        snap!("planning_map_zoomed_80x24", screen(&app, 80, 24));
        app.on_key(key(KeyCode::Char('0')));
        assert_eq!(
            app.map,
            tui::app::MapView {
                on: true,
                ..Default::default()
            }
        );
        app.on_key(key(KeyCode::Char('m')));
        assert!(!app.map.on);
    });
}

fn diagnostic(
    kind: &str,
    state: &str,
    report: Option<tui::model::DiagnosticReport>,
) -> tui::model::Diagnostic {
    tui::model::Diagnostic {
        id: "diag-1".into(),
        device_id: "hall-cab-01".into(),
        kind: api_types::diagnostics::DiagnosticKind::parse(kind).expect("kind"),
        lines: (kind == "logs").then_some(200),
        state: state.into(),
        requested_by: "night-desk".into(),
        requested_at: NOW - 4_000,
        expires_at: NOW + 10 * MIN,
        sent_at: Some(NOW - 3_900),
        answered_at: (state == "answered").then_some(NOW - 3_000),
        summary: match &report {
            Some(tui::model::DiagnosticReport::Doctor { .. }) => {
                Some("1 of 6 checks fail: lock board".into())
            }
            Some(_) => Some("5 lines, 1 error, 1 warning".into()),
            None => None,
        },
        report,
    }
}

#[test]
fn diagnostics_doctor_report_log_lines_and_an_offline_cabinet() {
    in_both_languages(|| {
        use api_types::diagnostics::{DiagnosticReport, DoctorCheck, LogLine};
        let mut app = on_site();
        app.on_key(key(KeyCode::Char('d')));
        snap!("diagnostics_asking_80x24", screen(&app, 80, 24));
        let check = |name: &str, ok: bool, detail: &str| DoctorCheck {
            name: name.into(),
            ok,
            detail: detail.into(),
        };
        let doctor = DiagnosticReport::Doctor {
            checks: vec![
                check(
                    "config",
                    true,
                    "device hall-cab-01, server fleet.example.cn:8883",
                ),
                check(
                    "certificate",
                    true,
                    "certs/hall-cab-01.pem valid for 341 more days",
                ),
                check("clock", true, "within 12 ms of the server's"),
                check(
                    "server",
                    true,
                    "fleet.example.cn:8883 reachable; it accepted this cabinet's certificate",
                ),
                check(
                    "lock board",
                    false,
                    "boxes 13-24: no answer from unit 2 within 200 ms",
                ),
                check("disk", true, "912 MiB free in /var/lib/lockerfleet"),
            ],
        };
        app.on_msg(
            Msg::Diagnosis {
                device: "hall-cab-01".into(),
                result: Ok(diagnostic("doctor", "answered", Some(doctor))),
            },
            NOW,
        );
        both!("diagnostics_doctor", app.clone());

        app.on_key(key(KeyCode::Esc));
        app.on_key(key(KeyCode::Char('g')));
        let line = |secs: i64, level: &str, text: &str| LogLine {
            at: NOW - secs * 1000,
            level: level.into(),
            target: "device_agent".into(),
            text: text.into(),
        };
        let logs = DiagnosticReport::Logs {
            lines: vec![
                line(3600, "INFO", "connected device=hall-cab-01"),
                line(1200, "WARN", "box left open box_no=5 secs=120"),
                line(
                    900,
                    "ERROR",
                    "lock board silent: no answer from unit 2 within 200 ms",
                ),
                line(60, "INFO", "柜门已关闭 box_no=5"),
                line(3, "INFO", "diagnostics sent request=diag-1"),
            ],
            dropped: 0,
            level: "info,rumqttc=warn,sqlx=warn".into(),
        };
        app.on_msg(
            Msg::Diagnosis {
                device: "hall-cab-01".into(),
                result: Ok(diagnostic("logs", "answered", Some(logs))),
            },
            NOW,
        );
        snap!("diagnostics_logs_80x24", screen(&app, 80, 24));

        app.on_key(key(KeyCode::Char('r')));
        app.on_msg(
            Msg::Diagnosis {
                device: "hall-cab-01".into(),
                result: Ok(diagnostic("logs", "pending", None)),
            },
            NOW,
        );
        snap!("diagnostics_pending_80x24", screen(&app, 80, 24));
    });
}

fn fleet() -> tui::model::Fleet {
    use api_types::deployments::{DeploymentDevice, WaveProgress};
    use tui::model::{Deployment, DeploymentDetail, DeploymentState, DeviceRollout};
    let wave = |wave, devices, pending, in_progress, succeeded, failed, rolled_back| WaveProgress {
        wave,
        devices,
        pending,
        in_progress,
        succeeded,
        failed,
        rolled_back,
    };
    let halted = Deployment {
        id: "d41f8e2a9c".into(),
        target: "aarch64-unknown-linux-gnu".into(),
        version: "0.3.0".into(),
        state: DeploymentState::Halted,
        reason: Some("wave 1 failed: 1 of 1 devices failed (more than 0%); rolled back".into()),
        wave: 1,
        waves: vec![wave(1, 1, 0, 0, 0, 0, 1), wave(2, 39, 39, 0, 0, 0, 0)],
        success_percent: 100,
        created_at: NOW - 3 * 3_600_000,
        created_by: "release-bot".into(),
        ..Default::default()
    };
    let running = Deployment {
        id: "7b2c90e1aa".into(),
        target: "x86_64-unknown-linux-gnu".into(),
        version: "0.2.1".into(),
        state: DeploymentState::Running,
        wave: 2,
        waves: vec![
            wave(1, 2, 0, 0, 2, 0, 0),
            wave(2, 12, 3, 5, 4, 0, 0),
            wave(3, 26, 26, 0, 0, 0, 0),
        ],
        success_percent: 95,
        max_failures_percent: 5,
        soak_secs: 600,
        window: Some(api_types::releases::Window {
            from: "02:00".into(),
            to: "05:00".into(),
            utc_offset_minutes: 480,
        }),
        created_at: NOW - 40 * MIN,
        created_by: "admin".into(),
        ..Default::default()
    };
    let device = |id: &str, state, reason: Option<&str>| DeploymentDevice {
        device_id: id.into(),
        wave: 2,
        state,
        reason: reason.map(Into::into),
        ..Default::default()
    };
    let drifting = |id: &str, online, applied: Option<(&str, &str, Option<&str>)>| {
        api_types::config::DeviceConfig {
            device_id: id.into(),
            online,
            desired: api_types::config::DesiredConfig {
                version: "9b812558545e8405".into(),
                ..Default::default()
            },
            applied: applied.map(
                |(state, version, reason)| api_types::config::AppliedConfig {
                    version: version.into(),
                    state: state.into(),
                    reason: reason.map(Into::into),
                    ..Default::default()
                },
            ),
            drift: true,
        }
    };
    tui::model::Fleet {
        deployments: vec![running.clone(), halted],
        detail: Some(DeploymentDetail {
            deployment: running,
            devices: vec![
                device("park-a-07", DeviceRollout::Installing, None),
                device(
                    "park-a-09",
                    DeviceRollout::Failed,
                    Some("refused: release is for aarch64-unknown-linux-gnu"),
                ),
            ],
        }),
        drift: vec![
            drifting(
                "hall-cab-03",
                false,
                Some(("applied", "0b3c8e1d5a7f9e21", None)),
            ),
            drifting(
                "park-b-02",
                true,
                Some((
                    "waiting_restart",
                    "9b812558545e8405",
                    Some("heartbeat_secs take effect after a restart"),
                )),
            ),
            drifting("stn-1-01", true, None),
        ],
    }
}

#[test]
fn fleet_rollouts_waves_failures_and_configuration_drift() {
    in_both_languages(|| {
        let mut app = loaded();
        app.on_key(key(KeyCode::Char('8')));
        snap!("fleet_loading_80x24", screen(&app, 80, 24));
        app.on_msg(Msg::Fleet(Ok(fleet())), NOW);
        both!("fleet", app.clone());
        app.on_msg(Msg::Me("root".into(), "admin".into()), NOW);
        app.on_key(key(KeyCode::Char('x')));
        for c in "wrong boards in park A".chars() {
            app.on_key(key(KeyCode::Char(c)));
        }
        snap!("fleet_cancel_dialog_80x24", screen(&app, 80, 24));
    });
}

#[test]
fn a_terminal_too_small_says_so_and_chinese_names_fit_their_column() {
    in_both_languages(|| {
        let app = loaded();
        snap!("too_small_40x10", screen(&app, 40, 10));
        let mut app = loaded();
        app.on_msg(
            Msg::Overview(Overview {
                at: NOW - 2_000,
                sites: vec![
                    site(
                        "hall",
                        "深圳市南山区政务服务中心二楼综合受理大厅",
                        "service_hall",
                        3,
                    ),
                    site("park-a", "科技园企业聚集区 A", "enterprise_cluster", 2),
                    site("stn-1", "粤海街道驿站", "station", 0),
                ],
            }),
            NOW,
        );
        snap!("overview_chinese_names_80x24", screen(&app, 80, 24));
    });
}

#[test]
fn command_line_faults_only_and_the_operators_trail() {
    in_both_languages(|| {
        // The command line with Tab's choices, then a jump to an alarm by its id.
        let mut app = loaded();
        app.on_key(key(KeyCode::Char(':')));
        for c in "al".chars() {
            app.on_key(key(KeyCode::Char(c)));
        }
        app.on_key(key(KeyCode::Tab));
        snap!("command_line_80x24", screen(&app, 80, 24));
        for c in " 1b2c".chars() {
            app.on_key(key(KeyCode::Char(c)));
        }
        app.on_key(key(KeyCode::Enter));
        assert_eq!((app.screen, app.sel_alarm), (Screen::Alarms, 1));
        // Faults only: the sites that need attention.
        let mut app = loaded();
        app.on_key(KeyEvent {
            modifiers: KeyModifiers::CONTROL,
            ..key(KeyCode::Char('z'))
        });
        both!("faults_only", app);
        // The trail after a remote open that opened and an acknowledgement refused.
        let mut app = on_site();
        app.on_key(key(KeyCode::Char('o')));
        for c in "citizen locked out".chars() {
            app.on_key(key(KeyCode::Char(c)));
        }
        app.on_key(key(KeyCode::Enter));
        let mut c = Command {
            command_id: "c1".into(),
            device_id: "hall-cab-01".into(),
            box_no: 5,
            status: api_types::CommandStatus::Delivered,
            ..Command::default()
        };
        app.on_msg(Msg::Opened(Ok(c.clone())), NOW - 120_000);
        c.status = api_types::CommandStatus::Opened;
        c.latency_ms = Some(38);
        app.on_msg(Msg::Command(c), NOW - 119_000);
        app.on_key(key(KeyCode::Char('3')));
        app.on_key(key(KeyCode::Char('a')));
        for c in "guard on the way".chars() {
            app.on_key(key(KeyCode::Char(c)));
        }
        app.on_key(key(KeyCode::Enter));
        app.on_msg(
            Msg::Acked(Err("POST /api/v1/alarms/7f9c2a51e0b4/ack: 409".into())),
            NOW,
        );
        app.on_key(key(KeyCode::Char('t')));
        both!("trail", app);
    });
}
