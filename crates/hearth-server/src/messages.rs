//! `POST /v1/messages` (Anthropic Messages in, any upstream out) and
//! `POST /v1/messages/count_tokens` (an estimate: 4 characters a token).
//!
//! Invariant: thinking arrives only in `thinking` blocks (`thinking_delta`, `signature_delta`),
//! never in `text` blocks; errors are in Anthropic's shape, mid-stream ones as an `error`
//! event.

use std::sync::Arc;

use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use hearth_upstream::prompt::Reasoning;
use hearth_upstream::{
    Event, FinishReason, Message, Part, Prompt, Role, Tool, ToolCall, ToolChoice, Usage,
};
use hearth_wire::anthropic::{Content, ContentBlock, MessagesRequest};
use serde_json::{Value, json};

use crate::error::{ApiError, Shape};
use crate::relay::{self, Collected};
use crate::sse::{self, Render};
use crate::{AppState, body_or_error, json_response, plan};

pub async fn handle(
    State(app): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    match run(app, headers, body).await {
        Ok(response) => response,
        Err(e) => e.shaped(Shape::Anthropic).into_response(),
    }
}

async fn run(
    app: AppState,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body_or_error(body, Shape::Anthropic)?;
    let request: MessagesRequest =
        serde_json::from_slice(&body).map_err(|e| ApiError::from_json(&e))?;
    let model = request.model.clone();
    let stream = request.stream.unwrap_or(false);
    let prompt = to_prompt(request)?;
    let config = app.config.load_full();
    let plan = plan::plan(&config, &model, &headers)?;
    if stream {
        let start = relay::start_owned(app.clone(), Arc::clone(&config), plan.clone(), prompt);
        return sse::respond_when_started(&app, start, move |made| {
            MessagesRender::new(crate::chat::shown_for(&plan, made.map(|(s, _)| s)))
        })
        .await;
    }
    let (started, _prompt) = relay::start(&app, &config, &plan, prompt).await?;
    let shown = crate::chat::shown_model(&plan, &started.answer.model_ref);
    let (collected, answer) = relay::collect(started).await?;
    let mut response =
        json_response(StatusCode::OK, &message(&crate::new_id("msg_"), &shown, &collected));
    relay::answer_headers(&answer, response.headers_mut());
    Ok(response)
}

pub async fn count_tokens(body: Result<Bytes, BytesRejection>) -> Response {
    let result = (|| {
        let body = body_or_error(body, Shape::Anthropic)?;
        let request: MessagesRequest =
            serde_json::from_slice(&body).map_err(|e| ApiError::from_json(&e))?;
        let prompt = to_prompt(request)?;
        let tools: usize = prompt
            .tools
            .iter()
            .map(|t| {
                t.name.len()
                    + t.description.as_ref().map_or(0, String::len)
                    + t.parameters.to_string().len()
            })
            .sum();
        let chars = prompt.char_count() + tools;
        Ok::<_, ApiError>(json!({"input_tokens": chars.div_ceil(4).max(1)}))
    })();
    match result {
        Ok(value) => json_response(StatusCode::OK, &value),
        Err(e) => e.shaped(Shape::Anthropic).into_response(),
    }
}

fn block_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Array(items) => items
            .iter()
            .filter_map(|b| b.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join(""),
        _ => String::new(),
    }
}

