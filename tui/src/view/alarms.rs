//! Screen 3, Alarms: open alarms by severity, with their evidence.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Stylize;
use ratatui::widgets::{Block, Borders, Cell, Paragraph, Row, Table, Wrap};

use super::widgets::{age, highlight, selected, severity_style, window};
use crate::app::{App, short};
use crate::words;
use l10n::t;

pub(super) fn draw_alarms(f: &mut Frame, area: Rect, app: &App, now_ms: i64) {
    let lang = app.lang;
    let alarms = app.alarms();
    let [list, detail] = Layout::vertical([Constraint::Min(3), Constraint::Length(3)]).areas(area);
    let (shown, sel) = window(app.sel_alarm, alarms.len(), list.height.saturating_sub(2));
    let rows = alarms[shown].iter().map(|a| {
        let state = match (a.state.as_str(), a.suppressed) {
            (_, true) => words::alarm_state(lang, "suppressed"),
            (s, _) => words::alarm_state(lang, s),
        };
        Row::new(vec![
            Cell::from(words::severity(lang, a.severity.as_str()))
                .style(severity_style(a.severity.as_str())),
            Cell::from(words::alarm_kind(lang, a.kind.as_str())),
            Cell::from(a.device_id.clone()),
            Cell::from(
                a.box_no
                    .map(|b| b.to_string())
                    .unwrap_or_else(|| "-".into()),
            ),
            Cell::from(state),
            Cell::from(a.count.to_string()),
            Cell::from(age(app.lang, now_ms - a.first_seen)),
        ])
    });
    let table = Table::new(
        rows,
        [
            Constraint::Length(8),
            Constraint::Length(20),
            Constraint::Min(12),
            Constraint::Length(4),
            Constraint::Length(7),
            Constraint::Length(5),
            Constraint::Length(7),
        ],
    )
    .header(
        Row::new([
            t!(lang, "console-col-severity"),
            t!(lang, "console-col-kind"),
            t!(lang, "console-col-device"),
            t!(lang, "console-col-box"),
            t!(lang, "console-col-state"),
            t!(lang, "console-col-count"),
            t!(lang, "console-col-age"),
        ])
        .bold(),
    )
    .row_highlight_style(highlight())
    .block(
        Block::default()
            .borders(Borders::TOP)
            .title(t!(lang, "console-alarms-title")),
    );
    if alarms.is_empty() {
        f.render_widget(
            Paragraph::new(t!(lang, "console-alarms-empty"))
                .block(Block::default().borders(Borders::TOP)),
            list,
        );
    } else {
        f.render_stateful_widget(table, list, &mut selected(sel));
    }
    if let Some(a) = alarms.get(app.sel_alarm) {
        let mut text = l10n::evidence(lang, a.evidence.as_deref().unwrap_or_default());
        if let Some(by) = &a.acked_by {
            text.push_str(&t!(
                lang,
                "console-alarm-acked-by",
                by = by.as_str(),
                note = a.ack_note.as_deref().unwrap_or("")
            ));
        }
        if a.escalated_at.is_some() {
            text.push_str(&t!(lang, "console-alarm-escalated"));
        }
        f.render_widget(
            Paragraph::new(text).wrap(Wrap { trim: true }).block(
                Block::default().borders(Borders::TOP).title(format!(
                    " {} · {} ",
                    short(&a.id),
                    a.site_id
                        .clone()
                        .unwrap_or_else(|| t!(lang, "console-alarm-no-site"))
                )),
            ),
            detail,
        );
    }
}
