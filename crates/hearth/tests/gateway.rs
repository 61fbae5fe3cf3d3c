//! `hearth gateway run` as a process: startup, refusal to bind without auth, graceful drain on
//! SIGTERM, and the real `openai` and `anthropic` Python SDKs against the real llama-server.
#![expect(clippy::unwrap_used, reason = "tests")]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use hearth_testkit::{FakeUpstream, GatewayProcess, LlamaServer, Reply};

fn spawn_gateway(config: &Path, extra: &[&str]) -> GatewayProcess {
    GatewayProcess::spawn(
        Command::new(env!("CARGO_BIN_EXE_hearth"))
            .arg("--config")
            .arg(config)
            .args(["gateway", "run", "--port", "0"])
            .args(extra)
            .env_remove("HEARTH_GATEWAY_TOKEN")
            // Sessions go to a folder of the test's own, never the developer's ~/.hearth.
            .env("HEARTH_STATE_DIR", config.parent().unwrap().join("state")),
    )
    .unwrap()
}

fn write_config(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("hearth.json5");
    std::fs::write(&path, text).unwrap();
    path
}

fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

#[test]
fn refuses_to_bind_beyond_loopback_without_auth() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "{}");
    let output = Command::new(env!("CARGO_BIN_EXE_hearth"))
        .arg("--config")
        .arg(&config)
        .args(["gateway", "run", "--port", "0", "--bind", "lan"])
        .env_remove("HEARTH_GATEWAY_TOKEN")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(78));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("refusing to bind") && stderr.contains("gateway.auth.token"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_open_streams_then_exits_zero() {
    let upstream = FakeUpstream::start_calls_only().await.unwrap();
    let body = "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hello\"}}]}\n\n\
                data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\" world\"},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n";
    for _ in 0..3 {
        upstream.push(Reply::sse_raw(body).split_at(60, Duration::from_millis(1500)));
    }
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &format!(
            r#"{{models: {{mode: "replace", providers: {{fake: {{baseUrl: "{}/v1", api: "openai-completions", models: [{{id: "m"}}]}}}}}},
               agents: {{defaults: {{model: {{primary: "fake/m"}}}}}}}}"#,
            upstream.origin()
        ),
    );
    let mut gateway = spawn_gateway(&config, &[]);
    let mut responses = Vec::new();
    for _ in 0..3 {
        let request = client()
            .post(format!("{}/v1/chat/completions", gateway.origin()))
            .json(&serde_json::json!({"model": "hearth", "stream": true, "messages": [{"role": "user", "content": "hi"}]}));
        responses.push(tokio::spawn(async move {
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), 200);
            response.text().await.unwrap()
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let status = Command::new("kill").args(["-TERM", &gateway.pid().to_string()]).status().unwrap();
    assert!(status.success());
    for r in responses {
        let text = r.await.unwrap();
        assert!(text.contains("world") && text.ends_with("data: [DONE]\n\n"), "{text}");
    }
    let exit = tokio::task::spawn_blocking(move || gateway.wait().unwrap()).await.unwrap();
    assert_eq!(exit.code(), Some(0));
}

fn python() -> PathBuf {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/testbed/python-env.sh");
    let output = Command::new("bash").arg(&script).stderr(Stdio::inherit()).output().unwrap();
    assert!(output.status.success(), "scripts/testbed/python-env.sh failed");
    PathBuf::from(String::from_utf8(output.stdout).unwrap().lines().last().unwrap().trim())
}

const TOOL_CALL: &str = r#"{"id":"c1","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}}]},"finish_reason":"tool_calls"}],"usage":{"prompt_tokens":20,"completion_tokens":9,"total_tokens":29}}"#;
const TOOL_ANSWER: &str = r#"{"id":"c2","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"It is sunny in Paris."},"finish_reason":"stop"}],"usage":{"prompt_tokens":40,"completion_tokens":6,"total_tokens":46}}"#;

const WEB_SEARCH_SSE: &str =
    include_str!("../../../scripts/testbed/captures/anthropic/web-search.sse");
const WEB_SEARCH_BODY: &str = r#"{"id":"msg_up","type":"message","role":"assistant","model":"claude-up","content":[{"type":"text","text":"I'll check the weather."},{"type":"server_tool_use","id":"srvtoolu_1","name":"web_search","input":{"query":"weather NYC today"}},{"type":"web_search_tool_result","tool_use_id":"srvtoolu_1","content":[{"type":"web_search_result","title":"NYC","url":"https://www.weather.gov/okx/","encrypted_content":"Ev0D","page_age":null}]},{"type":"text","text":"It is sunny, 22 °C."}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":2679,"output_tokens":510}}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdks_against_llama_server() {
    let llama = LlamaServer::start(2048)
        .unwrap_or_else(|e| panic!("the llama.cpp test bed is required: {e}"));
    let upstream = FakeUpstream::start_calls_only().await.unwrap();
    upstream.push(Reply::json(200, TOOL_CALL));
    upstream.push(Reply::json(200, TOOL_ANSWER));
    // An Anthropic upstream that runs a web search on its side (anthropic_sdk.py).
    let ant = FakeUpstream::start_calls_only().await.unwrap();
    ant.push(Reply::sse_raw(WEB_SEARCH_SSE));
    ant.push(Reply::json(200, WEB_SEARCH_BODY));
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &format!(
            r#"{{models: {{mode: "replace", providers: {{
                 llamacpp: {{baseUrl: "{}/v1", api: "openai-completions", models: [{{id: "tiny", contextWindow: 2048, maxTokens: 32}}]}},
                 fake: {{baseUrl: "{}/v1", api: "openai-completions", models: [{{id: "tools"}}]}},
                 ant: {{baseUrl: "{}", apiKey: "sk-ant-test", api: "anthropic-messages", models: [{{id: "claude-up"}}]}}}}}},
               agents: {{defaults: {{model: {{primary: "llamacpp/tiny"}}}}}}}}"#,
            llama.origin(),
            upstream.origin(),
            ant.origin()
        ),
    );
    let gateway = spawn_gateway(&config, &[]);
    let python = tokio::task::spawn_blocking(python).await.unwrap();
    let sdk = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sdk");
    for script in ["openai_sdk.py", "anthropic_sdk.py"] {
        let origin = gateway.origin();
        let (python, path) = (python.clone(), sdk.join(script));
        let output = tokio::task::spawn_blocking(move || {
            Command::new(python)
                .arg(path)
                .env("HEARTH_BASE", origin)
                .env("HEARTH_MODEL", "llamacpp/tiny")
                .env("HEARTH_TOOL_MODEL", "fake/tools")
                .env("HEARTH_SERVER_TOOL_MODEL", "ant/claude-up")
                .output()
                .unwrap()
        })
        .await
        .unwrap();
        assert!(
            output.status.success(),
            "{script} failed:\n{}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    assert_eq!(ant.requests().len(), 2, "the server-tool answers came from the Anthropic upstream");
    // The tool result went back upstream on the second call.
    let second = upstream.requests()[1].json();
    let last = second["messages"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["role"], "tool");
    assert_eq!(last["tool_call_id"], "call_1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn models_status_shows_a_running_gateways_cooldowns() {
    let upstream = FakeUpstream::start_calls_only().await.unwrap();
    upstream.push(
        Reply::json(429, r#"{"error":{"message":"slow down"}}"#).header("retry-after", "120"),
    );
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &format!(
            r#"{{models: {{mode: "replace", providers: {{fake: {{baseUrl: "{}/v1", api: "openai-completions", models: [{{id: "m"}}]}}}}}},
               agents: {{defaults: {{model: {{primary: "fake/m"}}}}}},
               gateway: {{auth: {{token: "status-token"}}}}}}"#,
            upstream.origin()
        ),
    );
    let gateway = spawn_gateway(&config, &[]);
    let response = client()
        .post(format!("{}/v1/chat/completions", gateway.origin()))
        .bearer_auth("status-token")
        .json(&serde_json::json!({"model": "fake/m", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert!(!response.status().is_success(), "the only candidate was rate limited");

    let status = |gateway_url: &str| {
        let output = Command::new(env!("CARGO_BIN_EXE_hearth"))
            .arg("--config")
            .arg(&config)
            .args(["models", "status", "--json", "--gateway", gateway_url])
            .env_remove("HEARTH_GATEWAY_TOKEN")
            .output()
            .unwrap();
        serde_json::from_slice::<serde_json::Value>(&output.stdout).unwrap()
    };
    let report = status(&gateway.origin());
    assert_eq!(report["cooldownSource"]["kind"], "gateway", "{report:#}");
    let model = report["providers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == "fake")
        .and_then(|p| p["models"].as_array().unwrap().iter().find(|m| m["ref"] == "fake/m"))
        .unwrap();
    let cooldown = &model["cooldowns"][0];
    assert_eq!(cooldown["reason"], "rate_limit", "{model:#}");
    assert_eq!(cooldown["scope"], "model");
    let remaining = cooldown["remainingMs"].as_u64().unwrap();
    assert!(remaining > 100_000 && remaining <= 120_000, "Retry-After 120 s: {remaining}");

    // No gateway there: the report says so instead of claiming there are no cooldowns.
    let report = status("http://127.0.0.1:9");
    assert_eq!(report["cooldownSource"]["kind"], "none");
    assert!(report["notes"].as_array().unwrap().iter().any(|n| {
        n.as_str().unwrap().starts_with("cooldowns: unknown (no gateway at http://127.0.0.1:9")
    }));
}
