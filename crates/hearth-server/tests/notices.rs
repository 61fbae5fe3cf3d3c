//! Notices that come due while a run waits reach a stream at that moment: the overload notice
//! ("still retrying"), through a running gateway whose only model answers 529 and then a stream.
//! Each of the three APIs carries it as the in-band notice it uses for late notices, after the
//! start frames, before the first text, exactly once. Issue 13, item 5.
#![expect(clippy::unwrap_used, reason = "tests")]

use std::sync::Arc;
use std::time::{Duration, Instant};

use hearth_store::SqliteStore;
use hearth_testkit::{FakeUpstream, Reply};
use serde_json::{Value, json};

mod common;
use common::{Gateway, client, start, state};

const OVERLOAD_NOTICE: &str = hearth_upstream::router::OVERLOAD_NOTICE;

/// The notice is due 300 ms into the run; the headers go out after 50 ms; the router's first
/// whole-chain retry comes 2.5 s in, so the answer starts about 2 s after the notice.
fn config(upstream: &str) -> String {
    format!(
        r#"{{models: {{mode: "replace", routing: {{overloadNoticeAfterMs: 300}},
            providers: {{fake: {{baseUrl: "{upstream}/v1", apiKey: "sk-local", api: "openai-completions",
                models: [{{id: "m", maxTokens: 256, contextWindow: 8192}}]}}}}}},
          agents: {{defaults: {{model: {{primary: "fake/m"}}}}}},
          gateway: {{limits: {{streamHeadersAfterMs: 50}}}}}}"#
    )
}

/// One 529 overloaded answer, then a normal stream (or a whole answer).
fn overloaded_then_answer(upstream: &FakeUpstream, stream: bool) {
    upstream.push(Reply::json(
        529,
        r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
    ));
    if !stream {
        upstream.push(Reply::json(
            200,
            r#"{"id":"c","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"Hello there"},"finish_reason":"stop"}]}"#,
        ));
        return;
    }
    upstream.push(Reply::sse(&[
        r#"{"id":"c","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"role":"assistant","content":"Hello"}}]}"#,
        r#"{"id":"c","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":" there"},"finish_reason":"stop"}]}"#,
        "[DONE]",
    ]));
}

async fn gateway(agents: bool, stream: bool) -> (FakeUpstream, Gateway) {
    let upstream = FakeUpstream::start_calls_only().await.unwrap();
    overloaded_then_answer(&upstream, stream);
    let mut state = state(&config(&upstream.origin()), &[]);
    if agents {
        state = state.with_agents(Arc::new(SqliteStore::in_memory().await.unwrap()));
    }
    (upstream, start(state, None).await)
}

/// One SSE frame as it arrived: when, its `event:` name (if any) and its data.
#[derive(Debug)]
struct Frame {
    at: Duration,
    name: Option<String>,
    data: Value,
}

/// Posts a streaming request and reads the frames one by one as they arrive, each with the time
/// it came, until the stream ends. Comments are left out, but for a `: hearth_notice: TEXT`
/// one (Responses), which becomes a frame named `:hearth_notice` with the text as its data.
async fn frames(gw: &Gateway, path: &str, body: Value) -> (reqwest::header::HeaderMap, Vec<Frame>) {
    let began = Instant::now();
    let mut response = client()
        .post(format!("{}{path}", gw.origin()))
        .json(&body)
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let headers = response.headers().clone();
    let mut buf = String::new();
    let mut out = Vec::new();
    while let Some(chunk) = response.chunk().await.unwrap() {
        let at = began.elapsed();
        buf.push_str(std::str::from_utf8(&chunk).unwrap());
        while let Some(end) = buf.find("\n\n") {
            let frame: String = buf.drain(..end + 2).collect();
            if let Some(text) = frame.lines().find_map(|l| l.strip_prefix(": hearth_notice: ")) {
                out.push(Frame { at, name: Some(":hearth_notice".to_owned()), data: json!(text) });
                continue;
            }
            let name = frame.lines().find_map(|l| l.strip_prefix("event: ")).map(str::to_owned);
            let Some(data) = frame.lines().find_map(|l| l.strip_prefix("data: ")) else {
                continue;
            };
            let data = if data == "[DONE]" {
                json!("[DONE]")
            } else {
                serde_json::from_str(data).unwrap()
            };
            out.push(Frame { at, name, data });
        }
    }
    (headers, out)
}

