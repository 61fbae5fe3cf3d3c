//! Golden translation tests: every client API (OpenAI chat, OpenAI Responses, Anthropic
//! Messages) against every upstream API (`openai-completions`, `openai-responses`,
//! `anthropic-messages`, `ollama`), whole and streaming: 24 cases. Each snapshot holds the
//! request hearth sent upstream (method, path, headers with the key masked, JSON body) and the
//! answer the client got (status, headers, JSON body or the SSE events in order).
//!
//! The upstream answers are real wire samples: the llama-server captures in
//! `scripts/testbed/captures/` (see its `INDEX.txt`; they answer the same system prompt, user
//! text, 8-token cap and temperature 0 the client requests below use, without tools or a
//! schema, so the answer is plain text cut at the cap). Ollama's native `/api/chat` has no real
//! capture: `tests/golden/ollama-chat.{json,ndjson}` are written after the wire shape in
//! `shared/reference/local-servers.md` (§4.2, §4.5: NDJSON lines, a final `done: true` line with
//! `done_reason` and the `prompt_eval_count`/`eval_count` metrics in nanosecond durations).
//!
//! Read the snapshots knowing what the samples say:
//! - llama-server's Responses answer reports `status: completed` without `incomplete_details`
//!   although it stopped at the 8-token cap (its chat and Messages answers to the same request
//!   say `length` and `max_tokens`): clients of the Responses upstream see `stop`, `end_turn`,
//!   `completed` because that is what the wire says.
//! - The captured chat body reports `cached_tokens: 0`, the captured streams 36 of the 37 prompt
//!   tokens cached (they ran second): the usage differs between whole and stream for that reason.
//! - A Messages stream's `message_start` carries hearth's estimate of the input tokens (marked
//!   by `x-hearth-usage-estimate`); the upstream's count follows in `message_delta`.
//! - A Messages request's `output_config.format` reaches chat, Responses and Ollama upstreams
//!   as their structured-output field; the first snapshots showed it dropped, and
//!   `messages::to_prompt` now maps it.
//! - A Responses object echoes a tool without a description with `"description": null`, as
//!   OpenAI's own does; upstream requests never carry a `null` description.
//!
//! What varies per run is replaced before the snapshot: ids hearth makes (`chatcmpl-…`,
//! `resp_…`, `msg_…`, `call_…`, …) become `<prefix>[N]`, numbered in order of appearance (so a
//! stream that keeps one id shows one number), and hearth's Unix timestamps (`created`,
//! `created_at`, `completed_at`) become `[unix time]` after a check that they are now.
//!
//! Update: `INSTA_UPDATE=always cargo nextest run -p hearth-server --test golden`, then review
//! every changed snapshot in `tests/snapshots/golden__*.snap` (docs/TESTING.md).
#![expect(clippy::unwrap_used, reason = "tests")]

use std::collections::BTreeMap;

use hearth_testkit::{End, FakeUpstream, Recorded, Reply, Step};
use serde_json::{Map, Value, json};

mod common;
use common::{client, start, state};

const CHAT_JSON: &str = include_str!("../../../scripts/testbed/captures/chat.json");
const CHAT_SSE: &str = include_str!("../../../scripts/testbed/captures/chat.sse");
const RESPONSES_JSON: &str = include_str!("../../../scripts/testbed/captures/responses.json");
const RESPONSES_SSE: &str = include_str!("../../../scripts/testbed/captures/responses.sse");
const MESSAGES_JSON: &str = include_str!("../../../scripts/testbed/captures/messages.json");
const MESSAGES_SSE: &str = include_str!("../../../scripts/testbed/captures/messages.sse");
/// Written after `shared/reference/local-servers.md`, not captured (no Ollama in the test bed).
const OLLAMA_JSON: &str = include_str!("golden/ollama-chat.json");
/// Written after `shared/reference/local-servers.md`, not captured (no Ollama in the test bed).
const OLLAMA_NDJSON: &str = include_str!("golden/ollama-chat.ndjson");

/// The upstream key; it must appear only in the auth header, and is masked there.
const KEY: &str = "sk-golden-0123456789";

/// The four upstream APIs, each as the provider named here.
const UPSTREAMS: [(&str, &str); 4] = [
    ("openai-completions", "chat"),
    ("openai-responses", "resp"),
    ("anthropic-messages", "anth"),
    ("ollama", "olla"),
];

fn config(upstream: &str) -> String {
    let model = r#"models: [{id: "m", maxTokens: 256, contextWindow: 4096}]"#;
    format!(
        r#"{{gateway: {{auth: {{mode: "none"}}}}, models: {{mode: "replace", providers: {{
            chat: {{baseUrl: "{upstream}/v1", api: "openai-completions", apiKey: "${{GOLDEN_KEY}}", {model}}},
            resp: {{baseUrl: "{upstream}/v1", api: "openai-responses", apiKey: "${{GOLDEN_KEY}}", {model}}},
            anth: {{baseUrl: "{upstream}", api: "anthropic-messages", apiKey: "${{GOLDEN_KEY}}", {model}}},
            olla: {{baseUrl: "{upstream}", api: "ollama", apiKey: "${{GOLDEN_KEY}}", {model}}},
        }}}}}}"#
    )
}

