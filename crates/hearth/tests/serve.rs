//! Keeping models loaded and discovering what is served (issue 15, item 5), through the real
//! surfaces: `hearth gateway run` as a process (its preload at start, its log lines, its HTTP
//! API) and `hearth models status`, against a scripted upstream that answers with LM Studio's
//! and Ollama's documented shapes (`scripts/testbed/captures/lmstudio/`). See: #15
#![expect(clippy::unwrap_used, clippy::panic, reason = "tests")]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use hearth_testkit::{FakeUpstream, GatewayProcess, Reply};
use serde_json::{Value, json};

const V0_MODELS: &str =
    include_str!("../../../scripts/testbed/captures/lmstudio/api-v0-models.json");
const LOAD: &str = include_str!("../../../scripts/testbed/captures/lmstudio/load.json");
const LOAD_ERROR: &str = include_str!("../../../scripts/testbed/captures/lmstudio/load-error.json");
const CHAT: &str = r#"{"id":"c1","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"hello"},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4}}"#;

/// `models.list` over the gateway's WebSocket (OpenClaw's handshake first): its `models`.
async fn ws_models_list(origin: &str) -> Vec<Value> {
    use futures::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let url = origin.replacen("http://", "ws://", 1) + "/";
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let challenge = loop {
        if let Message::Text(text) = ws.next().await.unwrap().unwrap() {
            break serde_json::from_str::<Value>(&text).unwrap();
        }
    };
    assert_eq!(challenge["event"], "connect.challenge");
    let connect = json!({"type": "req", "id": "c1", "method": "connect", "params": {
        "minProtocol": 4, "maxProtocol": 4,
        "client": {"id": "test", "version": "1.0.0", "platform": "linux", "mode": "operator"},
        "role": "operator", "scopes": ["operator.read"], "auth": {}}});
    ws.send(Message::text(connect.to_string())).await.unwrap();
    let list = json!({"type": "req", "id": "m1", "method": "models.list", "params": {}});
    ws.send(Message::text(list.to_string())).await.unwrap();
    loop {
        let Message::Text(text) = ws.next().await.unwrap().unwrap() else { continue };
        let frame: Value = serde_json::from_str(&text).unwrap();
        if frame["id"] == "m1" {
            assert_eq!(frame["ok"], true, "{frame}");
            return frame["payload"]["models"].as_array().unwrap().clone();
        }
    }
}

fn write_config(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("hearth.json5");
    std::fs::write(&path, text).unwrap();
    path
}

fn spawn_gateway(config: &Path) -> GatewayProcess {
    GatewayProcess::spawn(
        Command::new(env!("CARGO_BIN_EXE_hearth"))
            .arg("--config")
            .arg(config)
            .args(["gateway", "run", "--port", "0"])
            .env_remove("HEARTH_GATEWAY_TOKEN")
            .env_remove("RUST_LOG")
            .env("HEARTH_STATE_DIR", config.parent().unwrap().join("state")),
    )
    .unwrap()
}

fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