/// The canonical prompt of a Messages request.
pub fn to_prompt(request: MessagesRequest) -> Result<Prompt, ApiError> {
    let MessagesRequest {
        messages,
        max_tokens,
        system,
        stream,
        temperature,
        tools,
        tool_choice,
        stop_sequences,
        mut extra,
        ..
    } = request;
    if messages.is_empty() {
        return Err(ApiError::invalid_param(
            "messages",
            "`messages` must contain at least one message",
        ));
    }
    if max_tokens == Some(0) {
        return Err(ApiError::invalid_param("max_tokens", "max_tokens must be a positive integer"));
    }
    let top_p = extra.remove("top_p").and_then(|v| v.as_f64());
    if let Some(t) = temperature
        && !(0.0..=1.0).contains(&t)
    {
        return Err(ApiError::invalid_param(
            "temperature",
            format!("temperature must be between 0 and 1, got {t}"),
        ));
    }
    crate::chat::check_sampling(None, top_p)?;
    let mut prompt = Prompt::default();
    match system {
        None => {}
        Some(Content::Text(t)) => prompt.system.push(t),
        Some(Content::Blocks(blocks)) => {
            for block in blocks {
                if let ContentBlock::Text(t) = block {
                    prompt.system.push(t.text);
                }
            }
        }
    }
    for (i, message) in messages.into_iter().enumerate() {
        let role = match message.role.as_str() {
            "user" => Role::User,
            "assistant" => Role::Assistant,
            other => {
                return Err(ApiError::invalid_param(
                    &format!("messages[{i}].role"),
                    format!("role `{other}` is not supported (user, assistant)"),
                ));
            }
        };
        let blocks = match message.content {
            Content::Text(t) => vec![ContentBlock::Text(hearth_wire::anthropic::TextBlock {
                text: t,
                extra: Default::default(),
            })],
            Content::Blocks(b) => b,
        };
        let mut current = Message {
            role,
            content: Vec::new(),
            reasoning: None,
            tool_calls: Vec::new(),
            tool_call_id: None,
            name: None,
        };
        for (j, block) in blocks.into_iter().enumerate() {
            match block {
                ContentBlock::Text(t) => current.content.push(Part::Text(t.text)),
                ContentBlock::Thinking(t) if role == Role::Assistant => {
                    let reasoning = current.reasoning.get_or_insert_with(Reasoning::default);
                    reasoning.text.push_str(&t.thinking);
                    if let Some(s) = t.signature.filter(|s| !s.is_empty()) {
                        reasoning.signature = Some(s);
                    }
                }
                ContentBlock::Thinking(_) | ContentBlock::RedactedThinking(_) => {}
                ContentBlock::ToolUse(t) if role == Role::Assistant => {
                    current.tool_calls.push(ToolCall {
                        id: t.id,
                        name: t.name,
                        arguments: if t.input.is_null() {
                            "{}".to_owned()
                        } else {
                            t.input.to_string()
                        },
                    })
                }
                ContentBlock::ToolResult(r) if role == Role::User => {
                    if !current.content.is_empty() {
                        prompt.messages.push(std::mem::replace(
                            &mut current,
                            Message { content: Vec::new(), ..Message::user("") },
                        ));
                    }
                    let mut text = r.content.as_ref().map(block_text).unwrap_or_default();
                    if r.is_error == Some(true) {
                        text = format!("[tool error] {text}");
                    }
                    prompt.messages.push(Message {
                        role: Role::Tool,
                        content: vec![Part::Text(text)],
                        reasoning: None,
                        tool_calls: Vec::new(),
                        tool_call_id: Some(r.tool_use_id),
                        name: None,
                    });
                }
                ContentBlock::Other(o)
                    if o.get("type").and_then(Value::as_str) == Some("image") =>
                {
                    let source = o.get("source");
                    let url = match source.and_then(|s| s.get("type")).and_then(Value::as_str) {
                        Some("base64") => format!(
                            "data:{};base64,{}",
                            source
                                .and_then(|s| s.get("media_type"))
                                .and_then(Value::as_str)
                                .unwrap_or("image/png"),
                            source
                                .and_then(|s| s.get("data"))
                                .and_then(Value::as_str)
                                .unwrap_or_default()
                        ),
                        Some("url") => source
                            .and_then(|s| s.get("url"))
                            .and_then(Value::as_str)
                            .unwrap_or_default()
                            .to_owned(),
                        _ => {
                            return Err(ApiError::invalid_param(
                                &format!("messages[{i}].content[{j}].source"),
                                "image source must be base64 or url",
                            ));
                        }
                    };
                    current.content.push(Part::Image { url });
                }
                _ => {
                    return Err(ApiError::invalid_param(
                        &format!("messages[{i}].content[{j}]"),
                        "this content block is not supported here",
                    ));
                }
            }
        }
        if !current.content.is_empty()
            || !current.tool_calls.is_empty()
            || current.reasoning.is_some()
        {
            prompt.messages.push(current);
        }
    }
    for (i, tool) in tools.into_iter().flatten().enumerate() {
        if tool.name.is_empty() {
            return Err(ApiError::invalid_param(
                &format!("tools[{i}].name"),
                "a tool needs a name",
            ));
        }
        prompt.tools.push(Tool {
            name: tool.name,
            description: tool.description,
            parameters: tool
                .input_schema
                .unwrap_or_else(|| json!({"type": "object", "properties": {}})),
        });
    }
    prompt.tool_choice = match tool_choice {
        None | Some(Value::Null) => None,
        Some(v) => Some(match v.get("type").and_then(Value::as_str) {
            Some("auto") => ToolChoice::Auto,
            Some("any") => ToolChoice::Required,
            Some("none") => ToolChoice::None,
            Some("tool") => {
                let name = v.get("name").and_then(Value::as_str).unwrap_or_default();
                if !prompt.tools.iter().any(|t| t.name == name) {
                    return Err(ApiError::invalid_param(
                        "tool_choice",
                        format!("tool_choice names `{name}`, which is not in `tools`"),
                    ));
                }
                ToolChoice::Function(name.to_owned())
            }
            _ => {
                return Err(ApiError::invalid_param(
                    "tool_choice",
                    "tool_choice.type must be auto, any, tool or none",
                ));
            }
        }),
    };
    prompt.max_tokens = max_tokens;
    prompt.temperature = temperature;
    prompt.top_p = top_p;
    prompt.stop = stop_sequences.unwrap_or_default();
    prompt.stream = stream.unwrap_or(false);
    // Anthropic-only fields (`thinking`, `metadata`, `top_k`, …) are not passed to other APIs.
    if let Some(top_k) = extra.remove("top_k") {
        prompt.passthrough.insert("top_k".to_owned(), top_k);
    }
    Ok(prompt)
}

