//! Tool calls written as text (issue 15) through the real gateway: a local upstream writes its
//! call into the content (Hermes, Harmony, Mistral), split across chunks, and every client API
//! gets a structured call, streaming and not: chat `tool_calls` with `finish_reason:
//! "tool_calls"`, a Responses `function_call` item, a Messages `tool_use` block with
//! `stop_reason: "tool_use"`. The markup never reaches the client as text.
#![expect(clippy::unwrap_used, reason = "tests")]

use hearth_testkit::{FakeUpstream, Reply};
use serde_json::{Value, json};

mod common;
use common::{Gateway, client, start, state};

const HERMES: &str = "Let me check.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>";
const HARMONY: &str = "<|channel|>analysis<|message|>Need the weather.<|end|><|start|>assistant<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>{\"city\": \"Paris\"}<|call|>";
const MISTRAL: &str = "[TOOL_CALLS]get_weather[ARGS]{\"city\": \"Paris\"}";

fn config(upstream: &str) -> String {
    format!(
        r#"{{models: {{mode: "replace", providers: {{local: {{baseUrl: "{upstream}/v1", api: "openai-completions",
            models: [{{id: "m", maxTokens: 256, contextWindow: 4096}}]}}}}}}}}"#
    )
}

/// The upstream's chat stream: `content` cut into pieces of 7 bytes (markers split), then
/// `finish_reason: stop`, as a server without a tool parser sends it.
fn stream_reply(content: &str) -> Reply {
    let mut chunks = Vec::new();
    let mut rest = content;
    while !rest.is_empty() {
        let mut at = rest.len().min(7);
        while !rest.is_char_boundary(at) {
            at += 1;
        }
        let (piece, tail) = rest.split_at(at);
        chunks.push(json!({"choices": [{"index": 0, "delta": {"content": piece}}]}).to_string());
        rest = tail;
    }
    chunks.push(
        json!({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
               "usage": {"prompt_tokens": 20, "completion_tokens": 30}})
        .to_string(),
    );
    chunks.push("[DONE]".to_owned());
    Reply::sse(&chunks.iter().map(String::as_str).collect::<Vec<_>>())
}