/// The captured reply of `api`, with the content type the real server sent.
fn reply(api: &str, stream: bool) -> Reply {
    let (body, content_type) = match (api, stream) {
        ("openai-completions", false) => (CHAT_JSON, "application/json; charset=utf-8"),
        ("openai-completions", true) => (CHAT_SSE, "text/event-stream"),
        ("openai-responses", false) => (RESPONSES_JSON, "application/json; charset=utf-8"),
        ("openai-responses", true) => (RESPONSES_SSE, "text/event-stream"),
        ("anthropic-messages", false) => (MESSAGES_JSON, "application/json; charset=utf-8"),
        ("anthropic-messages", true) => (MESSAGES_SSE, "text/event-stream"),
        ("ollama", false) => (OLLAMA_JSON, "application/json; charset=utf-8"),
        ("ollama", true) => (OLLAMA_NDJSON, "application/x-ndjson"),
        _ => unreachable!("{api}"),
    };
    Reply {
        status: 200,
        headers: vec![("content-type".into(), content_type.into())],
        steps: vec![Step::Bytes(body.as_bytes().to_vec())],
        end: End::Complete,
    }
}

/// A JSON Schema for a one-field answer, the structured output every client asks for.
fn answer_schema() -> Value {
    json!({"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"],
        "additionalProperties": false})
}

