//! The console's state and its update logic: keys become actions for the data task, the data
//! task's answers become model changes. No I/O here, so every rule is unit-tested.

use api_types::{AlarmState, ItemState};
use l10n::{Lang, t};

use crate::model::{
    Alarm, AuditEntry, BoxView, Cabinet, CabinetDetail, Command, Diagnostic, DiagnosticKind, Link,
    Model,
};

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
    /// Agent rollouts (waves, progress, failures) and configuration drift.
    Fleet,
}

impl Screen {
    pub const ALL: [Screen; 8] = [
        Screen::Overview,
        Screen::Site,
        Screen::Alarms,
        Screen::Work,
        Screen::Audit,
        Screen::Usage,
        Screen::Planning,
        Screen::Fleet,
    ];

    /// The short name in the navigation line (all eight fit in 80 columns).
    pub fn title(self, lang: Lang) -> String {
        match self {
            Screen::Overview => t!(lang, "console-screen-overview"),
            Screen::Site => t!(lang, "console-screen-site"),
            Screen::Alarms => t!(lang, "console-screen-alarms"),
            Screen::Work => t!(lang, "console-screen-work"),
            Screen::Audit => t!(lang, "console-screen-audit"),
            Screen::Usage => t!(lang, "console-screen-usage"),
            Screen::Planning => t!(lang, "console-screen-planning"),
            Screen::Fleet => t!(lang, "console-screen-fleet"),
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
    /// Pause, resume or cancel a deployment: a note for the audit log.
    Deploy {
        id: String,
        act: DeployAct,
        note: String,
    },
    /// A cabinet's doctor report or log lines (`App::diagnosis`), scrollable.
    Diagnostics,
    /// The operator's trail this session (`App::trail`).
    Trail,
    /// The `:` command line being typed.
    Command {
        text: String,
    },
}

/// What an administrator does to a deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeployAct {
    Pause,
    Resume,
    Cancel,
}

impl DeployAct {
    pub fn as_str(self) -> &'static str {
        match self {
            DeployAct::Pause => "pause",
            DeployAct::Resume => "resume",
            DeployAct::Cancel => "cancel",
        }
    }
}

/// The planning map's view: zoom 1 shows every point; the pan is in units of the visible
/// span (0, 0: centred on them).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MapView {
    pub on: bool,
    pub zoom: f64,
    pub pan: (f64, f64),
}

impl Default for MapView {
    fn default() -> Self {
        MapView {
            on: false,
            zoom: 1.0,
            pan: (0.0, 0.0),
        }
    }
}

/// Remote diagnostics of one cabinet, as asked for and as answered so far.
#[derive(Debug, Clone, PartialEq)]
pub struct DiagView {
    pub device: String,
    pub kind: DiagnosticKind,
    /// `None` while asking; the request (pending or answered), or why not.
    pub answer: Option<Result<Diagnostic, String>>,
    /// Lines scrolled back from the end (0: the newest lines are in view).
    pub back: usize,
}