/// Waits until the upstream has seen `n` requests.
async fn requests_reach(up: &FakeUpstream, n: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let paths: Vec<String> =
            up.requests().iter().map(|r| format!("{} {}", r.method, r.path)).collect();
        if paths.len() >= n || Instant::now() > deadline {
            return paths;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn wait_for_log(gateway: &GatewayProcess, text: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !gateway.stderr().contains(text) {
        assert!(Instant::now() < deadline, "no `{text}` in the log:\n{}", gateway.stderr());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn chat(gateway: &GatewayProcess, model: &str) -> (u16, Value) {
    let response = client()
        .post(format!("{}/v1/chat/completions", gateway.origin()))
        .json(&json!({"model": model, "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// LM Studio gets `POST /api/v1/models/load` with the entry's window at start, in the
/// background, and every request carries `params.ttl` (LM Studio's idle TTL for a JIT load).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lmstudio_preload_sends_the_window_and_requests_carry_ttl() {
    let up = FakeUpstream::start().await.unwrap();
    up.push(Reply::json(200, V0_MODELS)); // the probe: qwen3-8b is not loaded
    up.push(Reply::json(200, LOAD));
    up.push(Reply::json(200, V0_MODELS)); // the probe after the load
    up.push(Reply::json(200, CHAT));
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &format!(
            r#"{{ agents: {{ defaults: {{ model: "lmstudio/qwen3-8b" }} }},
  models: {{ mode: "replace", providers: {{ lmstudio: {{ baseUrl: "{}/v1", api: "openai-completions",
    params: {{ ttl: 900 }}, models: [{{ id: "qwen3-8b", contextWindow: 32768 }}] }} }} }} }}"#,
            up.origin()
        ),
    );
    let gateway = spawn_gateway(&config);
    wait_for_log(&gateway, "Preloaded the model").await;
    let paths = requests_reach(&up, 3).await;
    assert_eq!(
        paths[..3],
        ["GET /api/v0/models", "POST /api/v1/models/load", "GET /api/v0/models"],
        "{}",
        gateway.stderr()
    );
    let load = &up.requests()[1];
    assert_eq!(load.json(), json!({"model": "qwen3-8b", "context_length": 32768}));
    let log = gateway.stderr();
    let line = log.lines().find(|l| l.contains("Preloaded the model")).unwrap();
    assert!(line.contains("qwen3-8b") && line.contains("32768"), "{line}");
    assert!(line.contains("/api/v1/models/load"), "{line}");

    let (status, _) = chat(&gateway, "lmstudio/qwen3-8b").await;
    assert_eq!(status, 200, "{}", gateway.stderr());
    let sent = up.requests().last().unwrap().json();
    assert_eq!(sent["ttl"], 900, "{sent}");
    assert_eq!(sent["model"], "qwen3-8b");
}

/// A load LM Studio refuses is a warning with the server's words and a fix; the gateway serves
/// on, and requests still reach the model.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lmstudio_preload_failure_is_logged_and_not_fatal() {
    let up = FakeUpstream::start().await.unwrap();
    up.push(Reply::json(200, V0_MODELS));
    up.push(Reply::json(404, LOAD_ERROR));
    up.push(Reply::json(200, V0_MODELS));
    up.push(Reply::json(200, CHAT));
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &format!(
            r#"{{ agents: {{ defaults: {{ model: "lmstudio/qwen3-8b" }} }},
  models: {{ mode: "replace", providers: {{ lmstudio: {{ baseUrl: "{}/v1", api: "openai-completions",
    models: [{{ id: "qwen3-8b" }}] }} }} }} }}"#,
            up.origin()
        ),
    );
    let gateway = spawn_gateway(&config);
    wait_for_log(&gateway, "Preload failed").await;
    let log = gateway.stderr();
    let line = log.lines().find(|l| l.contains("Preload failed")).unwrap();
    assert!(line.contains("WARN"), "{line}");
    assert!(line.contains("not found"), "the server's words: {line}");
    assert!(line.contains("lms get qwen3-8b") && line.contains("params.preload: false"), "{line}");
    // No window configured: none asked for (LM Studio's own default applies).
    assert_eq!(up.requests()[1].json(), json!({"model": "qwen3-8b"}));
    requests_reach(&up, 3).await;
    let health = client().get(format!("{}/health", gateway.origin())).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let (status, body) = chat(&gateway, "lmstudio/qwen3-8b").await;
    assert_eq!(status, 200, "{body}");
}