/// The one frame that carries the overload notice, and the first frame with answer text: the
/// notice comes first, once, and well before the answer (it went out while the run waited).
#[track_caller]
fn check_live(
    frames: &[Frame],
    is_notice: impl Fn(&Frame) -> bool,
    is_text: impl Fn(&Frame) -> bool,
) -> usize {
    let notices: Vec<usize> = (0..frames.len()).filter(|&i| is_notice(&frames[i])).collect();
    assert_eq!(notices.len(), 1, "exactly one notice: {frames:#?}");
    let notice = notices[0];
    let text =
        frames.iter().position(is_text).unwrap_or_else(|| unreachable!("no text: {frames:#?}"));
    assert!(notice < text, "the notice comes before the first text: {frames:#?}");
    let gap = frames[text].at.saturating_sub(frames[notice].at);
    assert!(
        gap >= Duration::from_secs(1),
        "the notice went out while the run waited, not with the answer ({gap:?}): {frames:#?}"
    );
    notice
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_stream_carries_the_overload_notice_while_it_waits() {
    let (upstream, gw) = gateway(false, true).await;
    let body =
        json!({"model": "fake/m", "stream": true, "messages": [{"role": "user", "content": "hi"}]});
    let (headers, frames) = frames(&gw, "/v1/chat/completions", body).await;
    assert!(headers.get("x-hearth-provider").is_none(), "the late path was taken");
    let notice = check_live(
        &frames,
        |f| f.data.get("hearth_notice").is_some(),
        |f| f.data["choices"][0]["delta"]["content"].as_str().is_some_and(|t| !t.is_empty()),
    );
    let chunk = &frames[notice].data;
    assert_eq!(chunk["hearth_notice"], OVERLOAD_NOTICE);
    assert_eq!(chunk["object"], "chat.completion.chunk");
    assert_eq!(chunk["choices"][0]["delta"], json!({"content": ""}), "a chunk with no text");
    assert_eq!(frames[0].data["choices"][0]["delta"]["role"], "assistant", "the role chunk first");
    let roles =
        frames.iter().filter(|f| f.data["choices"][0]["delta"].get("role").is_some()).count();
    assert_eq!(roles, 1, "one role chunk: {frames:#?}");
    let ids: Vec<&Value> = frames.iter().filter_map(|f| f.data.get("id")).collect();
    assert!(ids.windows(2).all(|w| w[0] == w[1]), "one completion id: {ids:?}");
    let text: String =
        frames.iter().filter_map(|f| f.data["choices"][0]["delta"]["content"].as_str()).collect();
    assert_eq!(text, "Hello there");
    assert_eq!(frames.last().unwrap().data, "[DONE]");
    assert_eq!(upstream.requests().len(), 2, "the overloaded call and the retry");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_chat_stream_carries_the_overload_notice_while_it_waits() {
    let (_upstream, gw) = gateway(true, true).await;
    let body =
        json!({"model": "hearth", "stream": true, "messages": [{"role": "user", "content": "hi"}]});
    let (_, frames) = frames(&gw, "/v1/chat/completions", body).await;
    let notice = check_live(
        &frames,
        |f| f.data["hearth_notice"] == OVERLOAD_NOTICE,
        |f| f.data["choices"][0]["delta"]["content"].as_str().is_some_and(|t| !t.is_empty()),
    );
    assert_eq!(frames[notice].data["choices"][0]["delta"], json!({"content": ""}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn responses_stream_carries_the_overload_notice_while_it_waits() {
    let (_upstream, gw) = gateway(false, true).await;
    let body = json!({"model": "fake/m", "stream": true, "input": "hi"});
    let (_, frames) = frames(&gw, "/v1/responses", body).await;
    let notice = check_live(
        &frames,
        |f| f.name.as_deref() == Some(":hearth_notice"),
        |f| f.name.as_deref() == Some("response.output_text.delta"),
    );
    assert_eq!(frames[notice].data, json!(OVERLOAD_NOTICE));
    // A comment, after the start events; no event of a type the SDKs do not know.
    let names: Vec<&str> = frames.iter().filter_map(|f| f.name.as_deref()).collect();
    assert_eq!(
        &names[..3],
        ["response.created", "response.in_progress", ":hearth_notice"],
        "{names:?}"
    );
    assert!(
        names.iter().all(|n| n.starts_with("response.") || *n == ":hearth_notice"),
        "{names:?}"
    );
    assert_eq!(names.iter().filter(|n| **n == "response.created").count(), 1, "{names:?}");
    // Every named event is numbered, in one numbering across the wait and the answer.
    let events: Vec<&Frame> = frames
        .iter()
        .filter(|f| f.name.as_deref().is_some_and(|n| n != ":hearth_notice"))
        .collect();
    let seq: Vec<u64> = events.iter().filter_map(|f| f.data["sequence_number"].as_u64()).collect();
    let expected: Vec<u64> = (0..events.len() as u64).collect();
    assert_eq!(seq, expected, "one numbering across the wait and the answer: {names:?}");
    let ids: Vec<&Value> =
        frames.iter().filter_map(|f| f.data.get("response")).map(|r| &r["id"]).collect();
    assert!(ids.windows(2).all(|w| w[0] == w[1]), "one response id: {ids:?}");
    assert_eq!(names.last(), Some(&"response.completed"), "{names:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_stream_carries_the_overload_notice_while_it_waits() {
    let (_upstream, gw) = gateway(false, true).await;
    let body = json!({"model": "fake/m", "max_tokens": 64, "stream": true,
        "messages": [{"role": "user", "content": "hi"}]});
    let (_, frames) = frames(&gw, "/v1/messages", body).await;
    let notice = check_live(
        &frames,
        |f| f.name.as_deref() == Some("hearth_notice"),
        |f| f.name.as_deref() == Some("content_block_delta"),
    );
    assert_eq!(frames[notice].data, json!({"type": "hearth_notice", "message": OVERLOAD_NOTICE}));
    let names: Vec<&str> = frames.iter().filter_map(|f| f.name.as_deref()).collect();
    assert_eq!(names[0], "message_start", "{names:?}");
    assert_eq!(names.iter().filter(|n| **n == "message_start").count(), 1, "{names:?}");
    assert_eq!(names.last(), Some(&"message_stop"), "{names:?}");
}

/// Nothing goes out before a non-streaming body: the notice is a header of the answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whole_answer_carries_the_overload_notice_as_a_header() {
    let (_upstream, gw) = gateway(false, false).await;
    let body = json!({"model": "fake/m", "messages": [{"role": "user", "content": "hi"}]});
    let response = client()
        .post(format!("{}/v1/chat/completions", gw.origin()))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let notices: Vec<String> = response
        .headers()
        .get_all("x-hearth-notice")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    assert_eq!(notices, [hearth_server::relay::header_safe(OVERLOAD_NOTICE)]);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["choices"][0]["message"]["content"], "Hello there");
}
