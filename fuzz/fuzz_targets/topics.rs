//! Topic names and subscription filters as devices send them: the device id (from its
//! certificate) and the topic, split at the first NUL. Never a panic; a device topic that
//! parses prints back to itself; a device may only publish or subscribe under its own id.
#![no_main]

use libfuzzer_sys::fuzz_target;
use protocol::DeviceId;
use protocol::topic::{DeviceTopic, check_device_publish, check_device_subscribe};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (id, topic) = text.split_once('\0').unwrap_or(("cab-1", text));
    if let Ok(t) = DeviceTopic::parse(topic) {
        assert_eq!(t.to_topic(), topic, "a parsed topic prints back to itself");
    }
    let Ok(device) = DeviceId::parse(id) else {
        return;
    };
    if check_device_publish(&device, topic).is_ok() {
        let t = DeviceTopic::parse(topic).expect("an allowed publish topic parses");
        assert_eq!(t.device, device, "published under another device's id");
    }
    if check_device_subscribe(&device, topic).is_ok() {
        let t = DeviceTopic::parse(topic).expect("an allowed filter is a plain topic");
        assert_eq!(t.device, device, "subscribed to another device's topic");
    }
});
