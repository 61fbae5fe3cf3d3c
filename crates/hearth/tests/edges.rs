//! The newcomer's misleading edges (issue 14, "Misleading edges" and item 4): lines that name
//! the real cause, `/ready` with a reason, one gateway-auth lookup, the `agent --gateway --json`
//! envelope, agent target names and the suggestions for an unknown bare name. Every check goes
//! through the real binary (and a real gateway process); nothing here leaves loopback.
#![expect(clippy::unwrap_used, reason = "tests")]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use hearth_testkit::GatewayProcess;
use serde_json::Value;

/// A `hearth` command with a clean environment: no key, no token, no home config.
fn hearth(dir: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hearth"));
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", dir.join("home"))
        .env("HEARTH_STATE_DIR", dir.join("state"))
        .env("NO_COLOR", "1");
    cmd
}

fn write(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("hearth.json5");
    std::fs::write(&path, text).unwrap();
    path
}

fn spawn_gateway(dir: &Path, config: Option<&Path>, env: &[(&str, &str)]) -> GatewayProcess {
    let mut cmd = hearth(dir);
    if let Some(config) = config {
        cmd.arg("--config").arg(config);
    }
    cmd.args(["gateway", "run", "--port", "0"]).envs(env.iter().copied());
    let gateway = GatewayProcess::spawn(&mut cmd).unwrap();
    assert!(gateway.wait_for_stderr("sessions:", Duration::from_secs(10)), "{}", gateway.stderr());
    gateway
}

/// The default chain is Anthropic's Opus, whose key is not set.
const OPUS_WITHOUT_KEY: &str = r#"{ agents: { defaults: {
    model: { primary: "anthropic/claude-opus-5" },
    models: { "anthropic/claude-opus-5": {} },
} } }"#;

// See: #14.
#[test]
fn r14_startup_names_a_missing_key_instead_of_blaming_the_network() {
    let dir = tempfile::tempdir().unwrap();
    let config = write(dir.path(), OPUS_WITHOUT_KEY);
    let gateway = spawn_gateway(dir.path(), Some(&config), &[]);
    let stderr = gateway.stderr();
    let line = stderr.lines().find(|l| l.contains("provider:  anthropic")).unwrap_or_else(|| {
        panic!("no anthropic line:\n{stderr}");
    });
    assert!(line.contains("anthropic: ANTHROPIC_API_KEY is not set"), "{line}");
    assert!(line.contains("not contacted"), "{line}");
    assert!(!stderr.contains("NOT reachable"), "{stderr}");
}

