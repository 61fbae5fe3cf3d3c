//! Anthropic Messages (`/v1/messages`): Anthropic, and servers that speak it.

use std::borrow::Cow;

use hearth_config::Api;
use hearth_wire::anthropic::out::{
    Block, ImageSource, JsonSchemaFormat, Message, Native, OutputConfig, Request, Tool as WireTool,
    ToolChoice as WireToolChoice, ToolResultContent,
};
use serde_json::Value;

use super::Dialect;
use crate::classify;
use crate::decode::{Decoder, finish_reason, str_at};
use crate::encode::{JSON_OBJECT_INSTRUCTION, Target, text_with_replayed_reasoning, tools_allowed};
use crate::event::Event;
use crate::prompt::{OutputFormat, Part, Prompt, Role, ToolChoice};
use crate::reasoning::ReplayPolicy;
use crate::usage;

/// The API version every request names.
const VERSION: &str = "2023-06-01";

#[derive(Debug)]
pub(super) struct Anthropic;

impl Dialect for Anthropic {
    fn api(&self) -> Api {
        Api::AnthropicMessages
    }

    fn endpoint(&self, base: &str) -> String {
        // The Anthropic base URL omits /v1 (tolerated when present).
        if base.ends_with("/v1") {
            format!("{base}/messages")
        } else {
            format!("{base}/v1/messages")
        }
    }

    fn credential(&self, key: &str) -> (&'static str, String) {
        ("x-api-key", key.to_owned())
    }

    fn fixed_headers(&self) -> &'static [(&'static str, &'static str)] {
        &[("anthropic-version", VERSION)]
    }

    fn encode(&self, prompt: &Prompt, target: &Target<'_>) -> serde_json::Result<Vec<u8>> {
        if let Some(native) = &prompt.anthropic_native {
            // The caller spoke Anthropic: its request goes up as sent, to the configured model;
            // a configured thinking level joins a body that sets none.
            let planned = crate::thinking::plan_for(prompt, target);
            let thinking = planned.fields.iter().find(|(k, _)| *k == "thinking").map(|(_, v)| v);
            let body = Native {
                body: &native.body,
                model: &target.model.id,
                max_tokens: target.output_cap(prompt),
                stream: prompt.stream,
                thinking,
            };
            return serde_json::to_vec(&body);
        }
        let params = target.all_params();
        super::body(&request(prompt, target, &params), &params)
    }

    fn stream_typed(
        &self,
        decoder: &mut Decoder,
        _name: Option<&str>,
        data: &str,
        out: &mut Vec<Event>,
    ) -> bool {
        decoder.anthropic_fast(data, out)
    }

    fn stream_value(
        &self,
        decoder: &mut Decoder,
        _name: Option<&str>,
        value: &Value,
        out: &mut Vec<Event>,
    ) {
        decoder.anthropic_event(value, out);
    }

    fn body_value(&self, decoder: &mut Decoder, value: &Value, out: &mut Vec<Event>) {
        decoder.anthropic_body(value, out);
    }
}

/// An image part as an Anthropic image block: `data:` URLs as base64 sources.
fn image(url: &str) -> Block<'_> {
    if let Some(rest) = url.strip_prefix("data:")
        && let Some((media_type, data)) = rest.split_once(";base64,")
    {
        return Block::Image { source: ImageSource::Base64 { media_type, data } };
    }
    Block::Image { source: ImageSource::Url { url } }
}

fn block(p: &Part) -> Block<'_> {
    match p {
        Part::Text(t) => Block::Text { text: Cow::Borrowed(t) },
        Part::Image { url } => image(url),
    }
}

