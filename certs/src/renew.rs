//! Certificate renewal without a person: the device makes a new key and a signing request
//! ([`new_request`]), the server signs it with the CA ([`Ca::sign_request`]) taking nothing
//! from it but the public key, and the device checks the answer against its key
//! ([`Renewed::from_reply`]) before it keeps both in one file ([`Renewed::file_text`]).

use rcgen::{
    CertificateParams, CertificateSigningRequestParams, DistinguishedName, DnType, KeyPair,
    PKCS_ECDSA_P256_SHA256,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::issue::device_params;
use crate::{Ca, CertError, DeviceId};

/// A new key pair and the signing request for it, both PEM. The key never leaves the device.
pub fn new_request(id: &DeviceId) -> Result<(String, String), CertError> {
    let key =
        KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(|source| CertError::Rcgen {
            action: "generate a device key".into(),
            source,
        })?;
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, id.as_str());
    params.distinguished_name = dn;
    let csr = params
        .serialize_request(&key)
        .and_then(|r| r.pem())
        .map_err(|source| CertError::Rcgen {
            action: format!("write the signing request of device {id}"),
            source,
        })?;
    Ok((key.serialize_pem(), csr))
}

/// A certificate the CA issued from a request.
#[derive(Debug, Clone)]
pub struct Issued {
    pub pem: String,
    /// Epoch milliseconds.
    pub not_after_ms: i64,
    /// Lower-case hex, as in `revoked.txt`.
    pub serial_hex: String,
}

impl Ca {
    /// Signs `csr_pem` for device `id`, the identity the transport already proved. The request
    /// must be validly self-signed and name exactly `id`; the certificate is the same as
    /// `fleet-certs issue` writes (validity, usage, names), only the public key comes from the
    /// request.
    pub fn sign_request(&self, id: &DeviceId, csr_pem: &str) -> Result<Issued, CertError> {
        let bad = |reason: String| CertError::BadRequest {
            id: id.to_string(),
            reason,
        };
        let csr = CertificateSigningRequestParams::from_pem(csr_pem)
            .map_err(|e| bad(format!("not a valid, self-signed request: {e}")))?;
        let name = csr
            .params
            .distinguished_name
            .get(&DnType::CommonName)
            .and_then(dn_text);
        if name.as_deref() != Some(id.as_str()) {
            return Err(bad(format!(
                "it names {name:?}; a device may only ask for its own name"
            )));
        }
        let cert = device_params(id)?
            .signed_by(&csr.public_key, &self.issuer)
            .map_err(|source| CertError::Rcgen {
                action: format!("sign the renewed certificate of device {id}"),
                source,
            })?;
        let (not_after_ms, serial_hex) = validity(cert.der())?;
        Ok(Issued {
            pem: cert.pem(),
            not_after_ms,
            serial_hex,
        })
    }
}

fn dn_text(v: &rcgen::DnValue) -> Option<String> {
    match v {
        rcgen::DnValue::Utf8String(s) => Some(s.clone()),
        rcgen::DnValue::PrintableString(s) => Some(s.as_str().to_owned()),
        rcgen::DnValue::Ia5String(s) => Some(s.as_str().to_owned()),
        _ => None,
    }
}

/// `not_after` (epoch ms) and the serial (hex) of a DER certificate.
pub fn validity(der: &[u8]) -> Result<(i64, String), CertError> {
    let (_, cert) =
        x509_parser::parse_x509_certificate(der).map_err(|e| CertError::BadCertificate {
            reason: e.to_string(),
        })?;
    let not_after = cert.validity().not_after.timestamp() * 1000;
    Ok((not_after, hex::encode(cert.tbs_certificate.raw_serial())))
}

/// A device's renewed identity: its new key and the certificate the server issued for it,
/// kept together in one PEM file so that a crash can never leave one without the other.
#[derive(Debug)]
pub struct Renewed {
    pub cert: CertificateDer<'static>,
    pub key: PrivateKeyDer<'static>,
    pub not_after_ms: i64,
}

