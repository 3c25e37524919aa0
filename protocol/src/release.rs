//! Signed agent releases: what a release is (its [`Manifest`]), how it is signed with a release
//! key that is not the device CA (Ed25519), how that key is rotated (the new key signed by one
//! already trusted), and every check a cabinet makes before it installs a release.
//!
//! The signature covers the manifest's exact bytes as shipped ([`SignedRelease::manifest`] is
//! the JSON text, not a re-serialised object), so no canonical JSON is needed and any
//! implementation can verify it. Signatures are domain-separated, so a release signature can
//! never pass as a key rotation or the other way round. Deterministic and without I/O: the key
//! pair is made and read by `certs`, which hands it in.

use std::fmt;

use ring::signature::{self, Ed25519KeyPair, KeyPair};
use serde::{Deserialize, Serialize};

/// Prefixed to a manifest's bytes before signing.
const RELEASE_CONTEXT: &[u8] = b"lockerfleet/release/v1\n";
/// Prefixed to a new public key before the old key signs it.
const ROTATION_CONTEXT: &[u8] = b"lockerfleet/release-key-rotation/v1\n";
/// Longest release notes a manifest carries.
pub const MAX_NOTES: usize = 2_000;
/// Largest agent binary a release may hold (the agent is a few MB; this bounds a download).
pub const MAX_RELEASE_BYTES: u64 = 256 * 1024 * 1024;

/// Why a release (or a key rotation) is refused. `reason` is the stable word reported to the
/// server and audited; the message says what was wrong and what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("the release is not signed; sign it with `fleet-certs release sign`")]
    Unsigned,
    #[error(
        "the release is signed by key {0}, which this cabinet does not trust; sign with a trusted release key or rotate to this key first"
    )]
    UnknownKey(String),
    #[error(
        "the release's signature does not match its manifest (altered after signing, or signed with another key)"
    )]
    BadSignature,
    #[error("the release manifest is malformed: {0}")]
    Malformed(String),
    #[error(
        "the binary does not match its manifest ({0}); the download is damaged or was tampered with"
    )]
    Tampered(String),
    #[error("the release is for {release}, this cabinet runs {this}")]
    WrongTarget { release: String, this: String },
    #[error(
        "the release is {release}, not newer than the running {running}; a rollback must be deployed as one"
    )]
    NotNewer { release: Version, running: Version },
}

impl Refusal {
    /// The stable word for reports, audit and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            Refusal::Unsigned => "unsigned",
            Refusal::UnknownKey(_) => "unknown_key",
            Refusal::BadSignature => "bad_signature",
            Refusal::Malformed(_) => "malformed",
            Refusal::Tampered(_) => "tampered",
            Refusal::WrongTarget { .. } => "wrong_target",
            Refusal::NotNewer { .. } => "downgrade",
        }
    }
}

/// An agent version, `MAJOR.MINOR.PATCH`, ordered numerically.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version {
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
}

