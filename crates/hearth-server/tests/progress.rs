//! Slow prompts are not hangs: a llama.cpp upstream that reports prompt processing
//! (`return_progress`, the shape of `scripts/testbed/captures/chat-progress.sse`) keeps its
//! request alive past the first-byte timeout, and every client API sees keep-alives while it
//! waits; a server that sends nothing, repeats itself or stops reporting is still timed out and
//! failed over. See: #15
#![expect(clippy::unwrap_used, reason = "tests")]

use std::time::Duration;

use hearth_testkit::{End, FakeUpstream, Reply, Step};
use serde_json::{Value, json};

mod common;
use common::{client, start, state};

/// The real llama-server's progress chunks (`return_progress`).
const CAPTURE: &str = include_str!("../../../scripts/testbed/captures/chat-progress.sse");

/// A progress chunk of the capture, with `processed` of `total`.
fn progress_chunk(processed: u64, total: u64, time_ms: u64) -> String {
    let line = CAPTURE.lines().find(|l| l.contains("\"prompt_progress\"")).unwrap();
    let mut value: Value = serde_json::from_str(line.strip_prefix("data: ").unwrap()).unwrap();
    value["prompt_progress"] =
        json!({"total": total, "cache": 0, "processed": processed, "time_ms": time_ms});
    format!("data: {value}\n\n")
}

const ANSWER: &str = "data: {\"choices\":[{\"finish_reason\":null,\"index\":0,\"delta\":{\"content\":\"Hello\"}}],\"created\":1764680000,\"id\":\"chatcmpl-p\",\"model\":\"tiny\",\"object\":\"chat.completion.chunk\"}\n\n\
data: {\"choices\":[{\"finish_reason\":\"stop\",\"index\":0,\"delta\":{}}],\"created\":1764680000,\"id\":\"chatcmpl-p\",\"model\":\"tiny\",\"object\":\"chat.completion.chunk\"}\n\n\
data: [DONE]\n\n";

/// `reports` progress chunks `every` apart (processed rising to `total`), then `answer`.
fn reporting(reports: u64, every: Duration, total: u64, answer: Option<&str>) -> Reply {
    let mut steps = Vec::new();
    for i in 0..reports {
        let processed = if reports > 1 { total * i / (reports - 1) } else { total };
        let time_ms = (every * i as u32).as_millis() as u64;
        steps.push(Step::Bytes(progress_chunk(processed, total, time_ms).into_bytes()));
        steps.push(Step::Pause(every));
    }
    let end = match answer {
        Some(answer) => {
            steps.push(Step::Bytes(answer.as_bytes().to_vec()));
            End::Complete
        }
        None => End::Stall,
    };
    Reply {
        status: 200,
        headers: vec![("content-type".into(), "text/event-stream".into())],
        steps,
        end,
    }
}

fn config(slow: &str, fallback: &str) -> String {
    format!(
        r#"{{models: {{mode: "replace", providers: {{
            llamacpp: {{baseUrl: "{slow}/v1", api: "openai-completions", timeoutSeconds: 1, models: [{{id: "tiny"}}]}},
            backup: {{baseUrl: "{fallback}/v1", api: "openai-completions", models: [{{id: "m"}}]}}}}}},
          agents: {{defaults: {{model: {{primary: "llamacpp/tiny", fallbacks: ["backup/m"]}}}}}},
          gateway: {{limits: {{streamHeadersAfterMs: 100, streamKeepAliveMs: 60000}}}}}}"#
    )
}