/// A model LM Studio holds already is not loaded again (LM Studio would start a second
/// instance), and `params.preload: false` on an entry leaves it alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lmstudio_loaded_model_and_preload_false_send_no_load() {
    let up = FakeUpstream::start().await.unwrap();
    up.push(Reply::json(200, V0_MODELS)); // gemma-3-4b is loaded (16384)
    up.push(Reply::json(200, V0_MODELS));
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &format!(
            r#"{{ models: {{ mode: "replace", providers: {{ lmstudio: {{ baseUrl: "{}/v1", api: "openai-completions",
    models: [{{ id: "gemma-3-4b", contextWindow: 16384 }}, {{ id: "qwen3-8b", params: {{ preload: false }} }}] }} }} }} }}"#,
            up.origin()
        ),
    );
    let gateway = spawn_gateway(&config);
    wait_for_log(&gateway, "already; not preloading").await;
    requests_reach(&up, 2).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let paths: Vec<String> =
        up.requests().iter().map(|r| format!("{} {}", r.method, r.path)).collect();
    assert_eq!(paths, ["GET /api/v0/models", "GET /api/v0/models"], "{}", gateway.stderr());
    let log = gateway.stderr();
    let line = log.lines().find(|l| l.contains("already; not preloading")).unwrap();
    assert!(line.contains("gemma-3-4b") && line.contains("16384"), "{line}");
    assert!(!log.contains("qwen3-8b"), "preload: false is not even mentioned:\n{log}");
}

