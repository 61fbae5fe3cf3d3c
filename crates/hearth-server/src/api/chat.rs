//! `POST /v1/chat/completions`: OpenAI chat in, canonical prompt through the router, OpenAI
//! chat out (a `chat.completion`, or `chat.completion.chunk` SSE ending in `data: [DONE]`).
//!
//! Invariant: reasoning goes only to `reasoning_content` (message or delta), never to
//! `content`; an upstream failure mid-stream ends the stream with an `error` data frame and no
//! `[DONE]`.

use std::future::Future;

use axum::http::StatusCode;
use axum::response::Response;
use hearth_config::Config;
use hearth_upstream::prompt::Reasoning;
use hearth_upstream::{
    Event, FinishReason, Message, Part, Prompt, Role, TokenLogprob, Tool, ToolCall, ToolChoice,
    Usage,
};
use hearth_wire::openai_chat::{ChatRequest, MessageContent};
use serde::Serialize;
use serde_json::Value;

use super::{Cx, Endpoint, Parsed, Whole};
use crate::error::{ApiError, Shape};
use crate::plan::Plan;
use crate::relay::Collected;
use crate::sse::{self, Made, Render};
use crate::{AppState, json_response};

pub const OBJECT_COMPLETION: &str = "chat.completion";
pub const OBJECT_CHUNK: &str = "chat.completion.chunk";

/// Caller options that shape the rendering, not the prompt.
#[derive(Debug, Clone, Default)]
pub struct Options {
    pub stream: bool,
    pub include_usage: bool,
    /// Tools left out, as `tools[2] (hosted)`, for `x-hearth-dropped`.
    pub dropped: Vec<String>,
    /// Names of `custom` (free-form) tools: sent up as functions taking `{"input": string}`,
    /// their calls rendered back as `{"type":"custom","custom":{name,input}}`.
    pub custom_tools: Vec<String>,
    /// The caller asked for token logprobs (`logprobs: true`): they are rendered where the
    /// upstream reported them.
    pub logprobs: bool,
}

/// The free-form input of a custom tool's call, from the function arguments it went up as.
pub(crate) fn custom_input(arguments: &str) -> String {
    serde_json::from_str::<Value>(arguments)
        .ok()
        .and_then(|v| v.get("input").and_then(Value::as_str).map(str::to_owned))
        .unwrap_or_else(|| arguments.to_owned())
}

/// The function a `custom` tool goes up as.
pub(crate) fn custom_parameters() -> Value {
    serde_json::json!({"type": "object", "properties": {"input": {"type": "string", "description": "The tool's free-form input."}}, "required": ["input"]})
}

/// The chat endpoint on the one pipeline: what its renderers need of the request.
#[derive(Debug, Clone)]
pub(crate) struct Chat(Options);

impl Endpoint for Chat {
    type Request = ChatRequest;
    type Run = ();
    type Render = ChatRender;

    const SHAPE: Shape = Shape::OpenAi;

    fn enabled(config: &Config) -> Result<(), ApiError> {
        super::switch(config.gateway.chat_completions, "chat completions", "chatCompletions")
    }

    fn model(request: &ChatRequest) -> &str {
        &request.model
    }

    fn parse(_cx: &Cx<'_>, request: ChatRequest) -> Result<Parsed<Self>, ApiError> {
        let (prompt, mut options) = to_prompt(request)?;
        Ok(Parsed {
            prompt,
            dropped: std::mem::take(&mut options.dropped),
            logprobs: options.logprobs,
            endpoint: Chat(options),
        })
    }

    fn planned(
        &mut self,
        _cx: &Cx<'_>,
        _plan: &mut Plan,
        _prompt: &mut Prompt,
    ) -> impl Future<Output = Result<(), ApiError>> + Send {
        std::future::ready(Ok(()))
    }

    fn render(
        self,
        _app: &AppState,
        _config: &Config,
        shown: String,
        _made: Made<'_>,
    ) -> ChatRender {
        let Chat(options) = self;
        ChatRender::new(shown, options.include_usage)
            .with_custom_tools(options.custom_tools)
            .with_logprobs(options.logprobs)
    }

