//! `hearth models status [--probe] [--json]` against real llama.cpp servers (and a scripted
//! upstream for the API check).
#![expect(clippy::unwrap_used, clippy::panic, reason = "test helpers may unwrap")]

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use hearth_testkit::{FakeUpstream, LlamaServer, Reply};
use serde_json::Value;

fn hearth() -> Command {
    let mut cmd = Command::cargo_bin("hearth").unwrap();
    cmd.env_clear().env("HOME", "/nonexistent-hearth-home").env("NO_COLOR", "1");
    cmd
}

fn server(ctx: u32) -> LlamaServer {
    LlamaServer::start(ctx).unwrap_or_else(|e| panic!("the llama.cpp test bed is required: {e}"))
}

fn write(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("hearth.json5");
    std::fs::write(&path, text).unwrap();
    path
}

/// Primary `one/tiny`, fallback `two/tiny`.
fn two_servers(dir: &Path, one: &str, two: &str) -> PathBuf {
    write(
        dir,
        &format!(
            r#"{{
  agents: {{ defaults: {{ model: {{ primary: "one/tiny", fallbacks: ["two/tiny"] }} }} }},
  models: {{ mode: "replace", providers: {{
    one: {{ baseUrl: "{one}/v1", models: [{{ id: "tiny", maxTokens: 8 }}] }},
    two: {{ baseUrl: "{two}/v1", models: [{{ id: "tiny", maxTokens: 8 }}] }},
  }} }},
}}"#
        ),
    )
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn run(config: &Path, args: &[&str]) -> Run {
    let out = hearth()
        .args(["models", "status"])
        .args(args)
        .arg("--config")
        .arg(config)
        .output()
        .unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn json(run: &Run) -> Value {
    serde_json::from_str(&run.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}\n{}", run.stdout, run.stderr))
}

fn provider<'v>(v: &'v Value, id: &str) -> &'v Value {
    v["providers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == id)
        .unwrap_or_else(|| panic!("{id} in {v}"))
}

