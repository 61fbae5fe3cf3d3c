//! `docs/configuration.md` stays complete: every key of the config schema (`hearth config
//! schema`) and every `HEARTH_*` variable the code names is listed there. See: #14.
#![expect(clippy::unwrap_used, reason = "test helpers may unwrap")]

use std::collections::BTreeSet;
use std::path::Path;

use assert_cmd::Command;
use serde_json::Value;

fn root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

fn resolve<'v>(schema: &'v Value, mut node: &'v Value) -> &'v Value {
    while let Some(r) = node.get("$ref").and_then(Value::as_str) {
        let name = r.rsplit('/').next().unwrap();
        node = &schema["$defs"][name];
    }
    node
}

/// Every property path: `a.b`, `<id>` for map values, `[]` for array items.
fn paths(schema: &Value, node: &Value, path: &str, depth: usize, out: &mut BTreeSet<String>) {
    let node = resolve(schema, node);
    if depth > 12 {
        return;
    }
    for key in ["anyOf", "oneOf", "allOf"] {
        for sub in node.get(key).and_then(Value::as_array).into_iter().flatten() {
            paths(schema, sub, path, depth + 1, out);
        }
    }
    if let Some(props) = node.get("properties").and_then(Value::as_object) {
        for (name, sub) in props {
            let full = if path.is_empty() { name.clone() } else { format!("{path}.{name}") };
            out.insert(full.clone());
            paths(schema, sub, &full, depth + 1, out);
        }
    }
    if let Some(values) = node.get("additionalProperties").filter(|v| v.is_object()) {
        paths(schema, values, &format!("{path}.<id>"), depth + 1, out);
    }
    if let Some(items) = node.get("items").filter(|v| v.is_object()) {
        paths(schema, items, &format!("{path}[]"), depth + 1, out);
    }
}

#[test]
fn configuration_md_lists_every_key() {
    let doc = std::fs::read_to_string(root().join("docs/configuration.md")).unwrap();
    let out = Command::cargo_bin("hearth").unwrap().args(["config", "schema"]).output().unwrap();
    let schema: Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut all = BTreeSet::new();
    paths(&schema, &schema, "", 0, &mut all);
    assert!(all.len() > 100, "the walk found {} keys", all.len());
    // The fields of a secret object are described once, in prose.
    let secret_field = |p: &str| {
        p.contains(".headers.<id>.")
            || [".source", ".id", ".provider"].iter().any(|f| {
                p.ends_with(f)
                    && [
                        ".apiKey.",
                        ".token.",
                        ".password.",
                        ".accessToken.",
                        ".botToken.",
                        ".secret.",
                    ]
                    .iter()
                    .any(|s| p.contains(s))
            })
    };
    let missing: Vec<&String> =
        all.iter().filter(|p| !secret_field(p) && !doc.contains(&format!("`{p}`"))).collect();
    assert!(missing.is_empty(), "keys missing from docs/configuration.md: {missing:#?}");
}

#[test]
fn configuration_md_lists_every_hearth_variable() {
    let doc = std::fs::read_to_string(root().join("docs/configuration.md")).unwrap();
    let mut names = BTreeSet::new();
    let mut stack = vec![root().join("crates")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                if path.file_name().is_some_and(|n| n != "tests" && n != "target") {
                    stack.push(path);
                }
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                // Code only: stop at the unit tests.
                let text = text.split("#[cfg(test)]").next().unwrap();
                let mut rest = text;
                while let Some(at) = rest.find("HEARTH_") {
                    let tail = &rest[at..];
                    let end = tail
                        .find(|c: char| !(c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'))
                        .unwrap_or(tail.len());
                    names.insert(tail[..end].trim_end_matches('_').to_owned());
                    rest = &tail[end..];
                }
            }
        }
    }
    assert!(names.contains("HEARTH_STATE_DIR"), "{names:?}");
    let missing: Vec<&String> = names.iter().filter(|n| !doc.contains(n.as_str())).collect();
    assert!(missing.is_empty(), "variables missing from docs/configuration.md: {missing:?}");
}
