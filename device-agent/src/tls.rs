//! The agent's TLS client settings: trust our CA, present the device's certificate.

use std::sync::Arc;

use protocol::DeviceId;

use crate::AgentError;

/// TLS client settings: trust our CA, present the device's certificate.
pub fn client_tls(
    certs_dir: &std::path::Path,
    id: &DeviceId,
) -> Result<Arc<rustls::ClientConfig>, AgentError> {
    let err = |source| AgentError::Certs {
        id: id.to_string(),
        dir: certs_dir.display().to_string(),
        source: Box::new(source),
    };
    let roots = certs::load_roots(&certs_dir.join(certs::CA_CERT)).map_err(err)?;
    let chain = certs::load_certs(&certs::device_cert_path(certs_dir, id)).map_err(err)?;
    let key = certs::load_key(&certs::device_key_path(certs_dir, id)).map_err(err)?;
    let config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .map_err(|e| AgentError::Tls(e.to_string()))?;
    Ok(Arc::new(config))
}
