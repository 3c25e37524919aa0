//! The help overlay and the prompts (reason for a remote open, note on an alarm).

use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::style::Stylize;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Cell, Clear, Paragraph, Row, Table, Wrap};

use super::widgets::centered;
use crate::app::HELP;

pub(super) fn draw_help(f: &mut Frame, area: Rect) {
    let popup = centered(area, 76, HELP.len() as u16 + 2);
    let rows = HELP
        .iter()
        .map(|(k, what)| Row::new(vec![Cell::from(*k).bold(), Cell::from(*what)]));
    let table = Table::new(rows, [Constraint::Length(11), Constraint::Min(10)])
        .block(Block::default().borders(Borders::ALL).title(" Keys "));
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