fn request<'a>(
    prompt: &'a Prompt,
    target: &Target<'a>,
    params: &serde_json::Map<String, Value>,
) -> Request<'a> {
    let policy = target.replay(params);
    let mut messages: Vec<Message<'a>> = Vec::with_capacity(prompt.messages.len());
    for m in &prompt.messages {
        let (role, blocks) = match m.role {
            Role::User => ("user", m.content.iter().map(block).collect::<Vec<_>>()),
            Role::Assistant => {
                let mut blocks = Vec::new();
                if let Some(r) = &m.reasoning
                    && let (ReplayPolicy::KeepSigned, Some(sig)) = (policy, &r.signature)
                {
                    blocks.push(Block::Thinking { thinking: &r.text, signature: sig });
                }
                let text = text_with_replayed_reasoning(m, policy);
                if !text.is_empty() {
                    blocks.push(Block::Text { text: Cow::Owned(text) });
                }
                for c in &m.tool_calls {
                    let input = serde_json::from_str(&c.arguments)
                        .unwrap_or_else(|_| Value::Object(serde_json::Map::new()));
                    blocks.push(Block::ToolUse { id: &c.id, name: &c.name, input });
                }
                ("assistant", blocks)
            }
            Role::Tool => {
                let content = if m.is_text_only() {
                    ToolResultContent::Text(Cow::Owned(m.text()))
                } else {
                    ToolResultContent::Blocks(m.content.iter().map(block).collect())
                };
                let tool_use_id = m.tool_call_id.as_deref().unwrap_or_default();
                ("user", vec![Block::ToolResult { tool_use_id, content }])
            }
        };
        // Anthropic wants alternating roles: merge consecutive same-role turns.
        match messages.last_mut() {
            Some(last) if last.role == role => last.content.extend(blocks),
            _ => messages.push(Message { role, content: blocks }),
        }
    }
    let tools = (tools_allowed(target) && !prompt.tools.is_empty()).then(|| {
        prompt
            .tools
            .iter()
            .map(|t| WireTool {
                name: &t.name,
                description: t.description.as_deref(),
                input_schema: &t.parameters,
            })
            .collect::<Vec<_>>()
    });
    let tool_choice = tools.as_ref().and(prompt.tool_choice.as_ref()).map(|choice| match choice {
        ToolChoice::Auto => WireToolChoice::Mode("auto"),
        ToolChoice::None => WireToolChoice::Mode("none"),
        ToolChoice::Required => WireToolChoice::Mode("any"),
        ToolChoice::Function(name) => WireToolChoice::Tool(name),
    });
    let mut system = prompt.system_text().map(Cow::Owned);
    let mut output_config = None;
    match &prompt.output_format {
        Some(OutputFormat::JsonSchema { schema, .. }) => {
            output_config =
                Some(OutputConfig { format: JsonSchemaFormat { kind: "json_schema", schema } });
        }
        // Anthropic has no schema-less JSON mode: the instruction goes into the system prompt.
        Some(OutputFormat::JsonObject) => {
            system = Some(Cow::Owned(match system {
                Some(s) => format!("{s}\n\n{JSON_OBJECT_INSTRUCTION}"),
                None => JSON_OBJECT_INSTRUCTION.to_owned(),
            }));
        }
        Some(OutputFormat::Text) | None => {}
    }
    let thinking = crate::thinking::plan(prompt, target, params);
    let sampling = !thinking.drop_sampling;
    Request {
        thinking: thinking.fields.into_iter().find(|(k, _)| *k == "thinking").map(|(_, v)| v),
        model: &target.model.id,
        system,
        messages,
        max_tokens: target.output_cap(prompt),
        temperature: prompt.temperature.filter(|_| sampling),
        top_p: prompt.top_p.filter(|p| sampling || *p >= 0.95),
        stop_sequences: (!prompt.stop.is_empty()).then_some(prompt.stop.as_slice()),
        tools,
        tool_choice,
        output_config,
        stream: prompt.stream,
    }
}

// ---- reading answers (the `Value` path; the typed path is in `decode/fast.rs`) ---------------

