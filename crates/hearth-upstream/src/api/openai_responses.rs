//! OpenAI Responses (`/responses`): OpenAI, vLLM, LM Studio, Ollama and llama.cpp.

use std::borrow::Cow;

use hearth_config::Api;
use hearth_wire::Fields;
use hearth_wire::openai_responses::out::{
    Item, Output, Part as WirePart, Request, TextConfig, Tool as WireTool,
    ToolChoice as WireToolChoice,
};
use serde_json::Value;

use super::Dialect;
use crate::classify;
use crate::decode::{Decoder, str_at};
use crate::encode::{
    INCLUDE_OUTPUT_TEXT_LOGPROBS, OPENAI_ONLY, Target, text_with_replayed_reasoning, tools_allowed,
};
use crate::event::Event;
use crate::event::FinishReason;
use crate::prompt::{OutputFormat, Part, Prompt, Role, ToolChoice};
use crate::usage;

#[derive(Debug)]
pub(super) struct OpenAiResponses;

impl Dialect for OpenAiResponses {
    fn api(&self) -> Api {
        Api::OpenaiResponses
    }

    fn endpoint(&self, base: &str) -> String {
        format!("{base}/responses")
    }

    fn has_logprobs(&self) -> bool {
        true
    }

    fn encode(&self, prompt: &Prompt, target: &Target<'_>) -> serde_json::Result<Vec<u8>> {
        let params = target.all_params();
        let request = request(prompt, target, &params);
        super::body(&request, &params)
    }

    fn stream_typed(
        &self,
        decoder: &mut Decoder,
        name: Option<&str>,
        data: &str,
        out: &mut Vec<Event>,
    ) -> bool {
        decoder.responses_fast(name, data, out)
    }

    fn stream_value(
        &self,
        decoder: &mut Decoder,
        name: Option<&str>,
        value: &Value,
        out: &mut Vec<Event>,
    ) {
        decoder.responses_event(name, value, out);
    }

    fn body_value(&self, decoder: &mut Decoder, value: &Value, out: &mut Vec<Event>) {
        decoder.responses_body(value, out);
    }
}

fn part(p: &Part) -> WirePart<'_> {
    match p {
        Part::Text(text) => WirePart::InputText { text },
        Part::Image { url } => WirePart::InputImage { image_url: url },
    }
}

