//! The planning map (Planning screen, `m`): demand points sized by their enterprises, the sites
//! in service with their occupancy, the recommended sites with their walking radius (the
//! selected one highlighted, as in the list beside), and each cluster against the coverage
//! goal. Braille dots are square in metres, so a walking radius is a circle; zoom and pan are
//! the operator's (`+`/`-`, `H J K L`, `0`).

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Style, Stylize};
use ratatui::symbols::Marker;
use ratatui::text::{Line, Span};
use ratatui::widgets::canvas::{Canvas, Context, Points};
use ratatui::widgets::{Block, Borders, Paragraph, Row, Table};

use super::widgets::{ellipsize, highlight, pct, selected, window};
use crate::app::{App, MapView};
use crate::model::{Plan, PlanMap};
use l10n::t;

/// Metres per degree of latitude.
const M_PER_DEG: f64 = 111_320.0;
/// At most this many demand points are drawn as discs (the largest); the rest are dots.
const DISCS: usize = 400;

/// What is on screen: the data bounds, and degrees of latitude per braille dot.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Viewport {
    lon: [f64; 2],
    lat: [f64; 2],
    deg_per_dot: f64,
    /// Degrees of longitude per degree of latitude for the same distance (1 / cos lat).
    lon_scale: f64,
}

/// The view of `points` (lon, lat) in a canvas of `w`×`h` cells: all of them at zoom 1, with
/// a margin, dots square in metres, then zoomed and panned.
pub(super) fn viewport(points: &[(f64, f64)], w: u16, h: u16, view: &MapView) -> Option<Viewport> {
    let first = points.first()?;
    let (mut lo, mut hi) = (*first, *first);
    for (x, y) in points {
        lo = (lo.0.min(*x), lo.1.min(*y));
        hi = (hi.0.max(*x), hi.1.max(*y));
    }
    let centre = ((lo.0 + hi.0) / 2.0, (lo.1 + hi.1) / 2.0);
    let lon_scale = 1.0 / centre.1.to_radians().cos().max(0.05);
    let (dots_x, dots_y) = (f64::from(w.max(1)) * 2.0, f64::from(h.max(1)) * 4.0);
    // Half a kilometre at least, so one point alone is not a blank infinity.
    let span_lat = ((hi.1 - lo.1) * 1.15).max(500.0 / M_PER_DEG);
    let span_lon = ((hi.0 - lo.0) * 1.15).max(500.0 / M_PER_DEG * lon_scale);
    let deg_per_dot = (span_lat / dots_y).max(span_lon / lon_scale / dots_x) / view.zoom.max(1.0);
    let (half_lat, half_lon) = (
        deg_per_dot * dots_y / 2.0,
        deg_per_dot * dots_x * lon_scale / 2.0,
    );
    let c = (
        centre.0 + view.pan.0 * half_lon * 2.0,
        centre.1 + view.pan.1 * half_lat * 2.0,
    );
    Some(Viewport {
        lon: [c.0 - half_lon, c.0 + half_lon],
        lat: [c.1 - half_lat, c.1 + half_lat],
        deg_per_dot,
        lon_scale,
    })
}

impl Viewport {
    fn contains(&self, (x, y): (f64, f64)) -> bool {
        (self.lon[0]..=self.lon[1]).contains(&x) && (self.lat[0]..=self.lat[1]).contains(&y)
    }

    /// A circle of `r` metres around `c`, as braille dots.
    fn ring(&self, c: (f64, f64), r_m: f64) -> Vec<(f64, f64)> {
        let r_lat = r_m / M_PER_DEG;
        // Enough points that neighbouring dots touch at this zoom, bounded.
        let n = ((r_lat / self.deg_per_dot) * 6.0).clamp(16.0, 720.0) as usize;
        (0..n)
            .map(|i| {
                let a = i as f64 / n as f64 * std::f64::consts::TAU;
                (
                    c.0 + r_lat * self.lon_scale * a.cos(),
                    c.1 + r_lat * a.sin(),
                )
            })
            .collect()
    }
}

fn occupancy_colour(o: f64) -> Color {
    if o >= 0.8 {
        Color::Red
    } else if o >= 0.5 {
        Color::Yellow
    } else {
        Color::Blue
    }
}

