//! `POST /v1/messages` (Anthropic Messages in, any upstream out) and
//! `POST /v1/messages/count_tokens` (the upstream's own count where it has one: Anthropic's
//! count endpoint, llama.cpp's chat template and tokenizer; else an estimate, marked).
//!
//! Invariant: thinking arrives only in `thinking` blocks (`thinking_delta`, `signature_delta`),
//! never in `text` blocks; errors are in Anthropic's shape, mid-stream ones as an `error`
//! event. An Anthropic upstream gets the request as the client sent it (`AnthropicNative`);
//! what another upstream cannot take is dropped and named in `x-hearth-dropped`.

use std::future::Future;
use std::sync::Arc;

use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use hearth_config::{Api, Chain, Config};
use hearth_upstream::prompt::Reasoning;
use hearth_upstream::{
    AnthropicNative, Event, FinishReason, Message, OutputFormat, Part, Prompt, Role, Tool,
    ToolCall, ToolChoice, Usage,
};
use hearth_wire::anthropic::{Content, ContentBlock, MessagesRequest};
use serde::Serialize;
use serde_json::{Map, Value, json};

use super::{Cx, Endpoint, Parsed, Whole, dropped_header};
use crate::error::{ApiError, Shape};
use crate::plan::{self, Plan};
use crate::relay::{self, Collected};
use crate::sse::{self, Made, Render};
use crate::{AppState, body_or_error, json_response};

pub use super::HEADER_DROPPED;
/// `estimate` when `message_start.usage.input_tokens` is hearth's estimate (the upstream
/// reports its count only at the end, in `message_delta`).
pub const HEADER_USAGE_ESTIMATE: HeaderName = HeaderName::from_static("x-hearth-usage-estimate");
/// Where a `count_tokens` answer comes from: `anthropic`, `llama.cpp`, or `estimate`.
pub const HEADER_COUNT_SOURCE: HeaderName = HeaderName::from_static("x-hearth-count-source");

/// The Messages endpoint on the one pipeline: the prompt's tokens by estimate (for
/// `message_start`).
#[derive(Debug, Clone)]
pub(crate) struct Messages {
    estimate: u64,
}

/// What the run needs: the numbers an overflow error is given when the upstream had none.
#[derive(Debug)]
pub(crate) struct Overflow {
    estimate: u64,
    window: Option<u64>,
}

impl Endpoint for Messages {
    type Request = MessagesRequest;
    type Run = Overflow;
    type Render = MessagesRender;

    const SHAPE: Shape = Shape::Anthropic;
    const PLAN_FIRST: bool = true;

    fn model(request: &MessagesRequest) -> &str {
        &request.model
    }

    fn parse(_cx: &Cx<'_>, request: MessagesRequest) -> Result<Parsed<Self>, ApiError> {
        let Converted { prompt, dropped } = to_prompt(request)?;
        let estimate = estimate_tokens(&prompt);
        Ok(Parsed { prompt, endpoint: Messages { estimate }, dropped, logprobs: false })
    }

    fn planned(
        &mut self,
        cx: &Cx<'_>,
        plan: &mut Plan,
        prompt: &mut Prompt,
    ) -> impl Future<Output = Result<Overflow, ApiError>> + Send {
        let run = attach_native(cx.config, plan, cx.headers, cx.body, prompt).map(|()| Overflow {
            estimate: self.estimate,
            window: context_window(cx.config, plan),
        });
        std::future::ready(run)
    }

    fn run_error(overflow: &Overflow, e: ApiError) -> ApiError {
        fill_overflow(e, overflow.estimate, overflow.window)
    }

    fn render(
        self,
        _app: &AppState,
        _config: &Config,
        shown: String,
        _made: Made<'_>,
    ) -> MessagesRender {
        MessagesRender::new(shown, self.estimate)
    }

    fn whole(self, _cx: &Cx<'_>, whole: Whole<'_>) -> Response {
        json_response(
            StatusCode::OK,
            &message(&crate::new_id("msg_"), whole.shown, whole.collected),
        )
    }

