//! The console's rules without a terminal: selection, navigation, dialogs, filters.

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use super::*;
use crate::model::{Overview, SiteOverview};
use ratatui::crossterm::event::KeyEventKind;

fn key(c: KeyCode) -> KeyEvent {
    KeyEvent {
        code: c,
        modifiers: KeyModifiers::NONE,
        kind: KeyEventKind::Press,
        state: ratatui::crossterm::event::KeyEventState::NONE,
    }
}

fn typed(app: &mut App, s: &str) {
    for c in s.chars() {
        app.on_key(key(KeyCode::Char(c)));
    }
}

fn app_with_sites(n: usize) -> App {
    let mut app = App::new("http://x", l10n::Lang::En);
    let sites = (1..=n)
        .map(|i| SiteOverview {
            id: format!("site-{i}"),
            name: format!("Hall {i}"),
            kind: api_types::SiteKind::ServiceHall,
            ..SiteOverview::default()
        })
        .collect();
    app.on_msg(Msg::Overview(Overview { at: 5, sites }), 10);
    app.on_msg(Msg::Me("ops".into(), "operator".into()), 10);
    app
}

fn cabinet(id: &str, boxes: u16) -> CabinetDetail {
    CabinetDetail {
        cabinet: Cabinet {
            id: id.into(),
            site_id: "site-2".into(),
            ..Cabinet::default()
        },
        boxes: (1..=boxes)
            .map(|b| BoxView {
                box_no: b,
                state: api_types::BoxStatus::Free,
                ..BoxView::default()
            })
            .collect(),
    }
}

#[test]
fn selection_stays_inside_lists_and_enter_opens_the_site() {
    let mut app = app_with_sites(3);
    for _ in 0..5 {
        app.on_key(key(KeyCode::Down));
    }
    assert_eq!(app.sel_site, 2);
    app.on_key(key(KeyCode::Up));
    assert_eq!(
        app.on_key(key(KeyCode::Enter)),
        vec![Action::Site("site-2".into())]
    );
    assert_eq!(app.screen, Screen::Site);
    // Fewer sites arrive: the selection follows.
    app.on_msg(
        Msg::Overview(Overview {
            at: 6,
            sites: vec![SiteOverview::default()],
        }),
        11,
    );
    assert_eq!(app.sel_site, 0);
}

#[test]
fn remote_open_needs_a_box_a_role_and_a_reason() {
    let mut app = app_with_sites(2);
    assert!(app.on_key(key(KeyCode::Char('o'))).is_empty());
    assert!(app.status.contains("select a box"), "{}", app.status);
    app.on_key(key(KeyCode::Down));
    app.on_key(key(KeyCode::Enter));
    app.on_msg(
        Msg::Cabinets(
            "site-2".into(),
            vec![Cabinet {
                id: "cab-1".into(),
                ..Cabinet::default()
            }],
        ),
        12,
    );
    app.on_msg(Msg::Cabinet(cabinet("cab-1", 12), Vec::new()), 12);
    app.on_key(key(KeyCode::Tab));
    app.on_key(key(KeyCode::Down)); // one grid row down: box 7
    app.on_key(key(KeyCode::Right)); // box 8
    app.on_key(key(KeyCode::Char('o')));
    assert!(matches!(app.dialog, Some(Dialog::Open { box_no: 8, .. })));
    // Enter without a reason: refused, the dialog stays.
    assert!(app.on_key(key(KeyCode::Enter)).is_empty());
    assert!(app.status.contains("reason is required"));
    typed(&mut app, "citizen locked out");
    let actions = app.on_key(key(KeyCode::Enter));
    assert_eq!(
        actions,
        vec![Action::Open {
            device: "cab-1".into(),
            box_no: 8,
            reason: "citizen locked out".into()
        }]
    );
    assert!(app.dialog.is_none());
    // The lifecycle arrives: watched until final, with its latency.
    let mut c = Command {
        command_id: "c1".into(),
        device_id: "cab-1".into(),
        box_no: 8,
        status: api_types::CommandStatus::Queued,
        ..Command::default()
    };
    app.on_msg(Msg::Opened(Ok(c.clone())), 13);
    c.status = api_types::CommandStatus::Opened;
    c.latency_ms = Some(42);
    app.on_msg(Msg::Command(c), 14);
    assert_eq!(
        app.watch
            .as_ref()
            .and_then(|w| w.command.as_ref())
            .map(|c| c.status.as_str()),
        Some("opened")
    );
    assert!(app.status.contains("opened in 42 ms"), "{}", app.status);

    // A viewer sees the action refused with the reason.
    app.on_msg(Msg::Me("v".into(), "viewer".into()), 15);
    app.on_key(key(KeyCode::Char('o')));
    assert!(app.dialog.is_none());
    assert!(app.status.contains("operator role"), "{}", app.status);
}

