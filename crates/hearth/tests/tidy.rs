//! Architecture checks: dependencies point one way, and the layers keep their boundaries.

use std::collections::BTreeMap;
use std::process::Command;

#[test]
fn dependency_direction() {
    let out = Command::new(env!("CARGO"))
        .args(["metadata", "--format-version", "1", "--no-deps", "--offline"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo metadata runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).expect("metadata is JSON");
    // crate -> (normal dependencies)
    let mut deps: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for pkg in meta["packages"].as_array().expect("packages") {
        let name = pkg["name"].as_str().expect("name").to_owned();
        let normal = pkg["dependencies"]
            .as_array()
            .expect("dependencies")
            .iter()
            .filter(|d| d["kind"].is_null())
            .map(|d| d["name"].as_str().expect("dep name").to_owned())
            .collect();
        deps.insert(name, normal);
    }
    // Allowed hearth-* dependencies of each crate (wire <- config <- upstream, store <- agent <-
    // channels <- server <- hearth).
    let allowed: BTreeMap<&str, &[&str]> = BTreeMap::from([
        ("hearth-wire", &[][..]),
        ("hearth-config", &["hearth-wire"][..]),
        ("hearth-upstream", &["hearth-wire", "hearth-config"][..]),
        ("hearth-store", &["hearth-wire", "hearth-config"][..]),
        ("hearth-agent", &["hearth-wire", "hearth-config", "hearth-upstream", "hearth-store"][..]),
        (
            "hearth-channels",
            &["hearth-wire", "hearth-config", "hearth-upstream", "hearth-store", "hearth-agent"][..],
        ),
        (
            "hearth-server",
            &[
                "hearth-wire",
                "hearth-config",
                "hearth-upstream",
                "hearth-store",
                "hearth-agent",
                "hearth-channels",
            ][..],
        ),
        (
            "hearth",
            &[
                "hearth-wire",
                "hearth-config",
                "hearth-upstream",
                "hearth-store",
                "hearth-agent",
                "hearth-channels",
                "hearth-server",
            ][..],
        ),
        (
            "hearth-testkit",
            &[
                "hearth-wire",
                "hearth-config",
                "hearth-upstream",
                "hearth-store",
                "hearth-agent",
                "hearth-channels",
                "hearth-server",
            ][..],
        ),
    ]);
    let forbidden: &[(&str, &[&str])] = &[
        ("hearth-wire", &["tokio", "reqwest", "axum", "hyper", "sqlx"]),
        ("hearth-config", &["tokio", "reqwest", "axum", "sqlx"]),
        ("hearth-agent", &["axum"]),
        ("hearth-store", &["reqwest", "axum"]),
    ];
    for (name, list) in &deps {
        if !name.starts_with("hearth") {
            continue;
        }
        let allow =
            allowed.get(name.as_str()).unwrap_or_else(|| panic!("add {name} to the tidy table"));
        for dep in list.iter().filter(|d| d.starts_with("hearth")) {
            assert!(allow.contains(&dep.as_str()), "{name} must not depend on {dep}");
        }
        if !["hearth-upstream", "hearth-channels", "hearth-testkit"].contains(&name.as_str()) {
            assert!(
                !list.iter().any(|d| d == "reqwest"),
                "only hearth-upstream (model servers) and hearth-channels (chat services) talk \
                 HTTP out ({name})"
            );
        }
        if name != "hearth-store" {
            assert!(
                !list.iter().any(|d| d == "sqlx" || d == "redis"),
                "only hearth-store knows sqlx ({name})"
            );
        }
        if name != "hearth-server" && name != "hearth-testkit" {
            assert!(!list.iter().any(|d| d == "axum"), "only hearth-server knows axum ({name})");
        }
    }
    for (name, banned) in forbidden {
        let list = &deps[*name];
        for b in *banned {
            assert!(!list.iter().any(|d| d == b), "{name} must not depend on {b}");
        }
    }
}