// See: #14.
#[test]
fn r14_models_status_names_a_missing_default_or_key_not_reachability() {
    let dir = tempfile::tempdir().unwrap();
    // No config file at all.
    let out = hearth(dir.path()).args(["models", "status"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("error: there is no default chain (no model configured)"), "{stdout}");
    assert!(stdout.contains("hearth config init"), "{stdout}");
    assert!(!stdout.contains("reachable"), "{stdout}");

    // A hosted default whose key is not set: said so, and the provider is not contacted.
    let config = write(dir.path(), OPUS_WITHOUT_KEY);
    let out = hearth(dir.path())
        .arg("--config")
        .arg(&config)
        .args(["models", "status", "--json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        v["reason"],
        "no model of the default chain can answer: anthropic: ANTHROPIC_API_KEY is not set"
    );
    let anthropic = v["providers"].as_array().unwrap().iter().find(|p| p["id"] == "anthropic");
    let anthropic = anthropic.unwrap();
    assert_eq!(anthropic["keyProblem"], "ANTHROPIC_API_KEY is not set");
    assert_eq!(anthropic["error"], Value::Null, "not contacted: {anthropic}");
}

fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

async fn get(url: String) -> (u16, Value) {
    let response = client().get(url).send().await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

// See: #14.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r14_ready_is_503_with_a_reason_while_no_default_model_can_answer() {
    let dir = tempfile::tempdir().unwrap();
    // No model configured at all.
    let gateway = spawn_gateway(dir.path(), None, &[]);
    let (status, body) = get(format!("{}/ready", gateway.origin())).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["ok"], false);
    assert_eq!(body["status"], "not_ready");
    assert!(body["reason"].as_str().unwrap().starts_with("no model configured"), "{body}");
    assert_eq!(get(format!("{}/health", gateway.origin())).await.0, 200);
    drop(gateway);

    // Every candidate of the default chain lacks its key.
    let config = write(dir.path(), OPUS_WITHOUT_KEY);
    let gateway = spawn_gateway(dir.path(), Some(&config), &[]);
    let (status, body) = get(format!("{}/ready", gateway.origin())).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(
        body["reason"],
        "no model of the default chain can answer: anthropic/claude-opus-5: ANTHROPIC_API_KEY is not set"
    );
    assert_eq!(get(format!("{}/health", gateway.origin())).await.0, 200);
    drop(gateway);

    // A local fallback can answer (not probed: a local server needs no key).
    let config = write(
        dir.path(),
        r#"{ agents: { defaults: {
            model: { primary: "anthropic/claude-opus-5", fallbacks: ["box/tiny"] },
            models: { "anthropic/claude-opus-5": {} },
          } },
          models: { providers: { box: { baseUrl: "http://127.0.0.1:9/v1", models: [{ id: "tiny" }] } } } }"#,
    );
    let gateway = spawn_gateway(dir.path(), Some(&config), &[]);
    let (status, body) = get(format!("{}/ready", gateway.origin())).await;
    assert_eq!((status, &body["status"]), (200, &Value::from("ready")), "{body}");
}

/// One streamed answer with usage, as an OpenAI-compatible server sends it.
fn answer(text: &str) -> hearth_testkit::Reply {
    let delta = serde_json::json!({"choices": [{"index": 0, "delta": {"content": text}, "finish_reason": "stop"}]});
    let usage = serde_json::json!({"choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": 2, "total_tokens": 9}});
    hearth_testkit::Reply::sse(&[&delta.to_string(), &usage.to_string(), "[DONE]"])
}

/// One answer with usage, not streamed.
fn whole_answer(text: &str) -> hearth_testkit::Reply {
    let body = serde_json::json!({
        "id": "c1", "object": "chat.completion", "created": 0, "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 7, "completion_tokens": 2, "total_tokens": 9},
    });
    hearth_testkit::Reply::json(200, &body.to_string())
}

/// The POSTs (model calls) the upstream received; GETs are probes.
fn model_calls(upstream: &hearth_testkit::FakeUpstream) -> usize {
    upstream.requests().iter().filter(|r| r.method == "POST").count()
}

/// A gateway on a fake upstream `fake/m`, with `gateway.auth` holding its token.
fn token_config(dir: &Path, upstream: &str) -> PathBuf {
    write(
        dir,
        &format!(
            r#"{{ gateway: {{ auth: {{ mode: "token", token: "edge-token-7f3a9c" }} }},
  agents: {{ defaults: {{ model: {{ primary: "fake/m" }} }} }},
  models: {{ mode: "replace", providers: {{ fake: {{ baseUrl: "{upstream}/v1", api: "openai-completions", models: [{{ id: "m", contextWindow: 8192 }}] }} }} }} }}"#
        ),
    )
}

