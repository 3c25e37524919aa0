//! The server's and the agent's TOML config files from arbitrary text: parsing and checking
//! never panic, and a file that passes both is one the programs start with.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = Path::new("fuzz.toml");
    if let Ok(cfg) = cli::parse_toml::<fleet_server::ServerConfig>(text, path) {
        if cfg.validate().is_ok() {
            // What `fleet-server` derives from a valid file must not panic either.
            let _ = (
                cfg.database_url(),
                cfg.certs_dir(),
                cfg.influx(),
                cfg.command_ttl(),
            );
        }
    }
    if let Ok(cfg) = cli::parse_toml::<device_agent::AgentConfig>(text, path) {
        if cfg.validate().is_ok() {
            let _ = (cfg.server_addr(), cfg.lockout());
        }
    }
});
