//! Keys: navigation, filters, dialogs and their submission, each turned into a state change and
//! the actions the data task carries out.

use ratatui::crossterm::event::{
    KeyCode, KeyEvent, KeyModifiers, MouseButton, MouseEvent, MouseEventKind,
};

use super::keymap::Cmd;
use super::trail::Deed;
use super::{
    Action, App, DeployAct, DiagView, Dialog, GRID_COLUMNS, MapView, Pane, Screen, Watch, short,
};
use crate::model::{Cabinet, DiagnosticKind};
use api_types::AlarmState;
use l10n::t;

impl App {
    /// A key press; returns what the data task should do.
    pub fn on_key(&mut self, key: KeyEvent) -> Vec<Action> {
        if key.modifiers.contains(KeyModifiers::CONTROL) && key.code == KeyCode::Char('c') {
            self.quit = true;
            return vec![Action::Quit];
        }
        if self.dialog.is_some() {
            return self.dialog_key(key);
        }
        let Some(cmd) = self.keymap.command(&key) else {
            return Vec::new();
        };
        if self.screen == Screen::Planning
            && let Some(actions) = self.map_key(cmd)
        {
            return actions;
        }
        match cmd {
            Cmd::FaultsOnly => {
                self.faults_only = !self.faults_only;
                self.clamp();
                self.status = if self.faults_only {
                    t!(self.lang, "console-status-faults-only")
                } else {
                    t!(self.lang, "console-status-everything")
                };
                Vec::new()
            }
            Cmd::Quit => {
                self.quit = true;
                vec![Action::Quit]
            }
            Cmd::Help => {
                self.help_scroll = 0;
                self.dialog = Some(Dialog::Help);
                Vec::new()
            }
            Cmd::Filter => {
                self.dialog = Some(Dialog::Filter);
                Vec::new()
            }
            Cmd::CommandLine => {
                self.cmd_hint.clear();
                self.cmd_hist_pos = None;
                self.dialog = Some(Dialog::Command {
                    text: String::new(),
                });
                Vec::new()
            }
            Cmd::Refresh => {
                self.status = t!(self.lang, "console-status-refreshing");
                match self.screen {
                    Screen::Usage => vec![Action::Refresh, Action::Usage],
                    Screen::Planning => vec![Action::Refresh, Action::Planning],
                    Screen::Fleet => vec![Action::Refresh, self.fleet_action(true)],
                    _ => vec![Action::Refresh],
                }
            }
            Cmd::Screen(n) => {
                let screen = Screen::ALL[usize::from(n.clamp(1, 8) - 1)];
                self.go(screen)
            }
            Cmd::NextPane if self.screen == Screen::Site => {
                self.pane = match self.pane {
                    Pane::Cabinets => Pane::Boxes,
                    Pane::Boxes => Pane::Cabinets,
                };
                Vec::new()
            }
            Cmd::NextPane => {
                let i = Screen::ALL
                    .iter()
                    .position(|s| *s == self.screen)
                    .unwrap_or(0);
                let next = Screen::ALL[(i + 1) % Screen::ALL.len()];
                self.go(next)
            }
            Cmd::Up => self.step(-1, 0),
            Cmd::Down => self.step(1, 0),
            Cmd::Left => self.step(0, -1),
            Cmd::Right => self.step(0, 1),
            Cmd::PageUp => self.step(-10, 0),
            Cmd::PageDown => self.step(10, 0),
            Cmd::Enter => self.enter(),
            Cmd::Back => self.back(),
            Cmd::Open => self.ask_open(),
            Cmd::Ack if self.screen == Screen::Alarms => self.ask_ack(),
            Cmd::Pause if self.screen == Screen::Fleet => self.ask_deploy(None),
            Cmd::Cancel if self.screen == Screen::Fleet => self.ask_deploy(Some(DeployAct::Cancel)),
            Cmd::Trail => {
                self.dialog = Some(Dialog::Trail);
                Vec::new()
            }
            Cmd::Doctor => self.diagnose(DiagnosticKind::Doctor),
            Cmd::Logs => self.diagnose(DiagnosticKind::Logs),
            _ => Vec::new(),
        }
    }

