//! `hearth models resolve` shows the provider routing each OpenRouter candidate is sent with
//! (merged key by key), as one line and as `providerRouting` in `--json`; candidates on other
//! servers show none. The config is the "Region-pinned hosted fallback" example of
//! `docs/local-models.md`. See: #15 (item 7).
#![expect(clippy::unwrap_used, reason = "test helpers may unwrap")]

use std::path::Path;

use assert_cmd::Command;
use serde_json::{Value, json};

fn resolve(extra: &[&str]) -> String {
    let config = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../hearth-config/tests/corpus/region-pinned.json5")
        .display()
        .to_string();
    let out = Command::cargo_bin("hearth")
        .unwrap()
        .env_clear()
        .env("HOME", "/nonexistent-hearth-home")
        .env("NO_COLOR", "1")
        .env("OPENROUTER_API_KEY", "or-test-key")
        .args(["models", "resolve", "--config", &config])
        .args(extra)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// The line under each candidate that follows its `N. ref` line, if it is a routing line.
fn routing_after<'a>(stdout: &'a str, candidate: &str) -> Option<&'a str> {
    let mut lines = stdout.lines();
    lines.by_ref().find(|l| l.trim_start().starts_with(candidate))?;
    lines.next().and_then(|l| l.strip_prefix("     routing: "))
}

#[test]
fn resolve_shows_each_openrouter_candidates_routing() {
    let stdout = resolve(&[]);
    assert_eq!(
        routing_after(&stdout, "2. openrouter/minimax/minimax-m2 "),
        Some("only [deepinfra, fireworks, together] · fallbacks off · data collection deny · zdr"),
        "{stdout}"
    );
    assert_eq!(
        routing_after(&stdout, "4. openrouter/z-ai/glm-4.6 "),
        Some("only [deepinfra] · fallbacks off · data collection deny · zdr"),
        "the model's `only` replaces the provider's, the other keys stay: {stdout}"
    );
    assert_eq!(routing_after(&stdout, "1. lmstudio/"), None, "{stdout}");
    assert_eq!(routing_after(&stdout, "5. anthropic/"), None, "{stdout}");
}

#[test]
fn resolve_json_has_the_merged_object() {
    let v: Value = serde_json::from_str(&resolve(&["--json"])).unwrap();
    let routing: Vec<(&str, &Value)> = v["candidates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["ref"].as_str().unwrap(), &c["providerRouting"]))
        .collect();
    let pinned = json!({"only": ["deepinfra", "fireworks", "together"], "allow_fallbacks": false,
        "data_collection": "deny", "zdr": true});
    let glm = json!({"only": ["deepinfra"], "allow_fallbacks": false, "data_collection": "deny",
        "zdr": true});
    assert_eq!(
        routing,
        [
            ("lmstudio/minimax-m2.1-gs32", &Value::Null),
            ("openrouter/minimax/minimax-m2", &pinned),
            ("openrouter/moonshotai/kimi-k2.6", &pinned),
            ("openrouter/z-ai/glm-4.6", &glm),
            ("anthropic/claude-sonnet-4-5", &Value::Null),
        ]
    );
}
