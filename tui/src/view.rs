//! Drawing: every screen is a pure function of the [`App`] and the time, so screens are
//! snapshot-tested. States are told by letters and symbols first; colour only repeats them.

use ratatui::Frame;
use ratatui::layout::{Alignment, Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style, Stylize};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Cell, Clear, Paragraph, Row, Table, TableState, Wrap};

use crate::app::{App, Dialog, GRID_COLUMNS, HELP, Pane, Screen, WORK_TABS, short};
use api_types::{BoxStatus, ItemState};

use crate::model::{BoxView, Link, mask_case};

/// Draws the whole console for the time `now_ms` (local clock, epoch ms).
pub fn draw(f: &mut Frame, app: &App, now_ms: i64) {
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
    }
    draw_status(f, status, app);
    match &app.dialog {
        Some(Dialog::Help) => draw_help(f, body),
        Some(Dialog::Open {
            device,
            box_no,
            reason,
        }) => draw_prompt(
            f,
            body,
            &format!(" Remote open: {device} box {box_no} "),
            "The door unlocks at once. Why? (goes into the audit log)",
            "Reason",
            reason,
            "Enter open · Esc cancel",
        ),
        Some(Dialog::Ack { alarm_id, note }) => draw_prompt(
            f,
            body,
            &format!(" Acknowledge alarm {} ", short(alarm_id)),
            "It stays open until its condition ends. What are you doing about it?",
            "Note",
            note,
            "Enter acknowledge · Esc cancel",
        ),
        Some(Dialog::Filter) | None => {}
    }
}

/// "5 s", "3 min", "2 h", "4 d".
pub fn age(ms: i64) -> String {
    let s = (ms / 1000).max(0);
    match s {
        0..=59 => format!("{s} s"),
        60..=3_599 => format!("{} min", s / 60),
        3_600..=86_399 => format!("{} h", s / 3_600),
        _ => format!("{} d", s / 86_400),
    }
}

/// A text sparkline: one block per value, blank for zero (and below: counts are never
/// negative, but a bad answer must not panic the screen).
pub fn spark(values: &[i64]) -> String {
    const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    let max = values.iter().copied().max().unwrap_or(0).max(1);
    values
        .iter()
        .map(|&v| {
            if v <= 0 {
                ' '
            } else {
                BARS[(v * 7 / max).min(7) as usize]
            }
        })
        .collect()
}

