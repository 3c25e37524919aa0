//! The diagnostics overlay: a cabinet's doctor report or its newest log lines, fetched over
//! the cabinet's own connection, scrollable, with who asked and when.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::{Color, Style, Stylize};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph};

use super::widgets::{age, centered, pad};
use crate::app::{App, DiagView};
use crate::model::{DiagnosticKind, DiagnosticReport};

fn level_style(level: &str) -> Style {
    match level {
        "ERROR" => Style::new().fg(Color::Red).bold(),
        "WARN" => Style::new().fg(Color::Yellow),
        "DEBUG" | "TRACE" => Style::new().dim(),
        _ => Style::new(),
    }
}

/// The overlay's text lines for `d` at `now_ms`.
fn lines(d: &DiagView, now_ms: i64) -> Vec<Line<'static>> {
    let what = match d.kind {
        DiagnosticKind::Doctor => "a doctor report".to_owned(),
        DiagnosticKind::Logs => "its newest log lines".to_owned(),
    };
    let r = match &d.answer {
        None => {
            return vec![
                Line::from(format!("asking {} for {what}…", d.device)),
                Line::from("the answer comes over the cabinet's own connection").dim(),
            ];
        }
        Some(Err(e)) => return vec![Line::from(e.clone()).red()],
        Some(Ok(r)) => r,
    };
    let mut out = vec![Line::from(format!(
        "{} · asked by {} {} ago{}",
        r.state,
        r.requested_by,
        age(now_ms - r.requested_at),
        r.summary
            .as_deref()
            .map(|s| format!(" · {s}"))
            .unwrap_or_default()
    ))];
    match &r.report {
        None if r.state == "pending" => {
            out.push(Line::from("no answer yet: the cabinet seems to be offline;").yellow());
            out.push(
                Line::from(format!(
                    "it gets the request when it is back (for {} more)",
                    age(r.expires_at - now_ms)
                ))
                .yellow(),
            );
        }
        None => {}
        Some(DiagnosticReport::Doctor { checks }) => {
            for c in checks {
                let (mark, style) = if c.ok {
                    ("PASS", Style::new().fg(Color::Green))
                } else {
                    ("FAIL", Style::new().fg(Color::Red).bold())
                };
                out.push(Line::from(vec![
                    Span::styled(mark, style),
                    Span::raw(format!("  {} {}", pad(&c.name, 11), c.detail)),
                ]));
            }
        }
        Some(DiagnosticReport::Logs {
            lines,
            dropped,
            level,
        }) => {
            let mut head = format!("logging at {level}");
            if *dropped > 0 {
                head.push_str(&format!(" · {dropped} older lines gone from the ring"));
            }
            out.push(Line::from(head).dim());
            for l in lines {
                out.push(Line::from(vec![
                    Span::raw(format!("{:>6} ", age(now_ms - l.at))).dim(),
                    Span::styled(format!("{:<5} ", l.level), level_style(&l.level)),
                    Span::raw(l.text.clone()),
                ]));
            }
        }
        Some(DiagnosticReport::Refused { reason }) => {
            out.push(Line::from(format!("the cabinet would not answer: {reason}")).red());
        }
    }
    out
}

pub(super) fn draw_diagnostics(f: &mut Frame, area: Rect, app: &App, now_ms: i64) {
    let Some(d) = &app.diagnosis else {
        return;
    };
    let popup = centered(
        area,
        area.width.saturating_sub(4),
        area.height.saturating_sub(2),
    );
    let kind = match d.kind {
        DiagnosticKind::Doctor => "doctor",
        DiagnosticKind::Logs => "logs",
    };
    let text = lines(d, now_ms);
    // Scrolled back from the end: the newest lines are in view unless the operator scrolls.
    let inner = popup.height.saturating_sub(2) as usize;
    let max_offset = text.len().saturating_sub(inner);
    let offset = max_offset.saturating_sub(d.back);
    let block = Block::default()
        .borders(Borders::ALL)
        .title(format!(" {} · {kind} ", d.device))
        .title_bottom(Line::from(" ↑↓ PgUp PgDn scroll · r ask again · Esc close ").dim());
    f.render_widget(Clear, popup);
    f.render_widget(
        Paragraph::new(text)
            .block(block)
            .scroll((u16::try_from(offset).unwrap_or(u16::MAX), 0)),
        popup,
    );
}
