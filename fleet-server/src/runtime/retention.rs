//! The retention task: on the leading replica, a pass of `store::retention` every
//! `retention.every_secs`, the first a minute after the lead is taken (not at start, when
//! cabinets reconnect and resend).

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::metrics::{KindLabel, Metrics, StatusLabel};
use crate::store::Store;
use crate::store::retention::RetentionPolicy;

/// How long after taking the lead the first pass starts.
const FIRST_PASS: Duration = Duration::from_secs(60);

pub(crate) async fn run(
    store: Store,
    policy: RetentionPolicy,
    every: Duration,
    metrics: Metrics,
    cancel: CancellationToken,
) {
    let mut next = tokio::time::Instant::now() + FIRST_PASS.min(every);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep_until(next) => {}
        }
        next = tokio::time::Instant::now() + every;
        let started = std::time::Instant::now();
        // Checked between steps: the lead lost or the server stopping ends the pass there.
        let stop = || cancel.is_cancelled();
        let outcome = store
            .retention_pass(&policy, crate::clock::now_ms(), &stop)
            .await;
        match outcome {
            Ok(report) => {
                for (class, n) in &report.removed {
                    metrics
                        .retention_rows
                        .get_or_create(&KindLabel {
                            kind: class.as_str().to_owned(),
                        })
                        .inc_by(*n);
                }
                metrics
                    .retention_passes
                    .get_or_create(&StatusLabel {
                        status: "done".into(),
                    })
                    .inc();
                let removed: u64 = report.removed.iter().map(|(_, n)| n).sum();
                if removed > 0 {
                    tracing::info!(
                        removed,
                        steps = report.steps,
                        seconds = started.elapsed().as_secs_f64(),
                        detail = ?report.removed.iter().map(|(c, n)| (c.as_str(), *n)).collect::<Vec<_>>(),
                        "retention pass done"
                    );
                }
            }
            Err(e) => {
                metrics
                    .retention_passes
                    .get_or_create(&StatusLabel {
                        status: "failed".into(),
                    })
                    .inc();
                tracing::warn!(error = %e, "retention pass failed; the next one starts where it stopped");
            }
        }
    }
}