impl Version {
    pub fn parse(s: &str) -> Result<Version, String> {
        let mut parts = s.split('.');
        let mut next = |what: &str| -> Result<u32, String> {
            let p = parts.next().ok_or_else(|| {
                format!("version {s:?} lacks its {what} number (MAJOR.MINOR.PATCH)")
            })?;
            if p.is_empty() || p.len() > 9 || !p.bytes().all(|b| b.is_ascii_digit()) {
                return Err(format!(
                    "version {s:?}: {what} {p:?} is not a number (MAJOR.MINOR.PATCH)"
                ));
            }
            p.parse()
                .map_err(|_| format!("version {s:?}: {what} out of range"))
        };
        let v = Version {
            major: next("major")?,
            minor: next("minor")?,
            patch: next("patch")?,
        };
        if parts.next().is_some() {
            return Err(format!("version {s:?} has more than MAJOR.MINOR.PATCH"));
        }
        Ok(v)
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

impl Serialize for Version {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Version {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Version::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// When a cabinet may switch to a new version: a daily window of local time, `from`–`to`
/// (`HH:MM`, 24-hour; a window that wraps midnight such as `23:00`–`04:00` is allowed), in the
/// cabinet's UTC offset (minutes east, e.g. 480 for China Standard Time). Its bounds are
/// checked by [`MaintenanceWindow::check`] wherever one is decoded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MaintenanceWindow {
    #[schemars(pattern(r"^([01][0-9]|2[0-3]):[0-5][0-9]$"))]
    pub from: String,
    #[schemars(pattern(r"^([01][0-9]|2[0-3]):[0-5][0-9]$"))]
    pub to: String,
    #[serde(default)]
    #[schemars(range(min = -840, max = 840))]
    pub utc_offset_minutes: i16,
}

fn minute_of_day(what: &str, s: &str) -> Result<u32, String> {
    let bad = || format!("window {what} {s:?} is not a time HH:MM (24-hour, e.g. 02:00)");
    let (h, m) = s.split_once(':').ok_or_else(bad)?;
    if h.len() != 2 || m.len() != 2 {
        return Err(bad());
    }
    let (h, m): (u32, u32) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    if h > 23 || m > 59 {
        return Err(bad());
    }
    Ok(h * 60 + m)
}

impl MaintenanceWindow {
    /// Says what is wrong with the window, if anything.
    pub fn check(&self) -> Result<(), String> {
        let (from, to) = (
            minute_of_day("from", &self.from)?,
            minute_of_day("to", &self.to)?,
        );
        if from == to {
            return Err(format!(
                "window from {} to {} is empty; leave the window out to install at any time",
                self.from, self.to
            ));
        }
        if !(-840..=840).contains(&self.utc_offset_minutes) {
            return Err(format!(
                "window utc_offset_minutes {} is outside -840..840",
                self.utc_offset_minutes
            ));
        }
        Ok(())
    }

    /// Whether `epoch_ms` falls inside the window (an invalid window contains nothing).
    pub fn contains(&self, epoch_ms: i64) -> bool {
        let (Ok(from), Ok(to)) = (
            minute_of_day("from", &self.from),
            minute_of_day("to", &self.to),
        ) else {
            return false;
        };
        let local_min = epoch_ms.div_euclid(60_000) + i64::from(self.utc_offset_minutes);
        let now = local_min.rem_euclid(24 * 60) as u32;
        if from < to {
            (from..to).contains(&now)
        } else {
            now >= from || now < to
        }
    }
}

impl fmt::Display for MaintenanceWindow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let o = self.utc_offset_minutes;
        let sign = if o < 0 { '-' } else { '+' };
        let o = o.unsigned_abs();
        write!(
            f,
            "{}–{} UTC{sign}{:02}:{:02}",
            self.from,
            self.to,
            o / 60,
            o % 60
        )
    }
}

/// What a release is. Signed as the exact JSON text it was written as.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    #[serde(default = "v1")]
    pub v: u32,
    pub version: Version,
    /// The Rust target triple the binary runs on, e.g. `x86_64-unknown-linux-gnu`.
    pub target: String,
    /// Bytes of the binary.
    pub size: u64,
    /// SHA-256 of the binary, lower-case hex.
    pub sha256: String,
    /// The oldest server that can deploy it.
    pub min_server_version: Version,
    #[serde(default)]
    pub notes: String,
}

fn v1() -> u32 {
    1
}