/// A provider without `models[]` lists what LM Studio serves (at start, from the probe), in
/// `/v1/models` with the served windows; a served model can be routed to, `lmstudio/*` params
/// apply to it and `modelPolicy.allow: ["lmstudio/*"]` admits it; `models status --json` shows
/// the served rows and their windows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn served_models_of_a_provider_without_models_are_listed_and_routed() {
    let up = FakeUpstream::start().await.unwrap();
    up.push(Reply::json(200, V0_MODELS)); // the gateway's probe at start
    up.push(Reply::json(200, CHAT));
    up.push(Reply::json(200, V0_MODELS)); // `models status`
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &format!(
            r#"{{ agents: {{ defaults: {{
    modelPolicy: {{ allow: ["lmstudio/*"] }},
    models: {{ "lmstudio/*": {{ params: {{ temperature: 0.25 }} }} }} }} }},
  models: {{ mode: "replace", providers: {{ lmstudio: {{ baseUrl: "{}/v1", api: "openai-completions" }} }} }} }}"#,
            up.origin()
        ),
    );
    let gateway = spawn_gateway(&config);
    let deadline = Instant::now() + Duration::from_secs(10);
    let listed = loop {
        let list: Value = client()
            .get(format!("{}/v1/models", gateway.origin()))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let data = list["data"].as_array().unwrap().clone();
        if data.iter().any(|e| e["id"] == "lmstudio/gemma-3-4b") || Instant::now() > deadline {
            break data;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let entry = |id: &str| {
        listed.iter().find(|e| e["id"] == id).unwrap_or_else(|| panic!("{id} in {listed:?}"))
    };
    assert_eq!(entry("lmstudio/gemma-3-4b")["context_window"], 16384);
    assert_eq!(entry("lmstudio/gemma-3-4b")["state"], "loaded");
    assert_eq!(entry("lmstudio/qwen3-8b")["max_context_window"], 40960);
    assert_eq!(entry("lmstudio/qwen3-8b")["state"], "not loaded");
    // The WebSocket `models.list` lists the same served models.
    let ws_models = ws_models_list(&gateway.origin()).await;
    let ws_row = ws_models
        .iter()
        .find(|m| m["provider"] == "lmstudio" && m["id"] == "gemma-3-4b")
        .unwrap_or_else(|| panic!("gemma-3-4b in {ws_models:?}"));
    assert_eq!(
        (ws_row["contextWindow"].as_u64(), ws_row["state"].as_str()),
        (Some(16384), Some("loaded"))
    );

    let (status, body) = chat(&gateway, "lmstudio/gemma-3-4b").await;
    assert_eq!(status, 200, "{body}");
    let sent = up.requests()[1].json();
    assert_eq!(sent["model"], "gemma-3-4b");
    assert_eq!(sent["temperature"], 0.25, "the lmstudio/* params: {sent}");

    let out = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_hearth"))
            .env_clear()
            .env("HOME", "/nonexistent-hearth-home")
            .env("HEARTH_STATE_DIR", dir.path().join("status-state"))
            .args(["models", "status", "--json", "--config"])
            .arg(&config)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    let provider =
        v["providers"].as_array().unwrap().iter().find(|p| p["id"] == "lmstudio").unwrap();
    assert_eq!(provider["server"], "lmstudio");
    let row = |id: &str| {
        provider["models"].as_array().unwrap().iter().find(|m| m["id"] == id).unwrap().clone()
    };
    let gemma = row("gemma-3-4b");
    assert_eq!((gemma["role"].as_str(), gemma["state"].as_str()), (Some("served"), Some("loaded")));
    assert_eq!(gemma["context"]["served"], 16384);
    let qwen = row("qwen3-8b");
    assert_eq!(qwen["state"], "not loaded");
    let served = provider["served"].as_array().unwrap();
    let qwen_served = served.iter().find(|s| s["id"] == "qwen3-8b").unwrap();
    assert_eq!(qwen_served["maxContextWindow"], 40960);
}

/// Ollama's preload is opt-in (`params.preload: true`): `POST /api/generate` without a prompt,
/// with `keep_alive` and the `num_ctx` requests send (so the first request does not reload the
/// runner); and `/api/chat` carries `keep_alive` too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ollama_preload_is_opt_in_with_keep_alive_and_num_ctx() {
    let up = FakeUpstream::start().await.unwrap();
    let tags =
        r#"{"models":[{"name":"qwen3:8b","model":"qwen3:8b","size":1,"digest":"d","details":{}}]}"#;
    let show = r#"{"parameters":"","model_info":{"general.architecture":"qwen3","qwen3.context_length":40960},"capabilities":["completion"]}"#;
    let generate = r#"{"model":"qwen3:8b","created_at":"2026-12-02T10:00:00Z","response":"","done":true,"done_reason":"load"}"#;
    let probe = |up: &FakeUpstream| {
        up.push(Reply::json(200, tags));
        up.push(Reply::json(200, r#"{"models":[]}"#));
        up.push(Reply::json(200, show));
    };
    probe(&up);
    up.push(Reply::json(200, generate));
    probe(&up);
    up.push(Reply::json(
        200,
        r#"{"model":"qwen3:8b","message":{"role":"assistant","content":"hello"},"done":true,"done_reason":"stop","prompt_eval_count":3,"eval_count":1}"#,
    ));
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &format!(
            r#"{{ agents: {{ defaults: {{ model: "ol/qwen3:8b" }} }},
  models: {{ mode: "replace", providers: {{ ol: {{ baseUrl: "{}", api: "ollama",
    params: {{ preload: true, keep_alive: "30m" }}, models: [{{ id: "qwen3:8b", contextWindow: 8192 }}] }} }} }} }}"#,
            up.origin()
        ),
    );
    let gateway = spawn_gateway(&config);
    wait_for_log(&gateway, "Preloaded the model").await;
    let paths = requests_reach(&up, 7).await;
    assert_eq!(paths[3], "POST /api/generate", "{paths:?}");
    assert_eq!(
        up.requests()[3].json(),
        json!({"model": "qwen3:8b", "stream": false, "keep_alive": "30m", "options": {"num_ctx": 8192}})
    );
    let (status, body) = chat(&gateway, "ol/qwen3:8b").await;
    assert_eq!(status, 200, "{body}");
    let sent = up.requests().last().unwrap().clone();
    assert_eq!(sent.path, "/api/chat");
    assert_eq!(sent.json()["keep_alive"], "30m");
    assert!(sent.json().get("preload").is_none(), "hearth's own key is not sent");
}

