//! Hand-written samples after `reference/local-servers.md` deserialize into the typed wire
//! structs and serialize back to the same JSON, unknown fields included.

use hearth_wire::ndjson::{NdjsonDecoder, NdjsonItem};
use hearth_wire::sse::{SseDecoder, SseItem};
use hearth_wire::{anthropic, ollama, openai_chat, openai_responses};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::transcripts::{ANTHROPIC_MESSAGES, LLAMA_CPP_CHAT, OPENAI_RESPONSES};

/// Removes `null` members: a known optional field that was `null` serializes back absent.
fn without_nulls(value: Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .filter(|(_, value)| !value.is_null())
                .map(|(key, value)| (key, without_nulls(value)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(without_nulls).collect()),
        other => other,
    }
}

/// Parses `json` as `T`, and checks that serializing it gives the same JSON back.
#[track_caller]
#[expect(clippy::unwrap_used, reason = "test helper: a sample that does not parse fails the test")]
fn round_trip<T: DeserializeOwned + Serialize>(json: &str) -> T {
    let typed: T = serde_json::from_str(json).unwrap();
    let original: Value = serde_json::from_str(json).unwrap();
    let back = serde_json::to_value(&typed).unwrap();
    assert_eq!(without_nulls(back), without_nulls(original), "round trip of {json}");
    typed
}

fn sse_data(transcript: &str) -> Vec<String> {
    let mut decoder = SseDecoder::new();
    let mut items = Vec::new();
    decoder.feed(transcript.as_bytes(), &mut items);
    decoder.finish(&mut items);
    items
        .into_iter()
        .filter_map(|item| match item {
            SseItem::Event(event) if !event.is_done() => Some(event.data),
            _ => None,
        })
        .collect()
}

