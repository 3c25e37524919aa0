//! Snapshots of every console screen at 80×24 and at a wide 160×48, drawn from a fixed model
//! and clock with ratatui's `TestBackend`: a change to any screen is a visible diff.

use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyEventState, KeyModifiers};
use tui::app::{App, Msg, Pane, Screen};
use tui::model::{
    Alarm, AuditEntry, BoxView, Cabinet, CabinetView, Command, Item, Link, Overview, Site,
    Worklists,
};

const NOW: i64 = 1_764_288_000_000;
const MIN: i64 = 60_000;

fn key(c: KeyCode) -> KeyEvent {
    KeyEvent {
        code: c,
        modifiers: KeyModifiers::NONE,
        kind: KeyEventKind::Press,
        state: KeyEventState::NONE,
    }
}

fn site(id: &str, name: &str, kind: &str, busy: u64) -> Site {
    Site {
        id: id.into(),
        name: name.into(),
        kind: kind.into(),
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
        uses_24h: (0..24).map(|h| (h * busy) % 9).collect(),
        alarms_open: if busy > 1 { 2 } else { 0 },
    }
}

fn item(id: &str, flow: &str, state: &str, device: &str, b: u16, age_min: i64) -> Item {
    Item {
        id: id.into(),
        flow: flow.into(),
        case_number: format!("GZ-2026-{b:04}"),
        site_id: "hall".into(),
        device_id: device.into(),
        box_no: b,
        size: "M".into(),
        state: state.into(),
        created_at: NOW - age_min * MIN - 10 * MIN,
        updated_at: NOW - age_min * MIN,
        in_box_at: Some(NOW - age_min * MIN),
        due_by: (flow == "pickup").then_some(NOW + 90 * MIN),
        late_deposit: false,
    }
}

fn alarm(id: &str, kind: &str, severity: &str, state: &str, b: Option<u16>) -> Alarm {
    Alarm {
        id: id.into(),
        device_id: "hall-cab-01".into(),
        box_no: b,
        kind: kind.into(),
        severity: severity.into(),
        state: state.into(),
        site_id: Some("hall".into()),
        first_seen: NOW - 12 * MIN,
        last_seen: NOW - MIN,
        count: 3,
        evidence: Some("door opened with no unlock pulse in the preceding 3500 ms".into()),
        acked_by: (state == "acknowledged").then(|| "token:night-desk".into()),
        ack_note: (state == "acknowledged").then(|| "guard on the way".into()),
        escalated_at: None,
        suppressed: false,
    }
}

fn cabinet() -> CabinetView {
    let states = ["free", "occupied", "reserved", "out_of_service"];
    CabinetView {
        cabinet: Cabinet {
            id: "hall-cab-01".into(),
            site_id: "hall".into(),
            name: "Entrance".into(),
            online: true,
        },
        boxes: (1..=24u16)
            .map(|b| {
                let state = states[usize::from(b) % states.len()];
                BoxView {
                    box_no: b,
                    size: if b <= 12 { "S" } else { "M" }.into(),
                    accessible: b <= 2,
                    in_service: state != "out_of_service",
                    service_note: (state == "out_of_service").then(|| "lock replaced".into()),
                    state: state.into(),
                    door_open: Some(b == 5),
                    item: (state == "occupied").then(|| {
                        let mut i = item("it", "dropoff", "in_box", "hall-cab-01", b, 95);
                        if b == 9 {
                            i.state = "overdue".into();
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
    let mut app = App::new("http://127.0.0.1:8080");
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
        insta::assert_snapshot!(concat!($name, "_80x24"), screen(&app, 80, 24));
        insta::assert_snapshot!(concat!($name, "_160x48"), screen(&app, 160, 48));
    }};
}

#[test]
fn overview() {
    both!("overview", loaded());
}

#[test]
fn overview_while_the_server_is_down() {
    let mut app = loaded();
    app.on_msg(
        Msg::Link(Link::Down("cannot connect (is the server running?)".into())),
        NOW,
    );
    insta::assert_snapshot!("overview_down_80x24", screen(&app, 80, 24));
}

#[test]
fn site_grid_and_box_detail() {
    both!("site", on_site());
}

#[test]
fn remote_open_dialog_and_live_lifecycle() {
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
        status: "delivered".into(),
        ..Command::default()
    };
    app.on_msg(Msg::Opened(Ok(c.clone())), NOW);
    insta::assert_snapshot!("open_delivered_80x24", screen(&app, 80, 24));
    c.status = "opened".into();
    c.latency_ms = Some(38);
    app.on_msg(Msg::Command(c), NOW);
    insta::assert_snapshot!("open_opened_80x24", screen(&app, 80, 24));
}

#[test]
fn alarms_and_acknowledge_dialog() {
    let mut app = loaded();
    app.on_key(key(KeyCode::Char('3')));
    both!("alarms", app.clone());
    app.on_key(key(KeyCode::Char('a')));
    for c in "guard on the way".chars() {
        app.on_key(key(KeyCode::Char(c)));
    }
    insta::assert_snapshot!("ack_dialog_80x24", screen(&app, 80, 24));
}

#[test]
fn work_lists_and_audit() {
    let mut app = loaded();
    app.on_key(key(KeyCode::Char('4')));
    both!("work", app.clone());
    app.on_key(key(KeyCode::Char('5')));
    both!("audit", app);
}

#[test]
fn help_overlay_lists_every_key() {
    let mut app = loaded();
    app.on_key(key(KeyCode::Char('?')));
    both!("help", app);
}

#[test]
fn a_thousand_cabinets_scroll_without_trouble() {
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
}
