//! The console's state and its update logic: keys become actions for the data task, the data
//! task's answers become model changes. No I/O here, so every rule is unit-tested.

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use crate::model::{Alarm, AuditEntry, BoxView, Cabinet, CabinetDetail, Command, Link, Model};

/// The screens, in navigation order (number keys 1–7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Screen {
    Overview,
    Site,
    Alarms,
    Work,
    Audit,
    /// Usage analytics: site × hour heatmap, 7-day trend, saturation flags.
    Usage,
    /// The planner's recommendations and coverage before and after.
    Planning,
}

impl Screen {
    pub const ALL: [Screen; 7] = [
        Screen::Overview,
        Screen::Site,
        Screen::Alarms,
        Screen::Work,
        Screen::Audit,
        Screen::Usage,
        Screen::Planning,
    ];

    pub fn title(self) -> &'static str {
        match self {
            Screen::Overview => "Overview",
            Screen::Site => "Site",
            Screen::Alarms => "Alarms",
            Screen::Work => "Work lists",
            Screen::Audit => "Audit",
            Screen::Usage => "Usage",
            Screen::Planning => "Planning",
        }
    }
}

/// The two panes of the site screen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pane {
    Cabinets,
    Boxes,
}

/// The work list tabs.
pub const WORK_TABS: [&str; 3] = ["collect", "deposit", "overdue"];

/// A modal on top of the screen.
#[derive(Debug, Clone, PartialEq)]
pub enum Dialog {
    Help,
    /// Remote open: a reason is required.
    Open {
        device: String,
        box_no: u16,
        reason: String,
    },
    /// Acknowledge an alarm: a note is required.
    Ack {
        alarm_id: String,
        note: String,
    },
    /// Typing a filter for the list on screen.
    Filter,
}

/// A remote open being watched live.
#[derive(Debug, Clone, PartialEq)]
pub struct Watch {
    pub device: String,
    pub box_no: u16,
    pub command: Option<Command>,
    pub error: Option<String>,
}

/// What the data task is asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Refetch what the screen shows.
    Refresh,
    /// Show this site's cabinets.
    Site(String),
    /// Show this cabinet's boxes and recent audit.
    Cabinet(String),
    /// Fetch the usage screen's figures (slow-changing: on entry and on `r`).
    Usage,
    /// Fetch the plan.
    Planning,
    Open {
        device: String,
        box_no: u16,
        reason: String,
    },
    Ack {
        alarm_id: String,
        note: String,
    },
    Quit,
}

/// What the data task reports back.
#[derive(Debug, Clone, PartialEq)]
pub enum Msg {
    Link(Link),
    Me(String, String),
    Overview(crate::model::Overview),
    Alarms(Vec<Alarm>),
    Cabinets(String, Vec<Cabinet>),
    Cabinet(CabinetDetail, Vec<AuditEntry>),
    Worklists(crate::model::Worklists),
    Audit(Vec<AuditEntry>),
    /// A remote open was accepted, or refused (the error).
    Opened(Result<Command, String>),
    /// The watched command moved on.
    Command(Command),
    Acked(Result<String, String>),
    Usage(crate::model::Usage),
    /// The plan, or why there is none (nothing uploaded yet, server error).
    Plan(Result<crate::model::Plan, String>),
    /// A request failed: shown in the status line.
    Error(String),
}

#[derive(Debug, Clone)]
pub struct App {
    pub model: Model,
    pub screen: Screen,
    pub pane: Pane,
    pub dialog: Option<Dialog>,
    /// Text typed into the current dialog's field is kept in the dialog; the list filter here.
    pub filter: String,
    pub sel_site: usize,
    pub sel_cabinet: usize,
    pub sel_box: usize,
    pub sel_alarm: usize,
    pub sel_usage: usize,
    pub sel_work: usize,
    pub work_tab: usize,
    pub sel_audit: usize,
    /// The site whose cabinets the site screen shows.
    pub site: Option<String>,
    /// The cabinet to select once the site's cabinets arrive (a jump from an alarm).
    pub want_cabinet: Option<String>,
    /// Audit entries of the cabinet on screen (its boxes' last events and commands).
    pub cabinet_audit: Vec<AuditEntry>,
    pub watch: Option<Watch>,
    /// The last thing to tell the operator (errors included); never a crash.
    pub status: String,
    /// Local time (epoch ms) the newest data arrived, for the header's data age.
    pub received_at: Option<i64>,
    pub server: String,
    pub quit: bool,
}

