//! OpenAI Chat Completions (`/chat/completions`): OpenAI, llama.cpp, vLLM, SGLang, LM Studio,
//! Ollama's `/v1`, mlx, LiteLLM, OpenRouter.

use std::borrow::Cow;

use hearth_config::Api;
use hearth_wire::Fields;
use hearth_wire::openai_chat::out::{
    Cap, Content, Function, FunctionCall, ImageUrl, Message, Part as WirePart, Request,
    StreamOptions, Tool as WireTool, ToolCall as WireToolCall, ToolChoice as WireToolChoice,
};
use serde_json::Value;

use super::Dialect;
use crate::classify;
use crate::decode::{Decoder, finish_reason, str_at};
use crate::encode::{OPENAI_ONLY, Target, text_with_replayed_reasoning, tools_allowed};
use crate::event::Event;
use crate::prompt::{Message as PromptMessage, OutputFormat, Part, Prompt, Role, ToolChoice};
use crate::usage;

#[derive(Debug)]
pub(super) struct OpenAiChat;

impl Dialect for OpenAiChat {
    fn api(&self) -> Api {
        Api::OpenaiCompletions
    }

    fn endpoint(&self, base: &str) -> String {
        format!("{base}/chat/completions")
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
        _name: Option<&str>,
        data: &str,
        out: &mut Vec<Event>,
    ) -> bool {
        decoder.chat_fast(data, out)
    }

    fn stream_value(
        &self,
        decoder: &mut Decoder,
        _name: Option<&str>,
        value: &Value,
        out: &mut Vec<Event>,
    ) {
        decoder.chat_chunk(value, out);
    }

    fn body_value(&self, decoder: &mut Decoder, value: &Value, out: &mut Vec<Event>) {
        decoder.chat_body(value, out);
    }

    fn body_typed(&self, decoder: &mut Decoder, data: &str, out: &mut Vec<Event>) -> bool {
        decoder.chat_body_fast(data, out)
    }
}

fn content(message: &PromptMessage, string_only: bool) -> Content<'_> {
    if string_only || message.is_text_only() {
        return Content::Text(Cow::Owned(message.text()));
    }
    Content::Parts(message.content.iter().map(part).collect())
}

fn part(p: &Part) -> WirePart<'_> {
    match p {
        Part::Text(t) => WirePart::Text { text: Cow::Borrowed(t) },
        Part::Image { url } => WirePart::ImageUrl { image_url: ImageUrl { url } },
    }
}

