//! Every MQTT payload a device or the server sends, decoded from arbitrary bytes: never a
//! panic, and whatever decodes encodes back to the same message.
#![no_main]

use libfuzzer_sys::fuzz_target;
use protocol::message::{
    CertReply, CertRequest, CodeSync, Command, CommandAck, EventBatch, Heartbeat, Message,
    Presence, Receipt, StateSnapshot, decode, encode,
};

fn round_trip<M: Message + PartialEq + std::fmt::Debug>(data: &[u8]) {
    if let Ok(m) = decode::<M>(data) {
        let again = decode::<M>(&encode(&m)).expect("an encoded message decodes");
        assert_eq!(m, again, "decode(encode(m)) != m");
    }
}

fuzz_target!(|data: &[u8]| {
    round_trip::<EventBatch>(data);
    round_trip::<Heartbeat>(data);
    round_trip::<StateSnapshot>(data);
    round_trip::<CommandAck>(data);
    round_trip::<Command>(data);
    round_trip::<CodeSync>(data);
    round_trip::<Receipt>(data);
    round_trip::<Presence>(data);
    round_trip::<CertRequest>(data);
    round_trip::<CertReply>(data);
});
