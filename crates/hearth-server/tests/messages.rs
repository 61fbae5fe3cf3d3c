//! The Anthropic Messages surface as Claude Code uses it, through a running gateway: system
//! messages inside `messages`, usage in the first and last stream events, images in tool
//! results, `count_tokens`, overflow wording, `x-should-retry`, the Anthropic model list,
//! server tools and the fields only Anthropic knows. See: #12
#![expect(clippy::unwrap_used, reason = "tests")]

use hearth_testkit::{FakeUpstream, LlamaServer, Reply};
use serde_json::{Value, json};

mod common;
use common::{Gateway, client, start, state};

/// `fake/m` speaks OpenAI chat; `ant/claude-x` (id `claude-up`) speaks Anthropic Messages.
fn config(chat: &str, anthropic: &str, extra: &str) -> String {
    format!(
        r#"{{models: {{mode: "replace", providers: {{
            fake: {{baseUrl: "{chat}/v1", apiKey: "sk-local", api: "openai-completions",
                models: [{{id: "m", maxTokens: 256, contextWindow: 4096, input: ["text", "image"]}}]}},
            ant: {{baseUrl: "{anthropic}", apiKey: "sk-ant-local", api: "anthropic-messages",
                models: [{{id: "claude-up", maxTokens: 1024, contextWindow: 200000, input: ["text", "image"]}}]}}}}}},
          agents: {{defaults: {{model: {{primary: "fake/m"}}}}}} {extra}}}"#
    )
}

struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    text: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap()
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }
}

async fn send(request: reqwest::RequestBuilder) -> Answer {
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    Answer { status, headers, text: response.text().await.unwrap() }
}

/// POST as an Anthropic client does (`anthropic-version`, `?beta=true`, beta flags).
async fn post(gw: &Gateway, path: &str, body: &Value) -> Answer {
    send(
        client()
            .post(format!("{}{path}", gw.origin()))
            .header("anthropic-version", "2023-06-01")
            .header("anthropic-beta", "claude-code-20250219,context-management-2025-06-27")
            .json(body),
    )
    .await
}

fn events(text: &str) -> Vec<Value> {
    text.split("\n\n")
        .filter_map(|frame| frame.lines().find_map(|l| l.strip_prefix("data: ")))
        .map(|d| serde_json::from_str(d).unwrap())
        .collect()
}

const CHAT_BODY: &str = r#"{"id":"c","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":5,"completion_tokens":7,"total_tokens":12}}"#;
const CHAT_STREAM: &[&str] = &[
    r#"{"id":"c","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"role":"assistant","content":"hi"}}]}"#,
    r#"{"id":"c","object":"chat.completion.chunk","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}"#,
    r#"{"id":"c","object":"chat.completion.chunk","choices":[],"usage":{"prompt_tokens":5,"completion_tokens":7,"total_tokens":12}}"#,
    "[DONE]",
];
const ANTHROPIC_BODY: &str = r#"{"id":"msg_up","type":"message","role":"assistant","model":"claude-up","content":[{"type":"text","text":"hi"}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":10,"output_tokens":2}}"#;
const LLAMA_OVERFLOW: &str = r#"{"error":{"code":400,"message":"request (13392 tokens) exceeds the available context size (8192 tokens), try increasing it","type":"exceed_context_size_error","n_prompt_tokens":13392,"n_ctx":8192}}"#;