#[test]
fn alarms_filter_acknowledge_and_jump_to_the_box() {
    let mut app = app_with_sites(2);
    let alarm = |id: &str, kind: &str, state: &str| Alarm {
        id: id.into(),
        device_id: "cab-9".into(),
        box_no: Some(4),
        kind: api_types::AlarmKind::parse(kind).expect("kind"),
        severity: api_types::Severity::Critical,
        state: api_types::AlarmState::parse(state).expect("state"),
        site_id: Some("site-2".into()),
        ..Alarm::default()
    };
    app.on_msg(
        Msg::Alarms(vec![
            alarm("a1", "forced_open", "active"),
            alarm("a2", "lock_jam", "acknowledged"),
        ]),
        1,
    );
    app.on_key(key(KeyCode::Char('3')));
    assert_eq!(app.screen, Screen::Alarms);
    app.on_key(key(KeyCode::Char('/')));
    typed(&mut app, "jam");
    app.on_key(key(KeyCode::Enter));
    assert_eq!(app.alarms().len(), 1);
    app.on_key(key(KeyCode::Char('a')));
    assert!(app.status.contains("only active"), "{}", app.status);
    app.on_key(key(KeyCode::Esc)); // clears the filter
    assert_eq!(app.alarms().len(), 2);
    app.on_key(key(KeyCode::Char('a')));
    typed(&mut app, "on my way");
    assert_eq!(
        app.on_key(key(KeyCode::Enter)),
        vec![Action::Ack {
            alarm_id: "a1".into(),
            note: "on my way".into()
        }]
    );
    assert_eq!(
        app.on_key(key(KeyCode::Enter)),
        vec![
            Action::Site("site-2".into()),
            Action::Cabinet("cab-9".into())
        ]
    );
    assert_eq!(
        (app.screen, app.pane, app.sel_box),
        (Screen::Site, Pane::Boxes, 3)
    );
    // The site's cabinets arrive: the alarm's cabinet stays selected and is fetched.
    let cab = |id: &str| Cabinet {
        id: id.into(),
        ..Cabinet::default()
    };
    app.on_msg(
        Msg::Cabinets("site-2".into(), vec![cab("cab-1"), cab("cab-9")]),
        2,
    );
    assert_eq!(app.sel_cabinet, 1);
    assert_eq!(app.select_cabinet(), vec![Action::Cabinet("cab-9".into())]);
    app.on_msg(Msg::Cabinet(cabinet("cab-9", 6), Vec::new()), 3);
    assert!(app.select_cabinet().is_empty());
}

#[test]
fn help_usage_planning_and_quit() {
    let mut app = app_with_sites(1);
    app.on_key(key(KeyCode::Char('?')));
    assert_eq!(app.dialog, Some(Dialog::Help));
    app.on_key(key(KeyCode::Char('x')));
    assert!(app.dialog.is_none());
    assert_eq!(
        app.on_key(key(KeyCode::Char('6'))),
        vec![Action::Refresh, Action::Usage]
    );
    assert_eq!(app.screen, Screen::Usage);
    // `r` on the planning screen recomputes the plan; Tab cycles through all eight.
    app.on_key(key(KeyCode::Char('7')));
    assert_eq!(
        app.on_key(key(KeyCode::Char('r'))),
        vec![Action::Refresh, Action::Planning]
    );
    app.on_key(key(KeyCode::Tab));
    assert_eq!(app.screen, Screen::Fleet);
    app.on_key(key(KeyCode::Tab));
    assert_eq!(app.screen, Screen::Overview);
    assert_eq!(app.on_key(key(KeyCode::Char('q'))), vec![Action::Quit]);
    assert!(app.quit);
}

