//! Certificate renewal requests from devices (`devices/{id}/csr`): signed with the fleet CA
//! when this server holds its key, audited, and answered on `devices/{id}/cert`.
//!
//! The device id comes from the topic, which the broker front (or the external broker's ACL)
//! bound to the certificate the device connected with: a device can only ever renew itself.
//! Everything else in the request but its public key is ignored (`certs::Ca::sign_request`).

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use protocol::{CertReply, CertRequest, Channel, DeviceId};
use tokio::sync::mpsc;

use crate::devices::Publisher;
use crate::metrics::Metrics;
use crate::store::Store;

/// A device asking again sooner than this is refused (a broken or hostile agent must not
/// make the server sign in a loop).
const MIN_INTERVAL: Duration = Duration::from_secs(60);

pub(crate) async fn run(
    mut rx: mpsc::Receiver<(DeviceId, CertRequest)>,
    certs_dir: PathBuf,
    publisher: Publisher,
    store: Store,
    metrics: Metrics,
) {
    let mut last: HashMap<DeviceId, Instant> = HashMap::new();
    while let Some((device, req)) = rx.recv().await {
        let outcome = if last
            .get(&device)
            .is_some_and(|t| t.elapsed() < MIN_INTERVAL)
        {
            Err("asked again within a minute; wait and retry".to_owned())
        } else {
            last.insert(device.clone(), Instant::now());
            sign(&certs_dir, &device, req.csr.clone(), &store).await
        };
        let reply = match outcome {
            Ok(issued) => {
                metrics.certificates_renewed.inc();
                tracing::info!(%device, serial = %issued.serial_hex, not_after_ms = issued.not_after_ms,
                    "renewed a device certificate");
                CertReply {
                    v: protocol::PROTOCOL_VERSION,
                    request_id: req.request_id,
                    cert: Some(issued.pem),
                    not_after: Some(issued.not_after_ms),
                    error: None,
                }
            }
            Err(why) => {
                metrics.certificates_refused.inc();
                tracing::warn!(%device, error = %why, "certificate renewal refused");
                CertReply {
                    v: protocol::PROTOCOL_VERSION,
                    request_id: req.request_id,
                    cert: None,
                    not_after: None,
                    error: Some(why),
                }
            }
        };
        publisher.publish(&device, Channel::Cert, protocol::encode(&reply));
    }
}

async fn sign(
    certs_dir: &std::path::Path,
    device: &DeviceId,
    csr: String,
    store: &Store,
) -> Result<certs::Issued, String> {
    let (dir, id) = (certs_dir.to_path_buf(), device.clone());
    let signed = tokio::task::spawn_blocking(move || {
        let ca = certs::Ca::load(&dir).map_err(|e| match e {
            certs::CertError::NoCa { .. } => format!(
                "this server does not hold the fleet CA's key ({}); renew by hand with `fleet-certs issue --force`",
                dir.join(certs::CA_KEY).display()
            ),
            other => other.to_string(),
        })?;
        let issued = ca.sign_request(&id, &csr).map_err(|e| e.to_string())?;
        // Kept beside the CA, so that revoking the device revokes this certificate too.
        certs::record_renewed(&dir, &id, &issued).map_err(|e| e.to_string())?;
        Ok::<_, String>(issued)
    })
    .await
    .map_err(|e| format!("signing failed: {e}"))??;
    // Audited before it is handed out: a certificate nobody can account for is worse than
    // a renewal that waits for the database.
    store
        .certificate_renewed(
            device,
            &signed.serial_hex,
            signed.not_after_ms,
            crate::clock::now_ms(),
        )
        .await
        .map_err(|e| format!("not recorded, try again later: {e}"))?;
    Ok(signed)
}