    fn whole(self, _cx: &Cx<'_>, whole: Whole<'_>) -> Response {
        let Chat(options) = self;
        json_response(
            StatusCode::OK,
            &completion(
                &crate::new_id("chatcmpl-"),
                whole.shown,
                whole.collected,
                &options.custom_tools,
                options.logprobs,
            ),
        )
    }
}

fn text_of(
    content: Option<MessageContent>,
    field: &str,
    images: bool,
) -> Result<Vec<Part>, ApiError> {
    match content {
        None => Ok(Vec::new()),
        Some(MessageContent::Text(t)) => Ok(vec![Part::Text(t)]),
        Some(MessageContent::Parts(parts)) => {
            let mut out = Vec::with_capacity(parts.len());
            for (i, part) in parts.into_iter().enumerate() {
                match part.kind.as_str() {
                    "text" | "input_text" | "output_text" => {
                        out.push(Part::Text(part.text.unwrap_or_default()))
                    }
                    "image_url" if images => {
                        let url = match part.extra.get("image_url") {
                            Some(Value::String(u)) => u.clone(),
                            Some(Value::Object(o)) => {
                                o.get("url").and_then(Value::as_str).unwrap_or_default().to_owned()
                            }
                            _ => String::new(),
                        };
                        if url.is_empty() {
                            return Err(ApiError::invalid_param(
                                &format!("{field}[{i}].image_url"),
                                "image_url needs a url",
                            ));
                        }
                        out.push(Part::Image { url });
                    }
                    other => {
                        return Err(ApiError::invalid_param(
                            &format!("{field}[{i}].type"),
                            format!("content part type `{other}` is not supported here"),
                        ));
                    }
                }
            }
            Ok(out)
        }
    }
}

fn joined(parts: &[Part]) -> String {
    parts
        .iter()
        .filter_map(|p| if let Part::Text(t) = p { Some(t.as_str()) } else { None })
        .collect::<Vec<_>>()
        .join("")
}

/// Parses `tool_choice` in chat shape.
fn tool_choice(value: Value, tools: &[Tool]) -> Result<ToolChoice, ApiError> {
    let choice = match &value {
        Value::String(s) if s == "auto" => ToolChoice::Auto,
        Value::String(s) if s == "none" => ToolChoice::None,
        Value::String(s) if s == "required" => ToolChoice::Required,
        Value::Object(o)
            if matches!(o.get("type").and_then(Value::as_str), Some("function" | "custom")) =>
        {
            let name = o
                .get("function")
                .or_else(|| o.get("custom"))
                .and_then(|f| f.get("name"))
                .or_else(|| o.get("name"))
                .and_then(Value::as_str)
                .ok_or_else(|| {
                    ApiError::invalid_param("tool_choice", "tool_choice.function.name is required")
                })?;
            ToolChoice::Function(name.to_owned())
        }
        _ => {
            return Err(ApiError::invalid_param(
                "tool_choice",
                "tool_choice must be \"auto\", \"none\", \"required\" or {\"type\":\"function\",\"function\":{\"name\":…}}",
            ));
        }
    };
    if let ToolChoice::Function(name) = &choice
        && !tools.iter().any(|t| &t.name == name)
    {
        return Err(ApiError::invalid_param(
            "tool_choice",
            format!("tool_choice names `{name}`, which is not in `tools`"),
        ));
    }
    Ok(choice)
}

pub(crate) fn check_sampling(temperature: Option<f64>, top_p: Option<f64>) -> Result<(), ApiError> {
    if let Some(t) = temperature
        && !(0.0..=2.0).contains(&t)
    {
        return Err(ApiError::invalid_param(
            "temperature",
            format!("temperature must be between 0 and 2, got {t}"),
        ));
    }
    if let Some(p) = top_p
        && !(0.0..=1.0).contains(&p)
    {
        return Err(ApiError::invalid_param(
            "top_p",
            format!("top_p must be between 0 and 1, got {p}"),
        ));
    }
    Ok(())
}

