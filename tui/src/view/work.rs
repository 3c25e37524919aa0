//! Screen 4, Work lists: what helpers collect, deposit and retrieve.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Style, Stylize};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Cell, Paragraph, Row, Table};

use super::widgets::{age, highlight, selected, window};
use crate::app::{App, WORK_TABS};
use crate::model::mask_case;
use crate::words;
use l10n::t;

pub(super) fn draw_work(f: &mut Frame, area: Rect, app: &App, now_ms: i64) {
    let lang = app.lang;
    let [tabs, list] = Layout::vertical([Constraint::Length(1), Constraint::Min(2)]).areas(area);
    let w = &app.model.worklists;
    let counts = [w.collect.len(), w.deposit.len(), w.overdue.len()];
    let spans: Vec<Span> = WORK_TABS
        .iter()
        .zip(counts)
        .enumerate()
        .map(|(i, (t, n))| {
            let s = format!(" {} ({n}) ", t!(lang, "console-work-tab", tab = *t));
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
            (_, true) => t!(lang, "console-work-late"),
            (Some(d), _) if d > now_ms => t!(lang, "console-in", age = age(lang, d - now_ms)),
            (Some(d), _) => t!(lang, "console-ago", age = age(lang, now_ms - d)),
            (None, _) => String::new(),
        };
        Row::new(vec![
            Cell::from(i.device_id.clone()),
            Cell::from(i.box_no.to_string()),
            Cell::from(words::flow(lang, i.flow.as_str())),
            Cell::from(mask_case(&i.case_number)),
            Cell::from(words::item_state(lang, i.state.as_str())),
            Cell::from(age(app.lang, now_ms - i.in_box_at.unwrap_or(i.created_at))),
            Cell::from(due),
        ])
    });
    let table = Table::new(
        rows,
        [
            Constraint::Min(12),
            Constraint::Length(4),
            Constraint::Length(10),
            Constraint::Length(14),
            Constraint::Length(16),
            Constraint::Length(6),
            Constraint::Length(10),
        ],
    )
    .header(
        Row::new([
            t!(lang, "console-col-device"),
            t!(lang, "console-col-box"),
            t!(lang, "console-col-flow"),
            t!(lang, "console-col-case"),
            t!(lang, "console-col-state"),
            t!(lang, "console-col-age"),
            t!(lang, "console-col-due"),
        ])
        .bold(),
    )
    .row_highlight_style(highlight())
    .block(
        Block::default()
            .borders(Borders::TOP)
            .title(t!(lang, "console-work-title")),
    );
    f.render_stateful_widget(table, list, &mut selected(sel));
}
