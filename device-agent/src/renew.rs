//! Certificate renewal: before the cabinet's certificate expires, the agent makes a new key,
//! asks the server to sign it over its own `csr` topic, checks the answer against that key and
//! keeps key and certificate together in `{data_dir}/identity.pem` (written atomically), then
//! reconnects with it. Nobody has to visit the cabinet; the old certificate stays valid until
//! it expires or is revoked, so a renewal that fails leaves the cabinet as it was.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use protocol::{CertReply, CertRequest, DeviceId};

use crate::AgentError;

/// The renewed identity's file in the data dir.
pub const IDENTITY_FILE: &str = "identity.pem";
/// An unanswered request is asked again after this long.
const RETRY: Duration = Duration::from_secs(600);
/// At most one renewal a day: a `renew_before_days` longer than the certificates the CA
/// issues must not renew in a loop.
const MIN_INTERVAL: Duration = Duration::from_secs(24 * 3600);

/// The identity the agent connects with: the newer (later expiry) of `identity.pem` from an
/// earlier renewal and `{certs}/{id}.crt` + `.key` as `fleet-certs issue` wrote them — so a
/// certificate issued again by hand (after a revocation) wins over an older renewed one.
pub struct Identity {
    pub tls: Arc<rustls::ClientConfig>,
    pub not_after_ms: i64,
    pub source: PathBuf,
}

/// The device's identity: the renewed one in `data_dir` while it is valid at `now_ms`, else
/// the one issued into `certs_dir`.
pub fn load_identity(
    certs_dir: &Path,
    data_dir: &Path,
    id: &DeviceId,
    now_ms: i64,
) -> Result<Identity, AgentError> {
    let err = |source| AgentError::Certs {
        id: id.to_string(),
        dir: certs_dir.display().to_string(),
        source: Box::new(source),
    };
    let roots = certs::load_roots(&certs_dir.join(certs::CA_CERT)).map_err(err)?;
    let renewed_path = data_dir.join(IDENTITY_FILE);
    let renewed = if renewed_path.exists() {
        match certs::Renewed::load(&renewed_path) {
            Ok(r) if r.not_after_ms > now_ms => Some(r),
            Ok(_) => {
                tracing::warn!(device = %id, path = %renewed_path.display(), "the renewed certificate has expired");
                None
            }
            Err(e) => {
                tracing::error!(device = %id, path = %renewed_path.display(), error = %e, "the renewed identity is unreadable");
                None
            }
        }
    } else {
        None
    };
    let cert_path = certs::device_cert_path(certs_dir, id);
    let issued = (|| {
        let cert = certs::load_certs(&cert_path)?
            .into_iter()
            .next()
            .ok_or_else(|| certs::CertError::NoCertificate {
                path: cert_path.clone(),
            })?;
        let key = certs::load_key(&certs::device_key_path(certs_dir, id))?;
        let not_after = certs::validity(&cert)?.0;
        Ok::<_, certs::CertError>((cert, key, not_after))
    })();
    match (renewed, issued) {
        (Some(r), Ok((_, _, issued_until))) if r.not_after_ms >= issued_until => Ok(Identity {
            tls: tls_config(roots, r.cert, r.key)?,
            not_after_ms: r.not_after_ms,
            source: renewed_path,
        }),
        (Some(r), Err(_)) => Ok(Identity {
            tls: tls_config(roots, r.cert, r.key)?,
            not_after_ms: r.not_after_ms,
            source: renewed_path,
        }),
        (_, Ok((cert, key, not_after_ms))) => Ok(Identity {
            tls: tls_config(roots, cert, key)?,
            not_after_ms,
            source: cert_path,
        }),
        (None, Err(e)) => Err(err(e)),
    }
}

fn tls_config(
    roots: rustls::RootCertStore,
    cert: rustls::pki_types::CertificateDer<'static>,
    key: rustls::pki_types::PrivateKeyDer<'static>,
) -> Result<Arc<rustls::ClientConfig>, AgentError> {
    rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_client_auth_cert(vec![cert], key)
        .map(Arc::new)
        .map_err(|e| AgentError::Tls(e.to_string()))
}

struct Pending {
    request_id: String,
    key_pem: String,
    sent: Instant,
}

/// The renewal state of one agent: when the certificate in use expires, the request waiting
/// for an answer, and when the last renewal happened.
pub struct Renewal {
    id: DeviceId,
    certs_dir: PathBuf,
    data_dir: PathBuf,
    before_ms: i64,
    not_after_ms: i64,
    pending: Option<Pending>,
    last_renewed: Option<Instant>,
}

impl Renewal {
    /// `before_days` 0: never renew.
    pub fn new(
        id: DeviceId,
        certs_dir: PathBuf,
        data_dir: PathBuf,
        before_days: u64,
        not_after_ms: i64,
    ) -> Renewal {
        // The identity file's age says when the last renewal was, also across restarts.
        let last_renewed = std::fs::metadata(data_dir.join(IDENTITY_FILE))
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .and_then(|age| Instant::now().checked_sub(age));
        Renewal {
            id,
            certs_dir,
            data_dir,
            before_ms: before_days as i64 * 86_400_000,
            not_after_ms,
            pending: None,
            last_renewed,
        }
    }