/// The canonical prompt of a chat request; unknown fields pass through.
pub fn to_prompt(request: ChatRequest) -> Result<(Prompt, Options), ApiError> {
    let ChatRequest {
        messages,
        stream,
        stream_options,
        max_tokens,
        max_completion_tokens,
        temperature,
        top_p,
        tools,
        tool_choice: choice,
        reasoning_effort,
        user,
        mut extra,
        ..
    } = request;
    if messages.is_empty() {
        return Err(ApiError::invalid_param(
            "messages",
            "`messages` must contain at least one message",
        ));
    }
    if let Some(n) = extra.remove("n")
        && !n.is_null()
    {
        match n.as_u64() {
            Some(1) => {}
            Some(0) | None => {
                return Err(ApiError::invalid_param("n", "n must be a positive integer"));
            }
            Some(_) => {
                return Err(ApiError::invalid_param(
                    "n",
                    "n > 1 is not supported: hearth returns one choice",
                ));
            }
        }
    }
    check_sampling(temperature, top_p)?;
    let logprobs = chat_logprobs(&mut extra)?;
    for (field, value) in
        [("max_completion_tokens", max_completion_tokens), ("max_tokens", max_tokens)]
    {
        if value == Some(0) {
            return Err(ApiError::invalid_param(
                field,
                format!("{field} must be a positive integer"),
            ));
        }
    }
    for field in ["frequency_penalty", "presence_penalty"] {
        if let Some(v) = extra.get(field).and_then(Value::as_f64)
            && !(-2.0..=2.0).contains(&v)
        {
            return Err(ApiError::invalid_param(
                field,
                format!("{field} must be between -2 and 2, got {v}"),
            ));
        }
    }
    let stop = match extra.remove("stop") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(s)) => vec![s],
        Some(Value::Array(items)) if items.len() <= 4 => {
            let mut out = Vec::new();
            for item in items {
                match item {
                    Value::String(s) if !s.is_empty() => out.push(s),
                    _ => {
                        return Err(ApiError::invalid_param(
                            "stop",
                            "stop must be a string or up to 4 non-empty strings",
                        ));
                    }
                }
            }
            out
        }
        Some(_) => {
            return Err(ApiError::invalid_param(
                "stop",
                "stop must be a string or up to 4 non-empty strings",
            ));
        }
    };
    let mut prompt_tools = Vec::new();
    let mut dropped = Vec::new();
    let mut custom_tools = Vec::new();
    for (i, tool) in tools.into_iter().flatten().enumerate() {
        if tool.kind.is_empty() {
            return Err(ApiError::invalid_param(
                &format!("tools[{i}].type"),
                "a tool needs a type",
            ));
        }
        if tool.kind == "custom" {
            let custom = tool.extra.get("custom");
            let Some(name) = custom
                .and_then(|c| c.get("name"))
                .and_then(Value::as_str)
                .filter(|n| !n.is_empty())
            else {
                return Err(ApiError::invalid_param(
                    &format!("tools[{i}].custom.name"),
                    "a custom tool needs a name",
                ));
            };
            custom_tools.push(name.to_owned());
            prompt_tools.push(Tool {
                name: name.to_owned(),
                description: custom
                    .and_then(|c| c.get("description"))
                    .and_then(Value::as_str)
                    .map(str::to_owned),
                parameters: custom_parameters(),
            });
            continue;
        }
        if tool.kind != "function" {
            // Hosted and unknown tool types: no chat upstream can run them.
            dropped.push(format!("tools[{i}] ({})", tool.kind));
            continue;
        }
        if tool.function.name.is_empty() {
            return Err(ApiError::invalid_param(
                &format!("tools[{i}].function.name"),
                "a tool needs a name",
            ));
        }
        prompt_tools.push(Tool {
            name: tool.function.name,
            description: tool.function.description,
            parameters: tool
                .function
                .parameters
                .unwrap_or_else(|| serde_json::json!({"type": "object", "properties": {}})),
        });
    }
    let tool_choice =
        choice.filter(|v| !v.is_null()).map(|v| tool_choice(v, &prompt_tools)).transpose()?;
    let mut prompt = Prompt::default();
    for (i, message) in messages.into_iter().enumerate() {
        let field = format!("messages[{i}].content");
        match message.role.as_str() {
            "system" | "developer" => {
                let parts = text_of(message.content, &field, false)?;
                prompt.system.push(joined(&parts));
            }
            "user" => {
                let parts = text_of(message.content, &field, true)?;
                prompt.messages.push(Message { content: parts, ..Message::user("") });
            }
            "assistant" => {
                let reasoning = message
                    .reasoning_content
                    .clone()
                    .or_else(|| message.reasoning.clone())
                    .filter(|r| !r.is_empty());
                let parts = text_of(message.content, &field, false)?;
                let tool_calls = message
                    .tool_calls
                    .unwrap_or_default()
                    .into_iter()
                    .map(|c| match c.extra.get("custom").filter(|_| c.kind.as_deref() == Some("custom")) {
                        Some(custom) => ToolCall {
                            id: c.id.clone(),
                            name: custom.get("name").and_then(Value::as_str).unwrap_or_default().to_owned(),
                            arguments: serde_json::json!({"input": custom.get("input").and_then(Value::as_str).unwrap_or_default()}).to_string(),
                        },
                        None => ToolCall {
                            id: c.id,
                            name: c.function.name,
                            arguments: c.function.arguments,
                        },
                    })
                    .collect();
                prompt.messages.push(Message {
                    role: Role::Assistant,
                    content: parts,
                    reasoning: reasoning.map(|text| Reasoning { text, signature: None }),
                    tool_calls,
                    tool_call_id: None,
                    name: None,
                });
            }
            "tool" => {
                let Some(id) = message.tool_call_id.filter(|id| !id.is_empty()) else {
                    return Err(ApiError::invalid_param(
                        &format!("messages[{i}].tool_call_id"),
                        "a tool message needs tool_call_id",
                    ));
                };
                let parts = text_of(message.content, &field, false)?;
                prompt.messages.push(Message {
                    role: Role::Tool,
                    content: vec![Part::Text(joined(&parts))],
                    reasoning: None,
                    tool_calls: Vec::new(),
                    tool_call_id: Some(id),
                    name: message.name,
                });
            }
            other => {
                return Err(ApiError::invalid_param(
                    &format!("messages[{i}].role"),
                    format!(
                        "role `{other}` is not supported (system, developer, user, assistant, tool)"
                    ),
                ));
            }
        }
    }
    let thinking =
        reasoning_effort.map(|e| super::thinking_level(&e, "reasoning_effort")).transpose()?;
    if let Some(user) = user {
        extra.insert("user".to_owned(), Value::String(user));
    }
    let output_format = match extra.remove("response_format") {
        None | Some(Value::Null) => None,
        Some(rf) => {
            Some(hearth_upstream::OutputFormat::from_chat(&rf).map_err(|(at, message)| {
                ApiError::invalid_param(&format!("response_format{at}"), message)
            })?)
        }
    };
    let stream = stream.unwrap_or(false);
    let include_usage =
        stream && stream_options.as_ref().and_then(|o| o.include_usage).unwrap_or(false);
    prompt.tools = prompt_tools;
    prompt.tool_choice = tool_choice;
    prompt.max_tokens = max_completion_tokens.or(max_tokens);
    prompt.temperature = temperature;
    prompt.top_p = top_p;
    prompt.stop = stop;
    prompt.output_format = output_format;
    prompt.logprobs = logprobs;
    prompt.thinking = thinking;
    prompt.stream = stream;
    prompt.passthrough = extra;
    Ok((
        prompt,
        Options { stream, include_usage, dropped, custom_tools, logprobs: logprobs.is_some() },
    ))
}