fn stop_reason(finish: Option<&FinishReason>, has_tools: bool) -> &'static str {
    match finish {
        _ if has_tools => "tool_use",
        Some(FinishReason::Length) => "max_tokens",
        Some(FinishReason::ContentFilter) => "refusal",
        _ => "end_turn",
    }
}

fn usage_json(u: &Usage) -> Value {
    let fresh = u.input_tokens.saturating_sub(u.cache_read_tokens + u.cache_write_tokens);
    json!({
        "input_tokens": fresh,
        "output_tokens": u.output_tokens,
        "cache_read_input_tokens": u.cache_read_tokens,
        "cache_creation_input_tokens": u.cache_write_tokens,
    })
}

/// A non-streaming message.
pub fn message(id: &str, model: &str, c: &Collected) -> Value {
    let mut content = Vec::new();
    if !c.reasoning.is_empty() {
        content
            .push(json!({"type": "thinking", "thinking": c.reasoning, "signature": c.signature}));
    }
    if !c.text.is_empty() || c.tool_calls.is_empty() {
        content.push(json!({"type": "text", "text": c.text}));
    }
    for t in &c.tool_calls {
        let input: Value = serde_json::from_str(&t.arguments).unwrap_or_else(|_| json!({}));
        content.push(json!({"type": "tool_use", "id": t.id, "name": t.name, "input": input}));
    }
    json!({
        "id": id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason(c.finish.as_ref(), !c.tool_calls.is_empty()),
        "stop_sequence": null,
        "usage": usage_json(&c.usage.unwrap_or_default()),
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Block {
    Thinking,
    Text,
    Tool(u32),
}

/// Renders Anthropic stream events.
#[derive(Debug)]
pub struct MessagesRender {
    id: String,
    model: String,
    open: Option<Block>,
    index: u32,
    usage: Option<Usage>,
    has_tools: bool,
}

impl MessagesRender {
    pub fn new(model: String) -> Self {
        MessagesRender {
            id: crate::new_id("msg_"),
            model,
            open: None,
            index: 0,
            usage: None,
            has_tools: false,
        }
    }

    fn close(&mut self, out: &mut Vec<u8>) {
        if self.open.take().is_some() {
            sse::named(
                out,
                "content_block_stop",
                &json!({"type": "content_block_stop", "index": self.index}),
            );
            self.index += 1;
        }
    }

    fn open(&mut self, block: Block, start: Value, out: &mut Vec<u8>) {
        if self.open == Some(block) {
            return;
        }
        self.close(out);
        self.open = Some(block);
        sse::named(
            out,
            "content_block_start",
            &json!({"type": "content_block_start", "index": self.index, "content_block": start}),
        );
    }

    fn delta(&self, out: &mut Vec<u8>, delta: Value) {
        sse::named(
            out,
            "content_block_delta",
            &json!({"type": "content_block_delta", "index": self.index, "delta": delta}),
        );
    }
}

impl Render for MessagesRender {
    fn start(&mut self, out: &mut Vec<u8>) {
        sse::named(
            out,
            "message_start",
            &json!({"type": "message_start", "message": {
                "id": self.id, "type": "message", "role": "assistant", "model": self.model, "content": [],
                "stop_reason": null, "stop_sequence": null,
                "usage": {"input_tokens": 0, "output_tokens": 0},
            }}),
        );
        sse::named(out, "ping", &json!({"type": "ping"}));
    }

    fn event(&mut self, event: Event, out: &mut Vec<u8>) -> bool {
        match event {
            Event::ReasoningDelta(r) => {
                self.open(
                    Block::Thinking,
                    json!({"type": "thinking", "thinking": "", "signature": ""}),
                    out,
                );
                self.delta(out, json!({"type": "thinking_delta", "thinking": r}));
            }
            Event::ReasoningSignature(s) => {
                self.open(
                    Block::Thinking,
                    json!({"type": "thinking", "thinking": "", "signature": ""}),
                    out,
                );
                self.delta(out, json!({"type": "signature_delta", "signature": s}));
            }
            Event::TextDelta(t) => {
                self.open(Block::Text, json!({"type": "text", "text": ""}), out);
                self.delta(out, json!({"type": "text_delta", "text": t}));
            }
            Event::ToolCallDelta { index, id, name, arguments } => {
                self.has_tools = true;
                if self.open != Some(Block::Tool(index)) {
                    let id = id.unwrap_or_else(|| crate::new_id("toolu_"));
                    self.open(Block::Tool(index), json!({"type": "tool_use", "id": id, "name": name.unwrap_or_default(), "input": {}}), out);
                }
                if !arguments.is_empty() {
                    self.delta(out, json!({"type": "input_json_delta", "partial_json": arguments}));
                }
            }
            Event::Usage(u) => self.usage = Some(u),
            Event::Finish(reason) => {
                self.close(out);
                let usage = self.usage.unwrap_or_default();
                let mut u = usage_json(&usage);
                u["output_tokens"] = json!(usage.output_tokens);
                sse::named(
                    out,
                    "message_delta",
                    &json!({"type": "message_delta", "delta": {"stop_reason": stop_reason(Some(&reason), self.has_tools), "stop_sequence": null}, "usage": u}),
                );
                sse::named(out, "message_stop", &json!({"type": "message_stop"}));
                return true;
            }
            Event::Error(e) => {
                let err = ApiError::from_upstream(&e).shaped(Shape::Anthropic);
                sse::named(out, "error", &err.body());
                return true;
            }
        }
        false
    }
}
