//! Thinking levels through the gateway: a level set per request (chat `reasoning_effort`,
//! Responses `reasoning.effort`, Anthropic `thinking`), per model entry (`params.thinking`) or
//! per agent (`thinkingDefault`) changes the upstream request as docs/local-models.md
//! ("Thinking levels") says for each server kind; `off` yields no reasoning even from a server
//! that thinks anyway; unsupported levels degrade with a notice, never a 400. See: #15
//!
//! The upstream answers are the llama-server captures of `scripts/testbed/captures/` (and the
//! Ollama body written after `shared/reference/local-servers.md`, as in `golden.rs`); the
//! golden table `snapshots/thinking__levels_per_server_kind.snap` holds, for every server kind
//! and client level, the thinking fields hearth sent and the notice the client got.
//! Update: `INSTA_UPDATE=always cargo nextest run -p hearth-server --test thinking`, then review.
#![expect(clippy::unwrap_used, reason = "tests")]

use std::fmt::Write as _;

use hearth_testkit::{FakeUpstream, Reply};
use serde_json::{Value, json};

mod common;
use common::{client, start, state};

const CHAT_JSON: &str = include_str!("../../../scripts/testbed/captures/chat.json");
const RESPONSES_JSON: &str = include_str!("../../../scripts/testbed/captures/responses.json");
const MESSAGES_JSON: &str = include_str!("../../../scripts/testbed/captures/messages.json");
const OLLAMA_JSON: &str = include_str!("golden/ollama-chat.json");

/// A llama-server answer of a reasoning model whose template ignored `enable_thinking`: the
/// capture's shape with `reasoning_content` beside the content (llama-server's
/// `--reasoning-format deepseek` field, `shared/reference/local-servers.md` §3.4).
const THINKING_CHAT: &str = r#"{"choices":[{"finish_reason":"stop","index":0,"message":{"role":"assistant","content":"4","reasoning_content":"two and two make four"}}],"created":1795490517,"model":"tiny","object":"chat.completion","usage":{"completion_tokens":8,"prompt_tokens":37,"total_tokens":45},"id":"chatcmpl-1"}"#;
const THINKING_SSE: &[&str] = &[
    r#"{"choices":[{"finish_reason":null,"index":0,"delta":{"role":"assistant","content":null}}],"created":1795490517,"id":"chatcmpl-1","model":"tiny","object":"chat.completion.chunk"}"#,
    r#"{"choices":[{"finish_reason":null,"index":0,"delta":{"reasoning_content":"two and two"}}],"created":1795490517,"id":"chatcmpl-1","model":"tiny","object":"chat.completion.chunk"}"#,
    r#"{"choices":[{"finish_reason":null,"index":0,"delta":{"content":"4"}}],"created":1795490517,"id":"chatcmpl-1","model":"tiny","object":"chat.completion.chunk"}"#,
    r#"{"choices":[{"finish_reason":"stop","index":0,"delta":{}}],"created":1795490517,"id":"chatcmpl-1","model":"tiny","object":"chat.completion.chunk","usage":{"completion_tokens":3,"prompt_tokens":9,"total_tokens":12}}"#,
];

/// The server kinds, as the provider ids and ports hearth tells them by.
fn config(origin: &str) -> String {
    let m = r#"{id: "m", reasoning: true, maxTokens: 32000}"#;
    format!(
        r#"{{gateway: {{auth: {{mode: "none"}}}}, models: {{mode: "replace", providers: {{
            llamacpp: {{baseUrl: "{origin}/v1", api: "openai-completions", models: [{m}]}},
            vllm: {{baseUrl: "{origin}/v1", api: "openai-completions", models: [{m}]}},
            lmstudio: {{baseUrl: "{origin}/v1", api: "openai-completions", models: [{m}]}},
            "ollama-v1": {{baseUrl: "{origin}/v1", api: "openai-completions", models: [{m}]}},
            ollama: {{baseUrl: "{origin}", api: "ollama", models: [{m}, {{id: "gpt-oss:20b", reasoning: true}}]}},
            openrouter: {{baseUrl: "{origin}/v1", api: "openai-completions", models: [{m}]}},
            deepseek: {{baseUrl: "{origin}/v1", api: "openai-completions",
              models: [{{id: "m", reasoning: true, compat: {{thinkingFormat: "deepseek"}}}}]}},
            limited: {{baseUrl: "{origin}/v1", api: "openai-completions",
              models: [{{id: "m", reasoning: true, compat: {{supportedReasoningEfforts: ["low", "high"]}}}}]}},
            responses: {{baseUrl: "{origin}/v1", api: "openai-responses", models: [{m}]}},
            anthropic: {{baseUrl: "{origin}", api: "anthropic-messages", models: [{m}]}},
        }}}}}}"#
    )
}