/// Chat `logprobs` and `top_logprobs` (0 to 20, only with `logprobs: true`, as OpenAI checks
/// them): `Some(top)` when the caller asked for token logprobs.
fn chat_logprobs(extra: &mut serde_json::Map<String, Value>) -> Result<Option<u32>, ApiError> {
    let wanted = match extra.remove("logprobs") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => b,
        Some(_) => return Err(ApiError::invalid_param("logprobs", "logprobs must be a boolean")),
    };
    let top = match extra.remove("top_logprobs") {
        None | Some(Value::Null) => None,
        Some(v) => match v.as_u64() {
            Some(n) if n <= 20 => Some(n as u32),
            _ => {
                return Err(ApiError::invalid_param(
                    "top_logprobs",
                    "top_logprobs must be an integer from 0 to 20",
                ));
            }
        },
    };
    match (wanted, top) {
        (true, top) => Ok(Some(top.unwrap_or(0))),
        (false, Some(n)) if n > 0 => {
            Err(ApiError::invalid_param("top_logprobs", "top_logprobs needs logprobs: true"))
        }
        (false, _) => Ok(None),
    }
}

#[derive(Debug, Serialize)]
struct UsageOut {
    prompt_tokens: u64,
    completion_tokens: u64,
    total_tokens: u64,
    prompt_tokens_details: CachedOut,
    #[serde(skip_serializing_if = "Option::is_none")]
    completion_tokens_details: Option<ReasoningTokensOut>,
}

