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
