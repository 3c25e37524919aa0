//! Screen 2, Site: the cabinets of a site, the grid of a cabinet's boxes, and the selected
//! box in detail.

use api_types::{BoxStatus, ItemState};
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style, Stylize};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph, Row, Table, Wrap};

use super::widgets::{age, ellipsize, highlight, selected, window};
use crate::app::{App, GRID_COLUMNS, Pane, short};
use crate::model::{BoxView, mask_case};
use crate::words;
use l10n::t;

pub(super) fn draw_site(f: &mut Frame, area: Rect, app: &App, now_ms: i64) {
    let lang = app.lang;
    let [list, right] =
        Layout::horizontal([Constraint::Length(24), Constraint::Min(20)]).areas(area);
    let site = app.site.as_deref().unwrap_or("?");
    let focus = |p: Pane| {
        if app.pane == p {
            Style::new().bold()
        } else {
            Style::new().dim()
        }
    };
    let (shown, sel) = window(
        app.sel_cabinet,
        app.model.cabinets.len(),
        list.height.saturating_sub(2),
    );
    let rows = app.model.cabinets[shown].iter().map(|c| {
        let mark = if c.online { "●" } else { "✕" };
        Row::new(vec![ellipsize(
            &format!("{mark} {}", c.id),
            usize::from(list.width.saturating_sub(2)),
        )])
    });
    let table = Table::new(rows, [Constraint::Min(10)])
        .row_highlight_style(highlight())
        .block(
            Block::default()
                .borders(Borders::ALL)
                .title(format!(" {site} "))
                .border_style(focus(Pane::Cabinets)),
        );
    f.render_stateful_widget(table, list, &mut selected(sel));

    // The grid takes the rows it needs; the box detail gets the rest.
    let grid_rows = app.boxes().len().div_ceil(GRID_COLUMNS).max(1) as u16;
    let [grid, detail] =
        Layout::vertical([Constraint::Max(grid_rows + 2), Constraint::Min(7)]).areas(right);
    let title = match &app.model.cabinet {
        Some(c) => t!(
            lang,
            "console-site-boxes-of",
            cabinet = c.cabinet.id.as_str()
        ),
        None => t!(lang, "console-site-boxes"),
    };
    let block = Block::default()
        .borders(Borders::ALL)
        .title(title)
        .border_style(focus(Pane::Boxes));
    let boxes = app.boxes();
    let lines: Vec<Line> = boxes
        .chunks(GRID_COLUMNS)
        .enumerate()
        .map(|(row, chunk)| {
            let spans: Vec<Span> = chunk
                .iter()
                .enumerate()
                .map(|(col, b)| {
                    let i = row * GRID_COLUMNS + col;
                    box_cell(app, b, app.pane == Pane::Boxes && i == app.sel_box)
                })
                .collect();
            Line::from(spans)
        })
        .collect();
    let body = if boxes.is_empty() {
        vec![Line::from(t!(lang, "console-site-no-boxes")).dim()]
    } else {
        lines
    };
    f.render_widget(Paragraph::new(body).block(block), grid);
    draw_box_detail(f, detail, app, now_ms);
}

/// One grid cell: `NN` box number, size, state letter, flags (`!` alarm, `D` door open,
/// `L` overdue), padded to 8 columns.
pub(super) fn box_cell<'a>(app: &App, b: &BoxView, selected: bool) -> Span<'a> {
    let (letter, colour) = match b.state {
        BoxStatus::Free => ('F', Color::Green),
        BoxStatus::Reserved => ('R', Color::Yellow),
        BoxStatus::Occupied => ('O', Color::Cyan),
        BoxStatus::OutOfService => ('X', Color::DarkGray),
    };
    let size = b.size.as_str().chars().next().unwrap_or('?');
    let mut flags = String::new();
    let alarmed = !app.box_alarms(b.box_no).is_empty();
    if alarmed {
        flags.push('!');
    }
    if b.door_open == Some(true) {
        flags.push('D');
    }
    if b.item
        .as_ref()
        .is_some_and(|i| i.state == ItemState::Overdue || i.late_deposit)
    {
        flags.push('L');
    }
    let text = format!("{:>2}{size}{letter}{flags:<3} ", b.box_no);
    let mut style = Style::new().fg(if alarmed { Color::Red } else { colour });
    if selected {
        style = style.add_modifier(Modifier::REVERSED | Modifier::BOLD);
    }
    Span::styled(text, style)
}

