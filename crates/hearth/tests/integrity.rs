//! Turn integrity and notices (issue 13, items 5 and 6), through a real `hearth gateway run`
//! process and its HTTP and WebSocket doors, with a scripted upstream: a failed turn leaves no
//! orphan user message, the preflight judges the candidate that will answer, what the agent
//! learns (fallback notices) reaches HTTP and WebSocket clients, and a request's `max_tokens`
//! is sent as the client wrote it.
#![expect(clippy::unwrap_used, reason = "tests")]

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use hearth_testkit::{FakeUpstream, GatewayProcess, Reply};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

fn answer(text: &str) -> Reply {
    Reply::json(
        200,
        &json!({"id": "c1", "object": "chat.completion", "created": 1, "model": "m",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}})
        .to_string(),
    )
}

struct Gateway {
    _process: GatewayProcess,
    origin: String,
    /// What the gateway said on startup.
    stderr: String,
}

fn spawn(dir: &Path, config: &str) -> Gateway {
    std::fs::write(dir.join("hearth.json5"), config).unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_hearth"));
    command
        .arg("--config")
        .arg(dir.join("hearth.json5"))
        .env("HEARTH_STATE_DIR", dir.join("state"))
        .env_remove("HEARTH_GATEWAY_TOKEN")
        .env_remove("HEARTH_GATEWAY_PASSWORD")
        .args(["gateway", "run", "--port", "0"]);
    let process = GatewayProcess::spawn(&mut command).unwrap();
    assert!(process.wait_for_stderr("sessions:", Duration::from_secs(10)), "{}", process.stderr());
    Gateway { origin: process.origin(), stderr: process.stderr(), _process: process }
}

struct Response {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: String,
}

async fn post(gw: &Gateway, path: &str, body: Value) -> Response {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let response = reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .post(format!("{}{path}", gw.origin))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    Response { status, headers, body: response.text().await.unwrap() }
}

/// The `x-hearth-notice` headers, percent-decoded.
fn notices(headers: &reqwest::header::HeaderMap) -> Vec<String> {
    headers
        .get_all("x-hearth-notice")
        .iter()
        .map(|v| {
            let raw = v.to_str().unwrap().as_bytes();
            let mut out = Vec::new();
            let mut i = 0;
            while i < raw.len() {
                if raw[i] == b'%' {
                    let hex = std::str::from_utf8(&raw[i + 1..i + 3]).unwrap();
                    out.push(u8::from_str_radix(hex, 16).unwrap());
                    i += 3;
                } else {
                    out.push(raw[i]);
                    i += 1;
                }
            }
            String::from_utf8(out).unwrap()
        })
        .collect()
}

/// The model calls the upstream received (probes left out).
fn calls(upstream: &FakeUpstream) -> Vec<hearth_testkit::Recorded> {
    upstream.requests().into_iter().filter(|r| r.path.ends_with("/chat/completions")).collect()
}

/// Roles and texts of the messages of one recorded upstream chat request.
fn messages(request: &Value) -> Vec<(String, String)> {
    request["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let text = match &m["content"] {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            (m["role"].as_str().unwrap().to_owned(), text)
        })
        .collect()
}

/// One local provider `fake` at `upstream`.
fn one_model(upstream: &FakeUpstream) -> String {
    format!(
        r#"{{models: {{mode: "replace", providers: {{fake: {{baseUrl: "{}/v1", api: "openai-completions", models: [{{id: "m", contextWindow: 32000, maxTokens: 512}}]}}}}}},
           agents: {{defaults: {{model: "fake/m"}}}}}}"#,
        upstream.origin()
    )
}

