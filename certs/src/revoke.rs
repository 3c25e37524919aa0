//! Revocation: a device's certificate put on the CA's revocation list (`crl.pem`), which the
//! broker front enforces at every handshake and reloads while it runs.
//!
//! `revoked.txt` is the list's source (one line per certificate: serial in hex, device id,
//! Unix seconds); `crl.pem` is rewritten from all of it at each revocation, signed by the CA.
//! A device revoked this way gets a new certificate with `fleet-certs issue --force` (a new
//! serial), and only the old one stays refused.

use std::path::Path;

use rcgen::{
    CertificateRevocationListParams, KeyIdMethod, RevocationReason, RevokedCertParams, SerialNumber,
};
use rustls::pki_types::CertificateRevocationListDer;
use rustls::pki_types::pem::PemObject;
use time::{Duration, OffsetDateTime};

use crate::files::{Access, write_atomic};
use crate::{Ca, CertError, DeviceId, device_cert_path, load_certs};

/// The CA's certificate revocation list, read by the broker.
pub const CRL: &str = "crl.pem";
/// Every revocation so far, from which `crl.pem` is written.
pub const REVOKED: &str = "revoked.txt";

/// A CRL says when the next one is due; ours are rewritten at each revocation, and the
/// broker does not refuse a list past this date, so it is only informative.
const CRL_VALIDITY: Duration = Duration::days(365);

/// One revoked certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revocation {
    pub serial_hex: String,
    pub device: DeviceId,
    /// Unix seconds.
    pub at: i64,
}

/// Every revocation listed in `{dir}/revoked.txt` (none when the file does not exist).
pub fn revocations(dir: &Path) -> Result<Vec<Revocation>, CertError> {
    let path = dir.join(REVOKED);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(CertError::Io {
                action: "read",
                path,
                source,
            });
        }
    };
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let bad = |why: &str| CertError::Pem {
            path: path.clone(),
            reason: format!(
                "line {}: {why} (expected `SERIAL_HEX DEVICE_ID UNIX_SECONDS`)",
                n + 1
            ),
        };
        let mut parts = line.split_whitespace();
        let (Some(serial), Some(device), Some(at), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(bad("three fields"));
        };
        if hex::decode(serial).is_err() {
            return Err(bad("serial is not hex"));
        }
        out.push(Revocation {
            serial_hex: serial.to_ascii_lowercase(),
            device: DeviceId::parse(device).map_err(|e| bad(&e.to_string()))?,
            at: at.parse().map_err(|_| bad("time is not a number"))?,
        });
    }
    Ok(out)
}

/// The CA's revocation lists in `{dir}/crl.pem` for the TLS verifier (none without the file).
pub fn load_crls(dir: &Path) -> Result<Vec<CertificateRevocationListDer<'static>>, CertError> {
    let path = dir.join(CRL);
    if !path.exists() {
        return Ok(Vec::new());
    }
    CertificateRevocationListDer::pem_file_iter(&path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| CertError::Pem {
            path,
            reason: e.to_string(),
        })
}

/// Where renewed certificates are recorded, one file per certificate.
pub const RENEWED_DIR: &str = "renewed";

/// Keeps a copy of a certificate issued on renewal (`renewed/{id}-{serial}.crt`), so that
/// revoking the device revokes it too.
pub fn record_renewed(dir: &Path, id: &DeviceId, issued: &crate::Issued) -> Result<(), CertError> {
    let folder = dir.join(RENEWED_DIR);
    crate::files::create_dir(&folder)?;
    write_atomic(
        &folder.join(format!("{id}-{}.crt", issued.serial_hex)),
        issued.pem.as_bytes(),
        Access::Public,
    )
}

/// The device's issued certificate (if present) and every renewed one.
fn device_certificates(dir: &Path, id: &DeviceId) -> Result<Vec<std::path::PathBuf>, CertError> {
    let mut found = Vec::new();
    let issued = device_cert_path(dir, id);
    if issued.exists() {
        found.push(issued);
    }
    let folder = dir.join(RENEWED_DIR);
    if let Ok(entries) = std::fs::read_dir(&folder) {
        let prefix = format!("{id}-");
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            // `{id}-{hex serial}.crt`: ids may contain '-', serials never do.
            if let Some(serial) = name
                .strip_prefix(&prefix)
                .and_then(|r| r.strip_suffix(".crt"))
                && serial.bytes().all(|b| b.is_ascii_hexdigit())
            {
                found.push(e.path());
            }
        }
    }
    if found.is_empty() {
        // Names the file a user expects, as before renewals existed.
        return Err(CertError::NoCertificate {
            path: device_cert_path(dir, id),
        });
    }
    found.sort();
    Ok(found)
}

/// The serial number of a DER certificate, in lower-case hex.
fn serial_hex(der: &[u8], path: &Path) -> Result<String, CertError> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).map_err(|e| CertError::Pem {
        path: path.to_path_buf(),
        reason: format!("not an X.509 certificate: {e}"),
    })?;
    Ok(hex::encode(cert.tbs_certificate.raw_serial()))
}

