//! Ollama's native chat API (`/api/chat`, NDJSON streams).

use std::borrow::Cow;

use hearth_config::Api;
use hearth_wire::Fields;
use hearth_wire::ollama::out::{FunctionCall, Message, Request, ToolCall};
use hearth_wire::openai_chat::out::{Function, Tool as WireTool};
use serde_json::Value;

use super::{Dialect, Framing};
use crate::classify;
use crate::decode::{Decoder, finish_reason, str_at};
use crate::encode::{Target, text_with_replayed_reasoning, tools_allowed};
use crate::event::Event;
use crate::event::FinishReason;
use crate::prompt::{Message as PromptMessage, OutputFormat, Part, Prompt, Role};
use crate::usage;

/// Ollama `options` keys (model runtime settings).
const OPTIONS: &[&str] = &[
    "num_ctx",
    "temperature",
    "top_p",
    "top_k",
    "min_p",
    "seed",
    "num_predict",
    "repeat_penalty",
    "presence_penalty",
    "frequency_penalty",
    "stop",
    "num_keep",
    "typical_p",
    "mirostat",
];

#[derive(Debug)]
pub(super) struct Ollama;

impl Dialect for Ollama {
    fn api(&self) -> Api {
        Api::Ollama
    }

    fn endpoint(&self, base: &str) -> String {
        format!("{}/api/chat", base.trim_end_matches("/v1"))
    }

    fn framing(&self) -> Framing {
        Framing::Ndjson
    }

    fn encode(&self, prompt: &Prompt, target: &Target<'_>) -> serde_json::Result<Vec<u8>> {
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
        decoder.ollama_fast(data, out)
    }

    fn stream_value(
        &self,
        decoder: &mut Decoder,
        _name: Option<&str>,
        value: &Value,
        out: &mut Vec<Event>,
    ) {
        decoder.ollama_chunk(value, out);
    }

    fn body_value(&self, decoder: &mut Decoder, value: &Value, out: &mut Vec<Event>) {
        decoder.ollama_chunk(value, out);
    }
}

/// The base64 data of a message's `data:` images (Ollama takes no URLs).
fn images(m: &PromptMessage) -> Vec<&str> {
    m.content
        .iter()
        .filter_map(|p| match p {
            Part::Image { url } => url.split_once("base64,").map(|(_, data)| data),
            Part::Text(_) => None,
        })
        .collect()
}

