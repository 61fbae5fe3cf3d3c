//! Cold loads and slow prompts are not hangs (issue 15, item 4), through the real surfaces:
//! the real `openai` and `anthropic` SDKs keep their streams open while a scripted llama.cpp
//! upstream reports prompt progress for 20 s (hearth's first-byte timeout is 3 s, the SDKs'
//! read timeout 6 s); `hearth agent` and `hearth infer model run` draw the progress bar; the
//! real llama-server of the test bed reports progress for a long prompt. Its own test binary:
//! the 20 s test is slow. See: #15
#![expect(clippy::unwrap_used, reason = "tests")]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use hearth_testkit::{End, FakeUpstream, GatewayProcess, LlamaServer, Reply, Step};

/// The real llama-server's progress chunks: the shape of the capture, numbers varied.
const CAPTURE: &str = include_str!("../../../scripts/testbed/captures/chat-progress.sse");

/// A progress chunk of the capture with `processed` of `total`.
fn progress_chunk(processed: u64, total: u64, time_ms: u64) -> String {
    let line = CAPTURE.lines().find(|l| l.contains("\"prompt_progress\"")).unwrap();
    let mut value: serde_json::Value =
        serde_json::from_str(line.strip_prefix("data: ").unwrap()).unwrap();
    value["prompt_progress"] = serde_json::json!({
        "total": total, "cache": 0, "processed": processed, "time_ms": time_ms,
    });
    format!("data: {value}\n\n")
}

const ANSWER: &str = "data: {\"choices\":[{\"finish_reason\":null,\"index\":0,\"delta\":{\"content\":\"Hello\"}}],\"created\":1764680000,\"id\":\"chatcmpl-p\",\"model\":\"tiny\",\"object\":\"chat.completion.chunk\"}\n\n\
data: {\"choices\":[{\"finish_reason\":\"stop\",\"index\":0,\"delta\":{}}],\"created\":1764680000,\"id\":\"chatcmpl-p\",\"model\":\"tiny\",\"object\":\"chat.completion.chunk\"}\n\n\
data: [DONE]\n\n";

/// `reports` progress chunks `every` apart, processed rising to `total`, then the answer.
fn reporting(reports: u64, every: Duration, total: u64) -> Reply {
    let mut steps = Vec::new();
    for i in 0..reports {
        let processed = total * i / (reports - 1).max(1);
        let time_ms = (every * i as u32).as_millis() as u64;
        steps.push(Step::Bytes(progress_chunk(processed, total, time_ms).into_bytes()));
        steps.push(Step::Pause(every));
    }
    steps.push(Step::Bytes(ANSWER.as_bytes().to_vec()));
    Reply {
        status: 200,
        headers: vec![("content-type".into(), "text/event-stream".into())],
        steps,
        end: End::Complete,
    }
}

fn write_config(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("hearth.json5");
    std::fs::write(&path, text).unwrap();
    path
}

fn python() -> PathBuf {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/testbed/python-env.sh");
    let output = Command::new("bash").arg(&script).stderr(Stdio::inherit()).output().unwrap();
    assert!(output.status.success(), "scripts/testbed/python-env.sh failed");
    PathBuf::from(String::from_utf8(output.stdout).unwrap().lines().last().unwrap().trim())
}

