//! Creating the CA and server certificate (`init`) and issuing device certificates (`Ca`).

use std::fs;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, PKCS_ECDSA_P256_SHA256,
    SanType,
};
use time::{Duration, OffsetDateTime};

use crate::files::{Access, create_dir, refuse_existing, write_atomic};
use crate::{
    CA_CERT, CA_KEY, CertError, DEVICE_URI_PREFIX, DeviceId, SERVER_CERT, SERVER_KEY,
    device_cert_path, device_key_path,
};

const CA_COMMON_NAME: &str = "LockerFleet CA";
const SERVER_COMMON_NAME: &str = "localhost";
const ORGANIZATION: &str = "LockerFleet";

// Plus the two or three leap days, so "10 years" does not end a few days short.
const CA_VALIDITY: Duration = Duration::days(10 * 365 + 3);
const LEAF_VALIDITY: Duration = Duration::days(2 * 365);
/// Certificates start a day early so that a device whose clock lags the CA host's accepts them.
const BACKDATE: Duration = Duration::days(1);

/// Creates ca.crt, ca.key, server.crt, server.key and an empty crl.pem in `dir`, creating
/// `dir` if needed.
///
/// The server certificate is for "localhost", 127.0.0.1 and ::1, which is where the demo runs
/// its broker. Without `force`, nothing is written if any of the four files exists.
pub fn init(dir: &Path, force: bool) -> Result<(), CertError> {
    let paths = [CA_CERT, CA_KEY, SERVER_CERT, SERVER_KEY].map(|name| dir.join(name));
    if !force {
        refuse_existing(paths.iter().map(PathBuf::as_path))?;
    }

    let ca_key = generate_key("generate the CA key")?;
    let ca =
        CertifiedIssuer::self_signed(ca_params(), ca_key).map_err(|source| CertError::Rcgen {
            action: "create the CA certificate".into(),
            source,
        })?;

    let server_key = generate_key("generate the server key")?;
    let server_cert = server_params()?
        .signed_by(&server_key, &ca)
        .map_err(|source| CertError::Rcgen {
            action: "sign the server certificate".into(),
            source,
        })?;

    let [ca_cert_path, ca_key_path, server_cert_path, server_key_path] = paths;
    create_dir(dir)?;
    // Keys before certificates: a certificate on disk then always has its key next to it.
    write_atomic(
        &ca_key_path,
        ca.key().serialize_pem().as_bytes(),
        Access::Secret,
    )?;
    write_atomic(&ca_cert_path, ca.pem().as_bytes(), Access::Public)?;
    write_atomic(
        &server_key_path,
        server_key.serialize_pem().as_bytes(),
        Access::Secret,
    )?;
    write_atomic(
        &server_cert_path,
        server_cert.pem().as_bytes(),
        Access::Public,
    )?;
    // A signed, empty revocation list from the start: brokers that check every client
    // against one (RabbitMQ's crl_check) need it before the first revocation.
    crate::Ca::load(dir)?.rewrite_crl(dir)?;
    Ok(())
}

/// Loads the CA from `dir` and writes `{dir}/{id}.crt` and `{dir}/{id}.key`.
///
/// To issue many certificates, load the CA once with [`Ca::load`] instead.
pub fn issue_device(dir: &Path, id: &DeviceId, force: bool) -> Result<(), CertError> {
    Ca::load(dir)?.issue_device(dir, id, force)
}

/// A CA loaded from disk, ready to sign device certificates.
pub struct Ca {
    pub(crate) issuer: Issuer<'static, KeyPair>,
}

impl std::fmt::Debug for Ca {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Issuer's Debug already leaves the key out; this just names the type.
        f.debug_struct("Ca").field("issuer", &self.issuer).finish()
    }
}

