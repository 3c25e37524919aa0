//! Key bindings: every command of the screens by name, its default keys, and the operator's
//! own from the console's config file (`[keys]`, e.g. `open = "O"`, `down = ["down", "j"]`).
//! The help overlay and `fleet-console --print-keys` show the bindings in effect. Dialog keys
//! (Enter, Esc, typing) are fixed.

use std::collections::BTreeMap;
use std::fmt;

use l10n::{Lang, t};
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

/// What a key does outside dialogs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Cmd {
    Screen(u8),
    NextPane,
    Up,
    Down,
    Left,
    Right,
    PageUp,
    PageDown,
    Enter,
    Back,
    Filter,
    CommandLine,
    FaultsOnly,
    Open,
    Ack,
    Doctor,
    Logs,
    Pause,
    Cancel,
    Map,
    ZoomIn,
    ZoomOut,
    PanLeft,
    PanRight,
    PanUp,
    PanDown,
    Fit,
    Refresh,
    Trail,
    Help,
    Quit,
}

impl Cmd {
    /// Every command, in the help's order.
    pub fn all() -> Vec<Cmd> {
        let mut v: Vec<Cmd> = (1..=8).map(Cmd::Screen).collect();
        v.extend([
            Cmd::NextPane,
            Cmd::Up,
            Cmd::Down,
            Cmd::Left,
            Cmd::Right,
            Cmd::PageUp,
            Cmd::PageDown,
            Cmd::Enter,
            Cmd::Back,
            Cmd::Filter,
            Cmd::CommandLine,
            Cmd::FaultsOnly,
            Cmd::Open,
            Cmd::Ack,
            Cmd::Doctor,
            Cmd::Logs,
            Cmd::Pause,
            Cmd::Cancel,
            Cmd::Map,
            Cmd::ZoomIn,
            Cmd::ZoomOut,
            Cmd::PanLeft,
            Cmd::PanRight,
            Cmd::PanUp,
            Cmd::PanDown,
            Cmd::Fit,
            Cmd::Refresh,
            Cmd::Trail,
            Cmd::Help,
            Cmd::Quit,
        ]);
        v
    }

    /// The name in the config file's `[keys]`.
    pub fn name(self) -> String {
        let s = match self {
            Cmd::Screen(n) => return format!("screen-{n}"),
            Cmd::NextPane => "next-pane",
            Cmd::Up => "up",
            Cmd::Down => "down",
            Cmd::Left => "left",
            Cmd::Right => "right",
            Cmd::PageUp => "page-up",
            Cmd::PageDown => "page-down",
            Cmd::Enter => "enter",
            Cmd::Back => "back",
            Cmd::Filter => "filter",
            Cmd::CommandLine => "command-line",
            Cmd::FaultsOnly => "faults-only",
            Cmd::Open => "open",
            Cmd::Ack => "acknowledge",
            Cmd::Doctor => "doctor",
            Cmd::Logs => "logs",
            Cmd::Pause => "pause",
            Cmd::Cancel => "cancel",
            Cmd::Map => "map",
            Cmd::ZoomIn => "zoom-in",
            Cmd::ZoomOut => "zoom-out",
            Cmd::PanLeft => "pan-left",
            Cmd::PanRight => "pan-right",
            Cmd::PanUp => "pan-up",
            Cmd::PanDown => "pan-down",
            Cmd::Fit => "fit",
            Cmd::Refresh => "refresh",
            Cmd::Trail => "trail",
            Cmd::Help => "help",
            Cmd::Quit => "quit",
        };
        s.to_owned()
    }