#[test]
fn diagnostics_are_asked_by_operators_read_by_viewers_and_closed_with_esc() {
    let mut app = app_with_sites(1);
    let none = app.on_key(key(KeyCode::Char('d')));
    assert!(
        none.is_empty() && app.status.contains("select a cabinet"),
        "{}",
        app.status
    );
    app.on_key(key(KeyCode::Enter));
    app.on_msg(
        Msg::Cabinets(
            "site-1".into(),
            vec![Cabinet {
                id: "cab-1".into(),
                site_id: "site-1".into(),
                ..Cabinet::default()
            }],
        ),
        10,
    );
    let asked = app.on_key(key(KeyCode::Char('g')));
    assert_eq!(
        asked,
        [Action::Diagnose {
            device: "cab-1".into(),
            kind: DiagnosticKind::Logs,
            request: true
        }]
    );
    assert_eq!(app.dialog, Some(Dialog::Diagnostics));
    // Another cabinet's answer does not land here; this one's does.
    let answer = |device: &str| Msg::Diagnosis {
        device: device.into(),
        result: Err("GET …: 503 database unavailable".into()),
    };
    app.on_msg(answer("cab-2"), 10);
    assert_eq!(
        app.diagnosis.as_ref().map(|d| d.answer.is_none()),
        Some(true)
    );
    app.on_msg(answer("cab-1"), 10);
    assert!(app.status.contains("503"), "{}", app.status);
    // Keys scroll the overlay and do not reach the screen below.
    app.on_key(key(KeyCode::Up));
    app.on_key(key(KeyCode::Char('o')));
    assert_eq!(app.diagnosis.as_ref().map(|d| d.back), Some(1));
    app.on_key(key(KeyCode::Esc));
    assert_eq!(app.dialog, None);
    assert_eq!(app.diagnosis, None);

    app.on_msg(Msg::Me("wall".into(), "viewer".into()), 10);
    let read = app.on_key(key(KeyCode::Char('d')));
    assert_eq!(
        read,
        [Action::Diagnose {
            device: "cab-1".into(),
            kind: DiagnosticKind::Doctor,
            request: false
        }]
    );
}

