//! Screen 7, Planning: recommended sites, expansions and coverage per cluster.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Stylize;
use ratatui::text::Line;
use ratatui::widgets::{Block, Borders, Cell, Paragraph, Row, Table, Wrap};

use super::widgets::{highlight, pct, selected};
use crate::app::App;
use l10n::t;

pub(super) fn draw_planning(f: &mut Frame, area: Rect, app: &App) {
    let lang = app.lang;
    let plan = match &app.model.plan {
        None => {
            f.render_widget(
                Paragraph::new(t!(lang, "console-plan-computing"))
                    .block(Block::default().borders(Borders::TOP)),
                area,
            );
            return;
        }
        Some(Err(e)) => {
            f.render_widget(
                Paragraph::new(t!(lang, "console-plan-none", error = e.as_str()))
                    .wrap(Wrap { trim: true })
                    .block(
                        Block::default()
                            .borders(Borders::TOP)
                            .title(t!(lang, "console-plan-title-short")),
                    ),
                area,
            );
            return;
        }
        Some(Ok(p)) => p,
    };
    if app.map.on {
        let [summary, map] =
            Layout::vertical([Constraint::Length(2), Constraint::Min(5)]).areas(area);
        f.render_widget(
            Paragraph::new(coverage_line(app, plan)).wrap(Wrap { trim: false }),
            summary,
        );
        super::map::draw_map(f, map, app, plan);
        return;
    }
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
        Line::from(coverage_line(app, plan)),
        Line::from(t!(
            lang,
            "console-plan-overflow",
            overflow = pct(plan.params.overflow)
        )),
    ];
    f.render_widget(
        Paragraph::new(text).wrap(Wrap { trim: false }).block(
            Block::default()
                .borders(Borders::TOP)
                .title(t!(lang, "console-plan-title")),
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
            t!(lang, "console-col-rank"),
            t!(lang, "console-col-site"),
            t!(lang, "console-col-enterprises"),
            t!(lang, "console-col-cases"),
            "S/M/L".to_owned(),
            t!(lang, "console-col-boxes"),
            t!(lang, "console-col-usage"),
            t!(lang, "console-col-overflow"),
        ])
        .bold(),
    )
    .row_highlight_style(highlight());
    f.render_stateful_widget(table, recs_area, &mut selected(app.sel_rec));
    if exps > 0 {
        let mut lines = vec![Line::from(t!(lang, "console-plan-expansions")).bold()];
        for e in plan.expansions.iter().take(usize::from(exps)) {
            lines.push(Line::from(t!(
                lang,
                "console-plan-expansion",
                site = if e.name.is_empty() {
                    e.site_id.as_str()
                } else {
                    e.name.as_str()
                },
                boxes = e.boxes,
                needed = e.boxes_needed,
                add = e.add
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
                Cell::from(t!(lang, "console-plan-yes")).green()
            } else {
                Cell::from(t!(lang, "console-plan-no")).red().bold()
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
            t!(lang, "console-col-cluster"),
            t!(lang, "console-col-enterprises"),
            t!(lang, "console-col-before"),
            t!(lang, "console-col-after"),
            format!("≥{target}"),
        ])
        .bold(),
    )
    .block(Block::default().borders(Borders::TOP).title(t!(
        lang,
        "console-plan-clusters",
        target = target.as_str()
    )));
    f.render_widget(table, clusters_area);
}

/// Coverage before and after, in one line (the list's summary and the map's).
fn coverage_line(app: &App, plan: &crate::model::Plan) -> String {
    t!(
        app.lang,
        "console-plan-coverage",
        radius = format!("{:.0}", plan.params.radius_m),
        before = plan.covered_before,
        enterprises = plan.enterprises,
        share_before = pct(plan.share_before),
        after = plan.covered_after,
        share_after = pct(plan.share_after),
        sites = plan.recommendations.len()
    )
}
