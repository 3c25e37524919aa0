//! Screen 8, Fleet: agent rollouts (each deployment's waves, progress and failures) and the
//! devices whose configuration is not the desired one.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Style, Stylize};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Cell, Paragraph, Row, Table, Wrap};

use super::widgets::{age, ellipsize, highlight, selected, window};
use crate::app::{App, short};
use crate::model::{Deployment, DeploymentState, DeviceRollout, Fleet};

/// A state told by a symbol first; colour repeats it.
fn mark(state: DeploymentState) -> (&'static str, Color) {
    match state {
        DeploymentState::Running => ("▶", Color::Green),
        DeploymentState::Paused => ("‖", Color::Yellow),
        DeploymentState::Halted => ("✕", Color::Red),
        DeploymentState::Completed => ("✓", Color::Green),
        DeploymentState::Cancelled => ("–", Color::DarkGray),
    }
}

/// `[████░░░░░░]`: the share of a wave that is done (succeeded, failed or back).
fn bar(done: u32, of: u32, width: usize) -> String {
    let filled = if of == 0 {
        0
    } else {
        (done as usize * width).div_ceil(of as usize).min(width)
    };
    format!("[{}{}]", "█".repeat(filled), "░".repeat(width - filled))
}

pub(super) fn draw_fleet(f: &mut Frame, area: Rect, app: &App, now_ms: i64) {
    let fleet = match &app.model.fleet {
        None => {
            f.render_widget(
                Paragraph::new("loading rollouts and configuration…").dim(),
                area,
            );
            return;
        }
        Some(Err(e)) => {
            f.render_widget(
                Paragraph::new(format!("cannot show the fleet: {e}")).red(),
                area,
            );
            return;
        }
        Some(Ok(fleet)) => fleet,
    };
    let drift_rows = fleet.drift.len().clamp(1, 6) as u16;
    let [top, bottom] =
        Layout::vertical([Constraint::Min(8), Constraint::Length(drift_rows + 2)]).areas(area);
    let [list, detail] =
        Layout::horizontal([Constraint::Length(26), Constraint::Min(30)]).areas(top);
    draw_list(f, list, app, fleet);
    draw_detail(f, detail, app, fleet, now_ms);
    draw_drift(f, bottom, fleet);
}

fn draw_list(f: &mut Frame, area: Rect, app: &App, fleet: &Fleet) {
    let (shown, sel) = window(
        app.sel_deployment,
        fleet.deployments.len(),
        area.height.saturating_sub(2),
    );
    let rows = fleet.deployments[shown].iter().map(|d| {
        let (m, colour) = mark(d.state);
        let waves = d.waves.len().max(1);
        Row::new(vec![
            Cell::from(Span::styled(m, Style::new().fg(colour))),
            Cell::from(format!(
                "{} {}",
                d.version,
                if d.rollback { "↩" } else { "" }
            )),
            Cell::from(format!("{} {}/{waves}", d.state, d.wave.min(waves as u32))),
        ])
    });
    let table = Table::new(
        rows,
        [
            Constraint::Length(1),
            Constraint::Length(8),
            Constraint::Min(10),
        ],
    )
    .row_highlight_style(highlight())
    .block(Block::default().borders(Borders::ALL).title(" rollouts "));
    if fleet.deployments.is_empty() {
        f.render_widget(
            Paragraph::new("no deployments yet (POST /api/v1/deployments)")
                .dim()
                .block(Block::default().borders(Borders::ALL).title(" rollouts ")),
            area,
        );
    } else {
        f.render_stateful_widget(table, area, &mut selected(sel));
    }
}

fn head(d: &Deployment, now_ms: i64) -> Vec<Line<'static>> {
    let (m, colour) = mark(d.state);
    let mut lines = vec![Line::from(vec![
        Span::styled(format!("{m} {}", d.state), Style::new().fg(colour).bold()),
        Span::raw(format!(
            " · wave {}/{} · {}, {} ago",
            d.wave.min(d.waves.len() as u32),
            d.waves.len(),
            d.created_by,
            age(now_ms - d.created_at)
        )),
    ])];
    if let Some(r) = &d.reason {
        lines.push(Line::from(r.clone()).fg(colour));
    }
    let mut terms = vec![format!("pass {}%", d.success_percent)];
    terms.push(format!("halt above {}% failed", d.max_failures_percent));
    if d.soak_secs > 0 {
        terms.push(format!("soak {}", age(d.soak_secs as i64 * 1000)));
    }
    if let Some(w) = &d.window {
        terms.push(format!("window {}–{}", w.from, w.to));
    }
    if d.manual {
        terms.push("manual waves".into());
    }
    lines.push(Line::from(terms.join(" · ")).dim());
    lines
}