fn fleet_with(states: &[crate::model::DeploymentState]) -> crate::model::Fleet {
    crate::model::Fleet {
        deployments: states
            .iter()
            .enumerate()
            .map(|(i, s)| crate::model::Deployment {
                id: format!("dep-{i}"),
                state: *s,
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    }
}

#[test]
fn the_fleet_screen_is_watched_while_shown_and_only_admins_change_rollouts() {
    use crate::model::DeploymentState as S;
    let mut app = app_with_sites(1);
    let shown = app.on_key(key(KeyCode::Char('8')));
    assert_eq!(app.screen, Screen::Fleet);
    assert!(shown.contains(&Action::Fleet {
        watch: true,
        selected: None
    }));
    app.on_msg(
        Msg::Fleet(Ok(fleet_with(&[S::Running, S::Paused, S::Completed]))),
        10,
    );
    // Moving selects another deployment and fetches its detail.
    let moved = app.on_key(key(KeyCode::Down));
    assert_eq!(
        moved,
        [Action::Fleet {
            watch: true,
            selected: Some("dep-1".into())
        }]
    );
    // An operator may not pause.
    assert!(app.on_key(key(KeyCode::Char('p'))).is_empty());
    assert!(app.status.contains("admin"), "{}", app.status);
    assert_eq!(app.dialog, None);

    app.on_msg(Msg::Me("root".into(), "admin".into()), 10);
    app.on_key(key(KeyCode::Char('p')));
    assert!(
        matches!(&app.dialog, Some(Dialog::Deploy { id, act: DeployAct::Resume, .. }) if id == "dep-1"),
        "a paused one resumes: {:?}",
        app.dialog
    );
    let sent = app.on_key(key(KeyCode::Enter));
    assert_eq!(
        sent,
        [Action::Deploy {
            id: "dep-1".into(),
            act: DeployAct::Resume,
            note: String::new()
        }]
    );
    // Cancelling needs a note.
    app.on_key(key(KeyCode::Char('x')));
    assert!(app.on_key(key(KeyCode::Enter)).is_empty());
    assert!(app.status.contains("note is required"), "{}", app.status);
    typed(&mut app, "wrong boards");
    let sent = app.on_key(key(KeyCode::Enter));
    assert!(
        matches!(&sent[..], [Action::Deploy { act: DeployAct::Cancel, note, .. }] if note == "wrong boards")
    );
    // A finished one is left alone.
    app.on_key(key(KeyCode::Down));
    assert!(app.on_key(key(KeyCode::Char('p'))).is_empty());
    assert!(app.status.contains("completed"), "{}", app.status);
    // Leaving stops the watch.
    let left = app.on_key(key(KeyCode::Char('1')));
    assert!(
        left.iter()
            .any(|a| matches!(a, Action::Fleet { watch: false, .. })),
        "{left:?}"
    );
}

fn ctrl(c: char) -> KeyEvent {
    KeyEvent {
        modifiers: KeyModifiers::CONTROL,
        ..key(KeyCode::Char(c))
    }
}

#[test]
fn the_command_line_jumps_completes_and_remembers() {
    let mut app = app_with_sites(12);
    app.on_key(key(KeyCode::Char(':')));
    typed(&mut app, "si");
    app.on_key(key(KeyCode::Tab));
    assert_eq!(
        app.dialog,
        Some(Dialog::Command {
            text: "site ".into()
        })
    );
    typed(&mut app, "site-1");
    app.on_key(key(KeyCode::Tab));
    // site-1, site-10, site-11, site-12: no longer prefix, so the choices are listed.
    assert_eq!(app.cmd_hint, "site-1 site-10 site-11 site-12");
    let actions = app.on_key(key(KeyCode::Enter));
    assert_eq!(actions, vec![Action::Site("site-1".into())]);
    assert_eq!(
        (app.screen, app.site.as_deref()),
        (Screen::Site, Some("site-1"))
    );

    // ↑ brings the last line back; an unknown command says what there is.
    app.on_key(key(KeyCode::Char(':')));
    app.on_key(key(KeyCode::Up));
    assert_eq!(
        app.dialog,
        Some(Dialog::Command {
            text: "site site-1".into()
        })
    );
    app.on_key(key(KeyCode::Esc));
    app.on_key(key(KeyCode::Char(':')));
    typed(&mut app, "frob");
    assert!(app.on_key(key(KeyCode::Enter)).is_empty());
    assert!(
        app.status.starts_with("unknown command :frob: try :site"),
        "{}",
        app.status
    );

    // :case finds the item's cabinet through the server; the answer opens its box.
    app.on_key(key(KeyCode::Char(':')));
    typed(&mut app, "case GZ-2026-7");
    assert_eq!(
        app.on_key(key(KeyCode::Enter)),
        vec![Action::FindCase {
            case: "GZ-2026-7".into()
        }]
    );
    app.on_msg(
        Msg::Found(Ok(Found {
            device: "cab-9".into(),
            site: "site-3".into(),
            box_no: Some(4),
        })),
        20,
    );
    assert_eq!(
        app.take_actions(),
        vec![
            Action::Site("site-3".into()),
            Action::Cabinet("cab-9".into())
        ]
    );
    app.on_msg(Msg::Cabinet(cabinet("cab-9", 8), Vec::new()), 21);
    assert_eq!(
        (app.screen, app.pane, app.sel_box),
        (Screen::Site, Pane::Boxes, 3)
    );

    // :open asks for the reason as `o` does; a viewer is told who may.
    app.on_key(key(KeyCode::Char(':')));
    typed(&mut app, "open cab-9 4");
    app.on_key(key(KeyCode::Enter));
    assert!(matches!(app.dialog, Some(Dialog::Open { box_no: 4, .. })));
    app.on_key(key(KeyCode::Esc));
    app.on_msg(Msg::Me("guest".into(), "viewer".into()), 21);
    app.on_key(key(KeyCode::Char(':')));
    typed(&mut app, "open cab-9 4");
    app.on_key(key(KeyCode::Enter));
    assert!(app.dialog.is_none() && app.status.contains("operator role"));
}

#[test]
fn faults_only_keeps_what_needs_attention() {
    let mut app = app_with_sites(4);
    let mut sites = app.model.overview.sites.clone();
    sites[1].alarms_open = 2;
    sites[2].devices = 3;
    sites[2].devices_online = 2;
    app.on_msg(Msg::Overview(Overview { at: 6, sites }), 11);
    app.on_key(ctrl('z'));
    assert!(app.faults_only);
    assert_eq!(
        app.sites()
            .iter()
            .map(|s| s.id.as_str())
            .collect::<Vec<_>>(),
        ["site-2", "site-3"]
    );
    app.on_key(ctrl('z'));
    assert_eq!(app.sites().len(), 4);
}

#[test]
fn the_trail_follows_each_deed_to_its_outcome() {
    let mut app = app_with_sites(2);
    app.dialog = Some(Dialog::Open {
        device: "cab-1".into(),
        box_no: 3,
        reason: "locked out".into(),
    });
    app.on_key(key(KeyCode::Enter));
    assert_eq!(app.trail.len(), 1);
    assert_eq!(app.trail[0].outcome, trail::Outcome::Pending(None));
    let mut c = Command {
        command_id: "c9".into(),
        device_id: "cab-1".into(),
        box_no: 3,
        status: api_types::CommandStatus::Sent,
        ..Command::default()
    };
    app.on_msg(Msg::Opened(Ok(c.clone())), 30);
    c.status = api_types::CommandStatus::Opened;
    c.latency_ms = Some(41);
    app.on_msg(Msg::Command(c), 31);
    assert_eq!(
        app.trail[0].outcome,
        trail::Outcome::Done("opened".into(), Some(41))
    );
    // An acknowledgement the server refused.
    app.dialog = Some(Dialog::Ack {
        alarm_id: "a1".into(),
        note: "on my way".into(),
    });
    app.on_key(key(KeyCode::Enter));
    app.on_msg(Msg::Acked(Err("409 conflict".into())), 32);
    assert_eq!(
        app.trail[1].outcome,
        trail::Outcome::Failed("409 conflict".into())
    );
    assert_eq!(app.trail[1].why, "on my way");
    app.on_key(key(KeyCode::Char('t')));
    assert_eq!(app.dialog, Some(Dialog::Trail));
}