    /// The mouse, when the operator turned it on: the wheel moves through the list on
    /// screen, a click on the navigation line (row 1) opens that screen.
    pub fn on_mouse(&mut self, m: MouseEvent, _width: u16) -> Vec<Action> {
        if self.dialog.is_some() {
            return Vec::new();
        }
        match m.kind {
            MouseEventKind::ScrollDown => self.step(1, 0),
            MouseEventKind::ScrollUp => self.step(-1, 0),
            MouseEventKind::Down(MouseButton::Left) if m.row == 1 => {
                let mut x = 0u16;
                for (screen, label) in Screen::ALL.iter().zip(crate::view::nav_labels(self)) {
                    let w = unicode_width::UnicodeWidthStr::width(label.as_str()) as u16;
                    if (x..x + w).contains(&m.column) {
                        return self.go(*screen);
                    }
                    x += w;
                }
                Vec::new()
            }
            _ => Vec::new(),
        }
    }

    /// The planning map's commands: show or hide it, zoom, pan, fit every point again.
    /// `None`: not a map command.
    fn map_key(&mut self, cmd: Cmd) -> Option<Vec<Action>> {
        const STEP: f64 = 0.25;
        let m = &mut self.map;
        match cmd {
            Cmd::Map => m.on = !m.on,
            Cmd::ZoomIn if m.on => m.zoom = (m.zoom * 1.5).min(256.0),
            Cmd::ZoomOut if m.on => m.zoom = (m.zoom / 1.5).max(1.0),
            Cmd::Fit if m.on => {
                *m = MapView {
                    on: true,
                    ..MapView::default()
                }
            }
            Cmd::PanLeft if m.on => m.pan.0 -= STEP,
            Cmd::PanRight if m.on => m.pan.0 += STEP,
            Cmd::PanUp if m.on => m.pan.1 += STEP,
            Cmd::PanDown if m.on => m.pan.1 -= STEP,
            _ => return None,
        }
        Some(Vec::new())
    }

    pub(super) fn go(&mut self, screen: Screen) -> Vec<Action> {
        if screen == Screen::Site && self.site.is_none() {
            return self.open_site();
        }
        let leaving_fleet = self.screen == Screen::Fleet && screen != Screen::Fleet;
        self.screen = screen;
        self.filter.clear();
        let mut actions = match screen {
            Screen::Usage => vec![Action::Refresh, Action::Usage],
            Screen::Planning => vec![Action::Refresh, Action::Planning],
            Screen::Fleet => vec![Action::Refresh, self.fleet_action(true)],
            _ => vec![Action::Refresh],
        };
        if leaving_fleet {
            actions.push(self.fleet_action(false));
        }
        actions
    }

    /// Fetch the fleet screen for the selected deployment; keep it fresh while `watch`.
    fn fleet_action(&self, watch: bool) -> Action {
        Action::Fleet {
            watch,
            selected: self
                .deployments()
                .get(self.sel_deployment)
                .map(|d| d.id.clone()),
        }
    }

    /// `p` (pause a running deployment, resume a paused one) or `x` (cancel): asks for a note.
    fn ask_deploy(&mut self, act: Option<DeployAct>) -> Vec<Action> {
        let Some(d) = self.deployments().get(self.sel_deployment).cloned() else {
            self.status = t!(self.lang, "console-status-no-deployment");
            return Vec::new();
        };
        if self.may_deploy() == Some(false) {
            self.status = t!(self.lang, "console-status-deploy-needs-admin");
            return Vec::new();
        }
        use crate::model::DeploymentState as S;
        let act = match (act, d.state) {
            (_, s) if s.is_final() => {
                self.status = t!(
                    self.lang,
                    "console-status-deployment-final",
                    deployment = short(&d.id),
                    state = crate::words::deployment_state(self.lang, s.as_str())
                );
                return Vec::new();
            }
            (Some(a), _) => a,
            (None, S::Paused) => DeployAct::Resume,
            (None, _) => DeployAct::Pause,
        };
        self.dialog = Some(Dialog::Deploy {
            id: d.id,
            act,
            note: String::new(),
        });
        Vec::new()
    }

    fn open_site(&mut self) -> Vec<Action> {
        let Some(site) = self.sites().get(self.sel_site).map(|s| s.id.clone()) else {
            self.status = t!(self.lang, "console-status-no-site");
            return Vec::new();
        };
        self.show_site(site)
    }