    fn stream_headers(headers: &mut HeaderMap) {
        headers.insert(HEADER_USAGE_ESTIMATE, HeaderValue::from_static("estimate"));
    }

    /// Only where the answering upstream (from `x-hearth-provider` and `x-hearth-model`) is not
    /// Anthropic: an Anthropic upstream got the whole body. Messages has no logprobs.
    fn note_dropped(
        config: &Config,
        _chain: &Chain,
        _logprobs: bool,
        dropped: Vec<String>,
        response: &mut Response,
    ) {
        if dropped.is_empty() {
            return;
        }
        let h = response.headers();
        let answered = match (
            h.get(relay::HEADER_PROVIDER).and_then(|v| v.to_str().ok()),
            h.get(relay::HEADER_MODEL).and_then(|v| v.to_str().ok()),
        ) {
            (Some(p), Some(m)) => hearth_config::ModelRef::new(p, m),
            _ => return,
        };
        if api_of(config, &answered) == Some(Api::AnthropicMessages) {
            return;
        }
        dropped_header(&dropped, response.headers_mut());
    }
}

/// A request, planned and converted (`count_tokens`).
struct Counted {
    plan: Plan,
    config: Arc<Config>,
    converted: Converted,
}

fn parse(app: &AppState, headers: &HeaderMap, body: &Bytes) -> Result<Counted, ApiError> {
    let request: MessagesRequest =
        serde_json::from_slice(body).map_err(|e| ApiError::from_json(&e))?;
    let model = request.model.clone();
    let config = app.config.load_full();
    let plan = plan::plan(&config, &model, headers)?;
    let mut converted = to_prompt(request)?;
    attach_native(&config, &plan, headers, body, &mut converted.prompt)?;
    Ok(Counted { plan, config, converted })
}

/// An Anthropic candidate gets the body as sent; only direct runs (an agent run builds its own
/// prompt from the session).
fn attach_native(
    config: &Config,
    plan: &Plan,
    headers: &HeaderMap,
    body: &Bytes,
    prompt: &mut Prompt,
) -> Result<(), ApiError> {
    if !plan.agent_run
        && plan.chain.candidates.iter().any(|r| api_of(config, r) == Some(Api::AnthropicMessages))
    {
        let body: Map<String, Value> =
            serde_json::from_slice(body).map_err(|e| ApiError::from_json(&e))?;
        let beta = headers.get("anthropic-beta").and_then(|v| v.to_str().ok()).map(str::to_owned);
        prompt.anthropic_native = Some(Arc::new(AnthropicNative { body, beta }));
    }
    Ok(())
}

/// The API a model ref is called with.
fn api_of(config: &Config, model_ref: &hearth_config::ModelRef) -> Option<Api> {
    config.resolve_model_ref(model_ref).ok().map(|r| r.model.api)
}

/// Tokens of a prompt by hearth's estimate (4 characters a token, everything the model reads).
fn estimate_tokens(prompt: &Prompt) -> u64 {
    (prompt.full_char_count().div_ceil(4).max(1)) as u64
}

/// The context window of the plan's first candidate, from the config.
fn context_window(config: &Config, plan: &Plan) -> Option<u64> {
    let first = plan.chain.candidates.first()?;
    let resolved = config.resolve_model_ref(first).ok()?;
    resolved.model.context_tokens.or(resolved.model.context_window)
}

/// An overflow without the upstream's numbers gets the ones hearth knows: the window from the
/// config, the prompt by estimate when that is over it (Claude Code reads both).
fn fill_overflow(mut e: ApiError, estimate: u64, window: Option<u64>) -> ApiError {
    if let Some(o) = e.overflow.as_mut() {
        if o.context_size.is_none() {
            o.context_size = window;
        }
        if o.prompt_tokens.is_none() && o.context_size.is_some_and(|m| estimate > m) {
            o.prompt_tokens = Some(estimate);
        }
    }
    e
}

pub async fn count_tokens(
    State(app): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    match count(&app, &headers, body).await {
        Ok(response) => response,
        Err(e) => e.shaped(Shape::Anthropic).into_response(),
    }
}