impl App {
    pub fn new(server: &str) -> App {
        App {
            model: Model::default(),
            screen: Screen::Overview,
            pane: Pane::Cabinets,
            dialog: None,
            filter: String::new(),
            sel_site: 0,
            sel_cabinet: 0,
            sel_box: 0,
            sel_alarm: 0,
            sel_usage: 0,
            sel_work: 0,
            work_tab: 0,
            sel_audit: 0,
            site: None,
            want_cabinet: None,
            cabinet_audit: Vec::new(),
            watch: None,
            status: String::new(),
            received_at: None,
            server: server.to_owned(),
            quit: false,
        }
    }

    /// Whether the token's role may open boxes (operator or admin).
    pub fn may_open(&self) -> Option<bool> {
        self.model
            .me
            .as_ref()
            .map(|(_, role)| matches!(role.as_str(), "operator" | "admin"))
    }

    /// Sites matching the filter, in server order.
    pub fn sites(&self) -> Vec<&crate::model::SiteOverview> {
        let f = self.filter.to_lowercase();
        self.model
            .overview
            .sites
            .iter()
            .filter(|s| {
                f.is_empty()
                    || s.id.to_lowercase().contains(&f)
                    || s.name.to_lowercase().contains(&f)
                    || s.kind.as_str().contains(&f)
            })
            .collect()
    }

    /// Alarms matching the filter (kind, device, site or severity contain it).
    pub fn alarms(&self) -> Vec<&Alarm> {
        let f = self.filter.to_lowercase();
        self.model
            .alarms
            .iter()
            .filter(|a| {
                f.is_empty()
                    || a.kind.contains(&f)
                    || a.device_id.to_lowercase().contains(&f)
                    || a.severity.contains(&f)
                    || a.site_id.as_deref().is_some_and(|s| s.contains(&f))
            })
            .collect()
    }

    pub fn boxes(&self) -> &[BoxView] {
        self.model
            .cabinet
            .as_ref()
            .map(|c| c.boxes.as_slice())
            .unwrap_or(&[])
    }

    pub fn work_items(&self) -> &[crate::model::Item] {
        let w = &self.model.worklists;
        match self.work_tab {
            0 => &w.collect,
            1 => &w.deposit,
            _ => &w.overdue,
        }
    }

    /// Open alarms of one box of the cabinet on screen.
    pub fn box_alarms(&self, box_no: u16) -> Vec<&Alarm> {
        let Some(c) = &self.model.cabinet else {
            return Vec::new();
        };
        self.model
            .alarms
            .iter()
            .filter(|a| a.device_id == c.cabinet.id && a.box_no == Some(box_no))
            .collect()
    }