impl Ca {
    /// Reads ca.crt and ca.key from `dir`; [`CertError::NoCa`] if either is missing.
    pub fn load(dir: &Path) -> Result<Ca, CertError> {
        let cert_path = dir.join(CA_CERT);
        let key_path = dir.join(CA_KEY);
        let cert_pem = read_ca_file(dir, &cert_path)?;
        let key_pem = read_ca_file(dir, &key_path)?;

        let key = KeyPair::from_pem(&key_pem).map_err(|source| CertError::BadKey {
            path: key_path.clone(),
            source,
        })?;
        // Signing with a key that does not match ca.crt would produce certificates that no
        // verifier accepts; catching it here gives a message instead of a TLS failure later.
        if !cert_matches_key(&cert_pem, &key) {
            return Err(CertError::CaKeyMismatch {
                dir: dir.to_path_buf(),
            });
        }
        let issuer =
            Issuer::from_ca_cert_pem(&cert_pem, key).map_err(|source| CertError::BadCaCert {
                path: cert_path,
                dir: dir.to_path_buf(),
                source,
            })?;
        Ok(Ca { issuer })
    }

    /// Writes `{dir}/{id}.crt` and `{dir}/{id}.key`, signed by this CA. Without `force`,
    /// nothing is written if either file exists.
    pub fn issue_device(&self, dir: &Path, id: &DeviceId, force: bool) -> Result<(), CertError> {
        check_device_files(dir, id, force)?;
        let cert_path = device_cert_path(dir, id);
        let key_path = device_key_path(dir, id);

        let key = generate_key("generate a device key")?;
        let cert = device_params(id)?
            .signed_by(&key, &self.issuer)
            .map_err(|source| CertError::Rcgen {
                action: format!("sign the certificate of device {id}"),
                source,
            })?;

        create_dir(dir)?;
        write_atomic(&key_path, key.serialize_pem().as_bytes(), Access::Secret)?;
        write_atomic(&cert_path, cert.pem().as_bytes(), Access::Public)?;
        Ok(())
    }
}

/// Whether `{id}.crt` and `{id}.key` may be written to `dir`: the id must not name the CA or
/// server files, and without `force` neither file may exist. [`Ca::issue_device`] checks this
/// itself; call it directly to vet a whole batch before issuing any of it.
pub fn check_device_files(dir: &Path, id: &DeviceId, force: bool) -> Result<(), CertError> {
    // The device files share the directory with the CA and server files; compared without
    // case because of case-insensitive file systems.
    if ["ca", "server"]
        .iter()
        .any(|reserved| id.as_str().eq_ignore_ascii_case(reserved))
    {
        return Err(CertError::ReservedDeviceId {
            id: id.as_str().to_owned(),
        });
    }
    if !force {
        refuse_existing([
            device_cert_path(dir, id).as_path(),
            device_key_path(dir, id).as_path(),
        ])?;
    }
    Ok(())
}

fn read_ca_file(dir: &Path, path: &Path) -> Result<String, CertError> {
    fs::read_to_string(path).map_err(|source| {
        if source.kind() == io::ErrorKind::NotFound {
            CertError::NoCa {
                dir: dir.to_path_buf(),
            }
        } else {
            CertError::Io {
                action: "read",
                path: path.to_path_buf(),
                source,
            }
        }
    })
}

/// Whether the public key in the PEM certificate is the public half of `key`. An unparsable
/// certificate counts as a match so that `Issuer::from_ca_cert_pem` reports the parse error.
fn cert_matches_key(cert_pem: &str, key: &KeyPair) -> bool {
    let Ok((_, pem)) = x509_parser::pem::parse_x509_pem(cert_pem.as_bytes()) else {
        return true;
    };
    let Ok(cert) = pem.parse_x509() else {
        return true;
    };
    cert.public_key().subject_public_key.data.as_ref() == key.public_key_raw()
}

fn generate_key(action: &str) -> Result<KeyPair, CertError> {
    KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(|source| CertError::Rcgen {
        action: action.into(),
        source,
    })
}

fn name(common_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, ORGANIZATION);
    dn.push(DnType::CommonName, common_name);
    dn
}

fn validity(params: &mut CertificateParams, length: Duration) {
    let not_before = OffsetDateTime::now_utc() - BACKDATE;
    params.not_before = not_before;
    params.not_after = not_before + length;
}