impl Decoder {
    pub(crate) fn anthropic_event(&mut self, value: &Value, out: &mut Vec<Event>) {
        match str_at(value, "type").unwrap_or_default() {
            "message_start" => {
                if let Some(u) = value.pointer("/message/usage") {
                    self.usage = Some(usage::from_anthropic(u, self.usage));
                }
            }
            "content_block_start" => {
                let index = value.get("index").and_then(Value::as_u64).unwrap_or(0);
                let block = value.get("content_block").unwrap_or(&Value::Null);
                let kind = str_at(block, "type").unwrap_or_default().to_owned();
                match kind.as_str() {
                    "tool_use" => {
                        let tool = self.tool_index.len() as u32;
                        self.tool_index.insert(index, tool);
                        self.tool(
                            tool,
                            str_at(block, "id").map(str::to_owned),
                            str_at(block, "name").map(str::to_owned),
                            String::new(),
                            out,
                        );
                    }
                    "text" => {
                        if let Some(t) = str_at(block, "text") {
                            self.anthropic_text(t, out);
                        }
                    }
                    "thinking" => {
                        if let Some(t) = str_at(block, "thinking") {
                            self.reasoning(t, out);
                        }
                    }
                    _ => {
                        self.native_blocks.insert(index, (block.clone(), String::new()));
                    }
                }
                self.block_kind.insert(index, kind);
            }
            "content_block_delta" => {
                let index = value.get("index").and_then(Value::as_u64).unwrap_or(0);
                let delta = value.get("delta").unwrap_or(&Value::Null);
                if let Some((_, input)) = self.native_blocks.get_mut(&index) {
                    if let Some(part) = str_at(delta, "partial_json") {
                        input.push_str(part);
                    }
                    return;
                }
                match str_at(delta, "type").unwrap_or_default() {
                    "text_delta" => {
                        if let Some(t) = str_at(delta, "text") {
                            self.anthropic_text(t, out);
                        }
                    }
                    "thinking_delta" => {
                        if let Some(t) = str_at(delta, "thinking") {
                            self.reasoning(t, out);
                        }
                    }
                    "signature_delta" => {
                        if let Some(s) = str_at(delta, "signature") {
                            out.push(Event::ReasoningSignature(s.to_owned()));
                        }
                    }
                    "input_json_delta" => {
                        let tool = self.tool_index.get(&index).copied().unwrap_or(0);
                        self.tool(
                            tool,
                            None,
                            None,
                            str_at(delta, "partial_json").unwrap_or_default().to_owned(),
                            out,
                        );
                    }
                    _ => {}
                }
            }
            "message_delta" => {
                if let Some(reason) = value.pointer("/delta/stop_reason").and_then(Value::as_str) {
                    self.finish = Some(finish_reason(reason));
                }
                if let Some(u) = value.get("usage") {
                    self.usage = Some(usage::from_anthropic(u, self.usage));
                }
            }
            "content_block_stop" => {
                let index = value.get("index").and_then(Value::as_u64).unwrap_or(0);
                if let Some((mut block, input)) = self.native_blocks.remove(&index) {
                    if !input.is_empty()
                        && let Ok(parsed) = serde_json::from_str::<Value>(&input)
                        && let Some(map) = block.as_object_mut()
                    {
                        map.insert("input".to_owned(), parsed);
                    }
                    out.push(Event::Native(Box::new(block)));
                }
            }
            "message_stop" => self.complete = true,
            "error" => {
                self.fail(classify::classify_stream_error(&value.to_string()), out);
            }
            _ => {}
        }
    }

    /// Anthropic text never carries inline think tags; it bypasses the splitter.
    pub(crate) fn anthropic_text(&mut self, text: &str, out: &mut Vec<Event>) {
        if text.is_empty() {
            return;
        }
        self.output_chars += text.len();
        if !text.trim().is_empty() {
            self.saw_text = true;
        }
        out.push(Event::TextDelta(text.to_owned()));
    }

    pub(crate) fn anthropic_body(&mut self, value: &Value, out: &mut Vec<Event>) {
        if str_at(value, "type") == Some("error") {
            self.fail(classify::classify_stream_error(&value.to_string()), out);
            return;
        }
        for block in value.get("content").and_then(Value::as_array).into_iter().flatten() {
            match str_at(block, "type") {
                Some("text") => self.anthropic_text(str_at(block, "text").unwrap_or_default(), out),
                Some("thinking") => {
                    self.reasoning(str_at(block, "thinking").unwrap_or_default(), out);
                    if let Some(sig) = str_at(block, "signature") {
                        out.push(Event::ReasoningSignature(sig.to_owned()));
                    }
                }
                Some("tool_use") => {
                    let index = self.tool_index.len() as u32;
                    self.tool_index.insert(u64::MAX - u64::from(index), index);
                    let input =
                        block.get("input").map(Value::to_string).unwrap_or_else(|| "{}".to_owned());
                    self.tool(
                        index,
                        str_at(block, "id").map(str::to_owned),
                        str_at(block, "name").map(str::to_owned),
                        input,
                        out,
                    );
                }
                _ => out.push(Event::Native(Box::new(block.clone()))),
            }
        }
        if let Some(u) = value.get("usage") {
            self.usage = Some(usage::from_anthropic(u, None));
        }
        if let Some(reason) = str_at(value, "stop_reason") {
            self.finish = Some(finish_reason(reason));
        }
    }
}

