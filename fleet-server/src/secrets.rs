//! The server's master secret: derives the cabinets' code keys and seals notification bodies
//! that carry a code, so no code is ever stored in clear.
//!
//! The secret lives in a file (default `{data_dir}/secrets/master.key`, created with mode
//! 0600 on first start), not in the database: a leaked database backup reveals no code.

use std::path::{Path, PathBuf};

use protocol::DeviceId;
use protocol::code::CabinetKey;
use ring::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey};
use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("master secret {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error(
        "master secret {0} is not 64 hex digits; restore it from backup (codes already issued depend on it)"
    )]
    Malformed(String),
    #[error(
        "master secret {path} is missing, but the database holds {issued} issued codes that depend on it; restore the file from backup (a new secret would stop every outstanding code and sealed SMS from working), or point master_secret_file at it"
    )]
    Missing { path: String, issued: u64 },
    #[error("the system random generator failed")]
    Random,
    #[error("sealed data is damaged or was sealed with another master secret")]
    Unseal,
}

#[derive(Clone)]
pub struct Secrets {
    master: [u8; 32],
    rng: SystemRandom,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secrets(..)")
    }
}

impl Secrets {
    /// Loads the secret; `None` when the file does not exist (see [`Secrets::create`]).
    pub fn load(path: &Path) -> Result<Option<Secrets>, SecretError> {
        match std::fs::read_to_string(path) {
            Ok(text) => {
                let mut master = [0u8; 32];
                hex::decode_to_slice(text.trim(), &mut master)
                    .map_err(|_| SecretError::Malformed(path.display().to_string()))?;
                Ok(Some(Secrets {
                    master,
                    rng: SystemRandom::new(),
                }))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(SecretError::Io {
                path: path.display().to_string(),
                source,
            }),
        }
    }

    /// Creates a new secret at `path`, only while nothing depends on one: `issued` is how
    /// many codes the database holds. A missing file beside issued codes is a lost backup or
    /// a wrong path, never a first start, so it is refused.
    pub fn create(path: &Path, issued: u64) -> Result<Secrets, SecretError> {
        if issued > 0 {
            return Err(SecretError::Missing {
                path: path.display().to_string(),
                issued,
            });
        }
        let io = |source| SecretError::Io {
            path: path.display().to_string(),
            source,
        };
        let rng = SystemRandom::new();
        let mut master = [0u8; 32];
        rng.fill(&mut master).map_err(|_| SecretError::Random)?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        write_private(path, &hex::encode(master)).map_err(io)?;
        tracing::info!(path = %path.display(), "created the master secret; back it up with the database");
        Ok(Secrets { master, rng })
    }

    /// A secret for tests and benchmarks that never touches the disk.
    pub fn ephemeral() -> Result<Secrets, SecretError> {
        let rng = SystemRandom::new();
        let mut master = [0u8; 32];
        rng.fill(&mut master).map_err(|_| SecretError::Random)?;
        Ok(Secrets { master, rng })
    }

    pub fn default_path(data_dir: &Path) -> PathBuf {
        data_dir.join("secrets").join("master.key")
    }

    pub fn cabinet_key(&self, device: &DeviceId) -> CabinetKey {
        CabinetKey::derive(&self.master, device)
    }

    pub fn random(&self, out: &mut [u8]) -> Result<(), SecretError> {
        self.rng.fill(out).map_err(|_| SecretError::Random)
    }

    /// A uniformly random code of `digits` digits (rejection sampling, no modulo bias).
    pub fn code(&self, digits: usize) -> Result<String, SecretError> {
        let mut code = String::with_capacity(digits);
        while code.len() < digits {
            let mut b = [0u8; 16];
            self.random(&mut b)?;
            for x in b {
                // 250 = 25 × 10: bytes from 250 up would favour 0-5.
                if x < 250 && code.len() < digits {
                    code.push(char::from(b'0' + x % 10));
                }
            }
        }
        Ok(code)
    }

    fn seal_key(&self) -> LessSafeKey {
        let k = hmac::sign(
            &hmac::Key::new(hmac::HMAC_SHA256, &self.master),
            b"lockerfleet/seal/v1",
        );
        // CHACHA20_POLY1305 takes exactly the 32 bytes an HMAC-SHA256 gives.
        let unbound = UnboundKey::new(&aead::CHACHA20_POLY1305, k.as_ref())
            .unwrap_or_else(|_| unreachable!("32-byte key"));
        LessSafeKey::new(unbound)
    }

    /// Encrypts `plain` (hex of nonce ‖ ciphertext ‖ tag).
    pub fn seal(&self, plain: &str) -> Result<String, SecretError> {
        let mut nonce = [0u8; 12];
        self.random(&mut nonce)?;
        let mut buf = plain.as_bytes().to_vec();
        self.seal_key()
            .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::empty(), &mut buf)
            .map_err(|_| SecretError::Unseal)?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&buf);
        Ok(hex::encode(out))
    }

    pub fn open(&self, sealed: &str) -> Result<String, SecretError> {
        let raw = hex::decode(sealed).map_err(|_| SecretError::Unseal)?;
        if raw.len() < 12 {
            return Err(SecretError::Unseal);
        }
        let (nonce, rest) = raw.split_at(12);
        let mut nonce_arr = [0u8; 12];
        nonce_arr.copy_from_slice(nonce);
        let mut buf = rest.to_vec();
        let plain = self
            .seal_key()
            .open_in_place(
                Nonce::assume_unique_for_key(nonce_arr),
                Aad::empty(),
                &mut buf,
            )
            .map_err(|_| SecretError::Unseal)?;
        String::from_utf8(plain.to_vec()).map_err(|_| SecretError::Unseal)
    }
}

