//! The context window an Ollama server runs a model with: hearth sends `options.num_ctx` from
//! the model entry (`params.num_ctx`, else `contextTokens`, else `contextWindow`) on the native
//! API and, with `injectNumCtxForOpenAICompat` (default on), on Ollama's `/v1`; cut to the
//! trained window `/api/show` reports once the gateway's probe has seen it. Ollama's own
//! default (4096) cannot hold an agent's system prompt. See: #15
#![expect(clippy::unwrap_used, reason = "tests")]

use hearth_testkit::{FakeUpstream, Reply};
use serde_json::{Value, json};

mod common;
use common::{client, start, state};

const OLLAMA_LINES: &[&str] = &[
    r#"{"model":"m","created_at":"2026-12-02T08:00:00Z","message":{"role":"assistant","content":"hi"},"done":false}"#,
    r#"{"model":"m","created_at":"2026-12-02T08:00:01Z","message":{"role":"assistant","content":""},"done":true,"done_reason":"stop","prompt_eval_count":12,"eval_count":2}"#,
];
const OLLAMA_BODY: &str = r#"{"model":"m","created_at":"2026-12-02T08:00:00Z","message":{"role":"assistant","content":"hi"},"done":true,"done_reason":"stop","prompt_eval_count":12,"eval_count":2}"#;
const CHAT_BODY: &str = r#"{"id":"c","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":5,"completion_tokens":7,"total_tokens":12}}"#;

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

/// Every request to an Ollama-dialect upstream, from every client API, streaming and not,
/// carries the configured window.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_request_to_ollama_carries_the_configured_window() {
    let up = FakeUpstream::start_calls_only().await.unwrap();
    let config = format!(
        r#"{{models: {{mode: "replace", providers: {{
            ol: {{baseUrl: "{}", api: "ollama", models: [
              {{id: "qwen3:8b", contextWindow: 32768}},
              {{id: "capped", contextWindow: 131072, contextTokens: 16384}},
              {{id: "pinned", contextWindow: 131072, params: {{num_ctx: 8192}}}},
              {{id: "bare"}}]}}}}}},
          agents: {{defaults: {{model: {{primary: "ol/qwen3:8b"}}}}}}}}"#,
        up.origin()
    );
    let gw = start(state(&config, &[]), None).await;
    let cases = [
        ("/v1/chat/completions", "ol/qwen3:8b", true),
        ("/v1/chat/completions", "ol/qwen3:8b", false),
        ("/v1/responses", "ol/qwen3:8b", true),
        ("/v1/responses", "ol/qwen3:8b", false),
        ("/v1/messages", "ol/qwen3:8b", true),
        ("/v1/messages", "ol/qwen3:8b", false),
        ("/v1/chat/completions", "ol/capped", false),
        ("/v1/chat/completions", "ol/pinned", false),
        ("/v1/chat/completions", "ol/bare", false),
    ];
    for (path, model, stream) in cases {
        up.push(if stream { Reply::ndjson(OLLAMA_LINES) } else { Reply::json(200, OLLAMA_BODY) });
        let body = match path {
            "/v1/responses" => json!({"model": model, "input": "hi", "stream": stream}),
            "/v1/messages" => json!({"model": model, "max_tokens": 64, "stream": stream,
                "messages": [{"role": "user", "content": "hi"}]}),
            _ => {
                json!({"model": model, "stream": stream, "messages": [{"role": "user", "content": "hi"}]})
            }
        };
        let (status, text) = post(&gw.origin(), path, &body).await;
        assert_eq!(status, 200, "{path} {model} stream={stream}: {text}");
    }
    let sent: Vec<Value> =
        up.requests().iter().map(|r| r.json()["options"]["num_ctx"].clone()).collect();
    assert!(up.requests().iter().all(|r| r.path == "/api/chat"));
    assert_eq!(
        sent,
        [
            json!(32768),
            json!(32768),
            json!(32768),
            json!(32768),
            json!(32768),
            json!(32768),
            json!(16384),
            json!(8192),
            Value::Null
        ],
        "contextWindow everywhere; contextTokens over it; params.num_ctx as given; none without a window"
    );
}

/// Ollama's `/v1` gets `options.num_ctx` too, unless `injectNumCtxForOpenAICompat: false`; an
/// OpenAI-compatible server that is not Ollama never does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ollamas_v1_gets_num_ctx_unless_turned_off() {
    let up = FakeUpstream::start_calls_only().await.unwrap();
    let origin = up.origin();
    let config = format!(
        r#"{{models: {{mode: "replace", providers: {{
            ollama: {{baseUrl: "{origin}/v1", api: "openai-completions", models: [{{id: "m", contextWindow: 24576}}]}},
            "ollama-off": {{baseUrl: "{origin}/v1", api: "openai-completions", injectNumCtxForOpenAICompat: false,
              models: [{{id: "m", contextWindow: 24576}}]}},
            llamacpp: {{baseUrl: "{origin}/v1", api: "openai-completions", models: [{{id: "m", contextWindow: 24576}}]}}}}}},
          agents: {{defaults: {{model: {{primary: "ollama/m"}}}}}}}}"#
    );
    let gw = start(state(&config, &[]), None).await;
    for model in ["ollama/m", "ollama-off/m", "llamacpp/m"] {
        up.push(Reply::json(200, CHAT_BODY));
        let (status, text) = post(
            &gw.origin(),
            "/v1/chat/completions",
            &json!({"model": model, "messages": [{"role": "user", "content": "hi"}]}),
        )
        .await;
        assert_eq!(status, 200, "{model}: {text}");
    }
    let options: Vec<Value> = up.requests().iter().map(|r| r.json()["options"].clone()).collect();
    assert_eq!(options, [json!({"num_ctx": 24576}), Value::Null, Value::Null]);
}

/// Once the gateway's probe has read `/api/show`, a configured window larger than the model's
/// trained one is cut to it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_window_is_cut_to_what_api_show_says_the_model_supports() {
    let up = FakeUpstream::start().await.unwrap();
    up.push(Reply::json(200, r#"{"models":[{"name":"small:1b","model":"small:1b","size":1,"digest":"d","details":{"format":"gguf"}}]}"#));
    up.push(Reply::json(200, r#"{"models":[]}"#));
    up.push(Reply::json(
        200,
        r#"{"parameters":"stop \"<end>\"","model_info":{"general.architecture":"llama","llama.context_length":8192},"capabilities":["completion"]}"#,
    ));
    let config = format!(
        r#"{{models: {{mode: "replace", providers: {{
            ol: {{baseUrl: "{}", api: "ollama", models: [{{id: "small:1b", contextWindow: 131072}}]}}}}}},
          agents: {{defaults: {{model: {{primary: "ol/small:1b"}}}}}}}}"#,
        up.origin()
    );
    let st = state(&config, &[]);
    let provider = st.config.load().providers["ol"].clone();
    let probe = st.probes.get(&provider).await;
    assert_eq!(probe.find("small:1b").and_then(|m| m.max_context_window), Some(8192), "{probe:?}");
    let gw = start(st, None).await;
    up.push(Reply::json(200, OLLAMA_BODY));
    let (status, text) = post(
        &gw.origin(),
        "/v1/chat/completions",
        &json!({"model": "ol/small:1b", "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(status, 200, "{text}");
    let chat = up.requests().last().unwrap().json();
    assert_eq!(chat["options"]["num_ctx"], 8192);
}
