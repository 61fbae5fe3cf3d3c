//! `hearth infer model run` against the real llama.cpp test bed, for each API kind.
#![expect(clippy::unwrap_used, reason = "test helpers may unwrap")]

use assert_cmd::Command;
use hearth_testkit::LlamaServer;

fn hearth() -> Command {
    let mut cmd = Command::cargo_bin("hearth").unwrap();
    cmd.env_clear().env("HOME", "/nonexistent-hearth-home").env("NO_COLOR", "1");
    cmd
}

fn write_config(dir: &std::path::Path, origin: &str) -> std::path::PathBuf {
    let path = dir.join("hearth.json5");
    std::fs::write(
        &path,
        format!(
            r#"{{
  agents: {{ defaults: {{ models: {{ "chat/tiny": {{ alias: "Tiny" }} }} }} }},
  models: {{
    mode: "replace",
    providers: {{
      chat: {{ baseUrl: "{origin}/v1", api: "openai-completions", models: [{{ id: "tiny", maxTokens: 16, cost: {{ input: 1, output: 2 }} }}] }},
      responses: {{ baseUrl: "{origin}/v1", api: "openai-responses", models: [{{ id: "tiny", maxTokens: 16, cost: {{ input: 1, output: 2 }} }}] }},
      messages: {{ baseUrl: "{origin}", api: "anthropic-messages", apiKey: "sk-local", models: [{{ id: "tiny", maxTokens: 16, cost: {{ input: 1, output: 2 }} }}] }},
    }},
  }},
}}"#
        ),
    )
    .unwrap();
    path
}

#[test]
fn json_envelope_for_each_api() {
    let server = LlamaServer::start(512)
        .unwrap_or_else(|e| panic!("the llama.cpp test bed is required: {e}"));
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &server.origin());
    for (model, api) in [
        ("chat/tiny", "openai-completions"),
        ("responses/tiny", "openai-responses"),
        ("messages/tiny", "anthropic-messages"),
    ] {
        for stream in [false, true] {
            let mut cmd = hearth();
            cmd.args([
                "infer", "model", "run", "--model", model, "--prompt", "hi", "--json", "--config",
            ])
            .arg(&config);
            if stream {
                cmd.arg("--stream");
            }
            let out = cmd.output().unwrap();
            assert!(out.status.success(), "{model}: {}", String::from_utf8_lossy(&out.stdout));
            let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            assert_eq!(v["ok"], true, "{v}");
            assert_eq!(v["api"], api);
            assert!(!v["outputs"]["text"].as_str().unwrap().is_empty(), "{v}");
            assert!(v["usage"]["inputTokens"].as_u64().unwrap() > 0, "{v}");
            assert!(v["usage"]["outputTokens"].as_u64().unwrap() > 0, "{v}");
            assert_eq!(v["usage"]["estimated"], false);
            assert!(v["costUsd"].as_f64().unwrap() > 0.0, "{v}");
            assert_eq!(v["attempts"][0]["outcome"], "ok");
            assert!(v["attempts"][0]["ms"].is_u64());
        }
    }
    // Plain output: the answer on stdout, a summary on stderr; an alias resolves.
    let out = hearth()
        .args(["infer", "model", "run", "--model", "Tiny", "--prompt", "hi", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(!String::from_utf8_lossy(&out.stdout).trim().is_empty());
    assert!(String::from_utf8_lossy(&out.stderr).contains("chat/tiny via openai-completions"));
}

/// `--thinking`: every level the real llama-server is sent, through each API, is accepted
/// (docs/local-models.md, "Thinking levels"); an unknown level is a usage error.
#[test]
fn thinking_levels_reach_the_real_server_through_each_api() {
    let server = LlamaServer::start(512)
        .unwrap_or_else(|e| panic!("the llama.cpp test bed is required: {e}"));
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &server.origin());
    for model in ["chat/tiny", "responses/tiny", "messages/tiny"] {
        for level in ["off", "minimal", "high", "max"] {
            let out = hearth()
                .args(["infer", "model", "run", "--model", model, "--prompt", "hi", "--json"])
                .args(["--thinking", level, "--config"])
                .arg(&config)
                .output()
                .unwrap();
            let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            assert!(out.status.success(), "{model} {level}: {v}");
            assert_eq!(v["ok"], true, "{model} {level}: {v}");
        }
    }
    let out = hearth()
        .args(["infer", "model", "run", "--model", "chat/tiny", "--prompt", "hi"])
        .args(["--thinking", "hihg", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown thinking level `hihg`"));
}

#[test]
fn blank_prompt_is_refused_before_any_call() {
    let out = hearth()
        .args(["infer", "model", "run", "--model", "lmstudio/x", "--prompt", "   "])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("blank"));
}

#[test]
fn unreachable_server_is_a_failure_with_a_hint() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &format!("http://127.0.0.1:{port}"));
    let out = hearth()
        .args([
            "infer",
            "model",
            "run",
            "--model",
            "chat/tiny",
            "--prompt",
            "hi",
            "--json",
            "--config",
        ])
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["ok"], false);
    assert_eq!(v["attempts"][0]["errorClass"], "connect");
    let out = hearth()
        .args(["infer", "model", "run", "--model", "chat/tiny", "--prompt", "hi", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("start the server"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn default_chain_fails_over_when_the_first_server_dies() {
    let first = LlamaServer::start(512)
        .unwrap_or_else(|e| panic!("the llama.cpp test bed is required: {e}"));
    let second = LlamaServer::start(512).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("hearth.json5");
    std::fs::write(
        &config,
        format!(
            r#"{{
  agents: {{ defaults: {{ model: {{ primary: "first/tiny", fallbacks: ["second/tiny"] }} }} }},
  models: {{ mode: "replace", providers: {{
    first: {{ baseUrl: "{}/v1", models: [{{ id: "tiny", maxTokens: 8 }}] }},
    second: {{ baseUrl: "{}/v1", models: [{{ id: "tiny", maxTokens: 8 }}] }},
  }} }},
}}"#,
            first.origin(),
            second.origin()
        ),
    )
    .unwrap();
    let run = || {
        let out = hearth()
            .args(["infer", "model", "run", "--prompt", "hi", "--json", "--config"])
            .arg(&config)
            .output()
            .unwrap();
        (out.status.code(), serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap())
    };
    let (code, v) = run();
    assert_eq!((code, v["ref"].as_str()), (Some(0), Some("first/tiny")), "{v}");
    drop(first);
    let (code, v) = run();
    assert_eq!((code, v["ref"].as_str()), (Some(0), Some("second/tiny")), "{v}");
    assert_eq!(v["attempts"][0]["errorClass"], "connect");
    assert_eq!(v["attempts"][1]["outcome"], "ok");
    // With --model the run is strict: no fallback.
    let out = hearth()
        .args([
            "infer",
            "model",
            "run",
            "--model",
            "first/tiny",
            "--prompt",
            "hi",
            "--json",
            "--config",
        ])
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["attempts"].as_array().unwrap().len(), 1);
}