#[test]
fn chat_request_keeps_vendor_fields() {
    let request: openai_chat::ChatRequest = round_trip(
        r#"{"model":"lmstudio/minimax-m2.1","stream":true,"stream_options":{"include_usage":true},
        "messages":[
          {"role":"system","content":"Be brief."},
          {"role":"user","content":[{"type":"text","text":"Weather?"},{"type":"image_url","image_url":{"url":"data:image/png;base64,AA"}}]},
          {"role":"assistant","content":null,"reasoning_content":"Need a tool.","tool_calls":[{"id":"call_abc","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}}]},
          {"role":"tool","tool_call_id":"call_abc","content":"{\"temp\":21}","cache_control":{"type":"ephemeral"}}
        ],
        "tools":[{"type":"function","function":{"name":"get_weather","description":"Current weather","parameters":{"type":"object","properties":{"city":{"type":"string"}}},"x-vendor":1}}],
        "top_k":20,"min_p":0.05,"chat_template_kwargs":{"enable_thinking":false},"max_tokens":512}"#,
    );
    assert_eq!(request.extra["top_k"], json!(20));
    assert_eq!(request.extra["chat_template_kwargs"], json!({"enable_thinking": false}));
    assert_eq!(request.messages[2].reasoning_text(), Some("Need a tool."));
    assert_eq!(request.messages[3].extra["cache_control"], json!({"type": "ephemeral"}));
    let tools = request.tools.unwrap_or_default();
    assert_eq!(tools[0].function.extra["x-vendor"], json!(1));
}

#[test]
fn vllm_completion_with_reasoning_and_empty_tool_calls() {
    let completion: openai_chat::ChatCompletion = round_trip(
        r#"{"id":"chatcmpl-1","object":"chat.completion","created":1760000000,"model":"Qwen/Qwen3-32B",
        "choices":[{"index":0,"message":{"role":"assistant","content":"The answer is 42.","reasoning":"User asks …","tool_calls":[]},"finish_reason":"stop","stop_reason":null}],
        "usage":{"prompt_tokens":19,"completion_tokens":10,"total_tokens":29,"prompt_tokens_details":{"cached_tokens":0,"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":4}},
        "prompt_logprobs":null,"kv_transfer_params":null}"#,
    );
    let choice = &completion.choices[0];
    assert_eq!(choice.message.reasoning_text(), Some("User asks …"));
    assert_eq!(choice.message.tool_calls.as_deref(), Some(&[][..]));
    let usage = completion.usage.unwrap_or_default();
    assert_eq!(usage.completion_tokens_details.and_then(|d| d.reasoning_tokens), Some(4));
    assert_eq!(
        usage.prompt_tokens_details.map(|d| d.extra["audio_tokens"].clone()),
        Some(json!(0))
    );
}

#[test]
fn openai_chunk_keeps_obfuscation() {
    let chunk: openai_chat::ChatCompletionChunk = round_trip(
        r#"{"id":"chatcmpl-A1","object":"chat.completion.chunk","created":1755000000,"model":"gpt-4.1-2025-04-14","system_fingerprint":"fp_x","choices":[{"index":0,"delta":{"role":"assistant","content":"","refusal":null},"logprobs":null,"finish_reason":null}],"usage":null,"obfuscation":"k3Z"}"#,
    );
    assert_eq!(chunk.extra["obfuscation"], json!("k3Z"));
    assert_eq!(chunk.object, openai_chat::OBJECT_CHUNK);
}

#[test]
fn llama_cpp_stream_chunks_parse_with_timings() {
    let chunks: Vec<openai_chat::ChatCompletionChunk> =
        sse_data(LLAMA_CPP_CHAT).iter().map(|data| round_trip(data)).collect();
    assert_eq!(chunks.len(), 5);
    assert_eq!(chunks[1].choices[0].delta.reasoning_text(), Some("Okay, the user"));
    assert_eq!(chunks[2].choices[0].delta.content.as_deref(), Some("Héllo 世界"));
    let timings = chunks[3].timings.clone().unwrap_or_default();
    assert_eq!(
        (timings.prompt_n, timings.predicted_n, timings.cache_n),
        (Some(75), Some(31), Some(0))
    );
    assert_eq!(timings.predicted_per_second, Some(35.4));
    assert!(chunks[4].choices.is_empty());
    assert_eq!(chunks[4].usage.as_ref().map(|usage| usage.total_tokens), Some(106));
}

#[test]
fn streamed_tool_call_fragments() {
    let chunk: openai_chat::ChatCompletionChunk = round_trip(
        r#"{"id":"chatcmpl-9f","object":"chat.completion.chunk","created":1760000000,"model":"qwen3","choices":[{"index":0,"delta":{"tool_calls":[{"id":"chatcmpl-tool-5b2e","type":"function","index":0,"function":{"name":"get_weather"}}]},"logprobs":null,"finish_reason":null}]}"#,
    );
    let calls = chunk.choices[0].delta.tool_calls.clone().unwrap_or_default();
    assert_eq!(calls[0].function.as_ref().and_then(|f| f.name.as_deref()), Some("get_weather"));
    let chunk: openai_chat::ChatCompletionChunk = round_trip(
        r#"{"id":"chatcmpl-9f","object":"chat.completion.chunk","created":1760000000,"model":"qwen3","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"city\": \""}}]},"logprobs":null,"finish_reason":null}]}"#,
    );
    let calls = chunk.choices[0].delta.tool_calls.clone().unwrap_or_default();
    assert_eq!(
        calls[0].function.as_ref().and_then(|f| f.arguments.as_deref()),
        Some("{\"city\": \"")
    );
}

#[test]
fn responses_request_keeps_unknown_fields() {
    let request: openai_responses::ResponsesRequest = round_trip(
        r#"{"model":"gpt-5","input":[{"role":"user","content":"hi"},{"type":"function_call_output","call_id":"call_1","output":"{\"temp\":21}"}],
        "reasoning":{"effort":"low","summary":"auto"},"include":["reasoning.encrypted_content"],"store":false,"stream":true,
        "tools":[{"type":"function","name":"get_weather","parameters":{"type":"object"},"strict":true}],"text":{"verbosity":"low"}}"#,
    );
    assert_eq!(request.extra["text"], json!({"verbosity": "low"}));
    assert!(
        matches!(request.input, Some(openai_responses::ResponseInput::Items(ref items)) if items.len() == 2)
    );
}