/// A tool without a description (llama-server rejects a `null` one) and one with.
fn lookup_schema() -> Value {
    json!({"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]})
}

fn weather_schema() -> Value {
    json!({"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]})
}

/// The OpenAI chat request: system message, user message, two tools, sampling, a cap,
/// `response_format` json_schema.
fn chat_request(model: &str, stream: bool) -> Value {
    let mut request = json!({
        "model": model,
        "messages": [
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "hello world, the quick brown fox!"}
        ],
        "tools": [
            {"type": "function", "function": {"name": "lookup", "parameters": lookup_schema()}},
            {"type": "function", "function": {"name": "get_weather",
                "description": "Current weather for a city", "parameters": weather_schema()}}
        ],
        "temperature": 0,
        "max_tokens": 8,
        "response_format": {"type": "json_schema",
            "json_schema": {"name": "answer", "strict": true, "schema": answer_schema()}},
        "stream": stream
    });
    if stream {
        request["stream_options"] = json!({"include_usage": true});
    }
    request
}

/// The Responses request: `instructions` and a developer message, user input, two tools,
/// sampling, a cap, `text.format` json_schema.
fn responses_request(model: &str, stream: bool) -> Value {
    json!({
        "model": model,
        "instructions": "You are terse.",
        "input": [
            {"type": "message", "role": "developer", "content": "Answer in English."},
            {"type": "message", "role": "user", "content": "hello world, the quick brown fox!"}
        ],
        "tools": [
            {"type": "function", "name": "lookup", "parameters": lookup_schema()},
            {"type": "function", "name": "get_weather", "description": "Current weather for a city",
                "parameters": weather_schema()}
        ],
        "temperature": 0,
        "max_output_tokens": 8,
        "text": {"format": {"type": "json_schema", "name": "answer", "strict": true,
            "schema": answer_schema()}},
        "stream": stream
    })
}

/// The Anthropic Messages request: `system`, a user message, two tools, sampling, a cap,
/// `output_config.format` json_schema.
fn messages_request(model: &str, stream: bool) -> Value {
    json!({
        "model": model,
        "system": "You are terse.",
        "messages": [{"role": "user", "content": "hello world, the quick brown fox!"}],
        "tools": [
            {"name": "lookup", "input_schema": lookup_schema()},
            {"name": "get_weather", "description": "Current weather for a city",
                "input_schema": weather_schema()}
        ],
        "temperature": 0,
        "max_tokens": 8,
        "output_config": {"format": {"type": "json_schema", "schema": answer_schema()}},
        "stream": stream
    })
}

/// The request hearth sent: method, path, headers (not `host` and `content-length`, which
/// carry the port and the size), the key masked, the JSON body.
fn upstream_request(r: &Recorded) -> Value {
    assert!(!String::from_utf8_lossy(&r.body).contains(KEY), "the key is only in a header");
    let mut headers = BTreeMap::new();
    for (name, value) in &r.headers {
        if name == "host" || name == "content-length" {
            continue;
        }
        headers.insert(name.clone(), value.replace(KEY, "[key]"));
    }
    json!({"method": r.method, "path": r.path, "headers": headers, "body": r.json()})
}

/// One SSE event: its `event:` name (when it has one) and its `data`, parsed (`[DONE]` kept as
/// the string). Comments (keep-alives) are left out: when they come depends on timing.
fn sse_events(text: &str) -> Vec<Value> {
    let mut events = Vec::new();
    for frame in text.split("\n\n") {
        let mut name = None;
        let mut data = Vec::new();
        for line in frame.lines() {
            if let Some(n) = line.strip_prefix("event: ") {
                name = Some(n.to_owned());
            } else if let Some(d) = line.strip_prefix("data: ") {
                data.push(d);
            } else {
                assert!(line.starts_with(':') || line.is_empty(), "unexpected SSE line {line:?}");
            }
        }
        if data.is_empty() {
            assert!(name.is_none(), "an event without data in {frame:?}");
            continue;
        }
        let data = data.join("\n");
        let data = if data == "[DONE]" {
            Value::String(data)
        } else {
            serde_json::from_str(&data).unwrap()
        };
        let mut event = Map::new();
        if let Some(name) = name {
            event.insert("event".into(), Value::String(name));
        }
        event.insert("data".into(), data);
        events.push(Value::Object(event));
    }
    events
}

/// Replaces what varies per run: hearth's ids and Unix timestamps.
struct Normalizer {
    ids: Vec<String>,
    since: u64,
}

/// Prefixes of the ids hearth makes (`new_id`: prefix + 24 hex digits).
const ID_PREFIXES: &[&str] = &["chatcmpl-", "resp_", "msg_", "rs_", "fc_", "call_", "toolu_"];

impl Normalizer {
    fn new() -> Self {
        let since =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
        Normalizer { ids: Vec::new(), since }
    }

    fn id(&mut self, s: &str) -> Option<String> {
        let prefix = ID_PREFIXES.iter().find(|p| s.starts_with(**p))?;
        let rest = &s[prefix.len()..];
        if rest.len() != 24 || !rest.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let n = match self.ids.iter().position(|seen| seen == s) {
            Some(i) => i + 1,
            None => {
                self.ids.push(s.to_owned());
                self.ids.len()
            }
        };
        Some(format!("{prefix}[{n}]"))
    }

    fn value(&mut self, v: &mut Value) {
        match v {
            Value::String(s) => {
                if let Some(id) = self.id(s) {
                    *s = id;
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|i| self.value(i)),
            Value::Object(map) => {
                for (k, v) in map.iter_mut() {
                    if matches!(k.as_str(), "created" | "created_at" | "completed_at")
                        && let Some(t) = v.as_u64()
                    {
                        let now = self.since;
                        assert!((now..now + 600).contains(&t), "{k}: {t} is not now ({now})");
                        *v = json!("[unix time]");
                    } else {
                        self.value(v);
                    }
                }
            }
            _ => {}
        }
    }
}

/// One case: the client request to `path` (as `client_api` speaks it) through provider
/// `provider` speaking `api`, its upstream request and client answer as one JSON document.
async fn case(path: &str, client_api: &str, api: &str, provider: &str, stream: bool) -> Value {
    let mut normalizer = Normalizer::new();
    let upstream = FakeUpstream::start_calls_only().await.unwrap();
    upstream.push(reply(api, stream));
    let gw = start(state(&config(&upstream.origin()), &[("GOLDEN_KEY", KEY)]), None).await;
    let model = format!("{provider}/m");
    let (body, request) = match client_api {
        "chat" => (chat_request(&model, stream), client().post(format!("{}{path}", gw.origin()))),
        "responses" => {
            (responses_request(&model, stream), client().post(format!("{}{path}", gw.origin())))
        }
        "messages" => (
            messages_request(&model, stream),
            client()
                .post(format!("{}{path}", gw.origin()))
                .header("anthropic-version", "2023-06-01"),
        ),
        _ => unreachable!("{client_api}"),
    };
    let response = request.json(&body).send().await.unwrap();
    let status = response.status().as_u16();
    let mut headers = BTreeMap::new();
    for (name, value) in response.headers() {
        let name = name.as_str();
        if name == "content-type" || name.starts_with("x-hearth-") {
            headers.insert(name.to_owned(), value.to_str().unwrap().to_owned());
        }
    }
    let text = response.text().await.unwrap();
    let answer = if stream {
        json!({"status": status, "headers": headers, "events": sse_events(&text)})
    } else {
        let body: Value = serde_json::from_str(&text).unwrap();
        json!({"status": status, "headers": headers, "body": body})
    };
    let posts: Vec<Recorded> =
        upstream.requests().into_iter().filter(|r| r.method == "POST").collect();
    assert_eq!(posts.len(), 1, "one upstream call: {text}");
    let mut doc =
        json!({"upstream_request": upstream_request(&posts[0]), "client_response": answer});
    normalizer.value(&mut doc);
    doc
}

async fn client_api(path: &str, client_api: &str) {
    for (api, provider) in UPSTREAMS {
        for stream in [false, true] {
            let doc = case(path, client_api, api, provider, stream).await;
            let name = format!("{client_api}__{api}__{}", if stream { "stream" } else { "whole" });
            insta::assert_json_snapshot!(name, doc);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openai_chat_against_every_upstream() {
    client_api("/v1/chat/completions", "chat").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openai_responses_against_every_upstream() {
    client_api("/v1/responses", "responses").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anthropic_messages_against_every_upstream() {
    client_api("/v1/messages", "messages").await;
}