#[cfg(test)]
mod tests {
    use hearth_config::Api;
    use hearth_wire::sse::{SseDecoder, SseItem};
    use serde_json::json;

    use crate::decode::Decoder;
    use crate::event::Event;

    const WEB_SEARCH: &str =
        include_str!("../../../../scripts/testbed/captures/anthropic/web-search.sse");

    fn events(bytes: &[u8], split: usize) -> Vec<Event> {
        let mut sse = SseDecoder::new();
        let mut decoder = Decoder::new(Api::AnthropicMessages, false, 10);
        let mut out = Vec::new();
        let mut items = Vec::new();
        for chunk in bytes.chunks(split) {
            sse.feed(chunk, &mut items);
            for item in items.drain(..) {
                if let SseItem::Event(event) = item {
                    decoder.sse(&event, &mut out);
                }
            }
        }
        decoder.finish(&mut out);
        out
    }

    /// Server-tool blocks come out whole, in their place between the text, their streamed
    /// input joined, for any split of the stream.
    #[test]
    fn server_tool_blocks_come_out_whole_and_in_place() {
        for split in [1, 7, 64, WEB_SEARCH.len()] {
            let out = events(WEB_SEARCH.as_bytes(), split);
            let shape: Vec<String> = out
                .iter()
                .filter_map(|e| match e {
                    Event::TextDelta(t) => Some(format!("text:{t}")),
                    Event::Native(b) => Some(format!("native:{}", b["type"].as_str().unwrap())),
                    _ => None,
                })
                .collect();
            assert_eq!(
                shape,
                [
                    "text:I'll check the weather.",
                    "native:server_tool_use",
                    "native:web_search_tool_result",
                    "text:It is sunny, 22 °C."
                ],
                "split {split}"
            );
            let natives: Vec<&serde_json::Value> = out
                .iter()
                .filter_map(|e| if let Event::Native(b) = e { Some(&**b) } else { None })
                .collect();
            assert_eq!(
                *natives[0],
                json!({"type": "server_tool_use", "id": "srvtoolu_014hJH82Qum7Td6UV8gDXThB",
                       "name": "web_search", "input": {"query": "weather NYC today"}})
            );
            assert_eq!(natives[1]["content"][0]["url"], "https://www.weather.gov/okx/");
            assert!(!out.iter().any(|e| matches!(e, Event::Error(_))), "{out:?}");
        }
    }

    /// A whole body keeps them too, in order.
    #[test]
    fn server_tool_blocks_in_a_whole_body() {
        let body = json!({"type": "message", "content": [
            {"type": "text", "text": "Looking."},
            {"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search", "input": {"query": "q"}},
            {"type": "web_search_tool_result", "tool_use_id": "srvtoolu_1", "content": []},
            {"type": "text", "text": "Done."}
        ], "stop_reason": "end_turn", "usage": {"input_tokens": 5, "output_tokens": 2}});
        let mut decoder = Decoder::new(Api::AnthropicMessages, false, 10).for_whole_body();
        let mut out = Vec::new();
        decoder.body(&body, &mut out);
        decoder.finish(&mut out);
        let kinds: Vec<String> = out
            .iter()
            .filter_map(|e| match e {
                Event::TextDelta(t) => Some(t.clone()),
                Event::Native(b) => Some(b["type"].as_str().unwrap().to_owned()),
                _ => None,
            })
            .collect();
        assert_eq!(kinds, ["Looking.", "server_tool_use", "web_search_tool_result", "Done."]);
    }
}