/// A primary `id` with a `window`-token context and a fallback `big/b` with `big`, both served
/// by `upstream`.
fn primary_then_big(upstream: &FakeUpstream, id: &str, window: u64, big: u64) -> String {
    let origin = upstream.origin();
    format!(
        r#"{{models: {{mode: "replace", providers: {{
              {id}: {{baseUrl: "{origin}/v1", api: "openai-completions", models: [{{id: "s", contextWindow: {window}, maxTokens: 256}}]}},
              big: {{baseUrl: "{origin}/v1", api: "openai-completions", models: [{{id: "b", contextWindow: {big}, maxTokens: 512}}]}}}}}},
           agents: {{defaults: {{model: {{primary: "{id}/s", fallbacks: ["big/b"]}}}}}}}}"#
    )
}

/// A primary whose window is too small for any turn (2,000 tokens; the preflight refuses
/// under 4,000) and a fallback with a big one.
fn small_then_big(upstream: &FakeUpstream) -> String {
    primary_then_big(upstream, "small", 2000, 32000)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_turn_that_failed_before_any_answer_leaves_no_orphan_user_message() {
    let upstream = FakeUpstream::start_calls_only().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let gw = spawn(dir.path(), &one_model(&upstream));
    // The upstream refuses the first turn.
    upstream.push(Reply::json(400, r#"{"error":{"message":"upstream refused"}}"#));
    let body = |text: &str| json!({"model": "hearth", "user": "ada", "messages": [{"role": "user", "content": text}]});
    let first = post(&gw, "/v1/chat/completions", body("first, lost")).await;
    assert_ne!(first.status, 200, "{}", first.body);
    let asked = calls(&upstream).len();
    assert!(asked >= 1, "the first turn reached the upstream");

    upstream.push(answer("second answer"));
    let second = post(&gw, "/v1/chat/completions", body("second")).await;
    assert_eq!(second.status, 200, "{}", second.body);
    let requests = calls(&upstream);
    let sent = messages(&requests.last().unwrap().json());
    let users: Vec<&str> =
        sent.iter().filter(|(role, _)| role == "user").map(|(_, t)| t.as_str()).collect();
    assert_eq!(users, ["second"], "the failed turn's message is not sent again: {sent:?}");

    // The third turn sees a well-formed conversation: user, assistant, user.
    upstream.push(answer("third answer"));
    let third = post(&gw, "/v1/chat/completions", body("third")).await;
    assert_eq!(third.status, 200, "{}", third.body);
    let sent = messages(&calls(&upstream).last().unwrap().json());
    let turns: Vec<(&str, &str)> = sent
        .iter()
        .filter(|(role, _)| role != "system")
        .map(|(r, t)| (r.as_str(), t.as_str()))
        .collect();
    assert_eq!(
        turns,
        [("user", "second"), ("assistant", "second answer"), ("user", "third")],
        "{sent:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_primary_too_small_for_the_turn_yields_to_a_fallback_and_the_notice_reaches_http() {
    let upstream = FakeUpstream::start_calls_only().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let gw = spawn(dir.path(), &small_then_big(&upstream));
    upstream.push(answer("from big"));
    let body =
        json!({"model": "hearth", "user": "bo", "messages": [{"role": "user", "content": "hi"}]});
    let response = post(&gw, "/v1/chat/completions", body.clone()).await;
    assert_eq!(response.status, 200, "answered instead of refused: {}", response.body);
    assert_eq!(response.headers.get("x-hearth-provider").unwrap(), "big");
    let requests = calls(&upstream);
    assert_eq!(requests.len(), 1, "the too-small primary is not asked");
    assert_eq!(requests[0].json()["model"], "b");
    let said = notices(&response.headers);
    assert!(
        said.iter().any(|n| n.contains("Model Fallback: big/b") && n.contains("small/s")),
        "{said:?}"
    );

    // Once per change: the same fallback again says nothing new.
    upstream.push(answer("from big again"));
    let again = post(&gw, "/v1/chat/completions", body).await;
    assert_eq!(again.status, 200, "{}", again.body);
    assert!(
        notices(&again.headers).iter().all(|n| !n.contains("Model Fallback")),
        "{:?}",
        notices(&again.headers)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_whose_headers_left_early_carries_the_notice_in_band() {
    let upstream = FakeUpstream::start_calls_only().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    // Headers go out at once (before the run starts), so the notice can only travel in-band.
    let config = format!(
        "{}, gateway: {{limits: {{streamHeadersAfterMs: 1}}}}}}",
        small_then_big(&upstream).trim_end().strip_suffix('}').unwrap()
    );
    let gw = spawn(dir.path(), &config);
    upstream.push(Reply::sse(&[
        r#"{"id":"c1","object":"chat.completion.chunk","created":1,"model":"b","choices":[{"index":0,"delta":{"role":"assistant","content":"streamed"},"finish_reason":null}]}"#,
        r#"{"id":"c1","object":"chat.completion.chunk","created":1,"model":"b","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}"#,
        "[DONE]",
    ]));
    let body =
        json!({"model": "hearth", "stream": true, "messages": [{"role": "user", "content": "hi"}]});
    let response = post(&gw, "/v1/chat/completions", body).await;
    assert_eq!(response.status, 200, "{}", response.body);
    assert!(response.headers.get("x-hearth-provider").is_none(), "the late path was taken");
    let chunks: Vec<Value> = response
        .body
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter(|d| *d != "[DONE]")
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    let notice = chunks.iter().find(|c| c.get("hearth_notice").is_some()).unwrap_or_else(|| {
        panic!("no notice chunk: {}", response.body);
    });
    assert!(notice["hearth_notice"].as_str().unwrap().contains("Model Fallback: big/b"));
    // The notice chunk is a well-formed chunk with an empty delta: SDKs read it as nothing.
    assert_eq!(notice["object"], "chat.completion.chunk");
    assert_eq!(notice["choices"][0]["delta"]["content"], "");
    let text: String =
        chunks.iter().filter_map(|c| c["choices"][0]["delta"]["content"].as_str()).collect();
    assert_eq!(text, "streamed");
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn recv(ws: &mut Ws) -> Value {
    loop {
        if let Message::Text(text) = ws.next().await.unwrap().unwrap() {
            return serde_json::from_str(&text).unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_websocket_agent_run_carries_the_fallback_notice_as_an_agent_event() {
    let upstream = FakeUpstream::start_calls_only().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let gw = spawn(dir.path(), &small_then_big(&upstream));
    upstream.push(Reply::sse(&[
        r#"{"id":"c1","object":"chat.completion.chunk","created":1,"model":"b","choices":[{"index":0,"delta":{"role":"assistant","content":"ws answer"},"finish_reason":null}]}"#,
        r#"{"id":"c1","object":"chat.completion.chunk","created":1,"model":"b","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}"#,
        "[DONE]",
    ]));
    let url = gw.origin.replacen("http://", "ws://", 1) + "/";
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    assert_eq!(recv(&mut ws).await["event"], "connect.challenge");
    let connect = json!({"type": "req", "id": "c1", "method": "connect", "params": {
        "minProtocol": 4, "maxProtocol": 4,
        "client": {"id": "test", "version": "1.0.0", "platform": "linux", "mode": "operator"},
        "role": "operator", "scopes": ["operator.read", "operator.write"], "auth": {}}});
    ws.send(Message::text(connect.to_string())).await.unwrap();
    assert_eq!(recv(&mut ws).await["ok"], true);
    let run = json!({"type": "req", "id": "a1", "method": "agent", "params": {"idempotencyKey": "k1", "message": "hi"}});
    ws.send(Message::text(run.to_string())).await.unwrap();
    let mut streams = Vec::new();
    let done = loop {
        let frame = recv(&mut ws).await;
        if frame["type"] == "event" && frame["event"] == "agent" {
            streams.push(frame["payload"].clone());
        }
        if frame["type"] == "res" && frame["id"] == "a1" && frame["payload"]["status"] != "accepted"
        {
            break frame;
        }
    };
    assert_eq!(done["ok"], true, "{done}");
    let notice = streams.iter().find(|p| p["stream"] == "notice").unwrap_or_else(|| {
        panic!("no notice event: {streams:?}");
    });
    assert!(notice["data"]["message"].as_str().unwrap().contains("Model Fallback: big/b"));
    let first_text = streams.iter().position(|p| p["stream"] == "assistant").unwrap();
    let notice_at = streams.iter().position(|p| p["stream"] == "notice").unwrap();
    assert!(notice_at < first_text, "the notice comes before the answer: {streams:?}");
    let meta = &done["payload"]["result"]["meta"];
    assert!(meta["notices"].to_string().contains("Model Fallback"), "{done}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_run_sends_the_clients_small_max_tokens_as_written() {
    let upstream = FakeUpstream::start_calls_only().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let gw = spawn(dir.path(), &one_model(&upstream));
    upstream.push(answer("ok"));
    let body = json!({"model": "hearth", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]});
    let response = post(&gw, "/v1/chat/completions", body).await;
    assert_eq!(response.status, 200, "{}", response.body);
    let sent = calls(&upstream).last().unwrap().json();
    let max = sent.get("max_completion_tokens").or_else(|| sent.get("max_tokens")).unwrap();
    assert_eq!(max, 5, "{sent}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reasoning_only_answer_fails_over_before_anything_is_relayed() {
    let upstream = FakeUpstream::start_calls_only().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let origin = upstream.origin();
    let config = format!(
        r#"{{models: {{mode: "replace", providers: {{
              one: {{baseUrl: "{origin}/v1", api: "openai-completions", models: [{{id: "r", reasoning: true, contextWindow: 32000, maxTokens: 256}}]}},
              two: {{baseUrl: "{origin}/v1", api: "openai-completions", models: [{{id: "t", contextWindow: 32000, maxTokens: 256}}]}}}}}},
           agents: {{defaults: {{model: {{primary: "one/r", fallbacks: ["two/t"]}}}}}}}}"#
    );
    let gw = spawn(dir.path(), &config);
    // The primary thinks and never answers; the fallback answers.
    upstream.push(Reply::sse(&[
        r#"{"id":"c1","object":"chat.completion.chunk","created":1,"model":"r","choices":[{"index":0,"delta":{"role":"assistant","reasoning_content":"PRIMARY-THOUGHT"},"finish_reason":null}]}"#,
        r#"{"id":"c1","object":"chat.completion.chunk","created":1,"model":"r","choices":[{"index":0,"delta":{"reasoning_content":" more"},"finish_reason":null}]}"#,
        r#"{"id":"c1","object":"chat.completion.chunk","created":1,"model":"r","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}"#,
        "[DONE]",
    ]));
    upstream.push(Reply::sse(&[
        r#"{"id":"c2","object":"chat.completion.chunk","created":1,"model":"t","choices":[{"index":0,"delta":{"role":"assistant","content":"from two"},"finish_reason":null}]}"#,
        r#"{"id":"c2","object":"chat.completion.chunk","created":1,"model":"t","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}"#,
        "[DONE]",
    ]));
    let body =
        json!({"model": "hearth", "stream": true, "messages": [{"role": "user", "content": "hi"}]});
    let response = post(&gw, "/v1/chat/completions", body).await;
    assert_eq!(response.status, 200, "{}", response.body);
    assert_eq!(response.headers.get("x-hearth-provider").unwrap(), "two", "{}", response.body);
    assert!(!response.body.contains("PRIMARY-THOUGHT"), "{}", response.body);
    assert!(response.body.contains("from two"), "{}", response.body);
    assert_eq!(calls(&upstream).len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_agent_models_entries_merge_over_the_defaults() {
    let upstream = FakeUpstream::start_calls_only().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let origin = upstream.origin();
    // The agent names its model by its own alias; its params for that model win over the
    // defaults' for the same key and leave the other keys alone.
    let config = format!(
        r#"{{models: {{mode: "replace", providers: {{
              fake: {{baseUrl: "{origin}/v1", api: "openai-completions", models: [{{id: "m", contextWindow: 32000, maxTokens: 256}}, {{id: "other", contextWindow: 32000, maxTokens: 256}}]}}}}}},
           agents: {{
             defaults: {{model: "fake/other", models: {{"fake/m": {{params: {{temperature: 0.9, top_p: 0.5}}}}}}}},
             entries: {{coder: {{model: "quick", models: {{"fake/m": {{alias: "quick", params: {{temperature: 0.25}}}}}}}}}}}}}}"#
    );
    let gw = spawn(dir.path(), &config);
    upstream.push(answer("ok"));
    let body = json!({"model": "hearth/coder", "messages": [{"role": "user", "content": "hi"}]});
    let response = post(&gw, "/v1/chat/completions", body).await;
    assert_eq!(response.status, 200, "{}", response.body);
    let sent = calls(&upstream).last().unwrap().json();
    assert_eq!(sent["model"], "m", "the agent's alias names its model: {sent}");
    assert_eq!(sent["temperature"], 0.25, "{sent}");
    assert_eq!(sent["top_p"], 0.5, "{sent}");
    assert!(!gw.stderr.contains("quick"), "no warning about the agent's own alias: {}", gw.stderr);
}

/// `post` with a client that gives up after `limit`: a gateway that ignores the configured
/// deadline fails the test instead of hanging it.
async fn post_within(gw: &Gateway, path: &str, body: Value, limit: Duration) -> Response {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let response = reqwest::Client::builder()
        .no_proxy()
        .timeout(limit)
        .build()
        .unwrap()
        .post(format!("{}{path}", gw.origin))
        .json(&body)
        .send()
        .await
        .map_err(|e| format!("no answer within {limit:?}: {e}"))
        .unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    Response { status, headers, body: response.text().await.unwrap() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agents_timeout_seconds_bounds_its_gateway_run() {
    let upstream = FakeUpstream::start_calls_only().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    // The provider waits 300 s for a first byte; the agent's run budget is 1 s.
    let config = format!(
        r#"{{models: {{mode: "replace", providers: {{fake: {{baseUrl: "{}/v1", api: "openai-completions", timeoutSeconds: 300, models: [{{id: "m", contextWindow: 32000, maxTokens: 256}}]}}}}}},
           agents: {{defaults: {{model: "fake/m"}}, entries: {{quick: {{timeoutSeconds: 1}}}}}}}}"#,
        upstream.origin()
    );
    let gw = spawn(dir.path(), &config);
    upstream.push(answer("never sent").stall_before_headers());
    let body = json!({"model": "hearth/quick", "messages": [{"role": "user", "content": "hi"}]});
    let response = post_within(&gw, "/v1/chat/completions", body, Duration::from_secs(30)).await;
    assert_eq!(response.status, 504, "{}", response.body);
    assert!(response.body.contains("time budget"), "{}", response.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_timeout_seconds_bounds_the_summary_call() {
    let upstream = FakeUpstream::start_calls_only().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    // A window the second turn does not fit next to the first, so it compacts; the summary
    // call never answers, and compaction.timeoutSeconds (1 s) gives up on it.
    let config = format!(
        r#"{{models: {{mode: "replace", providers: {{fake: {{baseUrl: "{}/v1", api: "openai-completions", timeoutSeconds: 300, models: [{{id: "m", contextWindow: 4000, maxTokens: 128}}]}}}}}},
           agents: {{defaults: {{model: "fake/m", compaction: {{timeoutSeconds: 1}}}}}}}}"#,
        upstream.origin()
    );
    let gw = spawn(dir.path(), &config);
    let long = |tag: &str| format!("{tag}: {}", "the weather in the mountains today ".repeat(300));
    let body = |text: String| json!({"model": "hearth", "user": "cy", "messages": [{"role": "user", "content": text}]});
    upstream.push(answer("first answer"));
    let first = post(&gw, "/v1/chat/completions", body(long("one"))).await;
    assert_eq!(first.status, 200, "{}", first.body);
    upstream.push(answer("summary never sent").stall_before_headers());
    upstream.push(answer("second answer"));
    let second =
        post_within(&gw, "/v1/chat/completions", body(long("two")), Duration::from_secs(30)).await;
    assert_eq!(second.status, 200, "{}", second.body);
    assert!(second.body.contains("second answer"), "{}", second.body);
    let said = notices(&second.headers);
    assert!(said.iter().any(|n| n.contains("compacted")), "the turn compacted: {said:?}");
    assert_eq!(calls(&upstream).len(), 3, "answer, summary (given up), answer");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_messages_stream_carries_the_notice_as_an_event_anthropic_clients_skip() {
    let upstream = FakeUpstream::start_calls_only().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "{}, gateway: {{limits: {{streamHeadersAfterMs: 1}}}}}}",
        small_then_big(&upstream).trim_end().strip_suffix('}').unwrap()
    );
    let gw = spawn(dir.path(), &config);
    upstream.push(Reply::sse(&[
        r#"{"id":"c1","object":"chat.completion.chunk","created":1,"model":"b","choices":[{"index":0,"delta":{"role":"assistant","content":"streamed"},"finish_reason":null}]}"#,
        r#"{"id":"c1","object":"chat.completion.chunk","created":1,"model":"b","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}"#,
        "[DONE]",
    ]));
    let body = json!({"model": "hearth", "max_tokens": 64, "stream": true,
        "messages": [{"role": "user", "content": "hi"}]});
    let response = post(&gw, "/v1/messages", body).await;
    assert_eq!(response.status, 200, "{}", response.body);
    assert!(response.headers.get("x-hearth-provider").is_none(), "the late path was taken");
    let events: Vec<(String, Value)> = response
        .body
        .split("\n\n")
        .filter_map(|frame| {
            let name = frame.lines().find_map(|l| l.strip_prefix("event: "))?;
            let data = frame.lines().find_map(|l| l.strip_prefix("data: "))?;
            Some((name.to_owned(), serde_json::from_str(data).unwrap()))
        })
        .collect();
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
    let at = names.iter().position(|n| *n == "hearth_notice").unwrap_or_else(|| {
        panic!("no notice event: {names:?}");
    });
    assert_eq!(names[0], "message_start", "{names:?}");
    assert!(at < names.iter().position(|n| *n == "content_block_delta").unwrap(), "{names:?}");
    let notice = &events[at].1;
    assert_eq!(notice["type"], "hearth_notice");
    assert!(notice["message"].as_str().unwrap().contains("Model Fallback: big/b"), "{notice}");
    assert!(response.body.contains("streamed"), "{}", response.body);
}

/// A primary whose window holds a turn but not this message, and a fallback that holds it.
fn medium_then_big(upstream: &FakeUpstream) -> String {
    primary_then_big(upstream, "medium", 8000, 64000)
}

// See: #13. The budget follows the candidate that can answer: a message the primary's window
// cannot hold is answered by a fallback that can, instead of refused as too large.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_too_large_for_the_primary_is_answered_by_a_fallback_that_holds_it() {
    let upstream = FakeUpstream::start_calls_only().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let gw = spawn(dir.path(), &medium_then_big(&upstream));
    upstream.push(answer("from big"));
    // About 10,000 tokens: more than the primary's 8,000, well within the fallback's 64,000.
    let long = "word ".repeat(8_000);
    let body =
        json!({"model": "hearth", "user": "cy", "messages": [{"role": "user", "content": long}]});
    let response = post(&gw, "/v1/chat/completions", body).await;
    assert_eq!(response.status, 200, "answered instead of refused: {}", response.body);
    assert_eq!(response.headers.get("x-hearth-provider").unwrap(), "big");
    let requests = calls(&upstream);
    assert_eq!(requests.len(), 1, "the primary that cannot hold the message is not asked");
    assert_eq!(requests[0].json()["model"], "b");
}