/// Status and body (a late stream has no `x-hearth-provider`: its headers went out first).
async fn post(origin: &str, path: &str, body: &Value) -> (u16, String) {
    let response = client()
        .post(format!("{origin}{path}"))
        .header("anthropic-version", "2023-06-01")
        .json(body)
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

fn body_for(path: &str) -> Value {
    match path {
        "/v1/responses" => json!({"model": "hearth", "input": "hi", "stream": true}),
        "/v1/messages" => json!({"model": "hearth", "max_tokens": 64, "stream": true,
            "messages": [{"role": "user", "content": "hi"}]}),
        _ => {
            json!({"model": "hearth", "stream": true, "messages": [{"role": "user", "content": "hi"}]})
        }
    }
}

/// Reports for 2.4 s, with a first-byte timeout of 1 s: each client API gets its keep-alives
/// and then the answer, from the slow server (no failover).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_keeps_a_slow_prompt_alive_past_the_first_byte_timeout() {
    let slow = FakeUpstream::start_calls_only().await.unwrap();
    let backup = FakeUpstream::start_calls_only().await.unwrap();
    let gw = start(state(&config(&slow.origin(), &backup.origin()), &[]), None).await;
    for path in ["/v1/chat/completions", "/v1/responses", "/v1/messages"] {
        slow.push(reporting(9, Duration::from_millis(300), 2270, Some(ANSWER)));
        let (status, text) = post(&gw.origin(), path, &body_for(path)).await;
        assert_eq!(status, 200, "{path}: {text}");
        assert!(text.contains("Hello"), "{path}: {text}");
        match path {
            // Anthropic's own keep-alive, before `message_start` (and its usual one after it).
            "/v1/messages" => {
                let before_start = text.split("event: message_start").next().unwrap();
                assert!(before_start.matches("event: ping").count() >= 3, "{text}");
                assert!(!text.contains(": progress"), "{text}");
            }
            _ => {
                assert!(text.contains(": progress 2270/2270\n\n"), "{path}: {text}");
                assert!(text.matches(": progress ").count() >= 3, "{path}: {text}");
            }
        }
    }
    assert!(backup.requests().is_empty(), "never failed over");
    for request in slow.requests() {
        assert_eq!(request.json()["return_progress"], json!(true));
    }
    let metrics = client().get(format!("{}/metrics", gw.origin())).send().await.unwrap();
    let metrics = metrics.text().await.unwrap();
    assert!(
        metrics.contains(
            "hearth_upstream_prompt_progress_total{provider=\"llamacpp\",model=\"tiny\"} 27"
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains(
            "hearth_upstream_prompt_processing_seconds_count{provider=\"llamacpp\",model=\"tiny\"} 3"
        ),
        "{metrics}"
    );
}

/// A server that answers headers and then nothing, one that repeats the same report, and one
/// that stops reporting before its answer begins are timed out as before and failed over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_makes_no_progress_is_still_timed_out() {
    let silent = Reply { steps: Vec::new(), ..reporting(0, Duration::ZERO, 1, None) };
    let mut repeating = reporting(0, Duration::ZERO, 1, Some(ANSWER));
    repeating.steps = (0..12)
        .flat_map(|_| {
            [
                Step::Bytes(progress_chunk(128, 2270, 10).into_bytes()),
                Step::Pause(Duration::from_millis(250)),
            ]
        })
        .chain([Step::Bytes(ANSWER.as_bytes().to_vec())])
        .collect();
    let stopped = reporting(3, Duration::from_millis(200), 2270, None);
    for (name, reply) in [("silent", silent), ("repeating", repeating), ("stopped", stopped)] {
        // A fresh gateway each: a timeout cools the provider down.
        let slow = FakeUpstream::start_calls_only().await.unwrap();
        let backup = FakeUpstream::start_calls_only().await.unwrap();
        let gw = start(state(&config(&slow.origin(), &backup.origin()), &[]), None).await;
        slow.push(reply);
        backup.push(Reply::sse_raw(ANSWER));
        let started = std::time::Instant::now();
        let (status, text) =
            post(&gw.origin(), "/v1/chat/completions", &body_for("/v1/chat/completions")).await;
        assert_eq!(status, 200, "{name}: {text}");
        assert!(text.contains("Hello") && text.contains("data: [DONE]"), "{name}: {text}");
        assert_eq!(backup.requests().len(), 1, "{name}: failed over to the backup");
        // Only llama.cpp is asked for progress: other servers may reject the unknown field.
        assert_eq!(backup.requests()[0].json().get("return_progress"), None, "{name}");
        let waited = started.elapsed();
        assert!(waited < Duration::from_millis(2900), "{name}: timed out after {waited:?}");
    }
}

const OLLAMA_BODY: &str = r#"{"model":"qwen3:8b","created_at":"2026-12-02T08:00:00Z","message":{"role":"assistant","content":"loaded and ready"},"done":true,"done_reason":"stop","prompt_eval_count":12,"eval_count":3}"#;
const OLLAMA_LINES: &[&str] = &[
    r#"{"model":"qwen3:8b","created_at":"2026-12-02T08:00:00Z","message":{"role":"assistant","content":"loaded and ready"},"done":false}"#,
    r#"{"model":"qwen3:8b","created_at":"2026-12-02T08:00:01Z","message":{"role":"assistant","content":""},"done":true,"done_reason":"stop","prompt_eval_count":12,"eval_count":3}"#,
];
/// Ollama's `/api/ps` while nothing is loaded, and once the model is in (shape:
/// shared/reference/local-servers.md §1, Ollama).
const PS_EMPTY: &str = r#"{"models":[]}"#;
const PS_LOADED: &str = r#"{"models":[{"name":"qwen3:8b","model":"qwen3:8b","size":5200000000,"context_length":8192}]}"#;