/// `hearth` with `args` against `config`, the bar forced on or off.
fn hearth(config: &Path, args: &[&str], progress: &str) -> (bool, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_hearth"))
        .arg("--config")
        .arg(config)
        .args(args)
        .env("HEARTH_PROGRESS", progress)
        .env("HEARTH_STATE_DIR", config.parent().unwrap().join("state"))
        .env_remove("HEARTH_GATEWAY_TOKEN")
        .output()
        .unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_streams_stay_open_while_the_server_reads_the_prompt_for_20_seconds() {
    let chat = FakeUpstream::start_calls_only().await.unwrap();
    let messages = FakeUpstream::start_calls_only().await.unwrap();
    chat.push(reporting(21, Duration::from_secs(1), 24_000));
    messages.push(reporting(21, Duration::from_secs(1), 24_000));
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &format!(
            r#"{{models: {{mode: "replace", providers: {{
                 llamacpp: {{baseUrl: "{}/v1", api: "openai-completions", timeoutSeconds: 3, models: [{{id: "tiny"}}]}},
                 "llamacpp-2": {{baseUrl: "{}/v1", api: "openai-completions", timeoutSeconds: 3, models: [{{id: "tiny"}}]}}}}}},
               agents: {{defaults: {{model: {{primary: "llamacpp/tiny"}}}}}}}}"#,
            chat.origin(),
            messages.origin()
        ),
    );
    let gateway = GatewayProcess::spawn(
        Command::new(env!("CARGO_BIN_EXE_hearth"))
            .arg("--config")
            .arg(&config)
            .args(["gateway", "run", "--port", "0"])
            .env_remove("HEARTH_GATEWAY_TOKEN")
            .env("HEARTH_STATE_DIR", dir.path().join("state")),
    )
    .unwrap();
    let python = tokio::task::spawn_blocking(python).await.unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sdk/slow_prompt.py");
    let origin = gateway.origin();
    let output = tokio::task::spawn_blocking(move || {
        Command::new(python)
            .arg(script)
            .env("HEARTH_BASE", origin)
            .env("HEARTH_CHAT_MODEL", "llamacpp/tiny")
            .env("HEARTH_MESSAGES_MODEL", "llamacpp-2/tiny")
            .env("HEARTH_READ_TIMEOUT", "6")
            .env("HEARTH_MIN_WAIT", "20")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(
        output.status.success(),
        "slow_prompt.py failed:\n{}\n{}\ngateway:\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
        gateway.stderr()
    );
    assert_eq!((chat.requests().len(), messages.requests().len()), (1, 1), "no retries");
    assert_eq!(chat.requests()[0].json()["return_progress"], serde_json::json!(true));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_and_infer_draw_a_progress_bar_while_the_prompt_is_read() {
    let upstream = FakeUpstream::start_calls_only().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &format!(
            r#"{{models: {{mode: "replace", providers: {{
                 llamacpp: {{baseUrl: "{}/v1", api: "openai-completions", timeoutSeconds: 1, models: [{{id: "tiny"}}]}}}}}},
               agents: {{defaults: {{model: {{primary: "llamacpp/tiny"}}}}}}}}"#,
            upstream.origin()
        ),
    );
    let agent = ["agent", "--message", "hi"];
    let infer = ["infer", "model", "run", "--stream", "--prompt", "hi"];
    for args in [&agent[..], &infer[..]] {
        if args == agent {
            // The agent counts its prompt with llama.cpp's `/tokenize` first.
            upstream.push(Reply::json(200, r#"{"tokens":[1,2,3]}"#));
        }
        upstream.push(reporting(6, Duration::from_millis(300), 2270));
        let (config, owned) = (config.clone(), args.to_vec());
        let (ok, stdout, stderr) =
            tokio::task::spawn_blocking(move || hearth(&config, &owned, "1")).await.unwrap();
        let paths: Vec<String> = upstream.requests().iter().map(|r| r.path.clone()).collect();
        assert!(ok, "{args:?}: {stdout}\n{stderr}\n{paths:?}");
        assert_eq!(stdout.trim(), "Hello", "{args:?}");
        assert!(stderr.contains("\rreading prompt ▕"), "{args:?}: {stderr:?}");
        assert!(stderr.contains("  40% (908/2,270 tokens)"), "{args:?}: {stderr:?}");
        assert!(
            stderr.contains("▕████████████████████▏ 100% (2,270/2,270 tokens)"),
            "{args:?}: {stderr:?}"
        );
        // Cleared before the answer: the line is blanked and the cursor back at its start.
        let cleared = stderr.rfind("tokens)").unwrap();
        assert!(stderr[cleared..].contains(&format!("\r{}\r", " ".repeat(63))), "{stderr:?}");
    }
    // Not forced and not a terminal: no bar.
    upstream.push(Reply::json(200, r#"{"tokens":[1,2,3]}"#));
    upstream.push(reporting(3, Duration::from_millis(100), 2270));
    let config2 = config.clone();
    let (ok, _, stderr) =
        tokio::task::spawn_blocking(move || hearth(&config2, &agent, "0")).await.unwrap();
    assert!(ok && !stderr.contains("reading prompt"), "{stderr:?}");
}

/// The real llama-server reads a long prompt in batches of 16 tokens and reports each one;
/// `hearth infer model run --stream` draws them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_real_llama_server_reports_progress_for_a_long_prompt() {
    let llama = LlamaServer::start_with(2048, &["--batch-size", "16", "--ubatch-size", "16"])
        .unwrap_or_else(|e| panic!("the llama.cpp test bed is required: {e}"));
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &format!(
            r#"{{models: {{mode: "replace", providers: {{
                 llamacpp: {{baseUrl: "{}/v1", api: "openai-completions", models: [{{id: "tiny", contextWindow: 2048, maxTokens: 4}}]}}}}}},
               agents: {{defaults: {{model: {{primary: "llamacpp/tiny"}}}}}}}}"#,
            llama.origin()
        ),
    );
    let prompt = "the quick brown fox jumps over the lazy dog ".repeat(20);
    let (ok, stdout, stderr) = tokio::task::spawn_blocking(move || {
        hearth(&config, &["infer", "model", "run", "--stream", "--prompt", &prompt], "1")
    })
    .await
    .unwrap();
    assert!(ok, "{stdout}\n{stderr}");
    let reports = stderr.matches("\rreading prompt ▕").count();
    assert!(reports >= 5, "{reports} progress lines: {stderr:?}");
    assert!(stderr.contains("▏ 100% ("), "{stderr:?}");
}