fn draw_detail(f: &mut Frame, area: Rect, app: &App, fleet: &Fleet, now_ms: i64) {
    let Some(detail) = &fleet.detail else {
        f.render_widget(
            Block::default().borders(Borders::ALL).title(" deployment "),
            area,
        );
        return;
    };
    let d = &detail.deployment;
    let mut lines = head(d, now_ms);
    for w in &d.waves {
        let done = w.succeeded + w.failed + w.rolled_back;
        let mut text = format!(
            "wave {} {} {}/{} ok",
            w.wave,
            bar(done, w.devices, 8),
            w.succeeded,
            w.devices
        );
        if w.in_progress > 0 {
            text.push_str(&format!(", {} going", w.in_progress));
        }
        if w.pending > 0 {
            text.push_str(&format!(", {} waiting", w.pending));
        }
        let style = if w.failed + w.rolled_back > 0 {
            text.push_str(&format!(", {} failed, {} back", w.failed, w.rolled_back));
            Style::new().fg(Color::Red)
        } else {
            Style::new()
        };
        lines.push(Line::styled(text, style));
    }
    let failures: Vec<_> = detail
        .devices
        .iter()
        .filter(|x| {
            matches!(
                x.state,
                DeviceRollout::Failed | DeviceRollout::RolledBack | DeviceRollout::RollingBack
            )
        })
        .collect();
    if !failures.is_empty() {
        let n = failures.len();
        let devices = if n == 1 { "device" } else { "devices" };
        lines.push(Line::from(format!("{n} {devices} failed or went back:")).bold());
        for x in failures {
            lines.push(
                Line::from(format!(
                    "  {} {}: {}",
                    x.device_id,
                    x.state,
                    x.reason.as_deref().unwrap_or("no reason given")
                ))
                .red(),
            );
        }
    }
    let hint = match app.may_deploy() {
        Some(false) => "pause, resume and cancel: admin only",
        _ => "p pause/resume · x cancel · ↑↓ another rollout",
    };
    lines.push(Line::from(hint).dim());
    let title = format!(
        " {} · {} {}{} ",
        short(&d.id),
        d.target,
        d.version,
        if d.rollback { " (rollback)" } else { "" }
    );
    f.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .block(Block::default().borders(Borders::ALL).title(title)),
        area,
    );
}

fn draw_drift(f: &mut Frame, area: Rect, fleet: &Fleet) {
    let title = format!(" configuration drift: {} devices ", fleet.drift.len());
    let block = Block::default().borders(Borders::ALL).title(title);
    if fleet.drift.is_empty() {
        f.render_widget(
            Paragraph::new("every device runs its desired configuration")
                .dim()
                .block(block),
            area,
        );
        return;
    }
    let rows = fleet.drift.iter().map(|d| {
        let (m, state) = match &d.applied {
            Some(a) if a.state == "applied" => ("·", format!("runs {}", short(&a.version))),
            Some(a) => (
                "!",
                format!(
                    "{} {}{}",
                    a.state,
                    short(&a.version),
                    a.reason
                        .as_deref()
                        .map(|r| format!(": {r}"))
                        .unwrap_or_default()
                ),
            ),
            None => ("·", "has not reported".into()),
        };
        Row::new(vec![
            ellipsize(
                &format!("{} {}", if d.online { "●" } else { "✕" }, d.device_id),
                18,
            ),
            format!("wants {}", short(&d.desired.version)),
            format!("{m} {state}"),
        ])
    });
    let table = Table::new(
        rows,
        [
            Constraint::Length(18),
            Constraint::Length(15),
            Constraint::Min(10),
        ],
    )
    .block(block);
    f.render_widget(table, area);
}