pub(super) fn draw_map(f: &mut Frame, area: Rect, app: &App, plan: &Plan) {
    let lang = app.lang;
    let data: &PlanMap = &app.model.plan_map;
    let [list, map] = Layout::horizontal([Constraint::Length(30), Constraint::Min(20)]).areas(area);

    // The recommendations, the selected one as on the map.
    let recs = &plan.recommendations;
    let (shown, sel) = window(app.sel_rec, recs.len(), list.height.saturating_sub(2));
    let rows = recs[shown].iter().map(|r| {
        let name = if r.name.is_empty() {
            &r.candidate_id
        } else {
            &r.name
        };
        Row::new(vec![
            format!("◆{}", r.rank),
            ellipsize(name, 16),
            r.enterprises_covered.to_string(),
        ])
    });
    let table = Table::new(
        rows,
        [
            Constraint::Length(4),
            Constraint::Length(16),
            Constraint::Min(4),
        ],
    )
    .row_highlight_style(highlight())
    .block(
        Block::default()
            .borders(Borders::ALL)
            .title(t!(lang, "console-map-list")),
    );
    f.render_stateful_widget(table, list, &mut selected(sel));

    let mut points: Vec<(f64, f64)> = data.demand.iter().map(|d| (d.lon, d.lat)).collect();
    points.extend(data.existing.iter().map(|s| (s.lon, s.lat)));
    points.extend(recs.iter().map(|r| (r.lon, r.lat)));
    let block = Block::default()
        .borders(Borders::ALL)
        .title(t!(
            lang,
            "console-map-title",
            radius = format!("{:.0}", plan.params.radius_m),
            zoom = format!("{:.1}", app.map.zoom)
        ))
        .title_bottom(Line::from(t!(lang, "console-map-keys")).dim());
    let inner = block.inner(map);
    let Some(vp) = viewport(&points, inner.width, inner.height, &app.map) else {
        f.render_widget(
            Paragraph::new(t!(lang, "console-map-empty")).block(block),
            map,
        );
        return;
    };

    // Demand: the largest as discs sized by enterprises, the rest as dots.
    let max_e = data
        .demand
        .iter()
        .map(|d| d.enterprises)
        .max()
        .unwrap_or(1)
        .max(1);
    let mut by_size: Vec<_> = data
        .demand
        .iter()
        .filter(|d| vp.contains((d.lon, d.lat)))
        .collect();
    by_size.sort_unstable_by_key(|d| std::cmp::Reverse(d.enterprises));
    let split = by_size.len().min(DISCS);
    let dots: Vec<(f64, f64)> = by_size[split..].iter().map(|d| (d.lon, d.lat)).collect();
    let mut discs: Vec<(f64, f64)> = Vec::new();
    for d in &by_size[..split] {
        // Up to four dots of radius, by the square root of enterprises (area ~ enterprises).
        let r_dots = (f64::from(d.enterprises) / f64::from(max_e)).sqrt() * 4.0;
        if r_dots < 1.0 {
            discs.push((d.lon, d.lat));
            continue;
        }
        let r_m = r_dots * vp.deg_per_dot * M_PER_DEG;
        let mut r = r_m;
        while r > 0.0 {
            discs.extend(vp.ring((d.lon, d.lat), r));
            r -= vp.deg_per_dot * M_PER_DEG;
        }
        discs.push((d.lon, d.lat));
    }
    let selected_rec = recs.get(app.sel_rec);
    let canvas = Canvas::default()
        .block(block)
        .marker(Marker::Braille)
        .x_bounds(vp.lon)
        .y_bounds(vp.lat)
        .paint(|ctx: &mut Context<'_>| {
            ctx.draw(&Points {
                coords: &dots,
                color: Color::DarkGray,
            });
            ctx.draw(&Points {
                coords: &discs,
                color: Color::Cyan,
            });
            // The walking radius of every recommendation; the selected one's in bold colour.
            for r in recs {
                let ring = vp.ring((r.lon, r.lat), plan.params.radius_m);
                let is_sel = selected_rec.is_some_and(|s| s.rank == r.rank);
                ctx.draw(&Points {
                    coords: &ring,
                    color: if is_sel { Color::Yellow } else { Color::Green },
                });
            }
            ctx.layer();
            for c in plan.clusters.iter().filter(|c| c.demand_points >= 3) {
                let (mark, colour) = if c.meets_target {
                    ("✓", Color::Green)
                } else {
                    ("✕", Color::Red)
                };
                // A row below its centre: the recommendation there keeps its mark.
                ctx.print(
                    c.lon,
                    c.lat - vp.deg_per_dot * 4.0,
                    Line::from(Span::styled(
                        format!("{mark}{} {}", c.cluster, pct(c.share_after)),
                        Style::new().fg(colour),
                    )),
                );
            }
            for s in &data.existing {
                ctx.print(
                    s.lon,
                    s.lat,
                    Line::from(Span::styled(
                        format!("■{}", pct(s.occupancy)),
                        Style::new().fg(occupancy_colour(s.occupancy)),
                    )),
                );
            }
            for r in recs {
                let is_sel = selected_rec.is_some_and(|s| s.rank == r.rank);
                let text = if is_sel {
                    let name = if r.name.is_empty() {
                        &r.candidate_id
                    } else {
                        &r.name
                    };
                    format!("◆{} {name}", r.rank)
                } else {
                    format!("◆{}", r.rank)
                };
                let style = if is_sel {
                    Style::new().fg(Color::Yellow).bold().reversed()
                } else {
                    Style::new().fg(Color::Green).bold()
                };
                ctx.print(r.lon, r.lat, Line::from(Span::styled(text, style)));
            }
        });
    f.render_widget(canvas, map);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_view_fits_every_point_with_square_metres_and_zooms_about_the_centre() {
        let pts = [(113.0, 23.0), (113.1, 23.05)];
        let vp = viewport(&pts, 60, 20, &MapView::default()).expect("view");
        assert!(pts.iter().all(|p| vp.contains(*p)), "{vp:?}");
        // A dot is as many metres wide as high.
        let m_x = (vp.lon[1] - vp.lon[0]) / vp.lon_scale * M_PER_DEG / 120.0;
        let m_y = (vp.lat[1] - vp.lat[0]) * M_PER_DEG / 80.0;
        assert!((m_x - m_y).abs() / m_y < 1e-9, "{m_x} vs {m_y}");
        let zoomed = viewport(
            &pts,
            60,
            20,
            &MapView {
                zoom: 2.0,
                ..MapView::default()
            },
        )
        .expect("view");
        assert!(((vp.lat[1] - vp.lat[0]) / (zoomed.lat[1] - zoomed.lat[0]) - 2.0).abs() < 1e-9);
        let panned = viewport(
            &pts,
            60,
            20,
            &MapView {
                pan: (0.25, 0.0),
                ..MapView::default()
            },
        )
        .expect("view");
        assert!(panned.lon[0] > vp.lon[0] && (panned.lat[0] - vp.lat[0]).abs() < 1e-12);
        assert_eq!(viewport(&[], 10, 10, &MapView::default()), None);
    }
}