// See: #14.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r14_agent_via_gateway_uses_the_configs_gateway_token() {
    let upstream = hearth_testkit::FakeUpstream::start_calls_only().await.unwrap();
    upstream.push(answer("Hello from the gateway"));
    let dir = tempfile::tempdir().unwrap();
    let config = token_config(dir.path(), &upstream.origin());
    let gateway = spawn_gateway(dir.path(), Some(&config), &[]);
    let origin = gateway.origin();
    // No HEARTH_GATEWAY_TOKEN: `hearth()` clears the environment.
    let (c, o, d) = (config.clone(), origin.clone(), dir.path().to_owned());
    let out = tokio::task::spawn_blocking(move || {
        hearth(&d)
            .arg("--config")
            .arg(&c)
            .args(["agent", "--gateway", &o, "--message", "hi"])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}\n{}", gateway.stderr());
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "Hello from the gateway");
    assert_eq!(model_calls(&upstream), 1);

    // The same command with a config that has no token is refused by the gateway: the token
    // above came from the config, not from anywhere else.
    let other = dir.path().join("other.json5");
    std::fs::write(&other, "{}").unwrap();
    let d = dir.path().to_owned();
    let out = tokio::task::spawn_blocking(move || {
        hearth(&d)
            .arg("--config")
            .arg(&other)
            .args(["agent", "--gateway", &origin, "--message", "hi"])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing credential"), "{out:?}");
    assert_eq!(model_calls(&upstream), 1);
}

fn keys(v: &Value) -> Vec<String> {
    let mut keys: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
    keys.sort();
    keys
}

// See: #14.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r14_agent_via_gateway_json_carries_session_model_and_usage_like_the_local_one() {
    let upstream = hearth_testkit::FakeUpstream::start_calls_only().await.unwrap();
    upstream.push(whole_answer("Hello from the gateway"));
    upstream.push(whole_answer("Hello from here"));
    let dir = tempfile::tempdir().unwrap();
    let config = token_config(dir.path(), &upstream.origin());
    let gateway = spawn_gateway(dir.path(), Some(&config), &[]);
    let origin = gateway.origin();
    let run = move |args: Vec<String>, state: PathBuf| {
        let out = hearth(&state).arg("--config").arg(&config).args(args).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice::<Value>(&out.stdout).unwrap()
    };
    let (run_remote, run_local) = (run.clone(), run);
    let remote_state = dir.path().to_owned();
    let remote = tokio::task::spawn_blocking(move || {
        let args = ["agent", "--gateway", &origin, "--message", "hi", "--json"];
        run_remote(args.iter().map(ToString::to_string).collect(), remote_state)
    })
    .await
    .unwrap();
    assert_eq!(remote["ok"], true, "{remote}\n{}", gateway.stderr());
    assert_eq!(remote["text"], "Hello from the gateway");
    assert_eq!(remote["agent"], "main");
    assert_eq!(remote["session"], "agent:main:main");
    assert_eq!(remote["model"], "fake/m");
    assert_eq!(remote["usage"]["inputTokens"], 7, "{remote}");
    assert_eq!(remote["usage"]["outputTokens"], 2);
    assert_eq!(remote["attempts"][0]["ref"], "fake/m");

    // The local turn (its own state directory: the gateway holds the other) has the same keys.
    let local_dir = tempfile::tempdir().unwrap();
    let local_state = local_dir.path().to_owned();
    let local = tokio::task::spawn_blocking(move || {
        let args = ["agent", "--message", "hi", "--json"];
        run_local(args.iter().map(ToString::to_string).collect(), local_state)
    })
    .await
    .unwrap();
    assert_eq!(local["model"], "fake/m", "{local}");
    let mut local_keys = keys(&local);
    local_keys.push("gateway".to_owned());
    local_keys.sort();
    assert_eq!(keys(&remote), local_keys);
    assert_eq!(keys(&remote["usage"]), keys(&local["usage"]));
    assert_eq!(keys(&remote["attempts"][0]), keys(&local["attempts"][0]));
}

