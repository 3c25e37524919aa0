//! Screen 6, Usage: the site × hour heatmap, the week's trend and saturation.

use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::style::{Style, Stylize};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Cell, Paragraph, Row, Table};

use super::widgets::{highlight, level_spark, pct, selected, shade, window};
use crate::app::App;
use l10n::t;

pub(super) fn draw_usage(f: &mut Frame, area: Rect, app: &App) {
    let lang = app.lang;
    let Some(u) = &app.model.usage else {
        f.render_widget(
            Paragraph::new(t!(lang, "console-usage-loading"))
                .block(Block::default().borders(Borders::TOP)),
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
            Cell::from(t!(lang, "console-usage-saturated")).red().bold()
        } else {
            Cell::from("")
        };
        Row::new(vec![
            Cell::from(s.name.clone()),
            Cell::from(crate::words::site_kind(lang, s.kind.as_str())),
            Cell::from(Line::from(heat)),
            Cell::from(level_spark(&s.daily)),
            Cell::from(pct(s.occupancy)),
            Cell::from(format!("{}/{}", s.days_above, u.saturation.window)),
            flag,
        ])
    });
    let title = t!(
        lang,
        "console-usage-title",
        hours = hours,
        rate = pct(u.saturation.rate),
        days = u.saturation.days,
        window = u.saturation.window
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
    .header(
        Row::new([
            t!(lang, "console-col-site"),
            t!(lang, "console-col-kind"),
            t!(lang, "console-col-hours"),
            t!(lang, "console-col-week"),
            t!(lang, "console-col-avg"),
            t!(lang, "console-col-above"),
            String::new(),
        ])
        .bold(),
    )
    .row_highlight_style(highlight())
    .block(Block::default().borders(Borders::TOP).title(title));
    f.render_stateful_widget(table, area, &mut selected(sel));
}
