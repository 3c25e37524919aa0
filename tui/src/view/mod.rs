//! Drawing: every screen is a pure function of the [`App`] and the time, so screens are
//! snapshot-tested. States are told by letters and symbols first; colour only repeats them.

mod alarms;
mod audit;
mod diagnostics;
mod dialogs;
mod fleet;
mod map;
mod overview;
mod planning;
mod site;
mod usage;
mod widgets;
mod work;

use ratatui::Frame;
use ratatui::layout::{Alignment, Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style, Stylize};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use self::alarms::draw_alarms;
use self::audit::draw_audit;
use self::diagnostics::draw_diagnostics;
use self::dialogs::{draw_help, draw_prompt};
use self::fleet::draw_fleet;
use self::overview::draw_overview;
use self::planning::draw_planning;
use self::site::draw_site;
use self::usage::draw_usage;
use self::work::draw_work;
use crate::app::{App, DeployAct, Dialog, Screen, short};
use crate::model::Link;
use l10n::t;

pub use widgets::{age, clock, ellipsize, pad, shade, spark};

/// The smallest terminal the screens are laid out for (their snapshots are 80×24 and wider).
pub const MIN_SIZE: (u16, u16) = (80, 20);

/// Draws the whole console for the time `now_ms` (local clock, epoch ms), in the
/// operator's theme.
pub fn draw(f: &mut Frame, app: &App, now_ms: i64) {
    draw_frame(f, app, now_ms);
    app.theme.apply(f.buffer_mut());
}

/// The labels of the navigation line, in order (a click finds its screen by them).
pub fn nav_labels(app: &App) -> Vec<String> {
    let open_alarms = app
        .model
        .alarms
        .iter()
        .filter(|a| a.state.is_open())
        .count();
    Screen::ALL
        .iter()
        .enumerate()
        .map(|(i, s)| {
            if *s == Screen::Alarms && open_alarms > 0 {
                format!(" {} {} ({open_alarms}) ", i + 1, s.title(app.lang))
            } else {
                format!(" {} {} ", i + 1, s.title(app.lang))
            }
        })
        .collect()
}

fn draw_frame(f: &mut Frame, app: &App, now_ms: i64) {
    let size = f.area();
    let lang = app.lang;
    if size.width < MIN_SIZE.0 || size.height < MIN_SIZE.1 {
        // Columns cut to nothing read as data; say what is wrong instead.
        let text = vec![
            Line::from(t!(lang, "console-too-small")).bold(),
            Line::from(t!(
                lang,
                "console-too-small-size",
                width = size.width,
                height = size.height,
                need_width = MIN_SIZE.0,
                need_height = MIN_SIZE.1
            )),
            Line::from(t!(lang, "console-too-small-hint")),
        ];
        f.render_widget(
            Paragraph::new(text)
                .alignment(Alignment::Center)
                .wrap(ratatui::widgets::Wrap { trim: true }),
            size,
        );
        return;
    }
    let [header, nav, body, status] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(1),
        Constraint::Min(3),
        Constraint::Length(1),
    ])
    .areas(f.area());
    draw_header(f, header, app, now_ms);
    draw_nav(f, nav, app);
    match app.screen {
        Screen::Overview => draw_overview(f, body, app),
        Screen::Site => draw_site(f, body, app, now_ms),
        Screen::Alarms => draw_alarms(f, body, app, now_ms),
        Screen::Work => draw_work(f, body, app, now_ms),
        Screen::Audit => draw_audit(f, body, app, now_ms),
        Screen::Usage => draw_usage(f, body, app),
        Screen::Planning => draw_planning(f, body, app),
        Screen::Fleet => draw_fleet(f, body, app, now_ms),
    }
    draw_status(f, status, app);
    match &app.dialog {
        Some(Dialog::Help) => draw_help(f, body, app),
        Some(Dialog::Open {
            device,
            box_no,
            reason,
        }) => draw_prompt(
            f,
            body,
            &t!(
                lang,
                "console-open-title",
                device = device.as_str(),
                box_no = *box_no
            ),
            &t!(lang, "console-open-question"),
            &t!(lang, "console-open-field"),
            reason,
            &t!(lang, "console-open-keys"),
        ),
        Some(Dialog::Ack { alarm_id, note }) => draw_prompt(
            f,
            body,
            &t!(lang, "console-ack-title", alarm = short(alarm_id)),
            &t!(lang, "console-ack-question"),
            &t!(lang, "console-note-field"),
            note,
            &t!(lang, "console-ack-keys"),
        ),
        Some(Dialog::Deploy { id, act, note }) => draw_prompt(
            f,
            body,
            &t!(
                lang,
                "console-deploy-title",
                act = act.as_str(),
                deployment = short(id)
            ),
            &match act {
                DeployAct::Cancel => t!(lang, "console-deploy-cancel-question"),
                DeployAct::Pause => t!(lang, "console-deploy-pause-question"),
                DeployAct::Resume => t!(lang, "console-deploy-resume-question"),
            },
            &t!(lang, "console-note-field"),
            note,
            &t!(lang, "console-deploy-keys"),
        ),
        Some(Dialog::Diagnostics) => draw_diagnostics(f, body, app, now_ms),
        Some(Dialog::Trail) => dialogs::draw_trail(f, body, app, now_ms),
        Some(Dialog::Filter) | Some(Dialog::Command { .. }) | None => {}
    }
}

