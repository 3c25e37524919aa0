//! Screen 5, Audit: the newest entries of the audit log.

use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::style::Stylize;
use ratatui::widgets::{Block, Borders, Cell, Row, Table};

use super::widgets::{age, highlight, selected, window};
use crate::app::App;

pub(super) fn draw_audit(f: &mut Frame, area: Rect, app: &App, now_ms: i64) {
    let audit = &app.model.audit;
    let (shown, sel) = window(app.sel_audit, audit.len(), area.height.saturating_sub(2));
    let rows = audit[shown].iter().map(|e| {
        Row::new(vec![
            Cell::from(age(now_ms - e.ts)),
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
                e.result.clone().unwrap_or_default(),
                e.latency_ms.map(|l| format!(" {l}ms")).unwrap_or_default()
            )),
        ])
    });
    let table = Table::new(
        rows,
        [
            Constraint::Length(6),
            Constraint::Length(14),
            Constraint::Length(13),
            Constraint::Length(18),
            Constraint::Min(10),
            Constraint::Length(14),
        ],
    )
    .header(Row::new(["Age", "Who", "What", "Where", "Why", "Outcome"]).bold())
    .row_highlight_style(highlight())
    .block(
        Block::default()
            .borders(Borders::TOP)
            .title(" Who opened what, when, why, and the outcome "),
    );
    f.render_stateful_widget(table, area, &mut selected(sel));
}
