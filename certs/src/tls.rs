//! Loading PEM files for rustls, and reading a device's identity out of its client certificate.

use std::fs::File;
use std::io::BufReader;
use std::path::Path;

use rustls::RootCertStore;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::{CertError, DeviceId};

/// Reads the device id from a DER client certificate: its one common name, which must be a
/// valid [`DeviceId`].
///
/// Call this only on a certificate the TLS layer has already verified against the fleet CA;
/// it checks no signature, so on its own it proves nothing about who sent the certificate.
pub fn device_id_from_der(der: &[u8]) -> Result<DeviceId, CertError> {
    let (_, cert) =
        x509_parser::parse_x509_certificate(der).map_err(|e| CertError::BadCertificate {
            reason: e.to_string(),
        })?;
    let mut names = cert.subject().iter_common_name();
    let cn = names.next().ok_or(CertError::NoCommonName)?;
    let extra = names.count();
    if extra > 0 {
        // Two CNs would let a certificate name one device to one reader and another to the next.
        return Err(CertError::MultipleCommonNames { count: extra + 1 });
    }
    let cn = cn.as_str().map_err(|e| CertError::BadCommonName {
        reason: e.to_string(),
    })?;
    DeviceId::parse(cn).map_err(CertError::InvalidDeviceId)
}

/// All certificates in a PEM file, in file order (leaf first for a chain).
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, CertError> {
    let certs = CertificateDer::pem_reader_iter(open(path)?)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error(path, e))?;
    if certs.is_empty() {
        return Err(CertError::NoCertificate {
            path: path.to_path_buf(),
        });
    }
    Ok(certs)
}

/// The first private key (PKCS#8, SEC1 or PKCS#1) in a PEM file.
pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, CertError> {
    match PrivateKeyDer::from_pem_reader(open(path)?) {
        Ok(key) => Ok(key),
        Err(pem::Error::NoItemsFound) => Err(CertError::NoPrivateKey {
            path: path.to_path_buf(),
        }),
        Err(e) => Err(pem_error(path, e)),
    }
}

/// A root store holding every certificate in the PEM file (normally just ca.crt).
pub fn load_roots(path: &Path) -> Result<RootCertStore, CertError> {
    let mut roots = RootCertStore::empty();
    for cert in load_certs(path)? {
        roots.add(cert).map_err(|source| CertError::BadRoot {
            path: path.to_path_buf(),
            source,
        })?;
    }
    Ok(roots)
}

fn open(path: &Path) -> Result<BufReader<File>, CertError> {
    File::open(path)
        .map(BufReader::new)
        .map_err(|source| CertError::Io {
            action: "open",
            path: path.to_path_buf(),
            source,
        })
}

fn pem_error(path: &Path, e: pem::Error) -> CertError {
    match e {
        pem::Error::Io(source) => CertError::Io {
            action: "read",
            path: path.to_path_buf(),
            source,
        },
        other => CertError::Pem {
            path: path.to_path_buf(),
            reason: other.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use std::fs;

    use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair};

    use super::*;

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    fn self_signed(dn: DistinguishedName) -> Result<Vec<u8>, rcgen::Error> {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let mut params = CertificateParams::default();
        params.distinguished_name = dn;
        Ok(params.self_signed(&key)?.der().to_vec())
    }

    #[test]
    fn common_name_must_be_one_valid_device_id() -> TestResult {
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, "cab-1");
        assert_eq!(device_id_from_der(&self_signed(dn)?)?.as_str(), "cab-1");

        let mut dn = DistinguishedName::new();
        dn.push(DnType::OrganizationName, "LockerFleet");
        let err = device_id_from_der(&self_signed(dn)?).err();
        assert!(matches!(err, Some(CertError::NoCommonName)), "{err:?}");

        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, "a/b");
        let err = device_id_from_der(&self_signed(dn)?).err();
        assert!(
            matches!(err, Some(CertError::InvalidDeviceId(_))),
            "{err:?}"
        );

        // rcgen keeps one value per DnType; the raw CN OID sneaks in a second common name.
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, "cab-1");
        dn.push(DnType::CustomDnType(vec![2, 5, 4, 3]), "cab-2");
        let err = device_id_from_der(&self_signed(dn)?).err();
        assert!(
            matches!(err, Some(CertError::MultipleCommonNames { count: 2 })),
            "{err:?}"
        );

        let err = device_id_from_der(b"not a certificate").err();
        assert!(
            matches!(err, Some(CertError::BadCertificate { .. })),
            "{err:?}"
        );
        Ok(())
    }

    #[test]
    fn pem_files_without_the_expected_item_are_errors() -> TestResult {
        let dir = tempfile::tempdir()?;
        let empty = dir.path().join("empty.pem");
        fs::write(&empty, "just text\n")?;

        let err = load_certs(&empty).err();
        assert!(
            matches!(err, Some(CertError::NoCertificate { .. })),
            "{err:?}"
        );
        if let Some(err) = err {
            assert!(
                err.to_string().ends_with("holds no PEM certificate"),
                "{err}"
            );
        }
        let err = load_key(&empty).err();
        assert!(
            matches!(err, Some(CertError::NoPrivateKey { .. })),
            "{err:?}"
        );
        let err = load_roots(&empty).err();
        assert!(
            matches!(err, Some(CertError::NoCertificate { .. })),
            "{err:?}"
        );

        // A certificate block whose base64 is broken: a PEM error naming the file.
        let broken = dir.path().join("broken.pem");
        fs::write(
            &broken,
            "-----BEGIN CERTIFICATE-----\n!!not base64!!\n-----END CERTIFICATE-----\n",
        )?;
        let err = load_certs(&broken).err();
        assert!(matches!(err, Some(CertError::Pem { .. })), "{err:?}");
        if let Some(err) = err {
            assert!(
                err.to_string().contains("broken.pem is not valid PEM"),
                "{err}"
            );
        }

        let missing = dir.path().join("missing.pem");
        let err = load_certs(&missing).err();
        assert!(matches!(err, Some(CertError::Io { .. })), "{err:?}");
        if let Some(err) = err {
            assert!(err.to_string().contains("missing.pem"), "{err}");
        }
        Ok(())
    }
}