/// The shape of Claude Code's first request of a session, reduced.
fn claude_code_request(model: &str, stream: bool) -> Value {
    json!({
        "model": model,
        "max_tokens": 32000,
        "stream": stream,
        "system": [{"type": "text", "text": "You are Claude Code.", "cache_control": {"type": "ephemeral"}}],
        "messages": [
            {"role": "system", "content": "Session context: cwd is /tmp."},
            {"role": "user", "content": [{"type": "text", "text": "say hi", "cache_control": {"type": "ephemeral"}}]}
        ],
        "tools": [
            {"type": "web_search_20250305", "name": "web_search", "max_uses": 5},
            {"name": "Bash", "description": "Run a command", "input_schema": {"type": "object", "properties": {"command": {"type": "string"}}}, "cache_control": {"type": "ephemeral"}},
            {"type": "bash_20250124", "name": "bash"},
            {"type": "text_editor_20250728", "name": "str_replace_based_edit_tool"}
        ],
        "thinking": {"type": "adaptive"},
        "context_management": {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]},
        "output_config": {"effort": "high"},
        "metadata": {"user_id": "user_abc"}
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn system_messages_inside_messages_fold_into_the_system_prompt_in_order() {
    let chat = FakeUpstream::start().await.unwrap();
    chat.push(Reply::json(200, CHAT_BODY));
    let gw = start(state(&config(&chat.origin(), "http://127.0.0.1:9", ""), &[]), None).await;
    let body = json!({
        "model": "fake/m", "max_tokens": 100, "system": "top",
        "messages": [
            {"role": "system", "content": "first"},
            {"role": "user", "content": "q1"},
            {"role": "assistant", "content": "a1"},
            {"role": "system", "content": [{"type": "text", "text": "later"}]},
            {"role": "user", "content": "q2"}
        ]
    });
    let answer = post(&gw, "/v1/messages?beta=true", &body).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    let sent = chat.requests()[0].json();
    let messages = sent["messages"].as_array().unwrap();
    assert_eq!(messages[0], json!({"role": "system", "content": "top\n\nfirst\n\nlater"}));
    let roles: Vec<&str> = messages.iter().map(|m| m["role"].as_str().unwrap()).collect();
    assert_eq!(roles, ["system", "user", "assistant", "user"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_reports_input_tokens_in_message_start_and_the_real_count_in_message_delta() {
    let chat = FakeUpstream::start().await.unwrap();
    chat.push(Reply::sse(CHAT_STREAM));
    let gw = start(state(&config(&chat.origin(), "http://127.0.0.1:9", ""), &[]), None).await;
    let text = "tell me a story about a lighthouse keeper ".repeat(20);
    let body = json!({"model": "fake/m", "max_tokens": 100, "stream": true,
        "messages": [{"role": "user", "content": text}]});
    let answer = post(&gw, "/v1/messages", &body).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(answer.header("x-hearth-usage-estimate"), Some("estimate"));
    let events = events(&answer.text);
    let start = &events[0];
    assert_eq!(start["type"], "message_start");
    let estimate = start["message"]["usage"]["input_tokens"].as_u64().unwrap();
    assert!(
        (text.len() as u64 / 5..=text.len() as u64 / 3).contains(&estimate),
        "about 4 characters a token: {estimate} for {} characters",
        text.len()
    );
    let delta = events.iter().find(|e| e["type"] == "message_delta").unwrap();
    assert_eq!(delta["usage"]["input_tokens"], 5, "the upstream's count");
    assert_eq!(delta["usage"]["output_tokens"], 7);
}

fn tool_result_with_image(model: &str) -> Value {
    json!({
        "model": model, "max_tokens": 100,
        "messages": [
            {"role": "user", "content": "take a screenshot"},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "Screenshot", "input": {}}]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": [
                    {"type": "text", "text": "here it is"},
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}}
                ]},
                {"type": "text", "text": "what do you see?"}
            ]}
        ],
        "tools": [{"name": "Screenshot", "input_schema": {"type": "object"}}]
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_image_in_a_tool_result_reaches_chat_and_anthropic_upstreams() {
    let chat = FakeUpstream::start().await.unwrap();
    let ant = FakeUpstream::start().await.unwrap();
    chat.push(Reply::json(200, CHAT_BODY));
    ant.push(Reply::json(200, ANTHROPIC_BODY));
    let gw = start(state(&config(&chat.origin(), &ant.origin(), ""), &[]), None).await;

    let answer = post(&gw, "/v1/messages", &tool_result_with_image("fake/m")).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    let sent = chat.requests()[0].json();
    let messages = sent["messages"].as_array().unwrap();
    let tool = messages.iter().find(|m| m["role"] == "tool").unwrap();
    assert_eq!(tool["content"], "here it is");
    let after = messages.last().unwrap();
    assert_eq!(after["role"], "user");
    let parts = after["content"].as_array().unwrap();
    assert_eq!(parts[0]["text"], "[images returned by tool call toolu_1]");
    assert_eq!(parts[1]["image_url"]["url"], "data:image/png;base64,iVBORw0KGgo=");
    assert_eq!(parts[2], json!({"type": "text", "text": "what do you see?"}));

    let answer = post(&gw, "/v1/messages", &tool_result_with_image("ant/claude-up")).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    let sent = ant.requests()[0].json();
    let result = &sent["messages"][2]["content"][0];
    assert_eq!(result["type"], "tool_result");
    assert_eq!(
        result["content"][1],
        json!({"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn count_tokens_counts_thinking_and_tools_and_refuses_unknown_models() {
    let chat = FakeUpstream::start_calls_only().await.unwrap();
    let ant = FakeUpstream::start().await.unwrap();
    ant.push(Reply::json(200, r#"{"input_tokens":1234}"#));
    let gw = start(state(&config(&chat.origin(), &ant.origin(), ""), &[]), None).await;

    let unknown = post(
        &gw,
        "/v1/messages/count_tokens",
        &json!({"model": "nope/none", "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(unknown.status, 404, "{}", unknown.text);
    assert_eq!(unknown.json()["type"], "error");
    assert_eq!(unknown.json()["error"]["type"], "not_found_error");

    let plain = json!({"model": "fake/m", "messages": [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": [{"type": "text", "text": "ok"}]},
        {"role": "user", "content": "again"}]});
    let base = post(&gw, "/v1/messages/count_tokens", &plain).await;
    assert_eq!(base.status, 200, "{}", base.text);
    assert_eq!(base.header("x-hearth-count-source"), Some("estimate"));
    let base_n = base.json()["input_tokens"].as_u64().unwrap();

    let mut thinking = plain.clone();
    thinking["messages"][1]["content"].as_array_mut().unwrap().insert(
        0,
        json!({"type": "thinking", "thinking": "a long thought ".repeat(40), "signature": "s"}),
    );
    let with_thinking = post(&gw, "/v1/messages/count_tokens", &thinking).await;
    let thinking_n = with_thinking.json()["input_tokens"].as_u64().unwrap();
    assert!(thinking_n >= base_n + 100, "thinking counts: {base_n} -> {thinking_n}");

    let mut tools = plain.clone();
    tools["tools"] = json!([{"name": "Bash", "description": "Run a shell command ".repeat(20),
        "input_schema": {"type": "object", "properties": {"command": {"type": "string"}}}}]);
    let with_tools = post(&gw, "/v1/messages/count_tokens", &tools).await;
    let tools_n = with_tools.json()["input_tokens"].as_u64().unwrap();
    assert!(tools_n >= base_n + 90, "tools count: {base_n} -> {tools_n}");

    // An Anthropic upstream counts itself, the request as the client sent it.
    let mut native = claude_code_request("ant/claude-up", false);
    native.as_object_mut().unwrap().remove("stream");
    let counted = post(&gw, "/v1/messages/count_tokens?beta=true", &native).await;
    assert_eq!(counted.status, 200, "{}", counted.text);
    assert_eq!(counted.json(), json!({"input_tokens": 1234}));
    assert_eq!(counted.header("x-hearth-count-source"), Some("anthropic"));
    let asked = &ant.requests()[0];
    assert_eq!(asked.path, "/v1/messages/count_tokens");
    let asked_body = asked.json();
    assert_eq!(asked_body["model"], "claude-up");
    assert_eq!(asked_body["tools"][0]["type"], "web_search_20250305");
    assert!(asked_body.get("max_tokens").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn count_tokens_on_llama_cpp_uses_its_template_and_tokenizer() {
    let server = LlamaServer::start(2048)
        .unwrap_or_else(|e| panic!("the llama.cpp test bed is required: {e}"));
    let text = format!(
        r#"{{models: {{mode: "replace", providers: {{tiny: {{baseUrl: "{}/v1", api: "openai-completions",
            models: [{{id: "tiny", maxTokens: 16, contextWindow: 2048}}]}}}}}}}}"#,
        server.origin()
    );
    let gw = start(state(&text, &[]), None).await;
    let body = json!({"model": "tiny/tiny", "system": "be brief",
        "messages": [{"role": "user", "content": "hello there, how are you today?"}]});
    let counted = post(&gw, "/v1/messages/count_tokens", &body).await;
    assert_eq!(counted.status, 200, "{}", counted.text);
    assert_eq!(counted.header("x-hearth-count-source"), Some("llama.cpp"), "{}", counted.text);
    let n = counted.json()["input_tokens"].as_u64().unwrap();
    // The template adds role markers around the ~10 tokens of text.
    assert!((8..400).contains(&n), "{n}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_overflow_is_worded_as_anthropic_words_it() {
    let chat = FakeUpstream::start().await.unwrap();
    chat.push(Reply::json(400, LLAMA_OVERFLOW));
    chat.push(Reply::json(400, LLAMA_OVERFLOW));
    chat.push(Reply::json(400, r#"{"error":{"code":400,"message":"the request exceeds the available context size, try increasing it","type":"exceed_context_size_error"}}"#));
    let gw = start(state(&config(&chat.origin(), "http://127.0.0.1:9", ""), &[]), None).await;
    for stream in [false, true] {
        let answer = post(
            &gw,
            "/v1/messages",
            &json!({"model": "fake/m", "max_tokens": 10, "stream": stream,
            "messages": [{"role": "user", "content": "hi"}]}),
        )
        .await;
        assert_eq!(answer.status, 400, "{}", answer.text);
        assert_eq!(answer.header("x-should-retry"), Some("false"));
        let body = answer.json();
        assert_eq!(body["error"]["type"], "invalid_request_error");
        assert_eq!(body["error"]["message"], "prompt is too long: 13392 tokens > 8192 maximum");
    }
    // Without the upstream's numbers: the configured window, and no invented prompt count.
    let answer = post(
        &gw,
        "/v1/messages",
        &json!({"model": "fake/m", "max_tokens": 10,
        "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    let message = answer.json()["error"]["message"].as_str().unwrap().to_owned();
    assert!(message.starts_with("prompt is too long: more than 4096 maximum"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_errors_say_whether_to_retry_on_every_api() {
    let chat = FakeUpstream::start().await.unwrap();
    let gw = start(
        state(
            &config(
                &chat.origin(),
                "http://127.0.0.1:9",
                r#", gateway: {auth: {mode: "token", token: "right-token-123"}}"#,
            ),
            &[],
        ),
        Some([10, 0, 0, 7]),
    )
    .await;
    let hi = json!({"model": "fake/m", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]});
    let wrong = send(
        client()
            .post(format!("{}/v1/messages", gw.origin()))
            .header("x-api-key", "wrong")
            .json(&hi),
    )
    .await;
    assert_eq!(wrong.status, 401);
    assert_eq!(wrong.header("x-should-retry"), Some("false"));
    assert_eq!(wrong.json()["error"]["type"], "authentication_error");
    let wrong_chat = send(
        client()
            .post(format!("{}/v1/chat/completions", gw.origin()))
            .bearer_auth("wrong")
            .json(&json!({"model": "fake/m", "messages": [{"role": "user", "content": "hi"}]})),
    )
    .await;
    assert_eq!(wrong_chat.status, 401);
    assert_eq!(wrong_chat.header("x-should-retry"), Some("false"));
    let unknown = send(
        client()
            .post(format!("{}/v1/messages", gw.origin()))
            .header("x-api-key", "right-token-123")
            .json(&json!({"model": "nope/x", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]})),
    )
    .await;
    assert_eq!(unknown.status, 404);
    assert_eq!(unknown.header("x-should-retry"), Some("false"));
    // Ten wrong tokens lock the address out: 429 with Retry-After, retry later.
    let mut last = None;
    for _ in 0..10 {
        last = Some(
            send(
                client()
                    .post(format!("{}/v1/messages", gw.origin()))
                    .header("x-api-key", "bad")
                    .json(&hi),
            )
            .await,
        );
    }
    let locked = last.unwrap();
    assert_eq!(locked.status, 429);
    assert_eq!(locked.header("x-should-retry"), Some("true"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_anthropic_client_gets_anthropics_model_list() {
    let gw = start(state(&config("http://127.0.0.1:9", "http://127.0.0.1:9", ""), &[]), None).await;
    let get = |path: &str, anthropic: bool| {
        let mut request = client().get(format!("{}{path}", gw.origin()));
        if anthropic {
            request = request.header("anthropic-version", "2023-06-01");
        }
        send(request)
    };
    let openai = get("/v1/models", false).await.json();
    assert_eq!(openai["object"], "list");
    let list = get("/v1/models", true).await;
    assert_eq!(list.status, 200, "{}", list.text);
    let list = list.json();
    assert!(list.get("object").is_none());
    let data = list["data"].as_array().unwrap();
    assert!(data.iter().all(|m| m["type"] == "model"
        && m["created_at"].is_string()
        && m["display_name"].is_string()));
    let ids: Vec<&str> = data.iter().map(|m| m["id"].as_str().unwrap()).collect();
    assert!(ids.contains(&"fake/m") && ids.contains(&"ant/claude-up"), "{ids:?}");
    assert_eq!(list["has_more"], false);
    assert_eq!(list["first_id"], ids[0]);
    assert_eq!(list["last_id"], *ids.last().unwrap());
    let page = get("/v1/models?limit=1", true).await.json();
    assert_eq!(page["data"].as_array().unwrap().len(), 1);
    assert_eq!(page["has_more"], true);
    let next = get(&format!("/v1/models?limit=1&after_id={}", ids[0]), true).await.json();
    assert_eq!(next["first_id"], ids[1]);
    let one = get("/v1/models/fake/m", true).await.json();
    assert_eq!(
        one,
        json!({"type": "model", "id": "fake/m", "display_name": "fake/m", "created_at": "1970-01-01T00:00:00Z"})
    );
    let missing = get("/v1/models/nope/x", true).await;
    assert_eq!(missing.status, 404);
    assert_eq!(missing.json()["error"]["type"], "not_found_error");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claude_codes_request_reaches_a_chat_upstream_without_server_tools_or_anthropic_fields() {
    let chat = FakeUpstream::start().await.unwrap();
    chat.push(Reply::json(200, CHAT_BODY));
    chat.push(Reply::sse(CHAT_STREAM));
    let gw = start(state(&config(&chat.origin(), "http://127.0.0.1:9", ""), &[]), None).await;
    for stream in [false, true] {
        let answer =
            post(&gw, "/v1/messages?beta=true", &claude_code_request("fake/m", stream)).await;
        assert_eq!(answer.status, 200, "{}", answer.text);
        assert_eq!(
            answer.header("x-hearth-dropped"),
            Some(
                "tools[0] (web_search_20250305), tools[2] (bash_20250124), tools[3] (text_editor_20250728)"
            )
        );
    }
    for recorded in chat.requests() {
        let sent = recorded.json();
        let tools = sent["tools"].as_array().unwrap();
        assert_eq!(tools.len(), 1);
        assert_eq!(tools[0]["function"]["name"], "Bash");
        let raw = String::from_utf8(recorded.body.clone()).unwrap();
        // Claude Code's `thinking: {type: "adaptive"}` is a thinking level here, in the chat
        // server's own fields (docs/local-models.md, "Thinking levels"), not Anthropic's object.
        assert!(sent.get("thinking").is_none(), "{raw}");
        assert_eq!(sent["chat_template_kwargs"]["enable_thinking"], true, "{raw}");
        for field in [
            "\"thinking\"",
            "context_management",
            "output_config",
            "metadata",
            "cache_control",
            "user_abc",
        ] {
            assert!(!raw.contains(field), "{field} went to a chat upstream: {raw}");
        }
        assert_eq!(
            sent["messages"][0]["content"],
            "You are Claude Code.\n\nSession context: cwd is /tmp."
        );
        assert!(recorded.header("anthropic-beta").is_none());
    }
}

/// `output_config.format` is structured output for every upstream (tests/golden.rs shows it
/// mapped); one without a schema is refused naming the field, before any upstream sees it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_output_config_format_without_a_schema_is_a_400_naming_the_field() {
    let chat = FakeUpstream::start().await.unwrap();
    let gw = start(state(&config(&chat.origin(), "http://127.0.0.1:9", ""), &[]), None).await;
    let body = json!({"model": "fake/m", "max_tokens": 100,
        "messages": [{"role": "user", "content": "hi"}],
        "output_config": {"effort": "high", "format": {"type": "json_schema"}}});
    let answer = post(&gw, "/v1/messages", &body).await;
    assert_eq!(answer.status, 400, "{}", answer.text);
    let message = answer.json()["error"]["message"].as_str().unwrap().to_owned();
    assert!(message.contains("output_config.format.schema"), "{message}");
    assert!(chat.requests().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_anthropic_upstream_gets_claude_codes_request_untouched() {
    let ant = FakeUpstream::start().await.unwrap();
    ant.push(Reply::json(200, ANTHROPIC_BODY));
    let gw = start(state(&config("http://127.0.0.1:9", &ant.origin(), ""), &[]), None).await;
    let request = claude_code_request("ant/claude-up", false);
    let answer = post(&gw, "/v1/messages?beta=true", &request).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert!(answer.header("x-hearth-dropped").is_none());
    let recorded = &ant.requests()[0];
    assert_eq!(recorded.path, "/v1/messages");
    assert_eq!(
        recorded.header("anthropic-beta"),
        Some("claude-code-20250219,context-management-2025-06-27")
    );
    assert_eq!(recorded.header("x-api-key"), Some("sk-ant-local"));
    let mut expected = request.clone();
    expected["model"] = json!("claude-up");
    expected["max_tokens"] = json!(1024);
    assert_eq!(recorded.json(), expected, "only model and the output cap are rewritten");
}

const WEB_SEARCH_SSE: &str =
    include_str!("../../../scripts/testbed/captures/anthropic/web-search.sse");

/// A web search Claude runs on Anthropic's side comes back to the Messages client whole and in
/// its place: the `server_tool_use` block (its input as one `input_json_delta`) and the
/// `web_search_tool_result` between the two text blocks, streaming and not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_tool_blocks_come_back_to_a_messages_client() {
    let chat = FakeUpstream::start().await.unwrap();
    let ant = FakeUpstream::start().await.unwrap();
    ant.push(Reply::sse_raw(WEB_SEARCH_SSE));
    let whole = json!({"id": "msg_up", "type": "message", "role": "assistant", "model": "claude-up",
        "content": [
            {"type": "text", "text": "I'll check the weather."},
            {"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search", "input": {"query": "weather NYC today"}},
            {"type": "web_search_tool_result", "tool_use_id": "srvtoolu_1", "content": [{"type": "web_search_result", "title": "NYC", "url": "https://www.weather.gov/okx/", "encrypted_content": "Ev0D", "page_age": null}]},
            {"type": "text", "text": "It is sunny, 22 °C."}
        ],
        "stop_reason": "end_turn", "stop_sequence": null,
        "usage": {"input_tokens": 2679, "output_tokens": 510, "server_tool_use": {"web_search_requests": 1}}});
    ant.push(Reply::json(200, &whole.to_string()));
    let gw = start(state(&config(&chat.origin(), &ant.origin(), ""), &[]), None).await;
    let request = |stream: bool| {
        json!({"model": "ant/claude-up", "max_tokens": 1024, "stream": stream,
               "tools": [{"type": "web_search_20250305", "name": "web_search", "max_uses": 5}],
               "messages": [{"role": "user", "content": "Weather in NYC?"}]})
    };

    let answer = post(&gw, "/v1/messages", &request(true)).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    let events = events(&answer.text);
    let starts: Vec<&Value> = events
        .iter()
        .filter(|e| e["type"] == "content_block_start")
        .map(|e| &e["content_block"])
        .collect();
    let kinds: Vec<&str> = starts.iter().map(|b| b["type"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        ["text", "server_tool_use", "web_search_tool_result", "text"],
        "{}",
        answer.text
    );
    assert_eq!(
        *starts[1],
        json!({"type": "server_tool_use", "id": "srvtoolu_014hJH82Qum7Td6UV8gDXThB", "name": "web_search", "input": {}})
    );
    let input_delta =
        events.iter().find(|e| e["type"] == "content_block_delta" && e["index"] == 1).unwrap();
    assert_eq!(input_delta["delta"]["type"], "input_json_delta");
    let input: Value =
        serde_json::from_str(input_delta["delta"]["partial_json"].as_str().unwrap()).unwrap();
    assert_eq!(input, json!({"query": "weather NYC today"}));
    assert_eq!(starts[2]["content"][0]["url"], "https://www.weather.gov/okx/");
    // Every block that starts stops, with indexes in order.
    let stops: Vec<u64> = events
        .iter()
        .filter(|e| e["type"] == "content_block_stop")
        .map(|e| e["index"].as_u64().unwrap())
        .collect();
    assert_eq!(stops, [0, 1, 2, 3]);

    let answer = post(&gw, "/v1/messages", &request(false)).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    let content = answer.json()["content"].clone();
    assert_eq!(content, whole["content"], "the blocks as the upstream sent them, in order");
}