impl Manifest {
    /// The manifest's own limits, checked before anything trusts it.
    pub fn check(&self) -> Result<(), Refusal> {
        let bad = |m: String| Err(Refusal::Malformed(m));
        if self.v != 1 {
            return bad(format!(
                "manifest version {} is not supported (1 is)",
                self.v
            ));
        }
        let target_ok = !self.target.is_empty()
            && self.target.len() <= 64
            && self
                .target
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !target_ok {
            return bad(format!(
                "target {:?} is not a target triple (letters, digits, '-', '_')",
                self.target
            ));
        }
        if self.size == 0 || self.size > MAX_RELEASE_BYTES {
            return bad(format!(
                "size {} is outside 1..={MAX_RELEASE_BYTES} bytes",
                self.size
            ));
        }
        if self.sha256.len() != 64
            || !self
                .sha256
                .bytes()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        {
            return bad("sha256 must be 64 lower-case hex digits".into());
        }
        if self.notes.len() > MAX_NOTES || self.notes.chars().any(|c| c.is_control() && c != '\n') {
            return bad(format!(
                "notes must be at most {MAX_NOTES} bytes without control characters"
            ));
        }
        Ok(())
    }

    /// Whether a cabinet of `target` running `running` may install it. A rollback (an older
    /// version) only when the deployment says so explicitly.
    pub fn check_install(
        &self,
        target: &str,
        running: Version,
        rollback: bool,
    ) -> Result<(), Refusal> {
        if self.target != target {
            return Err(Refusal::WrongTarget {
                release: self.target.clone(),
                this: target.to_owned(),
            });
        }
        if self.version <= running && !(rollback && self.version < running) {
            return Err(Refusal::NotNewer {
                release: self.version,
                running,
            });
        }
        Ok(())
    }

    /// Whether a downloaded binary is the one signed for: its size and SHA-256.
    pub fn check_binary(&self, bytes: &[u8]) -> Result<(), Refusal> {
        if bytes.len() as u64 != self.size {
            return Err(Refusal::Tampered(format!(
                "{} bytes, the manifest says {}",
                bytes.len(),
                self.size
            )));
        }
        let digest = hex::encode(ring::digest::digest(&ring::digest::SHA256, bytes));
        if digest != self.sha256 {
            return Err(Refusal::Tampered(format!(
                "SHA-256 {digest}, the manifest says {}",
                self.sha256
            )));
        }
        Ok(())
    }
}

/// A release key's public half (Ed25519).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PublicKey([u8; 32]);

impl PublicKey {
    pub fn of(pair: &Ed25519KeyPair) -> PublicKey {
        let mut k = [0u8; 32];
        k.copy_from_slice(pair.public_key().as_ref());
        PublicKey(k)
    }

    pub fn from_hex(s: &str) -> Result<PublicKey, String> {
        let bytes = hex::decode(s.trim()).map_err(|_| format!("release key {s:?} is not hex"))?;
        let k: [u8; 32] = bytes
            .try_into()
            .map_err(|_| format!("release key {s:?} is not 32 bytes (64 hex digits)"))?;
        Ok(PublicKey(k))
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// A short name for the key: the first 16 hex digits of its SHA-256.
    pub fn id(&self) -> String {
        hex::encode(&ring::digest::digest(&ring::digest::SHA256, &self.0).as_ref()[..8])
    }

    fn verify(&self, context: &[u8], message: &[u8], sig: &[u8]) -> bool {
        let mut signed = Vec::with_capacity(context.len() + message.len());
        signed.extend_from_slice(context);
        signed.extend_from_slice(message);
        signature::UnparsedPublicKey::new(&signature::ED25519, &self.0)
            .verify(&signed, sig)
            .is_ok()
    }
}

fn sign_with(pair: &Ed25519KeyPair, context: &[u8], message: &[u8]) -> String {
    let mut signed = Vec::with_capacity(context.len() + message.len());
    signed.extend_from_slice(context);
    signed.extend_from_slice(message);
    hex::encode(pair.sign(&signed).as_ref())
}

/// A release as shipped beside its binary (`release.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct SignedRelease {
    #[serde(default = "v1")]
    pub v: u32,
    /// The manifest's JSON text, exactly as signed.
    pub manifest: String,
    /// [`PublicKey::id`] of the signing key.
    #[serde(default)]
    pub key_id: String,
    /// Ed25519 signature, hex; empty when unsigned.
    #[serde(default)]
    pub signature: String,
}