    /// Moves the selection: `dy` rows, `dx` columns (box grid) or tabs (work lists).
    fn step(&mut self, dy: isize, dx: isize) -> Vec<Action> {
        fn mv(sel: &mut usize, by: isize, len: usize) -> bool {
            let before = *sel;
            let next = (*sel as isize + by).clamp(0, len.saturating_sub(1) as isize);
            *sel = next as usize;
            before != *sel
        }
        match self.screen {
            Screen::Overview => {
                let n = self.sites().len();
                mv(&mut self.sel_site, dy, n);
            }
            Screen::Alarms => {
                let n = self.alarms().len();
                mv(&mut self.sel_alarm, dy, n);
            }
            Screen::Audit => {
                let n = self.model.audit.len();
                mv(&mut self.sel_audit, dy, n);
            }
            Screen::Work => {
                if dx != 0 {
                    let t = (self.work_tab as isize + dx).clamp(0, 2) as usize;
                    if t != self.work_tab {
                        self.work_tab = t;
                        self.sel_work = 0;
                    }
                } else {
                    let n = self.work_items().len();
                    mv(&mut self.sel_work, dy, n);
                }
            }
            Screen::Site => match self.pane {
                Pane::Cabinets => {
                    let n = self.model.cabinets.len();
                    if mv(&mut self.sel_cabinet, dy, n) {
                        self.sel_box = 0;
                        if let Some(c) = self.model.cabinets.get(self.sel_cabinet) {
                            return vec![Action::Cabinet(c.id.clone())];
                        }
                    }
                }
                Pane::Boxes => {
                    let n = self.boxes().len();
                    mv(&mut self.sel_box, dy * GRID_COLUMNS as isize + dx, n);
                }
            },
            Screen::Usage => {
                let n = self.usage_rows().len();
                mv(&mut self.sel_usage, dy, n);
            }
            Screen::Planning => {
                let n = match &self.model.plan {
                    Some(Ok(p)) => p.recommendations.len(),
                    _ => 0,
                };
                mv(&mut self.sel_rec, dy, n);
            }
            Screen::Fleet => {
                let n = self.deployments().len();
                if mv(&mut self.sel_deployment, dy, n) {
                    return vec![self.fleet_action(true)];
                }
            }
        }
        Vec::new()
    }

    fn enter(&mut self) -> Vec<Action> {
        match self.screen {
            Screen::Overview => self.open_site(),
            Screen::Site if self.pane == Pane::Cabinets => {
                self.pane = Pane::Boxes;
                Vec::new()
            }
            Screen::Alarms => self.jump_to_alarm_box(),
            _ => Vec::new(),
        }
    }

    /// From an alarm to its cabinet (and box) on the site screen.
    fn jump_to_alarm_box(&mut self) -> Vec<Action> {
        let Some(a) = self.alarms().get(self.sel_alarm).map(|a| (*a).clone()) else {
            return Vec::new();
        };
        let Some(site) = a.site_id.clone() else {
            self.status = t!(
                self.lang,
                "console-status-no-site-of",
                device = a.device_id.as_str()
            );
            return Vec::new();
        };
        self.screen = Screen::Site;
        self.filter.clear();
        self.site = Some(site.clone());
        self.pane = Pane::Boxes;
        self.sel_box = a.box_no.map_or(0, |b| usize::from(b).saturating_sub(1));
        // The cabinet is selected when the site's cabinets arrive.
        self.model.cabinets = vec![Cabinet {
            id: a.device_id.clone(),
            site_id: site.clone(),
            ..Cabinet::default()
        }];
        self.sel_cabinet = 0;
        self.want_cabinet = Some(a.device_id.clone());
        self.model.cabinet = None;
        vec![Action::Site(site), Action::Cabinet(a.device_id)]
    }

    fn back(&mut self) -> Vec<Action> {
        if !self.filter.is_empty() {
            self.filter.clear();
            return Vec::new();
        }
        match self.screen {
            Screen::Site if self.pane == Pane::Boxes => self.pane = Pane::Cabinets,
            Screen::Overview => {}
            Screen::Fleet => {
                self.screen = Screen::Overview;
                return vec![Action::Refresh, self.fleet_action(false)];
            }
            _ => {
                self.screen = Screen::Overview;
                return vec![Action::Refresh];
            }
        }
        Vec::new()
    }