impl Renewed {
    /// Checks a reply's certificate against the key the request was made with: it must
    /// carry that key's public half and name the device. (The TLS handshake then checks the
    /// CA's signature, as for every certificate.)
    pub fn from_reply(id: &DeviceId, key_pem: &str, cert_pem: &str) -> Result<Renewed, CertError> {
        let bad = |reason: String| CertError::BadRequest {
            id: id.to_string(),
            reason,
        };
        let cert = CertificateDer::from_pem_slice(cert_pem.as_bytes())
            .map_err(|e| bad(format!("the reply holds no PEM certificate: {e}")))?;
        let key_pair = KeyPair::from_pem(key_pem).map_err(|source| CertError::Rcgen {
            action: "read the pending renewal key".into(),
            source,
        })?;
        let (_, parsed) =
            x509_parser::parse_x509_certificate(&cert).map_err(|e| CertError::BadCertificate {
                reason: e.to_string(),
            })?;
        if parsed.public_key().subject_public_key.data.as_ref() != key_pair.public_key_raw() {
            return Err(bad(
                "the certificate is not for the key this device asked with".into(),
            ));
        }
        if crate::device_id_from_der(&cert)? != *id {
            return Err(bad("the certificate names another device".into()));
        }
        let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
            .map_err(|e| bad(format!("the pending key is not PEM: {e}")))?;
        let (not_after_ms, _) = validity(&cert)?;
        Ok(Renewed {
            cert,
            key,
            not_after_ms,
        })
    }

    /// What the identity file holds: the key, then the certificate, both PEM.
    pub fn file_text(key_pem: &str, cert_pem: &str) -> String {
        format!("{}\n{}", key_pem.trim_end(), cert_pem)
    }

    /// Reads a file written from [`Renewed::file_text`].
    pub fn load(path: &std::path::Path) -> Result<Renewed, CertError> {
        let text = std::fs::read_to_string(path).map_err(|source| CertError::Io {
            action: "read",
            path: path.to_path_buf(),
            source,
        })?;
        let pem_err = |reason: String| CertError::Pem {
            path: path.to_path_buf(),
            reason,
        };
        let cert = CertificateDer::from_pem_slice(text.as_bytes())
            .map_err(|e| pem_err(format!("no certificate: {e}")))?;
        let key = PrivateKeyDer::from_pem_slice(text.as_bytes())
            .map_err(|e| pem_err(format!("no private key: {e}")))?;
        let (not_after_ms, _) = validity(&cert)?;
        Ok(Renewed {
            cert,
            key,
            not_after_ms,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ca() -> (tempfile::TempDir, Ca) {
        let dir = tempfile::tempdir().expect("tempdir");
        crate::init(dir.path(), false).expect("init");
        let ca = Ca::load(dir.path()).expect("ca");
        (dir, ca)
    }

    fn id(s: &str) -> DeviceId {
        DeviceId::parse(s).expect("id")
    }

    #[test]
    fn a_device_renews_its_own_certificate_and_keeps_key_and_cert_together() {
        let (dir, ca) = ca();
        let me = id("cab-1");
        let (key, csr) = new_request(&me).expect("request");
        let issued = ca.sign_request(&me, &csr).expect("signed");
        assert!(issued.not_after_ms > 1_700_000_000_000);
        let renewed = Renewed::from_reply(&me, &key, &issued.pem).expect("checked");
        assert_eq!(renewed.not_after_ms, issued.not_after_ms);
        let path = dir.path().join("identity.pem");
        std::fs::write(&path, Renewed::file_text(&key, &issued.pem)).expect("write");
        let back = Renewed::load(&path).expect("load");
        assert_eq!(back.cert, renewed.cert);
        assert_eq!(crate::device_id_from_der(&back.cert).expect("cn"), me);
        // The renewed pair is usable for TLS with the fleet's roots.
        let roots = crate::load_roots(&dir.path().join(crate::CA_CERT)).expect("roots");
        rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_client_auth_cert(vec![back.cert], back.key)
        .expect("key and certificate belong together");
    }

    #[test]
    fn a_request_for_another_name_or_a_forged_one_is_refused() {
        let (_dir, ca) = ca();
        let (_, other) = new_request(&id("cab-2")).expect("request");
        let e = ca
            .sign_request(&id("cab-1"), &other)
            .expect_err("other name");
        assert!(e.to_string().contains("its own name"), "{e}");
        let e = ca
            .sign_request(
                &id("cab-1"),
                "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n",
            )
            .expect_err("garbage");
        assert!(e.to_string().contains("not a valid"), "{e}");
    }

    #[test]
    fn a_reply_for_another_key_is_not_kept() {
        let (_dir, ca) = ca();
        let me = id("cab-1");
        let (key, _) = new_request(&me).expect("mine");
        let (_, someone_elses) = new_request(&me).expect("another key");
        let issued = ca.sign_request(&me, &someone_elses).expect("signed");
        let e = Renewed::from_reply(&me, &key, &issued.pem).expect_err("wrong key");
        assert!(e.to_string().contains("not for the key"), "{e}");
    }
}