#[derive(Debug, Serialize)]
struct CachedOut {
    cached_tokens: u64,
}

#[derive(Debug, Serialize)]
struct ReasoningTokensOut {
    reasoning_tokens: u64,
}

impl From<&Usage> for UsageOut {
    fn from(u: &Usage) -> Self {
        UsageOut {
            prompt_tokens: u.input_tokens,
            completion_tokens: u.output_tokens,
            total_tokens: u.input_tokens + u.output_tokens,
            prompt_tokens_details: CachedOut { cached_tokens: u.cache_read_tokens },
            completion_tokens_details: u
                .reasoning_tokens
                .map(|r| ReasoningTokensOut { reasoning_tokens: r }),
        }
    }
}

fn finish_reason(finish: Option<&FinishReason>, has_tools: bool) -> &str {
    match finish {
        Some(FinishReason::Stop) | None if has_tools => "tool_calls",
        Some(f) => f.as_openai(),
        None => "stop",
    }
}

/// A non-streaming `chat.completion`.
/// A whole `chat.completion`, serialized straight from the collected answer (no `Value`).
pub fn completion<'a>(
    id: &'a str,
    model: &'a str,
    c: &'a Collected,
    custom_tools: &[String],
    logprobs: bool,
) -> Completion<'a> {
    let tool_calls: Vec<CallOut<'a>> = c
        .tool_calls
        .iter()
        .map(|t| {
            if custom_tools.contains(&t.name) {
                CallOut {
                    id: &t.id,
                    kind: "custom",
                    function: None,
                    custom: Some(CustomOut { name: &t.name, input: custom_input(&t.arguments) }),
                }
            } else {
                CallOut {
                    id: &t.id,
                    kind: "function",
                    function: Some(FunctionOut { name: &t.name, arguments: &t.arguments }),
                    custom: None,
                }
            }
        })
        .collect();
    let content = (!c.text.is_empty() || tool_calls.is_empty()).then_some(c.text.as_str());
    Completion {
        id,
        object: OBJECT_COMPLETION,
        created: crate::unix_now(),
        model,
        choices: [CompletionChoice {
            index: 0,
            finish_reason: finish_reason(c.finish.as_ref(), !c.tool_calls.is_empty()),
            message: MessageOut {
                role: "assistant",
                content,
                refusal: None,
                reasoning_content: (!c.reasoning.is_empty()).then_some(c.reasoning.as_str()),
                tool_calls: (!tool_calls.is_empty()).then_some(tool_calls),
            },
            logprobs: (logprobs && !c.logprobs.is_empty())
                .then(|| crate::logprobs::ChatLogprobs::new(&c.logprobs)),
        }],
        system_fingerprint: None,
        usage: c.usage.as_ref().map(UsageOut::from),
    }
}

/// `chat.completion` (field order as OpenAI writes it).
#[derive(Debug, Serialize)]
pub struct Completion<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
    choices: [CompletionChoice<'a>; 1],
    system_fingerprint: Option<()>,
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<UsageOut>,
}

#[derive(Debug, Serialize)]
struct CompletionChoice<'a> {
    index: u32,
    message: MessageOut<'a>,
    logprobs: Option<crate::logprobs::ChatLogprobs<'a>>,
    finish_reason: &'a str,
}

