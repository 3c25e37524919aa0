//! One-time opening codes and staff credentials: what a cabinet needs to verify them offline.
//!
//! The server never stores a code in clear. For each reservation it sends the cabinet a
//! *grant*: the box, the validity window and `tag = HMAC-SHA256(cabinet key, grant ‖ code)`.
//! The cabinet key is derived from the server's master secret and the device id, so a grant
//! verifies on one cabinet only, for one reservation, box and window; a database backup of
//! tags is useless without the master secret. Staff credentials are PBKDF2 hashes with a
//! per-person salt, checked the same way. Both checks compare in constant time (`ring`).
//!
//! Everything here is deterministic; random codes and salts are drawn by the server.

use ring::{hmac, pbkdf2};

use crate::ids::{BoxNo, DeviceId, ItemId};

pub const MIN_DIGITS: usize = 6;
pub const MAX_DIGITS: usize = 8;
/// Staff credentials: a PIN or a card id, as typed or read.
pub const MIN_STAFF_CREDENTIAL: usize = 4;
pub const MAX_STAFF_CREDENTIAL: usize = 64;
/// PBKDF2 rounds for staff credentials: slows guessing from a stolen database while one
/// check on a cabinet PC stays a few milliseconds.
pub const STAFF_ITERATIONS: u32 = 10_000;

const KEY_CONTEXT: &[u8] = b"lockerfleet/cabinet-code-key/v1";
const CODE_CONTEXT: &[u8] = b"lockerfleet/code/v1";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodeError {
    #[error("a code is {MIN_DIGITS} to {MAX_DIGITS} digits; got {0} characters")]
    Length(usize),
    #[error("a code has digits only")]
    NotDigits,
    #[error(
        "a staff credential is {MIN_STAFF_CREDENTIAL} to {MAX_STAFF_CREDENTIAL} visible ASCII characters"
    )]
    Credential,
    #[error("{0} is not valid hex of the expected length")]
    Hex(&'static str),
}

/// Checks what a person typed before any cryptography: 6 to 8 ASCII digits.
pub fn check_code(code: &str) -> Result<(), CodeError> {
    if !(MIN_DIGITS..=MAX_DIGITS).contains(&code.len()) {
        return Err(CodeError::Length(code.chars().count()));
    }
    if !code.bytes().all(|b| b.is_ascii_digit()) {
        return Err(CodeError::NotDigits);
    }
    Ok(())
}

pub fn check_staff_credential(c: &str) -> Result<(), CodeError> {
    let ok = (MIN_STAFF_CREDENTIAL..=MAX_STAFF_CREDENTIAL).contains(&c.len())
        && c.bytes().all(|b| b.is_ascii_graphic());
    if ok {
        Ok(())
    } else {
        Err(CodeError::Credential)
    }
}

/// The key a cabinet verifies its codes with.
#[derive(Clone, PartialEq, Eq)]
pub struct CabinetKey([u8; 32]);

impl std::fmt::Debug for CabinetKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CabinetKey(..)")
    }
}

impl CabinetKey {
    /// Derived on the server from its master secret; never stored in the database.
    pub fn derive(master: &[u8], device: &DeviceId) -> CabinetKey {
        let key = hmac::Key::new(hmac::HMAC_SHA256, master);
        let mut ctx = hmac::Context::with_key(&key);
        ctx.update(KEY_CONTEXT);
        ctx.update(&[0]);
        ctx.update(device.as_str().as_bytes());
        let mut out = [0u8; 32];
        out.copy_from_slice(ctx.sign().as_ref());
        CabinetKey(out)
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    pub fn from_hex(s: &str) -> Result<CabinetKey, CodeError> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(s, &mut out).map_err(|_| CodeError::Hex("cabinet key"))?;
        Ok(CabinetKey(out))
    }

    fn hmac(&self) -> hmac::Key {
        hmac::Key::new(hmac::HMAC_SHA256, &self.0)
    }
}

/// What a code is bound to: one cabinet, one reservation, one box, one window.
#[derive(Debug, Clone, Copy)]
pub struct Binding<'a> {
    pub device: &'a DeviceId,
    pub item: &'a ItemId,
    pub box_no: BoxNo,
    pub not_before: i64,
    pub not_after: i64,
}

impl<'a> Binding<'a> {
    /// What `grant`, on cabinet `device`, binds its code to: how a cabinet verifies a typed
    /// code, and how the server checks a new code against the cabinet's other grants.
    pub fn of_grant(device: &'a DeviceId, grant: &'a crate::CodeGrant) -> Binding<'a> {
        Binding {
            device,
            item: &grant.item,
            box_no: grant.box_no,
            not_before: grant.not_before,
            not_after: grant.not_after,
        }
    }

    fn message(&self, code: &str) -> Vec<u8> {
        // NUL separators: no field can contain one, so no two bindings share a message.
        let mut m = Vec::with_capacity(96);
        for part in [
            CODE_CONTEXT,
            self.device.as_str().as_bytes(),
            self.item.as_str().as_bytes(),
            self.box_no.get().to_string().as_bytes(),
            self.not_before.to_string().as_bytes(),
            self.not_after.to_string().as_bytes(),
            code.as_bytes(),
        ] {
            m.extend_from_slice(part);
            m.push(0);
        }
        m
    }
}

/// The tag the server sends for a code (hex of HMAC-SHA256).
pub fn code_tag(key: &CabinetKey, binding: &Binding<'_>, code: &str) -> String {
    hex::encode(hmac::sign(&key.hmac(), &binding.message(code)).as_ref())
}

