//! The report of a simulator run: JSON for machines, Markdown for people, and SVG plots
//! (ingest rate over time, command latency histogram, occupancy per site) drawn with plotters.

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use plotters::prelude::*;
use serde::Serialize;

use crate::checks::{Check, Ledger, Sample};
use crate::scenario::Scenario;
use crate::schedule::Plan;

#[derive(Debug, Serialize)]
pub(crate) struct Report {
    pub scenario: String,
    pub description: String,
    pub seed: u64,
    pub plan_digest: String,
    pub acceleration: f64,
    pub start_hour: f64,
    pub simulated_hours: f64,
    pub wall_seconds: f64,
    pub cabinets: usize,
    pub stations: usize,
    pub sites: Vec<SiteLine>,
    /// Planned actions by kind.
    pub planned: Vec<(String, usize)>,
    pub ledger: Ledger,
    /// Remote opens, API call → outcome visible, the cabinet connected throughout.
    pub commands: Latency,
    /// The same where the cabinet dropped off or restarted meanwhile (the open waits for it).
    pub commands_reconnecting: Latency,
    /// Reservation → code usable on the cabinet, the cabinet online throughout.
    pub code_ready: Latency,
    /// The same where the cabinet was offline or reconnecting for part of the wait.
    pub code_ready_reconnecting: Latency,
    pub ingest: Ingest,
    pub checks: Vec<Check>,
    pub samples: Vec<Sample>,
}

#[derive(Debug, Serialize)]
pub(crate) struct SiteLine {
    pub id: String,
    pub kind: String,
    pub cabinets: usize,
    pub boxes: usize,
    /// Highest occupancy sampled, and the simulated local hour it was seen.
    pub peak_occupancy: f64,
    pub peak_at_hour: f64,
}

#[derive(Debug, Default, Serialize)]
pub(crate) struct Latency {
    pub count: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

#[derive(Debug, Default, Serialize)]
pub(crate) struct Ingest {
    pub events: u64,
    pub mean_per_s: f64,
    pub peak_per_s: f64,
}

/// As the Markdown report shows it: `N (p50 … ms, p99 … ms, max … ms)`.
impl std::fmt::Display for Latency {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} (p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms)",
            self.count, self.p50_ms, self.p99_ms, self.max_ms
        )
    }
}