fn ca_params() -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = name(CA_COMMON_NAME);
    // Path length 0: this CA signs leaves only, never another CA.
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    validity(&mut params, CA_VALIDITY);
    params
}

/// What server and device certificates have in common.
fn leaf_params(common_name: &str, eku: ExtendedKeyUsagePurpose) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = name(common_name);
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![eku];
    // Lets verifiers pick the right CA key should the CA ever be rotated with an overlap.
    params.use_authority_key_identifier_extension = true;
    validity(&mut params, LEAF_VALIDITY);
    params
}

fn server_params() -> Result<CertificateParams, CertError> {
    let mut params = leaf_params(SERVER_COMMON_NAME, ExtendedKeyUsagePurpose::ServerAuth);
    let localhost =
        rcgen::string::Ia5String::try_from("localhost").map_err(|source| CertError::Rcgen {
            action: "build the server's DNS name".into(),
            source,
        })?;
    params.subject_alt_names = vec![
        SanType::DnsName(localhost),
        SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)),
        SanType::IpAddress(IpAddr::V6(Ipv6Addr::LOCALHOST)),
    ];
    Ok(params)
}

pub(crate) fn device_params(id: &DeviceId) -> Result<CertificateParams, CertError> {
    let mut params = leaf_params(id.as_str(), ExtendedKeyUsagePurpose::ClientAuth);
    let uri = rcgen::string::Ia5String::try_from(format!("{DEVICE_URI_PREFIX}{id}")).map_err(
        |source| CertError::Rcgen {
            action: format!("build the URI name of device {id}"),
            source,
        },
    )?;
    params.subject_alt_names = vec![SanType::URI(uri)];
    Ok(params)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use rustls::client::WebPkiServerVerifier;
    use rustls::client::danger::ServerCertVerifier;
    use rustls::pki_types::{ServerName, UnixTime};
    use rustls::server::WebPkiClientVerifier;

    use super::*;
    use crate::{device_id_from_der, load_certs, load_key, load_roots, parse_device_id};

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    fn install_provider() {
        // Several tests race to install it; whoever loses gets an error that does not matter.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }

    fn read(path: &Path) -> Result<Vec<u8>, io::Error> {
        fs::read(path)
    }

    #[test]
    fn init_issue_and_read_the_id_back() -> TestResult {
        let dir = tempfile::tempdir()?;
        init(dir.path(), false)?;
        let id = parse_device_id("locker-0042")?;
        issue_device(dir.path(), &id, false)?;

        let certs = load_certs(&device_cert_path(dir.path(), &id))?;
        assert_eq!(certs.len(), 1);
        assert_eq!(device_id_from_der(&certs[0])?, id);
        load_key(&device_key_path(dir.path(), &id))?;
        Ok(())
    }

    #[test]
    fn device_cert_has_the_uri_name_and_client_auth() -> TestResult {
        let dir = tempfile::tempdir()?;
        init(dir.path(), false)?;
        let id = parse_device_id("cab_9")?;
        issue_device(dir.path(), &id, false)?;
        let der = load_certs(&device_cert_path(dir.path(), &id))?.remove(0);
        let (_, cert) = x509_parser::parse_x509_certificate(&der)?;
        let san = cert.subject_alternative_name()?.ok_or("no SAN")?;
        let uris: Vec<_> = san
            .value
            .general_names
            .iter()
            .filter_map(|n| match n {
                x509_parser::extensions::GeneralName::URI(u) => Some(*u),
                _ => None,
            })
            .collect();
        assert_eq!(uris, vec!["urn:lockerfleet:device:cab_9"]);
        let eku = cert.extended_key_usage()?.ok_or("no EKU")?;
        assert!(eku.value.client_auth && !eku.value.server_auth);
        let now = OffsetDateTime::now_utc();
        assert!(cert.validity().not_before.to_datetime() < now - Duration::hours(23));
        assert!(cert.validity().not_after.to_datetime() > now + Duration::days(700));
        Ok(())
    }

    #[test]
    fn ca_is_constrained_and_signs_certificates() -> TestResult {
        let dir = tempfile::tempdir()?;
        init(dir.path(), false)?;
        let der = load_certs(&dir.path().join(CA_CERT))?.remove(0);
        let (_, cert) = x509_parser::parse_x509_certificate(&der)?;
        let cn = cert.subject().iter_common_name().next().ok_or("no CN")?;
        assert_eq!(cn.as_str()?, "LockerFleet CA");
        let bc = cert.basic_constraints()?.ok_or("no basic constraints")?;
        assert!(bc.value.ca);
        assert_eq!(bc.value.path_len_constraint, Some(0));
        let ku = cert.key_usage()?.ok_or("no key usage")?;
        assert!(ku.value.key_cert_sign() && ku.value.crl_sign() && ku.value.digital_signature());
        assert!(
            cert.validity().not_after.to_datetime()
                > OffsetDateTime::now_utc() + Duration::days(3640)
        );
        Ok(())
    }

    #[test]
    fn init_refuses_existing_files_unless_forced() -> TestResult {
        let dir = tempfile::tempdir()?;
        init(dir.path(), false)?;
        let before = read(&dir.path().join(CA_CERT))?;

        let err = init(dir.path(), false)
            .err()
            .ok_or("second init succeeded")?;
        assert!(matches!(err, CertError::Exists { .. }), "{err:?}");
        assert!(err.to_string().contains("--force"), "{err}");
        assert_eq!(read(&dir.path().join(CA_CERT))?, before);

        init(dir.path(), true)?;
        assert_ne!(read(&dir.path().join(CA_CERT))?, before);
        Ok(())
    }

    #[test]
    fn issue_refuses_existing_files_unless_forced() -> TestResult {
        let dir = tempfile::tempdir()?;
        init(dir.path(), false)?;
        let ca = Ca::load(dir.path())?;
        let id = parse_device_id("d1")?;
        ca.issue_device(dir.path(), &id, false)?;
        let before = read(&device_cert_path(dir.path(), &id))?;

        let err = ca
            .issue_device(dir.path(), &id, false)
            .err()
            .ok_or("reissued")?;
        assert!(matches!(err, CertError::Exists { .. }), "{err:?}");
        assert_eq!(read(&device_cert_path(dir.path(), &id))?, before);

        ca.issue_device(dir.path(), &id, true)?;
        assert_ne!(read(&device_cert_path(dir.path(), &id))?, before);
        Ok(())
    }

    #[test]
    fn issue_without_ca_says_to_run_init() -> TestResult {
        let dir = tempfile::tempdir()?;
        let id = parse_device_id("d1")?;
        let err = issue_device(dir.path(), &id, false)
            .err()
            .ok_or("issued without CA")?;
        assert!(matches!(err, CertError::NoCa { .. }), "{err:?}");
        let msg = err.to_string();
        assert!(msg.contains("fleet-certs init"), "{msg}");
        assert!(msg.contains(&dir.path().display().to_string()), "{msg}");
        assert!(!device_cert_path(dir.path(), &id).exists());
        Ok(())
    }

    #[test]
    fn reserved_ids_would_clobber_ca_files() -> TestResult {
        let dir = tempfile::tempdir()?;
        init(dir.path(), false)?;
        let before = read(&dir.path().join(CA_CERT))?;
        for id in ["ca", "CA", "server"] {
            let err = issue_device(dir.path(), &parse_device_id(id)?, true)
                .err()
                .ok_or("reserved id issued")?;
            assert!(matches!(err, CertError::ReservedDeviceId { .. }), "{err:?}");
        }
        assert_eq!(read(&dir.path().join(CA_CERT))?, before);
        Ok(())
    }

    #[test]
    fn mismatched_ca_key_is_reported() -> TestResult {
        let a = tempfile::tempdir()?;
        let b = tempfile::tempdir()?;
        init(a.path(), false)?;
        init(b.path(), false)?;
        fs::copy(b.path().join(CA_KEY), a.path().join(CA_KEY))?;
        let err = Ca::load(a.path()).err().ok_or("loaded a mismatched CA")?;
        assert!(matches!(err, CertError::CaKeyMismatch { .. }), "{err:?}");
        Ok(())
    }

    #[cfg(unix)]
    #[test]
    fn key_files_are_owner_only() -> TestResult {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir()?;
        init(dir.path(), false)?;
        let id = parse_device_id("d1")?;
        issue_device(dir.path(), &id, false)?;
        for path in [
            dir.path().join(CA_KEY),
            dir.path().join(SERVER_KEY),
            device_key_path(dir.path(), &id),
        ] {
            let mode = fs::metadata(&path)?.permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{}", path.display());
        }
        Ok(())
    }

    #[test]
    fn device_cert_verifies_as_client_against_the_ca() -> TestResult {
        install_provider();
        let dir = tempfile::tempdir()?;
        init(dir.path(), false)?;
        let id = parse_device_id("locker-1")?;
        issue_device(dir.path(), &id, false)?;

        let roots = Arc::new(load_roots(&dir.path().join(CA_CERT))?);
        let verifier = WebPkiClientVerifier::builder(roots).build()?;
        let cert = load_certs(&device_cert_path(dir.path(), &id))?.remove(0);
        verifier.verify_client_cert(&cert, &[], UnixTime::now())?;

        // A certificate from another fleet's CA must not pass.
        let other = tempfile::tempdir()?;
        init(other.path(), false)?;
        issue_device(other.path(), &id, false)?;
        let foreign = load_certs(&device_cert_path(other.path(), &id))?.remove(0);
        assert!(
            verifier
                .verify_client_cert(&foreign, &[], UnixTime::now())
                .is_err()
        );
        Ok(())
    }

    #[test]
    fn server_cert_verifies_for_localhost_names() -> TestResult {
        install_provider();
        let dir = tempfile::tempdir()?;
        init(dir.path(), false)?;

        let roots = Arc::new(load_roots(&dir.path().join(CA_CERT))?);
        let verifier = WebPkiServerVerifier::builder(roots).build()?;
        let cert = load_certs(&dir.path().join(SERVER_CERT))?.remove(0);
        for name in ["localhost", "127.0.0.1", "::1"] {
            let name = ServerName::try_from(name)?;
            verifier.verify_server_cert(&cert, &[], &name, &[], UnixTime::now())?;
        }
        let wrong = ServerName::try_from("example.com")?;
        assert!(
            verifier
                .verify_server_cert(&cert, &[], &wrong, &[], UnixTime::now())
                .is_err()
        );
        load_key(&dir.path().join(SERVER_KEY))?;
        Ok(())
    }

    #[test]
    fn server_key_works_in_a_rustls_server_config() -> TestResult {
        install_provider();
        let dir = tempfile::tempdir()?;
        init(dir.path(), false)?;
        let id = parse_device_id("d1")?;
        issue_device(dir.path(), &id, false)?;
        let roots = Arc::new(load_roots(&dir.path().join(CA_CERT))?);
        let client_verifier = WebPkiClientVerifier::builder(roots.clone()).build()?;
        rustls::ServerConfig::builder()
            .with_client_cert_verifier(client_verifier)
            .with_single_cert(
                load_certs(&dir.path().join(SERVER_CERT))?,
                load_key(&dir.path().join(SERVER_KEY))?,
            )?;
        rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_client_auth_cert(
                load_certs(&device_cert_path(dir.path(), &id))?,
                load_key(&device_key_path(dir.path(), &id))?,
            )?;
        Ok(())
    }

    #[test]
    fn many_devices_from_one_loaded_ca() -> TestResult {
        let dir = tempfile::tempdir()?;
        init(dir.path(), false)?;
        let ca = Ca::load(dir.path())?;
        let started = std::time::Instant::now();
        for n in 0..200 {
            let id = parse_device_id(&format!("locker-{n:05}"))?;
            ca.issue_device(dir.path(), &id, false)?;
        }
        // Generous bound for a debug build on a loaded 2-core machine; the point is to catch
        // per-device work like re-reading or re-parsing the CA creeping back in.
        assert!(started.elapsed() < std::time::Duration::from_secs(20));
        Ok(())
    }
}