    fn defaults(self) -> &'static [&'static str] {
        match self {
            Cmd::Screen(1) => &["1"],
            Cmd::Screen(2) => &["2"],
            Cmd::Screen(3) => &["3"],
            Cmd::Screen(4) => &["4"],
            Cmd::Screen(5) => &["5"],
            Cmd::Screen(6) => &["6"],
            Cmd::Screen(7) => &["7"],
            Cmd::Screen(_) => &["8"],
            Cmd::NextPane => &["tab", "backtab"],
            Cmd::Up => &["up", "k"],
            Cmd::Down => &["down", "j"],
            Cmd::Left => &["left", "h"],
            Cmd::Right => &["right", "l"],
            Cmd::PageUp => &["pgup"],
            Cmd::PageDown => &["pgdn"],
            Cmd::Enter => &["enter"],
            Cmd::Back => &["esc"],
            Cmd::Filter => &["/"],
            Cmd::CommandLine => &[":"],
            Cmd::FaultsOnly => &["ctrl-z"],
            Cmd::Open => &["o"],
            Cmd::Ack => &["a"],
            Cmd::Doctor => &["d"],
            Cmd::Logs => &["g"],
            Cmd::Pause => &["p"],
            Cmd::Cancel => &["x"],
            Cmd::Map => &["m"],
            Cmd::ZoomIn => &["+", "="],
            Cmd::ZoomOut => &["-"],
            Cmd::PanLeft => &["H"],
            Cmd::PanRight => &["L"],
            Cmd::PanUp => &["K"],
            Cmd::PanDown => &["J"],
            Cmd::Fit => &["0"],
            Cmd::Refresh => &["r"],
            Cmd::Trail => &["t"],
            Cmd::Help => &["?"],
            Cmd::Quit => &["q"],
        }
    }

    /// What it does, in the operator's language.
    pub fn describe(self, lang: Lang) -> String {
        match self {
            Cmd::Screen(n) => t!(lang, "console-key-screen", n = n),
            Cmd::NextPane => t!(lang, "console-help-tab"),
            Cmd::Up => t!(lang, "console-key-up"),
            Cmd::Down => t!(lang, "console-key-down"),
            Cmd::Left => t!(lang, "console-key-left"),
            Cmd::Right => t!(lang, "console-key-right"),
            Cmd::PageUp | Cmd::PageDown => t!(lang, "console-key-page"),
            Cmd::Enter => t!(lang, "console-help-enter"),
            Cmd::Back => t!(lang, "console-help-esc"),
            Cmd::Filter => t!(lang, "console-help-filter"),
            Cmd::CommandLine => t!(lang, "console-help-command"),
            Cmd::FaultsOnly => t!(lang, "console-help-faults"),
            Cmd::Open => t!(lang, "console-help-open"),
            Cmd::Ack => t!(lang, "console-help-ack"),
            Cmd::Doctor => t!(lang, "console-key-doctor"),
            Cmd::Logs => t!(lang, "console-key-logs"),
            Cmd::Pause => t!(lang, "console-key-pause"),
            Cmd::Cancel => t!(lang, "console-key-cancel"),
            Cmd::Map => t!(lang, "console-key-map"),
            Cmd::ZoomIn | Cmd::ZoomOut => t!(lang, "console-key-zoom"),
            Cmd::PanLeft | Cmd::PanRight | Cmd::PanUp | Cmd::PanDown => {
                t!(lang, "console-key-pan")
            }
            Cmd::Fit => t!(lang, "console-key-fit"),
            Cmd::Refresh => t!(lang, "console-help-refresh"),
            Cmd::Trail => t!(lang, "console-help-trail"),
            Cmd::Help => t!(lang, "console-help-help"),
            Cmd::Quit => t!(lang, "console-help-quit"),
        }
    }
}

/// A key as the config file writes it: `a`, `A`, `ctrl-z`, `enter`, `pgdn`, `f5`, `:`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key {
    code: KeyCodeOrd,
    ctrl: bool,
}

/// `KeyCode` with an order (for printing bindings sorted).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum KeyCodeOrd {
    Char(char),
    F(u8),
    Named(&'static str),
}

const NAMED: &[(&str, KeyCode)] = &[
    ("enter", KeyCode::Enter),
    ("esc", KeyCode::Esc),
    ("tab", KeyCode::Tab),
    ("backtab", KeyCode::BackTab),
    ("backspace", KeyCode::Backspace),
    ("up", KeyCode::Up),
    ("down", KeyCode::Down),
    ("left", KeyCode::Left),
    ("right", KeyCode::Right),
    ("pgup", KeyCode::PageUp),
    ("pgdn", KeyCode::PageDown),
    ("home", KeyCode::Home),
    ("end", KeyCode::End),
    ("delete", KeyCode::Delete),
    ("insert", KeyCode::Insert),
];

