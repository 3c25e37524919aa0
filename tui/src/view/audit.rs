//! Screen 5, Audit: the newest entries of the audit log.

use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::style::Stylize;
use ratatui::widgets::{Block, Borders, Cell, Row, Table};

use super::widgets::{clock, highlight, selected, window};
use crate::app::App;
use l10n::t;

pub(super) fn draw_audit(f: &mut Frame, area: Rect, app: &App, now_ms: i64) {
    let lang = app.lang;
    let audit = &app.model.audit;
    let (shown, sel) = window(app.sel_audit, audit.len(), area.height.saturating_sub(2));
    let rows = audit[shown].iter().map(|e| {
        Row::new(vec![
            Cell::from(clock(&app.time_zone, e.ts, now_ms)),
            Cell::from(e.actor.clone()),
            Cell::from(e.action.clone()),
            Cell::from(format!(
                "{}{}",
                e.device_id.as_deref().unwrap_or("-"),
                e.box_no.map(|b| format!(" #{b}")).unwrap_or_default()
            )),
            Cell::from(e.reason.clone().unwrap_or_default()),
            Cell::from(format!(
                "{}{}",
                e.result
                    .as_deref()
                    .map(|r| crate::words::command_status(lang, r))
                    .unwrap_or_default(),
                e.latency_ms
                    .map(|l| t!(lang, "console-latency", ms = l))
                    .unwrap_or_default()
            )),
        ])
    });
    let table = Table::new(
        rows,
        [
            Constraint::Length(11),
            Constraint::Length(14),
            Constraint::Length(13),
            Constraint::Length(18),
            Constraint::Min(10),
            Constraint::Length(14),
        ],
    )
    .header(
        Row::new([
            t!(lang, "console-col-time"),
            t!(lang, "console-col-who"),
            t!(lang, "console-col-what"),
            t!(lang, "console-col-where"),
            t!(lang, "console-col-why"),
            t!(lang, "console-col-outcome"),
        ])
        .bold(),
    )
    .row_highlight_style(highlight())
    .block(
        Block::default()
            .borders(Borders::TOP)
            .title(t!(lang, "console-audit-title")),
    );
    f.render_stateful_widget(table, area, &mut selected(sel));
}