fn request<'a>(
    prompt: &'a Prompt,
    target: &Target<'a>,
    params: &'a serde_json::Map<String, Value>,
) -> Request<'a> {
    let policy = target.replay(params);
    let mut input = Vec::with_capacity(prompt.messages.len());
    for m in &prompt.messages {
        match m.role {
            Role::User => {
                input.push(Item::Message {
                    role: "user",
                    content: m.content.iter().map(part).collect(),
                });
            }
            Role::Assistant => {
                let text = text_with_replayed_reasoning(m, policy);
                if !text.is_empty() {
                    input.push(Item::Message {
                        role: "assistant",
                        content: vec![WirePart::OutputText { text: Cow::Owned(text) }],
                    });
                }
                for c in &m.tool_calls {
                    input.push(Item::FunctionCall {
                        call_id: &c.id,
                        name: &c.name,
                        arguments: &c.arguments,
                    });
                }
            }
            Role::Tool => {
                // Images a tool returned go with its output, as input parts.
                let output = if m.is_text_only() {
                    Output::Text(Cow::Owned(m.text()))
                } else {
                    Output::Parts(m.content.iter().map(part).collect())
                };
                input.push(Item::FunctionCallOutput {
                    call_id: m.tool_call_id.as_deref().unwrap_or_default(),
                    output,
                });
            }
        }
    }
    let wire = crate::encode::wire_params(params);
    let param = |key: &str| wire.iter().find(|(k, _)| *k == key).map(|(_, v)| Cow::Borrowed(*v));
    let tools = (tools_allowed(target) && !prompt.tools.is_empty()).then(|| {
        prompt
            .tools
            .iter()
            .map(|t| WireTool {
                kind: "function",
                name: &t.name,
                description: t.description.as_deref(),
                parameters: &t.parameters,
            })
            .collect::<Vec<_>>()
    });
    let tool_choice = tools.as_ref().and(prompt.tool_choice.as_ref()).map(|choice| match choice {
        ToolChoice::Auto => WireToolChoice::Mode("auto"),
        ToolChoice::None => WireToolChoice::Mode("none"),
        ToolChoice::Required => WireToolChoice::Mode("required"),
        ToolChoice::Function(name) => WireToolChoice::Function(name),
    });
    // Chat's `response_format` (from `params` or a chat caller) is `text.format` here.
    let text = match &prompt.output_format {
        Some(format) => Some(TextConfig { format: format.to_responses() }),
        None => param("response_format")
            .or_else(|| prompt.passthrough.get("response_format").map(Cow::Borrowed))
            .and_then(|rf| OutputFormat::from_chat(&rf).ok())
            .map(|format| TextConfig { format: format.to_responses() }),
    };
    let mut request = Request {
        model: &target.model.id,
        instructions: prompt.system_text().map(Cow::Owned),
        input,
        max_output_tokens: target.output_cap(prompt),
        temperature: param("temperature")
            .or_else(|| prompt.temperature.map(|t| Cow::Owned(Value::from(t)))),
        top_p: param("top_p").or_else(|| prompt.top_p.map(|p| Cow::Owned(Value::from(p)))),
        tools,
        tool_choice,
        text,
        stream: prompt.stream,
        extra: Fields::new(),
        top_logprobs: None,
        include: None,
    };
    let mut extra = Fields::new();
    for (k, v) in wire {
        if !request.writes(k) {
            extra.insert(k, Cow::Borrowed(v));
        }
    }
    for (k, v) in &prompt.passthrough {
        if !request.writes(k) {
            extra.insert_new(k.as_str(), Cow::Borrowed(v));
        }
    }
    // Chat's `logprobs: true` has no Responses field: the count is `top_logprobs`, and the
    // logprobs themselves come only when `include` names them. `response_format` is `text`.
    extra.remove("logprobs");
    extra.remove("response_format");
    if let Some(top) = prompt.logprobs {
        extra.remove("top_logprobs");
        let mut include: Vec<Cow<'a, Value>> = match extra.remove("include") {
            Some(Cow::Borrowed(Value::Array(items))) => items.iter().map(Cow::Borrowed).collect(),
            Some(Cow::Owned(Value::Array(items))) => items.into_iter().map(Cow::Owned).collect(),
            _ => Vec::new(),
        };
        if !include.iter().any(|i| i.as_str() == Some(INCLUDE_OUTPUT_TEXT_LOGPROBS)) {
            include.push(Cow::Owned(Value::from(INCLUDE_OUTPUT_TEXT_LOGPROBS)));
        }
        request.top_logprobs = Some(top);
        request.include = Some(include);
    }
    if !target.is_native_openai() {
        extra.retain(|k| !OPENAI_ONLY.contains(&k));
    }
    // The thinking level in force as `reasoning.effort`, beside what else `reasoning` holds.
    for (k, v) in crate::thinking::plan(prompt, target, params).fields {
        let merged = match (extra.remove(k).map(Cow::into_owned), v) {
            (Some(Value::Object(mut old)), Value::Object(new)) => {
                old.extend(new);
                Value::Object(old)
            }
            (_, new) => new,
        };
        extra.insert(k, Cow::Owned(merged));
    }
    if let Some(ttl) = crate::encode::lmstudio_ttl(target.provider, params) {
        extra.insert("ttl", Cow::Borrowed(ttl));
    }
    request.extra = extra;
    request
}

// ---- reading answers (the `Value` path; the typed path is in `decode/fast.rs`) ---------------