impl Key {
    pub fn parse(s: &str) -> Result<Key, String> {
        let (ctrl, rest) = match s.strip_prefix("ctrl-") {
            Some(r) if !r.is_empty() => (true, r),
            _ => (false, s),
        };
        let code = if rest == "space" {
            KeyCodeOrd::Char(' ')
        } else if rest.chars().count() == 1 {
            let c = rest.chars().next().unwrap_or(' ');
            KeyCodeOrd::Char(if ctrl { c.to_ascii_lowercase() } else { c })
        } else if let Some(n) = rest
            .strip_prefix('f')
            .and_then(|n| n.parse::<u8>().ok())
            .filter(|n| (1..=12).contains(n))
        {
            KeyCodeOrd::F(n)
        } else if let Some((name, _)) = NAMED.iter().find(|(n, _)| *n == rest) {
            KeyCodeOrd::Named(name)
        } else {
            return Err(format!(
                "unknown key {s:?}: write a character (a, A, :), ctrl-x, f1…f12, space, or one of {}",
                NAMED.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
            ));
        };
        Ok(Key { code, ctrl })
    }

    /// The key a terminal event is (Shift is in the character itself).
    pub fn of(e: &KeyEvent) -> Option<Key> {
        let ctrl = e.modifiers.contains(KeyModifiers::CONTROL);
        let code = match e.code {
            KeyCode::Char(c) => KeyCodeOrd::Char(if ctrl { c.to_ascii_lowercase() } else { c }),
            KeyCode::F(n) => KeyCodeOrd::F(n),
            other => KeyCodeOrd::Named(NAMED.iter().find(|(_, k)| *k == other)?.0),
        };
        Some(Key { code, ctrl })
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.ctrl {
            f.write_str("Ctrl-")?;
        }
        match self.code {
            KeyCodeOrd::Char(' ') => f.write_str("Space"),
            KeyCodeOrd::Char(c) if self.ctrl => write!(f, "{}", c.to_ascii_uppercase()),
            KeyCodeOrd::Char(c) => write!(f, "{c}"),
            KeyCodeOrd::F(n) => write!(f, "F{n}"),
            KeyCodeOrd::Named(n) => {
                let shown = match n {
                    "up" => "↑",
                    "down" => "↓",
                    "left" => "←",
                    "right" => "→",
                    "pgup" => "PgUp",
                    "pgdn" => "PgDn",
                    "enter" => "Enter",
                    "esc" => "Esc",
                    "tab" => "Tab",
                    "backtab" => "Shift-Tab",
                    other => other,
                };
                f.write_str(shown)
            }
        }
    }
}

/// The bindings in effect.
#[derive(Debug, Clone, PartialEq)]
pub struct Keymap {
    by_key: BTreeMap<Key, Cmd>,
}

impl Default for Keymap {
    fn default() -> Self {
        Keymap::with(&BTreeMap::new()).unwrap_or_else(|_| Keymap {
            by_key: BTreeMap::new(),
        })
    }
}

impl Keymap {
    /// The defaults with `overrides` (command name → its keys) in their place. A command
    /// name or key not known, or one key for two commands, is refused with what to write.
    pub fn with(overrides: &BTreeMap<String, Vec<String>>) -> Result<Keymap, String> {
        let all = Cmd::all();
        for name in overrides.keys() {
            if !all.iter().any(|c| &c.name() == name) {
                return Err(format!(
                    "[keys] {name:?} is not a command: use one of {}",
                    all.iter().map(|c| c.name()).collect::<Vec<_>>().join(", ")
                ));
            }
        }
        let mut by_key = BTreeMap::new();
        for cmd in all {
            let keys: Vec<String> = match overrides.get(&cmd.name()) {
                Some(k) => k.clone(),
                None => cmd.defaults().iter().map(|s| (*s).to_owned()).collect(),
            };
            for k in keys {
                let key = Key::parse(&k).map_err(|e| format!("[keys] {}: {e}", cmd.name()))?;
                if key
                    == (Key {
                        code: KeyCodeOrd::Char('c'),
                        ctrl: true,
                    })
                {
                    return Err(format!(
                        "[keys] {}: Ctrl-C always quits; choose another key",
                        cmd.name()
                    ));
                }
                if let Some(other) = by_key.insert(key, cmd) {
                    return Err(format!(
                        "[keys] {key} is bound to both {} and {}: give one of them another key",
                        other.name(),
                        cmd.name()
                    ));
                }
            }
        }
        Ok(Keymap { by_key })
    }

