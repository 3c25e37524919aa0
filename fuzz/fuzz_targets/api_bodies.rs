//! Every HTTP request body of the API from arbitrary bytes, through the extractor the handlers
//! use: accepted, or refused with a 4xx in the API's error shape — never a panic or a 5xx.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a runtime")
    })
}

fuzz_target!(|data: &[u8]| {
    runtime().block_on(fleet_server::fuzzing::decode_every_body(data));
});
