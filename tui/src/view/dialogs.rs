//! The help overlay and the prompts (reason for a remote open, note on an alarm).

use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::style::Stylize;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Cell, Clear, Paragraph, Row, Table, Wrap};

use super::widgets::centered;
use crate::app::App;
use crate::app::help;
use crate::app::trail::{Deed, Outcome};
use l10n::t;
use ratatui::style::{Color, Style};

pub(super) fn draw_help(f: &mut Frame, area: Rect, app: &App) {
    let lang = app.lang;
    let help = help(lang, &app.keymap);
    let popup = centered(area, 76, help.len() as u16 + 2);
    // A short terminal shows part of the list: ↑↓ scroll it, the title says there is more.
    let rows_shown = usize::from(popup.height.saturating_sub(2));
    let scroll = app.help_scroll.min(help.len().saturating_sub(rows_shown));
    let more = help.len() > rows_shown;
    // The key column as wide as its widest entry (remapped keys can be long), within reason.
    let key_width = help
        .iter()
        .map(|(k, _)| unicode_width::UnicodeWidthStr::width(k.as_str()))
        .max()
        .unwrap_or(8)
        .clamp(6, 20) as u16;
    let what_width =
        usize::from(popup.width.saturating_sub(3)).saturating_sub(usize::from(key_width));
    let rows = help.into_iter().skip(scroll).map(|(k, what)| {
        Row::new(vec![
            Cell::from(k).bold(),
            Cell::from(super::widgets::ellipsize(&what, what_width)),
        ])
    });
    let mut block = Block::default()
        .borders(Borders::ALL)
        .title(t!(lang, "console-help-title"));
    if more {
        block = block.title_bottom(Line::from(t!(lang, "console-help-more")).dim());
    }
    let table = Table::new(rows, [Constraint::Length(key_width), Constraint::Min(10)]).block(block);
    f.render_widget(Clear, popup);
    f.render_widget(table, popup);
}

pub(super) fn draw_prompt(
    f: &mut Frame,
    area: Rect,
    title: &str,
    question: &str,
    label: &str,
    value: &str,
    hint: &str,
) {
    let popup = centered(area, 70, 6);
    let lines = vec![
        Line::from(question),
        Line::from(""),
        Line::from(vec![
            Span::raw(format!("{label}: ")).bold(),
            Span::raw(value.to_owned()),
            Span::raw("▏"),
        ]),
        Line::from(hint).dim(),
    ];
    f.render_widget(Clear, popup);
    f.render_widget(
        Paragraph::new(lines).wrap(Wrap { trim: false }).block(
            Block::default()
                .borders(Borders::ALL)
                .title(title.to_owned()),
        ),
        popup,
    );
}

/// The operator's trail this session, newest first: what they did, why, and how it went.
pub(super) fn draw_trail(f: &mut Frame, area: Rect, app: &App, now_ms: i64) {
    let lang = app.lang;
    let popup = centered(
        area,
        area.width.saturating_sub(4),
        area.height.saturating_sub(2),
    );
    let mut lines: Vec<Line> = Vec::new();
    for e in app.trail.iter().rev() {
        let deed = match &e.deed {
            Deed::Open { device, box_no } => t!(
                lang,
                "console-trail-open",
                device = device.as_str(),
                box_no = *box_no
            ),
            Deed::Ack { alarm } => t!(lang, "console-trail-ack", alarm = crate::app::short(alarm)),
            Deed::Deploy { id, act } => t!(
                lang,
                "console-trail-deploy",
                act = act.as_str(),
                deployment = crate::app::short(id)
            ),
        };
        let (outcome, colour) = match &e.outcome {
            Outcome::Pending(None) => ("…".to_owned(), Color::Yellow),
            Outcome::Pending(Some(s)) => (
                format!("{}…", crate::words::command_status(lang, s)),
                Color::Yellow,
            ),
            Outcome::Done(s, ms) => (
                format!(
                    "{}{}",
                    t!(lang, "console-trail-done", status = s.as_str()),
                    ms.map(|ms| t!(lang, "console-latency", ms = ms))
                        .unwrap_or_default()
                ),
                if matches!(
                    s.as_str(),
                    "opened" | "already_open" | "acknowledged" | "changed"
                ) {
                    Color::Green
                } else {
                    Color::Red
                },
            ),
            Outcome::Failed(why) => (
                t!(lang, "console-trail-failed", error = why.as_str()),
                Color::Red,
            ),
        };
        lines.push(Line::from(vec![
            Span::raw(format!(
                "{} ",
                super::widgets::clock(&app.time_zone, e.at, now_ms)
            ))
            .dim(),
            Span::raw(deed).bold(),
            Span::raw(format!(" · {} → ", e.why)),
            Span::styled(outcome, Style::new().fg(colour)),
        ]));
    }
    if lines.is_empty() {
        lines.push(Line::from(t!(lang, "console-trail-empty")).dim());
    }
    f.render_widget(Clear, popup);
    f.render_widget(
        Paragraph::new(lines).wrap(Wrap { trim: false }).block(
            Block::default()
                .borders(Borders::ALL)
                .title(t!(lang, "console-trail-title"))
                .title_bottom(Line::from(t!(lang, "console-trail-keys")).dim()),
        ),
        popup,
    );
}