#[derive(Debug, Serialize)]
struct MessageOut<'a> {
    role: &'static str,
    content: Option<&'a str>,
    refusal: Option<()>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reasoning_content: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_calls: Option<Vec<CallOut<'a>>>,
}

#[derive(Debug, Serialize)]
struct CallOut<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    function: Option<FunctionOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    custom: Option<CustomOut<'a>>,
}

#[derive(Debug, Serialize)]
struct FunctionOut<'a> {
    name: &'a str,
    arguments: &'a str,
}

#[derive(Debug, Serialize)]
struct CustomOut<'a> {
    name: &'a str,
    input: String,
}

#[derive(Serialize)]
struct Chunk<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
    choices: &'a [ChunkChoice<'a>],
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<UsageOut>,
    /// A hearth notice (fallback, window warning) on a chunk with an empty delta; clients
    /// that do not know the field ignore it (docs/gateway.md).
    #[serde(skip_serializing_if = "Option::is_none")]
    hearth_notice: Option<&'a str>,
}

#[derive(Serialize)]
struct ChunkChoice<'a> {
    index: u32,
    delta: Delta<'a>,
    logprobs: Option<crate::logprobs::ChatLogprobs<'a>>,
    finish_reason: Option<&'a str>,
}

#[derive(Serialize, Default)]
struct Delta<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    content: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reasoning_content: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_calls: Option<[ToolDelta<'a>; 1]>,
}

#[derive(Serialize)]
struct ToolDelta<'a> {
    index: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    kind: Option<&'static str>,
    function: FunctionDelta<'a>,
}

#[derive(Serialize)]
struct FunctionDelta<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    arguments: &'a str,
}

/// Renders `chat.completion.chunk` frames.
#[derive(Debug)]
pub struct ChatRender {
    id: String,
    model: String,
    created: u64,
    include_usage: bool,
    usage: Option<Usage>,
    tools_seen: Vec<u32>,
    custom_tools: Vec<String>,
    /// Calls of custom tools, held until whole (index, id, name, arguments).
    custom_calls: Vec<(u32, String, String, String)>,
    /// The caller asked for logprobs.
    logprobs: bool,
    /// Logprobs that came before the text they belong to ([`Event::Logprobs`]).
    pending_logprobs: Vec<TokenLogprob>,
}

impl ChatRender {
    pub fn new(model: String, include_usage: bool) -> Self {
        ChatRender {
            id: crate::new_id("chatcmpl-"),
            model,
            created: crate::unix_now(),
            include_usage,
            usage: None,
            tools_seen: Vec::new(),
            custom_tools: Vec::new(),
            custom_calls: Vec::new(),
            logprobs: false,
            pending_logprobs: Vec::new(),
        }
    }

    /// Puts token logprobs (when the upstream reports them) on the chunks of their text.
    pub fn with_logprobs(mut self, logprobs: bool) -> Self {
        self.logprobs = logprobs;
        self
    }

    /// Renders calls of these `custom` tools as custom calls (whole, at the end).
    pub fn with_custom_tools(mut self, custom_tools: Vec<String>) -> Self {
        self.custom_tools = custom_tools;
        self
    }

    fn chunk(&self, out: &mut Vec<u8>, delta: Delta<'_>, finish_reason: Option<&str>) {
        self.chunk_with_notice(out, delta, finish_reason, None, None);
    }

    fn chunk_with_notice(
        &self,
        out: &mut Vec<u8>,
        delta: Delta<'_>,
        finish_reason: Option<&str>,
        hearth_notice: Option<&str>,
        logprobs: Option<crate::logprobs::ChatLogprobs<'_>>,
    ) {
        let choices = [ChunkChoice { index: 0, delta, logprobs, finish_reason }];
        sse::data(
            out,
            &Chunk {
                id: &self.id,
                object: OBJECT_CHUNK,
                created: self.created,
                model: &self.model,
                choices: &choices,
                usage: None,
                hearth_notice,
            },
        );
    }
}

