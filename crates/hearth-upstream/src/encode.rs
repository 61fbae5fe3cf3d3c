//! Request shaping: the canonical [`Prompt`] as each upstream API's request body.
//!
//! Rules (OpenClaw's, `docs/upstream.md`): `system` never `developer` off api.openai.com;
//! `compat` flags respected; OpenAI-only fields (`store`, `service_tier`, ...) never sent to
//! other hosts; `stream_options.include_usage` only when streaming; the output cap is the
//! smaller of the caller's and the model's `maxTokens`; `params` applied, `extra_body` last.

use hearth_config::{Api, Model, Provider};
use serde_json::{Map, Value, json};

use crate::prompt::{Message, OutputFormat, Part, Prompt, Role, Tool, ToolChoice};
use crate::reasoning::{ReplayPolicy, parse_replay_policy, replay_policy_for};

/// Request parameters that are wire fields of OpenAI-compatible bodies. Other `params` keys are
/// OpenClaw runtime knobs (`fastMode`, `cacheRetention`, ...) and are not sent.
const WIRE_PARAMS: &[&str] = &[
    "temperature",
    "top_p",
    "top_k",
    "min_p",
    "seed",
    "presence_penalty",
    "frequency_penalty",
    "repetition_penalty",
    "repeat_penalty",
    "stop",
    "chat_template_kwargs",
    "reasoning_effort",
    "response_format",
    "parallel_tool_calls",
    "logit_bias",
    "typical_p",
    "enable_thinking",
    "reasoning_format",
    "cache_prompt",
    "n_probs",
    "grammar",
    "json_schema",
    "guided_json",
    "separate_reasoning",
    "provider",
    "reasoning",
    "transforms",
    "thinking",
];

/// Fields only OpenAI's own API accepts; stripped for every other host.
const OPENAI_ONLY: &[&str] =
    &["store", "service_tier", "prompt_cache_key", "safety_identifier", "metadata", "user"];

/// Ollama `options` keys (model runtime settings).
const OLLAMA_OPTIONS: &[&str] = &[
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

/// Everything about the target that shapes a request.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    pub provider: &'a Provider,
    pub model: &'a Model,
    /// Merged `params` (agent defaults < model settings < agent), without `extra_body`.
    pub params: Option<&'a Map<String, Value>>,
}

impl Target<'_> {
    /// The official OpenAI host (gets OpenAI-only fields and the `developer` role).
    pub fn is_native_openai(&self) -> bool {
        self.provider.base_url.host_str() == Some("api.openai.com")
    }

    fn output_cap(&self, prompt: &Prompt) -> u64 {
        let model_cap = self.model.max_tokens;
        let param_cap =
            self.param("maxTokens").or_else(|| self.param("max_tokens")).and_then(Value::as_u64);
        let requested = prompt.max_tokens.or(param_cap).unwrap_or(model_cap);
        requested.min(model_cap).max(1)
    }

    fn param(&self, key: &str) -> Option<&Value> {
        self.params
            .and_then(|p| p.get(key))
            .or_else(|| self.model.params.as_ref().and_then(|p| p.get(key)))
    }

    /// All params in precedence order: provider < model row < merged agent params.
    fn all_params(&self) -> Map<String, Value> {
        let mut out = Map::new();
        for layer in
            [self.provider.params.as_ref(), self.model.params.as_ref()].into_iter().flatten()
        {
            if let Value::Object(map) = layer {
                out.extend(map.clone());
            }
        }
        if let Some(map) = self.params {
            out.extend(map.clone());
        }
        out
    }

    fn extra_body(&self) -> Option<Value> {
        let params = self.all_params();
        params.get("extra_body").or_else(|| params.get("extraBody")).cloned()
    }

    /// `params.reasoningReplay` (`keep-inline`, `drop`, `keep-signed`) on the model row or its
    /// settings, else the model family's default.
    fn replay(&self) -> ReplayPolicy {
        let configured = self
            .all_params()
            .get("reasoningReplay")
            .and_then(Value::as_str)
            .and_then(parse_replay_policy);
        configured.unwrap_or_else(|| replay_policy_for(&self.model.id))
    }
}