fn draw_header(f: &mut Frame, area: Rect, app: &App, now_ms: i64) {
    let (mark, word, colour) = match &app.model.link {
        Link::Live => ("●", "live", Color::Green),
        Link::Connecting => ("○", "connecting", Color::Yellow),
        Link::Down(_) => ("✕", "down", Color::Red),
    };
    let data = match app.received_at {
        Some(t) => format!("data {} old", age(now_ms - t)),
        None => "no data yet".into(),
    };
    let who = match &app.model.me {
        Some((name, role)) => format!("{name} ({role})"),
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
    let open_alarms = app
        .model
        .alarms
        .iter()
        .filter(|a| a.state != "cleared")
        .count();
    let mut spans = Vec::new();
    for (i, s) in Screen::ALL.iter().enumerate() {
        let mut label = format!(" {} {} ", i + 1, s.title());
        if *s == Screen::Alarms && open_alarms > 0 {
            label = format!(" {} {} ({open_alarms}) ", i + 1, s.title());
        }
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
    let left = if matches!(app.dialog, Some(Dialog::Filter)) {
        format!("/{}▏ (Enter keeps, Esc clears)", app.filter)
    } else if !app.filter.is_empty() {
        format!("filter: {} (Esc clears) · {}", app.filter, app.status)
    } else {
        app.status.clone()
    };
    let [l, r] = Layout::horizontal([Constraint::Min(10), Constraint::Length(16)]).areas(area);
    f.render_widget(Paragraph::new(left), l);
    f.render_widget(
        Paragraph::new("? help · q quit")
            .alignment(Alignment::Right)
            .dim(),
        r,
    );
}

fn selected(n: usize) -> TableState {
    TableState::default().with_selected(Some(n))
}

/// The rows of a list that fit in `rows` lines with `sel` on screen (at the bottom once the
/// list scrolls), and `sel`'s index among them: only visible rows are built, so a list of
/// thousands costs what a screenful does.
fn window(sel: usize, len: usize, rows: u16) -> (std::ops::Range<usize>, usize) {
    let rows = usize::from(rows.max(1));
    let start = (sel + 1).saturating_sub(rows).min(len);
    (start..(start + rows).min(len), sel.saturating_sub(start))
}

fn highlight() -> Style {
    Style::new().add_modifier(Modifier::REVERSED)
}

fn draw_overview(f: &mut Frame, area: Rect, app: &App) {
    let sites = app.sites();
    // A narrow terminal shows the last 12 hours of use, a wide one all 24.
    let hours: usize = if area.width >= 110 { 24 } else { 12 };
    // Less the top border and the header row.
    let (shown, sel) = window(app.sel_site, sites.len(), area.height.saturating_sub(2));
    let rows = sites[shown].iter().map(|s| {
        let alarms = if s.alarms_open > 0 {
            Cell::from(format!("{}!", s.alarms_open)).red().bold()
        } else {
            Cell::from("0")
        };
        Row::new(vec![
            Cell::from(s.name.clone()),
            Cell::from(kind_short(s.kind.as_str())),
            Cell::from(format!("{}/{}", s.devices_online, s.devices)),
            Cell::from(s.free.to_string()),
            Cell::from(s.occupied.to_string()),
            Cell::from(s.reserved.to_string()),
            Cell::from(s.out_of_service.to_string()),
            Cell::from(s.faulty.to_string()),
            Cell::from(format!("{:>4.0}%", s.usage_today * 100.0)),
            Cell::from(spark(&s.uses_24h[s.uses_24h.len().saturating_sub(hours)..])).cyan(),
            alarms,
        ])
    });
    let table = Table::new(
        rows,
        [
            Constraint::Min(10),
            Constraint::Length(7),
            Constraint::Length(7),
            Constraint::Length(4),
            Constraint::Length(4),
            Constraint::Length(4),
            Constraint::Length(3),
            Constraint::Length(3),
            Constraint::Length(5),
            Constraint::Length(hours as u16),
            Constraint::Length(4),
        ],
    )
    .header(
        Row::new([
            "Site".to_owned(),
            "Kind".into(),
            "Online".into(),
            "Free".into(),
            "Occ".into(),
            "Res".into(),
            "OOS".into(),
            "Flt".into(),
            "Today".into(),
            format!("Uses/h {hours} h"),
            "Alm".into(),
        ])
        .bold(),
    )
    .column_spacing(1)
    .row_highlight_style(highlight())
    .block(
        Block::default()
            .borders(Borders::TOP)
            .title(" Sites · Enter: cabinets and boxes "),
    );
    if sites.is_empty() {
        f.render_widget(
            Paragraph::new("No sites yet: configure them with the API (POST /api/v1/sites).")
                .block(Block::default().borders(Borders::TOP)),
            area,
        );
        return;
    }
    f.render_stateful_widget(table, area, &mut selected(sel));
}

fn kind_short(kind: &str) -> &'static str {
    match kind {
        "service_hall" => "hall",
        "enterprise_cluster" => "cluster",
        "station" => "station",
        "community" => "commun.",
        _ => "?",
    }
}

fn draw_site(f: &mut Frame, area: Rect, app: &App, now_ms: i64) {
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
        Row::new(vec![format!("{mark} {}", c.id)])
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
        Some(c) => format!(" {} · boxes ", c.cabinet.id),
        None => " boxes ".into(),
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
        vec![Line::from("no boxes (a station device, or not loaded yet)").dim()]
    } else {
        lines
    };
    f.render_widget(Paragraph::new(body).block(block), grid);
    draw_box_detail(f, detail, app, now_ms);
}