    fn ask_open(&mut self) -> Vec<Action> {
        if self.screen != Screen::Site || self.pane != Pane::Boxes {
            self.status = t!(self.lang, "console-status-select-box");
            return Vec::new();
        }
        if self.may_open() == Some(false) {
            let role = self.model.me.as_ref().map_or("?", |(_, r)| r.as_str());
            self.status = t!(
                self.lang,
                "console-status-open-needs-operator",
                role = crate::words::role(self.lang, role)
            );
            return Vec::new();
        }
        let (Some(c), Some(b)) = (&self.model.cabinet, self.boxes().get(self.sel_box)) else {
            return Vec::new();
        };
        self.dialog = Some(Dialog::Open {
            device: c.cabinet.id.clone(),
            box_no: b.box_no,
            reason: String::new(),
        });
        Vec::new()
    }

    /// The cabinet diagnostics are about: the one selected on the site screen, or the
    /// selected alarm's.
    fn diagnosed_device(&self) -> Option<String> {
        match self.screen {
            Screen::Site => self
                .model
                .cabinets
                .get(self.sel_cabinet)
                .map(|c| c.id.clone()),
            Screen::Alarms => self
                .alarms()
                .get(self.sel_alarm)
                .map(|a| a.device_id.clone()),
            _ => None,
        }
    }

    /// Opens the diagnostics overlay: operators ask the cabinet anew, viewers read the newest
    /// answer someone asked for.
    fn diagnose(&mut self, kind: DiagnosticKind) -> Vec<Action> {
        let Some(device) = self.diagnosed_device() else {
            self.status = t!(self.lang, "console-status-select-cabinet");
            return Vec::new();
        };
        let request = self.may_open() != Some(false);
        self.diagnosis = Some(DiagView {
            device: device.clone(),
            kind,
            answer: None,
            back: 0,
        });
        self.dialog = Some(Dialog::Diagnostics);
        vec![Action::Diagnose {
            device,
            kind,
            request,
        }]
    }

    /// Keys of the diagnostics overlay: scroll, ask again, close.
    fn diagnostics_key(&mut self, key: KeyEvent) -> Vec<Action> {
        let Some(d) = &mut self.diagnosis else {
            self.dialog = None;
            return Vec::new();
        };
        match key.code {
            KeyCode::Esc | KeyCode::Char('q') => {
                self.dialog = None;
                self.diagnosis = None;
            }
            KeyCode::Up | KeyCode::Char('k') => d.back = d.back.saturating_add(1),
            KeyCode::Down | KeyCode::Char('j') => d.back = d.back.saturating_sub(1),
            KeyCode::PageUp => d.back = d.back.saturating_add(10),
            KeyCode::PageDown => d.back = d.back.saturating_sub(10),
            KeyCode::Home => d.back = usize::MAX / 2,
            KeyCode::End => d.back = 0,
            KeyCode::Char('r') => {
                let (device, kind) = (d.device.clone(), d.kind);
                d.answer = None;
                d.back = 0;
                return vec![Action::Diagnose {
                    device,
                    kind,
                    request: self.may_open() != Some(false),
                }];
            }
            _ => {}
        }
        Vec::new()
    }

    fn ask_ack(&mut self) -> Vec<Action> {
        let Some(a) = self.alarms().get(self.sel_alarm).map(|a| (*a).clone()) else {
            return Vec::new();
        };
        if a.state != AlarmState::Active {
            self.status = t!(
                self.lang,
                "console-status-ack-not-active",
                alarm = short(&a.id),
                state = crate::words::alarm_state(self.lang, a.state.as_str())
            );
            return Vec::new();
        }
        if self.may_open() == Some(false) {
            self.status = t!(self.lang, "console-status-ack-needs-operator");
            return Vec::new();
        }
        self.dialog = Some(Dialog::Ack {
            alarm_id: a.id,
            note: String::new(),
        });
        Vec::new()
    }

