//! Realistic upstream transcripts, decoded whole and at every 2-way split point.
//!
//! The transcripts are written by hand after the wire captures in
//! `reference/local-servers.md` (§4); ids and timestamps are made up.

use hearth_wire::sse::{SseDecoder, SseItem};
use serde_json::{Value, json};

/// llama.cpp `llama-server` chat stream with reasoning, `timings`, a keep-alive comment, a
/// separate usage chunk and `[DONE]`, with CRLF line ends as some proxies rewrite them.
pub(crate) const LLAMA_CPP_CHAT: &str = concat!(
    "data: {\"choices\":[{\"finish_reason\":null,\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":null}}],\"created\":1758108431,\"id\":\"chatcmpl-Ca3q\",\"model\":\"qwen3-8b\",\"system_fingerprint\":\"b6497-cd08fc3e\",\"object\":\"chat.completion.chunk\"}\r\n\r\n",
    ": ping\r\n\r\n",
    "data: {\"choices\":[{\"finish_reason\":null,\"index\":0,\"delta\":{\"reasoning_content\":\"Okay, the user\"}}],\"created\":1758108431,\"id\":\"chatcmpl-Ca3q\",\"model\":\"qwen3-8b\",\"object\":\"chat.completion.chunk\"}\r\n\r\n",
    "data: {\"choices\":[{\"finish_reason\":null,\"index\":0,\"delta\":{\"content\":\"Héllo 世界\"}}],\"created\":1758108431,\"id\":\"chatcmpl-Ca3q\",\"model\":\"qwen3-8b\",\"object\":\"chat.completion.chunk\"}\r\n\r\n",
    "data: {\"choices\":[{\"finish_reason\":\"stop\",\"index\":0,\"delta\":{}}],\"created\":1758108432,\"id\":\"chatcmpl-Ca3q\",\"model\":\"qwen3-8b\",\"object\":\"chat.completion.chunk\",\"timings\":{\"cache_n\":0,\"prompt_n\":75,\"prompt_ms\":180.0,\"predicted_n\":31,\"predicted_ms\":875.4,\"predicted_per_second\":35.4}}\r\n\r\n",
    "data: {\"choices\":[],\"created\":1758108432,\"id\":\"chatcmpl-Ca3q\",\"model\":\"qwen3-8b\",\"object\":\"chat.completion.chunk\",\"usage\":{\"completion_tokens\":31,\"prompt_tokens\":75,\"total_tokens\":106}}\r\n\r\n",
    "data: [DONE]\r\n\r\n",
);

/// llama.cpp failing after the headers were sent: the non-standard `error:` field, no `[DONE]`.
pub(crate) const LLAMA_CPP_ERROR: &str = concat!(
    "data: {\"choices\":[{\"finish_reason\":null,\"index\":0,\"delta\":{\"content\":\"Hi\"}}],\"object\":\"chat.completion.chunk\"}\n\n",
    "error: {\"code\":400,\"message\":\"the request exceeds the available context size. try increasing the context size or enable context shift\",\"type\":\"invalid_request_error\"}\n\n",
);

/// OpenAI Responses stream: `event:` lines naming each payload's `type`, no `[DONE]`.
pub(crate) const OPENAI_RESPONSES: &str = concat!(
    "event: response.created\n",
    "data: {\"type\":\"response.created\",\"sequence_number\":0,\"response\":{\"id\":\"resp_1\",\"object\":\"response\",\"status\":\"in_progress\",\"output\":[],\"usage\":null}}\n\n",
    "event: response.in_progress\n",
    "data: {\"type\":\"response.in_progress\",\"sequence_number\":1,\"response\":{\"id\":\"resp_1\",\"object\":\"response\",\"status\":\"in_progress\",\"output\":[],\"usage\":null}}\n\n",
    "event: response.output_item.added\n",
    "data: {\"type\":\"response.output_item.added\",\"sequence_number\":2,\"output_index\":0,\"item\":{\"id\":\"msg_1\",\"type\":\"message\",\"status\":\"in_progress\",\"role\":\"assistant\",\"content\":[]}}\n\n",
    "event: response.content_part.added\n",
    "data: {\"type\":\"response.content_part.added\",\"sequence_number\":3,\"item_id\":\"msg_1\",\"output_index\":0,\"content_index\":0,\"part\":{\"type\":\"output_text\",\"text\":\"\",\"annotations\":[]}}\n\n",
    "event: response.output_text.delta\n",
    "data: {\"type\":\"response.output_text.delta\",\"sequence_number\":4,\"item_id\":\"msg_1\",\"output_index\":0,\"content_index\":0,\"delta\":\"Hel\",\"logprobs\":[]}\n\n",
    "event: response.output_text.delta\n",
    "data: {\"type\":\"response.output_text.delta\",\"sequence_number\":5,\"item_id\":\"msg_1\",\"output_index\":0,\"content_index\":0,\"delta\":\"lo!\",\"logprobs\":[]}\n\n",
    "event: response.output_text.done\n",
    "data: {\"type\":\"response.output_text.done\",\"sequence_number\":6,\"item_id\":\"msg_1\",\"output_index\":0,\"content_index\":0,\"text\":\"Hello!\",\"logprobs\":[]}\n\n",
    "event: response.content_part.done\n",
    "data: {\"type\":\"response.content_part.done\",\"sequence_number\":7,\"item_id\":\"msg_1\",\"output_index\":0,\"content_index\":0,\"part\":{\"type\":\"output_text\",\"text\":\"Hello!\",\"annotations\":[]}}\n\n",
    "event: response.output_item.done\n",
    "data: {\"type\":\"response.output_item.done\",\"sequence_number\":8,\"output_index\":0,\"item\":{\"id\":\"msg_1\",\"type\":\"message\",\"status\":\"completed\",\"role\":\"assistant\",\"content\":[{\"type\":\"output_text\",\"text\":\"Hello!\",\"annotations\":[]}]}}\n\n",
    "event: response.completed\n",
    "data: {\"type\":\"response.completed\",\"sequence_number\":9,\"response\":{\"id\":\"resp_1\",\"object\":\"response\",\"status\":\"completed\",\"output\":[{\"id\":\"msg_1\",\"type\":\"message\",\"status\":\"completed\",\"role\":\"assistant\",\"content\":[{\"type\":\"output_text\",\"text\":\"Hello!\",\"annotations\":[]}]}],\"usage\":{\"input_tokens\":12,\"input_tokens_details\":{\"cached_tokens\":0},\"output_tokens\":3,\"output_tokens_details\":{\"reasoning_tokens\":0},\"total_tokens\":15}}}\n\n",
);

