//! The server's layout as ARCHITECTURE.md draws it, checked on the source: which top-level
//! module may use which (`crate::…` paths outside tests and comments), and no cycles.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Top-level module → the crate modules and items its code names.
fn uses() -> BTreeMap<String, BTreeSet<String>> {
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut files = Vec::new();
    collect(&src, &mut files);
    for file in files {
        let rel = file.strip_prefix(&src).expect("under src");
        let top = rel
            .components()
            .next()
            .and_then(|c| c.as_os_str().to_str())
            .map(|s| s.trim_end_matches(".rs").to_owned())
            .expect("name");
        if top == "lib" || top == "main" {
            continue;
        }
        let text = std::fs::read_to_string(&file).expect("source");
        let code = text.split("#[cfg(test)]").next().unwrap_or_default();
        let used = out.entry(top.clone()).or_default();
        for line in code.lines().filter(|l| !l.trim_start().starts_with("//")) {
            for (i, _) in line.match_indices("crate::") {
                let name: String = line[i + 7..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                if !name.is_empty() && name != top {
                    used.insert(name);
                }
            }
        }
    }
    out
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            collect(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn modules_depend_one_way() {
    let uses = uses();
    let of = |m: &str| uses.get(m).cloned().unwrap_or_default();
    // Storage knows nothing of the server above it but the clock.
    let store: Vec<_> = of("store").into_iter().filter(|m| m != "clock").collect();
    assert!(store.is_empty(), "store/ uses {store:?}");
    // The HTTP edge and the runtime tasks do not know each other.
    assert!(!of("runtime").contains("api"), "runtime/ uses api/");
    assert!(!of("api").contains("runtime"), "api/ uses runtime/");
    // The services do not reach into the runtime (they share `devices` with it).
    for service in ["commands", "service"] {
        assert!(
            !of(service).contains("runtime"),
            "{service} uses runtime/: {:?}",
            of(service)
        );
    }
    // No cycles among top-level modules.
    for (m, deps) in &uses {
        for d in deps {
            let mut seen = BTreeSet::new();
            let mut stack = vec![d.clone()];
            while let Some(n) = stack.pop() {
                assert!(n != *m, "import cycle: {m} → {d} → … → {m}");
                if seen.insert(n.clone()) {
                    stack.extend(of(&n));
                }
            }
        }
    }
}

/// The HTTP API's wire types live in `api-types` (ADR 0016): a handler module that derives
/// serde itself has started a second definition. `PlanOptions` is the exception: it is also
/// the `fleet-server plan` command's arguments (clap), which `api-types` does not compile.
#[test]
fn the_api_modules_define_no_wire_types() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src/api");
    let mut files = Vec::new();
    collect(&dir, &mut files);
    let mut found = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).expect("source");
        let code = text.split("#[cfg(test)]").next().unwrap_or_default();
        let lines: Vec<&str> = code.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            let derives_serde = line.trim_start().starts_with("#[derive(")
                && (line.contains("Serialize") || line.contains("Deserialize"));
            if derives_serde && !line.contains("clap::Args") {
                found.push(format!("{}:{}", file.display(), i + 1));
            }
        }
    }
    assert!(found.is_empty(), "wire types outside api-types: {found:?}");
}