    fn dialog_key(&mut self, key: KeyEvent) -> Vec<Action> {
        if let Some(Dialog::Command { text }) = &self.dialog {
            match key.code {
                KeyCode::Tab => {
                    self.complete();
                    return Vec::new();
                }
                KeyCode::Up => {
                    self.history_step(true);
                    return Vec::new();
                }
                KeyCode::Down => {
                    self.history_step(false);
                    return Vec::new();
                }
                KeyCode::Enter => {
                    let line = text.clone();
                    return self.run_command(&line);
                }
                _ => {}
            }
        }
        let Some(dialog) = self.dialog.as_mut() else {
            return Vec::new();
        };
        let field = match dialog {
            Dialog::Help => {
                match key.code {
                    KeyCode::Down | KeyCode::Char('j') => self.help_scroll += 1,
                    KeyCode::Up | KeyCode::Char('k') => {
                        self.help_scroll = self.help_scroll.saturating_sub(1)
                    }
                    KeyCode::PageDown => self.help_scroll += 10,
                    KeyCode::PageUp => self.help_scroll = self.help_scroll.saturating_sub(10),
                    _ => self.dialog = None,
                }
                return Vec::new();
            }
            Dialog::Trail => {
                self.dialog = None;
                return Vec::new();
            }
            Dialog::Diagnostics => return self.diagnostics_key(key),
            Dialog::Open { reason, .. } => reason,
            Dialog::Ack { note, .. } => note,
            Dialog::Deploy { note, .. } => note,
            Dialog::Filter => &mut self.filter,
            Dialog::Command { text } => text,
        };
        match key.code {
            KeyCode::Esc => {
                if matches!(self.dialog, Some(Dialog::Filter)) {
                    self.filter.clear();
                }
                self.dialog = None;
                Vec::new()
            }
            KeyCode::Backspace => {
                field.pop();
                Vec::new()
            }
            KeyCode::Char(c) if field.chars().count() < 200 && !c.is_control() => {
                field.push(c);
                if matches!(self.dialog, Some(Dialog::Filter)) {
                    self.clamp();
                }
                Vec::new()
            }
            KeyCode::Enter => self.submit(),
            _ => Vec::new(),
        }
    }

    fn submit(&mut self) -> Vec<Action> {
        match self.dialog.clone() {
            Some(Dialog::Open {
                device,
                box_no,
                reason,
            }) => {
                let reason = reason.trim().to_owned();
                if reason.is_empty() {
                    self.status = t!(self.lang, "console-status-reason-required");
                    return Vec::new();
                }
                self.dialog = None;
                self.trail_begin(
                    Deed::Open {
                        device: device.clone(),
                        box_no,
                    },
                    &reason,
                );
                self.watch = Some(Watch {
                    device: device.clone(),
                    box_no,
                    command: None,
                    error: None,
                });
                self.status = t!(
                    self.lang,
                    "console-status-opening",
                    device = device.as_str(),
                    box_no = box_no
                );
                vec![Action::Open {
                    device,
                    box_no,
                    reason,
                }]
            }
            Some(Dialog::Ack { alarm_id, note }) => {
                let note = note.trim().to_owned();
                if note.is_empty() {
                    self.status = t!(self.lang, "console-status-note-required");
                    return Vec::new();
                }
                self.dialog = None;
                self.trail_begin(
                    Deed::Ack {
                        alarm: alarm_id.clone(),
                    },
                    &note,
                );
                vec![Action::Ack { alarm_id, note }]
            }
            Some(Dialog::Deploy { id, act, note }) => {
                let note = note.trim().to_owned();
                if act == DeployAct::Cancel && note.is_empty() {
                    self.status = t!(self.lang, "console-status-cancel-note-required");
                    return Vec::new();
                }
                self.dialog = None;
                self.trail_begin(
                    Deed::Deploy {
                        id: id.clone(),
                        act,
                    },
                    &note,
                );
                self.status = t!(
                    self.lang,
                    "console-status-deploying",
                    act = act.as_str(),
                    deployment = short(&id)
                );
                vec![Action::Deploy { id, act, note }]
            }
            Some(Dialog::Filter)
            | Some(Dialog::Help)
            | Some(Dialog::Diagnostics)
            | Some(Dialog::Trail)
            | Some(Dialog::Command { .. })
            | None => {
                self.dialog = None;
                Vec::new()
            }
        }
    }
}