/// One grid cell: `NN` box number, size, state letter, flags (`!` alarm, `D` door open,
/// `L` overdue), padded to 8 columns.
fn box_cell<'a>(app: &App, b: &BoxView, selected: bool) -> Span<'a> {
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

fn draw_box_detail(f: &mut Frame, area: Rect, app: &App, now_ms: i64) {
    let block = Block::default().borders(Borders::ALL).title(" box ");
    let mut lines: Vec<Line> = Vec::new();
    if let Some(w) = &app.watch {
        // The remote open in flight, live: each step as it happens, with the latency.
        let status = w
            .command
            .as_ref()
            .map_or("requesting", |c| c.status.as_str());
        let steps = ["queued", "sent", "delivered"];
        let mut spans = vec![Span::raw(format!("open {} box {}: ", w.device, w.box_no)).bold()];
        let rank = |s: &str| steps.iter().position(|x| *x == s);
        let reached = rank(status).map_or(steps.len(), |r| r + 1);
        for (i, s) in steps.iter().enumerate() {
            let style = if i < reached {
                Style::new()
            } else {
                Style::new().dim()
            };
            spans.push(Span::styled(format!("{s} → "), style));
        }
        let done = w.command.as_ref().is_some_and(|c| c.is_final());
        let last = if done { status } else { "…" };
        let colour = match last {
            "opened" | "already_open" => Color::Green,
            "…" => Color::Yellow,
            _ => Color::Red,
        };
        spans.push(Span::styled(
            last.to_owned(),
            Style::new().fg(colour).bold(),
        ));
        if let Some(l) = w.command.as_ref().and_then(|c| c.latency_ms) {
            spans.push(Span::raw(format!(" ({l} ms)")));
        }
        if let Some(e) = &w.error {
            spans.push(Span::raw(format!(" refused: {e}")).red());
        }
        lines.push(Line::from(spans));
    }
    if let Some(b) = app.boxes().get(app.sel_box) {
        let mut head = format!("box {} · size {} · {}", b.box_no, b.size, b.state);
        if b.accessible {
            head.push_str(" · accessible");
        }
        if let Some(open) = b.door_open {
            head.push_str(if open {
                " · door OPEN"
            } else {
                " · door shut"
            });
        }
        if let Some(note) = &b.service_note {
            head.push_str(&format!(" · {note}"));
        }
        lines.push(Line::from(head));
        if app.pane == Pane::Boxes {
            let hint = match app.may_open() {
                Some(false) => "remote open: not for this token's role (operators only)",
                _ => "o: remote open (reason required)",
            };
            lines.push(Line::from(hint).dim());
        }
        if let Some(i) = &b.item {
            let since = i.in_box_at.unwrap_or(i.created_at);
            lines.push(Line::from(format!(
                "item {} {} · case {} · {} · {} ago",
                short(&i.id),
                i.flow,
                mask_case(&i.case_number),
                i.state,
                age(now_ms - since)
            )));
        }
        for a in app.box_alarms(b.box_no) {
            lines.push(
                Line::from(format!(
                    "! {} {} ({}), {}",
                    a.severity,
                    a.kind,
                    a.state,
                    a.evidence.as_deref().unwrap_or("")
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
                    "{} ago {} by {}{}{}",
                    age(now_ms - e.ts),
                    e.action,
                    e.actor,
                    e.result
                        .as_deref()
                        .map(|r| format!(": {r}"))
                        .unwrap_or_default(),
                    e.latency_ms
                        .map(|l| format!(" ({l} ms)"))
                        .unwrap_or_default()
                ))
                .dim(),
            );
        }
    } else {
        lines.push(Line::from("Tab to the boxes, arrows to pick one, o to open it").dim());
    }
    f.render_widget(
        Paragraph::new(lines).block(block).wrap(Wrap { trim: true }),
        area,
    );
}

fn severity_style(s: &str) -> Style {
    match s {
        "critical" => Style::new().fg(Color::Red).bold(),
        "major" => Style::new().fg(Color::Red),
        "minor" => Style::new().fg(Color::Yellow),
        _ => Style::new().fg(Color::Gray),
    }
}

fn draw_alarms(f: &mut Frame, area: Rect, app: &App, now_ms: i64) {
    let alarms = app.alarms();
    let [list, detail] = Layout::vertical([Constraint::Min(3), Constraint::Length(3)]).areas(area);
    let (shown, sel) = window(app.sel_alarm, alarms.len(), list.height.saturating_sub(2));
    let rows = alarms[shown].iter().map(|a| {
        let state = match (a.state.as_str(), a.suppressed) {
            (_, true) => "suppr.".to_owned(),
            ("acknowledged", _) => "acked".to_owned(),
            (s, _) => s.to_owned(),
        };
        Row::new(vec![
            Cell::from(a.severity.clone()).style(severity_style(&a.severity)),
            Cell::from(a.kind.clone()),
            Cell::from(a.device_id.clone()),
            Cell::from(
                a.box_no
                    .map(|b| b.to_string())
                    .unwrap_or_else(|| "-".into()),
            ),
            Cell::from(state),
            Cell::from(a.count.to_string()),
            Cell::from(age(now_ms - a.first_seen)),
        ])
    });
    let table = Table::new(
        rows,
        [
            Constraint::Length(8),
            Constraint::Length(20),
            Constraint::Min(12),
            Constraint::Length(3),
            Constraint::Length(7),
            Constraint::Length(5),
            Constraint::Length(6),
        ],
    )
    .header(Row::new(["Severity", "Kind", "Device", "Box", "State", "Count", "Age"]).bold())
    .row_highlight_style(highlight())
    .block(
        Block::default()
            .borders(Borders::TOP)
            .title(" Open alarms · a: acknowledge · Enter: go to the box · /: filter "),
    );
    if alarms.is_empty() {
        f.render_widget(
            Paragraph::new("No open alarms.").block(Block::default().borders(Borders::TOP)),
            list,
        );
    } else {
        f.render_stateful_widget(table, list, &mut selected(sel));
    }
    if let Some(a) = alarms.get(app.sel_alarm) {
        let mut text = a.evidence.clone().unwrap_or_default();
        if let Some(by) = &a.acked_by {
            text.push_str(&format!(
                " · acknowledged by {by}: {}",
                a.ack_note.as_deref().unwrap_or("")
            ));
        }
        if a.escalated_at.is_some() {
            text.push_str(" · ESCALATED");
        }
        f.render_widget(
            Paragraph::new(text).wrap(Wrap { trim: true }).block(
                Block::default().borders(Borders::TOP).title(format!(
                    " {} · {} ",
                    short(&a.id),
                    a.site_id.as_deref().unwrap_or("no site")
                )),
            ),
            detail,
        );
    }
}

fn draw_work(f: &mut Frame, area: Rect, app: &App, now_ms: i64) {
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

fn draw_audit(f: &mut Frame, area: Rect, app: &App, now_ms: i64) {
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

/// One occupancy as a shade: `·` under 5%, `░` under 35%, `▒` under 60%, `▓` under 80%,
/// `█` at 80% and above (the saturation yardstick); colour repeats it.
pub fn shade(occupancy: f64) -> (char, Color) {
    match occupancy {
        x if x >= 0.8 => ('█', Color::Red),
        x if x >= 0.6 => ('▓', Color::Yellow),
        x if x >= 0.35 => ('▒', Color::Green),
        x if x >= 0.05 => ('░', Color::Green),
        _ => ('·', Color::DarkGray),
    }
}

/// 0..1 values as bars on an absolute scale (a full bar is 100%).
fn level_spark(values: &[f64]) -> String {
    const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    values
        .iter()
        .map(|v| BARS[((v.clamp(0.0, 1.0) * 7.0).round()) as usize])
        .collect()
}

fn pct(x: f64) -> String {
    format!("{:.0}%", x * 100.0)
}

fn draw_usage(f: &mut Frame, area: Rect, app: &App) {
    let Some(u) = &app.model.usage else {
        f.render_widget(
            Paragraph::new(" loading usage figures…").block(Block::default().borders(Borders::TOP)),
            area,
        );
        return;
    };
    let rows_all = app.usage_rows();
    // A narrow terminal shows the last 12 hours, a wide one all 24.
    let hours: usize = if area.width >= 110 { 24 } else { 12 };
    let (shown, sel) = window(app.sel_usage, rows_all.len(), area.height.saturating_sub(2));
    let rows = rows_all[shown].iter().map(|(s, h)| {
        let occ = h.map(|h| h.occupancy.as_slice()).unwrap_or(&[]);
        let tail = &occ[occ.len().saturating_sub(hours)..];
        let heat: Vec<Span> = tail
            .iter()
            .map(|x| {
                let (c, colour) = shade(*x);
                Span::styled(c.to_string(), Style::new().fg(colour))
            })
            .collect();
        let flag = if s.saturated {
            Cell::from("SATURATED").red().bold()
        } else {
            Cell::from("")
        };
        Row::new(vec![
            Cell::from(s.name.clone()),
            Cell::from(
                s.kind
                    .as_str()
                    .replace("enterprise_", "")
                    .replace("service_", ""),
            ),
            Cell::from(Line::from(heat)),
            Cell::from(level_spark(&s.daily)),
            Cell::from(pct(s.occupancy)),
            Cell::from(format!("{}/{}", s.days_above, u.saturation.window)),
            flag,
        ])
    });
    let title = format!(
        " Occupancy per hour, last {hours} h (·░▒▓█: <5/35/60/80%+) · 7 days · saturated: ≥{} on {} of {} days ",
        pct(u.saturation.rate),
        u.saturation.days,
        u.saturation.window
    );
    let table = Table::new(
        rows,
        [
            Constraint::Min(12),
            Constraint::Length(8),
            Constraint::Length(hours as u16),
            Constraint::Length(7),
            Constraint::Length(5),
            Constraint::Length(5),
            Constraint::Length(9),
        ],
    )
    .header(Row::new(["Site", "Kind", "Hours", "7 days", "Avg", "≥rate", ""]).bold())
    .row_highlight_style(highlight())
    .block(Block::default().borders(Borders::TOP).title(title));
    f.render_stateful_widget(table, area, &mut selected(sel));
}

fn draw_planning(f: &mut Frame, area: Rect, app: &App) {
    let plan = match &app.model.plan {
        None => {
            f.render_widget(
                Paragraph::new(" computing the plan…")
                    .block(Block::default().borders(Borders::TOP)),
                area,
            );
            return;
        }
        Some(Err(e)) => {
            f.render_widget(
                Paragraph::new(format!(" No plan: {e}"))
                    .wrap(Wrap { trim: true })
                    .block(Block::default().borders(Borders::TOP).title(" Planning ")),
                area,
            );
            return;
        }
        Some(Ok(p)) => p,
    };
    let recs = plan.recommendations.len() as u16;
    let exps = plan.expansions.len().min(4) as u16;
    let [summary, recs_area, exp_area, clusters_area] = Layout::vertical([
        Constraint::Length(4),
        Constraint::Length(recs.max(1) + 2),
        Constraint::Length(if exps > 0 { exps + 1 } else { 0 }),
        Constraint::Min(3),
    ])
    .areas(area);
    let text = vec![
        Line::from(format!(
            " Enterprises within {:.0} m of a locker: {} of {} ({}) now → {} ({}) with {} new site(s).",
            plan.params.radius_m,
            plan.covered_before,
            plan.enterprises,
            pct(plan.share_before),
            plan.covered_after,
            pct(plan.share_after),
            plan.recommendations.len()
        )),
        Line::from(format!(
            " Boxes sized for {} overflow at the busiest hour (Erlang loss).",
            pct(plan.params.overflow)
        )),
    ];
    f.render_widget(
        Paragraph::new(text).wrap(Wrap { trim: false }).block(
            Block::default()
                .borders(Borders::TOP)
                .title(" Where the next clusters go "),
        ),
        summary,
    );
    let rows = plan.recommendations.iter().map(|r| {
        Row::new(vec![
            Cell::from(r.rank.to_string()),
            Cell::from(if r.name.is_empty() {
                r.candidate_id.clone()
            } else {
                r.name.clone()
            }),
            Cell::from(r.enterprises_covered.to_string()),
            Cell::from(format!("{:.0}", r.cases_covered)),
            Cell::from(format!("{}/{}/{}", r.boxes.s, r.boxes.m, r.boxes.l)),
            Cell::from(format!(
                "{}{}",
                r.boxes.total,
                if r.capped { "*" } else { "" }
            )),
            Cell::from(pct(r.expected_usage)),
            Cell::from(format!("{:.1}%", r.overflow_probability * 100.0)),
        ])
    });
    let table = Table::new(
        rows,
        [
            Constraint::Length(4),
            Constraint::Min(14),
            Constraint::Length(11),
            Constraint::Length(9),
            Constraint::Length(9),
            Constraint::Length(6),
            Constraint::Length(6),
            Constraint::Length(8),
        ],
    )
    .header(
        Row::new([
            "Rank",
            "Site",
            "Enterprises",
            "Cases/mo",
            "S/M/L",
            "Boxes",
            "Usage",
            "Overflow",
        ])
        .bold(),
    );
    f.render_widget(table, recs_area);
    if exps > 0 {
        let mut lines = vec![Line::from(" Sites in service that need more boxes:").bold()];
        for e in plan.expansions.iter().take(usize::from(exps)) {
            lines.push(Line::from(format!(
                "   {}: {} boxes → {} (+{})",
                if e.name.is_empty() {
                    &e.site_id
                } else {
                    &e.name
                },
                e.boxes,
                e.boxes_needed,
                e.add
            )));
        }
        f.render_widget(Paragraph::new(lines), exp_area);
    }
    let target = pct(plan.params.coverage_target);
    let rows = plan
        .clusters
        .iter()
        .filter(|c| c.demand_points >= 3)
        .map(|c| {
            let meets = if c.meets_target {
                Cell::from("yes").green()
            } else {
                Cell::from("NO").red().bold()
            };
            Row::new(vec![
                Cell::from(c.cluster.clone()),
                Cell::from(c.enterprises.to_string()),
                Cell::from(pct(c.share_before)),
                Cell::from(pct(c.share_after)),
                meets,
            ])
        });
    let table = Table::new(
        rows,
        [
            Constraint::Min(14),
            Constraint::Length(11),
            Constraint::Length(7),
            Constraint::Length(7),
            Constraint::Length(8),
        ],
    )
    .header(
        Row::new(vec![
            "Cluster".to_owned(),
            "Enterprises".to_owned(),
            "Before".to_owned(),
            "After".to_owned(),
            format!("≥{target}"),
        ])
        .bold(),
    )
    .block(Block::default().borders(Borders::TOP).title(format!(
        " Coverage per cluster (goal: {target} of its enterprises within walking distance) "
    )));
    f.render_widget(table, clusters_area);
}

fn centered(area: Rect, width: u16, height: u16) -> Rect {
    let w = width.min(area.width);
    let h = height.min(area.height);
    Rect {
        x: area.x + (area.width - w) / 2,
        y: area.y + (area.height - h) / 2,
        width: w,
        height: h,
    }
}

fn draw_help(f: &mut Frame, area: Rect) {
    let popup = centered(area, 76, HELP.len() as u16 + 2);
    let rows = HELP
        .iter()
        .map(|(k, what)| Row::new(vec![Cell::from(*k).bold(), Cell::from(*what)]));
    let table = Table::new(rows, [Constraint::Length(11), Constraint::Min(10)])
        .block(Block::default().borders(Borders::ALL).title(" Keys "));
    f.render_widget(Clear, popup);
    f.render_widget(table, popup);
}

fn draw_prompt(
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_and_sparklines_read_at_a_glance() {
        assert_eq!(age(59_999), "59 s");
        assert_eq!(age(60_000), "1 min");
        assert_eq!(age(7_200_000), "2 h");
        assert_eq!(age(-5), "0 s");
        assert_eq!(spark(&[0, 1, 4, 8]), " ▁▄█");
        assert_eq!(spark(&[]), "");
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