    /// Applies what the data task reports.
    pub fn on_msg(&mut self, msg: Msg, now_ms: i64) {
        match msg {
            Msg::Link(l) => {
                if let Link::Down(e) = &l {
                    self.status = format!("server unreachable: {e} (retrying)");
                } else if matches!(self.model.link, Link::Down(_)) && l == Link::Live {
                    self.status = "reconnected".into();
                }
                self.model.link = l;
            }
            Msg::Me(name, role) => self.model.me = Some((name, role)),
            Msg::Overview(o) => {
                self.model.data_at = Some(o.at);
                self.model.overview = o;
                self.received_at = Some(now_ms);
            }
            Msg::Alarms(a) => self.model.alarms = a,
            Msg::Cabinets(site, c) => {
                if self.site.as_deref() == Some(site.as_str()) {
                    // Stay on the cabinet shown (or the one a jump asked for).
                    let keep = self.want_cabinet.take().or_else(|| {
                        self.model
                            .cabinets
                            .get(self.sel_cabinet)
                            .map(|c| c.id.clone())
                    });
                    self.model.cabinets = c;
                    if let Some(i) =
                        keep.and_then(|k| self.model.cabinets.iter().position(|c| c.id == k))
                    {
                        self.sel_cabinet = i;
                    }
                }
            }
            Msg::Cabinet(view, audit) => {
                let current = self.model.cabinets.get(self.sel_cabinet).map(|c| &c.id);
                if current == Some(&view.cabinet.id) || current.is_none() {
                    self.model.cabinet = Some(view);
                    self.cabinet_audit = audit;
                }
            }
            Msg::Worklists(w) => self.model.worklists = w,
            Msg::Audit(a) => self.model.audit = a,
            Msg::Opened(Ok(c)) => {
                self.status = format!(
                    "remote open of {} box {} {}",
                    c.device_id, c.box_no, c.status
                );
                if let Some(w) = &mut self.watch {
                    w.command = Some(c);
                }
            }
            Msg::Opened(Err(e)) => {
                self.status = format!("remote open refused: {e}");
                if let Some(w) = &mut self.watch {
                    w.error = Some(e);
                }
            }
            Msg::Command(c) => {
                if let Some(w) = &mut self.watch
                    && w.command
                        .as_ref()
                        .is_some_and(|x| x.command_id == c.command_id)
                {
                    if c.is_final() {
                        self.status = format!(
                            "{} box {}: {}{}",
                            c.device_id,
                            c.box_no,
                            c.status,
                            c.latency_ms
                                .map(|l| format!(" in {l} ms"))
                                .unwrap_or_default()
                        );
                    }
                    w.command = Some(c);
                }
            }
            Msg::Acked(Ok(id)) => self.status = format!("alarm {} acknowledged", short(&id)),
            Msg::Acked(Err(e)) => self.status = format!("acknowledge refused: {e}"),
            Msg::Usage(u) => self.model.usage = Some(u),
            Msg::Plan(p) => self.model.plan = Some(p),
            Msg::Error(e) => self.status = e,
        }
        self.clamp();
    }

    /// Keeps selections inside the lists after they changed.
    fn clamp(&mut self) {
        fn fit(sel: &mut usize, len: usize) {
            *sel = (*sel).min(len.saturating_sub(1));
        }
        let (sites, alarms, boxes, work, audit) = (
            self.sites().len(),
            self.alarms().len(),
            self.boxes().len(),
            self.work_items().len(),
            self.model.audit.len(),
        );
        fit(&mut self.sel_site, sites);
        fit(&mut self.sel_alarm, alarms);
        fit(&mut self.sel_box, boxes);
        fit(&mut self.sel_work, work);
        fit(&mut self.sel_audit, audit);
        let usage = self.usage_rows().len();
        fit(&mut self.sel_usage, usage);
        let cabinets = self.model.cabinets.len();
        fit(&mut self.sel_cabinet, cabinets);
    }

    /// A key press; returns what the data task should do.
    pub fn on_key(&mut self, key: KeyEvent) -> Vec<Action> {
        if key.modifiers.contains(KeyModifiers::CONTROL) && key.code == KeyCode::Char('c') {
            self.quit = true;
            return vec![Action::Quit];
        }
        if self.dialog.is_some() {
            return self.dialog_key(key);
        }
        match key.code {
            KeyCode::Char('q') => {
                self.quit = true;
                vec![Action::Quit]
            }
            KeyCode::Char('?') => {
                self.dialog = Some(Dialog::Help);
                Vec::new()
            }
            KeyCode::Char('/') => {
                self.dialog = Some(Dialog::Filter);
                Vec::new()
            }
            KeyCode::Char('r') => {
                self.status = "refreshing".into();
                match self.screen {
                    Screen::Usage => vec![Action::Refresh, Action::Usage],
                    Screen::Planning => vec![Action::Refresh, Action::Planning],
                    _ => vec![Action::Refresh],
                }
            }
            KeyCode::Char(c @ '1'..='7') => {
                let screen = Screen::ALL[usize::from(c as u8 - b'1')];
                self.go(screen)
            }
            KeyCode::Tab | KeyCode::BackTab if self.screen == Screen::Site => {
                self.pane = match self.pane {
                    Pane::Cabinets => Pane::Boxes,
                    Pane::Boxes => Pane::Cabinets,
                };
                Vec::new()
            }
            KeyCode::Tab => {
                let i = Screen::ALL
                    .iter()
                    .position(|s| *s == self.screen)
                    .unwrap_or(0);
                let next = Screen::ALL[(i + 1) % Screen::ALL.len()];
                self.go(next)
            }
            KeyCode::Up | KeyCode::Char('k') => self.step(-1, 0),
            KeyCode::Down | KeyCode::Char('j') => self.step(1, 0),
            KeyCode::Left | KeyCode::Char('h') => self.step(0, -1),
            KeyCode::Right | KeyCode::Char('l') => self.step(0, 1),
            KeyCode::PageUp => self.step(-10, 0),
            KeyCode::PageDown => self.step(10, 0),
            KeyCode::Enter => self.enter(),
            KeyCode::Esc => self.back(),
            KeyCode::Char('o') => self.ask_open(),
            KeyCode::Char('a') if self.screen == Screen::Alarms => self.ask_ack(),
            _ => Vec::new(),
        }
    }