/// Without `params.preload`, an Ollama provider gets no load request at start (only the
/// probe that reads its windows).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ollama_preload_is_off_by_default() {
    let up = FakeUpstream::start().await.unwrap();
    up.push(Reply::json(200, r#"{"models":[{"name":"qwen3:8b","model":"qwen3:8b"}]}"#));
    up.push(Reply::json(200, r#"{"models":[]}"#));
    up.push(Reply::json(
        200,
        r#"{"model_info":{"general.architecture":"qwen3","qwen3.context_length":40960}}"#,
    ));
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &format!(
            r#"{{ models: {{ mode: "replace", providers: {{ ol: {{ baseUrl: "{}", api: "ollama",
    models: [{{ id: "qwen3:8b", contextWindow: 8192 }}] }} }} }} }}"#,
            up.origin()
        ),
    );
    let gateway = spawn_gateway(&config);
    requests_reach(&up, 3).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let paths: Vec<String> =
        up.requests().iter().map(|r| format!("{} {}", r.method, r.path)).collect();
    assert_eq!(paths, ["GET /api/tags", "GET /api/ps", "POST /api/show"], "{}", gateway.stderr());
    assert!(!gateway.stderr().contains("Preload"), "{}", gateway.stderr());
}

fn status_json(config: &Path) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_hearth"))
        .env_clear()
        .env("HOME", "/nonexistent-hearth-home")
        .env("HEARTH_STATE_DIR", config.parent().unwrap().join("status-state"))
        .args(["models", "status", "--json", "--config"])
        .arg(config)
        .output()
        .unwrap();
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)))
}

fn rows(v: &Value, provider: &str) -> Vec<Value> {
    let p = v["providers"].as_array().unwrap().iter().find(|p| p["id"] == provider).unwrap();
    p["models"].as_array().unwrap().clone()
}

/// A `provider/*` key shows the served models beside the configured ones in `models status`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wildcard_key_shows_served_models_beside_configured_ones() {
    let up = FakeUpstream::start().await.unwrap();
    up.push(Reply::json(200, V0_MODELS));
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &format!(
            r#"{{ agents: {{ defaults: {{ models: {{ "lmstudio/*": {{}} }} }} }},
  models: {{ mode: "replace", providers: {{ lmstudio: {{ baseUrl: "{}/v1", api: "openai-completions",
    models: [{{ id: "qwen3-8b" }}] }} }} }} }}"#,
            up.origin()
        ),
    );
    let v = tokio::task::spawn_blocking(move || status_json(&config)).await.unwrap();
    let roles: Vec<(String, String)> = rows(&v, "lmstudio")
        .iter()
        .map(|m| (m["id"].as_str().unwrap().to_owned(), m["role"].as_str().unwrap().to_owned()))
        .collect();
    assert_eq!(
        roles,
        [
            ("qwen3-8b".to_owned(), "configured".to_owned()),
            ("gemma-3-4b".to_owned(), "served".to_owned()),
            ("text-embedding-nomic-embed-text-v1.5".to_owned(), "served".to_owned()),
        ]
    );
}

/// An Ollama provider without `models[]` asks `/api/show` about its pulled models, so
/// `models status` shows their trained windows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ollama_without_models_reads_the_served_windows() {
    let up = FakeUpstream::start().await.unwrap();
    up.push(Reply::json(200, r#"{"models":[{"name":"qwen3:8b","model":"qwen3:8b"}]}"#));
    up.push(Reply::json(200, r#"{"models":[]}"#));
    up.push(Reply::json(
        200,
        r#"{"parameters":"num_ctx 16384","model_info":{"general.architecture":"qwen3","qwen3.context_length":40960}}"#,
    ));
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &format!(
            r#"{{ models: {{ mode: "replace", providers: {{ ol: {{ baseUrl: "{}", api: "ollama" }} }} }} }}"#,
            up.origin()
        ),
    );
    let v = tokio::task::spawn_blocking(move || status_json(&config)).await.unwrap();
    let row = &rows(&v, "ol")[0];
    assert_eq!((row["id"].as_str(), row["role"].as_str()), (Some("qwen3:8b"), Some("served")));
    assert_eq!(row["context"]["served"], 16384, "the Modelfile's num_ctx: {row}");
    let paths: Vec<String> =
        up.requests().iter().map(|r| format!("{} {}", r.method, r.path)).collect();
    assert_eq!(paths, ["GET /api/tags", "GET /api/ps", "POST /api/show"]);
    assert_eq!(up.requests()[2].json(), json!({"model": "qwen3:8b"}));
}
