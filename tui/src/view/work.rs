//! Screen 4, Work lists: what helpers collect, deposit and retrieve.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Style, Stylize};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Cell, Paragraph, Row, Table};

use super::widgets::{age, highlight, selected, window};
use crate::app::{App, WORK_TABS};
use crate::model::mask_case;

pub(super) fn draw_work(f: &mut Frame, area: Rect, app: &App, now_ms: i64) {
    let [tabs, list] = Layout::vertical([Constraint::Length(1), Constraint::Min(2)]).areas(area);
    let w = &app.model.worklists;
    let counts = [w.collect.len(), w.deposit.len(), w.overdue.len()];
    let spans: Vec<Span> = WORK_TABS
        .iter()
        .zip(counts)
        .enumerate()
        .map(|(i, (t, n))| {
            let s = format!(" {t} ({n}) ");
            if i == app.work_tab {
                Span::styled(s, Style::new().reversed().bold())
            } else {
                Span::raw(s)
            }
        })
        .collect();
    f.render_widget(Paragraph::new(Line::from(spans)), tabs);
    let items = app.work_items();
    let (shown, sel) = window(app.sel_work, items.len(), list.height.saturating_sub(2));
    let rows = items[shown].iter().map(|i| {
        let due = match (i.due_by, i.late_deposit) {
            (_, true) => "LATE".to_owned(),
            (Some(d), _) if d > now_ms => format!("in {}", age(d - now_ms)),
            (Some(d), _) => format!("{} ago", age(now_ms - d)),
            (None, _) => String::new(),
        };
        Row::new(vec![
            Cell::from(i.device_id.clone()),
            Cell::from(i.box_no.to_string()),
            Cell::from(i.flow.as_str()),
            Cell::from(mask_case(&i.case_number)),
            Cell::from(i.state.as_str()),
            Cell::from(age(now_ms - i.in_box_at.unwrap_or(i.created_at))),
            Cell::from(due),
        ])
    });
    let table = Table::new(
        rows,
        [
            Constraint::Min(12),
            Constraint::Length(3),
            Constraint::Length(10),
            Constraint::Length(14),
            Constraint::Length(16),
            Constraint::Length(6),
            Constraint::Length(10),
        ],
    )
    .header(Row::new(["Device", "Box", "Flow", "Case", "State", "Age", "Due"]).bold())
    .row_highlight_style(highlight())
    .block(
        Block::default()
            .borders(Borders::TOP)
            .title(" ← → switch list "),
    );
    f.render_stateful_widget(table, list, &mut selected(sel));
}
