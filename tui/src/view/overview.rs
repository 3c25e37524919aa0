//! Screen 1, Overview: every site's figures and its last 24 hours.

use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::style::Stylize;
use ratatui::widgets::{Block, Borders, Cell, Paragraph, Row, Table};

use super::widgets::{ellipsize, highlight, selected, spark, window};
use crate::app::App;
use l10n::t;

pub(super) fn draw_overview(f: &mut Frame, area: Rect, app: &App) {
    let lang = app.lang;
    let sites = app.sites();
    // A narrow terminal shows the last 12 hours of use, a wide one all 24.
    let hours: usize = if area.width >= 110 { 24 } else { 12 };
    // Less the top border and the header row.
    let (shown, sel) = window(app.sel_site, sites.len(), area.height.saturating_sub(2));
    // The name takes what the fixed columns and their spacing leave; a longer one (a long
    // Chinese name is wide) ends with an ellipsis instead of being cut off.
    let fixed = 7 + 7 + 4 + 4 + 4 + 4 + 4 + 5 + hours + 4 + 10;
    let name_width = usize::from(area.width).saturating_sub(fixed).max(10);
    let rows = sites[shown].iter().map(|s| {
        let alarms = if s.alarms_open > 0 {
            Cell::from(format!("{}!", s.alarms_open)).red().bold()
        } else {
            Cell::from("0")
        };
        Row::new(vec![
            Cell::from(ellipsize(&s.name, name_width)),
            Cell::from(ellipsize(
                &crate::words::site_kind(lang, s.kind.as_str()),
                7,
            )),
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
            Constraint::Length(4),
            Constraint::Length(4),
            Constraint::Length(5),
            Constraint::Length(hours as u16),
            Constraint::Length(4),
        ],
    )
    .header(
        Row::new([
            t!(lang, "console-col-site"),
            t!(lang, "console-col-kind"),
            t!(lang, "console-col-online"),
            t!(lang, "console-col-free"),
            t!(lang, "console-col-occupied"),
            t!(lang, "console-col-reserved"),
            t!(lang, "console-col-out-of-service"),
            t!(lang, "console-col-faulty"),
            t!(lang, "console-col-today"),
            t!(lang, "console-col-uses", hours = hours),
            t!(lang, "console-col-alarms"),
        ])
        .bold(),
    )
    .column_spacing(1)
    .row_highlight_style(highlight())
    .block(
        Block::default()
            .borders(Borders::TOP)
            .title(t!(lang, "console-overview-title")),
    );
    if sites.is_empty() {
        f.render_widget(
            Paragraph::new(t!(lang, "console-overview-empty"))
                .block(Block::default().borders(Borders::TOP)),
            area,
        );
        return;
    }
    f.render_stateful_widget(table, area, &mut selected(sel));
}