    fn go(&mut self, screen: Screen) -> Vec<Action> {
        if screen == Screen::Site && self.site.is_none() {
            return self.open_site();
        }
        self.screen = screen;
        self.filter.clear();
        match screen {
            Screen::Usage => vec![Action::Refresh, Action::Usage],
            Screen::Planning => vec![Action::Refresh, Action::Planning],
            _ => vec![Action::Refresh],
        }
    }

    /// Usage rows (sites with their hours and days), filtered, in the overview's order.
    pub fn usage_rows(
        &self,
    ) -> Vec<(
        &crate::model::SiteSaturation,
        Option<&crate::model::SiteHours>,
    )> {
        let Some(u) = &self.model.usage else {
            return Vec::new();
        };
        let f = self.filter.to_lowercase();
        u.saturation
            .sites
            .iter()
            .filter(|s| {
                f.is_empty()
                    || s.site_id.to_lowercase().contains(&f)
                    || s.name.to_lowercase().contains(&f)
                    || s.kind.as_str().contains(&f)
                    || (f == "saturated" && s.saturated)
            })
            .map(|s| (s, u.hours.iter().find(|h| h.site_id == s.site_id)))
            .collect()
    }

    fn open_site(&mut self) -> Vec<Action> {
        let Some(site) = self.sites().get(self.sel_site).map(|s| s.id.clone()) else {
            self.status = "no site selected".into();
            return Vec::new();
        };
        self.screen = Screen::Site;
        self.pane = Pane::Cabinets;
        self.filter.clear();
        if self.site.as_deref() != Some(site.as_str()) {
            self.site = Some(site.clone());
            self.model.cabinets.clear();
            self.model.cabinet = None;
            self.sel_cabinet = 0;
            self.sel_box = 0;
        }
        vec![Action::Site(site)]
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
            Screen::Planning => {}
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
            self.status = format!("{} belongs to no site", a.device_id);
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
            _ => {
                self.screen = Screen::Overview;
                return vec![Action::Refresh];
            }
        }
        Vec::new()
    }

    fn ask_open(&mut self) -> Vec<Action> {
        if self.screen != Screen::Site || self.pane != Pane::Boxes {
            self.status = "select a box first: Enter on a site, Tab to its boxes".into();
            return Vec::new();
        }
        if self.may_open() == Some(false) {
            let role = self.model.me.as_ref().map_or("?", |(_, r)| r.as_str());
            self.status = format!(
                "remote open needs the operator role; this token is {role}: ask an operator"
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

    fn ask_ack(&mut self) -> Vec<Action> {
        let Some(a) = self.alarms().get(self.sel_alarm).map(|a| (*a).clone()) else {
            return Vec::new();
        };
        if a.state != "active" {
            self.status = format!(
                "alarm {} is {}; only active ones are acknowledged",
                short(&a.id),
                a.state
            );
            return Vec::new();
        }
        if self.may_open() == Some(false) {
            self.status = "acknowledging needs the operator role".into();
            return Vec::new();
        }
        self.dialog = Some(Dialog::Ack {
            alarm_id: a.id,
            note: String::new(),
        });
        Vec::new()
    }

    fn dialog_key(&mut self, key: KeyEvent) -> Vec<Action> {
        let Some(dialog) = self.dialog.as_mut() else {
            return Vec::new();
        };
        let field = match dialog {
            Dialog::Help => {
                self.dialog = None;
                return Vec::new();
            }
            Dialog::Open { reason, .. } => reason,
            Dialog::Ack { note, .. } => note,
            Dialog::Filter => &mut self.filter,
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
                    self.status = "a reason is required: it goes into the audit log".into();
                    return Vec::new();
                }
                self.dialog = None;
                self.watch = Some(Watch {
                    device: device.clone(),
                    box_no,
                    command: None,
                    error: None,
                });
                self.status = format!("opening {device} box {box_no}");
                vec![Action::Open {
                    device,
                    box_no,
                    reason,
                }]
            }
            Some(Dialog::Ack { alarm_id, note }) => {
                let note = note.trim().to_owned();
                if note.is_empty() {
                    self.status = "a note is required: say what you are doing about it".into();
                    return Vec::new();
                }
                self.dialog = None;
                vec![Action::Ack { alarm_id, note }]
            }
            Some(Dialog::Filter) | Some(Dialog::Help) | None => {
                self.dialog = None;
                Vec::new()
            }
        }
    }

    /// The actions that keep the screen on display fresh after a change notice.
    pub fn refresh_actions(&self) -> Vec<Action> {
        let mut v = vec![Action::Refresh];
        if self.screen == Screen::Site {
            if let Some(site) = &self.site {
                v.push(Action::Site(site.clone()));
            }
            if let Some(c) = self.model.cabinets.get(self.sel_cabinet) {
                v.push(Action::Cabinet(c.id.clone()));
            }
        }
        v
    }

    /// After a site's cabinets arrived: fetch the selected cabinet unless it is on screen.
    pub fn select_cabinet(&mut self) -> Vec<Action> {
        match self.model.cabinets.get(self.sel_cabinet) {
            Some(c) if self.model.cabinet.as_ref().map(|v| &v.cabinet.id) != Some(&c.id) => {
                vec![Action::Cabinet(c.id.clone())]
            }
            _ => Vec::new(),
        }
    }
}