impl Ca {
    /// Revokes every certificate of the device the CA directory knows — `{dir}/{id}.crt` and
    /// the ones renewed since (`renewed/{id}-{serial}.crt`) — and rewrites `crl.pem` with every
    /// revocation so far. `false` when all of them were revoked already.
    pub fn revoke_device(&self, dir: &Path, id: &DeviceId) -> Result<bool, CertError> {
        let mut list = revocations(dir)?;
        let now = OffsetDateTime::now_utc();
        let mut added = false;
        for cert_path in device_certificates(dir, id)? {
            let leaf = load_certs(&cert_path)?;
            let serial = serial_hex(&leaf[0], &cert_path)?;
            if list.iter().any(|r| r.serial_hex == serial) {
                continue;
            }
            list.push(Revocation {
                serial_hex: serial,
                device: id.clone(),
                at: now.unix_timestamp(),
            });
            added = true;
        }
        if !added {
            return Ok(false);
        }
        self.write_crl(dir, &list, now)?;
        let mut text = String::from(
            "# serial device revoked-at (Unix seconds); crl.pem is written from this\n",
        );
        for r in &list {
            text.push_str(&format!("{} {} {}\n", r.serial_hex, r.device, r.at));
        }
        write_atomic(&dir.join(REVOKED), text.as_bytes(), Access::Public)?;
        Ok(true)
    }

    /// Writes `crl.pem` from `revoked.txt` (an empty, signed list when nothing is revoked):
    /// a broker that needs the file before the first revocation gets a valid one.
    pub fn rewrite_crl(&self, dir: &Path) -> Result<(), CertError> {
        self.write_crl(dir, &revocations(dir)?, OffsetDateTime::now_utc())
    }

    fn write_crl(
        &self,
        dir: &Path,
        list: &[Revocation],
        now: OffsetDateTime,
    ) -> Result<(), CertError> {
        let rcgen_err = |source| CertError::Rcgen {
            action: "write the revocation list".into(),
            source,
        };
        let revoked_certs = list
            .iter()
            .map(|r| RevokedCertParams {
                serial_number: SerialNumber::from_slice(
                    &hex::decode(&r.serial_hex).unwrap_or_default(),
                ),
                revocation_time: OffsetDateTime::from_unix_timestamp(r.at).unwrap_or(now),
                reason_code: Some(RevocationReason::CessationOfOperation),
                invalidity_date: None,
            })
            .collect();
        let params = CertificateRevocationListParams {
            this_update: now - Duration::minutes(5),
            next_update: now + CRL_VALIDITY,
            // Grows with every list: newer lists win wherever two are compared.
            crl_number: SerialNumber::from(now.unix_timestamp().max(1) as u64),
            issuing_distribution_point: None,
            revoked_certs,
            key_identifier_method: KeyIdMethod::Sha256,
        };
        let crl = params.signed_by(&self.issuer).map_err(rcgen_err)?;
        write_atomic(
            &dir.join(CRL),
            crl.pem().map_err(rcgen_err)?.as_bytes(),
            Access::Public,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revoking_a_device_revokes_its_renewed_certificates_too()
    -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        crate::init(dir.path(), false)?;
        let ca = Ca::load(dir.path())?;
        let (id, other) = (DeviceId::parse("cab-1")?, DeviceId::parse("cab-10")?);
        ca.issue_device(dir.path(), &id, false)?;
        ca.issue_device(dir.path(), &other, false)?;
        for device in [&id, &id, &other] {
            let (_, csr) = crate::new_request(device)?;
            let issued = ca.sign_request(device, &csr)?;
            record_renewed(dir.path(), device, &issued)?;
        }
        assert!(ca.revoke_device(dir.path(), &id)?);
        let listed = revocations(dir.path())?;
        // The issued certificate and both renewed ones; cab-10's (a name that starts the
        // same) untouched.
        assert_eq!(listed.len(), 3, "{listed:?}");
        assert!(listed.iter().all(|r| r.device == id));
        assert!(!ca.revoke_device(dir.path(), &id)?, "nothing new to revoke");
        Ok(())
    }

    #[test]
    fn a_revoked_certificate_is_listed_once_and_a_reissued_one_is_not()
    -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        crate::init(dir.path(), false)?;
        let ca = Ca::load(dir.path())?;
        let id = DeviceId::parse("cab-1")?;
        ca.issue_device(dir.path(), &id, false)?;
        // `init` writes a signed list with nothing in it yet.
        assert_eq!(load_crls(dir.path())?.len(), 1, "a list from the start");
        assert!(revocations(dir.path())?.is_empty(), "nothing revoked yet");
        assert!(ca.revoke_device(dir.path(), &id)?);
        assert!(!ca.revoke_device(dir.path(), &id)?, "revoked once");
        let first = revocations(dir.path())?;
        assert_eq!(first.len(), 1);
        assert_eq!(first[0].device, id);
        assert_eq!(load_crls(dir.path())?.len(), 1);
        // A new certificate for the same device has a new serial: revoking it adds a line.
        ca.issue_device(dir.path(), &id, true)?;
        assert!(ca.revoke_device(dir.path(), &id)?);
        let both = revocations(dir.path())?;
        assert_eq!(both.len(), 2);
        assert_ne!(both[0].serial_hex, both[1].serial_hex);
        // The list is signed by the CA: rustls' verifier accepts it with the CA as root.
        let roots = crate::load_roots(&dir.path().join(crate::CA_CERT))?;
        rustls::server::WebPkiClientVerifier::builder_with_provider(
            std::sync::Arc::new(roots),
            std::sync::Arc::new(rustls::crypto::ring::default_provider()),
        )
        .with_crls(load_crls(dir.path())?)
        .build()?;
        Ok(())
    }

    #[test]
    fn a_damaged_revocation_file_names_the_line() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        std::fs::write(
            dir.path().join(REVOKED),
            "# header\nabcd cab-1 17\nzz cab-2 18\n",
        )?;
        let err = revocations(dir.path()).err().ok_or("accepted")?;
        assert!(
            err.to_string().contains("line 3: serial is not hex"),
            "{err}"
        );
        Ok(())
    }
}
