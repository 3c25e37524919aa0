//! One-time codes and staff credentials as typed at the keypad, checked against grants as
//! they arrive in code sets: never a panic, and a code verifies only against its own tag.
#![no_main]

use libfuzzer_sys::fuzz_target;
use protocol::code::{
    Binding, CabinetKey, check_code, check_staff_credential, code_tag, verify_code, verify_staff,
};
use protocol::{BoxNo, DeviceId, ItemId};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut parts = text.split('\0');
    let (code, tag, key_hex, salt_hex) = (
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
    );
    let _ = check_code(code);
    let _ = check_staff_credential(code);
    let key = CabinetKey::from_hex(key_hex).unwrap_or_else(|_| {
        CabinetKey::derive(b"fuzz master", &DeviceId::parse("cab-1").expect("id"))
    });
    let device = DeviceId::parse("cab-1").expect("id");
    let item = ItemId::parse("item-1").expect("item");
    let binding = Binding {
        device: &device,
        item: &item,
        box_no: BoxNo::new(3).expect("box"),
        not_before: 0,
        not_after: i64::from(data.len() as u32),
    };
    let own = code_tag(&key, &binding, code);
    assert!(
        verify_code(&key, &binding, code, &own),
        "a code fails its own tag"
    );
    // Hex is read in either case: only a tag of other bytes must fail.
    if !tag.eq_ignore_ascii_case(&own) {
        assert!(
            !verify_code(&key, &binding, code, tag),
            "a code verified against a foreign tag"
        );
    }
    // Iterations come from the server's code set; kept small here so a run stays fast.
    let iterations = u32::from(data.first().copied().unwrap_or(1) % 4) + 1;
    let _ = verify_staff(code, salt_hex, iterations, tag);
});