#[test]
fn responses_object_with_reasoning_function_call_and_message() {
    let response: openai_responses::Response = round_trip(
        r#"{"id":"resp_67cc","object":"response","created_at":1741290958,"status":"completed","model":"gpt-5",
        "output":[
          {"type":"reasoning","id":"rs_1","summary":[{"type":"summary_text","text":"Looked up weather."}],"encrypted_content":"gAAAAB"},
          {"type":"function_call","id":"fc_1","call_id":"call_1","name":"get_weather","arguments":"{\"city\":\"Paris\"}","status":"completed"},
          {"type":"message","id":"msg_1","status":"completed","role":"assistant","content":[{"type":"output_text","text":"It is 21°C.","annotations":[]}]},
          {"type":"web_search_call","id":"ws_1","status":"completed","action":{"type":"search","query":"paris weather"}}],
        "incomplete_details":null,"error":null,"previous_response_id":null,"store":true,
        "usage":{"input_tokens":328,"input_tokens_details":{"cached_tokens":256},"output_tokens":52,"output_tokens_details":{"reasoning_tokens":20},"total_tokens":380}}"#,
    );
    use openai_responses::OutputItem;
    assert!(
        matches!(&response.output[0], OutputItem::Reasoning(item) if item.summary[0].text.as_deref() == Some("Looked up weather."))
    );
    assert!(
        matches!(&response.output[1], OutputItem::FunctionCall(item) if item.call_id == "call_1")
    );
    assert!(
        matches!(&response.output[2], OutputItem::Message(item) if item.content[0].extra["annotations"] == json!([]))
    );
    assert!(
        matches!(&response.output[3], OutputItem::Other(item) if item["type"] == "web_search_call")
    );
    assert_eq!(response.extra["store"], json!(true));
}