fn draw_header(f: &mut Frame, area: Rect, app: &App, now_ms: i64) {
    let lang = app.lang;
    let (mark, word, colour) = match &app.model.link {
        Link::Live => ("●", t!(lang, "console-link-live"), Color::Green),
        Link::Connecting => ("○", t!(lang, "console-link-connecting"), Color::Yellow),
        Link::Down(_) => ("✕", t!(lang, "console-link-down"), Color::Red),
    };
    let data = match app.received_at {
        Some(at) => t!(lang, "console-data-age", age = age(lang, now_ms - at)),
        None => t!(lang, "console-no-data"),
    };
    let who = match &app.model.me {
        Some((name, role)) => format!("{name} ({})", crate::words::role(lang, role)),
        None => "?".into(),
    };
    let line = Line::from(vec![
        Span::raw(" LockerFleet ").bold(),
        Span::raw("│ "),
        Span::styled(format!("{mark} {word}"), Style::new().fg(colour)),
        Span::raw(format!(" │ {data} │ {who} │ {}", app.server)),
    ]);
    f.render_widget(Paragraph::new(line).reversed(), area);
}

fn draw_nav(f: &mut Frame, area: Rect, app: &App) {
    let mut spans = Vec::new();
    for (s, label) in Screen::ALL.iter().zip(nav_labels(app)) {
        let style = if *s == app.screen {
            Style::new().add_modifier(Modifier::REVERSED | Modifier::BOLD)
        } else {
            Style::new()
        };
        spans.push(Span::styled(label, style));
    }
    f.render_widget(Paragraph::new(Line::from(spans)), area);
}

fn draw_status(f: &mut Frame, area: Rect, app: &App) {
    let lang = app.lang;
    let left = if let Some(Dialog::Command { text }) = &app.dialog {
        format!(":{text}▏ {}", app.cmd_hint)
    } else if matches!(app.dialog, Some(Dialog::Filter)) {
        t!(lang, "console-filter-typing", filter = app.filter.as_str())
    } else if !app.filter.is_empty() {
        t!(
            lang,
            "console-filter-kept",
            filter = app.filter.as_str(),
            status = app.status.as_str()
        )
    } else {
        app.status.clone()
    };
    let left = if app.faults_only {
        format!("{} {left}", t!(lang, "console-faults-badge"))
    } else {
        left
    };
    let hint = t!(lang, "console-hint");
    let hint_width = unicode_width::UnicodeWidthStr::width(hint.as_str()) as u16;
    let [l, r] =
        Layout::horizontal([Constraint::Min(10), Constraint::Length(hint_width)]).areas(area);
    f.render_widget(Paragraph::new(left), l);
    f.render_widget(Paragraph::new(hint).alignment(Alignment::Right).dim(), r);
}

