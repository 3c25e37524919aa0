//! The `:` command line (as in k9s): jump to a site, a cabinet, an item by its case number or
//! an alarm by typing its id, `:open CABINET BOX` (asks the reason as `o` does), a screen by
//! name; Tab completes commands and ids, ↑↓ walk this session's history.

use l10n::t;

use super::{Action, App, Dialog, Pane, Screen};

/// A parsed command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Site(String),
    Cabinet(String),
    Case(String),
    Alarm(String),
    Open(String, u16),
    Screen(Screen),
    Help,
    Quit,
}

/// Command words and what they mean; the first of each line is the one completion offers.
const WORDS: &[(&str, &[&str])] = &[
    ("site", &["site", "s"]),
    ("cabinet", &["cabinet", "cab", "device", "d"]),
    ("case", &["case", "item", "i"]),
    ("alarm", &["alarm", "a"]),
    ("open", &["open", "o"]),
    ("overview", &["overview"]),
    ("alarms", &["alarms"]),
    ("work", &["work"]),
    ("audit", &["audit"]),
    ("usage", &["usage"]),
    ("plan", &["plan", "planning"]),
    ("fleet", &["fleet"]),
    ("help", &["help", "h", "?"]),
    ("quit", &["quit", "q"]),
];

/// Why a line is not a command (the caller says it in the operator's language).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandError {
    Empty,
    Unknown(String),
    /// The command needs an argument: its usage.
    Usage(&'static str),
}

pub fn parse(line: &str) -> Result<Command, CommandError> {
    let mut words = line.split_whitespace();
    let Some(first) = words.next() else {
        return Err(CommandError::Empty);
    };
    let word = first.to_lowercase();
    let name = WORDS
        .iter()
        .find(|(_, aliases)| aliases.contains(&word.as_str()))
        .map(|(name, _)| *name)
        .ok_or_else(|| CommandError::Unknown(first.to_owned()))?;
    let arg = words.next().map(str::to_owned);
    let need = |usage| arg.clone().ok_or(CommandError::Usage(usage));
    Ok(match name {
        "site" => Command::Site(need(":site SITE")?),
        "cabinet" => Command::Cabinet(need(":cabinet CABINET")?),
        "case" => Command::Case(need(":case CASE-NUMBER")?),
        "alarm" => Command::Alarm(need(":alarm ALARM-ID")?),
        "open" => {
            let device = need(":open CABINET BOX")?;
            let box_no = words
                .next()
                .and_then(|b| b.parse().ok())
                .filter(|b| *b > 0)
                .ok_or(CommandError::Usage(":open CABINET BOX"))?;
            Command::Open(device, box_no)
        }
        "overview" => Command::Screen(Screen::Overview),
        "alarms" => Command::Screen(Screen::Alarms),
        "work" => Command::Screen(Screen::Work),
        "audit" => Command::Screen(Screen::Audit),
        "usage" => Command::Screen(Screen::Usage),
        "plan" => Command::Screen(Screen::Planning),
        "fleet" => Command::Screen(Screen::Fleet),
        "help" => Command::Help,
        _ => Command::Quit,
    })
}

/// The longest common prefix of `words`.
fn common_prefix<'a>(words: &[&'a str]) -> &'a str {
    let Some(first) = words.first() else {
        return "";
    };
    let mut end = first.len();
    for w in &words[1..] {
        end = first
            .char_indices()
            .zip(w.chars())
            .take_while(|((_, a), b)| a == b)
            .map(|((i, a), _)| i + a.len_utf8())
            .last()
            .unwrap_or(0)
            .min(end);
    }
    &first[..end]
}

impl App {
    /// The ids a command's argument may be, from what the console has loaded.
    fn candidates(&self, command: &str) -> Vec<String> {
        let mut ids: Vec<String> = match command {
            "site" => self
                .model
                .overview
                .sites
                .iter()
                .map(|s| s.id.clone())
                .collect(),
            "cabinet" | "open" => self
                .model
                .cabinets
                .iter()
                .map(|c| c.id.clone())
                .chain(self.model.alarms.iter().map(|a| a.device_id.clone()))
                .collect(),
            "alarm" => self
                .model
                .alarms
                .iter()
                .map(|a| super::short(&a.id).to_owned())
                .collect(),
            "case" => self
                .model
                .worklists
                .collect
                .iter()
                .chain(&self.model.worklists.deposit)
                .chain(&self.model.worklists.overdue)
                .map(|i| i.case_number.clone())
                .collect(),
            _ => Vec::new(),
        };
        ids.sort();
        ids.dedup();
        ids
    }