#[test]
fn responses_stream_events_parse_and_round_trip() {
    use openai_responses::StreamEvent;
    let events: Vec<StreamEvent> =
        sse_data(OPENAI_RESPONSES).iter().map(|data| round_trip(data)).collect();
    assert!(
        matches!(&events[0], StreamEvent::Created(event) if event.response.status == "in_progress")
    );
    let text: String = events
        .iter()
        .filter_map(|event| match event {
            StreamEvent::OutputTextDelta(delta) => Some(delta.delta.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(text, "Hello!");
    assert!(events.iter().all(|event| !matches!(event, StreamEvent::Other(_))));
    let last = events.last().cloned();
    assert!(
        matches!(last, Some(StreamEvent::Completed(ref event)) if event.response.usage.as_ref().map(|u| u.total_tokens) == Some(15))
    );
    assert!(last.is_some_and(|event| event.is_terminal()));
}

#[test]
fn responses_failure_error_and_unknown_events() {
    use openai_responses::StreamEvent;
    let failed: StreamEvent = round_trip(
        r#"{"type":"response.failed","sequence_number":7,"response":{"id":"resp_1","object":"response","status":"failed","output":[],"error":{"code":"context_length_exceeded","message":"Your input exceeds the context window of this model."}}}"#,
    );
    assert!(
        matches!(&failed, StreamEvent::Failed(event) if event.response.error.as_ref().map(|e| e.code.clone()) == Some(Some(json!("context_length_exceeded"))))
    );
    let error: StreamEvent = round_trip(
        r#"{"type":"error","code":"server_error","message":"boom","param":null,"sequence_number":3}"#,
    );
    assert!(matches!(&error, StreamEvent::Error(event) if event.message == "boom"));
    let summary: StreamEvent = round_trip(
        r#"{"type":"response.reasoning_summary_text.delta","sequence_number":4,"item_id":"rs_1","output_index":0,"summary_index":0,"delta":"The user asks"}"#,
    );
    assert!(
        matches!(&summary, StreamEvent::ReasoningSummaryTextDelta(event) if event.summary_index == Some(0))
    );
    let unknown: StreamEvent = round_trip(
        r#"{"type":"response.web_search_call.searching","sequence_number":5,"item_id":"ws_1","output_index":1}"#,
    );
    assert!(matches!(&unknown, StreamEvent::Other(event) if event["item_id"] == "ws_1"));
}

#[test]
fn anthropic_request_with_thinking_tools_and_signed_blocks() {
    let request: anthropic::MessagesRequest = round_trip(
        r#"{"model":"claude-sonnet-4-5","max_tokens":16000,"stream":true,
        "system":[{"type":"text","text":"Be brief.","cache_control":{"type":"ephemeral"}}],
        "thinking":{"type":"enabled","budget_tokens":10000},
        "tools":[{"name":"get_weather","description":"Current weather","input_schema":{"type":"object","properties":{"city":{"type":"string"}}}}],
        "tool_choice":{"type":"auto","disable_parallel_tool_use":true},
        "messages":[
          {"role":"user","content":"Weather in Paris?"},
          {"role":"assistant","content":[
            {"type":"thinking","thinking":"Let me analyze …","signature":"EqQBCkYIBxgCKkB"},
            {"type":"redacted_thinking","data":"EmwKAhgBEgy3va3pzix"},
            {"type":"tool_use","id":"toolu_01","name":"get_weather","input":{"city":"Paris"}}]},
          {"role":"user","content":[
            {"type":"tool_result","tool_use_id":"toolu_01","content":"21°C","is_error":false},
            {"type":"image","source":{"type":"base64","media_type":"image/png","data":"AA"}}]}],
        "metadata":{"user_id":"u1"}}"#,
    );
    use anthropic::{Content, ContentBlock};
    assert_eq!(request.extra["metadata"], json!({"user_id": "u1"}));
    let Content::Blocks(blocks) = &request.messages[1].content else {
        unreachable!("assistant content is blocks");
    };
    assert!(
        matches!(&blocks[0], ContentBlock::Thinking(block) if block.signature.as_deref() == Some("EqQBCkYIBxgCKkB"))
    );
    assert!(matches!(&blocks[1], ContentBlock::RedactedThinking(_)));
    assert!(
        matches!(&blocks[2], ContentBlock::ToolUse(block) if block.input == json!({"city": "Paris"}))
    );
    let Content::Blocks(blocks) = &request.messages[2].content else {
        unreachable!("user content is blocks");
    };
    assert!(matches!(&blocks[1], ContentBlock::Other(block) if block["type"] == "image"));
}

#[test]
fn anthropic_response_parses() {
    let response: anthropic::MessagesResponse = round_trip(
        r#"{"id":"msg_01","type":"message","role":"assistant","model":"claude-sonnet-4-5",
        "content":[{"type":"thinking","thinking":"…","signature":"EqQB"},{"type":"text","text":"Checking."},
                   {"type":"tool_use","id":"toolu_01","name":"get_weather","input":{"city":"Paris"}}],
        "stop_reason":"tool_use","stop_sequence":null,
        "usage":{"input_tokens":472,"cache_creation_input_tokens":0,"cache_read_input_tokens":1024,"output_tokens":89,"service_tier":"standard"}}"#,
    );
    let usage = response.usage.unwrap_or_default();
    assert_eq!(usage.cache_read_input_tokens, Some(1024));
    assert_eq!(usage.extra["service_tier"], json!("standard"));
}

#[test]
fn anthropic_stream_events_parse_and_round_trip() {
    use anthropic::{BlockDelta, ContentBlock, StreamEvent};
    let events: Vec<StreamEvent> =
        sse_data(ANTHROPIC_MESSAGES).iter().map(|data| round_trip(data)).collect();
    assert_eq!(events.len(), 15);
    assert!(events.iter().all(|event| !matches!(event, StreamEvent::Other(_))));
    assert!(
        matches!(&events[1], StreamEvent::ContentBlockStart(start) if matches!(start.content_block, ContentBlock::Thinking(_)))
    );
    assert!(
        matches!(&events[3], StreamEvent::ContentBlockDelta(delta) if matches!(&delta.delta, BlockDelta::Signature { signature, .. } if signature == "EqQBCkYI"))
    );
    assert!(matches!(&events[5], StreamEvent::Ping(_)));
    let json: String = events
        .iter()
        .filter_map(|event| match event {
            StreamEvent::ContentBlockDelta(delta) => match &delta.delta {
                BlockDelta::InputJson { partial_json, .. } => Some(partial_json.as_str()),
                _ => None,
            },
            _ => None,
        })
        .collect();
    assert_eq!(serde_json::from_str::<Value>(&json).unwrap(), json!({"city": "Paris"}));
    assert!(events.last().is_some_and(StreamEvent::is_terminal));
}

#[test]
fn anthropic_error_and_unknown_events() {
    use anthropic::StreamEvent;
    let error: StreamEvent = round_trip(
        r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"},"request_id":"req_1"}"#,
    );
    assert!(
        matches!(&error, StreamEvent::Error(event) if event.error.kind == "overloaded_error" && event.extra["request_id"] == "req_1")
    );
    let unknown: StreamEvent = round_trip(r#"{"type":"content_block_future","index":0,"x":[1,2]}"#);
    assert!(matches!(&unknown, StreamEvent::Other(event) if event["x"] == json!([1, 2])));
    let delta: StreamEvent = round_trip(
        r#"{"type":"content_block_delta","index":0,"delta":{"type":"citations_delta","citation":{"cited_text":"x"}}}"#,
    );
    assert!(
        matches!(&delta, StreamEvent::ContentBlockDelta(event) if matches!(&event.delta, anthropic::BlockDelta::Other(_)))
    );
}

#[test]
fn ollama_request_and_ndjson_stream() {
    let request: ollama::ChatRequest = round_trip(
        r#"{"model":"qwen3:8b","messages":[{"role":"user","content":"Weather in Tokyo?"}],"think":"high","stream":true,
        "options":{"num_ctx":32768,"temperature":0.2},"keep_alive":"5m","truncate":false}"#,
    );
    assert_eq!(request.think, Some(ollama::Think::Level("high".to_owned())));
    assert_eq!(request.extra["truncate"], json!(false));

    let body = concat!(
        r#"{"model":"qwen3:8b","created_at":"2026-08-21T19:22:44Z","message":{"role":"assistant","content":"","thinking":"The user asks"},"done":false}"#,
        "\n",
        r#"{"model":"qwen3:8b","created_at":"2026-08-21T19:22:45Z","message":{"role":"assistant","content":"","tool_calls":[{"id":"call_x1","function":{"index":0,"name":"get_weather","arguments":{"city":"Tokyo"}}}]},"done":false}"#,
        "\n",
        r#"{"model":"qwen3:8b","created_at":"2026-08-21T19:22:45Z","message":{"role":"assistant","content":""},"done":true,"done_reason":"stop","total_duration":182242375,"load_duration":41295167,"prompt_eval_count":169,"prompt_eval_duration":24573166,"eval_count":15,"eval_duration":115959084}"#,
        "\n",
        r#"{"error":"server busy, please try again.  maximum pending requests exceeded"}"#,
    );
    let mut decoder = NdjsonDecoder::new();
    let mut items = Vec::new();
    decoder.feed(body.as_bytes(), &mut items);
    decoder.finish(&mut items);
    let chunks: Vec<ollama::ChatChunk> = items
        .iter()
        .filter_map(|item| match item {
            // The error line parses, but serializes back with the defaults of a chunk.
            NdjsonItem::Line(line) if line.starts_with(r#"{"error""#) => {
                serde_json::from_str(line).ok()
            }
            NdjsonItem::Line(line) => Some(round_trip(line)),
            NdjsonItem::Error(_) => None,
        })
        .collect();
    assert_eq!(chunks.len(), 4);
    assert_eq!(
        chunks[0].message.as_ref().and_then(|m| m.thinking.as_deref()),
        Some("The user asks")
    );
    let calls = chunks[1].message.as_ref().and_then(|m| m.tool_calls.clone()).unwrap_or_default();
    assert_eq!(calls[0].function.arguments, json!({"city": "Tokyo"}));
    assert!(chunks[2].done);
    assert_eq!(chunks[2].eval_count, Some(15));
    assert!(chunks[3].error.as_deref().is_some_and(|error| error.starts_with("server busy")));
}
