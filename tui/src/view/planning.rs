//! Screen 7, Planning: recommended sites, expansions and coverage per cluster.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Stylize;
use ratatui::text::Line;
use ratatui::widgets::{Block, Borders, Cell, Paragraph, Row, Table, Wrap};

use super::widgets::pct;
use crate::app::App;

pub(super) fn draw_planning(f: &mut Frame, area: Rect, app: &App) {
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