/// A cabinet (and box) the command line looked up.
#[derive(Debug, Clone, PartialEq)]
pub struct Found {
    pub device: String,
    pub site: String,
    pub box_no: Option<u16>,
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
    /// Fetch the fleet screen (deployments, the selected one's detail, drift) and keep it
    /// fresh while `watch`.
    Fleet {
        watch: bool,
        selected: Option<String>,
    },
    Deploy {
        id: String,
        act: DeployAct,
        note: String,
    },
    /// `:cabinet ID`: find the cabinet's site.
    Locate {
        device: String,
    },
    /// `:case NUMBER`: find the item's cabinet and box.
    FindCase {
        case: String,
    },
    /// Remote diagnostics of a cabinet: ask for a fresh one (`request`, operators) or read
    /// the newest answered one (viewers).
    Diagnose {
        device: String,
        kind: DiagnosticKind,
        request: bool,
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
    /// The planning map's demand points and existing sites.
    PlanMap(crate::model::PlanMap),
    Fleet(Result<crate::model::Fleet, String>),
    /// A deployment was paused, resumed or cancelled (its id), or why not.
    Deployed(Result<String, String>),
    /// Remote diagnostics of a cabinet: the request as it stands, or why there is none.
    Diagnosis {
        device: String,
        result: Result<Diagnostic, String>,
    },
    /// Where `:cabinet` or `:case` pointed, or why nothing was found.
    Found(Result<Found, String>),
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
    pub sel_deployment: usize,
    /// The selected recommendation (Planning), highlighted in the list and on the map.
    pub sel_rec: usize,
    /// The planning map: shown or not, its zoom and where it is panned to.
    pub map: MapView,
    /// The site whose cabinets the site screen shows.
    pub site: Option<String>,
    /// The cabinet to select once the site's cabinets arrive (a jump from an alarm).
    pub want_cabinet: Option<String>,
    /// The box to select once that cabinet's boxes arrive (a jump to an item's box).
    pub want_box: Option<usize>,
    /// Audit entries of the cabinet on screen (its boxes' last events and commands).
    pub cabinet_audit: Vec<AuditEntry>,
    pub watch: Option<Watch>,
    /// The diagnostics overlay's content (shown while `dialog` is `Diagnostics`).
    pub diagnosis: Option<DiagView>,
    /// The last thing to tell the operator (errors included); never a crash.
    pub status: String,
    /// Actions a message led to (a `:case` answer: fetch that site and cabinet), taken by
    /// the loop with [`App::take_actions`].
    pub pending: Vec<Action>,
    /// Lines the help overlay is scrolled down by (a short terminal shows part of it).
    pub help_scroll: usize,
    /// Command lines run this session, oldest first (`:`, ↑↓).
    pub cmd_history: Vec<String>,
    /// Where ↑↓ are in the history while typing.
    pub cmd_hist_pos: Option<usize>,
    /// What Tab found when it could not choose (shown beside the command line).
    pub cmd_hint: String,
    /// Lists show only what needs attention (Ctrl-Z, as in k9s).
    pub faults_only: bool,
    /// What this operator did this session and how it went (`t`).
    pub trail: Vec<trail::TrailEntry>,
    /// The newest local time seen (epoch ms): when the operator's deeds are stamped.
    pub clock_ms: i64,
    /// Local time (epoch ms) the newest data arrived, for the header's data age.
    pub received_at: Option<i64>,
    pub server: String,
    /// The language every string on screen is in.
    pub lang: Lang,
    /// The key bindings in effect.
    pub keymap: keymap::Keymap,
    /// The colours the frame is drawn in.
    pub theme: crate::theme::Theme,
    /// The zone clock times are shown in (24-hour).
    pub time_zone: jiff::tz::TimeZone,
    pub quit: bool,
}

impl App {
    pub fn new(server: &str, lang: Lang) -> App {
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
            sel_deployment: 0,
            sel_rec: 0,
            map: MapView::default(),
            site: None,
            want_cabinet: None,
            want_box: None,
            cabinet_audit: Vec::new(),
            watch: None,
            diagnosis: None,
            status: String::new(),
            trail: Vec::new(),
            clock_ms: 0,
            faults_only: false,
            pending: Vec::new(),
            help_scroll: 0,
            cmd_history: Vec::new(),
            cmd_hist_pos: None,
            cmd_hint: String::new(),
            received_at: None,
            server: server.to_owned(),
            lang,
            keymap: keymap::Keymap::default(),
            theme: crate::theme::Theme::Dark,
            time_zone: crate::default_time_zone(lang, None),
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
                !self.faults_only
                    || s.alarms_open > 0
                    || s.faulty > 0
                    || s.devices_online < s.devices
            })
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
            .filter(|a| !self.faults_only || (a.state == AlarmState::Active && !a.suppressed))
            .filter(|a| {
                f.is_empty()
                    || a.kind.as_str().contains(&f)
                    || a.device_id.to_lowercase().contains(&f)
                    || a.severity.as_str().contains(&f)
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

    /// The work list on screen (only overdue and late items while faults only).
    pub fn work_items(&self) -> Vec<&crate::model::Item> {
        let w = &self.model.worklists;
        let list = match self.work_tab {
            0 => &w.collect,
            1 => &w.deposit,
            _ => &w.overdue,
        };
        list.iter()
            .filter(|i| !self.faults_only || i.state == ItemState::Overdue || i.late_deposit)
            .collect()
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
        self.clock_ms = self.clock_ms.max(now_ms);
        match msg {
            Msg::Link(l) => {
                if let Link::Down(e) = &l {
                    self.status = t!(self.lang, "console-status-unreachable", error = e.as_str());
                } else if matches!(self.model.link, Link::Down(_)) && l == Link::Live {
                    self.status = t!(self.lang, "console-status-reconnected");
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
                    if let Some(b) = self.want_box.take() {
                        self.sel_box = b;
                    }
                    self.model.cabinet = Some(view);
                    self.cabinet_audit = audit;
                }
            }
            Msg::Worklists(w) => self.model.worklists = w,
            Msg::Audit(a) => self.model.audit = a,
            Msg::Opened(Ok(c)) => {
                self.trail_open_accepted(&c);
                self.status = t!(
                    self.lang,
                    "console-status-open-accepted",
                    device = c.device_id.as_str(),
                    box_no = c.box_no,
                    status = crate::words::command_status(self.lang, c.status.as_str())
                );
                if let Some(w) = &mut self.watch {
                    w.command = Some(c);
                }
            }
            Msg::Opened(Err(e)) => {
                self.trail_open_refused(&e);
                self.status = t!(self.lang, "console-status-open-refused", error = e.as_str());
                if let Some(w) = &mut self.watch {
                    w.error = Some(e);
                }
            }
            Msg::Command(c) => {
                self.trail_command(&c);
                if let Some(w) = &mut self.watch
                    && w.command
                        .as_ref()
                        .is_some_and(|x| x.command_id == c.command_id)
                {
                    if c.is_final() {
                        self.status = match c.latency_ms {
                            Some(ms) => t!(
                                self.lang,
                                "console-status-open-done-in",
                                device = c.device_id.as_str(),
                                box_no = c.box_no,
                                status = crate::words::command_status(self.lang, c.status.as_str()),
                                ms = ms
                            ),
                            None => t!(
                                self.lang,
                                "console-status-open-done",
                                device = c.device_id.as_str(),
                                box_no = c.box_no,
                                status = crate::words::command_status(self.lang, c.status.as_str())
                            ),
                        };
                    }
                    w.command = Some(c);
                }
            }
            Msg::Acked(Ok(id)) => {
                self.trail_acked(&Ok(id.clone()));
                self.status = t!(self.lang, "console-status-acked", alarm = short(&id))
            }
            Msg::Acked(Err(e)) => {
                self.trail_acked(&Err(e.clone()));
                self.status = t!(self.lang, "console-status-ack-refused", error = e.as_str())
            }
            Msg::Usage(u) => self.model.usage = Some(u),
            Msg::Plan(p) => self.model.plan = Some(p),
            Msg::PlanMap(m) => self.model.plan_map = m,
            Msg::Fleet(f) => self.model.fleet = Some(f),
            Msg::Deployed(Ok(id)) => {
                self.trail_deployed(&Ok(id.clone()));
                self.status = t!(
                    self.lang,
                    "console-status-deployed",
                    deployment = short(&id)
                )
            }
            Msg::Deployed(Err(e)) => {
                self.trail_deployed(&Err(e.clone()));
                self.status = e
            }
            Msg::Diagnosis { device, result } => {
                if let Some(d) = &mut self.diagnosis
                    && d.device == device
                {
                    self.status = match &result {
                        Ok(r) => t!(
                            self.lang,
                            "console-status-diagnosis",
                            device = device.as_str(),
                            kind = r.kind.as_str(),
                            summary = r.summary.as_deref().unwrap_or(r.state.as_str())
                        ),
                        Err(e) => e.clone(),
                    };
                    d.answer = Some(result);
                }
            }
            Msg::Found(Ok(found)) => {
                // The actions (fetch its site and cabinet) go out with the next refresh.
                let next = self.show_found(found);
                self.pending.extend(next);
            }
            Msg::Found(Err(e)) => self.status = e,
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
        let deployments = self.deployments().len();
        fit(&mut self.sel_deployment, deployments);
        let recs = match &self.model.plan {
            Some(Ok(p)) => p.recommendations.len(),
            _ => 0,
        };
        fit(&mut self.sel_rec, recs);
    }

    /// The fleet screen's deployments (empty while loading or after an error).
    pub fn deployments(&self) -> &[crate::model::Deployment] {
        match &self.model.fleet {
            Some(Ok(f)) => &f.deployments,
            _ => &[],
        }
    }

    /// Whether the token's role may pause, resume or cancel deployments (admin).
    pub fn may_deploy(&self) -> Option<bool> {
        self.model.me.as_ref().map(|(_, role)| role == "admin")
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
            .filter(|s| !self.faults_only || s.saturated)
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

    /// The actions messages led to since the last call.
    pub fn take_actions(&mut self) -> Vec<Action> {
        std::mem::take(&mut self.pending)
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

/// The help overlay's lines: the keys in effect and what they do, then how to read the
/// screens.
pub fn help(lang: Lang, keys: &keymap::Keymap) -> Vec<(String, String)> {
    use keymap::Cmd;
    let k = |cmds: &[Cmd]| keys.short(cmds);
    let screens: Vec<Cmd> = (1..=8).map(Cmd::Screen).collect();
    vec![
        (k(&screens), t!(lang, "console-help-screens")),
        (k(&[Cmd::NextPane]), t!(lang, "console-help-tab")),
        (k(&[Cmd::Up, Cmd::Down]), t!(lang, "console-help-move")),
        (
            k(&[Cmd::Left, Cmd::Right]),
            t!(lang, "console-help-sideways"),
        ),
        (k(&[Cmd::Enter]), t!(lang, "console-help-enter")),
        (k(&[Cmd::Back]), t!(lang, "console-help-esc")),
        (k(&[Cmd::Filter]), t!(lang, "console-help-filter")),
        (k(&[Cmd::CommandLine]), t!(lang, "console-help-command")),
        (k(&[Cmd::FaultsOnly]), t!(lang, "console-help-faults")),
        (k(&[Cmd::Open]), t!(lang, "console-help-open")),
        (k(&[Cmd::Ack]), t!(lang, "console-help-ack")),
        (
            k(&[Cmd::Doctor, Cmd::Logs]),
            t!(lang, "console-help-diagnose"),
        ),
        (
            k(&[Cmd::Pause, Cmd::Cancel]),
            t!(lang, "console-help-deploy"),
        ),
        (
            k(&[
                Cmd::Map,
                Cmd::ZoomIn,
                Cmd::ZoomOut,
                Cmd::PanLeft,
                Cmd::PanDown,
                Cmd::PanUp,
                Cmd::PanRight,
                Cmd::Fit,
            ]),
            t!(lang, "console-help-map"),
        ),
        (k(&[Cmd::Refresh]), t!(lang, "console-help-refresh")),
        (k(&[Cmd::Trail]), t!(lang, "console-help-trail")),
        (k(&[Cmd::Help]), t!(lang, "console-help-help")),
        (
            format!("{} / Ctrl-C", k(&[Cmd::Quit])),
            t!(lang, "console-help-quit"),
        ),
        (
            t!(lang, "console-help-letters-key"),
            t!(lang, "console-help-letters"),
        ),
        (
            t!(lang, "console-help-flags-key"),
            t!(lang, "console-help-flags"),
        ),
        (
            t!(lang, "console-help-header-key"),
            t!(lang, "console-help-header"),
        ),
        (
            t!(lang, "console-help-colours-key"),
            t!(lang, "console-help-colours"),
        ),
    ]
}

pub mod command;
pub mod keymap;
mod keys;
pub mod trail;

#[cfg(test)]
mod tests;
