//! The client certificate the broker front reads a device id from: arbitrary DER never
//! panics, and an id that comes out is a valid device id.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(id) = certs::device_id_from_der(data) {
        assert!(protocol::DeviceId::parse(id.as_str()).is_ok());
    }
});