impl SignedRelease {
    /// Signs `manifest` (written as JSON here, and that text is what is signed).
    pub fn sign(manifest: &Manifest, pair: &Ed25519KeyPair) -> SignedRelease {
        let text = serde_json::to_string(manifest).unwrap_or_default();
        SignedRelease {
            v: 1,
            signature: sign_with(pair, RELEASE_CONTEXT, text.as_bytes()),
            key_id: PublicKey::of(pair).id(),
            manifest: text,
        }
    }

    /// The manifest, if a trusted key signed exactly these bytes and they are a sound manifest.
    pub fn verify(&self, trusted: &TrustedKeys) -> Result<Manifest, Refusal> {
        if self.signature.is_empty() {
            return Err(Refusal::Unsigned);
        }
        let key = trusted
            .find(&self.key_id)
            .ok_or_else(|| Refusal::UnknownKey(self.key_id.chars().take(32).collect()))?;
        let sig = hex::decode(&self.signature).map_err(|_| Refusal::BadSignature)?;
        if !key.verify(RELEASE_CONTEXT, self.manifest.as_bytes(), &sig) {
            return Err(Refusal::BadSignature);
        }
        let manifest: Manifest =
            serde_json::from_str(&self.manifest).map_err(|e| Refusal::Malformed(e.to_string()))?;
        manifest.check()?;
        Ok(manifest)
    }
}

/// A new release key, vouched for by a key already trusted (`release-key-rotation.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRotation {
    #[serde(default = "v1")]
    pub v: u32,
    /// The new public key, hex.
    pub new_key: String,
    /// [`PublicKey::id`] of the key that signed it.
    pub signed_by: String,
    pub signature: String,
}

impl KeyRotation {
    /// `old` vouches for `new`.
    pub fn sign(new: &PublicKey, old: &Ed25519KeyPair) -> KeyRotation {
        KeyRotation {
            v: 1,
            new_key: new.to_hex(),
            signed_by: PublicKey::of(old).id(),
            signature: sign_with(old, ROTATION_CONTEXT, &new.0),
        }
    }
}

/// The release keys a cabinet (or the server) trusts: those it was provisioned with, plus
/// every key a trusted key vouched for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedKeys(Vec<PublicKey>);

impl TrustedKeys {
    pub fn new(keys: impl IntoIterator<Item = PublicKey>) -> TrustedKeys {
        let mut t = TrustedKeys(Vec::new());
        for k in keys {
            t.add(k);
        }
        t
    }

    fn add(&mut self, k: PublicKey) {
        if !self.0.contains(&k) {
            self.0.push(k);
        }
    }

    pub fn keys(&self) -> &[PublicKey] {
        &self.0
    }

    pub fn find(&self, id: &str) -> Option<&PublicKey> {
        self.0.iter().find(|k| k.id() == id)
    }

