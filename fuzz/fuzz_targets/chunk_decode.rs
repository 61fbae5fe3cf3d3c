//! Feeds arbitrary text to the upstream chunk decoder as a stream of SSE events (or NDJSON
//! lines), once on the typed path and once on the `serde_json::Value` path, and checks that
//! both give the same events, chunk by chunk and at the end, and that neither panics.
//!
//! The first byte picks the API, whether the model is a reasoning model, and whether the
//! Responses/Anthropic events carry an `event:` name; the rest, split at newlines, is the
//! stream's chunks.

#![no_main]

use hearth_config::Api;
use hearth_upstream::Event;
use hearth_upstream::decode::Decoder;
use hearth_wire::sse::SseEvent;
use libfuzzer_sys::fuzz_target;

const APIS: [Api; 4] =
    [Api::OpenaiCompletions, Api::OpenaiResponses, Api::AnthropicMessages, Api::Ollama];

/// The `event:` name a Responses or Anthropic server would put on this chunk.
fn event_name(api: Api, data: &str) -> Option<String> {
    if api != Api::OpenaiResponses && api != Api::AnthropicMessages {
        return None;
    }
    let value: serde_json::Value = serde_json::from_str(data).ok()?;
    value.get("type")?.as_str().map(str::to_owned)
}

fuzz_target!(|input: &[u8]| {
    let Some((&selector, body)) = input.split_first() else { return };
    let api = APIS[usize::from(selector % 4)];
    let reasoning = selector & 4 != 0;
    let named = selector & 8 != 0;
    let ndjson = api == Api::Ollama && selector & 16 != 0;
    let text = String::from_utf8_lossy(body);

    let mut typed = Decoder::new(api, reasoning, 0).with_typed_path(true);
    let mut plain = Decoder::new(api, reasoning, 0).with_typed_path(false);
    for chunk in text.split('\n') {
        let mut a: Vec<Event> = Vec::new();
        let mut b: Vec<Event> = Vec::new();
        if ndjson {
            typed.ndjson(chunk, &mut a);
            plain.ndjson(chunk, &mut b);
        } else {
            let event = SseEvent {
                event: if named { event_name(api, chunk) } else { None },
                data: chunk.to_owned(),
                id: None,
                retry: None,
            };
            typed.sse(&event, &mut a);
            plain.sse(&event, &mut b);
        }
        assert_eq!(a, b, "the typed and Value paths differ on chunk {chunk:?} ({api:?})");
    }
    let mut a: Vec<Event> = Vec::new();
    let mut b: Vec<Event> = Vec::new();
    typed.finish(&mut a);
    plain.finish(&mut b);
    assert_eq!(a, b, "the typed and Value paths differ at the end ({api:?})");
});