/// A cold load on a local Ollama server: it answers nothing until the model is in (here 3.5 s,
/// with `timeoutSeconds: 1`). While its `/api/ps` does not list the model, the wait is renewed
/// and the answer arrives, whole and streamed; a server that lists the model as loaded and
/// still answers nothing is timed out at 1 s, as before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cold_load_is_waited_for_while_the_server_says_it_is_loading() {
    let config = |origin: &str| {
        format!(
            r#"{{gateway: {{auth: {{mode: "none"}}}}, models: {{mode: "replace", providers: {{
                ollama: {{baseUrl: "{origin}", api: "ollama", timeoutSeconds: 1,
                  models: [{{id: "qwen3:8b"}}]}}}}}}}}"#
        )
    };
    for stream in [false, true] {
        let up = FakeUpstream::start().await.unwrap();
        let reply =
            if stream { Reply::ndjson(OLLAMA_LINES) } else { Reply::json(200, OLLAMA_BODY) };
        up.push(reply.headers_after(Duration::from_millis(3500)));
        for _ in 0..8 {
            up.push(Reply::json(200, PS_EMPTY));
        }
        let gw = start(state(&config(&up.origin()), &[]), None).await;
        let started = std::time::Instant::now();
        let response = client()
            .post(format!("{}/v1/chat/completions", gw.origin()))
            .json(&json!({"model": "ollama/qwen3:8b", "stream": stream,
                "messages": [{"role": "user", "content": "hi"}]}))
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        assert_eq!(status, 200, "stream={stream}: {text}");
        assert!(text.contains("loaded and ready"), "stream={stream}: {text}");
        assert!(started.elapsed() >= Duration::from_secs(3), "the answer came after the load");
        let asked = up.requests().iter().filter(|r| r.path == "/api/ps").count();
        assert!(asked >= 2, "the load state was asked each time the wait ran out: {asked}");
    }
    // Loaded, and still silent: no reason to wait.
    let up = FakeUpstream::start().await.unwrap();
    up.push(Reply::json(200, OLLAMA_BODY).headers_after(Duration::from_secs(4)));
    up.push(Reply::json(200, PS_LOADED));
    let gw = start(state(&config(&up.origin()), &[]), None).await;
    let started = std::time::Instant::now();
    let response = client()
        .post(format!("{}/v1/chat/completions", gw.origin()))
        .json(&json!({"model": "ollama/qwen3:8b", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    assert_ne!(status, 200, "{text}");
    assert!(text.contains("timeoutSeconds"), "{text}");
    assert!(started.elapsed() < Duration::from_secs(3), "timed out at the first-byte timeout");
}

/// The same on LM Studio (JIT load): its `/api/v0/models` says `loading` (shape:
/// `scripts/testbed/captures/lmstudio/`), and the wait is renewed until the answer comes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_lm_studio_jit_load_is_waited_for() {
    let up = FakeUpstream::start().await.unwrap();
    let chat = r#"{"id":"c","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"loaded and ready"},"finish_reason":"stop"}],"usage":{"prompt_tokens":5,"completion_tokens":3,"total_tokens":8}}"#;
    up.push(Reply::json(200, chat).headers_after(Duration::from_millis(2500)));
    let loading = r#"{"object":"list","data":[{"id":"qwen3-8b","object":"model","type":"llm","state":"loading","max_context_length":32768}]}"#;
    for _ in 0..8 {
        up.push(Reply::json(200, loading));
    }
    let config = format!(
        r#"{{gateway: {{auth: {{mode: "none"}}}}, models: {{mode: "replace", providers: {{
            lmstudio: {{baseUrl: "{}/v1", api: "openai-completions", timeoutSeconds: 1,
              models: [{{id: "qwen3-8b"}}]}}}}}}}}"#,
        up.origin()
    );
    let gw = start(state(&config, &[]), None).await;
    let response = client()
        .post(format!("{}/v1/chat/completions", gw.origin()))
        .json(
            &json!({"model": "lmstudio/qwen3-8b", "messages": [{"role": "user", "content": "hi"}]}),
        )
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("loaded and ready"), "{text}");
    assert!(up.requests().iter().any(|r| r.path == "/api/v0/models"));
}

/// `mlx_lm.server` reports a long prefill as SSE comments (`: keepalive 1024/8000`,
/// shared/reference/local-servers.md §5): each one that shows more read renews the first-byte
/// wait, as llama-server's reports do, and the client gets the answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mlx_keepalive_comments_are_progress() {
    let up = FakeUpstream::start_calls_only().await.unwrap();
    let mut steps = Vec::new();
    for i in 1..=6u64 {
        steps.push(Step::Bytes(format!(": keepalive {}/6000\n\n", i * 1000).into_bytes()));
        steps.push(Step::Pause(Duration::from_millis(400)));
    }
    steps.push(Step::Bytes(ANSWER.as_bytes().to_vec()));
    up.push(Reply {
        status: 200,
        headers: vec![("content-type".into(), "text/event-stream".into())],
        steps,
        end: End::Complete,
    });
    let config = format!(
        r#"{{gateway: {{auth: {{mode: "none"}}}}, models: {{mode: "replace", providers: {{
            mlx: {{baseUrl: "{}/v1", api: "openai-completions", timeoutSeconds: 1,
              models: [{{id: "mlx-community/Qwen3-8B-4bit"}}]}}}}}}}}"#,
        up.origin()
    );
    let gw = start(state(&config, &[]), None).await;
    let (status, text) = post(
        &gw.origin(),
        "/v1/chat/completions",
        &json!({"model": "mlx/mlx-community/Qwen3-8B-4bit", "stream": true,
            "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("Hello"), "2.4 s of prefill, timeoutSeconds 1, and the answer: {text}");
}