fn body_reply(content: &str) -> Reply {
    let body = json!({"id": "c", "object": "chat.completion", "choices": [{"index": 0,
        "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 20, "completion_tokens": 30}});
    Reply::json(200, &body.to_string())
}

async fn gateway() -> (FakeUpstream, Gateway) {
    let upstream = FakeUpstream::start().await.unwrap();
    let gw = start(state(&config(&upstream.origin()), &[]), None).await;
    (upstream, gw)
}

async fn post(gw: &Gateway, path: &str, body: &Value) -> String {
    let response = client().post(format!("{}{path}", gw.origin())).json(body).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 200);
    response.text().await.unwrap()
}

/// The JSON `data:` of every SSE frame but `[DONE]`.
fn sse_data(text: &str) -> Vec<Value> {
    text.split("\n\n")
        .filter_map(|frame| frame.lines().find_map(|l| l.strip_prefix("data: ")))
        .filter(|d| *d != "[DONE]")
        .map(|d| serde_json::from_str(d).unwrap())
        .collect()
}

#[track_caller]
fn no_markup(label: &str, text: &str) {
    for marker in ["<tool_call>", "<|channel|>", "[TOOL_CALLS]", "get_weather"] {
        assert!(!text.contains(marker), "{label}: {marker} in the text {text:?}");
    }
}

#[track_caller]
fn is_fresh_id(label: &str, id: &Value) {
    assert!(
        id.as_str().is_some_and(|id| id.starts_with("call_") && id.len() > 10),
        "{label}: {id}"
    );
}

fn chat_request(stream: bool) -> Value {
    json!({"model": "local/m", "stream": stream,
        "messages": [{"role": "user", "content": "Weather in Paris?"}],
        "tools": [{"type": "function", "function": {"name": "get_weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_gets_tool_calls() {
    let (upstream, gw) = gateway().await;

    upstream.push(body_reply(HERMES));
    let answer: Value =
        serde_json::from_str(&post(&gw, "/v1/chat/completions", &chat_request(false)).await)
            .unwrap();
    let choice = &answer["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls", "{answer}");
    assert_eq!(choice["message"]["content"], "Let me check.\n", "{answer}");
    let call = &choice["message"]["tool_calls"][0];
    is_fresh_id("chat", &call["id"]);
    assert_eq!(call["type"], "function");
    assert_eq!(call["function"]["name"], "get_weather");
    assert_eq!(call["function"]["arguments"], r#"{"city": "Paris"}"#);
    assert_eq!(choice["message"]["tool_calls"].as_array().unwrap().len(), 1);

    upstream.push(stream_reply(HERMES));
    let body = post(&gw, "/v1/chat/completions", &chat_request(true)).await;
    let (mut text, mut name, mut arguments, mut ids, mut finish) =
        (String::new(), String::new(), String::new(), Vec::new(), None);
    for chunk in sse_data(&body) {
        let Some(choice) = chunk["choices"].get(0) else { continue };
        text.push_str(choice["delta"]["content"].as_str().unwrap_or_default());
        for call in choice["delta"]["tool_calls"].as_array().into_iter().flatten() {
            assert_eq!(call["index"], 0);
            if !call["id"].is_null() {
                ids.push(call["id"].clone());
            }
            name.push_str(call["function"]["name"].as_str().unwrap_or_default());
            arguments.push_str(call["function"]["arguments"].as_str().unwrap_or_default());
        }
        if let Some(f) = choice["finish_reason"].as_str() {
            finish = Some(f.to_owned());
        }
    }
    assert_eq!(text, "Let me check.\n");
    assert_eq!(ids.len(), 1, "{body}");
    is_fresh_id("chat stream", &ids[0]);
    assert_eq!((name.as_str(), arguments.as_str()), ("get_weather", r#"{"city": "Paris"}"#));
    assert_eq!(finish.as_deref(), Some("tool_calls"));
    // The upstream was offered the tool (the model wrote its call as text all the same).
    assert_eq!(upstream.requests()[1].json()["tools"][0]["function"]["name"], "get_weather");
}

fn responses_request(stream: bool) -> Value {
    json!({"model": "local/m", "stream": stream, "input": "Weather in Paris?",
        "tools": [{"type": "function", "name": "get_weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}]})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn responses_gets_a_function_call_item() {
    let (upstream, gw) = gateway().await;

    upstream.push(body_reply(HARMONY));
    let response: Value =
        serde_json::from_str(&post(&gw, "/v1/responses", &responses_request(false)).await).unwrap();
    let output = response["output"].as_array().unwrap();
    let calls: Vec<&Value> = output.iter().filter(|i| i["type"] == "function_call").collect();
    assert_eq!(calls.len(), 1, "{response}");
    is_fresh_id("responses", &calls[0]["call_id"]);
    assert_eq!(calls[0]["name"], "get_weather");
    assert_eq!(calls[0]["arguments"], r#"{"city": "Paris"}"#);
    assert!(
        output.iter().all(|i| i["type"] != "message"),
        "analysis is never answer text: {response}"
    );
    let reasoning: Vec<&Value> = output.iter().filter(|i| i["type"] == "reasoning").collect();
    assert_eq!(reasoning.len(), 1, "{response}");
    assert!(reasoning[0].to_string().contains("Need the weather."), "{response}");

    upstream.push(stream_reply(HARMONY));
    let body = post(&gw, "/v1/responses", &responses_request(true)).await;
    let events = sse_data(&body);
    let mut text = String::new();
    for e in &events {
        if e["type"] == "response.output_text.delta" {
            text.push_str(e["delta"].as_str().unwrap());
        }
    }
    no_markup("responses stream", &text);
    let added: Vec<&Value> = events
        .iter()
        .filter(|e| {
            e["type"] == "response.output_item.added" && e["item"]["type"] == "function_call"
        })
        .collect();
    assert_eq!(added.len(), 1, "{body}");
    assert_eq!(added[0]["item"]["name"], "get_weather");
    is_fresh_id("responses stream", &added[0]["item"]["call_id"]);
    let done =
        events.iter().find(|e| e["type"] == "response.function_call_arguments.done").unwrap();
    assert_eq!(done["arguments"], r#"{"city": "Paris"}"#);
    let completed = events.iter().find(|e| e["type"] == "response.completed").unwrap();
    let items = completed["response"]["output"].as_array().unwrap();
    assert!(
        items.iter().any(|i| i["type"] == "function_call" && i["name"] == "get_weather"),
        "{completed}"
    );
    assert!(items.iter().all(|i| i["type"] != "message"), "{completed}");
}

fn messages_request(stream: bool) -> Value {
    json!({"model": "local/m", "stream": stream, "max_tokens": 100,
        "messages": [{"role": "user", "content": "Weather in Paris?"}],
        "tools": [{"name": "get_weather",
            "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}]})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_gets_a_tool_use_block() {
    let (upstream, gw) = gateway().await;

    upstream.push(body_reply(MISTRAL));
    let message: Value =
        serde_json::from_str(&post(&gw, "/v1/messages", &messages_request(false)).await).unwrap();
    assert_eq!(message["stop_reason"], "tool_use", "{message}");
    let content = message["content"].as_array().unwrap();
    assert_eq!(content.len(), 1, "{message}");
    assert_eq!(content[0]["type"], "tool_use");
    is_fresh_id("messages", &content[0]["id"]);
    assert_eq!(content[0]["name"], "get_weather");
    assert_eq!(content[0]["input"], json!({"city": "Paris"}));

    upstream.push(stream_reply(MISTRAL));
    let body = post(&gw, "/v1/messages", &messages_request(true)).await;
    let events = sse_data(&body);
    let mut text = String::new();
    let mut input = String::new();
    let mut starts = Vec::new();
    for e in &events {
        match (e["type"].as_str().unwrap(), e["delta"]["type"].as_str()) {
            ("content_block_start", _) => starts.push(e["content_block"].clone()),
            ("content_block_delta", Some("text_delta")) => {
                text.push_str(e["delta"]["text"].as_str().unwrap())
            }
            ("content_block_delta", Some("input_json_delta")) => {
                input.push_str(e["delta"]["partial_json"].as_str().unwrap());
            }
            _ => {}
        }
    }
    no_markup("messages stream", &text);
    assert_eq!(starts.len(), 1, "{body}");
    assert_eq!(starts[0]["type"], "tool_use");
    assert_eq!(starts[0]["name"], "get_weather");
    is_fresh_id("messages stream", &starts[0]["id"]);
    assert_eq!(serde_json::from_str::<Value>(&input).unwrap(), json!({"city": "Paris"}));
    let delta = events.iter().find(|e| e["type"] == "message_delta").unwrap();
    assert_eq!(delta["delta"]["stop_reason"], "tool_use", "{delta}");
}

/// Prose that mentions the tool stays text, on every surface's upstream path.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prose_that_mentions_a_tool_stays_text() {
    let (upstream, gw) = gateway().await;
    let prose = "I could call get_weather with {\"city\": \"Paris\"} but won't.";
    upstream.push(stream_reply(prose));
    let body = post(&gw, "/v1/chat/completions", &chat_request(true)).await;
    let mut text = String::new();
    let mut finish = None;
    for chunk in sse_data(&body) {
        let Some(choice) = chunk["choices"].get(0) else { continue };
        assert!(choice["delta"]["tool_calls"].is_null(), "{chunk}");
        text.push_str(choice["delta"]["content"].as_str().unwrap_or_default());
        if let Some(f) = choice["finish_reason"].as_str() {
            finish = Some(f.to_owned());
        }
    }
    assert_eq!(text, prose);
    assert_eq!(finish.as_deref(), Some("stop"));
}