async fn count(
    app: &AppState,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body_or_error(body, Shape::Anthropic)?;
    let Counted { plan, config, converted } = parse(app, headers, &body)?;
    let prompt = converted.prompt;
    let answer = |tokens: u64, source: &'static str| {
        let mut response = json_response(StatusCode::OK, &json!({"input_tokens": tokens}));
        response.headers_mut().insert(HEADER_COUNT_SOURCE, HeaderValue::from_static(source));
        response
    };
    if let Some(first) = plan.chain.candidates.first()
        && let Ok(resolved) = config.resolve_model_ref(first)
    {
        let provider = resolved.provider;
        let model = resolved.model;
        match model.api {
            Api::AnthropicMessages => {
                let mut native =
                    prompt.anthropic_native.as_ref().map(|n| n.body.clone()).unwrap_or_default();
                native.insert("model".into(), json!(model.id));
                for field in [
                    "max_tokens",
                    "stream",
                    "temperature",
                    "top_p",
                    "top_k",
                    "stop_sequences",
                    "metadata",
                ] {
                    native.remove(field);
                }
                match app.probes.count_anthropic_tokens(provider, &Value::Object(native)).await {
                    Ok(Some(n)) => return Ok(answer(n, "anthropic")),
                    Ok(None) => {}
                    Err(e) => return Err(counted_refusal(&e)),
                }
            }
            Api::OpenaiCompletions => {
                let target = hearth_upstream::Target {
                    provider,
                    model: &model,
                    params: None,
                    served_max: None,
                };
                let Ok(mut chat) = hearth_upstream::encode::encode_json(&prompt, &target) else {
                    return Ok(answer(estimate_tokens(&prompt), "estimate"));
                };
                if let Some(map) = chat.as_object_mut() {
                    for field in ["stream", "stream_options"] {
                        map.remove(field);
                    }
                }
                if let Some(n) = app.probes.count_chat_tokens(provider, &chat).await {
                    return Ok(answer(n, "llama.cpp"));
                }
            }
            _ => {}
        }
    }
    Ok(answer(estimate_tokens(&prompt), "estimate"))
}

/// An upstream's refusal to count, as the caller's error (its 4xx kept).
fn counted_refusal(e: &hearth_upstream::UpstreamError) -> ApiError {
    match e.status.and_then(|s| StatusCode::from_u16(s).ok()) {
        Some(status) if status.is_client_error() => {
            ApiError::new(status, "invalid_request_error", e.to_string())
        }
        _ => ApiError::from_upstream(e),
    }
}

/// The text of a `tool_result`'s content, and its images.
fn tool_result_parts(value: &Value, param: &str) -> Result<Vec<Part>, ApiError> {
    match value {
        Value::String(s) => Ok(vec![Part::Text(s.clone())]),
        Value::Array(items) => {
            let mut parts = Vec::new();
            for (k, item) in items.iter().enumerate() {
                match item.get("type").and_then(Value::as_str) {
                    Some("image") => parts.push(image_part(item, &format!("{param}[{k}]"))?),
                    _ => {
                        if let Some(t) = item.get("text").and_then(Value::as_str) {
                            parts.push(Part::Text(t.to_owned()));
                        }
                    }
                }
            }
            Ok(parts)
        }
        _ => Ok(Vec::new()),
    }
}

/// An Anthropic image block as an image part (`data:` URL for base64 sources).
fn image_part(block: &Value, param: &str) -> Result<Part, ApiError> {
    let source = block.get("source");
    let field = |name: &str| source.and_then(|s| s.get(name)).and_then(Value::as_str);
    let url = match field("type") {
        Some("base64") => format!(
            "data:{};base64,{}",
            field("media_type").unwrap_or("image/png"),
            field("data").unwrap_or_default()
        ),
        Some("url") => field("url").unwrap_or_default().to_owned(),
        _ => {
            return Err(ApiError::invalid_param(
                &format!("{param}.source"),
                "image source must be base64 or url",
            ));
        }
    };
    Ok(Part::Image { url })
}