/// The upstream's answer in its dialect.
fn reply(provider: &str) -> Reply {
    match provider {
        "ollama" => Reply::json(200, OLLAMA_JSON),
        "responses" => Reply::json(200, RESPONSES_JSON),
        "anthropic" => Reply::json(200, MESSAGES_JSON),
        _ => Reply::json(200, CHAT_JSON),
    }
}

/// The thinking fields of an upstream request body.
fn thinking_fields(body: &Value) -> Value {
    let mut out = serde_json::Map::new();
    for key in [
        "chat_template_kwargs",
        "reasoning_effort",
        "reasoning_budget_tokens",
        "enable_thinking",
        "reasoning",
        "thinking",
        "think",
    ] {
        if let Some(v) = body.get(key) {
            out.insert(key.to_owned(), v.clone());
        }
    }
    Value::Object(out)
}

async fn post(origin: &str, path: &str, body: &Value) -> reqwest::Response {
    client()
        .post(format!("{origin}{path}"))
        .header("anthropic-version", "2023-06-01")
        .json(body)
        .send()
        .await
        .unwrap()
}

/// The client requests: (label, path, body) for `model` at a level.
fn requests(model: &str) -> Vec<(String, &'static str, Value)> {
    let msgs = json!([{"role": "user", "content": "hi"}]);
    let mut out = Vec::new();
    for effort in ["none", "minimal", "low", "high", "xhigh", "max"] {
        out.push((
            format!("chat reasoning_effort={effort}"),
            "/v1/chat/completions",
            json!({"model": model, "messages": msgs, "reasoning_effort": effort}),
        ));
    }
    out.push((
        "responses reasoning.effort=medium".to_owned(),
        "/v1/responses",
        json!({"model": model, "input": "hi", "reasoning": {"effort": "medium"}}),
    ));
    out.push((
        "messages thinking.budget_tokens=2048".to_owned(),
        "/v1/messages",
        json!({"model": model, "max_tokens": 8192, "messages": msgs,
               "thinking": {"type": "enabled", "budget_tokens": 2048}}),
    ));
    out.push((
        "messages thinking=adaptive".to_owned(),
        "/v1/messages",
        json!({"model": model, "max_tokens": 8192, "messages": msgs, "thinking": {"type": "adaptive"}}),
    ));
    out
}

/// Every server kind × every client level: the fields sent, and the notice. The table is
/// reviewed against docs/local-models.md's; every request answers 200.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn levels_per_server_kind() {
    let up = FakeUpstream::start_calls_only().await.unwrap();
    let gw = start(state(&config(&up.origin()), &[]), None).await;
    let kinds = [
        "llamacpp/m",
        "vllm/m",
        "lmstudio/m",
        "ollama-v1/m",
        "ollama/m",
        "ollama/gpt-oss:20b",
        "openrouter/m",
        "deepseek/m",
        "limited/m",
        "responses/m",
        "anthropic/m",
    ];
    let mut table = String::new();
    for model in kinds {
        let provider = model.split('/').next().unwrap();
        writeln!(table, "## {model}").unwrap();
        for (label, path, body) in requests(model) {
            up.push(reply(provider));
            let response = post(&gw.origin(), path, &body).await;
            let status = response.status().as_u16();
            let notice: Vec<String> = response
                .headers()
                .get_all("x-hearth-notice")
                .iter()
                .map(|v| v.to_str().unwrap().to_owned())
                .collect();
            let text = response.text().await.unwrap();
            assert_eq!(status, 200, "{model} {label}: {text}");
            let sent = up.requests().last().unwrap().json();
            writeln!(table, "{label:<38} {}", thinking_fields(&sent)).unwrap();
            for n in notice {
                writeln!(table, "{:<38}   notice: {n}", "").unwrap();
            }
        }
    }
    insta::assert_snapshot!("levels_per_server_kind", table);
}

