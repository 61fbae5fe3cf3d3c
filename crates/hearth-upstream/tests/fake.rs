//! Adapters against the scripted upstream: every reasoning form, split at every byte, and the
//! faults a real server cannot be made to produce.
#![expect(clippy::unwrap_used, reason = "test helpers may unwrap")]

use std::collections::BTreeMap;
use std::time::Duration;

use futures::StreamExt;
use hearth_config::{Api, Config, load_str};
use hearth_testkit::{End, FakeUpstream, Reply};
use hearth_upstream::decode::Decoder;
use hearth_upstream::{Client, ErrorClass, Event, FinishReason, Prompt, Target};
use hearth_wire::ndjson::{NdjsonDecoder, NdjsonItem};
use hearth_wire::sse::{SseDecoder, SseItem};

const REASONING: &str = "Let me think.";
const ANSWER: &str = "The answer is 42.";

fn config(origin: &str, api: &str, reasoning: bool, extra: &str) -> Config {
    let base = match api {
        "ollama" | "anthropic-messages" => origin.to_owned(),
        _ => format!("{origin}/v1"),
    };
    let text = format!(
        r#"{{models: {{mode: "replace", providers: {{fake: {{baseUrl: "{base}", apiKey: "sk-local", api: "{api}", {extra}
            models: [{{id: "m", reasoning: {reasoning}, maxTokens: 256, cost: {{input: 1, output: 2}}}}]}}}}}}}}"#
    );
    let loaded = load_str("test.json5", &text, &BTreeMap::<String, String>::new());
    assert!(!loaded.has_errors(), "{:?}", loaded.diagnostics);
    loaded.config.unwrap()
}

/// What a stream of events adds up to.
#[derive(Debug, Default)]
struct Outcome {
    text: String,
    reasoning: String,
    signature: String,
    logprobs: Vec<hearth_upstream::TokenLogprob>,
    native: Vec<serde_json::Value>,
    progress: Vec<hearth_upstream::Progress>,
    tools: Vec<(Option<String>, Option<String>, String)>,
    usage: Option<hearth_upstream::Usage>,
    finish: Option<FinishReason>,
    error: Option<hearth_upstream::UpstreamError>,
    after_terminal: usize,
}

fn fold(events: &[Event]) -> Outcome {
    let mut o = Outcome::default();
    let mut terminal = false;
    for e in events {
        if terminal {
            o.after_terminal += 1;
        }
        match e {
            Event::TextDelta(t) => o.text.push_str(t),
            Event::ReasoningDelta(r) => o.reasoning.push_str(r),
            Event::ReasoningSignature(s) => o.signature.push_str(s),
            Event::Logprobs(l) => o.logprobs.extend(l.iter().cloned()),
            Event::Native(b) => o.native.push((**b).clone()),
            Event::Progress(p) => o.progress.push(*p),
            Event::ToolCallDelta { index, id, name, arguments } => {
                let i = *index as usize;
                if o.tools.len() <= i {
                    o.tools.resize(i + 1, (None, None, String::new()));
                }
                if id.is_some() {
                    o.tools[i].0.clone_from(id);
                }
                if name.is_some() {
                    o.tools[i].1.clone_from(name);
                }
                o.tools[i].2.push_str(arguments);
            }
            Event::Usage(u) => o.usage = Some(*u),
            Event::Finish(f) => {
                o.finish = Some(f.clone());
                terminal = true;
            }
            Event::Error(e) => {
                o.error = Some(e.clone());
                terminal = true;
            }
        }
    }
    o
}

fn chunk(delta: &str) -> String {
    format!(
        r#"{{"id":"c","object":"chat.completion.chunk","choices":[{{"index":0,"delta":{delta},"finish_reason":null}}]}}"#
    )
}

