//! Compiles into the agent the target triple (so it can refuse a release built for another)
//! and its version: the package's, or `LOCKERFLEET_AGENT_VERSION` where a release is built
//! with its own (the version an agent reports is always the one compiled into it).

fn main() {
    let target = std::env::var("TARGET").unwrap_or_else(|_| "unknown".into());
    println!("cargo:rustc-env=LOCKERFLEET_TARGET={target}");
    let version = std::env::var("LOCKERFLEET_AGENT_VERSION")
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| std::env::var("CARGO_PKG_VERSION").unwrap_or_default());
    println!("cargo:rustc-env=LOCKERFLEET_AGENT_VERSION={version}");
    println!("cargo:rerun-if-env-changed=LOCKERFLEET_AGENT_VERSION");
    println!("cargo:rerun-if-changed=build.rs");
}
