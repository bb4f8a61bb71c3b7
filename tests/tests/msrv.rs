//! The workspace's declared `rust-version` is the real minimum: no package
//! in the lockfile's resolved graph (dependencies of every kind) asks for a
//! newer compiler, and it is no higher than those and weir's own code need. Reads `cargo metadata --locked` (offline once built).

use std::process::Command;

fn version(v: &str) -> Vec<u64> {
    let mut parts: Vec<u64> = v.split('.').map(|p| p.parse().expect("a numeric rust-version")).collect();
    parts.resize(3, 0);
    parts
}

#[test]
fn declared_rust_version_covers_every_resolved_package() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let out = Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--locked", "--offline"])
        .current_dir(root)
        .output()
        .expect("run cargo metadata");
    assert!(out.status.success(), "cargo metadata failed: {}", String::from_utf8_lossy(&out.stderr));
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).expect("cargo metadata prints JSON");
    let members: Vec<&str> =
        meta["workspace_members"].as_array().expect("workspace_members").iter().filter_map(|m| m.as_str()).collect();
    let packages = meta["packages"].as_array().expect("packages");
    let declared: Vec<(String, Vec<u64>)> = packages
        .iter()
        .filter(|p| members.contains(&p["id"].as_str().unwrap_or("")))
        .map(|p| {
            let rv = p["rust_version"].as_str().unwrap_or_else(|| panic!("{} declares no rust-version", p["name"]));
            (p["name"].as_str().unwrap_or("?").to_owned(), version(rv))
        })
        .collect();
    assert!(declared.len() >= 7, "every workspace member is seen: {declared:?}");
    let lowest = declared.iter().map(|(_, v)| v.clone()).min().expect("members");
    let mut too_new: Vec<String> = packages
        .iter()
        .filter_map(|p| {
            let rv = p["rust_version"].as_str()?;
            (version(rv) > lowest).then(|| {
                format!("{} {} needs {rv}", p["name"].as_str().unwrap_or("?"), p["version"].as_str().unwrap_or("?"))
            })
        })
        .collect();
    too_new.sort();
    assert!(too_new.is_empty(), "declared rust-version {lowest:?} is below what dependencies need: {too_new:#?}");
    // The true minimum, not a higher guess: the graph's highest requirement,
    // or what weir's own code needs (File::try_lock for partial files: 1.89).
    const OWN: [u64; 3] = [1, 89, 0];
    let deps = packages
        .iter()
        .filter(|p| !members.contains(&p["id"].as_str().unwrap_or("")))
        .filter_map(|p| p["rust_version"].as_str())
        .map(version)
        .max()
        .expect("some dependency declares one");
    assert_eq!(lowest, deps.clone().max(OWN.to_vec()), "rust-version is the true minimum (dependencies need {deps:?})");
}
