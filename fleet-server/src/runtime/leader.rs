//! One replica leads: the fleet-wide background work (item and alarm sweeps, notifications,
//! command upkeep) runs on exactly one server replica at a time, so no SMS goes out twice and
//! no sweep races another. Leadership is a PostgreSQL session lock ([`Store::try_lead`]); a
//! replica that dies frees it and another takes over within seconds. A single server (and
//! SQLite) always leads.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;
use crate::store::Store;

/// How often a follower asks for the lead and a leader checks it still holds it.
const CHECK: Duration = Duration::from_secs(2);

/// Runs until `cancel`: whenever this replica holds the lead, `start` is called with a token
/// that is cancelled when the lead is lost (the work it started must stop on it).
pub(crate) async fn lead<F>(store: Store, metrics: Metrics, start: F, cancel: CancellationToken)
where
    F: Fn(CancellationToken) + Send + 'static,
{
    let mut following = false;
    loop {
        let attempt = tokio::select! {
            _ = cancel.cancelled() => return,
            r = store.try_lead() => r,
        };
        match attempt {
            Ok(Some(mut lead)) => {
                tracing::info!(
                    "this replica leads: it runs the sweeps, notifications and command upkeep"
                );
                following = false;
                metrics.leader.set(1);
                let work = cancel.child_token();
                start(work.clone());
                loop {
                    tokio::select! {
                        _ = cancel.cancelled() => return,
                        _ = tokio::time::sleep(CHECK) => {}
                    }
                    if !lead.alive().await {
                        tracing::warn!(
                            "lost the lead (its database connection failed); background work stops here"
                        );
                        work.cancel();
                        metrics.leader.set(0);
                        break;
                    }
                }
            }
            Ok(None) => {
                if !following {
                    tracing::info!("another replica leads; this one serves devices and the API");
                    following = true;
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot ask for the lead; retrying"),
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(CHECK) => {}
        }
    }
}
