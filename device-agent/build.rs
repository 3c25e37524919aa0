//! Compiles the target triple into the agent, so it can refuse a release built for another.

fn main() {
    let target = std::env::var("TARGET").unwrap_or_else(|_| "unknown".into());
    println!("cargo:rustc-env=LOCKERFLEET_TARGET={target}");
    println!("cargo:rerun-if-changed=build.rs");
}