    /// Tab: completes the word being typed as far as it is unambiguous, and lists the
    /// choices when there are several.
    pub(super) fn complete(&mut self) {
        let Some(Dialog::Command { text }) = &self.dialog else {
            return;
        };
        let text = text.clone();
        let words: Vec<&str> = text.split_whitespace().collect();
        let typing_arg = text.ends_with(' ') && !words.is_empty() || words.len() >= 2;
        let (head, partial, choices): (String, &str, Vec<String>) = if !typing_arg {
            let partial = words.first().copied().unwrap_or("");
            let choices = WORDS
                .iter()
                .map(|(name, _)| (*name).to_owned())
                .filter(|n| n.starts_with(&partial.to_lowercase()))
                .collect();
            (String::new(), partial, choices)
        } else {
            let command = WORDS
                .iter()
                .find(|(_, a)| a.contains(&words[0].to_lowercase().as_str()))
                .map_or("", |(n, _)| *n);
            let partial = if text.ends_with(' ') {
                ""
            } else {
                words[words.len() - 1]
            };
            let kept = words.len() - usize::from(!partial.is_empty());
            let head = words[..kept].join(" ") + " ";
            let choices = self
                .candidates(command)
                .into_iter()
                .filter(|c| c.to_lowercase().starts_with(&partial.to_lowercase()))
                .collect();
            (head, partial, choices)
        };
        let refs: Vec<&str> = choices.iter().map(String::as_str).collect();
        let completed = match refs.len() {
            0 => {
                self.cmd_hint = t!(self.lang, "console-cmd-no-match");
                return;
            }
            1 => format!("{}{} ", head, refs[0]),
            _ => {
                let shown: Vec<&str> = refs.iter().take(8).copied().collect();
                self.cmd_hint = format!(
                    "{}{}",
                    shown.join(" "),
                    if refs.len() > 8 { " …" } else { "" }
                );
                let prefix = common_prefix(&refs);
                format!(
                    "{}{}",
                    head,
                    if prefix.len() > partial.len() {
                        prefix
                    } else {
                        partial
                    }
                )
            }
        };
        if refs.len() == 1 {
            self.cmd_hint.clear();
        }
        self.dialog = Some(Dialog::Command { text: completed });
    }

    /// ↑ (back) or ↓ (forward) through this session's command lines.
    pub(super) fn history_step(&mut self, back: bool) {
        if self.cmd_history.is_empty() {
            return;
        }
        let last = self.cmd_history.len() - 1;
        let pos = match (self.cmd_hist_pos, back) {
            (None, true) => Some(last),
            (None, false) => None,
            (Some(p), true) => Some(p.saturating_sub(1)),
            (Some(p), false) if p >= last => None,
            (Some(p), false) => Some(p + 1),
        };
        self.cmd_hist_pos = pos;
        let text = pos.map(|p| self.cmd_history[p].clone()).unwrap_or_default();
        self.dialog = Some(Dialog::Command { text });
    }