fn request<'a>(
    prompt: &'a Prompt,
    target: &Target<'a>,
    params: &'a serde_json::Map<String, Value>,
) -> Request<'a> {
    let compat = &target.model.compat;
    let native = target.is_native_openai();
    let strict_keys = compat.strict_message_keys == Some(true);
    let string_only = compat.requires_string_content == Some(true);
    let tools_on = tools_allowed(target);
    let policy = target.replay(params);
    let mut messages = Vec::with_capacity(prompt.messages.len() + 1);
    let system_role =
        if native && compat.supports_developer_role == Some(true) { "developer" } else { "system" };
    // One system message: many chat templates reject a second one or one that is not first.
    if let Some(system) = prompt.system_text() {
        messages.push(Message::text(system_role, system));
    }
    // Images a tool returned: a chat `tool` message carries text only, so they follow the
    // run of tool messages as the next user message's first parts (docs/upstream.md).
    let mut tool_images: Vec<WirePart<'a>> = Vec::new();
    for m in &prompt.messages {
        if m.role != Role::Tool && !tool_images.is_empty() {
            let mut parts = std::mem::take(&mut tool_images);
            if m.role == Role::User {
                match content(m, false) {
                    Content::Parts(own) => parts.extend(own),
                    Content::Text(text) => parts.push(WirePart::Text { text }),
                }
                messages
                    .push(Message { content: Content::Parts(parts), ..Message::text("user", "") });
                continue;
            }
            messages.push(Message { content: Content::Parts(parts), ..Message::text("user", "") });
        }
        let message = match m.role {
            Role::User => Message { content: content(m, string_only), ..Message::text("user", "") },
            Role::Assistant => {
                let mut msg = Message::text("assistant", text_with_replayed_reasoning(m, policy));
                if !strict_keys {
                    if let Some(r) = &m.reasoning
                        && compat.requires_reasoning_content_on_assistant_messages == Some(true)
                    {
                        msg.reasoning_content = Some(&r.text);
                    }
                    if !m.tool_calls.is_empty() && tools_on {
                        msg.tool_calls = Some(
                            m.tool_calls
                                .iter()
                                .map(|c| WireToolCall {
                                    id: &c.id,
                                    kind: "function",
                                    function: FunctionCall {
                                        name: &c.name,
                                        arguments: &c.arguments,
                                    },
                                })
                                .collect(),
                        );
                    }
                }
                msg
            }
            Role::Tool if strict_keys || !tools_on => {
                Message::text("user", format!("Tool result:\n{}", m.text()))
            }
            Role::Tool => {
                if !string_only && !m.is_text_only() {
                    let id = m.tool_call_id.as_deref().unwrap_or_default();
                    tool_images.push(WirePart::Text {
                        text: Cow::Owned(format!("[images returned by tool call {id}]")),
                    });
                    tool_images.extend(
                        m.content.iter().filter(|p| matches!(p, Part::Image { .. })).map(part),
                    );
                }
                let mut msg = Message::text("tool", m.text());
                msg.tool_call_id = Some(m.tool_call_id.as_deref().unwrap_or_default());
                if compat.requires_tool_result_name == Some(true) {
                    msg.name = m.name.as_deref();
                }
                msg
            }
        };
        messages.push(message);
    }
    if !tool_images.is_empty() {
        messages
            .push(Message { content: Content::Parts(tool_images), ..Message::text("user", "") });
    }
    let cap_field = match compat.max_tokens_field.as_deref() {
        Some(field) => field,
        None if native => "max_completion_tokens",
        None => "max_tokens",
    };
    let wire = crate::encode::wire_params(params);
    let param = |key: &str| wire.iter().find(|(k, _)| *k == key).map(|(_, v)| Cow::Borrowed(*v));
    let tools = (tools_on && !prompt.tools.is_empty()).then(|| {
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
    let tool_choice = tools.as_ref().and(prompt.tool_choice.as_ref()).map(|choice| match choice {
        ToolChoice::Auto => WireToolChoice::Mode("auto"),
        ToolChoice::None => WireToolChoice::Mode("none"),
        ToolChoice::Required => WireToolChoice::Mode("required"),
        ToolChoice::Function(name) => WireToolChoice::Function(name),
    });
    let mut request = Request {
        model: &target.model.id,
        messages,
        cap: Cap { field: cap_field, value: target.output_cap(prompt) },
        // Configured `params` win over the caller's sampling values.
        temperature: param("temperature")
            .or_else(|| prompt.temperature.map(|t| Cow::Owned(Value::from(t)))),
        top_p: param("top_p").or_else(|| prompt.top_p.map(|p| Cow::Owned(Value::from(p)))),
        stop: param("stop").or_else(|| {
            (!prompt.stop.is_empty()).then(|| Cow::Owned(Value::from(prompt.stop.clone())))
        }),
        tools,
        tool_choice,
        response_format: param("response_format").or_else(|| {
            prompt
                .output_format
                .as_ref()
                .filter(|f| **f != OutputFormat::Text)
                .map(|f| Cow::Owned(f.to_chat()))
        }),
        logprobs: prompt.logprobs.map(|_| true),
        top_logprobs: prompt.logprobs.filter(|top| *top > 0),
        stream: prompt.stream,
        stream_options: (prompt.stream && compat.supports_usage_in_streaming != Some(false))
            .then_some(StreamOptions { include_usage: true }),
        extra: Fields::new(),
    };
    let mut extra = Fields::new();
    for (k, v) in wire {
        if !request.writes(k) && k != cap_field {
            extra.insert(k, Cow::Borrowed(v));
        }
    }
    for (k, v) in &prompt.passthrough {
        if !request.writes(k) && k != cap_field {
            extra.insert_new(k.as_str(), Cow::Borrowed(v));
        }
    }
    if !native {
        extra.retain(|k| !OPENAI_ONLY.contains(&k));
    }
    // The thinking level in force, in this server's fields (`thinking.rs`).
    let thinking = crate::thinking::plan(prompt, target, params);
    if !thinking.template_kwargs.is_empty() {
        let mut kwargs = match extra.remove("chat_template_kwargs") {
            Some(v) => match v.into_owned() {
                Value::Object(map) => map,
                _ => serde_json::Map::new(),
            },
            None => serde_json::Map::new(),
        };
        for (k, v) in thinking.template_kwargs {
            kwargs.insert(k.to_owned(), v);
        }
        extra.insert("chat_template_kwargs", Cow::Owned(Value::Object(kwargs)));
    }
    for (k, v) in thinking.fields {
        extra.insert(k, Cow::Owned(v));
    }
    if let Some(ttl) = crate::encode::lmstudio_ttl(target.provider, params) {
        extra.insert("ttl", Cow::Borrowed(ttl));
    }
    // Ollama's `/v1` (`injectNumCtxForOpenAICompat`, default on): the window goes in
    // `options.num_ctx`, as on its native API.
    if target.provider.inject_num_ctx
        && crate::encode::is_ollama_compat(target.provider)
        && !extra.contains("options")
        && let Some(n) = crate::encode::num_ctx(target.model, params, target.served_max)
    {
        let mut options = serde_json::Map::new();
        options.insert("num_ctx".to_owned(), Value::from(n.value));
        extra.insert("options", Cow::Owned(Value::Object(options)));
    }
    // llama-server reports its prompt processing while it reads a long prompt, so a slow prompt
    // is told from a hung server (only asked of llama.cpp: strict hosts reject unknown fields;
    // `params.return_progress` or the client's own field wins).
    if prompt.stream
        && !native
        && !extra.contains("return_progress")
        && crate::probe::is_llama_cpp(target.provider)
    {
        extra.insert("return_progress", Cow::Owned(Value::Bool(true)));
    }
    request.extra = extra;
    request
}

// ---- reading answers (the `Value` path; the typed path is in `decode/fast.rs`) ---------------

/// llama-server's `prompt_progress` object (`{total, cache, processed, time_ms}`).
fn prompt_progress(value: &Value) -> Option<crate::event::Progress> {
    let count = |key: &str| value.get(key).and_then(Value::as_u64);
    Some(crate::event::Progress {
        processed: count("processed")?,
        total: count("total")?,
        cached: count("cache").unwrap_or(0),
        elapsed: std::time::Duration::from_millis(count("time_ms").unwrap_or(0)),
    })
}

impl Decoder {
    pub(crate) fn in_band_error(&mut self, value: &Value, out: &mut Vec<Event>) -> bool {
        if value.get("error").is_some_and(|e| !e.is_null()) {
            self.fail(classify::classify_stream_error(&value.to_string()), out);
            return true;
        }
        false
    }

    pub(crate) fn chat_reasoning_fields(&mut self, delta: &Value, out: &mut Vec<Event>) {
        // `reasoning` (vLLM, Ollama /v1, OpenRouter) wins over its deprecated duplicate.
        let reasoning = str_at(delta, "reasoning")
            .or_else(|| str_at(delta, "reasoning_content"))
            .or_else(|| str_at(delta, "thinking"));
        if let Some(r) = reasoning {
            self.reasoning(r, out);
        } else if let Some(details) = delta.get("reasoning_details").and_then(Value::as_array) {
            for d in details {
                if let Some(t) = str_at(d, "text").or_else(|| str_at(d, "summary")) {
                    self.reasoning(t, out);
                }
            }
        }
    }

    pub(crate) fn chat_usage(&mut self, value: &Value) {
        if let Some(u) =
            value.get("usage").filter(|u| !u.is_null()).and_then(usage::from_openai_chat)
        {
            self.usage = Some(u);
        } else if self.usage.is_none()
            && let Some(u) = value.get("timings").and_then(usage::from_llama_timings)
        {
            self.usage = Some(u);
        }
    }

    pub(crate) fn chat_chunk(&mut self, value: &Value, out: &mut Vec<Event>) {
        if self.in_band_error(value, out) {
            return;
        }
        // llama-server's prompt processing (`return_progress`): a role-only chunk with
        // `prompt_progress`, before the first token (scripts/testbed/captures/chat-progress.sse).
        if let Some(progress) = value.get("prompt_progress").and_then(prompt_progress) {
            out.push(Event::Progress(progress));
        }
        if let Some(choice) = value.get("choices").and_then(Value::as_array).and_then(|c| c.first())
        {
            if let Some(delta) = choice.get("delta") {
                self.chat_reasoning_fields(delta, out);
                self.logprobs(choice.pointer("/logprobs/content"), out);
                if let Some(text) = str_at(delta, "content") {
                    self.text(text, out);
                }
                for call in delta.get("tool_calls").and_then(Value::as_array).into_iter().flatten()
                {
                    let index = call.get("index").and_then(Value::as_u64).unwrap_or(0) as u32;
                    let function = call.get("function");
                    self.tool(
                        index,
                        str_at(call, "id").map(str::to_owned),
                        function.and_then(|f| str_at(f, "name")).map(str::to_owned),
                        function
                            .and_then(|f| str_at(f, "arguments"))
                            .unwrap_or_default()
                            .to_owned(),
                        out,
                    );
                }
            }
            if let Some(reason) = str_at(choice, "finish_reason") {
                if let Some(error) = classify::classify_finish_reason(reason) {
                    self.fail(error, out);
                    return;
                }
                self.finish = Some(finish_reason(reason));
            }
        }
        self.chat_usage(value);
    }

    pub(crate) fn chat_body(&mut self, value: &Value, out: &mut Vec<Event>) {
        if self.in_band_error(value, out) {
            return;
        }
        if let Some(choice) = value.get("choices").and_then(Value::as_array).and_then(|c| c.first())
        {
            if let Some(message) = choice.get("message") {
                self.chat_reasoning_fields(message, out);
                self.logprobs(choice.pointer("/logprobs/content"), out);
                if let Some(text) = str_at(message, "content") {
                    self.text(text, out);
                }
                for (idx, call) in message
                    .get("tool_calls")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .enumerate()
                {
                    let function = call.get("function");
                    // Arguments sent as an object go up as its JSON text; `null` as none.
                    let arguments = match function.and_then(|f| f.get("arguments")) {
                        Some(Value::String(s)) => s.clone(),
                        None | Some(Value::Null) => String::new(),
                        Some(other) => other.to_string(),
                    };
                    self.tool(
                        idx as u32,
                        str_at(call, "id").map(str::to_owned),
                        function.and_then(|f| str_at(f, "name")).map(str::to_owned),
                        arguments,
                        out,
                    );
                }
            }
            if let Some(reason) = str_at(choice, "finish_reason") {
                if let Some(error) = classify::classify_finish_reason(reason) {
                    self.fail(error, out);
                    return;
                }
                self.finish = Some(finish_reason(reason));
            }
        }
        self.chat_usage(value);
    }
}