// See: #14.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r14_models_and_sessions_name_the_agent_alike() {
    let upstream = hearth_testkit::FakeUpstream::start_calls_only().await.unwrap();
    upstream.push(whole_answer("one"));
    upstream.push(whole_answer("two"));
    let dir = tempfile::tempdir().unwrap();
    let config = write(
        dir.path(),
        &format!(
            r#"{{ agents: {{ defaults: {{ model: {{ primary: "fake/m" }} }} }},
  models: {{ mode: "replace", providers: {{ fake: {{ baseUrl: "{}/v1", api: "openai-completions", models: [{{ id: "m" }}] }} }} }} }}"#,
            upstream.origin()
        ),
    );
    let gateway = spawn_gateway(dir.path(), Some(&config), &[]);
    let (status, listed) = get(format!("{}/v1/models", gateway.origin())).await;
    assert_eq!(status, 200);
    let ids: Vec<&str> =
        listed["data"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap()).collect();
    // OpenClaw's targets: the default agent, its stable alias, and each agent by its id (the
    // implicit `main` here), the id sessions are keyed by.
    assert_eq!(ids, ["hearth", "hearth/default", "hearth/main", "fake/m"]);
    assert_eq!(listed["data"][0]["name"], "default agent (main)");
    for (model, key) in [("hearth/main", "s1"), ("hearth/default", "s2")] {
        let response = client()
            .post(format!("{}/v1/chat/completions", gateway.origin()))
            .header("x-hearth-session-key", key)
            .json(&serde_json::json!({"model": model, "messages": [{"role": "user", "content": "hi"}]}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{model}: {}", response.text().await.unwrap());
    }
    let d = dir.path().to_owned();
    let out = tokio::task::spawn_blocking(move || {
        hearth(&d).arg("--config").arg(&config).args(["sessions", "list", "--json"]).output()
    })
    .await
    .unwrap()
    .unwrap();
    let sessions: Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut keys: Vec<(&str, &str)> = sessions
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["key"].as_str().unwrap(), s["agent"].as_str().unwrap()))
        .collect();
    keys.sort();
    assert_eq!(keys, [("agent:main:s1", "main"), ("agent:main:s2", "main")]);
}

// See: #14.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r14_an_unknown_bare_name_suggests_its_alias_not_unrelated_rows() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_owned();
    let resolve = move |name: &'static str, config: Option<PathBuf>| {
        let mut cmd = hearth(&d);
        if let Some(c) = &config {
            cmd.arg("--config").arg(c);
        }
        let out = cmd.args(["models", "resolve", name]).output().unwrap();
        assert_eq!(out.status.code(), Some(1));
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    // `Opus` is a built-in alias whose target is not enabled: the help says how to enable it.
    let stderr = resolve("Opus", None);
    assert!(
        stderr.contains("`opus` is hearth's built-in alias of anthropic/claude-opus-5")
            && stderr.contains(r#"add "anthropic/claude-opus-5": {} there"#)
            && stderr.contains("agents.defaults.models"),
        "{stderr}"
    );
    assert!(!stderr.contains("closest") && !stderr.contains("openrouter"), "{stderr}");
    // A name nothing resembles: how to write a ref or add an alias, no random rows.
    let stderr = resolve("Xyzzy", None);
    assert!(!stderr.contains("closest"), "{stderr}");
    assert!(stderr.contains(r#""<provider>/<model>": {alias: "Xyzzy"}"#), "{stderr}");
    // A near miss of a model id is still suggested.
    let config = write(
        dir.path(),
        r#"{ models: { providers: { lmstudio: { models: [{ id: "qwen3-coder-30b" }] } } } }"#,
    );
    let stderr = resolve("qwen3-coder", Some(config));
    assert!(stderr.contains("closest: lmstudio/qwen3-coder-30b"), "{stderr}");

    // Over HTTP, the 404 says the same.
    let gateway = spawn_gateway(dir.path(), None, &[]);
    let response = client()
        .post(format!("{}/v1/chat/completions", gateway.origin()))
        .json(
            &serde_json::json!({"model": "Opus", "messages": [{"role": "user", "content": "hi"}]}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    let body: Value = response.json().await.unwrap();
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("built-in alias of anthropic/claude-opus-5"), "{message}");
}