    pub fn command(&self, e: &KeyEvent) -> Option<Cmd> {
        self.by_key.get(&Key::of(e)?).copied()
    }

    /// The keys of `cmd`, as `--print-keys` shows them (`k / ↑`).
    pub fn keys_of(&self, cmd: Cmd) -> String {
        self.keys(cmd).join(" / ")
    }

    fn keys(&self, cmd: Cmd) -> Vec<String> {
        self.by_key
            .iter()
            .filter(|(_, c)| **c == cmd)
            .map(|(k, _)| k.to_string())
            .collect()
    }

    /// The keys of several commands, short as the help's key column wants them (`k,↑ j,↓`;
    /// the screens' digits as `1…8`).
    pub fn short(&self, cmds: &[Cmd]) -> String {
        let each: Vec<String> = cmds.iter().map(|c| self.keys(*c).join(",")).collect();
        let digits: Vec<String> = (1..=cmds.len()).map(|n| n.to_string()).collect();
        if cmds.len() > 2 && each == digits {
            return format!("1…{}", cmds.len());
        }
        each.into_iter()
            .filter(|k| !k.is_empty())
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// `fleet-console --print-keys`: every command, its keys and what it does.
    pub fn print(&self, lang: Lang) -> String {
        let mut out = String::new();
        for cmd in Cmd::all() {
            out.push_str(&format!(
                "{:<14} {:<14} {}\n",
                cmd.name(),
                self.keys_of(cmd),
                cmd.describe(lang)
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(code: KeyCode, modifiers: KeyModifiers) -> KeyEvent {
        KeyEvent::new(code, modifiers)
    }

    #[test]
    fn the_defaults_are_the_keys_the_help_lists() {
        let k = Keymap::default();
        assert_eq!(
            k.command(&ev(KeyCode::Char('j'), KeyModifiers::NONE)),
            Some(Cmd::Down)
        );
        assert_eq!(
            k.command(&ev(KeyCode::Down, KeyModifiers::NONE)),
            Some(Cmd::Down)
        );
        assert_eq!(
            k.command(&ev(KeyCode::Char('z'), KeyModifiers::CONTROL)),
            Some(Cmd::FaultsOnly)
        );
        assert_eq!(
            k.command(&ev(KeyCode::Char('H'), KeyModifiers::SHIFT)),
            Some(Cmd::PanLeft)
        );
        assert_eq!(k.keys_of(Cmd::Up), "k / ↑");
        assert!(k.print(Lang::En).contains("faults-only    Ctrl-Z"));
    }

    #[test]
    fn the_operators_keys_replace_the_defaults_and_mistakes_are_named() {
        let o = |pairs: &[(&str, &[&str])]| {
            pairs
                .iter()
                .map(|(c, k)| ((*c).to_owned(), k.iter().map(|s| (*s).to_owned()).collect()))
                .collect::<BTreeMap<_, _>>()
        };
        let k = Keymap::with(&o(&[("open", &["O"]), ("down", &["down", "n"])])).expect("valid");
        assert_eq!(
            k.command(&ev(KeyCode::Char('O'), KeyModifiers::SHIFT)),
            Some(Cmd::Open)
        );
        assert_eq!(k.command(&ev(KeyCode::Char('o'), KeyModifiers::NONE)), None);
        assert_eq!(
            k.command(&ev(KeyCode::Char('n'), KeyModifiers::NONE)),
            Some(Cmd::Down)
        );
        let e = Keymap::with(&o(&[("open", &["q"])])).expect_err("clash");
        assert_eq!(
            e,
            "[keys] q is bound to both open and quit: give one of them another key"
        );
        assert!(
            Keymap::with(&o(&[("opn", &["o"])]))
                .expect_err("name")
                .contains("not a command")
        );
        assert!(
            Keymap::with(&o(&[("open", &["ctrl-"])]))
                .expect_err("key")
                .contains("unknown key")
        );
        assert!(
            Keymap::with(&o(&[("open", &["ctrl-c"])]))
                .expect_err("c")
                .contains("always quits")
        );
        assert_eq!(Key::parse("f5").map(|k| k.to_string()), Ok("F5".into()));
    }
}
