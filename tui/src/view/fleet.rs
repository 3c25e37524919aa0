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
use crate::words;
use l10n::{Lang, t};

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
    let lang = app.lang;
    let fleet = match &app.model.fleet {
        None => {
            f.render_widget(
                Paragraph::new(t!(lang, "console-fleet-loading")).dim(),
                area,
            );
            return;
        }
        Some(Err(e)) => {
            f.render_widget(
                Paragraph::new(t!(lang, "console-fleet-error", error = e.as_str())).red(),
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
    draw_drift(f, bottom, fleet, lang);
}

fn draw_list(f: &mut Frame, area: Rect, app: &App, fleet: &Fleet) {
    let lang = app.lang;
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
            Cell::from(format!(
                "{} {}/{waves}",
                words::deployment_state(lang, d.state.as_str()),
                d.wave.min(waves as u32)
            )),
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
    .block(
        Block::default()
            .borders(Borders::ALL)
            .title(t!(lang, "console-fleet-list")),
    );
    if fleet.deployments.is_empty() {
        f.render_widget(
            Paragraph::new(t!(lang, "console-fleet-none")).dim().block(
                Block::default()
                    .borders(Borders::ALL)
                    .title(t!(lang, "console-fleet-list")),
            ),
            area,
        );
    } else {
        f.render_stateful_widget(table, area, &mut selected(sel));
    }
}

fn head(d: &Deployment, lang: Lang, now_ms: i64) -> Vec<Line<'static>> {
    let (m, colour) = mark(d.state);
    let mut lines = vec![Line::from(vec![
        Span::styled(
            format!("{m} {}", words::deployment_state(lang, d.state.as_str())),
            Style::new().fg(colour).bold(),
        ),
        Span::raw(t!(
            lang,
            "console-fleet-head",
            wave = d.wave.min(d.waves.len() as u32),
            waves = d.waves.len(),
            by = d.created_by.as_str(),
            age = age(lang, now_ms - d.created_at)
        )),
    ])];
    if let Some(r) = &d.reason {
        lines.push(Line::from(r.clone()).fg(colour));
    }
    let mut terms = vec![t!(lang, "console-fleet-pass", percent = d.success_percent)];
    terms.push(t!(
        lang,
        "console-fleet-halt",
        percent = d.max_failures_percent
    ));
    if d.soak_secs > 0 {
        terms.push(t!(
            lang,
            "console-fleet-soak",
            age = age(lang, d.soak_secs as i64 * 1000)
        ));
    }
    if let Some(w) = &d.window {
        terms.push(t!(
            lang,
            "console-fleet-window",
            from = w.from.to_string(),
            to = w.to.to_string()
        ));
    }
    if d.manual {
        terms.push(t!(lang, "console-fleet-manual"));
    }
    lines.push(Line::from(terms.join(" · ")).dim());
    lines
}

fn draw_detail(f: &mut Frame, area: Rect, app: &App, fleet: &Fleet, now_ms: i64) {
    let lang = app.lang;
    let Some(detail) = &fleet.detail else {
        f.render_widget(
            Block::default()
                .borders(Borders::ALL)
                .title(t!(lang, "console-fleet-deployment")),
            area,
        );
        return;
    };
    let d = &detail.deployment;
    let mut lines = head(d, lang, now_ms);
    for w in &d.waves {
        let done = w.succeeded + w.failed + w.rolled_back;
        let mut text = t!(
            lang,
            "console-fleet-wave",
            wave = w.wave,
            bar = bar(done, w.devices, 8),
            ok = w.succeeded,
            devices = w.devices
        );
        if w.in_progress > 0 {
            text.push_str(&t!(lang, "console-fleet-going", n = w.in_progress));
        }
        if w.pending > 0 {
            text.push_str(&t!(lang, "console-fleet-waiting", n = w.pending));
        }
        let style = if w.failed + w.rolled_back > 0 {
            text.push_str(&t!(
                lang,
                "console-fleet-failed",
                failed = w.failed,
                back = w.rolled_back
            ));
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
        lines.push(Line::from(t!(lang, "console-fleet-failures", n = failures.len())).bold());
        for x in failures {
            lines.push(
                Line::from(format!(
                    "  {} {}: {}",
                    x.device_id,
                    words::rollout_state(lang, x.state.as_str()),
                    x.reason
                        .clone()
                        .unwrap_or_else(|| t!(lang, "console-fleet-no-reason"))
                ))
                .red(),
            );
        }
    }
    let hint = match app.may_deploy() {
        Some(false) => t!(lang, "console-fleet-hint-viewer"),
        _ => t!(lang, "console-fleet-hint"),
    };
    lines.push(Line::from(hint).dim());
    let title = format!(
        " {} · {} {}{} ",
        short(&d.id),
        d.target,
        d.version,
        if d.rollback {
            t!(lang, "console-fleet-rollback")
        } else {
            String::new()
        }
    );
    f.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .block(Block::default().borders(Borders::ALL).title(title)),
        area,
    );
}

fn draw_drift(f: &mut Frame, area: Rect, fleet: &Fleet, lang: Lang) {
    let title = t!(lang, "console-drift-title", n = fleet.drift.len());
    let block = Block::default().borders(Borders::ALL).title(title);
    if fleet.drift.is_empty() {
        f.render_widget(
            Paragraph::new(t!(lang, "console-drift-none"))
                .dim()
                .block(block),
            area,
        );
        return;
    }
    let rows = fleet.drift.iter().map(|d| {
        let (m, state) = match &d.applied {
            Some(a) if a.state == "applied" => (
                "·",
                t!(lang, "console-drift-runs", version = short(&a.version)),
            ),
            Some(a) => (
                "!",
                format!(
                    "{} {}{}",
                    t!(lang, "console-drift-state", state = a.state.as_str()),
                    short(&a.version),
                    a.reason
                        .as_deref()
                        .map(|r| format!(": {r}"))
                        .unwrap_or_default()
                ),
            ),
            None => ("·", t!(lang, "console-drift-unreported")),
        };
        Row::new(vec![
            ellipsize(
                &format!("{} {}", if d.online { "●" } else { "✕" }, d.device_id),
                18,
            ),
            t!(
                lang,
                "console-drift-wants",
                version = short(&d.desired.version)
            ),
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