    /// Enter on the command line.
    pub(super) fn run_command(&mut self, line: &str) -> Vec<Action> {
        let line = line.trim().to_owned();
        self.dialog = None;
        self.cmd_hist_pos = None;
        self.cmd_hint.clear();
        if !line.is_empty() && self.cmd_history.last() != Some(&line) {
            self.cmd_history.push(line.clone());
            if self.cmd_history.len() > 100 {
                self.cmd_history.remove(0);
            }
        }
        let lang = self.lang;
        match parse(&line) {
            Err(CommandError::Empty) => Vec::new(),
            Err(CommandError::Unknown(w)) => {
                self.status = t!(lang, "console-cmd-unknown", command = w.as_str());
                Vec::new()
            }
            Err(CommandError::Usage(u)) => {
                self.status = t!(lang, "console-cmd-usage", usage = u);
                Vec::new()
            }
            Ok(Command::Quit) => {
                self.quit = true;
                vec![Action::Quit]
            }
            Ok(Command::Help) => {
                self.dialog = Some(Dialog::Help);
                Vec::new()
            }
            Ok(Command::Screen(s)) => self.go(s),
            Ok(Command::Site(id)) => {
                let found = self.model.overview.sites.iter().find(|s| {
                    s.id.eq_ignore_ascii_case(&id)
                        || s.name.to_lowercase().contains(&id.to_lowercase())
                });
                match found.map(|s| s.id.clone()) {
                    Some(site) => self.show_site(site),
                    None => {
                        self.status = t!(lang, "console-cmd-no-site", site = id.as_str());
                        Vec::new()
                    }
                }
            }
            Ok(Command::Cabinet(device)) => {
                self.status = t!(lang, "console-cmd-finding", what = device.as_str());
                vec![Action::Locate { device }]
            }
            Ok(Command::Case(case)) => {
                self.status = t!(lang, "console-cmd-finding", what = case.as_str());
                vec![Action::FindCase { case }]
            }
            Ok(Command::Alarm(id)) => {
                self.filter.clear();
                self.screen = Screen::Alarms;
                let hit = self.alarms().iter().position(|a| a.id.starts_with(&id));
                match hit {
                    Some(i) => {
                        self.sel_alarm = i;
                        vec![Action::Refresh]
                    }
                    None => {
                        self.status = t!(lang, "console-cmd-no-alarm", alarm = id.as_str());
                        vec![Action::Refresh]
                    }
                }
            }
            Ok(Command::Open(device, box_no)) => {
                if self.may_open() == Some(false) {
                    let role = self.model.me.as_ref().map_or("?", |(_, r)| r.as_str());
                    self.status = t!(
                        lang,
                        "console-status-open-needs-operator",
                        role = crate::words::role(lang, role)
                    );
                    return Vec::new();
                }
                self.dialog = Some(Dialog::Open {
                    device,
                    box_no,
                    reason: String::new(),
                });
                Vec::new()
            }
        }
    }

    /// The site screen on `site`.
    pub(super) fn show_site(&mut self, site: String) -> Vec<Action> {
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

    /// A cabinet found by the data task (`:cabinet`, `:case`): its site's screen, the
    /// cabinet selected, and the box when one is named.
    pub(super) fn show_found(&mut self, found: super::Found) -> Vec<Action> {
        let mut actions = self.show_site(found.site.clone());
        self.want_cabinet = Some(found.device.clone());
        self.model.cabinets = vec![crate::model::Cabinet {
            id: found.device.clone(),
            site_id: found.site,
            ..crate::model::Cabinet::default()
        }];
        self.sel_cabinet = 0;
        if let Some(b) = found.box_no {
            self.pane = Pane::Boxes;
            self.want_box = Some(usize::from(b).saturating_sub(1));
        }
        actions.push(Action::Cabinet(found.device));
        actions
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_parse_with_aliases_and_say_what_they_need() {
        assert_eq!(parse("site hall"), Ok(Command::Site("hall".into())));
        assert_eq!(
            parse("  d  hall-cab-01 "),
            Ok(Command::Cabinet("hall-cab-01".into()))
        );
        assert_eq!(parse("case GZ-1"), Ok(Command::Case("GZ-1".into())));
        assert_eq!(
            parse("open hall-cab-01 4"),
            Ok(Command::Open("hall-cab-01".into(), 4))
        );
        assert_eq!(
            parse("open hall-cab-01 x"),
            Err(CommandError::Usage(":open CABINET BOX"))
        );
        assert_eq!(
            parse("open hall-cab-01 0"),
            Err(CommandError::Usage(":open CABINET BOX"))
        );
        assert_eq!(parse("alarm"), Err(CommandError::Usage(":alarm ALARM-ID")));
        assert_eq!(parse("PLAN"), Ok(Command::Screen(Screen::Planning)));
        assert_eq!(parse("q"), Ok(Command::Quit));
        assert_eq!(
            parse("frobnicate"),
            Err(CommandError::Unknown("frobnicate".into()))
        );
        assert_eq!(parse("   "), Err(CommandError::Empty));
        assert_eq!(
            common_prefix(&["hall-cab-01", "hall-cab-02", "hall-x"]),
            "hall-"
        );
        assert_eq!(common_prefix(&["站点一", "站点二"]), "站点");
    }
}
