//! The release key (Ed25519, apart from the device CA: whoever holds the CA key can let a
//! device in, not change what runs on it) and the files a release is shipped as: the key pair
//! made and read here, signing and rotation in `protocol::release`.
//!
//! | file | written by | used by |
//! |------|-----------|---------|
//! | `release-key.pk8` (0600) | [`new_release_key`] | [`sign_release`], [`rotate_release_key`] |
//! | `release-key.pub` | [`new_release_key`] | agents and the server (trusted keys) |
//! | `release.json` | [`sign_release`] | the server (upload) and the agent (install) |
//! | `release-key-rotation.json` | [`rotate_release_key`] | agents that trust the old key |

use std::path::{Path, PathBuf};

use protocol::release::{KeyRotation, Manifest, PublicKey, SignedRelease, TrustedKeys, Version};
use ring::signature::Ed25519KeyPair;

use crate::CertError;
use crate::files::{Access, write_atomic};

pub const RELEASE_KEY: &str = "release-key.pk8";
pub const RELEASE_PUB: &str = "release-key.pub";

/// Errors of the release tooling; each says what to do.
#[derive(Debug, thiserror::Error)]
pub enum ReleaseError {
    #[error(transparent)]
    Files(#[from] CertError),
    #[error("{} already exists; a second release key would not be trusted by any cabinet: rotate with `fleet-certs release rotate` instead, or pass --force", path.display())]
    Exists { path: PathBuf },
    #[error("{} is not an Ed25519 release key (PKCS#8): {reason}; make one with `fleet-certs release key`", path.display())]
    BadKey { path: PathBuf, reason: String },
    #[error("could not read {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Refused(#[from] protocol::release::Refusal),
}

fn read(path: &Path) -> Result<Vec<u8>, ReleaseError> {
    std::fs::read(path).map_err(|source| ReleaseError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// Makes a release key pair in `dir`: the private key 0600, the public key as hex.
pub fn new_release_key(dir: &Path, force: bool) -> Result<PublicKey, ReleaseError> {
    let key_path = dir.join(RELEASE_KEY);
    if key_path.exists() && !force {
        return Err(ReleaseError::Exists { path: key_path });
    }
    std::fs::create_dir_all(dir).map_err(|source| CertError::Io {
        action: "create",
        path: dir.to_path_buf(),
        source,
    })?;
    let rng = ring::rand::SystemRandom::new();
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng)
        .map_err(|_| ReleaseError::Invalid("the system random source failed".into()))?;
    let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref())
        .map_err(|e| ReleaseError::Invalid(format!("generated key unusable: {e}")))?;
    write_atomic(&key_path, pkcs8.as_ref(), Access::Secret)?;
    let public = PublicKey::of(&pair);
    write_atomic(
        &dir.join(RELEASE_PUB),
        format!("{}\n", public.to_hex()).as_bytes(),
        Access::Public,
    )?;
    Ok(public)
}

pub fn load_release_key(path: &Path) -> Result<Ed25519KeyPair, ReleaseError> {
    Ed25519KeyPair::from_pkcs8(&read(path)?).map_err(|e| ReleaseError::BadKey {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

/// Reads public release keys, one hex key per line (`#` comments allowed), as `release-key.pub`
/// holds and an agent's `release_keys` file lists.
pub fn load_trusted_keys(path: &Path) -> Result<TrustedKeys, ReleaseError> {
    let text = String::from_utf8(read(path)?)
        .map_err(|_| ReleaseError::Invalid(format!("{} is not text", path.display())))?;
    let mut keys = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        keys.push(PublicKey::from_hex(line).map_err(|e| {
            ReleaseError::Invalid(format!("{} line {}: {e}", path.display(), n + 1))
        })?);
    }
    if keys.is_empty() {
        return Err(ReleaseError::Invalid(format!(
            "{} holds no release key",
            path.display()
        )));
    }
    Ok(TrustedKeys::new(keys))
}

/// What a release is made of, from the command line.
#[derive(Debug, Clone)]
pub struct ReleaseSpec {
    pub version: String,
    pub target: String,
    pub min_server_version: String,
    pub notes: String,
}

/// Signs the agent binary at `binary` as described by `spec`.
pub fn sign_release(
    key: &Ed25519KeyPair,
    binary: &Path,
    spec: &ReleaseSpec,
) -> Result<SignedRelease, ReleaseError> {
    let bytes = read(binary)?;
    let manifest = Manifest {
        v: 1,
        version: Version::parse(&spec.version).map_err(ReleaseError::Invalid)?,
        target: spec.target.clone(),
        size: bytes.len() as u64,
        sha256: hex::encode(ring::digest::digest(&ring::digest::SHA256, &bytes)),
        min_server_version: Version::parse(&spec.min_server_version)
            .map_err(ReleaseError::Invalid)?,
        notes: spec.notes.clone(),
    };
    manifest.check()?;
    Ok(SignedRelease::sign(&manifest, key))
}

/// The old key vouches for the new one.
pub fn rotate_release_key(
    old: &Ed25519KeyPair,
    new_public: &Path,
) -> Result<KeyRotation, ReleaseError> {
    let trusted = load_trusted_keys(new_public)?;
    let [new] = trusted.keys() else {
        return Err(ReleaseError::Invalid(format!(
            "{} must hold exactly one key, the new one",
            new_public.display()
        )));
    };
    Ok(KeyRotation::sign(new, old))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_made_here_signs_a_release_the_public_file_verifies()
    -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let public = new_release_key(dir.path(), false)?;
        assert!(matches!(
            new_release_key(dir.path(), false),
            Err(ReleaseError::Exists { .. })
        ));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(RELEASE_KEY))?
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let binary = dir.path().join("device-agent");
        std::fs::write(&binary, b"\x7fELF agent 0.2.0")?;
        let key = load_release_key(&dir.path().join(RELEASE_KEY))?;
        let spec = ReleaseSpec {
            version: "0.2.0".into(),
            target: "x86_64-unknown-linux-gnu".into(),
            min_server_version: "0.1.0".into(),
            notes: String::new(),
        };
        let signed = sign_release(&key, &binary, &spec)?;
        let trusted = load_trusted_keys(&dir.path().join(RELEASE_PUB))?;
        assert_eq!(trusted.keys(), [public]);
        let manifest = signed.verify(&trusted)?;
        manifest.check_binary(&std::fs::read(&binary)?)?;

        // Rotation: a second key, vouched for by the first.
        let next = tempfile::tempdir()?;
        new_release_key(next.path(), false)?;
        let rotation = rotate_release_key(&key, &next.path().join(RELEASE_PUB))?;
        let mut trusted = trusted;
        let new_key = load_release_key(&next.path().join(RELEASE_KEY))?;
        let by_new = sign_release(&new_key, &binary, &spec)?;
        assert!(by_new.verify(&trusted).is_err());
        trusted.rotate(&rotation)?;
        by_new.verify(&trusted)?;
        Ok(())
    }

    #[test]
    fn bad_inputs_say_what_is_wrong() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let junk = dir.path().join("junk");
        std::fs::write(&junk, b"not a key")?;
        let err = load_release_key(&junk)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            err.contains("not an Ed25519 release key") && err.contains("fleet-certs release key"),
            "{err}"
        );
        std::fs::write(&junk, b"# keys\nzz\n")?;
        let err = load_trusted_keys(&junk)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("line 2"), "{err}");
        Ok(())
    }
}