impl Decoder {
    pub(crate) fn responses_event(
        &mut self,
        name: Option<&str>,
        value: &Value,
        out: &mut Vec<Event>,
    ) {
        let kind = str_at(value, "type").or(name).unwrap_or_default().to_owned();
        match kind.as_str() {
            "response.output_text.delta" | "response.refusal.delta" => {
                self.logprobs(value.get("logprobs"), out);
                if let Some(d) = str_at(value, "delta") {
                    self.text(d, out);
                }
            }
            "response.reasoning_text.delta"
            | "response.reasoning_summary_text.delta"
            | "response.reasoning.delta" => {
                if let Some(d) = str_at(value, "delta") {
                    self.reasoning(d, out);
                }
            }
            "response.output_item.added" => {
                let item = value.get("item");
                if item.and_then(|i| str_at(i, "type")) == Some("function_call") {
                    let next = self.tool_index.len() as u32;
                    let output_index = value
                        .get("output_index")
                        .and_then(Value::as_u64)
                        .unwrap_or(u64::from(next));
                    let index = *self.tool_index.entry(output_index).or_insert(next);
                    let item = item.unwrap_or(&Value::Null);
                    let args = str_at(item, "arguments").unwrap_or_default().to_owned();
                    self.tool(
                        index,
                        str_at(item, "call_id").or_else(|| str_at(item, "id")).map(str::to_owned),
                        str_at(item, "name").map(str::to_owned),
                        args,
                        out,
                    );
                }
            }
            "response.function_call_arguments.delta" => {
                let output_index = value.get("output_index").and_then(Value::as_u64);
                let index = match output_index.and_then(|i| self.tool_index.get(&i)) {
                    Some(i) => *i,
                    None => self.tool_index.len().saturating_sub(1) as u32,
                };
                if let Some(d) = str_at(value, "delta") {
                    self.tool(index, None, None, d.to_owned(), out);
                }
            }
            "response.output_item.done" => {
                // Encrypted reasoning content is kept for replay.
                if let Some(item) = value.get("item")
                    && str_at(item, "type") == Some("reasoning")
                    && let Some(enc) = str_at(item, "encrypted_content")
                {
                    out.push(Event::ReasoningSignature(enc.to_owned()));
                }
            }
            "response.completed" | "response.incomplete" => {
                if let Some(response) = value.get("response") {
                    if let Some(u) = response.get("usage").and_then(usage::from_responses) {
                        self.usage = Some(u);
                    }
                    // (`text_in`, not `saw_text`: text may be held back still.)
                    if !self.text_in && !self.saw_tool {
                        // Some servers send the whole output only in the final event.
                        self.responses_output(response, out);
                    }
                }
                let incomplete = kind == "response.incomplete"
                    || value.pointer("/response/status").and_then(Value::as_str)
                        == Some("incomplete");
                self.finish = Some(if incomplete {
                    FinishReason::Length
                } else if self.saw_tool {
                    FinishReason::ToolCalls
                } else {
                    FinishReason::Stop
                });
                self.complete = true;
            }
            "response.failed" | "error" => {
                let detail = value
                    .pointer("/response/error")
                    .or_else(|| value.get("error"))
                    .unwrap_or(value);
                let text = if detail.get("error").is_some() {
                    detail.to_string()
                } else {
                    serde_json::json!({"error": detail}).to_string()
                };
                self.fail(classify::classify_stream_error(&text), out);
            }
            _ => {}
        }
    }

    pub(crate) fn responses_output(&mut self, response: &Value, out: &mut Vec<Event>) {
        for item in response.get("output").and_then(Value::as_array).into_iter().flatten() {
            match str_at(item, "type") {
                Some("message") => {
                    for part in item.get("content").and_then(Value::as_array).into_iter().flatten()
                    {
                        self.logprobs(part.get("logprobs"), out);
                        if let Some(t) = str_at(part, "text") {
                            self.text(t, out);
                        }
                    }
                }
                Some("reasoning") => {
                    for key in ["content", "summary"] {
                        for part in item.get(key).and_then(Value::as_array).into_iter().flatten() {
                            if let Some(t) = str_at(part, "text") {
                                self.reasoning(t, out);
                            }
                        }
                    }
                    if let Some(enc) = str_at(item, "encrypted_content") {
                        out.push(Event::ReasoningSignature(enc.to_owned()));
                    }
                }
                Some("function_call") => {
                    let index = self.tool_index.len() as u32;
                    self.tool_index.insert(u64::MAX - u64::from(index), index);
                    self.tool(
                        index,
                        str_at(item, "call_id").or_else(|| str_at(item, "id")).map(str::to_owned),
                        str_at(item, "name").map(str::to_owned),
                        str_at(item, "arguments").unwrap_or_default().to_owned(),
                        out,
                    );
                }
                _ => {}
            }
        }
    }

    pub(crate) fn responses_body(&mut self, value: &Value, out: &mut Vec<Event>) {
        if value.get("error").is_some_and(|e| !e.is_null()) {
            self.fail(classify::classify_stream_error(&value.to_string()), out);
            return;
        }
        self.responses_output(value, out);
        if let Some(u) = value.get("usage").and_then(usage::from_responses) {
            self.usage = Some(u);
        }
        self.finish = Some(match str_at(value, "status") {
            Some("incomplete") => FinishReason::Length,
            _ if self.saw_tool => FinishReason::ToolCalls,
            _ => FinishReason::Stop,
        });
    }
}