/// The text of a system message's content.
fn content_text(content: Content) -> String {
    match content {
        Content::Text(t) => t,
        Content::Blocks(blocks) => blocks
            .into_iter()
            .filter_map(|b| match b {
                ContentBlock::Text(t) => Some(t.text),
                _ => None,
            })
            .collect::<Vec<_>>()
            .join("\n"),
    }
}

/// A Messages request as the canonical prompt, and what it leaves out for an upstream that is
/// not Anthropic (`tools[N] (type)`, `messages[i].content[j] (type)`).
#[derive(Debug)]
pub struct Converted {
    pub prompt: Prompt,
    pub dropped: Vec<String>,
}

/// The canonical prompt of a Messages request.
///
/// System messages inside `messages` (Claude Code sends one on the first request of a
/// session) are folded into the system prompt in order, after the top-level `system`: local
/// chat templates take one system message, first (docs/upstream.md).
pub fn to_prompt(request: MessagesRequest) -> Result<Converted, ApiError> {
    let MessagesRequest {
        messages,
        max_tokens,
        system,
        stream,
        temperature,
        tools,
        tool_choice,
        stop_sequences,
        thinking,
        mut extra,
        ..
    } = request;
    let mut dropped = Vec::new();
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
    super::chat::check_sampling(None, top_p)?;
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
            "system" => {
                let text = content_text(message.content);
                if !text.is_empty() {
                    prompt.system.push(text);
                }
                continue;
            }
            other => {
                return Err(ApiError::invalid_param(
                    &format!("messages[{i}].role"),
                    format!("role `{other}` is not supported (user, assistant, system)"),
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
                    let param = format!("messages[{i}].content[{j}].content");
                    let mut content = match &r.content {
                        Some(c) => tool_result_parts(c, &param)?,
                        None => Vec::new(),
                    };
                    if r.is_error == Some(true) {
                        match content.iter_mut().find_map(|p| match p {
                            Part::Text(t) => Some(t),
                            Part::Image { .. } => None,
                        }) {
                            Some(t) => *t = format!("[tool error] {t}"),
                            None => content.insert(0, Part::Text("[tool error] ".to_owned())),
                        }
                    }
                    // Text parts of one result are one text (what the encoders send as the
                    // tool message); images keep their place after it.
                    let text: String = content
                        .iter()
                        .filter_map(|p| match p {
                            Part::Text(t) => Some(t.as_str()),
                            Part::Image { .. } => None,
                        })
                        .collect();
                    let mut parts = vec![Part::Text(text)];
                    parts.extend(content.into_iter().filter(|p| matches!(p, Part::Image { .. })));
                    prompt.messages.push(Message {
                        role: Role::Tool,
                        content: parts,
                        reasoning: None,
                        tool_calls: Vec::new(),
                        tool_call_id: Some(r.tool_use_id),
                        name: None,
                    });
                }
                ContentBlock::Other(o)
                    if o.get("type").and_then(Value::as_str) == Some("image") =>
                {
                    let block = Value::Object(o.into_iter().collect());
                    current
                        .content
                        .push(image_part(&block, &format!("messages[{i}].content[{j}]"))?);
                }
                ContentBlock::Other(o) => {
                    // Server-tool blocks and others no canonical part holds: only an Anthropic
                    // upstream sees them.
                    let kind = o.get("type").and_then(Value::as_str).unwrap_or("unknown");
                    dropped.push(format!("messages[{i}].content[{j}] ({kind})"));
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
        // Typed tools (`web_search_20250305`, `bash_20250124`, `text_editor_…`, `computer_…`)
        // run on Anthropic's side or need its built-in schema: other upstreams cannot use them.
        if let Some(kind) = tool.extra.get("type").and_then(Value::as_str)
            && kind != "custom"
        {
            dropped.push(format!("tools[{i}] ({kind})"));
            continue;
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
    // Structured output (`output_config.format`, a JSON Schema) has a canonical form every
    // upstream takes (chat `response_format`, Responses `text.format`, Ollama `format`).
    if let Some(format) =
        extra.get("output_config").and_then(|c| c.get("format")).filter(|f| !f.is_null())
    {
        prompt.output_format =
            Some(OutputFormat::from_responses(format).map_err(|(at, message)| {
                // Anthropic's error shape has no `param`: the message names the field.
                let field = format!("output_config.format{at}");
                ApiError::invalid_param(&field, format!("{field}: {message}"))
            })?);
    }
    // `thinking` is a thinking level for every other API (`hearth_upstream::thinking`); a
    // type Anthropic does not define is the caller's error.
    if let Some(t) = thinking {
        let value = serde_json::json!({"type": t.kind, "budget_tokens": t.budget_tokens});
        prompt.thinking =
            Some(hearth_upstream::thinking::anthropic_request(&value).ok_or_else(|| {
                ApiError::invalid_param(
                    "thinking.type",
                    format!(
                        "thinking.type: unknown type `{}` (enabled, adaptive, disabled)",
                        t.kind.chars().take(64).collect::<String>()
                    ),
                )
            })?);
    }
    // Anthropic-only fields (`metadata`, `context_management`, the rest of `output_config`,
    // …) are not passed to other APIs; an Anthropic upstream gets them with the whole body.
    if let Some(top_k) = extra.remove("top_k") {
        prompt.passthrough.insert("top_k".to_owned(), top_k);
    }
    Ok(Converted { prompt, dropped })
}

fn stop_reason(finish: Option<&FinishReason>, has_tools: bool) -> &'static str {
    match finish {
        _ if has_tools => "tool_use",
        Some(FinishReason::Length) => "max_tokens",
        Some(FinishReason::ContentFilter) => "refusal",
        _ => "end_turn",
    }
}

/// Anthropic's `usage`: `input_tokens` are the fresh ones (cache reads and writes apart).
#[derive(Debug, Serialize)]
struct UsageOut {
    input_tokens: u64,
    output_tokens: u64,
    cache_read_input_tokens: u64,
    cache_creation_input_tokens: u64,
}

impl From<&Usage> for UsageOut {
    fn from(u: &Usage) -> Self {
        UsageOut {
            input_tokens: u.input_tokens.saturating_sub(u.cache_read_tokens + u.cache_write_tokens),
            output_tokens: u.output_tokens,
            cache_read_input_tokens: u.cache_read_tokens,
            cache_creation_input_tokens: u.cache_write_tokens,
        }
    }
}

/// A `message` (field order as Anthropic writes it): the whole answer, or the empty one of
/// `message_start`.
#[derive(Debug, Serialize)]
pub struct MessageBody<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    role: &'static str,
    model: &'a str,
    content: Vec<ContentOut<'a>>,
    stop_reason: Option<&'static str>,
    stop_sequence: Option<()>,
    usage: UsageOut,
}

/// A content block.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum BlockOut<'a> {
    Thinking { thinking: &'a str, signature: &'a str },
    Text { text: &'a str },
    ToolUse { id: &'a str, name: &'a str, input: Value },
}

/// A content block of an answer: one hearth writes, or one the Anthropic upstream sent that no
/// canonical event holds (`server_tool_use`, `web_search_tool_result`, …), as it came.
#[derive(Debug, Serialize)]
#[serde(untagged)]
enum ContentOut<'a> {
    Block(BlockOut<'a>),
    Native(&'a Value),
}

/// A whole message, serialized straight from the collected answer.
pub fn message<'a>(id: &'a str, model: &'a str, c: &'a Collected) -> MessageBody<'a> {
    let mut content = Vec::new();
    if !c.reasoning.is_empty() {
        content.push(ContentOut::Block(BlockOut::Thinking {
            thinking: &c.reasoning,
            signature: &c.signature,
        }));
    }
    // Native blocks go back where they came, between the pieces of text around them.
    let mut at = 0;
    for (offset, block) in &c.native {
        if let Some(piece) = c.text.get(at..*offset).filter(|p| !p.is_empty()) {
            content.push(ContentOut::Block(BlockOut::Text { text: piece }));
            at = *offset;
        }
        content.push(ContentOut::Native(block));
    }
    let rest = c.text.get(at..).unwrap_or_default();
    if !rest.is_empty() || (c.tool_calls.is_empty() && c.native.is_empty()) {
        content.push(ContentOut::Block(BlockOut::Text { text: rest }));
    }
    for t in &c.tool_calls {
        let input: Value = serde_json::from_str(&t.arguments).unwrap_or_else(|_| json!({}));
        content.push(ContentOut::Block(BlockOut::ToolUse { id: &t.id, name: &t.name, input }));
    }
    MessageBody {
        id,
        kind: "message",
        role: "assistant",
        model,
        content,
        stop_reason: Some(stop_reason(c.finish.as_ref(), !c.tool_calls.is_empty())),
        stop_sequence: None,
        usage: UsageOut::from(&c.usage.unwrap_or_default()),
    }
}

/// A content block's delta.
#[derive(Debug, Serialize)]
#[serde(tag = "type")]
enum DeltaOut<'a> {
    #[serde(rename = "thinking_delta")]
    Thinking { thinking: &'a str },
    #[serde(rename = "signature_delta")]
    Signature { signature: &'a str },
    #[serde(rename = "text_delta")]
    Text { text: &'a str },
    #[serde(rename = "input_json_delta")]
    InputJson { partial_json: &'a str },
}

/// `message_delta`'s `delta`.
#[derive(Debug, Serialize)]
struct StopOut {
    stop_reason: &'static str,
    stop_sequence: Option<()>,
}

/// A stream event (its `type` is its SSE event name), but the `error` event.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum StreamEvent<'a> {
    MessageStart {
        message: MessageBody<'a>,
    },
    Ping,
    /// A hearth notice: an event type the Anthropic SDKs skip (they act on the types they
    /// know).
    HearthNotice {
        message: &'a str,
    },
    ContentBlockStart {
        index: u32,
        content_block: ContentOut<'a>,
    },
    ContentBlockDelta {
        index: u32,
        delta: DeltaOut<'a>,
    },
    ContentBlockStop {
        index: u32,
    },
    MessageDelta {
        delta: StopOut,
        usage: UsageOut,
    },
    MessageStop,
}

impl StreamEvent<'_> {
    fn write(&self, out: &mut Vec<u8>) {
        let name = match self {
            StreamEvent::MessageStart { .. } => "message_start",
            StreamEvent::Ping => "ping",
            StreamEvent::HearthNotice { .. } => "hearth_notice",
            StreamEvent::ContentBlockStart { .. } => "content_block_start",
            StreamEvent::ContentBlockDelta { .. } => "content_block_delta",
            StreamEvent::ContentBlockStop { .. } => "content_block_stop",
            StreamEvent::MessageDelta { .. } => "message_delta",
            StreamEvent::MessageStop => "message_stop",
        };
        sse::named(out, name, self);
    }
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
    /// Prompt tokens by estimate, for `message_start` (the real count comes in `message_delta`).
    input_estimate: u64,
    open: Option<Block>,
    index: u32,
    usage: Option<Usage>,
    has_tools: bool,
}

impl MessagesRender {
    pub fn new(model: String, input_estimate: u64) -> Self {
        MessagesRender {
            id: crate::new_id("msg_"),
            model,
            input_estimate,
            open: None,
            index: 0,
            usage: None,
            has_tools: false,
        }
    }

    fn close(&mut self, out: &mut Vec<u8>) {
        if self.open.take().is_some() {
            StreamEvent::ContentBlockStop { index: self.index }.write(out);
            self.index += 1;
        }
    }

    fn open(&mut self, block: Block, start: BlockOut<'_>, out: &mut Vec<u8>) {
        if self.open == Some(block) {
            return;
        }
        self.close(out);
        self.open = Some(block);
        StreamEvent::ContentBlockStart {
            index: self.index,
            content_block: ContentOut::Block(start),
        }
        .write(out);
    }

    /// A block the upstream sent whole: started and stopped at once, in its place. Its
    /// `input` (a `server_tool_use`'s) streams as one `input_json_delta`, as Anthropic sends
    /// it, so a client that builds the input from the deltas gets it too.
    fn native(&mut self, mut block: Value, out: &mut Vec<u8>) {
        self.close(out);
        let input = block
            .as_object_mut()
            .and_then(|b| b.get_mut("input"))
            .map(|input| std::mem::replace(input, Value::Object(Map::new())));
        StreamEvent::ContentBlockStart {
            index: self.index,
            content_block: ContentOut::Native(&block),
        }
        .write(out);
        if let Some(input) = input {
            let partial_json = input.to_string();
            self.delta(out, DeltaOut::InputJson { partial_json: &partial_json });
        }
        StreamEvent::ContentBlockStop { index: self.index }.write(out);
        self.index += 1;
    }

    fn delta(&self, out: &mut Vec<u8>, delta: DeltaOut<'_>) {
        StreamEvent::ContentBlockDelta { index: self.index, delta }.write(out);
    }
}

impl Render for MessagesRender {
    fn start(&mut self, out: &mut Vec<u8>) {
        let message = MessageBody {
            id: &self.id,
            kind: "message",
            role: "assistant",
            model: &self.model,
            content: Vec::new(),
            stop_reason: None,
            stop_sequence: None,
            usage: UsageOut {
                input_tokens: self.input_estimate,
                output_tokens: 0,
                cache_read_input_tokens: 0,
                cache_creation_input_tokens: 0,
            },
        };
        StreamEvent::MessageStart { message }.write(out);
        StreamEvent::Ping.write(out);
    }

    fn notice(&mut self, text: &str, out: &mut Vec<u8>) {
        StreamEvent::HearthNotice { message: text }.write(out);
    }

    fn resume(&mut self, early: Self) {
        self.id = early.id;
    }

    /// Anthropic's own keep-alive: the SDKs skip `ping` wherever it comes.
    fn progress(_: &hearth_upstream::Progress, out: &mut Vec<u8>) {
        StreamEvent::Ping.write(out);
    }

    fn event(&mut self, event: Event, out: &mut Vec<u8>) -> bool {
        const THINKING: BlockOut<'static> = BlockOut::Thinking { thinking: "", signature: "" };
        match event {
            Event::ReasoningDelta(r) => {
                self.open(Block::Thinking, THINKING, out);
                self.delta(out, DeltaOut::Thinking { thinking: &r });
            }
            // Anthropic Messages has no logprobs; progress goes out while the run waits.
            Event::Logprobs(_) | Event::Progress(_) => {}
            Event::Native(block) => self.native(*block, out),
            Event::ReasoningSignature(s) => {
                self.open(Block::Thinking, THINKING, out);
                self.delta(out, DeltaOut::Signature { signature: &s });
            }
            Event::TextDelta(t) => {
                self.open(Block::Text, BlockOut::Text { text: "" }, out);
                self.delta(out, DeltaOut::Text { text: &t });
            }
            Event::ToolCallDelta { index, id, name, arguments } => {
                self.has_tools = true;
                if self.open != Some(Block::Tool(index)) {
                    let id = id.unwrap_or_else(|| crate::new_id("toolu_"));
                    let name = name.unwrap_or_default();
                    let start = BlockOut::ToolUse {
                        id: &id,
                        name: &name,
                        input: Value::Object(Map::new()),
                    };
                    self.open(Block::Tool(index), start, out);
                }
                if !arguments.is_empty() {
                    self.delta(out, DeltaOut::InputJson { partial_json: &arguments });
                }
            }
            Event::Usage(u) => self.usage = Some(u),
            Event::Finish(reason) => {
                self.close(out);
                let usage = self.usage.unwrap_or_default();
                StreamEvent::MessageDelta {
                    delta: StopOut {
                        stop_reason: stop_reason(Some(&reason), self.has_tools),
                        stop_sequence: None,
                    },
                    usage: UsageOut::from(&usage),
                }
                .write(out);
                StreamEvent::MessageStop.write(out);
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
