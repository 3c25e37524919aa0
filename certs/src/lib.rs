//! LockerFleet certificate authority: creates the CA, the broker's server certificate and the
//! devices' client certificates, and loads them again for the TLS setup of broker and agent.
//!
//! All keys are ECDSA P-256. A device proves who it is with its client certificate: the common
//! name is its [`DeviceId`], which the broker reads back with [`device_id_from_der`]. Every
//! file of one fleet lives in a single directory:
//!
//! | file | written by | used by |
//! |------|-----------|---------|
//! | [`CA_CERT`], [`CA_KEY`] | [`init`] | [`Ca::load`] (issuing), broker and agents (trust root) |
//! | [`SERVER_CERT`], [`SERVER_KEY`] | [`init`] | broker |
//! | `{id}.crt`, `{id}.key` | [`issue_device`], [`Ca::issue_device`] | the device agent `{id}` |
//! | `fleet-server.crt`, `.key` | [`write_mosquitto`] | server replicas on an external broker |
//! | `mosquitto.conf`, `mosquitto.acl` | [`write_mosquitto`] | an external mosquitto broker |
//! | `release-key.pk8`, `release-key.pub` | [`new_release_key`] | signing agent releases (not the CA) |

mod files;
mod issue;
mod mosquitto;
mod release;
mod renew;
mod revoke;
mod tls;

use std::path::{Path, PathBuf};

pub use protocol::DeviceId;

pub use issue::{Ca, check_device_files, init, issue_device};
pub use mosquitto::{
    MOSQUITTO_ACL, MOSQUITTO_CONF, MosquittoFiles, SERVER_CLIENT, acl_text, conf_text,
    server_client_id, write_mosquitto,
};
pub use release::{
    RELEASE_KEY, RELEASE_PUB, ReleaseError, ReleaseSpec, load_release_key, load_trusted_keys,
    new_release_key, rotate_release_key, sign_release,
};
pub use renew::{Issued, Renewed, new_request, validity};
pub use revoke::{CRL, RENEWED_DIR, REVOKED, Revocation, load_crls, record_renewed, revocations};
pub use tls::{device_id_from_der, load_certs, load_key, load_roots};

pub const CA_CERT: &str = "ca.crt";
pub const CA_KEY: &str = "ca.key";
pub const SERVER_CERT: &str = "server.crt";
pub const SERVER_KEY: &str = "server.key";

/// URI SAN prefix of device certificates; the id follows. Lets tools that look at SANs only
/// (and not the CN) still tell which device a certificate belongs to.
pub const DEVICE_URI_PREFIX: &str = "urn:lockerfleet:device:";

/// Everything that can go wrong; each message says what was wrong and, where there is one,
/// what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("no CA in {}: run `fleet-certs init --dir {}` first", dir.display(), dir.display())]
    NoCa { dir: PathBuf },

    #[error("{} already exists; pass --force to overwrite it", path.display())]
    Exists { path: PathBuf },

    // The IdError's text already names the id and the rules, so it is shown, not chained.
    #[error("invalid device id: {0}")]
    InvalidDeviceId(protocol::IdError),

    #[error(
        "device id {id:?} is reserved: its files would overwrite the CA or server files; choose another id"
    )]
    ReservedDeviceId { id: String },

    #[error("could not {action} {}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("could not {action}")]
    Rcgen {
        action: String,
        #[source]
        source: rcgen::Error,
    },

    #[error("{} holds no usable private key (expected a PKCS#8 PEM ECDSA key)", path.display())]
    BadKey {
        path: PathBuf,
        #[source]
        source: rcgen::Error,
    },

    #[error(
        "{} is not a usable CA certificate; re-create the CA with `fleet-certs init --dir {} --force`",
        path.display(), dir.display()
    )]
    BadCaCert {
        path: PathBuf,
        dir: PathBuf,
        #[source]
        source: rcgen::Error,
    },

    #[error(
        "{CA_KEY} in {} does not belong to {CA_CERT}; re-create the CA with `fleet-certs init --dir {} --force`",
        dir.display(), dir.display()
    )]
    CaKeyMismatch { dir: PathBuf },

    #[error("{} is not valid PEM: {reason}", path.display())]
    Pem { path: PathBuf, reason: String },

    #[error("{} holds no PEM certificate", path.display())]
    NoCertificate { path: PathBuf },

    #[error("{} holds no PEM private key", path.display())]
    NoPrivateKey { path: PathBuf },

    #[error("{} holds a certificate that cannot be a trust root", path.display())]
    BadRoot {
        path: PathBuf,
        #[source]
        source: rustls::Error,
    },

    #[error("certificate renewal of device {id} refused: {reason}")]
    BadRequest { id: String, reason: String },

    #[error("not a valid X.509 certificate: {reason}")]
    BadCertificate { reason: String },

    #[error("certificate has no common name; a device certificate carries its device id there")]
    NoCommonName,

    #[error("certificate has {count} common names; a device certificate has exactly one")]
    MultipleCommonNames { count: usize },

    #[error("certificate common name is not a text string: {reason}")]
    BadCommonName { reason: String },
}

/// Validates a device id given on a command line or in a config file.
pub fn parse_device_id(s: &str) -> Result<DeviceId, CertError> {
    DeviceId::parse(s).map_err(CertError::InvalidDeviceId)
}

/// `{dir}/{id}.crt`: the device's client certificate.
pub fn device_cert_path(dir: &Path, id: &DeviceId) -> PathBuf {
    dir.join(format!("{id}.crt"))
}

/// `{dir}/{id}.key`: the device's private key (mode 0600).
pub fn device_key_path(dir: &Path, id: &DeviceId) -> PathBuf {
    dir.join(format!("{id}.key"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_device_ids_are_rejected() {
        for bad in ["a/b", "", "-lead", "a.b", "x$", &"a".repeat(65)] {
            let err = parse_device_id(bad).err();
            assert!(
                matches!(err, Some(CertError::InvalidDeviceId(_))),
                "{bad:?}: {err:?}"
            );
            if let Some(err) = err {
                assert!(err.to_string().starts_with("invalid device id"), "{err}");
            }
        }
        assert!(parse_device_id("locker-0001_b").is_ok());
    }

    #[test]
    fn device_paths_use_the_id() -> Result<(), CertError> {
        let id = parse_device_id("cab-7")?;
        let dir = Path::new("/x");
        assert_eq!(device_cert_path(dir, &id), Path::new("/x/cab-7.crt"));
        assert_eq!(device_key_path(dir, &id), Path::new("/x/cab-7.key"));
        Ok(())
    }

    #[test]
    fn no_ca_message_says_what_to_run() {
        let msg = CertError::NoCa {
            dir: PathBuf::from("/etc/fleet"),
        }
        .to_string();
        assert_eq!(
            msg,
            "no CA in /etc/fleet: run `fleet-certs init --dir /etc/fleet` first"
        );
    }
}