impl Render for ChatRender {
    fn start(&mut self, out: &mut Vec<u8>) {
        self.chunk(
            out,
            Delta { role: Some("assistant"), content: Some(""), ..Delta::default() },
            None,
        );
    }

    fn notice(&mut self, text: &str, out: &mut Vec<u8>) {
        self.chunk_with_notice(
            out,
            Delta { content: Some(""), ..Delta::default() },
            None,
            Some(text),
            None,
        );
    }

    fn resume(&mut self, early: Self) {
        self.id = early.id;
        self.created = early.created;
    }

    fn event(&mut self, event: Event, out: &mut Vec<u8>) -> bool {
        match event {
            Event::TextDelta(t) => {
                let delta = Delta { content: Some(&t), ..Delta::default() };
                if self.pending_logprobs.is_empty() {
                    self.chunk(out, delta, None)
                } else {
                    let logprobs = std::mem::take(&mut self.pending_logprobs);
                    let logprobs = Some(crate::logprobs::ChatLogprobs::new(&logprobs));
                    self.chunk_with_notice(out, delta, None, None, logprobs);
                }
            }
            Event::Logprobs(l) if self.logprobs => {
                if self.pending_logprobs.is_empty() {
                    self.pending_logprobs = l;
                } else {
                    self.pending_logprobs.extend(l);
                }
            }
            // Not asked for (a `params` setting may have asked the upstream).
            Event::Logprobs(_) => {}
            Event::ReasoningDelta(r) => {
                self.chunk(out, Delta { reasoning_content: Some(&r), ..Delta::default() }, None)
            }
            // Blocks only the upstream's own API holds (docs/upstream.md, "Server tools").
            Event::ReasoningSignature(_) | Event::Native(_) | Event::Progress(_) => {}
            Event::ToolCallDelta { index, id, name, arguments } => {
                let first = !self.tools_seen.contains(&index);
                if first {
                    self.tools_seen.push(index);
                }
                if !self.custom_tools.is_empty() {
                    if let Some(call) = self.custom_calls.iter_mut().find(|c| c.0 == index) {
                        call.3.push_str(&arguments);
                        return false;
                    }
                    if first && name.as_ref().is_some_and(|n| self.custom_tools.contains(n)) {
                        let id = id.unwrap_or_else(|| crate::new_id("call_"));
                        self.custom_calls.push((index, id, name.unwrap_or_default(), arguments));
                        return false;
                    }
                }
                let id = match id {
                    Some(id) => Some(id),
                    None if first => Some(crate::new_id("call_")),
                    None => None,
                };
                let tool = ToolDelta {
                    index,
                    id: id.as_deref(),
                    kind: first.then_some("function"),
                    function: FunctionDelta { name: name.as_deref(), arguments: &arguments },
                };
                self.chunk(out, Delta { tool_calls: Some([tool]), ..Delta::default() }, None);
            }
            Event::Usage(u) => self.usage = Some(u),
            Event::Finish(reason) => {
                for (index, id, name, arguments) in std::mem::take(&mut self.custom_calls) {
                    let call = serde_json::json!({"index": index, "id": id, "type": "custom",
                        "custom": {"name": name, "input": custom_input(&arguments)}});
                    sse::data(
                        out,
                        &serde_json::json!({"id": self.id, "object": OBJECT_CHUNK, "created": self.created,
                            "model": self.model, "choices": [{"index": 0, "delta": {"tool_calls": [call]},
                            "logprobs": null, "finish_reason": null}]}),
                    );
                }
                let reason = finish_reason(Some(&reason), !self.tools_seen.is_empty()).to_owned();
                self.chunk(out, Delta::default(), Some(&reason));
                if self.include_usage {
                    let usage = self.usage.unwrap_or_default();
                    sse::data(
                        out,
                        &Chunk {
                            id: &self.id,
                            object: OBJECT_CHUNK,
                            created: self.created,
                            model: &self.model,
                            choices: &[],
                            usage: Some(UsageOut::from(&usage)),
                            hearth_notice: None,
                        },
                    );
                }
                sse::done(out);
                return true;
            }
            Event::Error(e) => {
                sse::data(out, &ApiError::from_upstream(&e).body());
                return true;
            }
        }
        false
    }
}