fn chat_stream(reasoning_field: &str) -> String {
    let mut s = String::new();
    for piece in ["Let me", " think."] {
        let delta = if reasoning_field == "reasoning_details" {
            format!(r#"{{"reasoning_details":[{{"type":"reasoning.text","text":"{piece}"}}]}}"#)
        } else {
            format!(r#"{{"{reasoning_field}":"{piece}"}}"#)
        };
        s.push_str(&format!("data: {}\n\n", chunk(&delta)));
    }
    for piece in ["The answer", " is 42."] {
        s.push_str(&format!("data: {}\n\n", chunk(&format!(r#"{{"content":"{piece}"}}"#))));
    }
    s.push_str("data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n");
    s.push_str("data: {\"id\":\"c\",\"choices\":[],\"usage\":{\"prompt_tokens\":12,\"completion_tokens\":9}}\n\n");
    s.push_str("data: [DONE]\n\n");
    s
}

fn chat_inline(content_pieces: &[&str]) -> String {
    let mut s = String::new();
    for piece in content_pieces {
        s.push_str(&format!(
            "data: {}\n\n",
            chunk(&format!(r#"{{"content":{}}}"#, serde_json::to_string(piece).unwrap()))
        ));
    }
    s.push_str("data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}],\"timings\":{\"prompt_n\":12,\"predicted_n\":9}}\n\n");
    s.push_str("data: [DONE]\n\n");
    s
}

fn responses_stream() -> String {
    [
        ("response.created", r#"{"type":"response.created","response":{"id":"r","status":"in_progress"}}"#.to_owned()),
        ("response.reasoning_text.delta", r#"{"type":"response.reasoning_text.delta","delta":"Let me"}"#.to_owned()),
        ("response.reasoning_text.delta", r#"{"type":"response.reasoning_text.delta","delta":" think."}"#.to_owned()),
        ("response.output_text.delta", r#"{"type":"response.output_text.delta","delta":"The answer"}"#.to_owned()),
        ("response.output_text.delta", r#"{"type":"response.output_text.delta","delta":" is 42."}"#.to_owned()),
        (
            "response.completed",
            r#"{"type":"response.completed","response":{"id":"r","status":"completed","usage":{"input_tokens":12,"output_tokens":9}}}"#.to_owned(),
        ),
    ]
    .iter()
    .map(|(name, data)| format!("event: {name}\ndata: {data}\n\n"))
    .collect()
}

fn anthropic_stream() -> String {
    [
        ("message_start", r#"{"type":"message_start","message":{"id":"m","usage":{"input_tokens":2,"cache_read_input_tokens":10,"output_tokens":1}}}"#),
        ("content_block_start", r#"{"type":"content_block_start","index":0,"content_block":{"type":"thinking","thinking":""}}"#),
        ("content_block_delta", r#"{"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"Let me"}}"#),
        ("content_block_delta", r#"{"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":" think."}}"#),
        ("content_block_delta", r#"{"type":"content_block_delta","index":0,"delta":{"type":"signature_delta","signature":"sig-123"}}"#),
        ("content_block_stop", r#"{"type":"content_block_stop","index":0}"#),
        ("ping", r#"{"type":"ping"}"#),
        ("content_block_start", r#"{"type":"content_block_start","index":1,"content_block":{"type":"text","text":""}}"#),
        ("content_block_delta", r#"{"type":"content_block_delta","index":1,"delta":{"type":"text_delta","text":"The answer"}}"#),
        ("content_block_delta", r#"{"type":"content_block_delta","index":1,"delta":{"type":"text_delta","text":" is 42."}}"#),
        ("content_block_stop", r#"{"type":"content_block_stop","index":1}"#),
        ("message_delta", r#"{"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":9}}"#),
        ("message_stop", r#"{"type":"message_stop"}"#),
    ]
    .iter()
    .map(|(name, data)| format!("event: {name}\ndata: {data}\n\n"))
    .collect()
}

fn ollama_stream() -> String {
    [
        r#"{"model":"m","message":{"role":"assistant","content":"","thinking":"Let me"},"done":false}"#,
        r#"{"model":"m","message":{"role":"assistant","content":"","thinking":" think."},"done":false}"#,
        r#"{"model":"m","message":{"role":"assistant","content":"The answer"},"done":false}"#,
        r#"{"model":"m","message":{"role":"assistant","content":" is 42."},"done":false}"#,
        r#"{"model":"m","message":{"role":"assistant","content":""},"done":true,"done_reason":"stop","prompt_eval_count":12,"eval_count":9}"#,
    ]
    .iter()
    .map(|l| format!("{l}\n"))
    .collect()
}

/// Every reasoning form: (name, api, reasoning model, transcript).
fn forms() -> Vec<(&'static str, Api, bool, String)> {
    vec![
        ("reasoning_content", Api::OpenaiCompletions, false, chat_stream("reasoning_content")),
        ("reasoning", Api::OpenaiCompletions, false, chat_stream("reasoning")),
        ("thinking", Api::OpenaiCompletions, false, chat_stream("thinking")),
        ("reasoning_details", Api::OpenaiCompletions, false, chat_stream("reasoning_details")),
        (
            "inline think",
            Api::OpenaiCompletions,
            false,
            chat_inline(&["<thi", "nk>Let me", " think.</th", "ink>\n\nThe answer", " is 42."]),
        ),
        (
            "opening tag missing",
            Api::OpenaiCompletions,
            true,
            chat_inline(&["Let me", " think.</think>", "The answer is 42."]),
        ),
        ("responses", Api::OpenaiResponses, false, responses_stream()),
        ("anthropic thinking", Api::AnthropicMessages, false, anthropic_stream()),
        ("ollama thinking", Api::Ollama, false, ollama_stream()),
    ]
}

/// Decodes `body` fed in the given chunks, as the client does.
fn decode_chunks(api: Api, reasoning: bool, chunks: &[&[u8]]) -> Vec<Event> {
    let mut decoder = Decoder::new(api, reasoning, 40);
    let mut events = Vec::new();
    if api == Api::Ollama {
        let mut nd = NdjsonDecoder::new();
        let mut items = Vec::new();
        for c in chunks {
            nd.feed(c, &mut items);
        }
        nd.finish(&mut items);
        for item in items {
            if let NdjsonItem::Line(l) = item {
                decoder.ndjson(&l, &mut events);
            }
        }
    } else {
        let mut sse = SseDecoder::new();
        let mut items = Vec::new();
        for c in chunks {
            sse.feed(c, &mut items);
        }
        sse.finish(&mut items);
        for item in items {
            if let SseItem::Event(e) = item {
                decoder.sse(&e, &mut events);
            }
        }
    }
    decoder.finish(&mut events);
    events
}

fn assert_answer(name: &str, o: &Outcome) {
    assert!(o.error.is_none(), "{name}: {:?}", o.error);
    assert_eq!(o.reasoning, REASONING, "{name}: reasoning");
    assert_eq!(o.text, ANSWER, "{name}: text (reasoning must never leak into it)");
    assert_eq!(o.finish, Some(FinishReason::Stop), "{name}");
    assert!(o.usage.is_some_and(|u| u.output_tokens > 0 && !u.estimated), "{name}: {:?}", o.usage);
    assert_eq!(o.after_terminal, 0, "{name}: nothing after the terminal event");
}

#[test]
fn every_reasoning_form_at_every_split_point() {
    for (name, api, reasoning, body) in forms() {
        let bytes = body.as_bytes();
        for at in 0..=bytes.len() {
            let o = fold(&decode_chunks(api, reasoning, &[&bytes[..at], &bytes[at..]]));
            assert_answer(&format!("{name} split at {at}"), &o);
        }
        let singles: Vec<&[u8]> = bytes.chunks(1).collect();
        assert_answer(
            &format!("{name} byte by byte"),
            &fold(&decode_chunks(api, reasoning, &singles)),
        );
    }
}

/// llama-server's prompt progress (the real capture): two reports, then the answer, at every
/// split; the typed fast path leaves progress chunks to the `Value` path without losing them.
/// See: #15
#[test]
fn llama_prompt_progress_is_read_at_every_split_point() {
    let capture = include_str!("../../../scripts/testbed/captures/chat-progress.sse").as_bytes();
    let reports = |o: &Outcome| -> Vec<(u64, u64, u64)> {
        o.progress.iter().map(|p| (p.processed, p.total, p.cached)).collect()
    };
    for at in 0..=capture.len() {
        let o =
            fold(&decode_chunks(Api::OpenaiCompletions, false, &[&capture[..at], &capture[at..]]));
        assert_eq!(reports(&o), [(469, 470, 469), (470, 470, 469)], "split at {at}");
        assert!(o.error.is_none() && !o.text.is_empty(), "split at {at}: {o:?}");
        assert_eq!(o.finish, Some(FinishReason::Length), "split at {at}");
    }
}

#[test]
fn anthropic_signature_and_cache_usage() {
    let o = fold(&decode_chunks(Api::AnthropicMessages, false, &[anthropic_stream().as_bytes()]));
    assert_eq!(o.signature, "sig-123");
    let u = o.usage.unwrap();
    assert_eq!((u.input_tokens, u.cache_read_tokens, u.output_tokens), (12, 10, 9));
}

async fn call(
    config: &Config,
    prompt: &Prompt,
) -> Result<Vec<Event>, hearth_upstream::UpstreamError> {
    let provider = &config.providers["fake"];
    let model = provider.model("m").unwrap();
    let target = Target { provider, model, params: None, served_max: None };
    let client = Client::new(provider)?;
    let stream = client.send(&target, prompt, &BTreeMap::<String, String>::new()).await?;
    Ok(stream.collect().await)
}

fn streaming_prompt() -> Prompt {
    Prompt { stream: true, ..Prompt::text(Some("Be brief."), "What is the answer?") }
}

#[tokio::test]
async fn every_reasoning_form_over_http_one_byte_per_chunk() {
    for (name, api, reasoning, body) in forms() {
        let upstream = FakeUpstream::start().await.unwrap();
        let reply = if api == Api::Ollama { Reply::ndjson(&[]) } else { Reply::sse_raw("") };
        let reply = Reply {
            steps: vec![hearth_testkit::upstream::Step::Bytes(body.into_bytes())],
            ..reply
        }
        .byte_by_byte();
        upstream.push(reply);
        let cfg = config(&upstream.origin(), api_name(api), reasoning, "");
        let events = call(&cfg, &streaming_prompt()).await.unwrap();
        assert_answer(name, &fold(&events));
        let req = &upstream.requests()[0];
        assert_eq!(req.method, "POST");
        let expected_path = match api {
            Api::OpenaiCompletions => "/v1/chat/completions",
            Api::OpenaiResponses => "/v1/responses",
            Api::AnthropicMessages => "/v1/messages",
            Api::Ollama => "/api/chat",
        };
        assert_eq!(req.path, expected_path, "{name}");
    }
}

fn api_name(api: Api) -> &'static str {
    api.as_str()
}

#[tokio::test]
async fn disconnect_mid_stream_is_an_error_not_a_short_success() {
    let upstream = FakeUpstream::start().await.unwrap();
    let body = chat_stream("reasoning_content");
    let cut = body.find("is 42").unwrap();
    upstream.push(Reply::sse_raw(&body).disconnect_after(cut));
    let cfg = config(&upstream.origin(), "openai-completions", false, "");
    let o = fold(&call(&cfg, &streaming_prompt()).await.unwrap());
    assert_eq!(o.text, "The answer");
    assert_eq!(o.error.unwrap().class, ErrorClass::ServerError);
    assert!(o.finish.is_none());
}

#[tokio::test]
async fn missing_done_after_finish_reason_is_fine() {
    let upstream = FakeUpstream::start().await.unwrap();
    let body = chat_stream("reasoning_content").replace("data: [DONE]\n\n", "");
    upstream.push(Reply::sse_raw(&body));
    let cfg = config(&upstream.origin(), "openai-completions", false, "");
    assert_answer("no [DONE]", &fold(&call(&cfg, &streaming_prompt()).await.unwrap()));
}

#[tokio::test]
async fn in_band_error_after_200_is_classified() {
    let upstream = FakeUpstream::start().await.unwrap();
    upstream.push(Reply::sse(&[
        &chunk(r#"{"content":"par"}"#),
        r#"{"error":{"object":"error","message":"The input (5000 tokens) is longer than the model's context length (4096 tokens).","code":400}}"#,
    ]));
    let cfg = config(&upstream.origin(), "openai-completions", false, "");
    let o = fold(&call(&cfg, &streaming_prompt()).await.unwrap());
    let error = o.error.unwrap();
    assert_eq!(error.class, ErrorClass::ContextOverflow);
    let overflow = error.overflow.unwrap();
    assert_eq!((overflow.prompt_tokens, overflow.context_size), (Some(5000), Some(4096)));
    // llama.cpp's `error:` SSE field.
    upstream.push(Reply::sse_raw(
        "error: {\"code\":503,\"message\":\"Loading model\",\"type\":\"unavailable_error\"}\n\n",
    ));
    let o = fold(&call(&cfg, &streaming_prompt()).await.unwrap());
    assert_eq!(o.error.unwrap().class, ErrorClass::Loading);
}

#[tokio::test]
async fn reasoning_without_answer_is_not_an_empty_success() {
    let upstream = FakeUpstream::start().await.unwrap();
    upstream.push(Reply::sse(&[
        &chunk(r#"{"reasoning_content":"hmm"}"#),
        r#"{"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}"#,
        "[DONE]",
    ]));
    let cfg = config(&upstream.origin(), "openai-completions", false, "");
    let o = fold(&call(&cfg, &streaming_prompt()).await.unwrap());
    let error = o.error.unwrap();
    assert_eq!(error.class, ErrorClass::EmptyResponse);
    assert!(error.message.contains("reasoning but no answer"));
}

#[tokio::test]
async fn http_errors_are_classified_before_any_byte() {
    let upstream = FakeUpstream::start().await.unwrap();
    let cfg = config(&upstream.origin(), "openai-completions", false, "");
    upstream.push(
        Reply::json(429, r#"{"error":{"message":"Rate limit reached","type":"rate_limit_error"}}"#)
            .header("retry-after", "7"),
    );
    let e = call(&cfg, &streaming_prompt()).await.unwrap_err();
    assert_eq!(
        (e.class, e.status, e.retry_after),
        (ErrorClass::RateLimit, Some(429), Some(Duration::from_secs(7)))
    );
    upstream.push(Reply::json(
        503,
        r#"{"error":{"code":503,"message":"Loading model","type":"unavailable_error"}}"#,
    ));
    assert_eq!(call(&cfg, &streaming_prompt()).await.unwrap_err().class, ErrorClass::Loading);
    upstream.push(Reply::json(401, r#"{"error":{"message":"invalid api key"}}"#));
    assert_eq!(call(&cfg, &streaming_prompt()).await.unwrap_err().class, ErrorClass::Auth);
    upstream.push(Reply::json(
        400,
        r#"{"error":{"code":400,"message":"request (815 tokens) exceeds the available context size (512 tokens), try increasing it","type":"exceed_context_size_error","n_prompt_tokens":815,"n_ctx":512}}"#,
    ));
    let e = call(&cfg, &streaming_prompt()).await.unwrap_err();
    assert_eq!(e.class, ErrorClass::ContextOverflow);
    assert_eq!(e.overflow.unwrap().prompt_tokens, Some(815));
}

#[tokio::test]
async fn refused_connection_is_a_connect_error() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let cfg = config(&format!("http://127.0.0.1:{port}"), "openai-completions", false, "");
    assert_eq!(call(&cfg, &streaming_prompt()).await.unwrap_err().class, ErrorClass::Connect);
}

#[tokio::test]
async fn a_stall_mid_stream_times_out() {
    let upstream = FakeUpstream::start().await.unwrap();
    upstream.push(Reply::sse(&[&chunk(r#"{"content":"par"}"#)]).end(End::Stall));
    let cfg = config(&upstream.origin(), "openai-completions", false, "timeoutSeconds: 0.5,");
    let o = fold(&call(&cfg, &streaming_prompt()).await.unwrap());
    assert_eq!(o.text, "par");
    assert_eq!(o.error.unwrap().class, ErrorClass::Timeout);
}

#[tokio::test]
async fn request_shaping_on_the_wire() {
    let upstream = FakeUpstream::start().await.unwrap();
    upstream.push(Reply::sse_raw(&chat_stream("reasoning_content")));
    let cfg = config(&upstream.origin(), "openai-completions", false, "");
    let mut prompt = streaming_prompt();
    prompt.max_tokens = Some(100_000);
    prompt.passthrough.insert("store".into(), serde_json::json!(true));
    prompt.passthrough.insert("service_tier".into(), serde_json::json!("auto"));
    prompt.passthrough.insert("cache_prompt".into(), serde_json::json!(true));
    call(&cfg, &prompt).await.unwrap();
    let req = &upstream.requests()[0];
    let body = req.json();
    assert_eq!(req.header("authorization"), Some("Bearer sk-local"));
    assert_eq!(body["model"], "m");
    assert_eq!(body["messages"][0], serde_json::json!({"role": "system", "content": "Be brief."}));
    assert_eq!(body["max_tokens"], 256, "capped at the model's maxTokens");
    assert_eq!(body["stream_options"]["include_usage"], true);
    assert!(body.get("store").is_none() && body.get("service_tier").is_none(), "{body}");
    assert_eq!(body["cache_prompt"], true, "unknown fields pass through");
    // Not streaming: no stream_options.
    upstream.push(Reply::json(200, r#"{"choices":[{"index":0,"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}]}"#));
    let events = call(&cfg, &Prompt::text(None, "hi")).await.unwrap();
    assert_eq!(fold(&events).text, "ok");
    assert!(fold(&events).usage.unwrap().estimated, "no usage reported: estimated, and marked so");
    let body = upstream.requests()[1].json();
    assert!(body.get("stream_options").is_none());
}

/// Tool calls written as text (issue 15): through the real client, one byte per chunk, every API
/// that reads them gets a structured call with a fresh id and a tool-calls finish; Anthropic's
/// Messages (always structured) and a model with `compat.textToolCalls: false` keep the text.
#[tokio::test]
async fn tool_calls_written_as_text_over_http() {
    let written = "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>";
    let quoted = serde_json::to_string(written).unwrap();
    let bodies = [
        (Api::OpenaiCompletions, chat_inline(&[written])),
        (
            Api::OpenaiResponses,
            format!(
                "event: response.output_text.delta\ndata: {{\"type\":\"response.output_text.delta\",\"delta\":{quoted}}}\n\n\
                 event: response.completed\ndata: {{\"type\":\"response.completed\",\"response\":{{\"status\":\"completed\"}}}}\n\n"
            ),
        ),
        (
            Api::Ollama,
            format!(
                "{{\"message\":{{\"role\":\"assistant\",\"content\":{quoted}}},\"done\":false}}\n\
                 {{\"message\":{{\"role\":\"assistant\",\"content\":\"\"}},\"done\":true,\"done_reason\":\"stop\"}}\n"
            ),
        ),
        (
            Api::AnthropicMessages,
            format!(
                "event: content_block_start\ndata: {{\"type\":\"content_block_start\",\"index\":0,\"content_block\":{{\"type\":\"text\",\"text\":\"\"}}}}\n\n\
                 event: content_block_delta\ndata: {{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{{\"type\":\"text_delta\",\"text\":{quoted}}}}}\n\n\
                 event: message_delta\ndata: {{\"type\":\"message_delta\",\"delta\":{{\"stop_reason\":\"end_turn\"}}}}\n\n\
                 event: message_stop\ndata: {{\"type\":\"message_stop\"}}\n\n"
            ),
        ),
    ];
    let prompt = Prompt {
        tools: vec![hearth_upstream::Tool {
            name: "get_weather".into(),
            description: None,
            parameters: serde_json::json!({"type": "object"}),
        }],
        ..streaming_prompt()
    };
    for (api, body) in bodies {
        for opted_out in [false, true] {
            let upstream = FakeUpstream::start().await.unwrap();
            let reply = if api == Api::Ollama { Reply::ndjson(&[]) } else { Reply::sse_raw("") };
            let reply = Reply {
                steps: vec![hearth_testkit::upstream::Step::Bytes(body.clone().into_bytes())],
                ..reply
            }
            .byte_by_byte();
            upstream.push(reply);
            let base = match api {
                Api::Ollama | Api::AnthropicMessages => upstream.origin(),
                _ => format!("{}/v1", upstream.origin()),
            };
            let compat = if opted_out { "compat: {textToolCalls: false}, " } else { "" };
            let text = format!(
                r#"{{models: {{mode: "replace", providers: {{fake: {{baseUrl: "{base}", apiKey: "sk-local", api: "{}",
                    models: [{{id: "m", {compat}maxTokens: 256}}]}}}}}}}}"#,
                api_name(api)
            );
            let loaded = load_str("test.json5", &text, &BTreeMap::<String, String>::new());
            assert!(!loaded.has_errors(), "{:?}", loaded.diagnostics);
            let o = fold(&call(&loaded.config.unwrap(), &prompt).await.unwrap());
            let label = format!("{api:?}, opted out: {opted_out}");
            assert!(o.error.is_none(), "{label}: {:?}", o.error);
            if opted_out || api == Api::AnthropicMessages {
                assert_eq!(o.text, written, "{label}");
                assert!(o.tools.is_empty(), "{label}");
                continue;
            }
            assert_eq!(o.text, "", "{label}");
            assert_eq!(o.finish, Some(FinishReason::ToolCalls), "{label}");
            let [(id, name, arguments)] = &o.tools[..] else { panic!("{label}: {:?}", o.tools) };
            assert!(id.as_deref().is_some_and(|id| id.starts_with("call_")), "{label}: {id:?}");
            assert_eq!(name.as_deref(), Some("get_weather"), "{label}");
            assert_eq!(arguments, r#"{"city": "Paris"}"#, "{label}");
        }
    }
}