fn request<'a>(
    prompt: &'a Prompt,
    target: &Target<'a>,
    params: &'a serde_json::Map<String, Value>,
) -> Request<'a> {
    let policy = target.replay(params);
    let mut messages = Vec::with_capacity(prompt.messages.len() + 1);
    if let Some(system) = prompt.system_text() {
        messages.push(Message::text("system", system));
    }
    for m in &prompt.messages {
        messages.push(match m.role {
            Role::User => Message { images: images(m), ..Message::text("user", m.text()) },
            Role::Assistant => Message {
                tool_calls: m
                    .tool_calls
                    .iter()
                    .map(|c| ToolCall {
                        function: FunctionCall {
                            name: &c.name,
                            arguments: serde_json::from_str(&c.arguments)
                                .unwrap_or_else(|_| Value::Object(serde_json::Map::new())),
                        },
                    })
                    .collect(),
                ..Message::text("assistant", text_with_replayed_reasoning(m, policy))
            },
            // Images a tool returned go with its result.
            Role::Tool => Message {
                images: images(m),
                tool_name: m.name.as_deref(),
                ..Message::text("tool", m.text())
            },
        });
    }
    let mut options = Fields::new();
    for (k, v) in params {
        if OPTIONS.contains(&k.as_str()) {
            options.insert(k.as_str(), Cow::Borrowed(v));
        }
    }
    // Never a truthy `think` for a model not marked reasoning. A thinking level in force
    // (`thinking.rs`) is sent as `think`, unless `params.think` is configured and the caller
    // asked for none.
    let planned = crate::thinking::plan(prompt, target, params)
        .fields
        .into_iter()
        .find(|(k, _)| *k == "think")
        .map(|(_, v)| Cow::Owned(v));
    let think = planned.or_else(|| {
        params
            .get("think")
            .filter(|think| {
                let truthy = !matches!(think, Value::Bool(false) | Value::Null);
                !truthy || target.model.reasoning
            })
            .map(Cow::Borrowed)
    });
    if let Some(t) = prompt.temperature {
        options.insert("temperature", Cow::Owned(Value::from(t)));
    }
    if let Some(p) = prompt.top_p {
        options.insert("top_p", Cow::Owned(Value::from(p)));
    }
    if !prompt.stop.is_empty() {
        options.insert("stop", Cow::Owned(Value::from(prompt.stop.clone())));
    }
    options.insert("num_predict", Cow::Owned(Value::from(target.output_cap(prompt))));
    // The window the entry says, not Ollama's default (4096, or VRAM-tiered), which cannot
    // hold an agent's system prompt (docs/local-models.md).
    if !options.contains("num_ctx")
        && let Some(n) = crate::encode::num_ctx(target.model, params, target.served_max)
    {
        options.insert("num_ctx", Cow::Owned(Value::from(n.value)));
    }
    let tools = (tools_allowed(target) && !prompt.tools.is_empty()).then(|| {
        prompt
            .tools
            .iter()
            .map(|t| WireTool {
                kind: "function",
                function: Function {
                    name: &t.name,
                    description: t.description.as_deref(),
                    parameters: &t.parameters,
                },
            })
            .collect::<Vec<_>>()
    });
    let format = match &prompt.output_format {
        Some(OutputFormat::JsonObject) => Some(Cow::Owned(Value::from("json"))),
        Some(OutputFormat::JsonSchema { schema, .. }) => Some(Cow::Borrowed(schema)),
        Some(OutputFormat::Text) | None => None,
    };
    Request {
        model: &target.model.id,
        messages,
        stream: prompt.stream,
        keep_alive: params.get("keep_alive").or_else(|| params.get("keepAlive")),
        think,
        options,
        tools,
        format,
    }
}

// ---- reading answers (the `Value` path; the typed path is in `decode/fast.rs`) ---------------

impl Decoder {
    pub(crate) fn ollama_chunk(&mut self, value: &Value, out: &mut Vec<Event>) {
        if let Some(error) = value.get("error").filter(|e| !e.is_null()) {
            let body = serde_json::json!({"error": error}).to_string();
            self.fail(classify::classify_stream_error(&body), out);
            return;
        }
        if let Some(message) = value.get("message") {
            if let Some(t) = str_at(message, "thinking") {
                self.reasoning(t, out);
            }
            if let Some(t) = str_at(message, "content") {
                self.text(t, out);
            }
            for call in message.get("tool_calls").and_then(Value::as_array).into_iter().flatten() {
                let index = self.tool_index.len() as u32;
                self.tool_index.insert(u64::MAX - u64::from(index), index);
                let function = call.get("function");
                let args = function.and_then(|f| f.get("arguments")).map(|a| match a {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                });
                self.tool(
                    index,
                    str_at(call, "id").map(str::to_owned).or_else(|| Some(format!("call_{index}"))),
                    function.and_then(|f| str_at(f, "name")).map(str::to_owned),
                    args.unwrap_or_default(),
                    out,
                );
            }
        }
        if value.get("done").and_then(Value::as_bool) == Some(true) {
            if let Some(u) = usage::from_ollama(value) {
                self.usage = Some(u);
            }
            let reason = str_at(value, "done_reason").unwrap_or("stop");
            self.finish = Some(if self.saw_tool && reason == "stop" {
                FinishReason::ToolCalls
            } else {
                finish_reason(reason)
            });
            self.complete = true;
        }
    }
}