impl Latency {
    fn of(mut ms: Vec<f64>) -> Latency {
        ms.sort_by(f64::total_cmp);
        Latency {
            count: ms.len(),
            p50_ms: quantile(&ms, 0.5),
            p99_ms: quantile(&ms, 0.99),
            max_ms: ms.last().copied().unwrap_or(0.0),
        }
    }
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Events receipted per wall-clock second between samples, at each sample's simulated hour.
fn ingest_rates(samples: &[Sample]) -> Vec<(f64, f64)> {
    samples
        .windows(2)
        .filter(|w| w[1].real_s > w[0].real_s)
        .map(|w| {
            let rate =
                w[1].receipted.saturating_sub(w[0].receipted) as f64 / (w[1].real_s - w[0].real_s);
            (w[1].sim_s / 3600.0, rate)
        })
        .collect()
}

impl Report {
    pub(crate) fn new(
        s: &Scenario,
        plan: &Plan,
        ledger: &Ledger,
        samples: Vec<Sample>,
        checks: Vec<Check>,
        wall: Duration,
    ) -> Report {
        let sites = s
            .sites
            .iter()
            .enumerate()
            .map(|(i, site)| {
                let (peak, at) = samples
                    .iter()
                    .filter_map(|x| x.occupancy.get(i).copied().flatten().map(|o| (o, x.sim_s)))
                    .fold(
                        (0.0, 0.0),
                        |best, (o, t)| if o > best.0 { (o, t) } else { best },
                    );
                SiteLine {
                    id: site.id.clone(),
                    kind: site.kind.clone(),
                    cabinets: site.cabinets,
                    boxes: site.cabinets * usize::from(site.boxes_per_cabinet()),
                    peak_occupancy: peak,
                    peak_at_hour: (s.start_hour + at / 3600.0) % 24.0,
                }
            })
            .collect();
        let lat = |online: bool| -> Vec<f64> {
            ledger
                .commands
                .iter()
                .filter(|c| c.cabinet_online == online)
                .map(|c| c.round_trip_ms)
                .collect()
        };
        let rates = ingest_rates(&samples);
        let events = samples.last().map(|x| x.receipted).unwrap_or(0);
        let span = samples.last().map(|x| x.real_s).unwrap_or(0.0)
            - samples.first().map(|x| x.real_s).unwrap_or(0.0);
        let mut planned: Vec<(String, usize)> = crate::schedule::Action::LABELS
            .iter()
            .map(|k| (k.to_string(), plan.count(k)))
            .collect();
        planned.retain(|(_, n)| *n > 0);
        Report {
            scenario: s.name.clone(),
            description: s.description.clone(),
            seed: plan.seed,
            plan_digest: plan.digest.clone(),
            acceleration: s.acceleration,
            start_hour: s.start_hour,
            simulated_hours: plan.duration_s / 3600.0,
            wall_seconds: wall.as_secs_f64(),
            cabinets: plan.cabinets.len(),
            stations: plan.stations.len(),
            sites,
            planned,
            ledger: ledger.clone(),
            commands: Latency::of(lat(true)),
            commands_reconnecting: Latency::of(lat(false)),
            code_ready: Latency::of(ledger.code_ready_ms.clone()),
            code_ready_reconnecting: Latency::of(ledger.code_ready_reconnecting_ms.clone()),
            ingest: Ingest {
                events,
                mean_per_s: if span > 0.0 {
                    (events.saturating_sub(samples.first().map(|x| x.receipted).unwrap_or(0)))
                        as f64
                        / span
                } else {
                    0.0
                },
                peak_per_s: rates.iter().map(|r| r.1).fold(0.0, f64::max),
            },
            checks,
            samples,
        }
    }