/// Anthropic Messages stream with thinking, a signature, `event: ping` and a tool call.
pub(crate) const ANTHROPIC_MESSAGES: &str = concat!(
    "event: message_start\n",
    "data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_01\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-sonnet-4-5\",\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":472,\"cache_creation_input_tokens\":0,\"cache_read_input_tokens\":1024,\"output_tokens\":2}}}\n\n",
    "event: content_block_start\n",
    "data: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"thinking\",\"thinking\":\"\",\"signature\":\"\"}}\n\n",
    "event: content_block_delta\n",
    "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"thinking_delta\",\"thinking\":\"The user wants …\"}}\n\n",
    "event: content_block_delta\n",
    "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"signature_delta\",\"signature\":\"EqQBCkYI\"}}\n\n",
    "event: content_block_stop\n",
    "data: {\"type\":\"content_block_stop\",\"index\":0}\n\n",
    "event: ping\n",
    "data: {\"type\":\"ping\"}\n\n",
    "event: content_block_start\n",
    "data: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n",
    "event: content_block_delta\n",
    "data: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"text_delta\",\"text\":\"Checking the weather.\"}}\n\n",
    "event: content_block_stop\n",
    "data: {\"type\":\"content_block_stop\",\"index\":1}\n\n",
    "event: content_block_start\n",
    "data: {\"type\":\"content_block_start\",\"index\":2,\"content_block\":{\"type\":\"tool_use\",\"id\":\"toolu_01\",\"name\":\"get_weather\",\"input\":{}}}\n\n",
    "event: content_block_delta\n",
    "data: {\"type\":\"content_block_delta\",\"index\":2,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"city\\\": \\\"Par\"}}\n\n",
    "event: content_block_delta\n",
    "data: {\"type\":\"content_block_delta\",\"index\":2,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"is\\\"}\"}}\n\n",
    "event: content_block_stop\n",
    "data: {\"type\":\"content_block_stop\",\"index\":2}\n\n",
    "event: message_delta\n",
    "data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":89}}\n\n",
    "event: message_stop\n",
    "data: {\"type\":\"message_stop\"}\n\n",
);

fn decode(chunks: &[&[u8]]) -> Vec<SseItem> {
    let mut decoder = SseDecoder::new();
    let mut items = Vec::new();
    for chunk in chunks {
        decoder.feed(chunk, &mut items);
    }
    decoder.finish(&mut items);
    items
}

/// Decodes `transcript` whole and at every split point, and renders the events as JSON for a
/// snapshot: the event name, and the data parsed as JSON where it is JSON.
#[track_caller]
fn decode_everywhere(transcript: &str) -> Value {
    let bytes = transcript.as_bytes();
    let whole = decode(&[bytes]);
    for at in 0..=bytes.len() {
        let (head, tail) = bytes.split_at(at);
        assert_eq!(decode(&[head, tail]), whole, "split at {at}");
    }
    let rendered: Vec<Value> = whole
        .iter()
        .map(|item| match item {
            SseItem::Event(event) => json!({
                "event": event.event,
                "data": serde_json::from_str::<Value>(&event.data)
                    .unwrap_or_else(|_| Value::String(event.data.clone())),
            }),
            other => json!({ "unexpected": format!("{other:?}") }),
        })
        .collect();
    Value::Array(rendered)
}

#[test]
fn llama_cpp_chat_stream() {
    insta::assert_json_snapshot!(decode_everywhere(LLAMA_CPP_CHAT));
}

#[test]
fn llama_cpp_error_field_after_headers() {
    insta::assert_json_snapshot!(decode_everywhere(LLAMA_CPP_ERROR));
}

#[test]
fn openai_responses_stream() {
    let events = decode_everywhere(OPENAI_RESPONSES);
    // Every `event:` name matches the payload's `type`.
    for event in events.as_array().into_iter().flatten() {
        assert_eq!(event["event"], event["data"]["type"]);
    }
    insta::assert_json_snapshot!(events);
}

#[test]
fn anthropic_messages_stream() {
    insta::assert_json_snapshot!(decode_everywhere(ANTHROPIC_MESSAGES));
}
