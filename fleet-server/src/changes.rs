//! Change notices for live views (the console): what changed, never the data itself. A
//! client refetches what it shows, so a notice lost to a slow client costs a refetch, not
//! correctness.

pub(crate) use api_types::live::Change;
use tokio::sync::{broadcast, mpsc};

/// A bounded fan-out of changes: a subscriber that falls more than `CAPACITY` behind is told
/// to resynchronise instead of slowing anyone down.
#[derive(Clone)]
pub struct Changes {
    tx: broadcast::Sender<Change>,
    /// Server replicas: every change also goes to the others ([`crate::runtime::change_bridge`]).
    bridge: Option<mpsc::Sender<Change>>,
}

const CAPACITY: usize = 4096;

impl Default for Changes {
    fn default() -> Self {
        Changes {
            tx: broadcast::channel(CAPACITY).0,
            bridge: None,
        }
    }
}

impl Changes {
    /// Changes that also travel to the other server replicas through `bridge`.
    pub fn bridged(bridge: mpsc::Sender<Change>) -> Changes {
        Changes {
            bridge: Some(bridge),
            ..Changes::default()
        }
    }

    /// Tells every subscriber (and the other replicas); nobody listening is fine.
    pub fn send(&self, change: Change) {
        if let Some(bridge) = &self.bridge {
            // A full bridge loses a notice, not data: the console refetches every 15 s.
            let _ = bridge.try_send(change.clone());
        }
        let _ = self.tx.send(change);
    }

    /// A change another replica made: told to this replica's subscribers only.
    pub fn send_local(&self, change: Change) {
        let _ = self.tx.send(change);
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.tx.subscribe()
    }

    pub fn device(&self, device_id: &str) {
        self.send(Change::Device {
            device_id: device_id.to_owned(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn subscribers_get_changes_and_laggards_learn_they_lagged() {
        let changes = Changes::default();
        changes.send(Change::Alarms); // nobody listening: dropped, no error
        let mut rx = changes.subscribe();
        changes.device("cab-1");
        assert_eq!(
            rx.recv().await.expect("change"),
            Change::Device {
                device_id: "cab-1".into()
            }
        );
        for _ in 0..CAPACITY + 1 {
            changes.send(Change::Items);
        }
        assert!(matches!(
            rx.recv().await,
            Err(broadcast::error::RecvError::Lagged(_))
        ));
        assert_eq!(
            serde_json::to_string(&Change::Command {
                command_id: "c1".into(),
                device_id: "cab-1".into(),
                status: protocol::CommandStatus::Opened
            })
            .expect("json"),
            r#"{"kind":"command","command_id":"c1","device_id":"cab-1","status":"opened"}"#
        );
    }
}