    pub(crate) fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.passed)
    }

    pub(crate) fn markdown(&self, images: bool) -> String {
        let l = &self.ledger;
        let mut m = format!(
            "# Simulation: {}\n\n{}\n\n- seed {} (plan `{}`), {:.1} simulated hours from {:02.0}:00 at {}× in {:.0} s\n- {} cabinets, {} station devices, {} sites\n- planned: {}\n\n",
            self.scenario,
            self.description.trim(),
            self.seed,
            &self.plan_digest[..self.plan_digest.len().min(16)],
            self.simulated_hours,
            self.start_hour.floor(),
            self.acceleration,
            self.wall_seconds,
            self.cabinets,
            self.stations,
            self.sites.len(),
            self.planned
                .iter()
                .map(|(k, n)| format!("{n} {k}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        m.push_str(&format!(
            "## Invariants: {}\n\n| check | result | detail |\n|---|---|---|\n",
            if self.passed() { "all hold" } else { "BROKEN" }
        ));
        for c in &self.checks {
            m.push_str(&format!(
                "| {} | {} | {} |\n",
                c.name,
                if c.passed { "ok" } else { "**FAILED**" },
                c.detail.replace('|', "/")
            ));
        }
        m.push_str(&format!(
            "\n## People and staff\n\n- reservations {} ({} refused: no free box), no-shows {}, gave up at the keypad {}\n- completed: {}\n- staff collected {} and deposited {} (card refused: {})\n- wrong codes typed {}, codes typed again after use {}\n\n",
            l.reserved,
            l.refused,
            l.no_shows,
            l.gave_up,
            l.done
                .iter()
                .map(|(k, n)| format!("{n} {k}"))
                .collect::<Vec<_>>()
                .join(", "),
            l.collected,
            l.deposited,
            if l.staff_refused.is_empty() {
                "never".to_owned()
            } else {
                l.staff_refused
                    .iter()
                    .map(|(k, n)| format!("{n} {k}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            },
            l.wrong_codes,
            l.replays,
        ));
        m.push_str("## Sites\n\n| site | kind | cabinets | boxes | peak occupancy | at (local) |\n|---|---|---|---|---|---|\n");
        for s in &self.sites {
            m.push_str(&format!(
                "| {} | {} | {} | {} | {:.0}% | {:04.1} h |\n",
                s.id,
                s.kind,
                s.cabinets,
                s.boxes,
                s.peak_occupancy * 100.0,
                s.peak_at_hour
            ));
        }
        let mut faults: std::collections::BTreeMap<&str, (usize, usize)> = Default::default();
        for f in &l.injected {
            let e = faults.entry(f.kind.as_str()).or_default();
            e.0 += 1;
            e.1 += usize::from(f.expect_alarm.is_some());
        }
        m.push_str(
            "\n## Faults injected\n\n| fault | injected | expected to alarm |\n|---|---|---|\n",
        );
        for (k, (n, a)) in faults {
            m.push_str(&format!("| {k} | {n} | {a} |\n"));
        }
        m.push_str(&format!(
            "\n## Commands and ingest\n\n- remote opens, API call → outcome visible: {}; where the cabinet dropped off or restarted meanwhile: {}\n- codes usable on their cabinet after the reservation: {}; where the cabinet was offline or reconnecting meanwhile: {}\n- events stored: {} (mean {:.0}/s, peak {:.0}/s)\n",
            self.commands,
            self.commands_reconnecting,
            self.code_ready,
            self.code_ready_reconnecting,
            self.ingest.events,
            self.ingest.mean_per_s,
            self.ingest.peak_per_s
        ));
        // The slowest opens with the server's steps: where a tail was (the call's answer is
        // the create; created → sent the publish; sent → delivered the cabinet's journal and
        // ack; delivered → finished the door).
        let mut slow: Vec<_> = l.commands.iter().filter(|c| c.cabinet_online).collect();
        slow.sort_by(|a, b| b.round_trip_ms.total_cmp(&a.round_trip_ms));
        if !slow.is_empty() {
            m.push_str("
| slowest remote opens | round trip | call answered | created → sent | sent → delivered | delivered → finished |
|---|---|---|---|---|---|
");
        }
        for c in slow.iter().take(5) {
            let step = |i: usize| c.steps_ms.map_or("?".into(), |s| format!("{} ms", s[i]));
            m.push_str(&format!(
                "| {} box {} | {:.0} ms | {:.0} ms | {} | {} | {} |\n",
                c.device,
                c.box_no,
                c.round_trip_ms,
                c.answered_ms,
                step(0),
                step(1),
                step(2)
            ));
        }
        if images {
            m.push_str(
                "\n![ingest rate](ingest.svg)\n\n![command latency](commands.svg)\n\n![occupancy](occupancy.svg)\n",
            );
        }
        m
    }

    /// Writes report.json, report.md and the three plots into `dir`.
    pub(crate) fn write(&self, dir: &Path) -> anyhow::Result<()> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let put = |name: &str, text: &str| {
            std::fs::write(dir.join(name), text)
                .with_context(|| format!("writing {}", dir.join(name).display()))
        };
        put("report.json", &serde_json::to_string_pretty(self)?)?;
        put("report.md", &self.markdown(true))?;
        put("ingest.svg", &self.ingest_plot()?)?;
        put("commands.svg", &self.latency_plot()?)?;
        put("occupancy.svg", &self.occupancy_plot()?)?;
        Ok(())
    }

    fn ingest_plot(&self) -> anyhow::Result<String> {
        let rates = ingest_rates(&self.samples);
        let x_max = (self.simulated_hours).max(0.01);
        let y_max = rates.iter().map(|r| r.1).fold(1.0, f64::max) * 1.1;
        svg(|root| {
            let mut c = ChartBuilder::on(root)
                .caption("Events stored per second", ("sans-serif", 18))
                .margin(10)
                .x_label_area_size(35)
                .y_label_area_size(55)
                .build_cartesian_2d(0.0..x_max, 0.0..y_max)?;
            c.configure_mesh()
                .x_desc("simulated hours since start")
                .y_desc("events/s (wall clock)")
                .draw()?;
            c.draw_series(LineSeries::new(rates.iter().copied(), &BLUE))?;
            Ok(())
        })
    }

    fn latency_plot(&self) -> anyhow::Result<String> {
        let lat: Vec<f64> = self
            .ledger
            .commands
            .iter()
            .map(|c| c.round_trip_ms)
            .collect();
        // Bins of a quarter octave from 0.5 ms: a millisecond open and a ten-second wait
        // for a cabinet coming back online both stay readable.
        let edge = |i: usize| 0.5 * 2f64.powf(i as f64 / 4.0);
        let max = lat.iter().copied().fold(1.0, f64::max);
        let n = (0..).find(|&i| edge(i) > max).unwrap_or(1).max(1);
        let mut bins = vec![0u32; n];
        for v in &lat {
            let i = (0..n).rev().find(|&i| edge(i) <= *v).unwrap_or(0);
            bins[i] += 1;
        }
        let y_max = bins.iter().copied().max().unwrap_or(0).max(1) + 1;
        svg(|root| {
            let mut c = ChartBuilder::on(root)
                .caption(
                    "Remote-open round trip (API call → outcome visible)",
                    ("sans-serif", 18),
                )
                .margin(10)
                .x_label_area_size(35)
                .y_label_area_size(45)
                .build_cartesian_2d((edge(0)..edge(n)).log_scale(), 0u32..y_max)?;
            c.configure_mesh()
                .x_desc("ms (log scale)")
                .y_desc("commands")
                .draw()?;
            c.draw_series(bins.iter().enumerate().map(|(i, count)| {
                Rectangle::new(
                    [(edge(i), 0), (edge(i + 1), *count)],
                    BLUE.mix(0.6).filled(),
                )
            }))?;
            Ok(())
        })
    }

    fn occupancy_plot(&self) -> anyhow::Result<String> {
        let x0 = self.start_hour;
        let x1 = self.start_hour + self.simulated_hours.max(0.01);
        svg(|root| {
            let mut c = ChartBuilder::on(root)
                .caption(
                    "Occupancy per site (occupied and reserved boxes)",
                    ("sans-serif", 18),
                )
                .margin(10)
                .x_label_area_size(35)
                .y_label_area_size(45)
                .build_cartesian_2d(x0..x1, 0.0..100.0)?;
            c.configure_mesh()
                .x_desc("simulated local time")
                .y_desc("%")
                .x_label_formatter(&|h| format!("{:02}:00", (h.floor() as i64).rem_euclid(24)))
                .draw()?;
            for (i, site) in self.sites.iter().enumerate() {
                let colour = Palette99::pick(i).to_rgba();
                let points = self.samples.iter().filter_map(|x| {
                    x.occupancy
                        .get(i)
                        .copied()
                        .flatten()
                        .map(|o| (x0 + x.sim_s / 3600.0, o * 100.0))
                });
                c.draw_series(LineSeries::new(points, colour))?
                    .label(site.id.clone())
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], colour));
            }
            // The document's threshold of a full cluster.
            c.draw_series(DashedLineSeries::new(
                [(x0, 80.0), (x1, 80.0)],
                6,
                4,
                BLACK.stroke_width(2),
            ))?
            .label("80% (full)")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], BLACK.stroke_width(2)));
            c.configure_series_labels()
                .position(SeriesLabelPosition::UpperLeft)
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK)
                .draw()?;
            Ok(())
        })
    }
}

type Area<'a> = DrawingArea<SVGBackend<'a>, plotters::coord::Shift>;

/// Draws into an SVG string of 720×400.
fn svg(
    draw: impl FnOnce(&Area<'_>) -> Result<(), Box<dyn std::error::Error>>,
) -> anyhow::Result<String> {
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, (720, 400)).into_drawing_area();
        root.fill(&WHITE)
            .map_err(|e| anyhow::anyhow!("plot: {e}"))?;
        draw(&root).map_err(|e| anyhow::anyhow!("plot: {e}"))?;
        root.present().map_err(|e| anyhow::anyhow!("plot: {e}"))?;
    }
    Ok(out)
}
