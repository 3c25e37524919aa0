//! The domain crate stays pure: its dependencies are data and parsing crates only, so a rule
//! that reaches for the database, the runtime or the network fails here, not in review.

#[test]
fn dependencies_are_pure() {
    const ALLOWED: &[&str] = &[
        "protocol",
        "serde",
        "serde_json",
        "csv",
        "thiserror",
        "utoipa",
    ];
    let manifest: toml::Table =
        toml::from_str(include_str!("../../Cargo.toml")).expect("Cargo.toml parses");
    let deps = manifest
        .get("dependencies")
        .and_then(|d| d.as_table())
        .expect("a [dependencies] table");
    let impure: Vec<&String> = deps
        .keys()
        .filter(|k| !ALLOWED.contains(&k.as_str()))
        .collect();
    assert!(
        impure.is_empty(),
        "domain must do no I/O, but depends on {impure:?}: put I/O in fleet-server and keep the rule here"
    );
}