    /// A request to publish now, when the certificate expires within `renew_before_days` and
    /// no request is waiting (or the last went unanswered for a while).
    pub fn due(&mut self, now_ms: i64) -> Option<CertRequest> {
        if self.before_ms == 0 || now_ms + self.before_ms < self.not_after_ms {
            return None;
        }
        if self
            .last_renewed
            .is_some_and(|t| t.elapsed() < MIN_INTERVAL)
            || self
                .pending
                .as_ref()
                .is_some_and(|p| p.sent.elapsed() < RETRY)
        {
            return None;
        }
        match certs::new_request(&self.id) {
            Ok((key_pem, csr)) => {
                let request_id = format!("r-{now_ms}");
                tracing::info!(device = %self.id, not_after_ms = self.not_after_ms, %request_id,
                    "certificate expires soon; asking the server for a new one");
                self.pending = Some(Pending {
                    request_id: request_id.clone(),
                    key_pem,
                    sent: Instant::now(),
                });
                Some(CertRequest {
                    v: protocol::PROTOCOL_VERSION,
                    request_id,
                    csr,
                })
            }
            Err(e) => {
                tracing::error!(device = %self.id, error = %e, "cannot make a signing request");
                None
            }
        }
    }

    /// Handles the server's answer. `Some(tls)`: the renewed identity is on disk and the
    /// connection should be made again with it.
    pub fn on_reply(&mut self, reply: CertReply, now_ms: i64) -> Option<Arc<rustls::ClientConfig>> {
        let pending = match &self.pending {
            Some(p) if p.request_id == reply.request_id => self.pending.take()?,
            _ => {
                tracing::debug!(device = %self.id, request_id = %reply.request_id, "certificate reply to no waiting request ignored");
                return None;
            }
        };
        let cert_pem = match (reply.cert, reply.error) {
            (Some(c), _) => c,
            (None, e) => {
                tracing::warn!(device = %self.id, error = %e.unwrap_or_default(),
                    "the server did not renew this cabinet's certificate; asking again later");
                // Not before RETRY: the refusal is as good as an unanswered request.
                self.pending = Some(Pending {
                    sent: Instant::now(),
                    ..pending
                });
                return None;
            }
        };
        match self.keep(&pending.key_pem, &cert_pem, now_ms) {
            Ok(identity) => {
                tracing::info!(device = %self.id, not_after_ms = identity.not_after_ms,
                    path = %identity.source.display(), "certificate renewed; reconnecting with it");
                self.not_after_ms = identity.not_after_ms;
                self.last_renewed = Some(Instant::now());
                Some(identity.tls)
            }
            Err(e) => {
                tracing::error!(device = %self.id, error = %e, "renewed certificate not kept; asking again later");
                self.pending = Some(Pending {
                    sent: Instant::now(),
                    ..pending
                });
                None
            }
        }
    }

    /// Checks the certificate against the pending key, writes both to `identity.pem`
    /// atomically and reads them back the way the next start will.
    fn keep(&self, key_pem: &str, cert_pem: &str, now_ms: i64) -> Result<Identity, AgentError> {
        let err = |source| AgentError::Certs {
            id: self.id.to_string(),
            dir: self.data_dir.display().to_string(),
            source: Box::new(source),
        };
        certs::Renewed::from_reply(&self.id, key_pem, cert_pem).map_err(err)?;
        let path = self.data_dir.join(IDENTITY_FILE);
        write_private_atomically(
            &path,
            certs::Renewed::file_text(key_pem, cert_pem).as_bytes(),
        )
        .map_err(|e| AgentError::Tls(format!("writing {}: {e}", path.display())))?;
        load_identity(&self.certs_dir, &self.data_dir, &self.id, now_ms)
    }
}

/// Temp file (0600), fsync, rename over `path`, fsync the directory: after a crash the file is
/// the old one or the new one, never half of either.
fn write_private_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("pem.tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renews_once_when_due_and_keeps_the_signed_identity() {
        let dir = tempfile::tempdir().expect("tempdir");
        let certs_dir = dir.path().join("certs");
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data).expect("data");
        certs::init(&certs_dir, false).expect("init");
        let id = DeviceId::parse("cab-1").expect("id");
        certs::issue_device(&certs_dir, &id, false).expect("issue");
        let now = crate::Clock::new(0).now_ms();
        let issued = load_identity(&certs_dir, &data, &id, now).expect("issued identity");
        // Not due: 30 days before a certificate good for two years.
        let mut r = Renewal::new(
            id.clone(),
            certs_dir.clone(),
            data.clone(),
            30,
            issued.not_after_ms,
        );
        assert!(r.due(now).is_none());
        let mut r = Renewal::new(
            id.clone(),
            certs_dir.clone(),
            data.clone(),
            3650,
            issued.not_after_ms,
        );
        let req = r.due(now).expect("due");
        assert!(r.due(now).is_none(), "one request at a time");
        let ca = certs::Ca::load(&certs_dir).expect("ca");
        // A reply to another request is ignored.
        assert!(
            r.on_reply(
                CertReply {
                    v: 1,
                    request_id: "r-0".into(),
                    cert: Some("x".into()),
                    not_after: None,
                    error: None
                },
                now
            )
            .is_none()
        );
        let signed = ca.sign_request(&id, &req.csr).expect("signed");
        let reply = CertReply {
            v: 1,
            request_id: req.request_id.clone(),
            cert: Some(signed.pem),
            not_after: Some(signed.not_after_ms),
            error: None,
        };
        assert!(r.on_reply(reply, now).is_some(), "kept");
        assert!(r.due(now).is_none(), "not again the same day");
        let after_restart = Renewal::new(
            id.clone(),
            certs_dir.clone(),
            data.clone(),
            3650,
            signed.not_after_ms,
        );
        let mut after_restart = after_restart;
        assert!(after_restart.due(now).is_none(), "nor after a restart");
        let now_used = load_identity(&certs_dir, &data, &id, now).expect("renewed identity");
        assert_eq!(now_used.source, data.join(IDENTITY_FILE));
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&now_used.source)
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "the key is private");
    }
}