#[test]
fn primary_down_fallback_answers() {
    let one = server(512);
    let two = server(512);
    let dir = tempfile::tempdir().unwrap();
    let config = two_servers(dir.path(), &one.origin(), &two.origin());

    // Both up: the primary answers.
    let r = run(&config, &["--probe", "--json"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert_eq!(json(&r)["answeredBy"], "one/tiny");

    // Kill the primary.
    drop(one);
    let r = run(&config, &["--probe", "--json"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let v = json(&r);
    assert_eq!(v["ok"], true);
    assert_eq!(v["defaultChain"], serde_json::json!(["one/tiny", "two/tiny"]));
    assert_eq!(v["answeredBy"], "two/tiny");
    let p1 = provider(&v, "one");
    assert_eq!(p1["reachable"], false);
    assert_eq!(p1["error"]["class"], "connect");
    assert_eq!(p1["models"][0]["role"], "primary");
    assert_eq!(p1["models"][0]["probe"]["ok"], false);
    assert_eq!(p1["models"][0]["probe"]["errorClass"], "connect");
    assert!(p1["models"][0]["probe"]["ms"].is_u64());
    let p2 = provider(&v, "two");
    assert_eq!(p2["reachable"], true);
    assert_eq!(p2["server"], "llama.cpp");
    assert!(p2["latencyMs"].is_u64());
    let m2 = &p2["models"][0];
    assert_eq!(
        (m2["role"].as_str(), m2["listed"].as_bool(), m2["state"].as_str()),
        (Some("fallback 1"), Some(true), Some("loaded"))
    );
    assert_eq!(m2["context"]["served"], 512);
    assert_eq!(m2["probe"]["ok"], true);
    assert_eq!(m2["cooldowns"], serde_json::json!([]));

    // The table says the same.
    let r = run(&config, &["--probe"]);
    assert_eq!(r.code, 0);
    let line = |needle: &str| {
        r.stdout
            .lines()
            .find(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("{needle}: {}", r.stdout))
            .to_owned()
    };
    let l1 = line("│ one/tiny ");
    assert!(l1.contains("unreachable") && l1.contains("connect"), "{l1}");
    let l2 = line("│ two/tiny ");
    assert!(l2.contains("up ") && l2.contains("loaded") && l2.contains("ok "), "{l2}");
    assert!(r.stdout.contains("ok: the default chain can answer (two/tiny"), "{}", r.stdout);
    // No spinner or colour codes when stderr is not a terminal.
    assert!(!r.stderr.contains('\u{1b}'), "{:?}", r.stderr);

    // Without --probe: reachability decides.
    let r = run(&config, &[]);
    assert_eq!(r.code, 0, "{}", r.stdout);

    // Nothing reachable: exit 1.
    drop(two);
    for args in [&["--probe", "--json"][..], &["--json"][..], &[][..]] {
        let r = run(&config, args);
        assert_eq!(r.code, 1, "{args:?}: {}", r.stdout);
        if args.contains(&"--json") {
            let v = json(&r);
            assert_eq!(v["ok"], false);
            assert_eq!(v["answeredBy"], Value::Null);
            assert_eq!(provider(&v, "two")["reachable"], false);
        } else {
            assert!(r.stdout.contains("error: no model of the default chain"), "{}", r.stdout);
        }
    }
}

/// `--ctx-size 256` against `contextWindow: 4096`: detected and reported with a fix.
#[test]
fn served_window_smaller_than_configured() {
    let s = server(256);
    let dir = tempfile::tempdir().unwrap();
    let config = write(
        dir.path(),
        &format!(
            r#"{{ agents: {{ defaults: {{ model: "local/tiny" }} }},
  models: {{ mode: "replace", providers: {{ local: {{ baseUrl: "{}/v1", models: [{{ id: "tiny", contextWindow: 4096 }}] }} }} }} }}"#,
            s.origin()
        ),
    );
    let r = run(&config, &[]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("256 / 4096 !"), "{}", r.stdout);
    assert!(
        r.stdout.contains(
            "the config claims a context window of 4096 tokens but the server serves 256"
        ),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("lower contextWindow to 256"), "{}", r.stdout);
    let v = json(&run(&config, &["--json"]));
    let m = &provider(&v, "local")["models"][0];
    assert_eq!(
        (m["context"]["configured"].as_u64(), m["context"]["served"].as_u64()),
        (Some(4096), Some(256))
    );
    assert!(m["context"]["warning"].as_str().unwrap().contains("256"));
    assert!(v["notes"].as_array().unwrap().iter().any(|n| n.as_str().unwrap().contains("4096")));
}

/// Configured `openai-responses` on a server without `/v1/responses`: said, with the fix.
#[tokio::test(flavor = "multi_thread")]
async fn responses_api_missing_is_reported() {
    let up = FakeUpstream::start().await.unwrap();
    up.push(Reply::json(200, r#"{"object":"list","data":[{"id":"qwen3","object":"model","owned_by":"organization_owner"}]}"#));
    up.push(Reply::json(404, r#"{"error":"Unexpected endpoint or method. (POST /v1/responses)"}"#));
    let dir = tempfile::tempdir().unwrap();
    let config = write(
        dir.path(),
        &format!(
            r#"{{ agents: {{ defaults: {{ model: "box/qwen3" }} }},
  models: {{ mode: "replace", providers: {{ box: {{ baseUrl: "{}/v1", api: "openai-responses", models: [{{ id: "qwen3" }}] }} }} }} }}"#,
            up.origin()
        ),
    );
    let r = tokio::task::spawn_blocking(move || run(&config, &["--json"])).await.unwrap();
    // The only candidate would be sent to a route the server does not have.
    assert_eq!(r.code, 1, "{}", r.stdout);
    let v = json(&r);
    let p = provider(&v, "box");
    assert_eq!(p["responsesApi"], false);
    let check = &p["models"][0]["apiCheck"];
    assert_eq!(check["ok"], false);
    let message = check["message"].as_str().unwrap();
    assert!(
        message.contains("no /v1/responses") && message.contains("openai-completions"),
        "{message}"
    );
    let paths: Vec<String> =
        up.requests().iter().map(|r| format!("{} {}", r.method, r.path)).collect();
    assert_eq!(paths, ["GET /v1/models", "POST /v1/responses"]);
}

#[test]
fn no_default_model() {
    let dir = tempfile::tempdir().unwrap();
    let config = write(
        dir.path(),
        r#"{ models: { mode: "replace", providers: { local: { baseUrl: "http://127.0.0.1:9/v1", models: [{ id: "m" }] } } } }"#,
    );
    let r = run(&config, &[]);
    assert_eq!(r.code, 1);
    assert!(r.stdout.contains("default chain: none (no model configured)"), "{}", r.stdout);
    assert!(r.stdout.contains("local/m"), "configured providers are shown: {}", r.stdout);
    let v = json(&run(&config, &["--json"]));
    assert_eq!(v["chainError"], "no model configured");
    // Built-in hosted providers are left out unless --all.
    assert!(v["providers"].as_array().unwrap().iter().all(|p| p["id"] != "openai"));
}

/// A provider with a localService counts as able to answer (hearth starts it on demand);
/// `--probe` starts it, asks it, and stops it on exit.
#[test]
fn local_service_is_started_by_probe_only() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let binary = hearth_testkit::llama::binary().unwrap_or_else(|e| panic!("{e}"));
    let model = hearth_testkit::llama::model().unwrap_or_else(|e| panic!("{e}"));
    let dir = tempfile::tempdir().unwrap();
    let config = write(
        dir.path(),
        &format!(
            r#"{{ agents: {{ defaults: {{ model: "local/tiny" }} }},
  models: {{ mode: "replace", providers: {{ local: {{
    baseUrl: "http://127.0.0.1:{port}/v1",
    models: [{{ id: "tiny", maxTokens: 4 }}],
    localService: {{
      command: "{}",
      args: ["--model", "{}", "--alias", "tiny", "--host", "127.0.0.1", "--port", "{port}", "--ctx-size", "256", "--threads", "1", "--parallel", "1", "--no-webui"],
      healthUrl: "http://127.0.0.1:{port}/health",
      readyTimeoutMs: 60000,
    }},
  }} }} }} }}"#,
            binary.display(),
            model.display()
        ),
    );
    let r = run(&config, &[]);
    assert_eq!(r.code, 0, "{}", r.stdout);
    assert!(r.stdout.contains("down (starts on demand)"), "{}", r.stdout);
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err(), "plain status started it");

    let r = run(&config, &["--probe", "--json"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let v = json(&r);
    let p = provider(&v, "local");
    assert_eq!(p["reachable"], true);
    assert_eq!(p["localService"]["startedByThisCheck"], true);
    assert_eq!(p["models"][0]["probe"]["ok"], true);
    assert_eq!(p["models"][0]["context"]["served"], 256);
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err(), "still running after exit");
}

#[test]
fn local_service_that_cannot_start() {
    let dir = tempfile::tempdir().unwrap();
    let config = write(
        dir.path(),
        r#"{ agents: { defaults: { model: "local/m" } },
  models: { mode: "replace", providers: { local: { baseUrl: "http://127.0.0.1:9/v1", models: [{ id: "m" }],
    localService: { command: "/bin/sh", args: ["-c", "echo cannot open model file >&2; exit 2"] } } } } }"#,
    );
    let r = run(&config, &["--probe"]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    assert!(r.stdout.contains("failed to start"), "{}", r.stdout);
    assert!(r.stdout.contains("cannot open model file"), "{}", r.stdout);
    let v = json(&run(&config, &["--probe", "--json"]));
    let e = &provider(&v, "local")["localService"]["startError"];
    assert_eq!(e["class"], "connect");
    assert!(e["message"].as_str().unwrap().contains("exited"), "{e}");
}

/// An Ollama model's `num_ctx` is in the status: the configured window, cut to the trained one
/// `/api/show` reports, and said plainly when none is configured. See: #15
#[tokio::test(flavor = "multi_thread")]
async fn ollama_num_ctx_is_shown() {
    let up = FakeUpstream::start().await.unwrap();
    let tags = r#"{"models":[{"name":"big:8b","model":"big:8b","size":1,"digest":"d","details":{}},{"name":"bare:1b","model":"bare:1b","size":1,"digest":"e","details":{}}]}"#;
    let show = r#"{"parameters":"","model_info":{"general.architecture":"qwen3","qwen3.context_length":40960},"capabilities":["completion"]}"#;
    for _ in 0..2 {
        up.push(Reply::json(200, tags));
        up.push(Reply::json(200, r#"{"models":[]}"#));
        up.push(Reply::json(200, show));
        up.push(Reply::json(200, show));
    }
    let dir = tempfile::tempdir().unwrap();
    let config = write(
        dir.path(),
        &format!(
            r#"{{ agents: {{ defaults: {{ model: {{ primary: "ol/big:8b", fallbacks: ["ol/bare:1b"] }} }} }},
  models: {{ mode: "replace", providers: {{ ol: {{ baseUrl: "{}", api: "ollama",
    models: [{{ id: "big:8b", contextWindow: 131072 }}, {{ id: "bare:1b" }}] }} }} }} }}"#,
            up.origin()
        ),
    );
    let r = tokio::task::spawn_blocking({
        let config = config.clone();
        move || run(&config, &[])
    })
    .await
    .unwrap();
    assert!(
        r.stdout.contains("ol/big:8b: hearth sends num_ctx 40960 (contextWindow 131072, cut to what the model supports)"),
        "{}{}",
        r.stdout,
        r.stderr
    );
    assert!(r.stdout.contains("ol/bare:1b: no contextWindow or contextTokens"), "{}", r.stdout);
    let v = tokio::task::spawn_blocking(move || json(&run(&config, &["--json"]))).await.unwrap();
    let models = provider(&v, "ol")["models"].as_array().unwrap().clone();
    assert_eq!(
        models[0]["context"]["numCtx"],
        serde_json::json!({"value": 40960, "source": "contextWindow", "cappedFrom": 131072})
    );
    assert_eq!(
        models[1]["context"]["numCtx"],
        serde_json::json!({"value": null, "source": "ollama-default"})
    );
}

/// A provider without `models[]` discovers what the real llama-server serves: its one model,
/// with the runtime window of `/props` (`--ctx-size`), in the rows and in `served`. See: #15
#[test]
fn provider_without_models_shows_the_served_model_and_window() {
    let s = server(768);
    let dir = tempfile::tempdir().unwrap();
    let config = write(
        dir.path(),
        &format!(
            r#"{{ models: {{ mode: "replace", providers: {{ local: {{ baseUrl: "{}/v1" }} }} }} }}"#,
            s.origin()
        ),
    );
    let v = json(&run(&config, &["--json"]));
    let p = provider(&v, "local");
    assert_eq!(p["server"], "llama.cpp");
    let served = p["served"].as_array().unwrap();
    assert_eq!(served.len(), 1, "{p}");
    assert_eq!(served[0]["contextWindow"], 768);
    assert_eq!(served[0]["state"], "loaded");
    let row = &p["models"][0];
    assert_eq!(row["role"], "served");
    assert_eq!(row["id"], served[0]["id"]);
    assert_eq!(row["context"]["served"], 768);
    let r = run(&config, &[]);
    assert!(r.stdout.contains("served") && r.stdout.contains("768"), "{}", r.stdout);
}
