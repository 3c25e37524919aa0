//! The sampler: the run's figures over time, for the report.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::agent_totals;
use super::world::World;
use crate::checks::Sample;

/// Samples the fleet every few simulated minutes: receipts, recorded events and occupancy per site; feeds
/// the progress bar.
pub(super) async fn sample_loop(
    w: Arc<World>,
    samples: Arc<Mutex<Vec<Sample>>>,
    stop: CancellationToken,
    progress: bool,
) {
    let bar = if progress {
        indicatif::ProgressBar::new(w.plan.duration_s as u64)
    } else {
        indicatif::ProgressBar::hidden()
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template("{elapsed_precise} [{bar:30}] sim {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    let sites: Vec<String> = w.scenario.sites.iter().map(|s| s.id.clone()).collect();
    // About every five simulated minutes, within a quarter second and five seconds of
    // wall clock.
    let every = (300.0 / w.scenario.acceleration).clamp(0.25, 5.0);
    let mut tick = tokio::time::interval(Duration::from_secs_f64(every));
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tick.tick() => {}
        }
        let totals = agent_totals(&w).await;
        let (recorded, receipted) = totals
            .iter()
            .fold((0, 0), |(a, b), (_, last, r)| (a + last, b + r));
        let mut occupancy = vec![None; sites.len()];
        if let Ok(v) = w.admin.get("/api/v1/overview").await {
            for s in v["sites"].as_array().into_iter().flatten() {
                if let Some(i) = sites.iter().position(|id| s["id"] == json!(id)) {
                    occupancy[i] = s["occupancy"].as_f64();
                }
            }
        }
        let sim_s = w.clock.sim_now().min(w.plan.duration_s);
        let line = {
            let l = w.ledger();
            format!(
                "{:>5.1} h | reserved {} refused {} | done {} | cmds {} | faults {} | events {receipted}/{recorded}",
                sim_s / 3600.0,
                l.reserved,
                l.refused,
                l.done.values().sum::<u64>(),
                l.commands.len(),
                l.injected.len()
            )
        };
        bar.set_position(sim_s as u64);
        bar.set_message(line);
        samples
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(Sample {
                real_s: w.clock.started.elapsed().as_secs_f64(),
                sim_s,
                recorded,
                receipted,
                occupancy,
            });
    }
    bar.finish_and_clear();
}