/// Deep-merges `over` into `base` (objects by key, anything else replaced).
pub fn merge_json(base: &mut Value, over: &Value) {
    match (base, over) {
        (Value::Object(b), Value::Object(o)) => {
            for (k, v) in o {
                match b.get_mut(k) {
                    Some(existing) => merge_json(existing, v),
                    None => {
                        b.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (b, o) => *b = o.clone(),
    }
}

/// Whether `api` reports token logprobs: OpenAI chat (llama-server, vLLM, OpenAI) and OpenAI
/// Responses do; Anthropic Messages and Ollama's native API have no such field, so a caller's
/// request for them is not sent there (the server says so in `x-hearth-dropped`).
pub fn has_logprobs(api: Api) -> bool {
    matches!(api, Api::OpenaiCompletions | Api::OpenaiResponses)
}

/// The Responses `include` value that asks for `output_text` logprobs.
pub const INCLUDE_OUTPUT_TEXT_LOGPROBS: &str = "message.output_text.logprobs";

/// The request body for `target`'s API.
pub fn encode(prompt: &Prompt, target: &Target<'_>) -> Value {
    let mut body = match target.model.api {
        Api::OpenaiCompletions => openai_chat(prompt, target),
        Api::OpenaiResponses => responses(prompt, target),
        Api::AnthropicMessages => anthropic(prompt, target),
        Api::Ollama => ollama(prompt, target),
    };
    if let Some(extra) = target.extra_body() {
        merge_json(&mut body, &extra);
    }
    body
}

fn wire_params(target: &Target<'_>, body: &mut Map<String, Value>) {
    for (k, v) in target.all_params() {
        if WIRE_PARAMS.contains(&k.as_str()) {
            body.insert(k, v);
        }
    }
}

fn passthrough(prompt: &Prompt, target: &Target<'_>, body: &mut Map<String, Value>) {
    for (k, v) in &prompt.passthrough {
        if !target.is_native_openai() && OPENAI_ONLY.contains(&k.as_str()) {
            continue;
        }
        body.entry(k.clone()).or_insert_with(|| v.clone());
    }
}

fn sampling(prompt: &Prompt, body: &mut Map<String, Value>) {
    if let Some(t) = prompt.temperature {
        body.insert("temperature".into(), json!(t));
    }
    if let Some(p) = prompt.top_p {
        body.insert("top_p".into(), json!(p));
    }
    if !prompt.stop.is_empty() {
        body.insert("stop".into(), json!(prompt.stop));
    }
}

/// A tool's fields under the names an API uses. An absent description is left out, never sent as
/// `null` (llama-server answers "type must be string, but is null" to a null).
fn tool_fields(t: &Tool, schema_key: &str) -> Map<String, Value> {
    let mut f = Map::new();
    f.insert("name".into(), json!(t.name));
    if let Some(d) = &t.description {
        f.insert("description".into(), json!(d));
    }
    f.insert(schema_key.into(), t.parameters.clone());
    f
}

fn tools_allowed(target: &Target<'_>) -> bool {
    target.model.compat.supports_tools != Some(false)
}

fn text_with_replayed_reasoning(message: &Message, policy: ReplayPolicy) -> String {
    let text = message.text();
    match (&message.reasoning, policy) {
        (Some(r), ReplayPolicy::KeepInline) if !r.text.is_empty() => {
            format!("<think>{}</think>\n\n{text}", r.text)
        }
        _ => text,
    }
}

fn openai_content(message: &Message, string_only: bool) -> Value {
    if string_only || message.is_text_only() {
        return Value::String(message.text());
    }
    Value::Array(
        message
            .content
            .iter()
            .map(|p| match p {
                Part::Text(t) => json!({"type": "text", "text": t}),
                Part::Image { url } => json!({"type": "image_url", "image_url": {"url": url}}),
            })
            .collect(),
    )
}

fn openai_chat(prompt: &Prompt, target: &Target<'_>) -> Value {
    let compat = &target.model.compat;
    let native = target.is_native_openai();
    let strict_keys = compat.strict_message_keys == Some(true);
    let string_only = compat.requires_string_content == Some(true);
    let policy = target.replay();
    let mut messages = Vec::new();
    let system_role =
        if native && compat.supports_developer_role == Some(true) { "developer" } else { "system" };
    // One system message: many chat templates reject a second one or one that is not first.
    if let Some(system) = prompt.system_text() {
        messages.push(json!({"role": system_role, "content": system}));
    }
    // Images a tool returned: a chat `tool` message carries text only, so they follow the
    // run of tool messages as the next user message's first parts (docs/upstream.md).
    let mut tool_images: Vec<Value> = Vec::new();
    for m in &prompt.messages {
        if m.role != Role::Tool && !tool_images.is_empty() {
            let mut parts = std::mem::take(&mut tool_images);
            if m.role == Role::User {
                if let Value::Array(own) = openai_content(m, false) {
                    parts.extend(own);
                } else {
                    parts.push(json!({"type": "text", "text": m.text()}));
                }
                messages.push(json!({"role": "user", "content": parts}));
                continue;
            }
            messages.push(json!({"role": "user", "content": parts}));
        }
        let mut msg = Map::new();
        match m.role {
            Role::User => {
                msg.insert("role".into(), json!("user"));
                msg.insert("content".into(), openai_content(m, string_only));
            }
            Role::Assistant => {
                msg.insert("role".into(), json!("assistant"));
                msg.insert("content".into(), json!(text_with_replayed_reasoning(m, policy)));
                if !strict_keys {
                    if let Some(r) = &m.reasoning
                        && compat.requires_reasoning_content_on_assistant_messages == Some(true)
                    {
                        msg.insert("reasoning_content".into(), json!(r.text));
                    }
                    if !m.tool_calls.is_empty() && tools_allowed(target) {
                        let calls: Vec<Value> = m
                            .tool_calls
                            .iter()
                            .map(|c| json!({"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}))
                            .collect();
                        msg.insert("tool_calls".into(), Value::Array(calls));
                    }
                }
            }
            Role::Tool => {
                if strict_keys || !tools_allowed(target) {
                    msg.insert("role".into(), json!("user"));
                    msg.insert("content".into(), json!(format!("Tool result:\n{}", m.text())));
                } else {
                    if !string_only {
                        let images: Vec<Value> = m
                            .content
                            .iter()
                            .filter_map(|p| match p {
                                Part::Image { url } => {
                                    Some(json!({"type": "image_url", "image_url": {"url": url}}))
                                }
                                Part::Text(_) => None,
                            })
                            .collect();
                        if !images.is_empty() {
                            let id = m.tool_call_id.as_deref().unwrap_or_default();
                            tool_images.push(json!({"type": "text", "text": format!("[images returned by tool call {id}]")}));
                            tool_images.extend(images);
                        }
                    }
                    msg.insert("role".into(), json!("tool"));
                    msg.insert("content".into(), json!(m.text()));
                    msg.insert(
                        "tool_call_id".into(),
                        json!(m.tool_call_id.clone().unwrap_or_default()),
                    );
                    if compat.requires_tool_result_name == Some(true)
                        && let Some(name) = &m.name
                    {
                        msg.insert("name".into(), json!(name));
                    }
                }
            }
        }
        messages.push(Value::Object(msg));
    }
    if !tool_images.is_empty() {
        messages.push(json!({"role": "user", "content": tool_images}));
    }
    let mut body = Map::new();
    body.insert("model".into(), json!(target.model.id));
    body.insert("messages".into(), Value::Array(messages));
    let cap_field = match compat.max_tokens_field.as_deref() {
        Some(field) => field.to_owned(),
        None if native => "max_completion_tokens".to_owned(),
        None => "max_tokens".to_owned(),
    };
    body.insert(cap_field, json!(target.output_cap(prompt)));
    sampling(prompt, &mut body);
    if tools_allowed(target) && !prompt.tools.is_empty() {
        let tools: Vec<Value> = prompt
            .tools
            .iter()
            .map(|t| json!({"type": "function", "function": tool_fields(t, "parameters")}))
            .collect();
        body.insert("tools".into(), Value::Array(tools));
        if let Some(choice) = &prompt.tool_choice {
            body.insert(
                "tool_choice".into(),
                match choice {
                    ToolChoice::Auto => json!("auto"),
                    ToolChoice::None => json!("none"),
                    ToolChoice::Required => json!("required"),
                    ToolChoice::Function(name) => {
                        json!({"type": "function", "function": {"name": name}})
                    }
                },
            );
        }
    }
    if let Some(format) = prompt.output_format.as_ref().filter(|f| **f != OutputFormat::Text) {
        body.insert("response_format".into(), format.to_chat());
    }
    if let Some(top) = prompt.logprobs {
        body.insert("logprobs".into(), json!(true));
        if top > 0 {
            body.insert("top_logprobs".into(), json!(top));
        }
    }
    body.insert("stream".into(), json!(prompt.stream));
    if prompt.stream && compat.supports_usage_in_streaming != Some(false) {
        body.insert("stream_options".into(), json!({"include_usage": true}));
    }
    wire_params(target, &mut body);
    passthrough(prompt, target, &mut body);
    if !native {
        for k in OPENAI_ONLY {
            body.remove(*k);
        }
    }
    Value::Object(body)
}

fn responses(prompt: &Prompt, target: &Target<'_>) -> Value {
    let policy = target.replay();
    let mut input = Vec::new();
    for m in &prompt.messages {
        match m.role {
            Role::User => {
                let content: Vec<Value> = m
                    .content
                    .iter()
                    .map(|p| match p {
                        Part::Text(t) => json!({"type": "input_text", "text": t}),
                        Part::Image { url } => json!({"type": "input_image", "image_url": url}),
                    })
                    .collect();
                input.push(json!({"type": "message", "role": "user", "content": content}));
            }
            Role::Assistant => {
                let text = text_with_replayed_reasoning(m, policy);
                if !text.is_empty() {
                    input.push(json!({"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": text}]}));
                }
                for c in &m.tool_calls {
                    input.push(json!({"type": "function_call", "call_id": c.id, "name": c.name, "arguments": c.arguments}));
                }
            }
            Role::Tool => {
                input.push(json!({"type": "function_call_output", "call_id": m.tool_call_id.clone().unwrap_or_default(), "output": m.text()}));
            }
        }
    }
    let mut body = Map::new();
    body.insert("model".into(), json!(target.model.id));
    if let Some(system) = prompt.system_text() {
        body.insert("instructions".into(), json!(system));
    }
    body.insert("input".into(), Value::Array(input));
    body.insert("max_output_tokens".into(), json!(target.output_cap(prompt)));
    if let Some(t) = prompt.temperature {
        body.insert("temperature".into(), json!(t));
    }
    if let Some(p) = prompt.top_p {
        body.insert("top_p".into(), json!(p));
    }
    if tools_allowed(target) && !prompt.tools.is_empty() {
        let tools: Vec<Value> = prompt
            .tools
            .iter()
            .map(|t| {
                let mut f = Map::new();
                f.insert("type".into(), json!("function"));
                f.extend(tool_fields(t, "parameters"));
                Value::Object(f)
            })
            .collect();
        body.insert("tools".into(), Value::Array(tools));
        if let Some(choice) = &prompt.tool_choice {
            body.insert(
                "tool_choice".into(),
                match choice {
                    ToolChoice::Auto => json!("auto"),
                    ToolChoice::None => json!("none"),
                    ToolChoice::Required => json!("required"),
                    ToolChoice::Function(name) => json!({"type": "function", "name": name}),
                },
            );
        }
    }
    if let Some(format) = &prompt.output_format {
        body.insert("text".into(), json!({"format": format.to_responses()}));
    }
    body.insert("stream".into(), json!(prompt.stream));
    wire_params(target, &mut body);
    passthrough(prompt, target, &mut body);
    // Chat's `logprobs: true` has no Responses field: the count is `top_logprobs`, and the
    // logprobs themselves come only when `include` names them.
    body.remove("logprobs");
    if let Some(top) = prompt.logprobs {
        body.insert("top_logprobs".into(), json!(top));
        let include = body.entry("include").or_insert_with(|| json!([]));
        if let Value::Array(items) = include
            && !items.iter().any(|i| i.as_str() == Some(INCLUDE_OUTPUT_TEXT_LOGPROBS))
        {
            items.push(json!(INCLUDE_OUTPUT_TEXT_LOGPROBS));
        }
    }
    // Chat's `response_format` (from `params` or a chat caller) is `text.format` here.
    if let Some(rf) = body.remove("response_format")
        && !body.contains_key("text")
        && let Ok(format) = OutputFormat::from_chat(&rf)
    {
        body.insert("text".into(), json!({"format": format.to_responses()}));
    }
    if !target.is_native_openai() {
        for k in OPENAI_ONLY {
            body.remove(*k);
        }
    }
    Value::Object(body)
}

/// An image part as an Anthropic image block: `data:` URLs as base64 sources.
fn anthropic_image(url: &str) -> Value {
    if let Some(rest) = url.strip_prefix("data:")
        && let Some((media_type, data)) = rest.split_once(";base64,")
    {
        return json!({"type": "image", "source": {"type": "base64", "media_type": media_type, "data": data}});
    }
    json!({"type": "image", "source": {"type": "url", "url": url}})
}

fn anthropic(prompt: &Prompt, target: &Target<'_>) -> Value {
    if let Some(native) = &prompt.anthropic_native {
        // The caller spoke Anthropic: its request goes up as sent, to the configured model.
        let mut body = native.body.clone();
        body.insert("model".into(), json!(target.model.id));
        body.insert("max_tokens".into(), json!(target.output_cap(prompt)));
        body.insert("stream".into(), json!(prompt.stream));
        return Value::Object(body);
    }
    let policy = target.replay();
    let mut messages: Vec<Value> = Vec::new();
    for m in &prompt.messages {
        let (role, blocks) = match m.role {
            Role::User => (
                "user",
                m.content
                    .iter()
                    .map(|p| match p {
                        Part::Text(t) => json!({"type": "text", "text": t}),
                        Part::Image { url } => anthropic_image(url),
                    })
                    .collect::<Vec<_>>(),
            ),
            Role::Assistant => {
                let mut blocks = Vec::new();
                if let Some(r) = &m.reasoning
                    && let (ReplayPolicy::KeepSigned, Some(sig)) = (policy, &r.signature)
                {
                    blocks.push(json!({"type": "thinking", "thinking": r.text, "signature": sig}));
                }
                let text = text_with_replayed_reasoning(m, policy);
                if !text.is_empty() {
                    blocks.push(json!({"type": "text", "text": text}));
                }
                for c in &m.tool_calls {
                    let input: Value =
                        serde_json::from_str(&c.arguments).unwrap_or_else(|_| json!({}));
                    blocks.push(
                        json!({"type": "tool_use", "id": c.id, "name": c.name, "input": input}),
                    );
                }
                ("assistant", blocks)
            }
            Role::Tool => {
                let content = if m.is_text_only() {
                    json!(m.text())
                } else {
                    Value::Array(
                        m.content
                            .iter()
                            .map(|p| match p {
                                Part::Text(t) => json!({"type": "text", "text": t}),
                                Part::Image { url } => anthropic_image(url),
                            })
                            .collect(),
                    )
                };
                (
                    "user",
                    vec![
                        json!({"type": "tool_result", "tool_use_id": m.tool_call_id.clone().unwrap_or_default(), "content": content}),
                    ],
                )
            }
        };
        // Anthropic wants alternating roles: merge consecutive same-role turns.
        match messages.last_mut() {
            Some(last) if last["role"] == role => {
                if let Some(Value::Array(existing)) = last.get_mut("content") {
                    existing.extend(blocks);
                }
            }
            _ => messages.push(json!({"role": role, "content": blocks})),
        }
    }
    let mut body = Map::new();
    body.insert("model".into(), json!(target.model.id));
    if let Some(system) = prompt.system_text() {
        body.insert("system".into(), json!(system));
    }
    body.insert("messages".into(), Value::Array(messages));
    body.insert("max_tokens".into(), json!(target.output_cap(prompt)));
    if let Some(t) = prompt.temperature {
        body.insert("temperature".into(), json!(t));
    }
    if let Some(p) = prompt.top_p {
        body.insert("top_p".into(), json!(p));
    }
    if !prompt.stop.is_empty() {
        body.insert("stop_sequences".into(), json!(prompt.stop));
    }
    if tools_allowed(target) && !prompt.tools.is_empty() {
        let tools: Vec<Value> =
            prompt.tools.iter().map(|t| Value::Object(tool_fields(t, "input_schema"))).collect();
        body.insert("tools".into(), Value::Array(tools));
        if let Some(choice) = &prompt.tool_choice {
            body.insert(
                "tool_choice".into(),
                match choice {
                    ToolChoice::Auto => json!({"type": "auto"}),
                    ToolChoice::None => json!({"type": "none"}),
                    ToolChoice::Required => json!({"type": "any"}),
                    ToolChoice::Function(name) => json!({"type": "tool", "name": name}),
                },
            );
        }
    }
    match &prompt.output_format {
        Some(OutputFormat::JsonSchema { schema, .. }) => {
            body.insert(
                "output_config".into(),
                json!({"format": {"type": "json_schema", "schema": schema}}),
            );
        }
        // Anthropic has no schema-less JSON mode: the instruction goes into the system prompt.
        Some(OutputFormat::JsonObject) => {
            let system = match body.remove("system").and_then(|s| s.as_str().map(str::to_owned)) {
                Some(s) => format!("{s}\n\n{JSON_OBJECT_INSTRUCTION}"),
                None => JSON_OBJECT_INSTRUCTION.to_owned(),
            };
            body.insert("system".into(), json!(system));
        }
        Some(OutputFormat::Text) | None => {}
    }
    body.insert("stream".into(), json!(prompt.stream));
    Value::Object(body)
}

/// What `json_object` output means where an API has no such mode (Anthropic).
pub const JSON_OBJECT_INSTRUCTION: &str =
    "Respond with one JSON object and nothing else: no prose, no code fences.";

fn ollama(prompt: &Prompt, target: &Target<'_>) -> Value {
    let mut messages = Vec::new();
    if let Some(system) = prompt.system_text() {
        messages.push(json!({"role": "system", "content": system}));
    }
    for m in &prompt.messages {
        let mut msg = Map::new();
        match m.role {
            Role::User => {
                msg.insert("role".into(), json!("user"));
                msg.insert("content".into(), json!(m.text()));
                let images: Vec<&str> = m
                    .content
                    .iter()
                    .filter_map(|p| match p {
                        Part::Image { url } => url.split_once("base64,").map(|(_, data)| data),
                        Part::Text(_) => None,
                    })
                    .collect();
                if !images.is_empty() {
                    msg.insert("images".into(), json!(images));
                }
            }
            Role::Assistant => {
                msg.insert("role".into(), json!("assistant"));
                msg.insert(
                    "content".into(),
                    json!(text_with_replayed_reasoning(m, target.replay())),
                );
                if !m.tool_calls.is_empty() {
                    let calls: Vec<Value> = m
                        .tool_calls
                        .iter()
                        .map(|c| {
                            let args: Value =
                                serde_json::from_str(&c.arguments).unwrap_or_else(|_| json!({}));
                            json!({"function": {"name": c.name, "arguments": args}})
                        })
                        .collect();
                    msg.insert("tool_calls".into(), Value::Array(calls));
                }
            }
            Role::Tool => {
                msg.insert("role".into(), json!("tool"));
                msg.insert("content".into(), json!(m.text()));
                if let Some(name) = &m.name {
                    msg.insert("tool_name".into(), json!(name));
                }
            }
        }
        messages.push(Value::Object(msg));
    }
    let mut body = Map::new();
    body.insert("model".into(), json!(target.model.id));
    body.insert("messages".into(), Value::Array(messages));
    body.insert("stream".into(), json!(prompt.stream));
    let mut options = Map::new();
    let params = target.all_params();
    for (k, v) in &params {
        if OLLAMA_OPTIONS.contains(&k.as_str()) {
            options.insert(k.clone(), v.clone());
        }
    }
    if let Some(keep_alive) = params.get("keep_alive").or_else(|| params.get("keepAlive")) {
        body.insert("keep_alive".into(), keep_alive.clone());
    }
    if let Some(think) = params.get("think") {
        // Never a truthy `think` for a model not marked reasoning.
        let truthy = !matches!(think, Value::Bool(false) | Value::Null);
        if !truthy || target.model.reasoning {
            body.insert("think".into(), think.clone());
        }
    }
    if let Some(t) = prompt.temperature {
        options.insert("temperature".into(), json!(t));
    }
    if let Some(p) = prompt.top_p {
        options.insert("top_p".into(), json!(p));
    }
    if !prompt.stop.is_empty() {
        options.insert("stop".into(), json!(prompt.stop));
    }
    options.insert("num_predict".into(), json!(target.output_cap(prompt)));
    body.insert("options".into(), Value::Object(options));
    if tools_allowed(target) && !prompt.tools.is_empty() {
        let tools: Vec<Value> = prompt
            .tools
            .iter()
            .map(|t| json!({"type": "function", "function": tool_fields(t, "parameters")}))
            .collect();
        body.insert("tools".into(), Value::Array(tools));
    }
    match &prompt.output_format {
        Some(OutputFormat::JsonObject) => {
            body.insert("format".into(), json!("json"));
        }
        Some(OutputFormat::JsonSchema { schema, .. }) => {
            body.insert("format".into(), schema.clone());
        }
        Some(OutputFormat::Text) | None => {}
    }
    Value::Object(body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prompt::{Reasoning, Tool, ToolCall};
    use hearth_config::load_str;

    fn config(api: &str, base: &str, model: &str) -> hearth_config::Config {
        let text = format!(
            r#"{{models: {{mode: "replace", providers: {{p: {{baseUrl: "{base}", api: "{api}", models: [{model}]}}}}}}}}"#
        );
        let loaded =
            load_str("t.json5", &text, &std::collections::BTreeMap::<String, String>::new());
        assert!(!loaded.has_errors(), "{:?}", loaded.diagnostics);
        loaded.config.unwrap()
    }

    fn body(api: &str, base: &str, model: &str, prompt: &Prompt) -> Value {
        let c = config(api, base, model);
        let provider = &c.providers["p"];
        encode(prompt, &Target { provider, model: &provider.models[0], params: None })
    }

    fn conversation() -> Prompt {
        let mut prompt = Prompt::text(Some("sys"), "weather in Paris?");
        prompt.messages.push(Message {
            reasoning: Some(Reasoning {
                text: "need the tool".into(),
                signature: Some("sig".into()),
            }),
            tool_calls: vec![ToolCall {
                id: "call_1".into(),
                name: "weather".into(),
                arguments: r#"{"city":"Paris"}"#.into(),
            }],
            ..Message::assistant("")
        });
        prompt.messages.push(Message {
            role: Role::Tool,
            tool_call_id: Some("call_1".into()),
            name: Some("weather".into()),
            ..Message::user("sunny")
        });
        prompt.tools.push(Tool {
            name: "weather".into(),
            description: Some("Weather".into()),
            parameters: json!({"type": "object"}),
        });
        prompt.tool_choice = Some(ToolChoice::Auto);
        prompt
    }

    /// Logprobs go where the API has them, in its own fields; elsewhere nothing is sent.
    #[test]
    fn logprobs_only_where_the_api_has_them() {
        let model = r#"{id: "m", maxTokens: 100}"#;
        let mut prompt = Prompt::text(None, "hi");
        prompt.logprobs = Some(2);
        let chat = body("openai-completions", "http://127.0.0.1:8080/v1", model, &prompt);
        assert_eq!(
            (chat["logprobs"].clone(), chat["top_logprobs"].clone()),
            (json!(true), json!(2))
        );
        prompt.logprobs = Some(0);
        let chat = body("openai-completions", "http://127.0.0.1:8080/v1", model, &prompt);
        assert_eq!(chat["logprobs"], json!(true));
        assert!(chat.get("top_logprobs").is_none());
        prompt.logprobs = Some(3);
        let responses = body("openai-responses", "https://api.openai.com/v1", model, &prompt);
        assert_eq!(responses["top_logprobs"], json!(3));
        assert_eq!(responses["include"], json!([INCLUDE_OUTPUT_TEXT_LOGPROBS]));
        assert!(responses.get("logprobs").is_none());
        for api in ["anthropic-messages", "ollama"] {
            let b = body(api, "http://127.0.0.1:9/", model, &prompt);
            assert!(b.get("logprobs").is_none() && b.get("top_logprobs").is_none(), "{api}: {b}");
        }
        assert!(!has_logprobs(Api::AnthropicMessages) && !has_logprobs(Api::Ollama));
        prompt.logprobs = None;
        let chat = body("openai-completions", "http://127.0.0.1:8080/v1", model, &prompt);
        assert!(chat.get("logprobs").is_none() && chat.get("top_logprobs").is_none());
    }

    #[test]
    fn tools_map_across_the_apis() {
        let p = conversation();
        let chat = body("openai-completions", "http://127.0.0.1:1/v1", r#"{id: "m"}"#, &p);
        assert_eq!(chat["messages"][0], json!({"role": "system", "content": "sys"}));
        assert_eq!(chat["messages"][2]["tool_calls"][0]["function"]["name"], "weather");
        assert_eq!(
            chat["messages"][3],
            json!({"role": "tool", "content": "sunny", "tool_call_id": "call_1"})
        );
        assert_eq!(chat["tools"][0]["function"]["parameters"], json!({"type": "object"}));
        assert_eq!(chat["tool_choice"], "auto");

        let responses = body("openai-responses", "http://127.0.0.1:1/v1", r#"{id: "m"}"#, &p);
        assert_eq!(responses["instructions"], "sys");
        let input = responses["input"].as_array().unwrap();
        assert_eq!(
            input[1],
            json!({"type": "function_call", "call_id": "call_1", "name": "weather", "arguments": r#"{"city":"Paris"}"#})
        );
        assert_eq!(
            input[2],
            json!({"type": "function_call_output", "call_id": "call_1", "output": "sunny"})
        );
        assert_eq!(responses["tools"][0]["name"], "weather");

        let anthropic = body(
            "anthropic-messages",
            "https://api.anthropic.com",
            r#"{id: "claude-sonnet-4-5"}"#,
            &p,
        );
        assert_eq!(anthropic["system"], "sys");
        let assistant = &anthropic["messages"][1]["content"];
        assert_eq!(
            assistant[0],
            json!({"type": "thinking", "thinking": "need the tool", "signature": "sig"}),
            "signed thinking is replayed"
        );
        assert_eq!(
            assistant[1],
            json!({"type": "tool_use", "id": "call_1", "name": "weather", "input": {"city": "Paris"}})
        );
        assert_eq!(anthropic["messages"][2]["content"][0]["type"], "tool_result");
        assert_eq!(anthropic["tools"][0]["input_schema"], json!({"type": "object"}));
        assert_eq!(anthropic["tool_choice"], json!({"type": "auto"}));

        let ollama = body("ollama", "http://127.0.0.1:11434", r#"{id: "m"}"#, &p);
        assert_eq!(
            ollama["messages"][2]["tool_calls"][0]["function"]["arguments"],
            json!({"city": "Paris"})
        );
        assert_eq!(ollama["messages"][3]["role"], "tool");
    }

    /// See: #12. A tool result with an image, from any client API.
    #[test]
    fn tool_result_images_reach_anthropic_and_chat() {
        let mut p = conversation();
        p.messages[2].content.push(Part::Image { url: "data:image/png;base64,AAAA".into() });
        let anthropic =
            body("anthropic-messages", "https://api.anthropic.com", r#"{id: "claude-x"}"#, &p);
        assert_eq!(
            anthropic["messages"][2]["content"][0]["content"],
            json!([{"type": "text", "text": "sunny"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"}}])
        );
        let chat = body("openai-completions", "http://127.0.0.1:1/v1", r#"{id: "m"}"#, &p);
        let messages = chat["messages"].as_array().unwrap();
        assert_eq!(messages[3]["content"], "sunny");
        assert_eq!(messages[4]["role"], "user", "the images follow the tool messages");
        assert_eq!(messages[4]["content"][1]["image_url"]["url"], "data:image/png;base64,AAAA");
    }

    #[test]
    fn compat_flags() {
        let p = conversation();
        let strict = body(
            "openai-completions",
            "http://127.0.0.1:1/v1",
            r#"{id: "m", compat: {strictMessageKeys: true, supportsTools: false}}"#,
            &p,
        );
        for m in strict["messages"].as_array().unwrap() {
            let keys: Vec<&String> = m.as_object().unwrap().keys().collect();
            assert_eq!(keys, ["role", "content"], "{m}");
        }
        assert!(strict.get("tools").is_none() && strict.get("tool_choice").is_none());
        let mut image = Prompt::text(None, "what is this?");
        image.messages[0].content.push(Part::Image { url: "data:image/png;base64,AAAA".into() });
        let parts = body("openai-completions", "http://127.0.0.1:1/v1", r#"{id: "m"}"#, &image);
        assert!(parts["messages"][0]["content"].is_array());
        let flat = body(
            "openai-completions",
            "http://127.0.0.1:1/v1",
            r#"{id: "m", compat: {requiresStringContent: true}}"#,
            &image,
        );
        assert_eq!(flat["messages"][0]["content"], "what is this?");
        // `developer` only on api.openai.com, never on a proxy even when the config claims support.
        let proxy = body(
            "openai-completions",
            "http://127.0.0.1:1/v1",
            r#"{id: "m", compat: {supportsDeveloperRole: true}}"#,
            &p,
        );
        assert_eq!(proxy["messages"][0]["role"], "system");
        let native = body(
            "openai-completions",
            "https://api.openai.com/v1",
            r#"{id: "m", compat: {supportsDeveloperRole: true}}"#,
            &p,
        );
        assert_eq!(native["messages"][0]["role"], "developer");
        assert!(native.get("max_completion_tokens").is_some());
    }

    #[test]
    fn params_and_extra_body_last() {
        let p = Prompt::text(None, "hi");
        let b = body(
            "openai-completions",
            "http://127.0.0.1:8000/v1",
            r#"{id: "Qwen/Qwen3-8B", params: {chat_template_kwargs: {enable_thinking: true}, fastMode: true,
                extra_body: {tool_choice: "required", chat_template_kwargs: {enable_thinking: false}}}}"#,
            &p,
        );
        assert_eq!(b["chat_template_kwargs"]["enable_thinking"], false, "extra_body wins");
        assert_eq!(b["tool_choice"], "required");
        assert!(b.get("fastMode").is_none(), "runtime knobs are not wire fields");
        assert!(b.get("extra_body").is_none());
    }

    #[test]
    fn reasoning_replay_policies() {
        let mut p = Prompt::text(None, "q");
        p.messages.push(Message {
            reasoning: Some(Reasoning { text: "r".into(), signature: None }),
            ..Message::assistant("a")
        });
        p.messages.push(Message::user("q2"));
        let minimax =
            body("openai-completions", "http://127.0.0.1:1/v1", r#"{id: "minimax-m2.1-gs32"}"#, &p);
        assert_eq!(
            minimax["messages"][1]["content"], "<think>r</think>\n\na",
            "MiniMax keeps <think> in history"
        );
        let qwen = body("openai-completions", "http://127.0.0.1:1/v1", r#"{id: "qwen3-8b"}"#, &p);
        assert_eq!(qwen["messages"][1]["content"], "a", "Qwen3 drops it");
        let configured = body(
            "openai-completions",
            "http://127.0.0.1:1/v1",
            r#"{id: "qwen3-8b", params: {reasoningReplay: "keep-inline"}}"#,
            &p,
        );
        assert_eq!(
            configured["messages"][1]["content"], "<think>r</think>\n\na",
            "configurable per model"
        );
    }

    #[test]
    fn ollama_options_and_think_guard() {
        let p = Prompt::text(None, "hi");
        let b = body(
            "ollama",
            "http://127.0.0.1:11434",
            r#"{id: "qwen3.5:27b", params: {num_ctx: 32768, keep_alive: "15m", temperature: 0.7, streaming: false, think: true}}"#,
            &p,
        );
        assert_eq!(b["options"]["num_ctx"], 32768);
        assert_eq!(b["options"]["temperature"], 0.7);
        assert_eq!(b["keep_alive"], "15m");
        assert!(b.get("streaming").is_none());
        assert!(b.get("think").is_none(), "never a truthy think for a model not marked reasoning");
    }
}