/// Thinking off on a reasoning model: the reasoning a server sends anyway reaches no client,
/// whole or streamed; without a level it does (the test can fail).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn off_yields_no_reasoning() {
    let up = FakeUpstream::start_calls_only().await.unwrap();
    let gw = start(state(&config(&up.origin()), &[]), None).await;
    let msgs = json!([{"role": "user", "content": "2+2?"}]);
    for (effort, shown) in [(None, true), (Some("none"), false), (Some("off"), false)] {
        let mut body = json!({"model": "llamacpp/m", "messages": msgs});
        if let Some(e) = effort {
            body["reasoning_effort"] = json!(e);
        }
        up.push(Reply::json(200, THINKING_CHAT));
        let whole: Value =
            post(&gw.origin(), "/v1/chat/completions", &body).await.json().await.unwrap();
        let message = &whole["choices"][0]["message"];
        assert_eq!(message["content"], "4");
        assert_eq!(message.get("reasoning_content").is_some(), shown, "{effort:?}: {whole}");

        body["stream"] = json!(true);
        up.push(Reply::sse(THINKING_SSE));
        let text = post(&gw.origin(), "/v1/chat/completions", &body).await.text().await.unwrap();
        assert!(text.contains(r#""content":"4""#), "{text}");
        assert_eq!(text.contains("two and two"), shown, "{effort:?}: {text}");

        // The Messages surface: no thinking block.
        let mut messages = json!({"model": "llamacpp/m", "max_tokens": 64, "messages": msgs});
        if effort.is_some() {
            messages["thinking"] = json!({"type": "disabled"});
        }
        up.push(Reply::json(200, THINKING_CHAT));
        let m: Value = post(&gw.origin(), "/v1/messages", &messages).await.json().await.unwrap();
        let kinds: Vec<&str> =
            m["content"].as_array().unwrap().iter().map(|b| b["type"].as_str().unwrap()).collect();
        assert_eq!(kinds.contains(&"thinking"), shown, "{effort:?}: {m}");
    }
    // What went up said off.
    let sent: Vec<Value> = up.requests().iter().map(|r| thinking_fields(&r.json())).collect();
    assert_eq!(sent[0], json!({}));
    assert_eq!(sent[3], json!({"chat_template_kwargs": {"enable_thinking": false}}));
}

/// Configured levels: a model entry's `params.thinking` beats the agent's `thinkingDefault`,
/// which applies to entries that set none; a request's level beats both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configured_levels() {
    let up = FakeUpstream::start_calls_only().await.unwrap();
    let config = format!(
        r#"{{gateway: {{auth: {{mode: "none"}}}}, models: {{mode: "replace", providers: {{
            vllm: {{baseUrl: "{}/v1", api: "openai-completions", models: [
              {{id: "quiet", reasoning: true, params: {{thinking: "off"}}}},
              {{id: "plain", reasoning: true}}]}}}}}},
          agents: {{defaults: {{thinkingDefault: "high", model: {{primary: "vllm/plain"}}}}}}}}"#,
        up.origin()
    );
    let gw = start(state(&config, &[]), None).await;
    let msgs = json!([{"role": "user", "content": "hi"}]);
    for body in [
        json!({"model": "vllm/quiet", "messages": msgs}),
        json!({"model": "vllm/plain", "messages": msgs}),
        json!({"model": "vllm/quiet", "messages": msgs, "reasoning_effort": "low"}),
    ] {
        up.push(Reply::json(200, CHAT_JSON));
        assert_eq!(post(&gw.origin(), "/v1/chat/completions", &body).await.status(), 200);
    }
    let sent: Vec<Value> = up.requests().iter().map(|r| thinking_fields(&r.json())).collect();
    assert_eq!(
        sent,
        [
            json!({"chat_template_kwargs": {"enable_thinking": false}}),
            json!({"chat_template_kwargs": {"enable_thinking": true}, "reasoning_effort": "high"}),
            json!({"chat_template_kwargs": {"enable_thinking": true}, "reasoning_effort": "low"}),
        ]
    );
}