#[cfg(unix)]
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()
}

#[cfg(not(unix))]
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    std::fs::write(path, text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_round_trip_and_tamper() {
        let s = Secrets::ephemeral().expect("rng");
        let sealed = s.seal("code 12345678").expect("seal");
        assert!(!sealed.contains("12345678"));
        assert_eq!(s.open(&sealed).expect("open"), "code 12345678");
        let other = Secrets::ephemeral().expect("rng");
        assert!(other.open(&sealed).is_err());
        let mut bad = sealed.clone();
        bad.replace_range(30..32, if &sealed[30..32] == "00" { "01" } else { "00" });
        assert!(s.open(&bad).is_err());
    }

    #[test]
    fn codes_have_the_asked_digits() {
        let s = Secrets::ephemeral().expect("rng");
        for d in 6..=8 {
            let c = s.code(d).expect("code");
            assert_eq!(c.len(), d);
            assert!(protocol::code::check_code(&c).is_ok());
        }
    }

    #[test]
    fn file_is_created_once_and_reloaded() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = Secrets::default_path(dir.path());
        assert!(Secrets::load(&path).expect("absent").is_none());
        let a = Secrets::create(&path, 0).expect("create");
        let b = Secrets::load(&path).expect("load").expect("present");
        let d = DeviceId::parse("cab-1").expect("id");
        assert_eq!(a.cabinet_key(&d), b.cabinet_key(&d));
        std::fs::write(&path, "nonsense").expect("write");
        assert!(matches!(
            Secrets::load(&path),
            Err(SecretError::Malformed(_))
        ));
    }

    #[test]
    fn a_missing_file_beside_issued_codes_is_refused_not_replaced() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = Secrets::default_path(dir.path());
        let Err(e) = Secrets::create(&path, 3) else {
            panic!("a missing secret beside issued codes was replaced");
        };
        assert!(matches!(e, SecretError::Missing { issued: 3, .. }), "{e}");
        assert!(
            e.to_string().contains("restore the file from backup"),
            "{e}"
        );
        assert!(!path.exists(), "no new secret written");
    }
}