/// Whether `code` is the one `tag` was made for under this binding; constant time.
pub fn verify_code(key: &CabinetKey, binding: &Binding<'_>, code: &str, tag: &str) -> bool {
    let mut raw = [0u8; 32];
    if hex::decode_to_slice(tag, &mut raw).is_err() {
        return false;
    }
    hmac::verify(&key.hmac(), &binding.message(code), &raw).is_ok()
}

/// PBKDF2-HMAC-SHA256 of a staff credential (hex).
pub fn staff_hash(credential: &str, salt: &[u8], iterations: u32) -> String {
    let mut out = [0u8; 32];
    pbkdf2::derive(
        pbkdf2::PBKDF2_HMAC_SHA256,
        std::num::NonZeroU32::new(iterations.max(1)).unwrap_or(std::num::NonZeroU32::MIN),
        salt,
        credential.as_bytes(),
        &mut out,
    );
    hex::encode(out)
}

/// Whether `credential` matches a stored staff hash; constant time.
pub fn verify_staff(credential: &str, salt_hex: &str, iterations: u32, hash_hex: &str) -> bool {
    let (Ok(salt), Ok(hash)) = (hex::decode(salt_hex), hex::decode(hash_hex)) else {
        return false;
    };
    pbkdf2::verify(
        pbkdf2::PBKDF2_HMAC_SHA256,
        std::num::NonZeroU32::new(iterations.max(1)).unwrap_or(std::num::NonZeroU32::MIN),
        &salt,
        credential.as_bytes(),
        &hash,
    )
    .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn dev(s: &str) -> DeviceId {
        DeviceId::parse(s).unwrap_or_else(|e| panic!("{e}"))
    }
    fn item(s: &str) -> ItemId {
        ItemId::parse(s).unwrap_or_else(|e| panic!("{e}"))
    }
    fn boxno(n: u16) -> BoxNo {
        BoxNo::new(n).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn code_format() {
        assert!(check_code("123456").is_ok());
        assert!(check_code("12345678").is_ok());
        assert_eq!(check_code("12345"), Err(CodeError::Length(5)));
        assert_eq!(check_code("123456789"), Err(CodeError::Length(9)));
        assert_eq!(check_code("12345a"), Err(CodeError::NotDigits));
        assert_eq!(check_code("１２３４５６"), Err(CodeError::Length(6)));
    }

    #[test]
    fn a_tag_verifies_its_code_and_binding_only() {
        let (d, i) = (dev("cab-1"), item("r-1"));
        let key = CabinetKey::derive(b"master", &d);
        let b = Binding {
            device: &d,
            item: &i,
            box_no: boxno(3),
            not_before: 10,
            not_after: 20,
        };
        let tag = code_tag(&key, &b, "12345678");
        assert!(verify_code(&key, &b, "12345678", &tag));
        assert!(!verify_code(&key, &b, "12345679", &tag));
        let other = Binding { not_after: 21, ..b };
        assert!(!verify_code(&key, &other, "12345678", &tag));
        assert!(!verify_code(&key, &b, "12345678", "zz"));
        let d2 = dev("cab-2");
        let key2 = CabinetKey::derive(b"master", &d2);
        assert!(
            !verify_code(&key2, &b, "12345678", &tag),
            "another cabinet's key"
        );
        // Found by the `codes` fuzz target: a tag is bytes, read from hex in either case;
        // the same bytes in capitals verify, one changed digit does not.
        assert!(verify_code(&key, &b, "12345678", &tag.to_ascii_uppercase()));
        let mut flipped = tag.clone().into_bytes();
        flipped[0] = if flipped[0] == b'0' { b'1' } else { b'0' };
        let flipped = String::from_utf8(flipped).unwrap_or_default();
        assert!(!verify_code(&key, &b, "12345678", &flipped));
        assert_eq!(CabinetKey::from_hex(&key.to_hex()), Ok(key));
    }

    #[test]
    fn staff_credentials() {
        let h = staff_hash("card-0042", b"salt", 100);
        assert!(verify_staff("card-0042", &hex::encode(b"salt"), 100, &h));
        assert!(!verify_staff("card-0043", &hex::encode(b"salt"), 100, &h));
        assert!(!verify_staff("card-0042", &hex::encode(b"pepper"), 100, &h));
        assert!(!verify_staff("card-0042", "not hex", 100, &h));
        assert!(check_staff_credential("1234").is_ok());
        assert!(check_staff_credential("123").is_err());
        assert!(check_staff_credential("12 34").is_err());
    }

    proptest! {
        /// No code verifies unless it is the issued code under the issued binding.
        #[test]
        fn only_the_issued_code_binding_verifies(
            code in "[0-9]{6,8}", guess in "[0-9]{6,8}",
            cab in 0u8..3, other_cab in 0u8..3,
            bx in 1u16..5, other_box in 1u16..5,
            nb in 0i64..3, other_nb in 0i64..3,
            na in 5i64..8, other_na in 5i64..8,
            it in 0u8..2, other_it in 0u8..2,
        ) {
            let d = dev(&format!("cab-{cab}"));
            let od = dev(&format!("cab-{other_cab}"));
            let (i, oi) = (item(&format!("r-{it}")), item(&format!("r-{other_it}")));
            let issued = Binding { device: &d, item: &i, box_no: boxno(bx), not_before: nb, not_after: na };
            let tag = code_tag(&CabinetKey::derive(b"m", &d), &issued, &code);
            let tried = Binding { device: &od, item: &oi, box_no: boxno(other_box), not_before: other_nb, not_after: other_na };
            let ok = verify_code(&CabinetKey::derive(b"m", &od), &tried, &guess, &tag);
            let same = code == guess && cab == other_cab && it == other_it && bx == other_box
                && nb == other_nb && na == other_na;
            prop_assert_eq!(ok, same);
        }
    }
}