/// A value that is no level is the caller's error, in its own shape, with the field named.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_levels_are_the_callers_error() {
    let up = FakeUpstream::start_calls_only().await.unwrap();
    let gw = start(state(&config(&up.origin()), &[]), None).await;
    let msgs = json!([{"role": "user", "content": "hi"}]);
    let chat = post(
        &gw.origin(),
        "/v1/chat/completions",
        &json!({"model": "vllm/m", "messages": msgs, "reasoning_effort": "hihg"}),
    )
    .await;
    assert_eq!(chat.status(), 400);
    let e: Value = chat.json().await.unwrap();
    assert_eq!(e["error"]["param"], "reasoning_effort", "{e}");
    let responses = post(
        &gw.origin(),
        "/v1/responses",
        &json!({"model": "vllm/m", "input": "hi", "reasoning": {"effort": "lots"}}),
    )
    .await;
    assert_eq!(responses.status(), 400);
    let e: Value = responses.json().await.unwrap();
    assert_eq!(e["error"]["param"], "reasoning.effort", "{e}");
    let messages = post(
        &gw.origin(),
        "/v1/messages",
        &json!({"model": "vllm/m", "max_tokens": 64, "messages": msgs, "thinking": {"type": "sometimes"}}),
    )
    .await;
    assert_eq!(messages.status(), 400);
    let e: Value = messages.json().await.unwrap();
    assert_eq!(e["type"], "error");
    assert!(e["error"]["message"].as_str().unwrap().contains("thinking"), "{e}");
    assert!(up.requests().is_empty(), "nothing went up");
}

/// A chat template that reads `enable_thinking` as Qwen3's does: off closes an empty think
/// block in the prompt. llama-server (this version) parses the generated text of such a
/// template as reasoning in both cases, a real instance of the bug class where a server puts
/// the answer into `reasoning_content` with thinking off (shared/reference/local-servers.md
/// §3.1, vLLM #40816).
const THINKING_TEMPLATE: &str = "{%- for message in messages %}<|im_start|>{{ message.role }}\n\
{{ message.content }}<|im_end|>\n{%- endfor %}{%- if add_generation_prompt %}<|im_start|>assistant\n\
{%- if enable_thinking is defined and enable_thinking is false %}<think>\n\n</think>\n\n{%- endif %}\
{%- endif %}";

/// Against the real llama-server of the test bed, started with that template: with thinking
/// on (or the server's default) the model only reasons, which is no answer (502, failed over
/// like an empty one); with `reasoning_effort: "none"` hearth sends
/// `chat_template_kwargs.enable_thinking: false`, the server reads a longer prompt (the closed
/// block), and what it returns as reasoning is the answer: content, and no reasoning, whole
/// and streamed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_llama_server_off_yields_an_answer_and_no_reasoning() {
    let dir = std::env::temp_dir().join(format!("hearth-thinking-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let template = dir.join("thinking.jinja");
    std::fs::write(&template, THINKING_TEMPLATE).unwrap();
    let server = hearth_testkit::llama::LlamaServer::start_with(
        2048,
        &["--chat-template-file", template.to_str().unwrap()],
    )
    .unwrap_or_else(|e| panic!("the llama.cpp test bed is required: {e}"));
    let config = format!(
        r#"{{gateway: {{auth: {{mode: "none"}}}}, models: {{mode: "replace", providers: {{
            llamacpp: {{baseUrl: "{}/v1", api: "openai-completions",
              models: [{{id: "tiny", reasoning: true, maxTokens: 6, contextWindow: 2048}}]}}}}}}}}"#,
        server.origin()
    );
    let gw = start(state(&config, &[]), None).await;
    let ask = |effort: Option<&str>, stream: bool| {
        let mut body = json!({"model": "llamacpp/tiny", "temperature": 0, "stream": stream,
            "messages": [{"role": "user", "content": "hello"}]});
        if let Some(e) = effort {
            body["reasoning_effort"] = json!(e);
        }
        body
    };
    for effort in [None, Some("high")] {
        let response = post(&gw.origin(), "/v1/chat/completions", &ask(effort, false)).await;
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        assert_eq!(status, 502, "{effort:?}: {text}");
        assert!(text.contains("reasoning but no answer"), "{effort:?}: {text}");
    }
    let response = post(&gw.origin(), "/v1/chat/completions", &ask(Some("none"), false)).await;
    assert_eq!(response.status(), 200);
    let whole: Value = response.json().await.unwrap();
    let message = &whole["choices"][0]["message"];
    assert!(!message["content"].as_str().unwrap().trim().is_empty(), "{whole}");
    assert!(message.get("reasoning_content").is_none(), "{whole}");
    // The closed think block: the prompt is longer than the 12 tokens of ChatML around "hello".
    assert!(whole["usage"]["prompt_tokens"].as_u64().unwrap() > 12, "{whole}");
    let response = post(&gw.origin(), "/v1/chat/completions", &ask(Some("none"), true)).await;
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    assert!(text.contains(r#""content":""#) && !text.contains("reasoning"), "{text}");
    let _ = std::fs::remove_dir_all(&dir);
}