pub(super) fn draw_box_detail(f: &mut Frame, area: Rect, app: &App, now_ms: i64) {
    let lang = app.lang;
    let block = Block::default()
        .borders(Borders::ALL)
        .title(t!(lang, "console-box-title"));
    let mut lines: Vec<Line> = Vec::new();
    if let Some(w) = &app.watch {
        // The remote open in flight, live: each step as it happens, with the latency.
        let status = w
            .command
            .as_ref()
            .map_or("requesting", |c| c.status.as_str());
        let steps = ["queued", "sent", "delivered"];
        let mut spans = vec![
            Span::raw(t!(
                lang,
                "console-box-watch",
                device = w.device.as_str(),
                box_no = w.box_no
            ))
            .bold(),
        ];
        let rank = |s: &str| steps.iter().position(|x| *x == s);
        let reached = rank(status).map_or(steps.len(), |r| r + 1);
        for (i, s) in steps.iter().enumerate() {
            let style = if i < reached {
                Style::new()
            } else {
                Style::new().dim()
            };
            spans.push(Span::styled(
                format!("{} → ", words::command_status(lang, s)),
                style,
            ));
        }
        let done = w.command.as_ref().is_some_and(|c| c.is_final());
        let last = if done { status } else { "…" };
        let colour = match last {
            "opened" | "already_open" => Color::Green,
            "…" => Color::Yellow,
            _ => Color::Red,
        };
        let last = if last == "…" {
            last.to_owned()
        } else {
            words::command_status(lang, last)
        };
        spans.push(Span::styled(last, Style::new().fg(colour).bold()));
        if let Some(l) = w.command.as_ref().and_then(|c| c.latency_ms) {
            spans.push(Span::raw(t!(lang, "console-latency", ms = l)));
        }
        if let Some(e) = &w.error {
            spans.push(Span::raw(t!(lang, "console-box-refused", error = e.as_str())).red());
        }
        lines.push(Line::from(spans));
    }
    if let Some(b) = app.boxes().get(app.sel_box) {
        let mut head = t!(
            lang,
            "console-box-head",
            box_no = b.box_no,
            size = b.size.as_str(),
            state = words::box_state(lang, b.state.as_str())
        );
        if b.accessible {
            head.push_str(&t!(lang, "console-box-accessible"));
        }
        if let Some(open) = b.door_open {
            head.push_str(&if open {
                t!(lang, "console-box-door-open")
            } else {
                t!(lang, "console-box-door-shut")
            });
        }
        if let Some(note) = &b.service_note {
            head.push_str(&format!(" · {note}"));
        }
        lines.push(Line::from(head));
        if app.pane == Pane::Boxes {
            let hint = match app.may_open() {
                Some(false) => t!(lang, "console-box-hint-viewer"),
                _ => t!(lang, "console-box-hint-open"),
            };
            lines.push(Line::from(hint).dim());
        }
        if let Some(i) = &b.item {
            let since = i.in_box_at.unwrap_or(i.created_at);
            lines.push(Line::from(t!(
                lang,
                "console-box-item",
                item = short(&i.id),
                flow = words::flow(lang, i.flow.as_str()),
                case = mask_case(&i.case_number),
                state = words::item_state(lang, i.state.as_str()),
                age = age(lang, now_ms - since)
            )));
        }
        for a in app.box_alarms(b.box_no) {
            lines.push(
                Line::from(format!(
                    "! {} {} ({}), {}",
                    words::severity(lang, a.severity.as_str()),
                    words::alarm_kind(lang, a.kind.as_str()),
                    words::alarm_state(lang, a.state.as_str()),
                    l10n::evidence(lang, a.evidence.as_deref().unwrap_or(""))
                ))
                .red(),
            );
        }
        for e in app
            .cabinet_audit
            .iter()
            .filter(|e| e.box_no == Some(b.box_no))
            .take(3)
        {
            lines.push(
                Line::from(format!(
                    "{}{}{}",
                    t!(
                        lang,
                        "console-box-audit",
                        age = age(lang, now_ms - e.ts),
                        action = e.action.as_str(),
                        actor = e.actor.as_str()
                    ),
                    e.result
                        .as_deref()
                        .map(|r| format!(": {}", words::command_status(lang, r)))
                        .unwrap_or_default(),
                    e.latency_ms
                        .map(|l| t!(lang, "console-latency", ms = l))
                        .unwrap_or_default()
                ))
                .dim(),
            );
        }
    } else {
        lines.push(Line::from(t!(lang, "console-box-none")).dim());
    }
    f.render_widget(
        Paragraph::new(lines).block(block).wrap(Wrap { trim: true }),
        area,
    );
}