    /// Trusts the rotation's new key if a trusted key signed it; returns that key.
    pub fn rotate(&mut self, r: &KeyRotation) -> Result<PublicKey, Refusal> {
        let new = PublicKey::from_hex(&r.new_key).map_err(Refusal::Malformed)?;
        if r.signature.is_empty() {
            return Err(Refusal::Unsigned);
        }
        let by = self
            .find(&r.signed_by)
            .ok_or_else(|| Refusal::UnknownKey(r.signed_by.chars().take(32).collect()))?;
        let sig = hex::decode(&r.signature).map_err(|_| Refusal::BadSignature)?;
        if !by.verify(ROTATION_CONTEXT, &new.0, &sig) {
            return Err(Refusal::BadSignature);
        }
        self.add(new);
        Ok(new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A fixed key pair from a seed, so the tests need no randomness.
    fn pair(seed: u8) -> Ed25519KeyPair {
        let seed = [seed; 32];
        let public = Ed25519KeyPair::from_seed_unchecked(&seed).expect("seed");
        let pk = public.public_key().as_ref().to_vec();
        Ed25519KeyPair::from_seed_and_public_key(&seed, &pk).expect("pair")
    }

    fn manifest(version: &str, binary: &[u8]) -> Manifest {
        Manifest {
            v: 1,
            version: Version::parse(version).expect("version"),
            target: "x86_64-unknown-linux-gnu".into(),
            size: binary.len() as u64,
            sha256: hex::encode(ring::digest::digest(&ring::digest::SHA256, binary)),
            min_server_version: Version::parse("0.1.0").expect("version"),
            notes: "fixes the keypad timeout".into(),
        }
    }

    fn v(s: &str) -> Version {
        Version::parse(s).expect("version")
    }

    #[test]
    fn a_signed_release_verifies_and_every_refusal_has_its_reason() {
        let key = pair(1);
        let trusted = TrustedKeys::new([PublicKey::of(&key)]);
        let binary = b"agent build 0.2.0";
        let m = manifest("0.2.0", binary);
        let signed = SignedRelease::sign(&m, &key);
        assert_eq!(signed.verify(&trusted), Ok(m.clone()));
        assert_eq!(m.check_binary(binary), Ok(()));
        assert_eq!(
            m.check_install("x86_64-unknown-linux-gnu", v("0.1.0"), false),
            Ok(())
        );

        let unsigned = SignedRelease {
            signature: String::new(),
            ..signed.clone()
        };
        assert_eq!(
            unsigned.verify(&trusted).map_err(|e| e.reason()),
            Err("unsigned")
        );
        let stranger = SignedRelease::sign(&m, &pair(2));
        assert_eq!(
            stranger.verify(&trusted).map_err(|e| e.reason()),
            Err("unknown_key")
        );
        let altered = SignedRelease {
            manifest: signed.manifest.replace("0.2.0", "0.9.0"),
            ..signed.clone()
        };
        assert_eq!(
            altered.verify(&trusted).map_err(|e| e.reason()),
            Err("bad_signature")
        );
        assert_eq!(
            m.check_binary(b"agent build 0.2.1").map_err(|e| e.reason()),
            Err("tampered")
        );
        assert_eq!(
            m.check_binary(b"short").map_err(|e| e.reason()),
            Err("tampered")
        );
        assert_eq!(
            m.check_install("aarch64-unknown-linux-gnu", v("0.1.0"), false)
                .map_err(|e| e.reason()),
            Err("wrong_target")
        );
        for running in ["0.2.0", "0.3.0"] {
            assert_eq!(
                m.check_install("x86_64-unknown-linux-gnu", v(running), false)
                    .map_err(|e| e.reason()),
                Err("downgrade"),
                "running {running}"
            );
        }
        // An explicit rollback installs an older version, never the same one again.
        assert_eq!(
            m.check_install("x86_64-unknown-linux-gnu", v("0.3.0"), true),
            Ok(())
        );
        assert!(
            m.check_install("x86_64-unknown-linux-gnu", v("0.2.0"), true)
                .is_err()
        );
    }

    #[test]
    fn a_rotation_is_trusted_only_from_a_trusted_key_and_never_passes_as_a_release() {
        let (old, new, rogue) = (pair(1), pair(2), pair(3));
        let mut trusted = TrustedKeys::new([PublicKey::of(&old)]);
        let release = SignedRelease::sign(&manifest("0.2.0", b"x"), &new);
        assert!(release.verify(&trusted).is_err(), "new key not trusted yet");
        let rotation = KeyRotation::sign(&PublicKey::of(&new), &old);
        let mut forged = KeyRotation::sign(&PublicKey::of(&rogue), &rogue);
        assert_eq!(
            trusted.rotate(&forged).map_err(|e| e.reason()),
            Err("unknown_key")
        );
        forged.signed_by = PublicKey::of(&old).id();
        assert_eq!(
            trusted.rotate(&forged).map_err(|e| e.reason()),
            Err("bad_signature")
        );
        assert_eq!(trusted.rotate(&rotation), Ok(PublicKey::of(&new)));
        assert!(release.verify(&trusted).is_ok());
        // Domain separation: the rotation's signature does not sign a manifest.
        let replayed = SignedRelease {
            v: 1,
            manifest: String::from_utf8_lossy(&PublicKey::of(&new).0).into_owned(),
            key_id: PublicKey::of(&old).id(),
            signature: rotation.signature.clone(),
        };
        assert_eq!(
            replayed.verify(&trusted).map_err(|e| e.reason()),
            Err("bad_signature")
        );
    }

    #[test]
    fn manifests_and_versions_are_checked() {
        assert!(v("1.10.0") > v("1.9.3"));
        for bad in [
            "",
            "1",
            "1.2",
            "1.2.3.4",
            "1.x.3",
            "-1.2.3",
            "1..3",
            "01234567890.0.0",
        ] {
            assert!(Version::parse(bad).is_err(), "{bad:?} accepted");
        }
        let mut m = manifest("0.2.0", b"x");
        m.sha256 = "ABC".into();
        assert_eq!(m.check().map_err(|e| e.reason()), Err("malformed"));
        let mut m = manifest("0.2.0", b"x");
        m.target = "x86_64/../../etc".into();
        assert!(m.check().is_err());
        let text = r#"{"v":1,"version":"0.2.0","target":"t","size":1,"sha256":"00","min_server_version":"0.1.0","extra":1}"#;
        assert!(
            serde_json::from_str::<Manifest>(text).is_err(),
            "unknown fields refused"
        );
    }

    proptest! {
        /// Any change to the signed bytes or the signature is refused, never accepted.
        #[test]
        fn any_altered_byte_is_refused(pos in 0usize..400, bit in 0u8..8, in_sig in any::<bool>()) {
            let key = pair(7);
            let trusted = TrustedKeys::new([PublicKey::of(&key)]);
            let signed = SignedRelease::sign(&manifest("1.2.3", b"binary"), &key);
            let mut altered = signed.clone();
            if in_sig {
                let mut sig = hex::decode(&signed.signature).expect("hex");
                let i = pos % sig.len();
                sig[i] ^= 1 << bit;
                altered.signature = hex::encode(sig);
            } else {
                let mut bytes = signed.manifest.clone().into_bytes();
                let i = pos % bytes.len();
                bytes[i] ^= 1 << bit;
                altered.manifest = String::from_utf8_lossy(&bytes).into_owned();
            }
            prop_assume!(altered != signed);
            prop_assert!(altered.verify(&trusted).is_err());
        }
    }

    #[test]
    fn a_maintenance_window_holds_local_times_and_may_wrap_midnight() {
        let w = |from: &str, to: &str, off: i16| MaintenanceWindow {
            from: from.into(),
            to: to.into(),
            utc_offset_minutes: off,
        };
        let at = |h: i64, m: i64| (h * 60 + m) * 60_000; // UTC on 1970-01-01
        let night = w("02:00", "05:00", 480);
        assert!(night.check().is_ok());
        // 02:00 in China is 18:00 UTC the day before.
        assert!(night.contains(at(18, 0)));
        assert!(night.contains(at(20, 59)));
        assert!(!night.contains(at(21, 0)));
        assert!(!night.contains(at(17, 59)));
        let wraps = w("23:00", "01:30", 0);
        assert!(wraps.contains(at(23, 30)) && wraps.contains(at(1, 0)));
        assert!(!wraps.contains(at(1, 30)) && !wraps.contains(at(12, 0)));
        assert_eq!(night.to_string(), "02:00–05:00 UTC+08:00");
        for (bad, why) in [
            (w("2:00", "05:00", 0), "is not a time HH:MM"),
            (w("24:00", "05:00", 0), "is not a time HH:MM"),
            (w("02:00", "02:00", 0), "is empty"),
            (w("02:00", "05:00", 900), "outside -840..840"),
        ] {
            let e = bad.check().expect_err("bad window");
            assert!(e.contains(why), "{e}");
            assert!(!bad.contains(at(3, 0)) || bad.check().is_err());
        }
    }
}
