//! The diagnostics overlay: a cabinet's doctor report or its newest log lines, fetched over
//! the cabinet's own connection, scrollable, with who asked and when.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::{Color, Style, Stylize};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph};

use super::widgets::{age, centered, pad};
use crate::app::{App, DiagView};
use crate::model::DiagnosticReport;
use l10n::{Lang, t};

fn level_style(level: &str) -> Style {
    match level {
        "ERROR" => Style::new().fg(Color::Red).bold(),
        "WARN" => Style::new().fg(Color::Yellow),
        "DEBUG" | "TRACE" => Style::new().dim(),
        _ => Style::new(),
    }
}

/// The overlay's text lines for `d` at `now_ms`.
fn lines(d: &DiagView, lang: Lang, now_ms: i64) -> Vec<Line<'static>> {
    let r = match &d.answer {
        None => {
            return vec![
                Line::from(t!(
                    lang,
                    "console-diag-asking",
                    device = d.device.as_str(),
                    kind = d.kind.as_str()
                )),
                Line::from(t!(lang, "console-diag-how")).dim(),
            ];
        }
        Some(Err(e)) => return vec![Line::from(e.clone()).red()],
        Some(Ok(r)) => r,
    };
    let mut out = vec![Line::from(format!(
        "{}{}",
        t!(
            lang,
            "console-diag-head",
            state = r.state.as_str(),
            by = r.requested_by.as_str(),
            age = age(lang, now_ms - r.requested_at)
        ),
        r.summary
            .as_deref()
            .map(|s| format!(" · {s}"))
            .unwrap_or_default()
    ))];
    match &r.report {
        None if r.state == "pending" => {
            out.push(Line::from(t!(lang, "console-diag-offline")).yellow());
            out.push(
                Line::from(t!(
                    lang,
                    "console-diag-offline-until",
                    age = age(lang, r.expires_at - now_ms)
                ))
                .yellow(),
            );
        }
        None => {}
        Some(DiagnosticReport::Doctor { checks }) => {
            let (pass, fail) = (t!(lang, "doctor-pass"), t!(lang, "doctor-fail"));
            for c in checks {
                let (mark, style) = if c.ok {
                    (pad(&pass, 4), Style::new().fg(Color::Green))
                } else {
                    (pad(&fail, 4), Style::new().fg(Color::Red).bold())
                };
                out.push(Line::from(vec![
                    Span::styled(mark, style),
                    Span::raw(format!(
                        "  {} {}",
                        pad(&l10n::doctor_check(lang, &c.name), 11),
                        c.detail
                    )),
                ]));
            }
        }
        Some(DiagnosticReport::Logs {
            lines,
            dropped,
            level,
        }) => {
            let mut head = t!(lang, "console-diag-level", level = level.as_str());
            if *dropped > 0 {
                head.push_str(&t!(lang, "console-diag-dropped", dropped = *dropped));
            }
            out.push(Line::from(head).dim());
            for l in lines {
                out.push(Line::from(vec![
                    Span::raw(format!(
                        "{} ",
                        super::widgets::pad_left(&age(lang, now_ms - l.at), 6)
                    ))
                    .dim(),
                    Span::styled(format!("{:<5} ", l.level), level_style(&l.level)),
                    Span::raw(l.text.clone()),
                ]));
            }
        }
        Some(DiagnosticReport::Refused { reason }) => {
            out.push(Line::from(t!(lang, "console-diag-refused", reason = reason.as_str())).red());
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
    let lang = app.lang;
    let text = lines(d, lang, now_ms);
    // Scrolled back from the end: the newest lines are in view unless the operator scrolls.
    let inner = popup.height.saturating_sub(2) as usize;
    let max_offset = text.len().saturating_sub(inner);
    let offset = max_offset.saturating_sub(d.back);
    let block = Block::default()
        .borders(Borders::ALL)
        .title(t!(
            lang,
            "console-diag-title",
            device = d.device.as_str(),
            kind = d.kind.as_str()
        ))
        .title_bottom(Line::from(t!(lang, "console-diag-keys")).dim());
    f.render_widget(Clear, popup);
    f.render_widget(
        Paragraph::new(text)
            .block(block)
            .scroll((u16::try_from(offset).unwrap_or(u16::MAX), 0)),
        popup,
    );
}