#[cfg(test)]
mod tests {
    use super::widgets::*;

    #[test]
    fn ages_and_sparklines_read_at_a_glance() {
        assert_eq!(age(l10n::Lang::En, 59_999), "59 s");
        assert_eq!(age(l10n::Lang::En, 60_000), "1 min");
        assert_eq!(age(l10n::Lang::En, 7_200_000), "2 h");
        assert_eq!(age(l10n::Lang::En, -5), "0 s");
        assert_eq!(spark(&[0, 1, 4, 8]), " ▁▄█");
        assert_eq!(spark(&[]), "");
    }

    #[test]
    fn mixed_chinese_and_ascii_fit_their_columns_without_splitting_a_character() {
        use ratatui::Terminal;
        use ratatui::backend::TestBackend;
        use ratatui::widgets::Paragraph;
        // 测试123: 测 at column 0, 试 at 2, then 1, 2, 3 at 4, 5, 6.
        let mut t = Terminal::new(TestBackend::new(10, 1)).expect("terminal");
        t.draw(|f| f.render_widget(Paragraph::new(pad("测试123", 8) + "|"), f.area()))
            .expect("draw");
        let buf = t.backend().buffer().clone();
        let at = |x: u16| buf[(x, 0)].symbol().to_owned();
        assert_eq!(
            [at(0), at(2), at(4), at(5), at(6), at(8)],
            ["测", "试", "1", "2", "3", "|"].map(String::from),
            "{buf:?}"
        );
        // Too long: cut before a character that would not fit, then the ellipsis.
        assert_eq!(ellipsize("政务服务大厅", 7), "政务服…");
        assert_eq!(ellipsize("政务服务大厅", 6), "政务…");
        assert_eq!(ellipsize("hall-cab-01", 6), "hall-…");
        assert_eq!(ellipsize("短", 5), "短");
        assert_eq!(pad("驿站A", 6), "驿站A ");
        for w in 0..14 {
            let e = ellipsize("企业聚集区 Park 3", w);
            assert!(
                unicode_width::UnicodeWidthStr::width(e.as_str()) <= w,
                "{w}: {e}"
            );
        }
    }

    #[test]
    fn clock_times_read_in_the_consoles_zone_24_hour() {
        let shanghai = jiff::tz::TimeZone::get("Asia/Shanghai").expect("zone");
        // 2026-12-05 10:30 UTC: 18:30 in Shanghai, the same day; a day before shows its date.
        let now = 1_796_466_600_000;
        assert_eq!(clock(&shanghai, now - 60_000, now), "18:29");
        assert_eq!(clock(&shanghai, now - 86_400_000, now), "12-04 18:30");
        assert_eq!(clock(&jiff::tz::TimeZone::UTC, now, now), "10:30");
        // A Shanghai evening after 16:00 UTC is already tomorrow there.
        assert_eq!(clock(&shanghai, now + 6 * 3_600_000, now), "12-06 00:30");
        assert_eq!(crate::default_time_zone(l10n::Lang::ZhCn, None), shanghai);
        assert_eq!(
            crate::default_time_zone(l10n::Lang::En, Some("Europe/Berlin")),
            jiff::tz::TimeZone::get("Europe/Berlin").expect("zone")
        );
        assert_eq!(
            crate::default_time_zone(l10n::Lang::En, Some("Nowhere/Land")),
            jiff::tz::TimeZone::UTC
        );
    }

    #[test]
    fn only_a_screenful_of_rows_is_built() {
        assert_eq!(window(0, 1000, 10), (0..10, 0));
        assert_eq!(window(9, 1000, 10), (0..10, 9));
        assert_eq!(window(10, 1000, 10), (1..11, 9));
        assert_eq!(window(999, 1000, 10), (990..1000, 9));
        assert_eq!(window(0, 3, 10), (0..3, 0));
        assert_eq!(window(0, 0, 10), (0..0, 0));
    }
}