/// Through the gateway: a streaming chat request for a long prompt to the real llama-server (its
/// headers out after 1 ms) gets the server's reports as `: progress` comments before the answer,
/// and `/metrics` counts them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_relays_the_real_llama_servers_progress() {
    let llama = LlamaServer::start_with(2048, &["--batch-size", "16", "--ubatch-size", "16"])
        .unwrap_or_else(|e| panic!("the llama.cpp test bed is required: {e}"));
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &format!(
            r#"{{models: {{mode: "replace", providers: {{
                 llamacpp: {{baseUrl: "{}/v1", api: "openai-completions", models: [{{id: "tiny", contextWindow: 2048, maxTokens: 4}}]}}}}}},
               agents: {{defaults: {{model: {{primary: "llamacpp/tiny"}}}}}},
               gateway: {{limits: {{streamHeadersAfterMs: 1}}}}}}"#,
            llama.origin()
        ),
    );
    let gateway = GatewayProcess::spawn(
        Command::new(env!("CARGO_BIN_EXE_hearth"))
            .arg("--config")
            .arg(&config)
            .args(["gateway", "run", "--port", "0"])
            .env_remove("HEARTH_GATEWAY_TOKEN")
            .env("HEARTH_STATE_DIR", dir.path().join("state")),
    )
    .unwrap();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let prompt = "the quick brown fox jumps over the lazy dog ".repeat(20);
    let body = serde_json::json!({"model": "llamacpp/tiny", "stream": true,
        "messages": [{"role": "user", "content": prompt}]});
    let client = reqwest::Client::new();
    let response = client
        .post(format!("{}/v1/chat/completions", gateway.origin()))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    let first_data = text.find("data: ").unwrap();
    let comments: Vec<&str> =
        text[..first_data].lines().filter(|l| l.starts_with(": progress ")).collect();
    let last = comments.last().unwrap_or_else(|| panic!("no progress relayed: {text}"));
    let (processed, total) = last.trim_start_matches(": progress ").split_once('/').unwrap();
    assert_eq!(processed, total, "the last report says the prompt was read: {text}");
    assert!(total.parse::<u64>().unwrap() > 150 && comments.len() >= 2, "{text}");
    assert!(text.trim_end().ends_with("data: [DONE]"), "{text}");
    let metrics = client.get(format!("{}/metrics", gateway.origin())).send().await.unwrap();
    let metrics = metrics.text().await.unwrap();
    let counted = metrics
        .lines()
        .find(|l| l.starts_with("hearth_upstream_prompt_progress_total{"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|n| n.parse::<u64>().ok())
        .unwrap_or_else(|| panic!("{metrics}"));
    assert!(counted >= 5, "{counted} reports: {metrics}");
}
