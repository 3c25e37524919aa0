//! The help overlay and the prompts (reason for a remote open, note on an alarm).

use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::style::Stylize;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Cell, Clear, Paragraph, Row, Table, Wrap};

use super::widgets::centered;
use crate::app::help;
use l10n::{Lang, t};

pub(super) fn draw_help(f: &mut Frame, area: Rect, lang: Lang) {
    let help = help(lang);
    let popup = centered(area, 76, help.len() as u16 + 2);
    let rows = help
        .into_iter()
        .map(|(k, what)| Row::new(vec![Cell::from(k).bold(), Cell::from(what)]));
    let table = Table::new(rows, [Constraint::Length(12), Constraint::Min(10)]).block(
        Block::default()
            .borders(Borders::ALL)
            .title(t!(lang, "console-help-title")),
    );
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