/// Boxes per row in the site screen's grid.
pub const GRID_COLUMNS: usize = 6;

/// The first 8 characters of an id: enough to tell alarms apart on screen.
pub fn short(id: &str) -> &str {
    id.get(..8).unwrap_or(id)
}

/// The help overlay's lines: every key.
pub const HELP: [(&str, &str); 16] = [
    (
        "1-7",
        "Overview, Site, Alarms, Work lists, Audit, Usage, Planning",
    ),
    ("Tab", "next pane (site: cabinets/boxes) or next screen"),
    ("↑↓ / j k", "move; PgUp/PgDn by ten"),
    ("← → / h l", "move in the box grid; switch work list"),
    (
        "Enter",
        "open the site / go to the boxes / jump to the alarm's box",
    ),
    ("Esc", "back, clear the filter, close a dialog"),
    (
        "/",
        "filter the list on screen (type, Enter keeps, Esc clears)",
    ),
    (
        "o",
        "remote open of the selected box (operator; reason required)",
    ),
    (
        "a",
        "acknowledge the selected alarm (operator; note required)",
    ),
    ("r", "refresh now (Usage: the figures; Planning: the plan)"),
    ("?", "this help (any key closes)"),
    ("q / Ctrl-C", "quit"),
    (
        "letters",
        "box states: F free, R reserved, O occupied, X out of service",
    ),
    ("flags", "! open alarm, D door open, L overdue"),
    (
        "header",
        "● live, ○ connecting, ✕ down; data age since the last answer",
    ),
    (
        "colours",
        "only repeat the letters: nothing needs colour to be read",
    ),
];

#[cfg(test)]
mod tests {
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
        let mut app = App::new("http://x");
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
            kind: kind.into(),
            severity: "critical".into(),
            state: state.into(),
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
        // `r` on the planning screen recomputes the plan; Tab cycles through all seven.
        app.on_key(key(KeyCode::Char('7')));
        assert_eq!(
            app.on_key(key(KeyCode::Char('r'))),
            vec![Action::Refresh, Action::Planning]
        );
        app.on_key(key(KeyCode::Tab));
        assert_eq!(app.screen, Screen::Overview);
        assert_eq!(app.on_key(key(KeyCode::Char('q'))), vec![Action::Quit]);
        assert!(app.quit);
    }
}
